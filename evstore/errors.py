"""The evstore exception hierarchy: every error names the problem and the remedy."""

from __future__ import annotations

from collections.abc import Sequence


class EvstoreError(Exception):
    """An evstore operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidURL(EvstoreError, ValueError):
    """The database URL is malformed or uses a scheme evstore does not know."""


class ConnectionFailed(EvstoreError):
    """The database could not be reached."""


class StoreClosed(EvstoreError):
    """The store is closed; open a new one with evstore.connect(url)."""


class InvalidInput(EvstoreError, ValueError):
    """An argument was refused before anything was written."""


class DatabaseError(EvstoreError):
    """The database refused an operation that evstore has no more specific error for."""


class AppendOnlyViolation(DatabaseError):
    """evstore: event_store is append-only; append a compensating event instead of changing one."""


class MigrationError(EvstoreError):
    """A migration could not be read, applied or rolled back."""


class MigrationsNotFound(MigrationError):
    """The migrations folder does not exist."""


class MigrationFailed(MigrationError):
    """A migration failed and was rolled back."""

    def __init__(self, migration_id: str, statement: str | None, cause: str) -> None:
        self.migration_id = migration_id
        self.statement = statement
        shown = (statement or "(unknown statement)").strip()
        if len(shown) > 500:
            shown = shown[:500] + " ..."
        super().__init__(
            f"migration {migration_id} failed and was rolled back; nothing of it was applied.\n"
            f"  statement: {shown}\n"
            f"  error: {cause.strip()}\n"
            f"Fix the migration file and run migrate again."
        )


class MigrationLocked(MigrationError):
    """Another process holds the migration lock."""


class ChecksumMismatch(MigrationError):
    """A migration applied to the database has changed on disk since it was applied."""

    def __init__(self, migration_ids: Sequence[str], where: str) -> None:
        self.migration_ids = list(migration_ids)
        super().__init__(
            f"applied migration(s) changed on disk since they were applied to {where}: "
            f"{', '.join(self.migration_ids)}. Applied migrations are history: restore the "
            "original file from version control and put the change in a new migration "
            "(`evstore new NAME`)."
        )


class UnknownMigration(MigrationError):
    """The named migration does not exist in the folder."""


class WrongExpectedVersion(EvstoreError):
    """The stream's version is not the one the caller expected."""

    def __init__(self, stream_id: str, expected: object, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        shown_actual = "no stream" if actual is None else str(actual)
        super().__init__(
            f"Wrong expected version: {expected} (Stream: {stream_id!r}, Stream Version: "
            f"{shown_actual}). Read the stream again and retry with its current version."
        )


class DuplicateEventId(EvstoreError):
    """An event id already exists in the log at another place."""

    def __init__(self, event_ids: Sequence[str], detail: str = "") -> None:
        self.event_ids = list(event_ids)
        super().__init__(
            f"event id(s) already stored elsewhere in the log: {', '.join(self.event_ids)}"
            f"{'; ' + detail if detail else ''}. Event ids are unique across the log; "
            "generate new ids (leave event_id=None) for new events."
        )


class AppendLockTimeout(DatabaseError):
    """An append waited too long for the append lock held by another transaction."""

    def __init__(self, what: str, seconds: float, remedy: str) -> None:
        self.seconds = seconds
        super().__init__(
            f"append lock timeout: {what} was not granted within {seconds:g}s because another "
            f"transaction holds it. {remedy} Raise the limit with "
            "evstore.connect(url, lock_timeout=SECONDS) if such waits are expected."
        )


class CheckpointConflict(EvstoreError):
    """A checkpoint was not where the caller expected it; nothing was saved."""

    def __init__(self, name: str, expected: int, actual: int) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checkpoint {name!r} is at {actual}, not at the expected {expected} (a missing "
            "checkpoint counts as 0); another reader moved it first, and nothing was saved. "
            "Read it again with store.checkpoint(name), redo the work after that position "
            "and save with the new expected value, or pass expected=None to overwrite it."
        )


class SnapshotError(EvstoreError, ValueError):
    """A snapshot was refused."""


class MigrationFileMissing(MigrationError):
    """Applied migrations have no file in the folder any more."""

    def __init__(self, migration_ids: Sequence[str], folder: str, where: str) -> None:
        self.migration_ids = list(migration_ids)
        super().__init__(
            f"migration(s) applied to {where} have no file in {folder}: "
            f"{', '.join(self.migration_ids)}. Nothing was changed. Restore the files from "
            "version control (applied migrations are history), or point --pg-dir / "
            "--sqlite-dir at the folder this database was migrated from."
        )


class RollbackFileMissing(MigrationError):
    """A migration to roll back has no .rollback.sql file."""

    def __init__(self, migration_ids: Sequence[str], folder: str) -> None:
        self.migration_ids = list(migration_ids)
        super().__init__(
            f"cannot roll back {', '.join(self.migration_ids)}: no .rollback.sql file in "
            f"{folder}, so yoyo would mark them rolled back while their objects stay. Nothing "
            "was changed. Add the rollback file(s) that undo them, or roll back fewer."
        )


class BadMigrationName(MigrationError):
    """A file in a migrations folder is not named like a migration."""


class ConfirmationRequired(EvstoreError):
    """A destructive operation needs an explicit yes; nothing was changed."""


class RefusedRole(InvalidInput):
    """evstore will not grant the event store's privileges to this role."""


class CopyRefused(EvstoreError):
    """evstore copy will not write to this destination; nothing was written."""


class CopyMismatch(EvstoreError):
    """The copy's destination differs from its source, or the source fails its own digests."""


class ReadOnlyStore(EvstoreError):
    """The store's server is a hot standby, which serves reads only."""

    def __init__(self, message: str | None = None, *, where: str | None = None,
                 operation: str | None = None) -> None:
        if where is not None:
            message = (
                f"{where} is a standby (a PostgreSQL server in recovery), which serves reads "
                f"only: {operation or 'this operation'} writes. Connect to the primary for "
                "writes, or use evstore.connect(primary_url, read_url=standby_url) to read "
                "from the standby and write to the primary"
            )
        elif message is not None:
            message = (f"{message}; the server is a standby or the transaction is read-only: "
                       "write through the primary")
        super().__init__(message)


class ReplicaLagTimeout(EvstoreError):
    """The read server did not reach a position this Store wrote within read_wait_timeout."""

    def __init__(self, where: str, position: int, reached: int, seconds: float) -> None:
        self.position = position
        self.reached = reached
        self.seconds = seconds
        super().__init__(
            f"{where} has events up to position {reached}, not yet {position}, which this "
            f"Store appended; waited {seconds:g}s (read_wait_timeout). The standby lags: check "
            "replication on the primary (SELECT * FROM pg_stat_replication), raise "
            "evstore.connect(..., read_wait_timeout=SECONDS), or read from the primary"
        )
class GroupError(EvstoreError):
    """A consumer group was misconfigured; nothing was processed."""


class MemberOutOfRange(GroupError, InvalidInput):
    """group_member must be from 0 to group_size - 1."""


class MemberClaimed(GroupError):
    """Another live process holds this member of the consumer group."""


class GroupSizeChanged(GroupError):
    """The consumer group has checkpoints or live members of another size."""


class RelayError(EvstoreError):
    """The relay to NATS JetStream stopped; what it acknowledged is checkpointed."""


class RelayMisconfigured(RelayError, InvalidInput):
    """The relay's settings or its JetStream stream are not usable; nothing was published."""
