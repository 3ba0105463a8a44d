"""--compare OLD.json NEW.json: how each of evstore's ratios moved between two runs.

For every workload and evstore system: the ratio to the raw driver of its dialect and to the
best eventsourcing system of its dialect, in the old run and in the new one. A ratio that
dropped by more than the threshold fails the comparison (exit 1), so an issue that touches the
append path can quote this output in its note. Exit 2: a file that cannot be compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evbench.ratios import BASELINE, best_peer, dialect_of, ratio


class CompareError(Exception):
    """A run file that cannot be read or is not a scripts/bench.py --json file."""


@dataclass(frozen=True, order=True)
class Ratio:
    workload: str
    system: str
    against: str  # "raw" or "best es"
    other: str  # the system it was measured against
    value: float


def load_run(path: str) -> dict[tuple[str, str], tuple[float, str]]:
    """(workload, system) -> (median, unit) from a --json file, or CompareError saying why
    the file cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise CompareError(f"cannot read {path}: {e.strerror or e}; give the path of a file "
                           "that scripts/bench.py --json wrote") from e
    except UnicodeDecodeError as e:
        raise CompareError(f"{path} is not text ({e.reason}); give a file that "
                           "scripts/bench.py --json wrote") from e
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise CompareError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: "
                           f"{e.msg}); was it cut short? Write it again with scripts/bench.py "
                           "--json") from e
    measurements = doc.get("measurements") if isinstance(doc, dict) else None
    if not isinstance(measurements, list):
        raise CompareError(f"{path} has no list of measurements; it is not a file that "
                           "scripts/bench.py --json wrote")
    out: dict[tuple[str, str], tuple[float, str]] = {}
    for k, m in enumerate(measurements):
        try:
            key = (str(m["workload"]), str(m["system"]))
            median, unit = m["median"], str(m["unit"])
        except (TypeError, KeyError) as e:
            raise CompareError(f"{path}: measurement {k + 1} lacks workload, system, unit or "
                               "median; it is not a file that scripts/bench.py --json wrote"
                               ) from e
        if isinstance(median, bool) or not isinstance(median, int | float):
            raise CompareError(f"{path}: measurement {k + 1} ({key[0]}, {key[1]}) has a "
                               f"median of {median!r}, not a number")
        out[key] = (float(median), unit)
    return out


def ratios(run: dict[tuple[str, str], tuple[float, str]]) -> dict[tuple[str, str, str], Ratio]:
    """Every ratio of an evstore system in one run, keyed by (workload, system, against)."""
    by_workload: dict[str, dict[str, float]] = {}
    units: dict[str, str] = {}
    for (workload, system), (median, unit) in run.items():
        by_workload.setdefault(workload, {})[system] = median
        units[workload] = unit
    out: dict[tuple[str, str, str], Ratio] = {}
    for workload, medians in by_workload.items():
        unit = units[workload]
        for system, median in medians.items():
            if not system.startswith("evstore-"):
                continue
            dialect = dialect_of(system)
            raw = BASELINE[dialect]
            r = ratio(unit, median, medians.get(raw))
            if r is not None:
                out[(workload, system, "raw")] = Ratio(workload, system, "raw", raw, r)
            peer = best_peer(unit, medians, dialect)
            if peer is not None:
                r = ratio(unit, median, peer[1])
                if r is not None:
                    out[(workload, system, "best es")] = Ratio(workload, system, "best es",
                                                               peer[0], r)
    return out


def compare(old_path: str, new_path: str, threshold: float) -> tuple[str, bool]:
    """The comparison as text, and whether any ratio dropped by more than `threshold` %."""
    old, new = ratios(load_run(old_path)), ratios(load_run(new_path))
    common = sorted(old.keys() & new.keys())
    if not common:
        raise CompareError(f"{old_path} and {new_path} have no evstore ratio in common; "
                           "compare two runs of the same workloads and systems")
    lines = [f"ratios of evstore to the other systems (> 1: evstore did better); "
             f"a drop of more than {threshold:g}% fails",
             f"{'workload':<26}{'system':<24}{'against':<28}{'old':>7}{'new':>7}{'change':>9}"]
    lines.append("-" * len(lines[-1]))
    drops = []
    for key in common:
        a, b = old[key], new[key]
        change = (b.value / a.value - 1) * 100
        against = f"{key[2]} ({b.other})"
        if a.other != b.other:
            against = f"{key[2]} ({a.other} -> {b.other})"
        flag = ""
        if change < -threshold:
            flag = "  DROP"
            drops.append(f"{key[0]} {key[1]} vs {against}: {change:+.1f}%")
        lines.append(f"{key[0]:<26}{key[1]:<24}{against:<28}{a.value:7.2f}{b.value:7.2f}"
                     f"{change:+8.1f}%{flag}")
    for label, only in (("old", old.keys() - new.keys()), ("new", new.keys() - old.keys())):
        for key in sorted(only):
            lines.append(f"only in the {label} run: {key[0]} {key[1]} vs {key[2]}")
    if drops:
        lines.append(f"FAIL: {len(drops)} ratio(s) dropped by more than {threshold:g}%:")
        lines.extend(f"  {d}" for d in drops)
    else:
        lines.append(f"OK: no ratio dropped by more than {threshold:g}% "
                     f"({len(common)} compared)")
    return "\n".join(lines), bool(drops)
