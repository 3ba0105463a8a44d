"""The relay against the real NATS JetStream server: every event once, in position order,
through kills, NATS restarts and dropped database connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import evstore
from evstore import NewEvent
from evstore.errors import RelayError, RelayMisconfigured
from evstore.operations.relay import Relay, redact_nats, subject_for, subject_token
from evstore.urls import parse_url
from tests.conftest import IN_CI

nats = pytest.importorskip("nats")

ROOT = Path(__file__).resolve().parent.parent
NATS_URL = "nats://127.0.0.1:4222"
NATS_SERVER = "/usr/sbin/nats-server"


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@pytest.fixture(scope="module", autouse=True)
def shared_nats() -> None:
    if not _answers(4222):
        reason = "no NATS server at 127.0.0.1:4222 (start nats-server -js; .ci/run does)"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


async def _admin(url: str, action: str, stream: str) -> Any:
    nc = await nats.connect(servers=[url])
    try:
        js = nc.jetstream()
        if action == "delete":
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
            return None
        return await js.stream_info(stream)
    finally:
        await nc.close()


@pytest.fixture
def js_stream() -> Iterator[str]:
    """A unique JetStream stream name, deleted after the test."""
    name = f"EVTEST_{uuid.uuid4().hex[:10]}"
    yield name
    asyncio.run(_admin(NATS_URL, "delete", name))


async def _read_stream(url: str, stream: str) -> list[Any]:
    nc = await nats.connect(servers=[url])
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        count = info.state.messages
        sub = await js.pull_subscribe(">", stream=stream)
        out: list[Any] = []
        while len(out) < count:
            batch = await sub.fetch(min(1000, count - len(out)), timeout=10)
            for msg in batch:
                out.append(msg)
            await asyncio.gather(*(m.ack() for m in batch))
        return out
    finally:
        await nc.close()


def stream_contents(stream: str, url: str = NATS_URL) -> list[Any]:
    return asyncio.run(_read_stream(url, stream))


def assert_exactly_once_in_order(messages: list[Any], store: evstore.Store) -> None:
    positions = [int(m.headers["Evstore-Position"]) for m in messages]
    expected = [e.position for e in store.iter_all()]
    assert len(positions) == len(set(positions)), "an event was stored twice"
    assert positions == expected  # every event, once, in position order


def fill(store: evstore.Store, streams: int, per_stream: int, start: int = 0) -> None:
    for s in range(start, start + streams):
        store.append(f"order-{s}", [NewEvent("Placed", {"n": i, "s": s})
                                    for i in range(per_stream)])


def relay_cli(db: str, stream: str, *extra: str, nats_url: str = NATS_URL,
              **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "evstore", "relay", "--database", db, "--nats", nats_url,
         "--stream", stream, "--subject", f"evt.{stream.lower()}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        **kwargs,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # never leave a relay behind a failed test
        process.communicate()
        raise
    return process.returncode, out, err


# -- the message -----------------------------------------------------------------------------


@given(st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
               min_size=1, max_size=50))
def test_subject_tokens_are_safe_and_reversible(text: str) -> None:
    token = subject_token(text)
    assert token.isascii() and token.isprintable()
    assert not set(token) & {".", "*", ">", " ", "\t"}
    assert unquote(token) == text


def test_subject_layout() -> None:
    assert subject_for("app.events", "order-1", "Placed") == "app.events.order-1.Placed"
    assert subject_for("p", "a b.c", "x*>é") == "p.a%20b%2Ec.x%2A%3E%C3%A9"


def test_messages_carry_the_event(js_stream: str, url: str) -> None:
    if url.endswith(":memory:"):
        with pytest.raises(RelayMisconfigured, match="in-memory"):
            Relay(url, NATS_URL, js_stream, "evt.x")
        return
    with evstore.connect(url) as store:
        store.migrate()
        store.append("order 1.é", [NewEvent("Pla ced.*", {"total": 3, "é": [1.5, None]},
                                            {"who": "zoë"})])
        store.append("b", [NewEvent("T", "just a string"), NewEvent("T", None)])
        stats = Relay(url, NATS_URL, js_stream, "evt.app", idle_timeout=0.3).run()
        assert (stats.published, stats.duplicates, stats.position) == (3, 0, 3)
        messages = stream_contents(js_stream)
        assert_exactly_once_in_order(messages, store)
        first = messages[0]
        event = store.read_all()[0]
        assert first.subject == "evt.app.order%201%2E%C3%A9.Pla%20ced%2E%2A"
        assert first.headers["Nats-Msg-Id"] == event.event_id
        assert unquote(first.headers["Evstore-Stream"]) == "order 1.é"
        assert unquote(first.headers["Evstore-Type"]) == "Pla ced.*"
        assert first.headers["Evstore-Version"] == "1"
        assert json.loads(first.headers["Evstore-Metadata"]) == {"who": "zoë"}
        assert first.data == '{"total":3,"é":[1.5,null]}'.encode()
        assert [json.loads(m.data) for m in messages[1:]] == ["just a string", None]
        # A second run finds nothing new, and publishes nothing twice.
        again = Relay(url, NATS_URL, js_stream, "evt.app", idle_timeout=0.1).run()
        assert (again.published, again.position) == (0, 3)
        assert len(stream_contents(js_stream)) == 3
        assert store.checkpoint(f"relay-{js_stream}") == 3


def test_consumer_script_reads_the_stream(js_stream: str, sqlite_url: str) -> None:
    """README: a consumer in another process (scripts/relay_consumer.py)."""
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        store.append("order 7", [NewEvent("Placed", {"total": 9}), NewEvent("Paid", {})])
        store.append("order-8", [NewEvent("Placed", {"total": 1})])
    Relay(sqlite_url, NATS_URL, js_stream, "evt.shop", idle_timeout=0.2).run()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "relay_consumer.py"), "--stream", js_stream,
         "--subject", "evt.shop.*.Placed", "--idle-timeout", "1"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["stream_id"], e["type"], e["data"]) for e in lines] == [
        ("order 7", "Placed", {"total": 9}), ("order-8", "Placed", {"total": 1})]
    assert [e["position"] for e in lines] == [1, 3]


def test_an_existing_stream_must_match(js_stream: str, sqlite_url: str) -> None:
    async def create(subjects: list[str], window: float) -> None:
        nc = await nats.connect(servers=[NATS_URL])
        try:
            await nc.jetstream().add_stream(name=js_stream, subjects=subjects,
                                            duplicate_window=window)
        finally:
            await nc.close()

    with evstore.connect(sqlite_url) as store:
        store.migrate()
        store.append("a", [NewEvent("T", {})])
    asyncio.run(create(["other.>"], 120))
    with pytest.raises(RelayMisconfigured, match=r"exists with subjects other\.>, not evt\.a\.>"):
        Relay(sqlite_url, NATS_URL, js_stream, "evt.a", idle_timeout=0.1).run()
    asyncio.run(_admin(NATS_URL, "delete", js_stream))
    asyncio.run(create(["evt.a.>"], 5))
    with pytest.raises(RelayMisconfigured, match="deduplicates over 5 s"):
        Relay(sqlite_url, NATS_URL, js_stream, "evt.a", idle_timeout=0.1).run()
    info = asyncio.run(_admin(NATS_URL, "info", js_stream))
    assert info.state.messages == 0
    with evstore.connect(sqlite_url) as store:
        assert store.checkpoint(f"relay-{js_stream}") == 0


def test_created_stream_settings(js_stream: str, sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
    Relay(sqlite_url, NATS_URL, js_stream, "evt.made", idle_timeout=0.1).run()
    config = asyncio.run(_admin(NATS_URL, "info", js_stream)).config
    assert config.subjects == ["evt.made.>"]
    assert config.duplicate_window == 120
    assert (config.max_msgs, config.max_bytes, config.max_age) == (-1, -1, 0)
    assert str(getattr(config.storage, "value", config.storage)) == "file"
    assert config.num_replicas == 1


def test_an_event_too_large_for_nats_stops_the_relay(js_stream: str, sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        store.append("a", [NewEvent("T", {"n": 1})])
        store.append("big", [NewEvent("T", {"blob": "x" * (2 << 20)})])
        store.append("a", [NewEvent("T", {"n": 2})])
        with pytest.raises(RelayError, match=r"position 2 .* cannot be published"):
            Relay(sqlite_url, NATS_URL, js_stream, "evt.big", idle_timeout=0.5).run()
        # Nothing after it was published, and the checkpoint stops before it.
        assert [int(m.headers["Evstore-Position"]) for m in stream_contents(js_stream)] == [1]
        assert store.checkpoint(f"relay-{js_stream}") == 1


def test_cli_never_prints_secrets(sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    for nats_url in (f"nats://relay:pa55word-x@127.0.0.1:{port}",
                     f"nats://t0ken-secret-x@127.0.0.1:{port}"):
        code, out, err = finish(relay_cli(sqlite_url, "EVTEST_SECRET", "--reconnect-attempts",
                                          "1", nats_url=nats_url), timeout=60)
        assert code == 1
        assert "gave up after 1 reconnect" in err
        assert "pa55word" not in out + err and "t0ken" not in out + err
        assert redact_nats(nats_url) in err or "***" in err


# -- faults ----------------------------------------------------------------------------------


class Appender(threading.Thread):
    """Appends batches until told to stop, on a store of its own."""

    def __init__(self, url: str, batches: int) -> None:
        super().__init__(daemon=True)
        self.url, self.batches = url, batches
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with evstore.connect(self.url) as store:
                for b in range(self.batches):
                    store.append(f"s-{b % 37}", [NewEvent("T", {"b": b, "i": i})
                                                 for i in range(20)])
        except BaseException as e:
            self.error = e


@pytest.mark.slow
def test_sigkill_at_random_points(js_stream: str, file_url: str) -> None:
    """SIGKILL the relay while events are appended, restart it, again and again: the
    JetStream stream holds every event once, in position order."""
    with evstore.connect(file_url) as store:
        store.migrate()
        fill(store, 10, 50)
    appender = Appender(file_url, 300)
    appender.start()
    rng = random.Random(15)
    args = ("--lease-ttl", "1", "--wait", "--max-in-flight", "200")
    for _ in range(6):
        process = relay_cli(file_url, js_stream, *args)
        time.sleep(rng.uniform(0.3, 2.0))
        process.send_signal(signal.SIGKILL)
        finish(process, timeout=30)
    appender.join(timeout=300)
    assert appender.error is None
    code, _, err = finish(relay_cli(file_url, js_stream, *args, "--idle-timeout", "1"))
    assert code == 0, err
    with evstore.connect(file_url) as store:
        messages = stream_contents(js_stream)
        assert_exactly_once_in_order(messages, store)
        assert len(messages) == 500 + 300 * 20


@contextlib.contextmanager
def own_nats(folder: Path) -> Iterator[tuple[str, Any]]:
    """A throwaway nats-server with JetStream on a free loopback port; yields its URL and a
    restart(down_seconds) function."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(folder)]
    state: dict[str, subprocess.Popen[bytes]] = {}

    def start() -> None:
        state["server"] = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
        for _ in range(200):
            if _answers(port):
                return
            time.sleep(0.05)
        raise RuntimeError("the throwaway nats-server did not start")

    def stop() -> None:
        server = state.pop("server", None)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    start()
    try:
        yield f"nats://127.0.0.1:{port}", (start, stop)
    finally:
        stop()


def wait_for_checkpoint(url: str, name: str, at_least: int | None = None) -> None:
    """Wait until the relay's checkpoint reaches `at_least` (default: the log's head)."""
    deadline = time.monotonic() + 120
    with evstore.connect(url) as store:
        target = store.head_position() if at_least is None else at_least
        while store.checkpoint(name) < target:
            assert time.monotonic() < deadline, f"the relay never reached position {target}"
            time.sleep(0.05)


@pytest.mark.slow
def test_nats_restarted_and_unreachable_mid_run(tmp_path: Path, sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        fill(store, 20, 100)
    with own_nats(tmp_path / "js") as (url, (start, stop)):
        process = relay_cli(sqlite_url, "EVTEST_OWN", nats_url=url)
        try:
            wait_for_checkpoint(sqlite_url, "relay-EVTEST_OWN", 1)
            appender = Appender(sqlite_url, 200)
            appender.start()
            stop()  # NATS goes away mid-run, and stays unreachable while events commit
            appender.join(timeout=300)
            assert appender.error is None
            start()
            wait_for_checkpoint(sqlite_url, "relay-EVTEST_OWN")
            stop()  # and once more, while the relay is idle
            with evstore.connect(sqlite_url) as store:
                fill(store, 5, 10, start=100)
            start()
            wait_for_checkpoint(sqlite_url, "relay-EVTEST_OWN")
        finally:
            process.send_signal(signal.SIGTERM)
            code, _, err = finish(process)
        assert code == 143, err
        assert "reconnecting" in err, err
        code, _, err = finish(relay_cli(sqlite_url, "EVTEST_OWN", "--idle-timeout", "0.5",
                                        nats_url=url))
        assert code == 0, err
        with evstore.connect(sqlite_url) as store:
            messages = stream_contents("EVTEST_OWN", url)
            assert_exactly_once_in_order(messages, store)
            assert len(messages) == 2000 + 200 * 20 + 50


@pytest.mark.postgres
@pytest.mark.slow
def test_database_connection_dropped(js_stream: str, pg_url: str) -> None:
    with evstore.connect(pg_url) as store:
        store.migrate()
        fill(store, 10, 100)
    process = relay_cli(pg_url, js_stream)
    wait_for_checkpoint(pg_url, f"relay-{js_stream}", 1)
    appender = Appender(pg_url, 150)
    appender.start()
    conninfo = parse_url(pg_url).conninfo
    database = parse_url(pg_url).database
    killed = 0
    with psycopg.connect(conninfo or "", autocommit=True) as admin:
        for _ in range(4):
            time.sleep(0.7)
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid() AND application_name = 'evstore' "
                "AND query NOT LIKE '%%evstore_append%%'", (database,)).fetchall()
            killed += len(rows)
    appender.join(timeout=300)
    assert killed > 0
    wait_for_checkpoint(pg_url, f"relay-{js_stream}")
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process)
    assert code == 143, err
    code, _, err = finish(relay_cli(pg_url, js_stream, "--idle-timeout", "1"))
    assert code == 0, err
    with evstore.connect(pg_url) as store:
        messages = stream_contents(js_stream)
        assert_exactly_once_in_order(messages, store)
        assert len(messages) == 1000 + 150 * 20


@pytest.mark.slow
def test_100000_events_end_to_end(js_stream: str, sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        for s in range(100):
            store.append(f"order-{s}", [NewEvent("Placed", {"n": i, "note": "x" * 100})
                                        for i in range(1000)])
    stats = Relay(sqlite_url, NATS_URL, js_stream, "evt.big100k", idle_timeout=1).run()
    assert (stats.published, stats.position) == (100_000, 100_000)
    with evstore.connect(sqlite_url) as store:
        messages = stream_contents(js_stream)
        assert_exactly_once_in_order(messages, store)


@pytest.mark.slow
def test_group_members_each_relay_their_streams(js_stream: str, file_url: str) -> None:
    """Three relay members into one JetStream stream: every event once; each stream's events
    in version order (global order holds within each member only)."""
    with evstore.connect(file_url) as store:
        store.migrate()
        fill(store, 30, 20)
    processes = [relay_cli(file_url, js_stream, "--group-member", str(m), "--group-size", "3",
                           "--idle-timeout", "1") for m in range(3)]
    for process in processes:
        code, _, err = finish(process)
        assert code == 0, err
    messages = stream_contents(js_stream)
    positions = [int(m.headers["Evstore-Position"]) for m in messages]
    assert sorted(positions) == list(range(1, 601))
    versions: dict[str, list[int]] = {}
    for m in messages:
        versions.setdefault(unquote(m.headers["Evstore-Stream"]), []).append(
            int(m.headers["Evstore-Version"]))
    assert all(v == list(range(1, 21)) for v in versions.values()) and len(versions) == 30
    with evstore.connect(file_url) as store:
        assert [m.checkpoint for m in store.group_status(f"relay-{js_stream}")] == [
            f"relay-{js_stream}/member-{i}-of-3" for i in range(3)]


def test_a_second_relay_on_the_same_member_is_refused(js_stream: str, sqlite_url: str) -> None:
    with evstore.connect(sqlite_url) as store:
        store.migrate()
        store.append("a", [NewEvent("T", {})])
    first = relay_cli(sqlite_url, js_stream)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with evstore.connect(sqlite_url) as store:
                if store.checkpoint(f"relay-{js_stream}") == 1:
                    break
            time.sleep(0.05)
        code, _, err = finish(relay_cli(sqlite_url, js_stream, "--idle-timeout", "0.1"))
        assert code == 1
        assert "is held by" in err and f":{first.pid}:" in err
    finally:
        first.send_signal(signal.SIGTERM)
        finish(first)

