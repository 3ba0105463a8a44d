"""The main job end to end on the embedded default: migrate, append with expected versions,
retry idempotently, read, project, snapshot."""

from __future__ import annotations

import argparse

import evstore


class Totals:
    name = "order_totals"

    def reset(self, tx: evstore.Transaction) -> None:
        tx.execute("DELETE FROM order_totals")

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        if event.type == "ItemAdded":
            tx.execute("INSERT INTO order_totals (order_id, total) VALUES (?, ?) "
                       "ON CONFLICT (order_id) DO UPDATE SET total = order_totals.total + "
                       "excluded.total", (event.stream_id, event.data["price"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="sqlite:///evstore.db")
    args = parser.parse_args()
    with evstore.connect(args.database) as store:
        print("migrated:", store.migrate() or "already up to date")
        store.execute("CREATE TABLE IF NOT EXISTS order_totals "
                      "(order_id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
        order = f"order-{store.head_position() + 1}"
        events = [evstore.NewEvent("OrderPlaced", {"customer": "ada"}),
                  evstore.NewEvent("ItemAdded", {"sku": "tea", "price": 4})]
        first = store.append(order, events, evstore.NO_STREAM)
        retried = store.append(order, [evstore.NewEvent(e.type, e.data, event_id=r.event_id)
                                       for e, r in zip(events, first, strict=True)],
                               evstore.NO_STREAM)
        print("idempotent retry returned the stored events:", retried == first)
        try:
            store.append(order, [evstore.NewEvent("ItemAdded", {"price": 1})], expected_version=1)
        except evstore.WrongExpectedVersion as e:
            print("refused:", e)
        store.append(order, [evstore.NewEvent("ItemAdded", {"sku": "cake", "price": 6})], 2)
        for e in store.read_stream(order):
            print(f"  {e.position:>4} {e.stream_id}@{e.version} {e.type} {e.data}")
        store.run_projection(Totals())
        print("projection:", store.execute("SELECT * FROM order_totals WHERE order_id = ?",
                                           (order,)))
        store.save_snapshot(order, 3, {"total": 10})
        print("snapshot:", store.load_snapshot(order))


if __name__ == "__main__":
    main()
