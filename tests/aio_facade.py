"""A sync facade over an AsyncStore, so that every contract test written against Store also runs
the async code path (evstore.aio, its drivers and async backends).

The AsyncStore lives on an event loop in a private thread. Each thread that calls the facade
gets a session: one task on that loop that runs the thread's calls one after another. A
thread is thus one task, and what the sync Store promises per thread (a transaction belongs to
it, sees its own writes, excludes other threads' reads on SQLite) is exercised as the
AsyncStore's promise per task. A projection's sync apply() runs on a worker thread that is
served by the driver's own task, so its tx calls happen inside the driver's transaction.

Not async: `_live().conn` on PostgreSQL is a plain psycopg connection to the same database,
for tests that read the catalogs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg

import evstore
import evstore.aio
from evstore.dialects.postgres import connect_args
from evstore.errors import InvalidInput


class Session:
    """One task on the loop that runs a thread's calls, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], Any]] = asyncio.Queue()
        self.task: asyncio.Task[Any] | None = None

    def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run `await fn()` in this session's task; from any thread but the loop's."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (fn, future))
        return future.result()

    async def serve(self, until: asyncio.Future[Any] | None = None) -> Any:
        """Run queued calls in the current task until `until` is done (or forever)."""
        while True:
            get = asyncio.ensure_future(self.queue.get())
            waiting = {get} if until is None else {get, until}
            try:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                get.cancel()
                raise
            if get in done:
                fn, future = get.result()
                try:
                    future.set_result(await fn())
                except BaseException as e:
                    future.set_exception(e)
                continue
            get.cancel()
            assert until is not None
            return until.result()


class Facade:
    """Looks like evstore.Store; runs an AsyncStore."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._sessions: dict[int, Session] = {}
        self._by_task: dict[asyncio.Task[Any], Session] = {}
        self._guard = threading.Lock()
        self._catalog: psycopg.Connection[Any] | None = None
        self._store: evstore.aio.AsyncStore = self._session().call(
            lambda: evstore.aio.connect(url, **options)
        )

    # -- sessions ----------------------------------------------------------------------------

    def _session(self) -> Session:
        me = threading.get_ident()
        with self._guard:
            session = self._sessions.get(me)
            if session is None:
                session = self._sessions[me] = self._start_session()
        return session

    def _start_session(self) -> Session:
        session = Session(self._loop)

        def start() -> None:
            session.task = self._loop.create_task(session.serve())
            self._by_task[session.task] = session

        self._loop.call_soon_threadsafe(start)
        return session

    def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        return self._session().call(fn)

    async def _in_worker(self, fn: Callable[[], Any]) -> Any:
        """Run sync fn on a worker thread whose facade calls this task serves."""
        session = self._by_task[asyncio.current_task()]  # type: ignore[index]

        def work() -> Any:
            me = threading.get_ident()
            with self._guard:
                self._sessions[me] = session
            try:
                return fn()
            finally:
                with self._guard:
                    del self._sessions[me]

        return await session.serve(asyncio.ensure_future(asyncio.to_thread(work)))

    # -- the Store API -----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if inspect.iscoroutinefunction(value):
            return lambda *a, **k: self._call(lambda: value(*a, **k))
        return value

    def __enter__(self) -> Facade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(self._store.close)

        async def finish() -> None:
            tasks = [t for t in self._by_task if not t.done()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        asyncio.run_coroutine_threadsafe(finish(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def _live(self) -> Any:
        backend = self._store._live()
        if self._store.dialect != "postgres":
            return backend
        if self._catalog is None:
            url = self._store.url
            self._catalog = psycopg.connect(url.conninfo or "",
                                            **connect_args(url, self._store.schema))
        return _Catalog(self._catalog)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[FacadeTransaction]:
        session = self._session()
        context = self._store.transaction()
        atx = session.call(context.__aenter__)
        try:
            yield FacadeTransaction(self, atx)
        except BaseException as e:
            if not session.call(lambda e=e: context.__aexit__(type(e), e, e.__traceback__)):
                raise
        else:
            session.call(lambda: context.__aexit__(None, None, None))

    def iter_all(self, *args: Any, **kwargs: Any) -> Iterator[evstore.RecordedEvent]:
        events = self._store.iter_all(*args, **kwargs)
        session = self._session()
        try:
            while True:
                try:
                    yield session.call(events.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            session.call(events.aclose)  # type: ignore[attr-defined]

    def tail(self, *args: Any, **kwargs: Any) -> FacadeTail:
        return FacadeTail(self, self._store.tail(*args, **kwargs))

    def run_projection(self, projection: Any, **kwargs: Any) -> int:
        return int(self._call(lambda: self._store.run_projection(self._wrap(projection),
                                                                 **kwargs)))

    def replay(self, projection: Any, **kwargs: Any) -> int:
        return int(self._call(lambda: self._store.replay(self._wrap(projection), **kwargs)))

    def _wrap(self, projection: Any) -> Any:
        """The projection, its sync apply and reset run on a worker thread that this
        facade serves (they call tx.execute and wait for it)."""
        facade = self

        class Wrapped:
            name = projection.name

            async def apply(self, atx: Any, event: Any) -> None:
                tx = FacadeTransaction(facade, atx)
                await facade._in_worker(lambda: projection.apply(tx, event))

        if hasattr(projection, "reset"):
            async def reset(atx: Any) -> None:
                tx = FacadeTransaction(facade, atx)
                await facade._in_worker(lambda: projection.reset(tx))

            Wrapped.reset = staticmethod(reset)  # type: ignore[attr-defined]
        return Wrapped()


class _Catalog:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn


class FacadeTransaction:
    """An AsyncTransaction used from threads: each call runs in the calling thread's task, so
    another thread's use is refused as another task's."""

    def __init__(self, facade: Facade, atx: evstore.aio.AsyncTransaction) -> None:
        self._facade = facade
        self._atx = atx

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._atx, name)
        if inspect.iscoroutinefunction(value):
            return lambda *a, **k: self._in_task(lambda: value(*a, **k))
        return value

    def _in_task(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return self._facade._call(fn)
        except InvalidInput as e:
            # The facade maps threads to tasks; say it in the sync API's words.
            if "belongs to the task" not in str(e):
                raise
            raise InvalidInput(str(e).replace("task", "thread")) from e


class FacadeTail:
    def __init__(self, facade: Facade, tail: evstore.aio.AsyncTail) -> None:
        self._facade = facade
        self._tail = tail

    @property
    def position(self) -> int:
        return self._tail.position

    def __iter__(self) -> FacadeTail:
        return self

    def __next__(self) -> evstore.RecordedEvent:
        try:
            event: evstore.RecordedEvent = self._facade._call(self._tail.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None
        return event

    def stop(self) -> None:
        self._facade._loop.call_soon_threadsafe(self._tail.stop)

    def close(self) -> None:
        self._facade._call(self._tail.aclose)

    def __enter__(self) -> FacadeTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
