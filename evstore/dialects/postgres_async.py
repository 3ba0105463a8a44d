"""PostgreSQL for asyncio: psycopg's AsyncConnection, with psycopg_pool's AsyncConnectionPool.

The statements, their parameters, the error translation and the append's records are those of
the sync backend (evstore.dialects.postgres); this module only runs them with await.

Tasks: an AsyncStore may be shared by tasks. Each operation borrows a connection: the store's
first connection when it is free, otherwise one from an AsyncConnectionPool opened on first
need. A transaction keeps its connection, bound to its task, until it ends, so one task's
rollback never takes another task's append with it. A tail opens a backend of its own, whose
connection LISTENs and does nothing else meanwhile: psycopg serialises the operations of one
connection, and a connection waiting for notifications would hold up every other operation
(psycopg #340).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from evstore.dialects.postgres import (
    APPEND_SQL,
    POOL_WAIT,
    QUERIES,
    SQL,
    append_failure,
    append_params,
    append_records,
    cannot_connect,
    connect_args,
    ours,
    pool_args,
    pool_exhausted,
    translated,
    with_placeholders,
)
from evstore.events import EncodedEvent, Expected, RecordedEvent, decode_json
from evstore.urls import DatabaseURL, Dialect

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]


async def _configure(conn: Connection) -> None:
    set_json_loads(decode_json, conn)


class AsyncPostgresBackend:
    dialect: Dialect = "postgres"
    queries = QUERIES

    def __init__(
        self, url: DatabaseURL, conn: Connection, schema: str | None, lock_timeout: float,
        pool_size: int, connect: dict[str, Any],
    ) -> None:
        self.url = url
        self.conn = conn
        self.schema = schema  # named, or the first of the URL's search_path
        self.lock_timeout = lock_timeout
        self._lock_timeout_ms = max(int(lock_timeout * 1000), 1)
        self._pool_size = pool_size
        self._connect_args = connect
        self._conn_lock = asyncio.Lock()
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._pool_guard = asyncio.Lock()
        self._bound: dict[asyncio.Task[Any], Connection] = {}  # open transactions by task

    @classmethod
    async def open(
        cls, url: DatabaseURL, *, lock_timeout: float = 5.0, pool_size: int = 8,
        schema: str | None = None,
    ) -> AsyncPostgresBackend:
        """The first connection; a bad URL fails here, clearly."""
        assert url.conninfo is not None
        args = connect_args(url, schema)
        try:
            conn = await psycopg.AsyncConnection.connect(url.conninfo, **args)
        except psycopg.Error as e:
            raise cannot_connect(url, e) from e
        try:
            await _configure(conn)
            with translated():
                row = await (await conn.execute(SQL["postgres_current_schema"])).fetchone()
        except BaseException:
            await conn.close()
            raise
        return cls(url, conn, row[0] if row else None, lock_timeout, pool_size, args)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.conn.close()

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking function (yoyo's migrations) on a worker thread."""
        return await asyncio.to_thread(fn, *args)

    # -- connections -------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[Connection, bool]]:
        """A connection for one operation, and whether it is this task's transaction's."""
        bound = self._bound.get(asyncio.current_task())  # type: ignore[arg-type]
        if bound is not None:
            yield bound, True
        elif not self._conn_lock.locked():
            async with self._conn_lock:
                yield self.conn, False
        else:
            pool = await self._open_pool()
            try:
                conn = await pool.getconn(timeout=POOL_WAIT)
            except Exception as e:
                raise pool_exhausted(self.url, self._pool_size, e) from e
            try:
                yield conn, False
            finally:
                await pool.putconn(conn)

    async def _open_pool(self) -> AsyncConnectionPool[Connection]:
        async with self._pool_guard:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    **pool_args(self.url, self._connect_args, self._pool_size),
                    connection_class=psycopg.AsyncConnection[Any],
                    configure=_configure,
                    open=False,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    @property
    def in_transaction(self) -> bool:
        return asyncio.current_task() in self._bound

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction on a connection bound to this task; nested calls are savepoints."""
        task = asyncio.current_task()
        assert task is not None
        async with self._connection() as (conn, nested):
            if not nested:
                self._bound[task] = conn
            try:
                with translated():
                    async with conn.transaction():
                        yield
            finally:
                if not nested:
                    del self._bound[task]

    # -- statements --------------------------------------------------------------------------

    async def rows(self, sql: Any, params: Any = ()) -> list[tuple[Any, ...]]:
        async with self._connection() as (conn, _):
            with translated():
                return await (await conn.execute(sql, params)).fetchall()

    async def events(self, sql: str, params: Any) -> list[RecordedEvent]:
        async with self._connection() as (conn, _):
            with translated():
                cursor = await conn.execute(sql, params, binary=True)
                return list(map(RecordedEvent.from_decoded_row, await cursor.fetchall()))

    async def append(
        self, stream_id: str, events: Sequence[EncodedEvent], expected: Expected
    ) -> list[RecordedEvent]:
        params = append_params(stream_id, events, expected, self._lock_timeout_ms)
        async with self._connection() as (conn, nested):
            try:
                if nested:
                    # Inside a caller's transaction a savepoint keeps it usable after a
                    # conflict.
                    async with conn.transaction():
                        cursor = await conn.execute(APPEND_SQL, params, binary=True)
                else:
                    cursor = await conn.execute(APPEND_SQL, params, binary=True)
                rows = await cursor.fetchall()
            except psycopg.Error as e:
                raise append_failure(e, self.lock_timeout) from e
        return append_records(rows, stream_id, events)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run the caller's SQL written with ? placeholders, as on SQLite."""
        async with self._connection() as (conn, _):
            with translated():
                cursor = await conn.execute(with_placeholders(sql), params)
                return await cursor.fetchall() if cursor.description else []

    # -- a tail's wake-up (evstore.dialects.postgres.NotifyWake) ---------------------------

    async def listen(self) -> None:
        with translated():
            await self.conn.execute(SQL["postgres_listen"])

    async def notified(self, timeout: float) -> bool:
        found = False
        with translated():
            async for notify in self.conn.notifies(timeout=timeout, stop_after=1):
                found = ours(notify, self.schema)
        return found
