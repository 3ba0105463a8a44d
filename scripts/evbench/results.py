"""Every single measurement, and the clock."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Results:
    """Every single measurement: (workload, system) -> list of values, and their units."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # (workload, system) -> why it could not run (an API not there yet, say)
    not_run: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, workload: str, system: str, value: float, unit: str) -> None:
        self.values.setdefault((workload, system), []).append(value)
        self.units[workload] = unit

    def note(self, workload: str, system: str, text: str) -> None:
        self.notes.setdefault((workload, system), []).append(text)

    def median(self, workload: str, system: str) -> float | None:
        v = self.values.get((workload, system))
        return statistics.median(v) if v else None


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    start = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - start


