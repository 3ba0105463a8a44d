"""The processes W7 and W8 start: writers, a follower, a projector, readers. Each opens its own
client (clients.py), says it is ready, waits for the go, and reports on a queue.

Started with the spawn method, so each is a fresh interpreter: what it imports is what it pays.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from evbench.clients import Follower, Projector, now_ns, open_reader, open_writer
from evbench.data import Batch, make_event

SPAWN = multiprocessing.get_context("spawn")


def writer_process(
    system: str, url: str, index: int, batch: int, pool: int, seconds: float | None,
    ready: Any, go: Any, stop: Any, out: Any,
) -> None:
    """Append batches of `batch` to 20 streams of its own until `stop` is set or `seconds`
    have passed. Events are made (and, for es-*-bytes, encoded) before the go, so the cores
    go to appending; a writer that uses up its pool stops early and says so."""
    rng = random.Random(1000 + index)
    streams = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20)]
    heads = dict.fromkeys(streams, 0)
    made = [make_event(rng, k) for k in range(pool)]
    writer = open_writer(system, url)
    writer.prepare(made)
    ready.put(index)
    go.wait()
    deadline = time.monotonic() + seconds if seconds else None
    appended, seq, exhausted = 0, 0, False
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if (seq + 1) * batch > len(made):
                exhausted = True
                break
            stream = streams[seq % len(streams)]
            writer.append(Batch(stream, heads[stream], made[seq * batch:(seq + 1) * batch]))
            heads[stream] += batch
            appended += batch
            seq += 1
    finally:
        writer.close()
        out.put(("writer", index, appended, exhausted))


def _stop_when_caught_up(
    follower: Follower, done: Any, head: Any, last: list[int], timeout: float
) -> None:
    """Once the run is over (done) and `head` holds the last committed position, stop the
    follower when it has delivered that far, or after `timeout` seconds (it missed some)."""
    done.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if last[0] >= head.value:
            break
        time.sleep(0.01)
    follower.stop()


def follower_process(
    system: str, url: str, poll: float, watch: list[str], ready: Any, done: Any, head: Any,
    out: Any, timeout: float = 60.0,
) -> None:
    """Follow the log from the start; report every position delivered, in delivery order,
    and the delivery time of each event whose id is in `watch`."""
    follower = Follower(system, url, poll)
    watched = set(watch)
    seen: list[int] = []
    at: dict[str, int] = {}
    last = [0]

    def deliver(position: int, event_id: str) -> None:
        if event_id in watched:
            at[event_id] = now_ns()
        seen.append(position)
        last[0] = max(last[0], position)

    threading.Thread(target=_stop_when_caught_up, args=(follower, done, head, last, timeout),
                     daemon=True).start()
    ready.put("follower")
    try:
        follower.run(deliver)
    finally:
        out.put(("follower", seen, at))


def projector_process(
    system: str, url: str, poll: float, watch: list[str], ready: Any, done: Any, head: Any,
    out: Any, timeout: float = 60.0,
) -> None:
    """Project the log from the start; report when each watched event's checkpoint was
    committed."""
    projector = Projector(system, url, poll)
    watched = set(watch)
    at: dict[str, int] = {}
    last = [0]

    def committed(events: list[tuple[int, str]]) -> None:
        t = now_ns()
        for position, event_id in events:
            if event_id in watched:
                at[event_id] = t
            last[0] = max(last[0], position)

    threading.Thread(target=_stop_when_caught_up, args=(projector, done, head, last, timeout),
                     daemon=True).start()
    ready.put("projector")
    try:
        projector.project(committed)
    finally:
        out.put(("projector", last[0], at))


def reader_process(system: str, url: str, page: int, ready: Any, go: Any, out: Any) -> None:
    """Read the whole log once in pages, data decoded; report the positions in read order."""
    reader = open_reader(system, url)
    ready.put("reader")
    go.wait()
    seen: list[int] = []
    last = 0
    try:
        while True:
            rows = reader.after(last, page)
            seen.extend(p for p, _ in rows)
            if len(rows) < page:
                break
            last = rows[-1][0]
    finally:
        reader.close()
        out.put(("reader", seen, now_ns()))


def start(targets: Iterable[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
    procs = [SPAWN.Process(target=t, args=a) for t, a in targets]
    for p in procs:
        p.start()
    return procs


def collect(out: Any, count: int, procs: list[Any], timeout: float) -> list[Any]:
    """`count` reports from the queue; a process that died without one fails the run."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        try:
            got.append(out.get(timeout=1))
        except Exception:  # queue.Empty: see whether someone died
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                raise RuntimeError(
                    f"{len(dead)} benchmark process(es) failed (exit codes "
                    f"{[p.exitcode for p in dead]}) or the run took over {timeout:.0f} s"
                ) from None
    return got


def wait_ready(ready: Any, count: int, procs: list[Any]) -> None:
    collect(ready, count, procs, timeout=300)


def join(procs: list[Any]) -> None:
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.terminate()
            p.join()
