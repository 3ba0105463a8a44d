"""Scratch databases and the plain driver connections the baselines use."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg

from evstore.urls import parse_url


class Scratch:
    """Fresh databases, dropped afterwards: PostgreSQL databases on the server, SQLite files."""

    def __init__(self, pg_dsn: str, folder: Path) -> None:
        self.pg = parse_url(pg_dsn)
        self.folder = folder
        self.pg_names: list[str] = []

    def sqlite_path(self) -> Path:
        return self.folder / f"bench_{uuid.uuid4().hex[:10]}.db"

    def pg_database(self) -> str:
        name = f"evstore_bench_{uuid.uuid4().hex[:10]}"
        assert self.pg.conninfo is not None
        with psycopg.connect(self.pg.conninfo, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.pg_names.append(name)
        return self.pg.with_database(name).url

    def drop(self, url: str) -> None:
        name = parse_url(url).database
        assert self.pg.conninfo is not None
        with psycopg.connect(self.pg.conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.pg_names:
            self.pg_names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.pg_names):
            self.drop(self.pg.with_database(name).url)


def conninfo(url: str) -> str:
    info = parse_url(url).conninfo
    assert info is not None
    return info


def sqlite_connect(path: Path) -> sqlite3.Connection:
    """The raw baseline opens SQLite exactly as evstore does."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def raw_pg_connect(url: str) -> psycopg.Connection[Any]:
    """The raw baseline's connection. evstore's INSERT guard (event_store_check_insert, once
    per statement) admits only evstore_append(); the baseline declares itself the append
    path for its session, so it still pays the trigger but inserts directly."""
    conn = psycopg.connect(conninfo(url), autocommit=True)
    conn.execute("SET evstore.appending = 'on'")
    return conn


def raw_digest(event_type: str, payload: str, metadata: str) -> bytes:
    """What the raw baselines pay for content digests: SHA-256 of their own JSON text."""
    return hashlib.sha256(f"{event_type}\0{payload}\0{metadata}".encode()).digest()



def es_pg_datastore(url: str, pool_size: int = 1) -> Any:
    """eventsourcing's PostgreSQL datastore; pool_size connections (its own default is 1;
    a subscription holds one for LISTEN, threads sharing a recorder need one each)."""
    from eventsourcing.postgres import PostgresDatastore

    u = parse_url(url)
    info = psycopg.conninfo.conninfo_to_dict(conninfo(url))
    return PostgresDatastore(
        dbname=u.database or "postgres",
        host=str(info.get("host", "127.0.0.1")),
        port=str(info.get("port", 5432)),
        user=str(info.get("user", "postgres")),
        password=str(info.get("password", "")),
        pool_size=pool_size,
    )



def store_head(url: str) -> int:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        row = conn.execute("SELECT max(position) FROM event_store").fetchone()
        return int(row[0] or 0) if row else 0

