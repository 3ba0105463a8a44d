"""The event store: evstore.connect(url) returns a Store for either dialect."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypedDict, TypeVar, runtime_checkable

from evstore import groups, plans
from evstore.dialects.base import Backend, Plan, Request
from evstore.errors import InvalidInput, StoreClosed
from evstore.events import ANY, Expected, NewEvent, RecordedEvent, Snapshot
from evstore.plans import MAX_INT, check_int
from evstore.routing import Routing, in_recovery, queries_for
from evstore.schema.migrations import MigrationState, Migrator, default_dir
from evstore.urls import DatabaseURL, parse_url

T = TypeVar("T")


@runtime_checkable
class Projection(Protocol):
    """A read model built from the log. `apply` writes through `tx`; events of types it does
    not know should simply be ignored. An optional `reset(tx)` clears its state for replay."""

    name: str

    def apply(self, tx: Transaction, event: RecordedEvent) -> None: ...


DEFAULT_LOCK_TIMEOUT = 5.0  # seconds an append waits for the append lock
DEFAULT_READ_WAIT_TIMEOUT = 5.0  # seconds a read waits for the read server to catch up


class Options(TypedDict, total=False):
    """connect()'s keyword arguments, for evstore.aio.connect to take the same."""

    migrations_dir: str | Path | None
    lock_timeout: float
    pool_size: int
    schema: str | None
    app_migrations_dir: str | Path | Mapping[str, str | Path] | None

__all__ = ["MAX_INT", "Projection", "Store", "Tail", "Transaction", "connect"]


def connect(
    url: str,
    *,
    migrations_dir: str | Path | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    pool_size: int = 8,
    schema: str | None = None,
    app_migrations_dir: str | Path | Mapping[str, str | Path] | None = None,
    read_url: str | None = None,
    read_wait_timeout: float = DEFAULT_READ_WAIT_TIMEOUT,
) -> Store:
    """Open a store. The dialect comes from the URL scheme:
    sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory:, postgresql://...

    lock_timeout: the longest an append (and, on SQLite, any write) waits for the append lock
    before it raises AppendLockTimeout. pool_size: on PostgreSQL, the most connections that
    threads sharing this Store use at once. schema: on PostgreSQL, the schema that holds the
    store (and yoyo's tables); without it, the first schema of the URL's search_path.
    app_migrations_dir: the application's own migrations, applied by migrate() after evstore's
    in the same yoyo run; one folder, or {"postgres": ..., "sqlite": ...} to pick by dialect.

    A URL of a PostgreSQL hot standby opens a read-only store: reads and tails work (a tail
    polls there), every write raises ReadOnlyStore. read_url: on PostgreSQL, a server (a hot
    standby) that serves this Store's reads and tails while `url` takes its writes; a read that
    follows this Store's own append waits until the read server has it, at most
    read_wait_timeout seconds, then raises ReplicaLagTimeout (evstore/routing.py says which
    operation goes where)."""
    return Store(
        parse_url(url),
        migrations_dir=migrations_dir,
        lock_timeout=lock_timeout,
        pool_size=pool_size,
        schema=schema,
        app_migrations_dir=app_migrations_dir,
        read_url=parse_url(read_url) if read_url is not None else None,
        read_wait_timeout=read_wait_timeout,
    )


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema(schema: object, dialect: str) -> str | None:
    """A PostgreSQL schema name: lower case letters, digits and _, at most 63, so that it
    means the same quoted and unquoted, in a search_path and in SQL."""
    if schema is None:
        return None
    if dialect != "postgres":
        raise InvalidInput(
            f"schema={schema!r}: schemas exist only on PostgreSQL; a SQLite store is one file"
        )
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidInput(
            f"schema {schema!r} is not a plain PostgreSQL name; use 1 to 63 lower-case "
            "letters, digits and _, not starting with a digit"
        )
    return schema


def open_backend(
    url: DatabaseURL, lock_timeout: float, pool_size: int = 1, schema: str | None = None
) -> Backend:
    if url.dialect == "sqlite":
        from evstore.dialects.sqlite import SQLiteBackend

        return SQLiteBackend(url, lock_timeout=lock_timeout)
    from evstore.dialects.postgres import PostgresBackend

    return PostgresBackend(url, lock_timeout=lock_timeout, pool_size=pool_size, schema=schema)


class Transaction:
    """Several appends (and a projection's own writes) committed together or not at all.

    A transaction belongs to the thread that opened it; using it from another thread raises
    InvalidInput rather than writing outside it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._thread = threading.get_ident()

    def _check_thread(self) -> None:
        if threading.get_ident() != self._thread:
            raise InvalidInput(
                "a store.transaction() belongs to the thread that opened it; open a "
                "transaction in each thread instead of passing one between threads"
            )

    @property
    def dialect(self) -> str:
        return self._store.dialect

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected = ANY
    ) -> list[RecordedEvent]:
        self._check_thread()
        return self._store.append(stream_id, events, expected_version)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL in this transaction, with ? placeholders on both dialects."""
        self._check_thread()
        return self._store._live().execute(sql, params)

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        self._check_thread()
        return self._store.read_stream(stream_id, from_version, limit, backwards)

    def stream_version(self, stream_id: str) -> int | None:
        self._check_thread()
        return self._store.stream_version(stream_id)

    def checkpoint(self, name: str) -> int:
        """The named checkpoint as this transaction sees it (0 if none)."""
        self._check_thread()
        return self._store.checkpoint(name)

    def save_checkpoint(self, name: str, position: int, expected: int | None = None) -> None:
        """store.save_checkpoint in this transaction: it commits or rolls back with it."""
        self._check_thread()
        self._store.save_checkpoint(name, position, expected)


class Settings:
    """What a Store and an AsyncStore are opened with, checked: everything but the
    connection."""

    def __init__(
        self,
        url: DatabaseURL,
        *,
        migrations_dir: str | Path | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        pool_size: int = 8,
        schema: str | None = None,
        app_migrations_dir: str | Path | Mapping[str, str | Path] | None = None,
        read_url: DatabaseURL | None = None,
        read_wait_timeout: float = DEFAULT_READ_WAIT_TIMEOUT,
    ) -> None:
        self.schema = check_schema(schema, url.dialect)
        if isinstance(app_migrations_dir, Mapping):
            app_migrations_dir = app_migrations_dir.get(url.dialect)
        self.app_migrations_dir = (
            Path(app_migrations_dir) if app_migrations_dir is not None else None
        )
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float) or not (
            0 < lock_timeout <= 86400
        ):
            raise InvalidInput(
                f"lock_timeout must be a number of seconds above 0 and at most 86400, not "
                f"{lock_timeout!r}"
            )
        check_int(pool_size, "pool_size", 1)
        check_seconds(read_wait_timeout, "read_wait_timeout")
        if read_url is not None and (url.dialect != "postgres" or read_url.dialect != "postgres"):
            raise InvalidInput(
                "read_url names a PostgreSQL server (a hot standby) for the reads of a "
                "PostgreSQL store; a SQLite store reads its own file"
            )
        self.pool_size = pool_size
        self.url = url
        self.read_url = read_url
        self.read_wait_timeout = float(read_wait_timeout)
        self.dialect = url.dialect
        self.lock_timeout = float(lock_timeout)
        self.migrations_dir = (
            Path(migrations_dir) if migrations_dir is not None else default_dir(url.dialect)
        )
        self._setup()

    def _setup(self) -> None:
        """What a subclass does once the settings hold (Store: open the backend)."""

    def _with_migrator(self, connection: Any, work: Callable[[Migrator], T]) -> T:
        """Run `work` with a yoyo migrator for this store; `connection` is the in-memory
        database's only connection, which the migrations must use (None otherwise)."""
        folders = [self.migrations_dir]
        if self.app_migrations_dir is not None:
            folders.append(self.app_migrations_dir)
        shared = connection if self.url.is_memory else None
        migrator = Migrator(self.url, folders, sqlite_connection=shared, schema=self.schema)
        try:
            return work(migrator)
        finally:
            migrator.close()


class Store(Settings):
    """An event store on one database. Threads may share a Store: on PostgreSQL each
    operation and each transaction gets a connection of its own from a pool; on SQLite
    operations take turns on one connection. A transaction belongs to its thread.

    Each method checks its arguments and runs a plan of evstore.plans, the logic it shares
    with evstore.aio.AsyncStore."""

    def _setup(self) -> None:
        self._backend: Backend | None = open_backend(
            self.url, self.lock_timeout, self.pool_size, self.schema
        )
        reader = None
        if self.read_url is not None:
            try:
                reader = open_backend(self.read_url, self.lock_timeout, self.pool_size,
                                      self.schema)
            except BaseException:
                self._backend.close()
                raise
        # Writes run on the Store's own server, reads on the one Routing picks (evstore.routing).
        self._routing: Routing | None = Routing(self._backend, reader, self.read_wait_timeout)
        self._q = queries_for(self._backend)
        self._driver = Driver(self, self._backend)  # holds no state of a call: shared
        self._read_driver = Driver(self, reader) if reader is not None else self._driver
        self._leases: groups.Leases | None = None  # consumer-group members this Store holds

    # -- lifecycle ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        reads = f" reading from {self.read_url.redacted}" if self.read_url else ""
        return f"<evstore.Store {self.url.redacted}{reads}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._routing is not None:
            self._routing.close()
            self._routing = None
        if self._backend is not None:
            if self._leases is not None:
                self._run(self._leases.releasing_all(self._q))
            self._backend.close()
            self._backend = None

    def _live(self) -> Backend:
        if self._backend is None:
            raise StoreClosed()
        return self._backend

    def _route(self) -> Routing:
        if self._routing is None:
            raise StoreClosed()
        return self._routing

    def _run(self, plan: Plan[T]) -> T:
        self._live()
        return self._driver.run(plan)

    def _write(self, operation: str, plan: Plan[T]) -> T:
        """A write plan, on the Store's own server; ReadOnlyStore when it is a standby."""
        try:
            self._route().writable(operation)
        except BaseException:
            plan.close()
            raise
        return self._driver.run(plan)

    def _reading(self) -> Driver:
        """The driver of the read server: the read_url's once it has this Store's own appends
        (inside this thread's transaction, the Store's own, which sees what it wrote)."""
        backend = self._route().readable()
        return self._driver if backend is self._backend else self._read_driver

    def _read(self, plan: Plan[T]) -> T:
        try:
            driver = self._reading()
        except BaseException:
            plan.close()
            raise
        return driver.run(plan)

    @property
    def read_only(self) -> bool:
        """Whether this Store's server is a hot standby, which refuses every write."""
        return in_recovery(self._live())

    def wait_for_position(self, position: int, timeout: float | None = None) -> bool:
        """Wait until the server this Store reads from (its read_url, else its own) shows
        `position`, at most `timeout` seconds (default: read_wait_timeout). Returns whether it
        does: a position read on the primary can then be read on the standby."""
        check_int(position, "position", 0)
        routing = self._route()
        if timeout is None:
            timeout = routing.read_wait_timeout
        check_seconds(timeout, "timeout")
        return routing.wait_for_position(position, float(timeout))

    # -- migrations --------------------------------------------------------------------------

    def _migrate(self, work: Callable[[Migrator], T]) -> T:
        return self._with_migrator(getattr(self._live(), "conn", None), work)

    def migrate(self, lock_timeout: float = 10) -> list[str]:
        """Apply pending migrations through yoyo; returns the ids applied."""
        self._route().writable("migrate")
        return self._migrate(lambda m: m.apply(lock_timeout=lock_timeout))

    def rollback(
        self, to: str | None = None, *, count: int | None = None, lock_timeout: float = 10
    ) -> list[str]:
        """Undo the last migration, `count` of them, or every one after `to` ("base": all)."""
        self._route().writable("rollback")
        return self._migrate(lambda m: m.rollback(to=to, count=count, lock_timeout=lock_timeout))

    def status(self) -> list[MigrationState]:
        """Every migration of the folder, applied or pending, with its checksum state."""
        return self._migrate(Migrator.status)

    def break_lock(self) -> None:
        self._route().writable("break_lock")
        self._migrate(Migrator.break_lock)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """`with store.transaction() as tx:` commits on success, rolls back on any error."""
        routing = self._route()
        with routing.transaction(), routing.writable("a transaction").transaction():
            yield Transaction(self)

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: Expected = ANY,
    ) -> list[RecordedEvent]:
        """Append events to a stream atomically, checking its expected version.

        Appending the same event ids at the same versions again returns the stored records.
        """
        recorded = self._write("append", plans.append(self._q, stream_id, events,
                                                     expected_version))
        self._route().appended(recorded)
        return recorded

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL with ? placeholders on either dialect (read models, ad-hoc queries)."""
        return self._live().execute(sql, params)

    def run_query(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run one of evstore's own named statements (sql/queries/<dialect>.sql), for its
        tools: verify, the command line."""
        return self._run(plans.run_query(self._q, name, params))  # the primary: see routing

    # -- reading -----------------------------------------------------------------------------

    def get_event(self, event_id: str) -> RecordedEvent | None:
        """The event with this id, or None."""
        return self._read(plans.get_event(self._q, event_id))

    def stream_version(self, stream_id: str) -> int | None:
        """The stream's current version, or None when it has no events."""
        return self._read(plans.stream_version(self._q, stream_id))

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events, oldest first from `from_version` (default: the first, version 0
        or 1); backwards=True gives them newest first, down from `from_version` (default: the
        stream's last event), so read_stream(s, backwards=True, limit=2) is the last two
        events, newest first."""
        return self._read(plans.read_stream(self._q, stream_id, from_version, limit, backwards))

    def read_all(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """Up to `limit` events with position > `after`, in global order."""
        return self._read(plans.read_all(self._q, after, limit, types))

    def iter_all(
        self, after: int = 0, types: Sequence[str] | None = None, page_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """Every event after `after` in global order, read page by page (flat memory)."""
        yield from self._reading().each(plans.iter_all(self._q, after, types, page_size))

    def head_position(self) -> int:
        """The highest committed position, 0 for an empty log."""
        return self._read(plans.head_position(self._q))

    def tail(
        self,
        after: int = 0,
        types: Sequence[str] | None = None,
        *,
        group_member: int | None = None,
        group_size: int | None = None,
        poll_interval: float | None = None,
        idle_timeout: float | None = None,
        page_size: int = 500,
        reconnect_attempts: int = 10,
    ) -> Tail:
        """Iterate over events as they commit, forever or until stopped.

        Never skips or repeats an event. PostgreSQL wakes on LISTEN/NOTIFY; SQLite polls
        PRAGMA data_version every poll_interval seconds. idle_timeout ends the iteration after
        that many seconds without a new event; tail.stop() ends it from another thread. When
        the connection drops, the tail reconnects with bounded backoff (0.1 s doubling to 5 s)
        and resumes after the last event it delivered; after reconnect_attempts failures in a
        row it raises ConnectionFailed naming the position to resume from.

        group_member=i, group_size=n: only the streams that member i of a group of n owns
        (evstore.groups); a tail claims no lease, since it keeps no checkpoint.
        """
        group = groups.check_member(group_member, group_size)
        stopped = threading.Event()
        backend = self._live()
        reads = self._route().reader or backend
        # LISTEN wakes a PostgreSQL tail; SQLite and a standby (no LISTEN there) poll.
        if poll_interval is None and in_recovery(reads):
            poll_interval = 0.05
        state = plans.tail_state(self.dialect, self.url.is_memory, stopped.is_set, after,
                                 types, poll_interval, idle_timeout, page_size,
                                 reconnect_attempts)
        url, timeout, schema = self.read_url or self.url, self.lock_timeout, self.schema

        def opener() -> Backend:
            return backend if state.shared else open_backend(url, timeout, 1, schema)

        driver, plan = TailDriver(self, opener, stopped), plans.tail(queries_for(reads), state)
        if group is not None:
            return MemberTail(driver, plan, state, member=group[0], size=group[1])
        return Tail(driver, plan, state)

    # -- projections -------------------------------------------------------------------------

    def run_projection(
        self,
        projection: Projection,
        *,
        group_member: int | None = None,
        group_size: int | None = None,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply every event after the projection's checkpoint, batch by batch. Each batch,
        its writes and the advanced checkpoint commit in one transaction, so effects happen
        exactly once even across crashes. Returns the number of events applied.

        group_member=i, group_size=n: run member i of a group of n (evstore.groups): only its
        streams, its own checkpoint, and a lease that refuses a second process on the same
        member or a changed group size."""
        group = groups.check_member(group_member, group_size)
        return self._write("run_projection", plans.project(
            self._q, projection, batch_size, progress, group, self._group_leases))

    def replay(
        self,
        projection: Projection,
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        atomic: bool = True,
    ) -> int:
        """Reset a projection (its `reset(tx)`, and its checkpoint to 0) and rebuild it.

        atomic=True (the default) resets and rebuilds in one transaction: readers see the old
        view until the new one commits, and a replay that raises leaves the old view and its
        checkpoint exactly as they were. Events that commit during the replay are applied
        afterwards by run_projection. On SQLite that transaction holds the write lock for the
        whole replay (see README, "Replay"); atomic=False commits batch by batch instead, as
        run_projection does, and leaves a partly built view if it fails."""
        return self._write("replay",
                           plans.replay(self._q, projection, batch_size, progress, atomic))

    # -- consumer groups ---------------------------------------------------------------------

    def _group_leases(self) -> groups.Leases:
        if self._leases is None:
            self._leases = groups.Leases()
        return self._leases

    def group_status(self, name: str) -> list[groups.MemberState]:
        """Each member of the consumer group NAME with a checkpoint or a lease row."""
        return self._run(groups.group_status(self._q, name))

    def reset_group(self, group: str | Projection) -> list[groups.MemberState]:
        """Forget every checkpoint of a consumer group (the plain one and each member's, of
        any size) and its leases, so that it can start again with another size. Given a
        projection, its reset(tx) runs in the same transaction. Refused while another process
        holds a member. Returns the members as they were."""
        name, reset = (group, None) if isinstance(group, str) else (
            group.name, getattr(group, "reset", None))
        return self._write("reset_group",
                           groups.reset_group(self._q, self._group_leases(), name, reset))

    def checkpoint(self, name: str) -> int:
        """The position a named subscription or projection has processed up to (0 if none)."""
        return self._run(plans.checkpoint(self._q, name))

    def save_checkpoint(self, name: str, position: int, expected: int | None = None) -> None:
        """Record the position a named subscription has processed. With `expected`, a
        compare-and-set: it is saved only if the checkpoint is at `expected` (a missing one
        counts as 0), else CheckpointConflict. Inside store.transaction(), tx.save_checkpoint
        commits with the transaction's appends and writes."""
        self._write("save_checkpoint",
                    plans.save_checkpoint(self._q, name, position, expected))

    def delete_subscription(self, name: str) -> bool:
        """Soft-delete a subscription (its row keeps deleted_at); True if one was active."""
        return self._write("delete_subscription", plans.delete_subscription(self._q, name))

    # -- snapshots ---------------------------------------------------------------------------

    def save_snapshot(self, stream_id: str, version: int, state: Any) -> Snapshot:
        """Save the state of a stream as of `version` (which must exist). The state is a
        JSON value, or bytes (stored as {"$bytes": "<base64>"}, loaded as bytes)."""
        return self._write("save_snapshot",
                           plans.save_snapshot(self._q, stream_id, version, state))

    def load_snapshot(self, stream_id: str, version: int | None = None) -> Snapshot | None:
        """The stream's latest snapshot, or with `version` its latest at or below that
        version (to rebuild the state as of a version); None if there is none."""
        return self._read(plans.load_snapshot(self._q, stream_id, version))


def check_seconds(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        0 <= value <= 86400
    ):
        raise InvalidInput(
            f"{what} must be a number of seconds from 0 to 86400, not {value!r}"
        )


class Driver:
    """Runs a plan (evstore.plans) on a sync backend: each request is a call of the
    backend's method of that name, or a step of the driver's own."""

    def __init__(self, store: Store, backend: Backend, tx: Transaction | None = None) -> None:
        self.store = store
        self.backend = backend
        self.tx = tx

    def run(self, plan: Plan[T]) -> T:
        done, value = self.advance(plan)
        assert done, "a plan that returns a result delivered an item"
        return value  # type: ignore[no-any-return]

    def each(self, plan: plans.Feed) -> Iterator[Any]:
        """The items the plan delivers, as an iterator."""
        try:
            while True:
                done, item = self.advance(plan)
                if done:
                    return
                yield item
        finally:
            plan.close()

    def advance(self, plan: Generator[Request, Any, Any]) -> tuple[bool, Any]:
        """Run the plan until it ends, (True, its result), or delivers, (False, the item)."""
        value, error = None, None
        while True:
            name, args = plans.next_request(plan, value, error)
            if name in plans.ENDS:
                return name == "return", args[0]
            method = getattr(self if name in self.OWN else self.backend, name)
            try:
                value, error = method(*args), None
            except Exception as e:
                value, error = None, e

    def transaction(self, plan: Plan[T]) -> T:
        with self.store._route().transaction(), self.backend.transaction():
            return Driver(self.store, self.backend, Transaction(self.store)).run(plan)

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.tx, *args)

    def callback(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    OWN: ClassVar[frozenset[str]] = frozenset({"transaction", "apply", "callback"})


class TailDriver(Driver):
    """A tail's driver: its backend is opened on first need and reopened after a failure."""

    def __init__(
        self, store: Store, opener: Callable[[], Backend], stopped: threading.Event
    ) -> None:
        self.opener = opener
        self.stopped = stopped
        self.current: Backend | None = None
        super().__init__(store, store._live())  # replaced by the tail's own at "connect"

    def connect(self) -> None:
        if self.current is None:
            self.current = self.opener()
        self.backend = self.current

    def disconnect(self) -> None:
        if self.current is not None and self.current is not self.store._backend:
            try:
                self.current.close()
            except Exception:  # the connection is already gone; nothing to release
                pass
        self.current = None

    def wait(self, seconds: float) -> bool:
        return self.stopped.wait(seconds)

    OWN = Driver.OWN | {"connect", "disconnect", "wait"}


class Following:
    """What a Tail and an AsyncTail share: their progress, and stop()."""

    def __init__(self, driver: Any, state: plans.TailState) -> None:
        self._driver = driver
        self._state = state

    @property
    def position(self) -> int:
        """The position of the last event delivered."""
        return self._state.position

    def stop(self) -> None:
        self._driver.stopped.set()


class Tail(Following):
    """An iterator over committed events; stop() (from any thread) or idle_timeout ends it.

    `position` is the position of the last event delivered: a new tail with after=position
    continues exactly where this one stopped."""

    def __init__(self, driver: TailDriver, plan: plans.Feed, state: plans.TailState) -> None:
        super().__init__(driver, state)
        self._iterator = self._run(plan)

    def _run(self, plan: plans.Feed) -> Iterator[RecordedEvent]:
        try:
            yield from self._driver.each(plan)
        finally:
            self._driver.disconnect()

    def __iter__(self) -> Tail:
        return self

    def __next__(self) -> RecordedEvent:
        return next(self._iterator)

    def close(self) -> None:
        self.stop()
        self._iterator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemberTail(Tail):
    """A tail of one consumer-group member's streams (evstore.groups). `position` still
    advances over the other members' events, so a tail resumed from it does not read them
    again; idle_timeout counts time without any new event in the log."""

    def __init__(self, driver: TailDriver, plan: plans.Feed, state: plans.TailState, *,
                 member: int, size: int) -> None:
        super().__init__(driver, plan, state)
        self._owns = groups.Membership(member, size).owns

    def __next__(self) -> RecordedEvent:
        owns = self._owns
        for event in self._iterator:
            if owns(event):
                return event
        raise StopIteration
