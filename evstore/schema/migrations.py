"""Running the SQL folders through yoyo's own API: apply, rollback, status and checksums.

evstore never executes migration files itself. It reads a folder with yoyo.read_migrations,
takes yoyo's lock, and lets yoyo apply or roll back each migration; around that it adds what
yoyo lacks: errors that name the failing statement, and content checksums of applied files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yoyo
import yoyo.exceptions
from yoyo.backends.core.sqlite3 import SQLiteBackend
from yoyo.migrations import Migration, MigrationList

from evstore.dialects import queries
from evstore.errors import (
    BadMigrationName,
    ChecksumMismatch,
    ConnectionFailed,
    InvalidInput,
    MigrationError,
    MigrationFailed,
    MigrationFileMissing,
    MigrationLocked,
    MigrationsNotFound,
    RollbackFileMissing,
    UnknownMigration,
)
from evstore.urls import DatabaseURL, Dialect

# Where the checksums of applied files live. Migration 0008 creates evstore_migration_checksum,
# so rolling 0008 back used to lose every checksum, and a file edited meanwhile was recorded
# afresh on the next migrate. The guard keeps its own copy in a table it creates itself, beside
# yoyo's bookkeeping and outside the migration list, so no rollback drops it; 0008's table is
# still written (and read, for databases migrated before this table existed).
# The statements on yoyo's bookkeeping (its migration and lock tables, and the checksum tables
# beside them) are the named queries of sql/tooling/<dialect>.sql, run on yoyo's own connection
# while it holds the lock, else on a plain one that writes nothing.
LEGACY_CHECKSUM_TABLE = "evstore_migration_checksum"
CHECKSUM_TABLE = "_yoyo_evstore_checksum"
# Each checksum table's named queries: read every row, delete one, insert one. The legacy
# table comes first, so that evstore's own table wins when both are read.
_CHECKSUM_QUERIES = {
    LEGACY_CHECKSUM_TABLE: ("legacy_checksums", "delete_legacy_checksum",
                            "insert_legacy_checksum"),
    CHECKSUM_TABLE: ("checksums", "delete_checksum", "insert_checksum"),
}
YOYO_MIGRATION_TABLE = "_yoyo_migration"
YOYO_LOCK_TABLE = "yoyo_lock"
BASE = "base"  # rollback(to=BASE) undoes every migration

# What evstore reads as a migration file: a number, an underscore, a plain name.
MIGRATION_NAME = re.compile(r"(?:[a-z][a-z0-9]*_)?[0-9]+_[A-Za-z0-9_]+(\.rollback)?\.sql")


def shipped_sql_dir() -> Path:
    """The sql/ tree: inside the installed wheel, or beside the package in a checkout."""
    packaged = resources.files("evstore").joinpath("sql")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql"


def default_dir(dialect: Dialect) -> Path:
    return shipped_sql_dir() / dialect


def rollback_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(".sql")] + ".rollback.sql")


def migration_sha256(path: Path) -> str:
    """SHA-256 of a migration's forward file and its rollback file, as they are on disk."""
    digest = hashlib.sha256(path.read_bytes())
    rollback = rollback_path(path)
    digest.update(b"\0rollback\0")
    if rollback.exists():
        digest.update(rollback.read_bytes())
    return digest.hexdigest()


def check_names(folder: Path) -> None:
    """Refuse files that yoyo would skip or misread: `0001_x.SQL` is silently ignored by yoyo,
    `foo.sql` and names with spaces become odd ids, and a `.py` file would be run as Python."""
    odd = sorted(
        p.name for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in {".sql", ".py"}
        and not MIGRATION_NAME.fullmatch(p.name)
    )
    if odd:
        shown = ", ".join(f"'{name}'" for name in odd)  # the printer escapes controls
        raise BadMigrationName(
            f"{folder} holds file(s) not named like a migration: {shown}. evstore reads only "
            "NNNN_name.sql and NNNN_name.rollback.sql (ASCII letters, digits and _, lower-case "
            ".sql); rename them (`evstore new NAME` makes a pair) or move them out of the folder"
        )


# yoyo keeps one process-wide registry of migrations by id and resolves `-- depends:` through it
# when a migration is first loaded. Two folders with the same ids (sql/postgres and sql/sqlite)
# would resolve each other's dependencies, so a folder is read and loaded under this lock, while
# its own migrations are the ones registered.
_REGISTRY_LOCK = threading.Lock()


Folders = Path | str | Sequence[Path | str]


def as_folders(folders: Folders) -> list[Path]:
    """One folder or several, as a list of paths."""
    if isinstance(folders, Path | str):
        return [Path(folders)]
    return [Path(f) for f in folders]


def read_folder(folders: Folders) -> MigrationList:
    """Read and load every migration of one folder, or of several folders in order (evstore's
    own first, then an application's), through yoyo.

    Several folders are read by one yoyo call, so a migration may depend (`-- depends:`) on one
    in an earlier folder; their ids must differ, since yoyo keys migrations by id."""
    paths = as_folders(folders)
    for folder in paths:
        if not folder.is_dir():
            raise MigrationsNotFound(
                f"migrations folder {str(folder)!r} does not exist; pass the folder that holds "
                "the .sql files (--pg-dir / --sqlite-dir), or omit it to use evstore's own"
            )
    shown = ", ".join(str(f) for f in paths)
    try:
        for folder in paths:
            check_names(folder)
        _check_distinct_ids(paths)
        with _REGISTRY_LOCK:
            migrations = yoyo.read_migrations(*(str(f) for f in paths))
            for migration in migrations:
                migration.load()
    except yoyo.exceptions.BadMigration as e:
        raise MigrationError(f"cannot read migrations in {shown}: {e}") from e
    except UnicodeDecodeError as e:
        raise MigrationError(
            f"a migration file in {shown} is not UTF-8 text ({e.reason}); save it as UTF-8"
        ) from e
    except OSError as e:
        raise MigrationsNotFound(
            f"cannot read migrations folder(s) {shown}: {e.strerror}; check their permissions"
        ) from e
    return migrations


def _check_distinct_ids(paths: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for folder in paths:
        for path in sorted(folder.glob("*.sql")):
            if path.name.endswith(".rollback.sql"):
                continue
            mid = path.name[: -len(".sql")]
            if mid in seen and seen[mid] != folder:
                raise MigrationError(
                    f"migration id {mid} is in both {seen[mid]} and {folder}; yoyo keys "
                    "migrations by id, so an application's migrations need ids of their own "
                    "(start them with a prefix, such as app_0001_orders.sql)"
                )
            seen[mid] = folder


@dataclass(frozen=True)
class MigrationState:
    """One migration of a folder (or, with file_missing, of the database only) and its state."""

    id: str
    applied: bool
    description: str
    checksum: str  # of the file on disk ("" when the file is missing)
    applied_checksum: str | None  # recorded when it was applied, if evstore applied it
    file_missing: bool = False  # applied, but the folder has no file for it

    @property
    def changed(self) -> bool:
        return self.applied_checksum is not None and self.applied_checksum != self.checksum


@dataclass(frozen=True)
class _Recorded:
    """What a database says about its migrations, read without writing anything."""

    applied: dict[str, str]  # migration id -> yoyo's hash of the id
    checksums: dict[str, str]  # migration id -> sha256 recorded when applied
    tables: frozenset[str]


class _Bookkeeping:
    """One connection, yoyo's or a plain one, running the named queries of
    sql/tooling/<dialect>.sql."""

    def __init__(self, dialect: Dialect, connection: Any) -> None:
        self.dialect = dialect
        self.connection = connection  # sqlite3 or psycopg: both take the loader's text

    def run(self, name: str, **params: str) -> Any:
        """Execute one named query; returns the driver's cursor."""
        # Always a dict of parameters, even empty: on PostgreSQL the loader doubles each
        # literal %, which psycopg undoes only when it is given parameters.
        return self.connection.execute(queries.sql(self.dialect, "tooling")[name], params)

    def rows(self, name: str, **params: str) -> list[tuple[Any, ...]]:
        return list(self.run(name, **params).fetchall())

    def tables(self) -> frozenset[str]:
        return frozenset(str(r[0]) for r in self.rows("list_tables"))

    def has_rows(self, table: str) -> bool:
        """Whether a table holds a row: the one statement here built from a name, which a
        rollback file gives."""
        if self.dialect == "postgres":
            from psycopg import sql

            statement: Any = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier(table)
            )
        else:
            from evstore.dialects.sqlite import quote_identifier

            statement = f"SELECT EXISTS (SELECT 1 FROM {quote_identifier(table)})"
        row = self.connection.execute(statement).fetchone()
        return bool(row and row[0])


def _read_recorded(book: _Bookkeeping, tables: frozenset[str]) -> _Recorded:
    applied: dict[str, str] = {}
    if YOYO_MIGRATION_TABLE in tables:
        for mid, mhash in book.rows("applied_migrations"):
            applied[str(mid)] = str(mhash)
    checksums: dict[str, str] = {}
    for table, (read, _delete, _insert) in _CHECKSUM_QUERIES.items():
        if table in tables:
            checksums.update((str(m), str(h)) for m, h in book.rows(read))
    return _Recorded(applied, checksums, tables)

# DROP TABLE [IF EXISTS] a, "b", s.c [CASCADE]: the tables a rollback file drops.
_DROP_TABLE = re.compile(
    r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?((?:[\w.]+|\"[^\"]+\")(?:\s*,\s*(?:[\w.]+|\"[^\"]+\"))*)",
    re.IGNORECASE,
)


# ALTER TABLE [IF EXISTS] [ONLY] t DROP [COLUMN] [IF EXISTS] c: a column's data is lost too.
_DROP_COLUMN = re.compile(
    r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.]+|\"[^\"]+\")\s+"
    r"DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(\w+|\"[^\"]+\")",
    re.IGNORECASE,
)


def _unquote(name: str) -> str:
    name = name.strip().rsplit(".", 1)[-1]
    return name[1:-1] if name.startswith('"') else name.lower()


def dropped_tables(migration: Migration) -> list[str]:
    """The tables that rolling back `migration` drops, read from its .rollback.sql file."""
    return [table for table, column in dropped_data(migration) if column is None]


def dropped_data(migration: Migration) -> list[tuple[str, str | None]]:
    """(table, None) for each table and (table, column) for each column that rolling back
    `migration` drops, read from its .rollback.sql file."""
    path = rollback_path(Path(migration.path))
    if not path.exists():
        return []
    text = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    found: list[tuple[str, str | None]] = []
    for m in _DROP_TABLE.finditer(text):
        found += [(_unquote(name), None) for name in m.group(1).split(",")]
    for m in _DROP_COLUMN.finditer(text):
        if m.group(2).upper() not in {"CONSTRAINT", "DEFAULT", "NOT"}:
            found.append((_unquote(m.group(1)), _unquote(m.group(2))))
    return found


@dataclass(frozen=True)
class Drop:
    """A table (or one of its columns) that a planned rollback drops, and whether the table
    holds rows now."""

    migration_id: str
    table: str
    has_rows: bool
    column: str | None = None

    @property
    def what(self) -> str:
        return self.table if self.column is None else f"column {self.column} of {self.table}"


class _StatementRecorder(logging.Handler):
    """Remembers the last statement yoyo logged before executing it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == " - executing %r" and record.args:
            stmt = record.args[0] if isinstance(record.args, tuple) else record.args
            self.last = stmt.decode("ascii", "replace") if isinstance(stmt, bytes) else str(stmt)


@contextmanager
def _recording_statements() -> Iterator[_StatementRecorder]:
    logger = logging.getLogger("yoyo.migrations")
    recorder = _StatementRecorder()
    saved_level = logger.level
    logger.addHandler(recorder)
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(saved_level)


def _shared_sqlite_backend(connection: sqlite3.Connection) -> Any:
    """A yoyo SQLite backend on an existing connection (an in-memory database has only one)."""

    class SharedConnectionBackend(SQLiteBackend):  # type: ignore[misc]
        def connect(self, dburi: Any) -> sqlite3.Connection:
            return connection

        def __exit__(self, *exc: object) -> None:
            # yoyo closes the copy it applies each migration with; this connection stays open.
            return None

    from yoyo.connections import parse_uri

    backend = SharedConnectionBackend(parse_uri("sqlite:///:memory:"), "_yoyo_migration")
    backend.init_database()
    return backend


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OverflowError:
        return False
    return True


class Migrator:
    """yoyo's backend for one database plus one folder of migrations.

    Reading (status, plans, dry runs) goes through a plain connection that writes nothing and
    takes no lock (read-only on SQLite, and a missing SQLite file counts as empty, without
    being created); only apply, rollback and break_lock open yoyo's backend."""

    def __init__(
        self,
        url: DatabaseURL,
        folder: Folders,
        sqlite_connection: sqlite3.Connection | None = None,
        schema: str | None = None,
    ) -> None:
        self.url = url
        self.folders = as_folders(folder)
        self.folder = self.folders[-1]
        self.schema = schema
        self.migrations = read_folder(self.folders)
        self._sqlite_connection = sqlite_connection
        self._backend: Any = None
        self._ballast: Path | None = None

    @property
    def backend(self) -> Any:
        if self._backend is None:
            try:
                if self.url.is_memory:
                    assert self._sqlite_connection is not None
                    self._backend = _shared_sqlite_backend(self._sqlite_connection)
                else:
                    self._ensure_schema()
                    self._backend = yoyo.get_backend(self._yoyo_url())
            except Exception as e:
                raise ConnectionFailed(
                    f"cannot open {self.url.redacted} for migrations: "
                    f"{self.url.scrub(_first_line(e))}; check that the server is running and "
                    "the URL is right"
                ) from e
        return self._backend

    def _yoyo_url(self) -> str:
        """yoyo's URL, with the schema as yoyo's own `schema` parameter: yoyo then sets
        search_path on its connection, so its tables and evstore's land in that schema."""
        url = self.url.yoyo_url
        if self.schema is None:
            return url
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query["schema"] = self.schema
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _ensure_schema(self) -> None:
        """Create the named schema before yoyo connects to it (migrate only; reading never
        creates anything)."""
        if self.schema is None or self.url.dialect != "postgres":
            return
        import psycopg
        from psycopg import sql

        assert self.url.conninfo is not None
        try:
            with psycopg.connect(self.url.conninfo, autocommit=True, connect_timeout=10) as pg:
                pg.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.schema)))
        except psycopg.Error as e:
            raise ConnectionFailed(
                f"cannot create schema {self.schema!r} in {self.url.redacted}: "
                f"{self.url.scrub(_first_line(e))}; create it as its owner, or grant CREATE "
                "on the database to the migrating role"
            ) from e

    def close(self) -> None:
        if self._backend is not None and not self.url.is_memory:
            self._backend.connection.close()
        self._backend = None

    # -- reading without writing -------------------------------------------------------------

    def _bookkeeping(self) -> _Bookkeeping:
        """The named bookkeeping queries on yoyo's connection (opening it if needed)."""
        return _Bookkeeping(self.url.dialect, self.backend.connection)

    @contextmanager
    def _reader(self) -> Iterator[tuple[_Bookkeeping, frozenset[str]] | None]:
        """(bookkeeping queries, table names) on a connection that changes nothing; None for a
        SQLite file that does not exist yet. Inside a lock, yoyo's own connection is used."""
        if self._backend is not None:
            yield self._bookkeeping(), frozenset(self._backend.list_tables())
            return
        if self.url.dialect == "sqlite":
            if self.url.is_memory:
                assert self._sqlite_connection is not None
                book = _Bookkeeping("sqlite", self._sqlite_connection)
                yield book, book.tables()
                return
            assert self.url.sqlite_path is not None
            path = Path(self.url.sqlite_path)
            if not path.exists():
                yield None
                return
            try:
                lite = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
                book = _Bookkeeping("sqlite", lite)
                tables = book.tables()
            except sqlite3.Error as e:
                raise ConnectionFailed(
                    f"cannot read SQLite database {str(path)!r}: {e}; check that it is a "
                    "SQLite database and that you may read it"
                ) from e
            try:
                yield book, tables
            finally:
                lite.close()
            return
        import psycopg

        assert self.url.conninfo is not None
        from evstore.dialects.postgres import connect_args

        try:
            pg = psycopg.connect(self.url.conninfo, **connect_args(self.url, self.schema))
        except psycopg.Error as e:
            raise ConnectionFailed(
                f"cannot connect to {self.url.redacted}: {self.url.scrub(_first_line(e))}; "
                "check that the server is running, and the host, port, database name and "
                "credentials in the URL"
            ) from e
        try:
            book = _Bookkeeping("postgres", pg)
            yield book, book.tables()
        finally:
            pg.close()

    def _recorded(self) -> _Recorded:
        with self._reader() as reader:
            if reader is None:
                return _Recorded({}, {}, frozenset())
            return _read_recorded(*reader)

    def status(self) -> list[MigrationState]:
        recorded = self._recorded()
        known = {m.id for m in self.migrations}
        states = [
            MigrationState(
                id=m.id,
                applied=m.id in recorded.applied,
                description=(m.module.__doc__ or "").strip().splitlines()[0]
                if m.module is not None and m.module.__doc__
                else "",
                checksum=migration_sha256(Path(m.path)),
                applied_checksum=recorded.checksums.get(m.id),
            )
            for m in self.migrations
        ]
        states += [
            MigrationState(id=mid, applied=True, description="", checksum="",
                           applied_checksum=recorded.checksums.get(mid), file_missing=True)
            for mid in sorted(set(recorded.applied) - known)
        ]
        return states

    def verify(self, recorded: _Recorded | None = None, *, missing_files: bool = True) -> None:
        """Refuse when an applied migration's file changed since it was applied, or (with
        missing_files) is gone from the folder.

        apply() passes missing_files=False: a database may carry migrations of a second folder
        (yoyo reads several), and applying more does not depend on them; rolling back, the
        plans and the command line refuse."""
        recorded = recorded or self._recorded()
        by_id = {m.id: m for m in self.migrations}
        missing = sorted(set(recorded.applied) - set(by_id))
        if missing and missing_files:
            raise MigrationFileMissing(missing, str(self.folder), self.url.redacted)
        changed = [
            mid for mid in recorded.applied
            if mid in by_id and mid in recorded.checksums
            and recorded.checksums[mid] != migration_sha256(Path(by_id[mid].path))
        ]
        if changed:
            raise ChecksumMismatch(sorted(changed), self.url.redacted)

    def check_checksums(self) -> None:
        self.verify()

    def plan_apply(self) -> list[Migration]:
        """The migrations `apply` would run, in order; verifies applied files first."""
        recorded = self._recorded()
        self.verify(recorded)
        return [m for m in self.migrations if m.id not in recorded.applied]

    def plan_rollback(self, to: str | None = None, count: int | None = None) -> list[Migration]:
        """The migrations `rollback` would undo, newest first; verifies every applied file and
        that each target has a rollback file."""
        return self._targets(self._recorded(), to, count)

    def _targets(self, recorded: _Recorded, to: str | None, count: int | None) -> list[Migration]:
        ids = [m.id for m in self.migrations]
        if to is not None and to != BASE and to not in ids:
            raise UnknownMigration(
                f"no migration {to!r} in {self.folder}; known ids: {', '.join(ids)} "
                f"(or {BASE!r} to roll back everything)"
            )
        if to is None and count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise InvalidInput(
                f"count must be a whole number of at least 1, not {count!r}; use to='base' "
                "(--to base) to roll back everything"
            )
        self.verify(recorded)
        applied = [m for m in reversed(self.migrations) if m.id in recorded.applied]
        if to == BASE:
            targets = applied
        elif to is not None:
            keep = ids.index(to)
            targets = [m for m in applied if ids.index(m.id) > keep]
        else:
            targets = applied[: 1 if count is None else count]
        no_file = [m.id for m in targets if not rollback_path(Path(m.path)).exists()]
        if no_file:
            raise RollbackFileMissing(no_file, str(self.folder))
        return targets

    def drops(self, targets: list[Migration]) -> list[Drop]:
        """Every table the rollback of `targets` drops that exists now, with whether it holds
        rows; read from the rollback files and the live database, changing nothing."""
        wanted = [(m.id, t, c) for m in targets for t, c in dropped_data(m)]
        if not wanted:
            return []
        found = []
        with self._reader() as reader:
            if reader is None:
                return []
            book, tables = reader
            for mid, table, column in wanted:
                if table in tables:
                    found.append(Drop(mid, table, book.has_rows(table), column))
        return found

    # -- the lock ----------------------------------------------------------------------------

    def lock_holder(self) -> int | None:
        """The pid recorded in yoyo's lock table, if a lock is held."""
        with self._reader() as reader:
            if reader is None or YOYO_LOCK_TABLE not in reader[1]:
                return None
            rows = reader[0].rows("migration_lock_pid")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def _lock_message(self, pid: int | None) -> str:
        where = f"the migration lock of {self.url.redacted}"
        if pid is None:
            return (f"{where} is held. If no migration is running (a deploy was killed), "
                    "remove the lock with `evstore migrate --break-lock`")
        if pid_alive(pid):
            return (f"{where} is held by process {pid}, which is running on this host; wait "
                    "for it to finish, then run the command again (only if that process is not "
                    "a migration, since pids are reused, remove the lock with "
                    "`evstore migrate --break-lock`)")
        elsewhere = (" (if the lock was taken on another machine, check that no migration "
                     "runs there)" if self.url.dialect == "postgres" else "")
        return (f"{where} is held by process {pid}, which is not running on this host: a "
                f"killed migration left it{elsewhere}. Remove it with "
                "`evstore migrate --break-lock`")

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        # yoyo's own lock() cannot report a failed release; its two halves are used directly.
        with self._space_reserved():
            backend = self.backend
            try:
                backend._insert_lock_row(os.getpid(), timeout)
            except yoyo.exceptions.LockTimeout as e:
                raise MigrationLocked(self._lock_message(self.lock_holder())) from e
            except backend.DatabaseError as e:
                # yoyo ignores a failure to create its lock table; a full disk then shows
                # here as "no such table: yoyo_lock".
                raise MigrationError(
                    f"cannot take the migration lock of {self.url.redacted}: "
                    f"{self._cause(e)}; nothing was changed. Check that the disk has free "
                    "space and the database is writable"
                ) from e
            backend._is_locked = True
            try:
                yield
            except backend.DatabaseError as e:
                # yoyo's bookkeeping (outside a migration's own statements) failed.
                raise MigrationError(
                    f"migrating {self.url.redacted} stopped: {self._cause(e)}. yoyo applies "
                    "and records a migration in two steps, so check `evstore status` and "
                    "`evstore drift` before running the command again"
                ) from e
            finally:
                backend._is_locked = False
                self._release(backend)

    # On a full disk SQLite cannot even delete the lock row: the delete needs new WAL frames,
    # and a checkpoint needs the database file to grow. So a SQLite run keeps a small ballast
    # file beside the database while it holds the lock, and deletes it to make room for the
    # release if the first try fails.
    BALLAST_BYTES = 64 * 1024

    @contextmanager
    def _space_reserved(self) -> Iterator[None]:
        if self.url.dialect != "sqlite" or self.url.is_memory:
            yield
            return
        assert self.url.sqlite_path is not None
        self._ballast = Path(self.url.sqlite_path + "-evstore-ballast")
        try:
            with open(self._ballast, "wb") as f:
                f.write(bytes(self.BALLAST_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            self._ballast.unlink(missing_ok=True)
            raise MigrationError(
                f"cannot write beside {self.url.sqlite_path!r} ({e.strerror}); nothing was "
                "changed. Free space on its disk (or fix its folder's permissions) and run the "
                "command again"
            ) from e
        try:
            yield
        finally:
            self._ballast.unlink(missing_ok=True)

    def _release(self, backend: Any) -> None:
        """Delete our lock row; on failure, drop the ballast and try again.

        A failed step can leave yoyo believing a transaction is open, and its next
        transaction() would then be a savepoint that is never committed: the connection is
        rolled back and yoyo's flag reset first."""
        for attempt in (1, 2):
            try:
                backend.connection.rollback()
            except backend.DatabaseError:
                pass
            backend._in_transaction = False
            try:
                backend._delete_lock_row(os.getpid())
                return
            except backend.DatabaseError as e:
                if self._ballast is not None:
                    self._ballast.unlink(missing_ok=True)
                if attempt == 2:
                    raise MigrationError(
                        f"could not remove the migration lock of {self.url.redacted}: "
                        f"{self._cause(e)}. Fix the cause, then run "
                        "`evstore migrate --break-lock`"
                    ) from e

    def _cause(self, error: BaseException) -> str:
        text = self.url.scrub(_first_line(error))
        if "full" in text.lower() or "No space" in text:
            where = (f"the disk holding {self.url.sqlite_path!r}" if self.url.sqlite_path
                     else "the server's disk")
            text += f" (free space on {where})"
        return text

    def break_lock(self) -> None:
        self.backend.break_lock()

    # -- apply and rollback ------------------------------------------------------------------

    def _ensure_checksum_table(self) -> None:
        with self.backend.transaction():
            self._bookkeeping().run("create_checksum_table")

    def _record_checksums(self, recorded: _Recorded) -> None:
        """Give every applied migration a checksum row in evstore's table (and in 0008's, when
        it exists): the recorded one if there is one (it was verified), else the file's."""
        backend = self.backend
        book = self._bookkeeping()
        tables = set(backend.list_tables())
        own = dict(_read_recorded(book, frozenset({CHECKSUM_TABLE} & tables)).checksums)
        legacy = dict(_read_recorded(book, frozenset({LEGACY_CHECKSUM_TABLE} & tables)).checksums)
        by_id = {m.id: m for m in self.migrations}
        with backend.transaction():
            # Rows of migrations no longer applied (rolled back by plain `yoyo rollback`).
            for table, rows in ((CHECKSUM_TABLE, own), (LEGACY_CHECKSUM_TABLE, legacy)):
                for mid in set(rows) - set(recorded.applied):
                    book.run(_CHECKSUM_QUERIES[table][1], id=mid)
            for mid in recorded.applied:
                if mid not in by_id:
                    continue
                sha = recorded.checksums.get(mid) or migration_sha256(Path(by_id[mid].path))
                for table, rows in ((CHECKSUM_TABLE, own), (LEGACY_CHECKSUM_TABLE, legacy)):
                    if table in tables and rows.get(mid) != sha:
                        _read, delete, insert = _CHECKSUM_QUERIES[table]
                        book.run(delete, id=mid)
                        book.run(insert, id=mid, sha=sha)

    def _forget_checksum(self, migration: Migration) -> None:
        backend = self.backend
        tables = set(backend.list_tables())
        with backend.transaction():
            for table in (CHECKSUM_TABLE, LEGACY_CHECKSUM_TABLE):
                if table in tables:
                    self._bookkeeping().run(_CHECKSUM_QUERIES[table][1], id=migration.id)

    def _recorded_locked(self) -> _Recorded:
        backend = self.backend
        # yoyo upgrades its own tables on first use; do it now, under our lock.
        backend.get_applied_migration_hashes()
        return _read_recorded(self._bookkeeping(), frozenset(backend.list_tables()))

    def apply(self, lock_timeout: float = 10, expect: list[str] | None = None) -> list[str]:
        """Apply every pending migration in order; returns the ids applied.

        With `expect`, refuse unless exactly those ids are pending (a plan shown to a person)."""
        with self._locked(lock_timeout):
            self._ensure_checksum_table()
            recorded = self._recorded_locked()
            self.verify(recorded, missing_files=False)
            # Checksums of migrations applied before evstore's table existed, or by plain
            # `yoyo apply`, are recorded now; ones already recorded were verified above.
            self._record_checksums(recorded)
            pending = [m for m in self.migrations if m.id not in recorded.applied]
            if expect is not None and [m.id for m in pending] != expect:
                raise MigrationError(
                    "the pending migrations changed since the plan was made; nothing was "
                    "applied. Run the command again"
                )
            done: list[Migration] = []
            for migration in pending:
                self._run(migration, "apply")
                done.append(migration)
            self._record_checksums(self._recorded_locked())
        return [m.id for m in done]

    def rollback(
        self,
        to: str | None = None,
        count: int | None = None,
        lock_timeout: float = 10,
        expect: list[str] | None = None,
    ) -> list[str]:
        """Roll back the last migration, `count` of them, or every one applied after `to`.

        to=BASE ("base") rolls back everything. Returns the ids rolled back, newest first.
        Every applied file is verified first; with `expect`, refuse unless exactly those ids
        would be rolled back (a plan a person confirmed)."""
        # Refuse bad input and changed files before taking the lock (or creating a database).
        if not self._targets(self._recorded(), to, count):
            return []
        with self._locked(lock_timeout):
            self._ensure_checksum_table()
            recorded = self._recorded_locked()
            targets = self._targets(recorded, to, count)
            if expect is not None and [m.id for m in targets] != expect:
                raise MigrationError(
                    "the migrations to roll back changed since the plan was confirmed; nothing "
                    "was rolled back. Run the command again"
                )
            self._record_checksums(recorded)
            for migration in targets:
                self._run(migration, "rollback")
                self._forget_checksum(migration)
        return [m.id for m in targets]

    def _run(self, migration: Migration, direction: str) -> None:
        # yoyo prints the rows of any statement that returns some (SQLite's ALTER TABLE ... ADD
        # COLUMN with a CHECK does); evstore's own output, --json above all, stays clean.
        with _recording_statements() as recorder, contextlib.redirect_stdout(io.StringIO()):
            try:
                if direction == "apply":
                    self.backend.apply_one(migration)
                else:
                    self.backend.rollback_one(migration)
            except self.backend.DatabaseError as e:
                raise MigrationFailed(
                    f"{migration.id} ({direction})", recorder.last, self._cause(e)
                ) from e
        if direction == "apply":
            self._record_checksums(self._recorded_locked())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
