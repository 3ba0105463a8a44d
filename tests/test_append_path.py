"""The SQLite append derives positions and recorded_at instead of using RETURNING: what an append
returns must be exactly what a later read returns, across the insert's 1,000-row chunks too,
and after positions were drawn by another append in between."""

from __future__ import annotations

from pathlib import Path

import evstore
from evstore import NewEvent


def test_returned_records_equal_the_stored_ones_across_chunks(tmp_path: Path) -> None:
    with evstore.connect(f"sqlite:///{tmp_path}/a.db") as store:
        store.migrate()
        store.append("first", [NewEvent("T", {"i": -1})])
        with store.transaction() as tx:
            tx.append("other", [NewEvent("T", {"i": -2})])
            returned = tx.append("big", [NewEvent(f"T{i % 3}", {"i": i}) for i in range(2_500)])
        later = store.append("big", [NewEvent("T", {"i": 2_500})], expected_version=2_500)
        stored = store.read_stream("big")
        assert [r.position for r in returned] == list(range(3, 2_503))
        assert [(r.position, r.version, r.event_id, r.type, r.data, r.metadata, r.recorded_at,
                 r.content_digest) for r in [*returned, *later]] == [
            (r.position, r.version, r.event_id, r.type, r.data, r.metadata, r.recorded_at,
             r.content_digest) for r in stored]
