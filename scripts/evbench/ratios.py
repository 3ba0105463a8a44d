"""How evstore compares with the others: one rule for the table and for --compare.

A ratio above 1 always means evstore did better: evstore / other for rates, other / evstore
for latencies and sizes. Counts (events missed, no-skip violations) have no ratio: they are
0 or they are a finding.
"""

from __future__ import annotations

HIGHER_IS_BETTER = frozenset({"events/s", "streams/s"})
LOWER_IS_BETTER = frozenset({"ms", "MB", "bytes/event"})

BASELINE = {"sqlite": "raw-sqlite", "postgres": "raw-postgres"}
PEER = {"sqlite": "es-sqlite", "postgres": "es-postgres"}
PEER_BYTES = {"sqlite": "es-sqlite-bytes", "postgres": "es-postgres-bytes"}


def dialect_of(system: str) -> str:
    return "postgres" if "postgres" in system else "sqlite"


def ratio(unit: str, evstore: float | None, other: float | None) -> float | None:
    """evstore's figure against another system's, > 1 when evstore did better."""
    if not evstore or not other:
        return None
    if unit in HIGHER_IS_BETTER:
        return evstore / other
    if unit in LOWER_IS_BETTER:
        return other / evstore
    return None


def best_peer(unit: str, medians: dict[str, float], dialect: str) -> tuple[str, float] | None:
    """The eventsourcing system of this dialect that did best on one workload, if any ran."""
    peers = [(s, v) for s, v in medians.items()
             if s.startswith("es-") and dialect_of(s) == dialect and v]
    if not peers or (unit not in HIGHER_IS_BETTER and unit not in LOWER_IS_BETTER):
        return None
    if unit in HIGHER_IS_BETTER:
        return max(peers, key=lambda p: p[1])
    return min(peers, key=lambda p: p[1])
