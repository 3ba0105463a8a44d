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
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yoyo
import yoyo.exceptions
from yoyo.backends.core.sqlite3 import SQLiteBackend
from yoyo.migrations import Migration, MigrationList

from evstore.errors import (
    ChecksumMismatch,
    ConnectionFailed,
    MigrationError,
    MigrationFailed,
    MigrationLocked,
    MigrationsNotFound,
    UnknownMigration,
)
from evstore.urls import DatabaseURL, Dialect

CHECKSUM_TABLE = "evstore_migration_checksum"
BASE = "base"  # rollback(to=BASE) undoes every migration


def shipped_sql_dir() -> Path:
    """The sql/ tree: inside the installed wheel, or beside the package in a checkout."""
    packaged = resources.files("evstore").joinpath("sql")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "sql"


def default_dir(dialect: Dialect) -> Path:
    return shipped_sql_dir() / dialect


def migration_sha256(path: Path) -> str:
    """SHA-256 of a migration's forward file and its rollback file, as they are on disk."""
    digest = hashlib.sha256(path.read_bytes())
    rollback = path.with_name(path.name[: -len(".sql")] + ".rollback.sql")
    digest.update(b"\0rollback\0")
    if rollback.exists():
        digest.update(rollback.read_bytes())
    return digest.hexdigest()


# yoyo keeps one process-wide registry of migrations by id and resolves `-- depends:` through it
# when a migration is first loaded. Two folders with the same ids (sql/postgres and sql/sqlite)
# would resolve each other's dependencies, so a folder is read and loaded under this lock, while
# its own migrations are the ones registered.
_REGISTRY_LOCK = threading.Lock()


def read_folder(folder: Path) -> MigrationList:
    """Read and load every migration of one folder through yoyo."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MigrationsNotFound(
            f"migrations folder {str(folder)!r} does not exist; pass the folder that holds "
            "the .sql files (--pg-dir / --sqlite-dir), or omit it to use evstore's own"
        )
    with _REGISTRY_LOCK:
        migrations = yoyo.read_migrations(str(folder))
        try:
            for migration in migrations:
                migration.load()
        except yoyo.exceptions.BadMigration as e:
            raise MigrationError(f"cannot read migrations in {folder}: {e}") from e
    return migrations


@dataclass(frozen=True)
class MigrationState:
    """One migration of a folder and its state in one database."""

    id: str
    applied: bool
    description: str
    checksum: str  # of the file on disk
    applied_checksum: str | None  # recorded when it was applied, if evstore applied it

    @property
    def changed(self) -> bool:
        return self.applied_checksum is not None and self.applied_checksum != self.checksum


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


class Migrator:
    """yoyo's backend for one database plus one folder of migrations."""

    def __init__(
        self,
        url: DatabaseURL,
        folder: Path,
        sqlite_connection: sqlite3.Connection | None = None,
    ) -> None:
        self.url = url
        self.folder = Path(folder)
        self.migrations = read_folder(self.folder)
        self._sqlite_connection = sqlite_connection
        self._backend: Any = None

    @property
    def backend(self) -> Any:
        if self._backend is None:
            try:
                if self.url.is_memory:
                    assert self._sqlite_connection is not None
                    self._backend = _shared_sqlite_backend(self._sqlite_connection)
                else:
                    self._backend = yoyo.get_backend(self.url.yoyo_url)
            except Exception as e:
                raise ConnectionFailed(
                    f"cannot open {self.url.redacted} for migrations: {_first_line(e)}; check "
                    "that the server is running and the URL is right"
                ) from e
        return self._backend

    def close(self) -> None:
        if self._backend is not None and not self.url.is_memory:
            self._backend.connection.close()
        self._backend = None

    # -- checksums ---------------------------------------------------------------------------

    def _has_checksum_table(self) -> bool:
        return CHECKSUM_TABLE in self.backend.list_tables()

    def _recorded_checksums(self) -> dict[str, str]:
        if not self._has_checksum_table():
            return {}
        rows = self.backend.execute(
            f"SELECT migration_id, sha256 FROM {CHECKSUM_TABLE}"
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def _record_checksums(self, migrations: list[Migration]) -> None:
        if not migrations or not self._has_checksum_table():
            return
        backend = self.backend
        with backend.transaction():
            for m in migrations:
                backend.execute(
                    f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = :id", {"id": m.id}
                )
                backend.execute(
                    f"INSERT INTO {CHECKSUM_TABLE} (migration_id, sha256) VALUES (:id, :sha)",
                    {"id": m.id, "sha": migration_sha256(Path(m.path))},
                )

    def _forget_checksum(self, migration: Migration) -> None:
        if self._has_checksum_table():
            with self.backend.transaction():
                self.backend.execute(
                    f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = :id", {"id": migration.id}
                )

    # -- state -------------------------------------------------------------------------------

    def status(self) -> list[MigrationState]:
        applied = set(self.backend.get_applied_migration_hashes())
        recorded = self._recorded_checksums()
        return [
            MigrationState(
                id=m.id,
                applied=m.hash in applied,
                description=(m.module.__doc__ or "").strip().splitlines()[0]
                if m.module is not None and m.module.__doc__
                else "",
                checksum=migration_sha256(Path(m.path)),
                applied_checksum=recorded.get(m.id),
            )
            for m in self.migrations
        ]

    def check_checksums(self) -> None:
        changed = [s.id for s in self.status() if s.applied and s.changed]
        if changed:
            raise ChecksumMismatch(changed, self.url.redacted)

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        try:
            with self.backend.lock(timeout=timeout):
                yield
        except yoyo.exceptions.LockTimeout as e:
            raise MigrationLocked(
                f"the migration lock of {self.url.redacted} is held: {e}. If no migration is "
                "running (a deploy was killed), remove the lock with `evstore migrate "
                "--break-lock` or `yoyo break-lock`"
            ) from e

    def break_lock(self) -> None:
        self.backend.break_lock()

    # -- apply and rollback ------------------------------------------------------------------

    def apply(self, lock_timeout: float = 10) -> list[str]:
        """Apply every pending migration in order; returns the ids applied."""
        backend = self.backend
        with self._locked(lock_timeout):
            self.check_checksums()
            pending = list(backend.to_apply(self.migrations))
            done: list[Migration] = []
            for migration in pending:
                self._run(migration, "apply")
                done.append(migration)
            # Migrations applied before the checksum table existed (or by plain `yoyo apply`)
            # get their checksum now; ones already recorded were verified above.
            recorded = self._recorded_checksums()
            applied = set(backend.get_applied_migration_hashes())
            self._record_checksums(
                [m for m in self.migrations if m.hash in applied and m.id not in recorded]
            )
        return [m.id for m in done]

    def rollback(
        self, to: str | None = None, count: int | None = None, lock_timeout: float = 10
    ) -> list[str]:
        """Roll back the last migration, `count` of them, or every one applied after `to`.

        to=BASE ("base") rolls back everything. Returns the ids rolled back, newest first.
        """
        ids = [m.id for m in self.migrations]
        if to is not None and to != BASE and to not in ids:
            raise UnknownMigration(
                f"no migration {to!r} in {self.folder}; known ids: {', '.join(ids)} "
                f"(or {BASE!r} to roll back everything)"
            )
        backend = self.backend
        with self._locked(lock_timeout):
            applied = list(backend.to_rollback(self.migrations))  # newest first
            if to == BASE:
                targets = applied
            elif to is not None:
                keep = ids.index(to)
                targets = [m for m in applied if ids.index(m.id) > keep]
            else:
                targets = applied[: 1 if count is None else count]
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
                    f"{migration.id} ({direction})", recorder.last, _first_line(e)
                ) from e
        if direction == "apply":
            self._record_checksums([migration])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
