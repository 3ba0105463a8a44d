"""Which server serves what: a Store on a hot standby refuses every write, and a Store opened
with a read_url reads and tails from it while it writes to the primary, waiting for its own
writes to arrive there first (read-your-writes).

How a Store knows that a standby has position P: it asks the standby for its highest position,
max(position), and waits until that is at least P. That is enough because a standby shows a
prefix of the log, as the primary does. Positions are drawn under the append lock, which is
held until COMMIT (README, "Gap-free global order"), so the primary writes commit records in
position order; a standby replays WAL in order and makes each transaction visible when it
replays its commit record. So when a standby shows position P, it shows every committed
position below P, and a read of events after any position there skips nothing.
tests/test_replicas.py proves it on real standbys: several writer processes with rollbacks,
tails on a standby, every committed event delivered once and in order.

Which operation goes where, on a Store with a read_url:
- to the read server: read_all, iter_all, read_stream, head_position, get_event,
  stream_version, load_snapshot and tail;
- to the primary: append and transactions (with every read made inside one, so it sees its
  own writes), checkpoints (read and written: a projection must see its own checkpoint),
  run_projection and replay (a projection's read model and its checkpoint commit together on
  the primary), snapshots saved, execute and run_query, migrations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from evstore.dialects.base import Backend
from evstore.dialects.shared import Queries
from evstore.errors import ReadOnlyStore, ReplicaLagTimeout
from evstore.events import RecordedEvent


def in_recovery(backend: Backend) -> bool:
    """Whether the backend's server is a hot standby (PostgreSQL's pg_is_in_recovery())."""
    return bool(getattr(backend, "in_recovery", False))


class Routing:
    """The writer (the Store's own server) and, when a read_url was given, the reader."""

    def __init__(
        self, writer: Backend, reader: Backend | None, read_wait_timeout: float
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.read_wait_timeout = read_wait_timeout
        self._written = 0  # the highest position this Store appended and committed
        self._seen = 0  # the highest position seen on the reader
        self._lock = threading.Lock()
        self._open = threading.local()  # .top: positions appended in this thread's transaction

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    # -- writes ----------------------------------------------------------------------------

    def writable(self, operation: str) -> Backend:
        """The writer, or ReadOnlyStore when it is a standby."""
        if in_recovery(self.writer):
            raise ReadOnlyStore(where=self.writer.url.redacted, operation=operation)
        return self.writer

    def appended(self, events: list[RecordedEvent]) -> None:
        """Remember the append's positions, once they are committed."""
        if self.reader is None or not events:
            return
        top = events[-1].position  # an append returns its events in position order
        if self.writer.in_transaction:
            self._open.top = max(getattr(self._open, "top", 0), top)
        else:
            self._committed(top)

    def _committed(self, position: int) -> None:
        with self._lock:
            self._written = max(self._written, position)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Around a Store transaction: its appends count as written once it has committed,
        and a savepoint rolled back forgets its own."""
        if self.reader is None:
            yield
            return
        outermost = not self.writer.in_transaction
        before = getattr(self._open, "top", 0)
        try:
            yield
        except BaseException:
            self._open.top = before
            raise
        if outermost:
            top, self._open.top = getattr(self._open, "top", 0), 0
            if top:
                self._committed(top)

    # -- reads -----------------------------------------------------------------------------

    def readable(self) -> Backend:
        """The reader, once it has every position this Store wrote; reads inside this
        thread's transaction stay on the writer, where they see what it wrote."""
        reader = self.reader
        if reader is None or self.writer.in_transaction:
            return self.writer
        target = self._written
        if target > self._seen and not self._wait(reader, target, self.read_wait_timeout):
            raise ReplicaLagTimeout(
                reader.url.redacted, target, self._seen, self.read_wait_timeout
            )
        return reader

    def wait_for_position(self, position: int, timeout: float) -> bool:
        """Whether the read server (the Store's own server without a read_url) shows
        `position` within `timeout` seconds."""
        return self._wait(self.reader or self.writer, position, timeout)

    def _wait(self, backend: Backend, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            head = backend.head_position()
            if backend is self.reader and head > self._seen:
                with self._lock:
                    self._seen = max(self._seen, head)
            if head >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)


def queries_for(backend: Backend) -> Queries:
    """The backend's statements; on a hot standby, with a tail that polls the replay
    position instead of LISTENing (a standby allows no LISTEN)."""
    if in_recovery(backend):
        from evstore.dialects.postgres import STANDBY_QUERIES

        return STANDBY_QUERIES
    queries: Queries = backend.queries  # type: ignore[attr-defined]
    return queries
