"""The table of medians and ratios, and the machine it ran on."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

import evstore
from evbench.databases import conninfo
from evbench.ratios import BASELINE, PEER, PEER_BYTES, dialect_of, ratio
from evbench.results import Results


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "MB":
        return f"{value:.0f}"
    if unit == "events" or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def report(results: Results, systems: Sequence[str]) -> str:
    """Medians with min and max, and evstore's ratios to the raw driver, to eventsourcing and
    to eventsourcing handed bytes (> 1: evstore did better; see ratios.py)."""
    lines = []
    header = f"{'workload':<38}{'system':<24}{'median':>12}{'min':>12}{'max':>12}  " \
             f"{'vs raw':>7}{'vs es':>7}{'vs es-bytes':>12}"
    lines.append(header)
    lines.append("-" * len(header))
    workloads = list(dict.fromkeys(w for w, _ in results.values))
    for workload in workloads:
        unit = results.units[workload]
        for system in [*systems, *[s for w, s in results.values if s not in systems]]:
            vals = results.values.get((workload, system))
            if not vals:
                continue
            med = statistics.median(vals)
            dialect = dialect_of(system)
            ratios = []
            for other, width in ((BASELINE[dialect], 7), (PEER[dialect], 7),
                                 (PEER_BYTES[dialect], 12)):
                r = None
                if system.startswith("evstore") and other != system:
                    r = ratio(unit, med, results.median(workload, other))
                ratios.append(f"{r:{width}.2f}" if r is not None else " " * width)
            lines.append(
                f"{workload:<38}{system:<24}{fmt(med, unit):>12}{fmt(min(vals), unit):>12}"
                f"{fmt(max(vals), unit):>12}  {''.join(ratios)}"
            )
            for text in results.notes.get((workload, system), []):
                lines.append(f"{'':<38}  note: {text}")
        runs = sorted({len(v) for (w, _), v in results.values.items() if w == workload})
        lines.append(f"{'':<38}({unit}; runs per system: {', '.join(map(str, runs))})")
    for (workload, system), reason in results.not_run.items():
        lines.append(f"{workload:<38}{system:<24}{'n/a':>12}  ({reason})")
    # Derived W6 figures: growth ratios.
    for system in systems:
        large = results.median("W6 W1 @large", system)
        for base_name in ("W1", "W6 W1 @empty"):
            base = results.median(base_name, system)
            if large and base:
                lines.append(f"W6 {system}: append rate @large / {base_name} median = "
                             f"{large / base:.2f}")
        start = results.median("W6 read @start", system)
        middle = results.median("W6 read @middle", system)
        if start and middle:
            lines.append(f"W6 {system}: read @middle / read @start = {middle / start:.2f}")
    return "\n".join(lines)


def environment(pg_dsn: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "evstore": evstore.__version__,
        "psycopg": psycopg.__version__,
    }
    try:
        import eventsourcing

        env["eventsourcing"] = getattr(eventsourcing, "__version__", "installed")
    except ImportError:
        env["eventsourcing"] = None
    with psycopg.connect(conninfo(pg_dsn), autocommit=True) as conn:
        env["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        for setting in ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes",
                        "shared_buffers"):
            env[f"pg.{setting}"] = conn.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
    env["sqlite.journal_mode"] = "wal"
    env["sqlite.synchronous"] = "FULL (evstore and raw set it; eventsourcing keeps the default)"
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(Path(d) / "x.db")
        env["sqlite.default_synchronous"] = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.close()
    return env




def run_document(env: dict[str, Any], args: argparse.Namespace,
                 results: Results) -> dict[str, Any]:
    """What --json writes: the machine, the arguments and every single measurement."""
    document: dict[str, Any] = {
        "environment": env,
        "arguments": vars(args),
        "measurements": [
            {"workload": w, "system": s, "unit": results.units[w], "values": v,
             "median": statistics.median(v), "min": min(v), "max": max(v),
             "notes": results.notes.get((w, s), [])}
            for (w, s), v in results.values.items()
        ],
    }
    if results.not_run:
        document["not_run"] = [{"workload": w, "system": s, "reason": r}
                               for (w, s), r in results.not_run.items()]
    return document


def load_document(path: str) -> dict[str, Any]:
    """A saved run (--from RUN.json), checked enough to be drawn."""
    from evbench.compare import load_run

    load_run(path)  # the checks and messages --compare gives
    document: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return document
