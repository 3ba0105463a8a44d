"""An application with a read model of its own: its migrations live in its own folders
(scripts/demo_app/), are applied after evstore's in one yoyo run, are held at parity with
evstore's, and its table is fed by a projection."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import evstore
from evstore import NewEvent
from evstore.cli import main as evstore_cli

APP = Path(__file__).resolve().parent / "demo_app"


class OrderTotals:
    """Keeps order_totals (app_0001_order_totals.sql) from the log."""

    name = "order_totals"

    def reset(self, tx: evstore.Transaction) -> None:
        tx.execute("DELETE FROM order_totals")

    def apply(self, tx: evstore.Transaction, event: evstore.RecordedEvent) -> None:
        if event.type != "ItemAdded":
            return
        updated = tx.execute(
            "UPDATE order_totals SET total = total + ?, lines = lines + 1 WHERE order_id = ? "
            "RETURNING order_id", (event.data["price"], event.stream_id))
        if not updated:
            tx.execute("INSERT INTO order_totals (order_id, total, lines) VALUES (?, ?, 1)",
                       (event.stream_id, event.data["price"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default="sqlite:///demo_app.db",
                        help="where the store lives (default: sqlite:///demo_app.db)")
    parser.add_argument("--schema", help="PostgreSQL schema for the store and the read model")
    parser.add_argument("--postgres", help="a PostgreSQL server URL: also prove that evstore's "
                        "and the application's migrations are at parity")
    args = parser.parse_args()
    folders = {"postgres": APP / "postgres", "sqlite": APP / "sqlite"}
    with evstore.connect(args.database, app_migrations_dir=folders, schema=args.schema) as store:
        applied = store.migrate()
        print("applied, evstore's first, then the application's:", applied or "none (up to date)")
        order = f"order-{store.head_position() + 1}"
        store.append(order, [NewEvent("OrderPlaced", {"customer": "ada"}),
                             NewEvent("ItemAdded", {"sku": "tea", "price": 4}),
                             NewEvent("ItemAdded", {"sku": "cake", "price": 6})],
                     evstore.NO_STREAM)
        print("projected:", store.run_projection(OrderTotals()), "event(s)")
        print("order_totals:", store.execute(
            "SELECT order_id, total, lines FROM order_totals WHERE order_id = ?", (order,)))
        print("replayed in one transaction:", store.replay(OrderTotals()), "event(s)")
    if args.postgres:
        print("parity of evstore's and the application's migrations:")
        os.environ["EVSTORE_PG_URL"] = args.postgres
        return evstore_cli(["parity", "--config", str(APP / "evstore.toml")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
