"""evstore: hand-written SQL migrations for PostgreSQL and SQLite, proven at parity, and the
append-only event store they define."""

from evstore.errors import (
    AppendLockTimeout,
    AppendOnlyViolation,
    CheckpointConflict,
    ChecksumMismatch,
    ConnectionFailed,
    DatabaseError,
    DuplicateEventId,
    EvstoreError,
    InvalidInput,
    InvalidURL,
    MigrationError,
    MigrationFailed,
    MigrationLocked,
    MigrationsNotFound,
    ReadOnlyStore,
    ReplicaLagTimeout,
    SnapshotError,
    StoreClosed,
    UnknownMigration,
    WrongExpectedVersion,
)
from evstore.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from evstore.schema.migrations import MigrationState
from evstore.store import Projection, Store, Tail, Transaction, connect

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendLockTimeout",
    "AppendOnlyViolation",
    "CheckpointConflict",
    "ChecksumMismatch",
    "ConnectionFailed",
    "DatabaseError",
    "DuplicateEventId",
    "EvstoreError",
    "ExpectedVersion",
    "InvalidInput",
    "InvalidURL",
    "MigrationError",
    "MigrationFailed",
    "MigrationLocked",
    "MigrationState",
    "MigrationsNotFound",
    "NewEvent",
    "Projection",
    "ReadOnlyStore",
    "RecordedEvent",
    "ReplicaLagTimeout",
    "Snapshot",
    "SnapshotError",
    "Store",
    "StoreClosed",
    "Tail",
    "Transaction",
    "UnknownMigration",
    "WrongExpectedVersion",
    "connect",
]
