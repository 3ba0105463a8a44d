"""The sync backends keep their query methods (evstore.dialects.shared.SyncQueries) for code
that holds a backend rather than a Store: the same plans, driven by shared.drive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import evstore
from evstore import NewEvent

E = NewEvent


@pytest.fixture
def sync_store(url: str) -> Iterator[evstore.Store]:
    with evstore.connect(url) as store:
        store.migrate()
        yield store


def test_backend_query_methods_answer_as_the_store_does(sync_store: evstore.Store) -> None:
    store = sync_store
    backend = store._live()
    recorded = store.append("s", [E("T", {"i": i}) for i in range(3)])
    store.append("t", [E("U", {})])
    assert backend.read_all(0, 10, None) == store.read_all()
    assert backend.read_all(0, 10, ["U"]) == store.read_all(types=["U"])
    assert backend.read_stream("s", 3, 2, True) == store.read_stream("s", backwards=True, limit=2)
    assert backend.find_events([recorded[1].event_id]) == [recorded[1]]
    assert backend.stream_version("s") == 3 and backend.stream_version("none") is None
    assert backend.head_position() == store.head_position() == 4
    backend.set_checkpoint("sub", 2)
    assert backend.checkpoint("sub", False) == store.checkpoint("sub") == 2
    assert backend.delete_checkpoint("sub") and store.checkpoint("sub") == 0
    saved = backend.save_snapshot("s", 2, '{"n": 2}')
    assert backend.load_snapshot("s") == store.load_snapshot("s") == saved
    assert saved.state == {"n": 2}
    assert backend.run("stream_version", {"stream_id": "t"}) == [(1,)]
