"""SQLite for asyncio: the sync SQLite backend on a thread of its own.

stdlib sqlite3 has no asynchronous interface, and its calls hold the GIL only between
statements, so an AsyncStore on SQLite runs the sync backend (evstore.dialects.sqlite), one
connection, on a single dedicated thread per database. The event loop never waits on SQLite:
every operation is queued to that thread and awaited.

Tasks take turns, as threads take turns on the sync Store's lock: an operation waits for the
turn (at most lock_timeout, then AppendLockTimeout), and a transaction keeps the turn for its
task until it ends, so no task reads or joins another task's open transaction. Writes are
therefore serialised in the process, and reads wait behind them: async on SQLite buys a
responsive event loop, not parallel statements.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from evstore.dialects.sqlite import SQLiteBackend
from evstore.errors import AppendLockTimeout
from evstore.events import EncodedEvent, Expected, RecordedEvent
from evstore.urls import Dialect

T = TypeVar("T")


class ThreadedBackend:
    """An AsyncBackend over a SQLiteBackend that only its own thread uses."""

    def __init__(self, backend: SQLiteBackend, thread: ThreadPoolExecutor) -> None:
        self.sync = backend
        self.dialect: Dialect = backend.dialect
        self.url = backend.url
        self.queries = backend.queries
        self.conn = backend.conn  # for migrations of an in-memory database
        self.lock_timeout = backend.lock_timeout
        self._thread = thread
        self._turn = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None  # the task whose transaction is open

    @classmethod
    async def open(cls, opener: Callable[[], SQLiteBackend]) -> ThreadedBackend:
        """Open the connection on the thread that will use it."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evstore-sqlite")
        try:
            backend = await asyncio.get_running_loop().run_in_executor(thread, opener)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(backend, thread)

    async def close(self) -> None:
        try:
            await self._in_thread(self.sync.close)
        finally:
            self._thread.shutdown(wait=False)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _take_turn(self) -> None:
        try:
            async with asyncio.timeout(self.lock_timeout):
                await self._turn.acquire()
        except TimeoutError:
            raise AppendLockTimeout(
                "the Store's in-process write lock",
                self.lock_timeout,
                "Another task of this process holds a store.transaction() open; keep "
                "transactions short.",
            ) from None

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn on the database's thread, in this task's turn."""
        if self._owner is not None and self._owner is asyncio.current_task():
            return await self._in_thread(fn, *args)
        await self._take_turn()
        try:
            return await self._in_thread(fn, *args)
        finally:
            self._turn.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A write transaction that keeps the turn for this task; nested: a savepoint."""
        task = asyncio.current_task()
        if self._owner is task:
            async with self._sync_transaction():
                yield
            return
        await self._take_turn()
        self._owner = task
        try:
            async with self._sync_transaction():
                yield
        finally:
            self._owner = None
            self._turn.release()

    @asynccontextmanager
    async def _sync_transaction(self) -> AsyncIterator[None]:
        # The sync backend's transaction, entered and left on the database's thread.
        context = self.sync.transaction()
        await self._in_thread(context.__enter__)
        try:
            yield
        except BaseException as e:
            await self._in_thread(context.__exit__, type(e), e, e.__traceback__)
            raise
        await self._in_thread(context.__exit__, None, None, None)

    @property
    def in_transaction(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    async def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        return await self.blocking(self.sync.rows, sql, params)

    async def events(self, sql: str, params: Any) -> list[RecordedEvent]:
        return await self.blocking(self.sync.events, sql, params)

    async def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        return await self.blocking(self.sync.append, stream_id, events, expected)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self.blocking(self.sync.execute, sql, params)
