"""The PostgreSQL dialect: psycopg 3, one statement and one round trip per append.

Gap-free global order: an append takes the transaction-level advisory lock APPEND_LOCK_KEY
after its stream row is locked and before it draws positions, and holds it to COMMIT.
PostgreSQL makes a transaction visible before it releases its locks, so positions become
visible in the order they were drawn, and a reader that has seen position N has seen every
committed position below N. See the README, "Gap-free global order".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.types.json import set_json_loads

from evstore.backend import AppendConflict
from evstore.errors import (
    AppendOnlyViolation,
    ConnectionFailed,
    DatabaseError,
    EvstoreError,
)
from evstore.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EncodedEvent,
    Expected,
    RecordedEvent,
    decode_json,
)
from evstore.events import Snapshot as SnapshotRecord
from evstore.urls import DatabaseURL, Dialect

# pg_advisory_xact_lock key of the append path: 0x65767374 spells "evst".
APPEND_LOCK_KEY = 1702261620
NOTIFY_CHANNEL = "evstore_event_store"

_EVENT_COLUMNS = (
    "position, stream_id, version, event_id, event_type, payload, metadata, recorded_at"
)

# The stream row is the per-stream serialisation point; each form returns the new version,
# or no row when the expected version does not hold.
_HEAD = {
    "any": (
        "INSERT INTO stream AS s (stream_id, version) VALUES (%(stream)s, %(n)s) "
        "ON CONFLICT (stream_id) DO UPDATE SET version = s.version + %(n)s RETURNING s.version"
    ),
    "no_stream": (
        "INSERT INTO stream (stream_id, version) VALUES (%(stream)s, %(n)s) "
        "ON CONFLICT (stream_id) DO NOTHING RETURNING version"
    ),
    "exists": (
        "UPDATE stream SET version = version + %(n)s WHERE stream_id = %(stream)s "
        "RETURNING version"
    ),
    "exact": (
        "UPDATE stream SET version = version + %(n)s "
        "WHERE stream_id = %(stream)s AND version = %(expected)s RETURNING version"
    ),
}

# One statement: lock the stream row and check its version, then take the append lock, then
# insert the batch from four text[] parameters sent in binary format (%b): psycopg writes
# those as lengths and bytes, where the text format (%s) would escape every quote of every
# JSON document through a regular expression, which costs more than the insert itself.
# Positions are drawn only for rows of the join with `lock`, so always after the lock is held.
_APPEND = """\
WITH head AS ({head}),
lock AS (SELECT pg_advisory_xact_lock({key}) FROM head)
INSERT INTO event_store (event_id, stream_id, version, event_type, payload, metadata)
SELECT e.event_id, %(stream)s, head.version - %(n)s + e.ord, e.event_type,
       e.payload::jsonb, e.metadata::jsonb
FROM head CROSS JOIN lock CROSS JOIN
     unnest(%(ids)b::text[], %(types)b::text[], %(payloads)b::text[], %(metadatas)b::text[])
     WITH ORDINALITY AS e(event_id, event_type, payload, metadata, ord)
RETURNING position, version, recorded_at"""

APPEND_SQL = {
    kind: _APPEND.format(head=head, key=APPEND_LOCK_KEY) for kind, head in _HEAD.items()
}


def _append_kind(expected: Expected) -> str:
    if expected is ANY:
        return "any"
    if expected is NO_STREAM or expected == 0:
        return "no_stream"
    if expected is STREAM_EXISTS:
        return "exists"
    return "exact"


@contextmanager
def translated() -> Iterator[None]:
    """The one place where psycopg errors become evstore errors."""
    try:
        yield
    except psycopg.Error as e:
        raise translate(e) from e


def translate(error: psycopg.Error) -> EvstoreError:
    message = (error.diag.message_primary or str(error)).strip()
    if "append-only" in message:
        return AppendOnlyViolation()
    if isinstance(error, psycopg.OperationalError):
        return ConnectionFailed(
            f"PostgreSQL connection failed: {message}; check that the server is running"
        )
    return DatabaseError(f"PostgreSQL refused the operation: {message}")


def open_connection(url: DatabaseURL) -> psycopg.Connection[Any]:
    assert url.conninfo is not None
    try:
        conn = psycopg.connect(
            url.conninfo,
            autocommit=True,
            connect_timeout=10,
            application_name="evstore",
            options="-c TimeZone=UTC",
        )
    except psycopg.Error as e:
        raise ConnectionFailed(
            f"cannot connect to {url.redacted}: {url.scrub(_first_line(e))}; check that the "
            "server is "
            "running, and the host, port, database name and credentials in the URL"
        ) from e
    # jsonb arrives decoded by the C JSON scanner directly, about twice as fast as json.loads.
    set_json_loads(decode_json, conn)
    return conn


class PostgresBackend:
    dialect: Dialect = "postgres"

    def __init__(self, url: DatabaseURL) -> None:
        self.url = url
        self.conn = open_connection(url)
        self._depth = 0

    def close(self) -> None:
        self.conn.close()

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested calls become savepoints."""
        with translated(), self.conn.transaction():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    # -- append ------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        params = {
            "stream": stream_id,
            "n": len(events),
            "expected": expected if isinstance(expected, int) else None,
            "ids": [e.event_id for e in events],
            "types": [e.type for e in events],
            "payloads": [e.payload for e in events],
            "metadatas": [e.metadata for e in events],
        }
        sql = APPEND_SQL[_append_kind(expected)]
        try:
            if self._depth:
                # Inside a caller's transaction a savepoint keeps it usable after a conflict.
                with self.conn.transaction():
                    rows = self.conn.execute(sql, params, binary=True).fetchall()
            else:
                rows = self.conn.execute(sql, params, binary=True).fetchall()
        except psycopg.errors.UniqueViolation as e:
            if e.diag.constraint_name == "uq_event_store_event_id":
                raise AppendConflict("event_id") from e
            if e.diag.constraint_name == "uq_event_store_stream_id_version":
                raise AppendConflict("version") from e
            raise translate(e) from e
        except psycopg.Error as e:
            raise translate(e) from e
        if not rows:
            raise AppendConflict("version")
        # RETURNING gives rows in no promised order; versions put them back in append order.
        rows.sort(key=_by_version)
        from_json = RecordedEvent.from_json
        return [
            from_json(
                position,
                stream_id,
                version,
                e.event_id,
                e.type,
                e.payload,
                e.metadata,
                recorded_at,
            )
            for (position, version, recorded_at), e in zip(rows, events, strict=True)
        ]

    # -- reads -------------------------------------------------------------------------------

    def _select(self, sql: str, params: Sequence[Any]) -> list[RecordedEvent]:
        with translated():
            rows = self.conn.execute(sql, params, binary=True).fetchall()
        return list(map(RecordedEvent.from_decoded_row, rows))

    def find_events(self, event_ids: Sequence[str]) -> list[RecordedEvent]:
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE event_id = ANY(%b::text[]) "
            "ORDER BY position",
            (list(event_ids),),
        )

    def stream_version(self, stream_id: str) -> int | None:
        with translated():
            row = self.conn.execute(
                "SELECT version FROM stream WHERE stream_id = %s", (stream_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def read_stream(
        self, stream_id: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[RecordedEvent]:
        cmp, order = ("<=", "DESC") if backwards else (">=", "ASC")
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE stream_id = %s AND version {cmp} %s "
            f"ORDER BY version {order} LIMIT %s",
            (stream_id, from_version, limit),
        )

    def read_all(
        self, after: int, limit: int, types: Sequence[str] | None
    ) -> list[RecordedEvent]:
        if types is None:
            return self._select(
                f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > %s "
                "ORDER BY position LIMIT %s",
                (after, limit),
            )
        return self._select(
            f"SELECT {_EVENT_COLUMNS} FROM event_store WHERE position > %s "
            "AND event_type = ANY(%b::text[]) ORDER BY position LIMIT %s",
            (after, list(types), limit),
        )

    def head_position(self) -> int:
        with translated():
            row = self.conn.execute("SELECT max(position) FROM event_store").fetchone()
        return int(row[0] or 0) if row else 0

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: str) -> SnapshotRecord:
        with translated():
            saved = self.conn.execute(
                "INSERT INTO snapshot (stream_id, version, state) VALUES (%s, %s, %s::jsonb) "
                "ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state, "
                "created_at = excluded.created_at RETURNING state, created_at",
                (stream_id, version, state),
            ).fetchone()
        assert saved is not None
        return SnapshotRecord(stream_id, version, saved[0], saved[1])

    def load_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        with translated():
            row = self.conn.execute(
                "SELECT stream_id, version, state, created_at FROM snapshot WHERE stream_id = %s "
                "ORDER BY version DESC LIMIT 1",
                (stream_id,),
            ).fetchone()
        return None if row is None else SnapshotRecord(*row)

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, name: str, for_update: bool) -> int:
        lock = " FOR UPDATE" if for_update else ""
        with translated():
            row = self.conn.execute(
                "SELECT position FROM subscription WHERE name = %s AND deleted_at IS NULL" + lock,
                (name,),
            ).fetchone()
        return 0 if row is None else int(row[0])

    def set_checkpoint(self, name: str, position: int) -> None:
        with translated():
            self.conn.execute(
                "INSERT INTO subscription (name, position) VALUES (%s, %s) "
                "ON CONFLICT (name) WHERE deleted_at IS NULL DO UPDATE SET position = "
                "excluded.position",
                (name, position),
            )

    def delete_checkpoint(self, name: str) -> bool:
        with translated():
            cur = self.conn.execute(
                "UPDATE subscription SET deleted_at = now() WHERE name = %s AND deleted_at IS NULL",
                (name,),
            )
        return cur.rowcount > 0

    # -- projections and tails ---------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a projection's SQL written with ? placeholders, as on SQLite."""
        query = sql.replace("%", "%%").replace("?", "%s")
        with translated():
            cur = self.conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def changes(self, poll_interval: float) -> Iterator[bool]:
        """Yields after each NOTIFY from the event_store_notify trigger, and at least every
        poll_interval seconds, so a tail can stop promptly and a lost wake-up costs at most one
        interval."""
        with translated():
            self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        while True:
            # A quiet interval also counts as a change: re-reading costs one index probe, and
            # it bounds the delay should a notification ever be lost.
            with translated():
                for _ in self.conn.notifies(timeout=poll_interval, stop_after=1):
                    pass
            yield True


def _by_version(row: tuple[Any, ...]) -> int:
    return int(row[1])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
