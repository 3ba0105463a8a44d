"""evstore for asyncio: `store = await evstore.aio.connect(url)` gives an AsyncStore, the Store
API with every operation a coroutine.

    async with await evstore.aio.connect("postgresql://app@db/app") as store:
        await store.append("order-1", [NewEvent("Placed", {"total": 5})], NO_STREAM)
        async with store.transaction() as tx:
            await tx.append("order-2", [...])
        async for event in store.tail(after=0, idle_timeout=5):
            ...

The logic is the sync Store's own: each method runs the same plan of evstore.plans, and
AsyncDriver awaits each request where Driver (evstore.store) calls it. PostgreSQL runs on
psycopg's AsyncConnection and an AsyncConnectionPool (evstore.dialects.postgres_async), SQLite
on a thread of its own per database (evstore.dialects.threaded). Tasks may share an
AsyncStore; a transaction belongs to the task that opened it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar, Unpack, runtime_checkable

from evstore import groups, plans
from evstore.dialects.base import AsyncBackend, Plan, Request
from evstore.dialects.shared import Queries
from evstore.errors import InvalidInput, StoreClosed
from evstore.events import ANY, Expected, NewEvent, RecordedEvent, Snapshot
from evstore.schema.migrations import MigrationState, Migrator
from evstore.store import Following, Options, Settings
from evstore.urls import DatabaseURL, parse_url

T = TypeVar("T")

__all__ = ["AsyncProjection", "AsyncStore", "AsyncTail", "AsyncTransaction", "connect"]


@runtime_checkable
class AsyncProjection(Protocol):
    """A read model built from the log, for AsyncStore.run_projection and replay. `apply` may
    be a coroutine function or a plain function: its result is awaited when it is awaitable.
    The same holds for an optional `reset(tx)` and for a `progress` callback."""

    name: str

    def apply(self, tx: AsyncTransaction, event: RecordedEvent) -> Awaitable[None] | None: ...


async def connect(
    url: str, *, read_url: str | None = None, **options: Unpack[Options]
) -> AsyncStore:
    """Open an AsyncStore. The URL and the keyword arguments are evstore.connect's
    (migrations_dir, lock_timeout, pool_size, schema, app_migrations_dir); pool_size: on
    PostgreSQL, the most connections that tasks sharing this store use at once. read_url is
    the sync Store's only: an AsyncStore reads from and writes to one server."""
    if read_url is not None:
        raise InvalidInput(
            "evstore.aio.connect does not take read_url yet: an AsyncStore reads and writes on "
            "one server. Use the sync evstore.connect(url, read_url=...) to read from a "
            "standby, or leave read_url out to read from the primary"
        )
    store = AsyncStore(parse_url(url), **options)
    store._backend = await open_backend(store.url, store.lock_timeout, store.pool_size,
                                        store.schema)
    store._q = store._backend.queries  # type: ignore[attr-defined]
    return store


async def open_backend(
    url: DatabaseURL, lock_timeout: float, pool_size: int = 1, schema: str | None = None
) -> AsyncBackend:
    if url.dialect == "sqlite":
        from evstore.dialects.sqlite import SQLiteBackend
        from evstore.dialects.threaded import ThreadedBackend

        return await ThreadedBackend.open(lambda: SQLiteBackend(url, lock_timeout=lock_timeout))
    from evstore.dialects.postgres_async import AsyncPostgresBackend

    return await AsyncPostgresBackend.open(
        url, lock_timeout=lock_timeout, pool_size=pool_size, schema=schema
    )


class AsyncTransaction:
    """Several appends (and a projection's own writes) committed together or not at all.

    A transaction belongs to the task that opened it; using it from another task (one that
    asyncio.gather or create_task started, too) raises InvalidInput rather than writing
    outside it."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._task = asyncio.current_task()

    def _check_task(self) -> None:
        if asyncio.current_task() is not self._task:
            raise InvalidInput(
                "a store.transaction() belongs to the task that opened it; open a "
                "transaction in each task instead of passing one between tasks"
            )

    @property
    def dialect(self) -> str:
        return self._store.dialect

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected = ANY
    ) -> list[RecordedEvent]:
        self._check_task()
        return await self._store.append(stream_id, events, expected_version)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL in this transaction, with ? placeholders on both dialects."""
        self._check_task()
        return await self._store.execute(sql, params)

    async def read_stream(
        self, stream_id: str, from_version: int | None = None, limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        self._check_task()
        return await self._store.read_stream(stream_id, from_version, limit, backwards)

    async def stream_version(self, stream_id: str) -> int | None:
        self._check_task()
        return await self._store.stream_version(stream_id)

    async def checkpoint(self, name: str) -> int:
        """The named checkpoint as this transaction sees it (0 if none)."""
        self._check_task()
        return await self._store.checkpoint(name)

    async def save_checkpoint(
        self, name: str, position: int, expected: int | None = None
    ) -> None:
        """store.save_checkpoint in this transaction: it commits or rolls back with it."""
        self._check_task()
        await self._store.save_checkpoint(name, position, expected)


class AsyncStore(Settings):
    """An event store on one database, for asyncio. Every method of evstore.Store, as a
    coroutine (tail and iter_all: async iterators); see Store for what each one does."""

    _backend: AsyncBackend | None = None
    _q: Queries
    _leases: groups.Leases | None = None  # consumer-group members this store holds

    def __repr__(self) -> str:
        return f"<evstore.aio.AsyncStore {self.url.redacted}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._backend is not None:
            if self._leases is not None:
                await self._run(self._leases.releasing_all(self._q))
            backend, self._backend = self._backend, None
            await backend.close()

    def _live(self) -> AsyncBackend:
        if self._backend is None:
            raise StoreClosed()
        return self._backend

    async def _run(self, plan: Plan[T]) -> T:
        return await AsyncDriver(self, self._live()).run(plan)

    # -- migrations (yoyo is blocking: on SQLite's thread, or a worker thread) ----------------

    async def _migrate(self, work: Callable[[Migrator], T]) -> T:
        backend = self._live()
        blocking: Any = backend.blocking  # type: ignore[attr-defined]
        result: T = await blocking(self._with_migrator, getattr(backend, "conn", None), work)
        return result

    async def migrate(self, lock_timeout: float = 10) -> list[str]:
        return await self._migrate(lambda m: m.apply(lock_timeout=lock_timeout))

    async def rollback(
        self, to: str | None = None, *, count: int | None = None, lock_timeout: float = 10
    ) -> list[str]:
        return await self._migrate(
            lambda m: m.rollback(to=to, count=count, lock_timeout=lock_timeout)
        )

    async def status(self) -> list[MigrationState]:
        return await self._migrate(Migrator.status)

    async def break_lock(self) -> None:
        await self._migrate(Migrator.break_lock)

    # -- writing -----------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncTransaction]:
        """`async with store.transaction() as tx:` commits on success, rolls back on any
        error (cancellation too)."""
        async with self._live().transaction():
            yield AsyncTransaction(self)

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: Expected = ANY
    ) -> list[RecordedEvent]:
        return await self._run(plans.append(self._q, stream_id, events, expected_version))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._live().execute(sql, params)

    async def run_query(self, name: str, **params: Any) -> list[tuple[Any, ...]]:
        return await self._run(plans.run_query(self._q, name, params))

    # -- reading -----------------------------------------------------------------------------

    async def get_event(self, event_id: str) -> RecordedEvent | None:
        return await self._run(plans.get_event(self._q, event_id))

    async def stream_version(self, stream_id: str) -> int | None:
        return await self._run(plans.stream_version(self._q, stream_id))

    async def read_stream(
        self, stream_id: str, from_version: int | None = None, limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        plan = plans.read_stream(self._q, stream_id, from_version, limit, backwards)
        return await self._run(plan)

    async def read_all(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        return await self._run(plans.read_all(self._q, after, limit, types))

    def iter_all(
        self, after: int = 0, types: Sequence[str] | None = None, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        """`async for event in store.iter_all():` every event, read page by page."""
        driver = AsyncDriver(self, self._live())
        return driver.each(plans.iter_all(self._q, after, types, page_size))

    async def head_position(self) -> int:
        return await self._run(plans.head_position(self._q))

    def tail(
        self, after: int = 0, types: Sequence[str] | None = None, *,
        group_member: int | None = None, group_size: int | None = None,
        poll_interval: float | None = None, idle_timeout: float | None = None,
        page_size: int = 500, reconnect_attempts: int = 10,
    ) -> AsyncTail:
        """`async for event in store.tail(...)`: Store.tail's guarantees, as an async
        iterator. Its waits are asyncio waits; stop() ends it from another task."""
        group = groups.check_member(group_member, group_size)
        stopped = asyncio.Event()
        state = plans.tail_state(
            self.dialect, self.url.is_memory, stopped.is_set, after, types, poll_interval,
            idle_timeout, page_size, reconnect_attempts,
        )
        backend = self._live()
        url, timeout, schema = self.url, self.lock_timeout, self.schema

        async def opener() -> AsyncBackend:
            return backend if state.shared else await open_backend(url, timeout, 1, schema)

        tail = AsyncTail(AsyncTailDriver(self, opener, stopped), plans.tail(self._q, state),
                         state)
        if group is not None:
            tail._owns = groups.Membership(*group).owns
        return tail

    # -- projections -------------------------------------------------------------------------

    async def run_projection(
        self, projection: AsyncProjection | Any, *, group_member: int | None = None,
        group_size: int | None = None, batch_size: int = 500,
        progress: Callable[[int], Any] | None = None,
    ) -> int:
        group = groups.check_member(group_member, group_size)
        plan = plans.project(self._q, projection, batch_size, progress, group,
                             self._group_leases)
        return await self._run(plan)

    async def replay(
        self, projection: AsyncProjection | Any, *, batch_size: int = 500,
        progress: Callable[[int], Any] | None = None, atomic: bool = True,
    ) -> int:
        plan = plans.replay(self._q, projection, batch_size, progress, atomic)
        return await self._run(plan)

    async def checkpoint(self, name: str) -> int:
        return await self._run(plans.checkpoint(self._q, name))

    async def save_checkpoint(
        self, name: str, position: int, expected: int | None = None
    ) -> None:
        await self._run(plans.save_checkpoint(self._q, name, position, expected))

    async def delete_subscription(self, name: str) -> bool:
        return await self._run(plans.delete_subscription(self._q, name))

    # -- consumer groups ---------------------------------------------------------------------

    def _group_leases(self) -> groups.Leases:
        if self._leases is None:
            self._leases = groups.Leases()
        return self._leases

    async def group_status(self, name: str) -> list[groups.MemberState]:
        return await self._run(groups.group_status(self._q, name))

    async def reset_group(self, group: str | AsyncProjection | Any) -> list[groups.MemberState]:
        name, reset = (group, None) if isinstance(group, str) else (
            group.name, getattr(group, "reset", None))
        return await self._run(groups.reset_group(self._q, self._group_leases(), name, reset))

    # -- snapshots ---------------------------------------------------------------------------

    async def save_snapshot(self, stream_id: str, version: int, state: Any) -> Snapshot:
        return await self._run(plans.save_snapshot(self._q, stream_id, version, state))

    async def load_snapshot(
        self, stream_id: str, version: int | None = None
    ) -> Snapshot | None:
        return await self._run(plans.load_snapshot(self._q, stream_id, version))


async def _settle(result: Any) -> Any:
    """A caller's function may be a coroutine function or a plain one."""
    return await result if inspect.isawaitable(result) else result


class AsyncDriver:
    """Runs a plan (evstore.plans) on an async backend: each request is an awaited call of the
    backend's method of that name, or a step of the driver's own (evstore.store.Driver is
    its sync twin)."""

    OWN: ClassVar[frozenset[str]] = frozenset({"transaction", "apply", "callback"})

    def __init__(
        self, store: AsyncStore, backend: AsyncBackend, tx: AsyncTransaction | None = None
    ) -> None:
        self.store = store
        self.backend = backend
        self.tx = tx

    async def run(self, plan: Plan[T]) -> T:
        done, value = await self.advance(plan)
        assert done, "a plan that returns a result delivered an item"
        return value  # type: ignore[no-any-return]

    async def each(self, plan: plans.Feed) -> AsyncGenerator[Any, None]:
        try:
            while True:
                done, item = await self.advance(plan)
                if done:
                    return
                yield item
        finally:
            plan.close()

    async def advance(self, plan: Generator[Request, Any, Any]) -> tuple[bool, Any]:
        value, error = None, None
        while True:
            name, args = plans.next_request(plan, value, error)
            if name in plans.ENDS:
                return name == "return", args[0]
            target = self if name in self.OWN else self.backend
            try:
                value, error = await getattr(target, name)(*args), None
            except Exception as e:
                value, error = None, e

    async def transaction(self, plan: Plan[T]) -> T:
        async with self.backend.transaction():
            return await AsyncDriver(self.store, self.backend, AsyncTransaction(self.store)).run(
                plan
            )

    async def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await _settle(fn(self.tx, *args))

    async def callback(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await _settle(fn(*args))


class AsyncTailDriver(AsyncDriver):
    """A tail's driver: its backend is opened on first need and reopened after a failure."""

    OWN = AsyncDriver.OWN | {"connect", "disconnect", "wait"}

    def __init__(
        self, store: AsyncStore, opener: Callable[[], Awaitable[AsyncBackend]],
        stopped: asyncio.Event,
    ) -> None:
        super().__init__(store, store._live())  # replaced by the tail's own at "connect"
        self.opener = opener
        self.stopped = stopped
        self.current: AsyncBackend | None = None

    async def connect(self) -> None:
        if self.current is None:
            self.current = await self.opener()
        self.backend = self.current

    async def disconnect(self) -> None:
        if self.current is not None and self.current is not self.store._backend:
            with contextlib.suppress(Exception):  # the connection is already gone
                await self.current.close()
        self.current = None

    async def wait(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopped.wait()
        return self.stopped.is_set()


class AsyncTail(Following):
    """An async iterator over committed events; stop() or idle_timeout ends it.

    `position` is the position of the last event delivered: a new tail with after=position
    continues exactly where this one stopped. Close it with `await tail.aclose()`, or use
    `async with store.tail(...) as tail:`. A consumer-group member's tail delivers only its
    streams' events; its position still advances over the others' (as Store's MemberTail)."""

    _owns: Callable[[RecordedEvent], bool] | None = None

    def __init__(
        self, driver: AsyncTailDriver, plan: plans.Feed, state: plans.TailState
    ) -> None:
        super().__init__(driver, state)
        self._iterator = self._run(plan)

    async def _run(self, plan: plans.Feed) -> AsyncGenerator[RecordedEvent, None]:
        events = self._driver.each(plan)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()
            await self._driver.disconnect()

    def __aiter__(self) -> AsyncTail:
        return self

    async def __anext__(self) -> RecordedEvent:
        async for event in self._iterator:
            if self._owns is None or self._owns(event):
                return event
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.stop()
        await self._iterator.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
