"""`evstore parity` and `evstore drift`: build schemas in scratch databases and compare them."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from evstore.dialects import queries
from evstore.errors import ConnectionFailed, InvalidURL
from evstore.schema.catalog import postgres as pg_catalog
from evstore.schema.catalog import sqlite as sqlite_catalog
from evstore.schema.catalog.declared import Declared, load_declared
from evstore.schema.catalog.diff import Difference, differences, drift
from evstore.schema.catalog.model import Schema
from evstore.schema.migrations import Folders, Migrator, as_folders
from evstore.urls import DatabaseURL, parse_url


@dataclass(frozen=True)
class Report:
    differences: list[Difference]
    postgres: Schema
    sqlite: Schema

    @property
    def equal(self) -> bool:
        return not self.differences


def migration_ids(folders: Folders) -> tuple[set[str], set[str]]:
    """(forward ids, ids that have a rollback file) of one migrations folder or several."""
    forward: set[str] = set()
    rollbacks: set[str] = set()
    for folder in as_folders(folders):
        forward |= {p.name[:-4] for p in folder.glob("*.sql")
                    if not p.name.endswith(".rollback.sql")}
        rollbacks |= {p.name[: -len(".rollback.sql")] for p in folder.glob("*.rollback.sql")}
    return forward, rollbacks


def migration_differences(pg_dir: Folders, sqlite_dir: Folders) -> list[Difference]:
    """The id lists are a parity check of their own: same ids, each with a rollback file."""
    pg_ids, pg_rollbacks = migration_ids(pg_dir)
    lite_ids, lite_rollbacks = migration_ids(sqlite_dir)
    found = []
    for mid in sorted(pg_ids | lite_ids):
        if (mid in pg_ids) != (mid in lite_ids):
            found.append(Difference(f"migration {mid}", "exists", mid in pg_ids, mid in lite_ids))
            continue
        if mid not in pg_rollbacks or mid not in lite_rollbacks:
            found.append(
                Difference(
                    f"migration {mid}", "rollback file", mid in pg_rollbacks,
                    mid in lite_rollbacks,
                )
            )
    return found


def query_differences(pg_dir: Folders, sqlite_dir: Folders) -> list[Difference]:
    """The named queries of every set (sql/queries, sql/catalog, sql/tooling beside the first
    folder of each, else the shipped files): same names on both sides, with the same
    parameters. A postgres_ or sqlite_ name is that dialect's own and has no counterpart."""
    from evstore.dialects.queries import DIALECT_ONLY, QUERY_SETS, parse
    from evstore.schema.lint import query_files

    found = []
    for kind in QUERY_SETS:
        pg_file, lite_file = query_files(as_folders(pg_dir)[0], as_folders(sqlite_dir)[0], kind)
        pg = parse(pg_file.read_text(encoding="utf-8"), "postgres") if pg_file.is_file() else {}
        lite = (parse(lite_file.read_text(encoding="utf-8"), "sqlite") if lite_file.is_file()
                else {})
        what = "query" if kind == "queries" else f"{kind} query"
        for name in sorted(set(pg) | set(lite)):
            if name.startswith(DIALECT_ONLY):
                continue
            if (name in pg) != (name in lite):
                found.append(Difference(f"{what} {name}", "exists", name in pg, name in lite,
                                        f"define it in both {pg_file} and {lite_file}"))
            elif sorted(pg[name].params) != sorted(lite[name].params):
                found.append(Difference(f"{what} {name}", "parameters",
                                        sorted(pg[name].params), sorted(lite[name].params)))
    return found


def _connect_pg(url: DatabaseURL) -> psycopg.Connection[Any]:
    assert url.conninfo is not None
    try:
        return psycopg.connect(url.conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConnectionFailed(
            f"cannot connect to PostgreSQL at {url.redacted}: {url.scrub(first)}; check that "
            "the server is running and the URL"
        ) from e


# The names of the scratch databases parity and drift create; `parity --cleanup` drops exactly
# these, so nothing else on the server can match by accident.
SCRATCH_PREFIXES = ("evstore_parity", "evstore_drift")
SCRATCH_NAME = re.compile(r"evstore_(parity|drift)_[0-9a-f]{12}")


@contextlib.contextmanager
def scratch_postgres(server: DatabaseURL, prefix: str = "evstore_scratch") -> Iterator[DatabaseURL]:
    """A database created on the server for one comparison, dropped afterwards, also when
    the run is interrupted (Ctrl-C, or SIGTERM through the command line's handler)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        # Inside the try: an interrupt right after CREATE must still drop it.
        with _connect_pg(server) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield server.with_database(name)
    finally:
        with _connect_pg(server) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def cleanup_scratch(postgres_url: str | None) -> tuple[list[str], list[str]]:
    """Drop the scratch databases that killed parity or drift runs left on the server.

    Returns (dropped, in use): a database some session is connected to belongs to a run in
    progress and is kept."""
    server = _require_postgres(postgres_url, "--postgres")
    dropped, busy = [], []
    with _connect_pg(server) as admin:
        # A dict of parameters, even empty: the loader doubles the LIKE pattern's %.
        rows = admin.execute(
            queries.sql("postgres", "tooling")["postgres_scratch_databases"], {}
        ).fetchall()
        for name, in_use in rows:
            if not SCRATCH_NAME.fullmatch(name):
                continue
            if in_use:
                busy.append(name)
                continue
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped, busy


def build_postgres(url: DatabaseURL, folder: Folders, schema: str | None = None) -> None:
    migrator = Migrator(url, folder, schema=schema)
    try:
        migrator.apply()
    finally:
        migrator.close()


def build_sqlite(path: Path, folder: Folders) -> DatabaseURL:
    url = parse_url(f"sqlite:///{path}")
    migrator = Migrator(url, folder)
    try:
        migrator.apply()
    finally:
        migrator.close()
    return url


def introspect_sqlite(path: str) -> Schema:
    conn = sqlite3.connect(path)
    try:
        return sqlite_catalog.introspect(conn)
    finally:
        conn.close()


def _require_postgres(url: str | None, option: str) -> DatabaseURL:
    if not url:
        raise InvalidURL(
            f"parity needs a PostgreSQL server: pass {option} postgresql://user@host/db or set "
            "EVSTORE_PG_URL"
        )
    parsed = parse_url(url)
    if parsed.dialect != "postgres":
        raise InvalidURL(f"{option} must be a PostgreSQL URL, not {parsed.redacted}")
    return parsed


def _compare(
    conn: psycopg.Connection[Any], lite: Schema, declared: Declared, schema: str | None = None
) -> tuple[Schema, list[Difference]]:
    schema = schema or _current_schema(conn)
    pg = pg_catalog.introspect(conn, schema)
    normalizer = pg_catalog.ExpressionNormalizer(conn, schema)
    return pg, differences(pg, lite, declared, normalizer)


def _current_schema(conn: psycopg.Connection[Any]) -> str:
    """The schema the connection's search_path resolves to (the URL's options may set it)."""
    row = conn.execute(queries.sql("postgres")["postgres_current_schema"]).fetchone()
    return str(row[0]) if row and row[0] else "public"


def run_parity(
    postgres_url: str | None,
    pg_dir: Folders,
    sqlite_dir: Folders,
    declared_file: Path | Sequence[Path] | None,
) -> Report:
    """Apply each folder to a scratch database through yoyo, then compare the catalogs."""
    server = _require_postgres(postgres_url, "--postgres")
    declared = load_declared(declared_file)
    with tempfile.TemporaryDirectory(prefix="evstore-parity-") as tmp:
        lite_path = Path(tmp) / "parity.db"
        build_sqlite(lite_path, sqlite_dir)
        lite = introspect_sqlite(str(lite_path))
    with scratch_postgres(server, "evstore_parity") as scratch:
        build_postgres(scratch, pg_dir)
        with _connect_pg(scratch) as conn:
            pg, found = _compare(conn, lite, declared)
    found = sorted(found + migration_differences(pg_dir, sqlite_dir)
                   + query_differences(pg_dir, sqlite_dir))
    return Report(found, pg, lite)


def run_live(
    postgres_url: str | None,
    sqlite_url: str,
    declared_file: Path | Sequence[Path] | None,
    schema: str | None = None,
) -> Report:
    """Compare an existing PostgreSQL database with an existing SQLite file, migrating nothing."""
    pg_url = _require_postgres(postgres_url, "--postgres")
    lite_url = parse_url(sqlite_url)
    if lite_url.dialect != "sqlite" or lite_url.is_memory:
        raise InvalidURL("--sqlite must be the URL of a SQLite file: sqlite:///path.db")
    assert lite_url.sqlite_path is not None
    if not Path(lite_url.sqlite_path).exists():
        raise ConnectionFailed(f"SQLite file {lite_url.sqlite_path!r} does not exist")
    declared = load_declared(declared_file)
    lite = introspect_sqlite(lite_url.sqlite_path)
    with _connect_pg(pg_url) as conn:
        pg, found = _compare(conn, lite, declared, schema)
    return Report(sorted(found), pg, lite)


def run_drift(database: DatabaseURL, folder: Folders, schema: str | None = None) -> Report:
    """Build the folder in a scratch database of the same dialect and compare it with the
    live one: every object added, removed or changed by hand. In the report, `postgres`
    holds what the folder builds and `sqlite` what the live database has."""
    if database.dialect == "postgres":
        with _connect_pg(database) as conn:
            schema = schema or _current_schema(conn)
            actual = pg_catalog.introspect(conn, schema)
        # The scratch copy is built in a schema of the same name, so that what the folder
        # builds and what the database has are read from the same place.
        with scratch_postgres(database, "evstore_drift") as scratch:
            build_postgres(scratch, folder, schema)
            with _connect_pg(scratch) as conn:
                expected = pg_catalog.introspect(conn, schema)
    else:
        if database.is_memory:
            raise InvalidURL("drift needs a SQLite file, not :memory:")
        assert database.sqlite_path is not None
        if not Path(database.sqlite_path).exists():
            raise ConnectionFailed(f"SQLite file {database.sqlite_path!r} does not exist")
        with tempfile.TemporaryDirectory(prefix="evstore-drift-") as tmp:
            path = Path(tmp) / "expected.db"
            build_sqlite(path, folder)
            expected = introspect_sqlite(str(path))
        actual = introspect_sqlite(database.sqlite_path)
    return Report(drift(expected, actual), expected, actual)
