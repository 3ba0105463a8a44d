"""Fixtures: one contract, run on a SQLite file, SQLite in memory and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

import evstore
from evstore.urls import parse_url
from tests.aio_facade import Facade
from tests.pg_server import find_server, server_version

ROOT = Path(__file__).resolve().parent.parent
SQL = ROOT / "sql"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_server: dict[str, str] = {}
_stack = contextlib.ExitStack()


def _pg_server() -> str | None:
    """The server DSN, found once per run; None (with the reason kept) when there is none."""
    if "dsn" in _server or "error" in _server:
        return _server.get("dsn")
    try:
        dsn, how = _stack.enter_context(find_server())
        _server.update(dsn=dsn, how=how, version=server_version(dsn))
    except Exception as e:
        _server["error"] = str(e)
    return _server.get("dsn")


def pytest_report_header(config: pytest.Config) -> list[str]:
    dsn = _pg_server()
    pg = (
        f"PostgreSQL {_server['version']} ({_server['how']})"
        if dsn
        else f"PostgreSQL: none ({_server.get('error')})"
    )
    return [f"SQLite {sqlite3.sqlite_version}; {pg}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    _stack.close()


def require_pg() -> str:
    dsn = _pg_server()
    if dsn is None:
        reason = f"no PostgreSQL server: {_server.get('error')}"
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return dsn


def role_url(url: str, role: str, password: str | None = None) -> str:
    """The same server and database as `url`, logged in as `role` (with `password`, or none).

    Built from the parsed URL, so a password, a Unix-socket host (`?host=/var/run/postgresql`,
    or a percent-encoded socket path as the host), a port and other query parameters come
    through; the role and the password are percent-encoded."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(role, safe="")
    if password is not None:
        user += ":" + quote(password, safe="")
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@contextlib.contextmanager
def scratch_database(prefix: str = "evstore_test") -> Iterator[str]:
    """A database created for one test and dropped after it, on the test server (whichever
    database, host or socket the DSN names)."""
    server = parse_url(require_pg())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    assert server.conninfo is not None
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(server.conninfo, autocommit=True) as admin:
        admin.execute(create)
    try:
        yield server.with_database(name).url
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as admin:
            admin.execute(drop)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with scratch_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/evstore.db"


BACKENDS = [
    "sqlite-file",
    "sqlite-memory",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("postgres-schema", marks=pytest.mark.postgres),
]


def with_search_path(url: str, schema: str) -> str:
    """The URL with `options=-c search_path=SCHEMA` added to its query, by parsing."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextlib.contextmanager
def scratch_schema_database(schema: str = "events") -> Iterator[str]:
    """A scratch database whose URL puts everything in a schema of its own (through the
    URL's own options), with nothing in public."""
    with scratch_database() as pg:
        admin = parse_url(pg)
        with psycopg.connect(admin.conninfo or "", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        yield with_search_path(pg, schema)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path}/evstore.db"
    elif request.param == "sqlite-memory":
        yield "sqlite:///:memory:"
    elif request.param == "postgres-schema":
        with scratch_schema_database() as pg:
            yield pg
    else:
        with scratch_database() as pg:
            yield pg


@pytest.fixture(params=["sync", "async"])
def store(request: pytest.FixtureRequest, url: str) -> Iterator[evstore.Store]:
    """A migrated store on each backend, through each API: evstore.Store, and an
    evstore.aio.AsyncStore behind a sync facade (tests/aio_facade.py)."""
    opened: Any = evstore.connect(url) if request.param == "sync" else Facade(url)
    with opened as s:
        s.migrate()
        yield s


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def file_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Backends that several processes can share (not the in-memory database)."""
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path}/evstore.db"
    else:
        with scratch_database() as pg:
            yield pg
