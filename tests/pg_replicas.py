"""Real PostgreSQL replicas for the tests: a throwaway primary, hot standbys made with
`pg_basebackup -R`, and a standby that applies each commit only after a delay.

All of them are private servers of tests/pg_server.py's local_server on loopback ports, run as
the `postgres` OS user when the tests run as root (initdb refuses root)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from tests.pg_server import LocalServer, local_server

# The delayed standby applies each commit this long after the primary made it.
APPLY_DELAY_SECONDS = 4


@dataclass
class Replicas:
    primary: LocalServer
    standbys: list[LocalServer]
    delayed: LocalServer
    delay: float = APPLY_DELAY_SECONDS
    _databases: list[str] = field(default_factory=list)

    def wait_replayed(self, server: LocalServer, timeout: float = 60.0) -> None:
        """Until `server` has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            assert row is not None
            target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(server.url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                ).fetchone()
                if row is not None and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"standby on port {server.port} did not replay {target}")
                time.sleep(0.02)

    @contextlib.contextmanager
    def database(self, delayed: bool = False) -> Iterator[tuple[str, list[str], str | None]]:
        """A database created on the primary for one test, and its URL on the primary, on each
        hot standby and (delayed=True) on the delayed standby, once they have it."""
        name = f"evstore_replica_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.primary.url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            waited = [*self.standbys, *([self.delayed] if delayed else [])]
            for server in waited:
                self.wait_replayed(server)
            yield (
                _with_database(self.primary, name),
                [_with_database(s, name) for s in self.standbys],
                _with_database(self.delayed, name) if delayed else None,
            )
        finally:
            with psycopg.connect(self.primary.url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name))
                )


def _with_database(server: LocalServer, name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/{name}"


@contextlib.contextmanager
def replicas(standbys: int = 2) -> Iterator[Replicas]:
    """A primary, `standbys` hot standbys and one delayed standby, stopped and removed after."""
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(local_server(settings=[
            "wal_level=replica", "max_wal_senders=10", "max_connections=200",
            # Standbys report replay progress often, so pg_stat_replication is current.
            "wal_sender_timeout=60s",
        ]))
        hot = [
            stack.enter_context(local_server(
                settings=["hot_standby=on", "wal_receiver_status_interval=1s",
                          "max_connections=200", "hot_standby_feedback=on"],
                standby_of=primary))
            for _ in range(standbys)
        ]
        delayed = stack.enter_context(local_server(
            settings=["hot_standby=on", "max_connections=200",
                      f"recovery_min_apply_delay={APPLY_DELAY_SECONDS}s"],
            standby_of=primary))
        yield Replicas(primary, hot, delayed)
