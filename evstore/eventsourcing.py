"""The eventsourcing library's persistence module for evstore:
PERSISTENCE_MODULE="evstore.eventsourcing" with EVSTORE_DATABASE_URL. The implementation is
evstore.integrations.eventsourcing; this module re-exports it under the short name."""

from evstore.integrations.eventsourcing import (
    CanonicalJSONTranscoder,
    EvstoreAggregateRecorder,
    EvstoreApplicationRecorder,
    EvstoreDatastore,
    EvstoreFactory,
    EvstoreProcessRecorder,
    EvstoreSnapshotRecorder,
    EvstoreSubscription,
    EvstoreTrackingRecorder,
    Factory,
)

__all__ = [
    "CanonicalJSONTranscoder",
    "EvstoreAggregateRecorder",
    "EvstoreApplicationRecorder",
    "EvstoreDatastore",
    "EvstoreFactory",
    "EvstoreProcessRecorder",
    "EvstoreSnapshotRecorder",
    "EvstoreSubscription",
    "EvstoreTrackingRecorder",
    "Factory",
]
