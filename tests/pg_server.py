"""Where the tests find a PostgreSQL server: a DSN, a throwaway local server, or a container."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from evstore.urls import parse_url, redact


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    candidates: list[Path] = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


@dataclass
class LocalServer:
    """A private PostgreSQL started from the local binaries: its port, socket folder, and a
    way to stop it at once (pg_ctl stop -m immediate)."""

    port: int
    socket_dir: str
    _pg_ctl: Callable[..., None]
    data_dir: str = ""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def socket_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def local_server(
    hba: str | None = None,
    settings: Sequence[str] = (),
    standby_of: LocalServer | None = None,
) -> Iterator[LocalServer]:
    """initdb + pg_ctl in a temporary folder, as an unprivileged user when run as root (initdb
    refuses root). `hba` replaces pg_hba.conf; `settings` are extra `-c name=value`.

    standby_of: instead of initdb, `pg_basebackup -R` from that running server, which makes
    this one a hot standby streaming from it (initdb's pg_hba.conf admits replication from
    loopback)."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) found")
    workdir = Path(tempfile.mkdtemp(prefix="evstore-pg-"))
    data, sock = workdir / "data", workdir / "sock"
    sock.mkdir()
    preexec = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres" if _has_user("postgres") else "nobody")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        os.chown(sock, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}

    def pg_ctl(*args: str, check: bool = False) -> None:
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), *args], check=check,
                       capture_output=True, preexec_fn=preexec, env=env, cwd=workdir)

    try:
        if standby_of is None:
            subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8"],
                check=True, capture_output=True, preexec_fn=preexec, env=env, cwd=workdir)
        else:
            subprocess.run(
                [str(bindir / "pg_basebackup"), "-D", str(data), "-R", "-X", "stream",
                 "-c", "fast", "-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres"],
                check=True, capture_output=True, preexec_fn=preexec, env=env, cwd=workdir)
        if hba is not None:
            subprocess.run(["/bin/sh", "-c", 'printf "%s" "$1" > "$2"', "sh", hba,
                            str(data / "pg_hba.conf")], check=True, preexec_fn=preexec)
        options = " ".join([f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                            *(f"-c {setting}" for setting in settings)])
        pg_ctl("-l", str(workdir / "log"), "-w", "-o", options, "start", check=True)
        yield LocalServer(port, str(sock), pg_ctl, str(data))
    finally:
        pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_server() -> Iterator[str]:
    """A trusting local server for the whole run, when no DSN is given."""
    with local_server() as server:
        yield server.url


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def container_server() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver=None) as pg:
        yield pg.get_connection_url()


@contextlib.contextmanager
def find_server() -> Iterator[tuple[str, str]]:
    """Yields (server DSN, how it was found); raises RuntimeError with every reason tried."""
    dsn = os.environ.get("EVSTORE_TEST_PG_DSN")
    if dsn:
        yield dsn, "EVSTORE_TEST_PG_DSN"
        return
    reasons = []
    try:
        with throwaway_server() as url:
            yield url, "throwaway server from the local PostgreSQL binaries"
            return
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        reasons.append(f"throwaway server: {e}")
    try:
        with container_server() as url:
            yield url, "testcontainers"
            return
    except Exception as e:  # no Docker engine, or testcontainers missing
        reasons.append(f"testcontainers: {type(e).__name__}")
    raise RuntimeError("; ".join(reasons))


def server_version(dsn: str) -> str:
    """The server's version, connecting as evstore does: the DSN through parse_url, so any
    scheme evstore accepts, a socket host and any database name work here too."""
    conninfo = parse_url(dsn).conninfo
    assert conninfo is not None, f"{redact(dsn)} is not a PostgreSQL URL"
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"
