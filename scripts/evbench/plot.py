"""--plot DIR: PNG charts of a run (matplotlib, from the optional `bench` extra).

  throughput.png  W1 to W5, one bar per system and workload, log scale
  latency.png     W7: commit to tail and commit to checkpoint, p50/p99/max, idle and loaded
  scaling.png     W8 writers and readers, WT threads (and asyncio tasks), one line per system

Each chart is drawn from the medians of a run, the one just measured or a saved --json file
(--from RUN.json). draw() returns, per file, the number of series on each of its axes.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evbench.ratios import HIGHER_IS_BETTER

CORE = re.compile(r"^W[1-5]$")
LATENCY = re.compile(r"^W7 (tail|checkpoint) (idle|loaded) (p50|p99|max)$")
SCALING = re.compile(r"^(W8 writers|W8 readers|WT threads|WT tasks)=(\d+)$")

Medians = dict[tuple[str, str], float]  # (workload, system) -> median
Units = dict[str, str]  # workload -> unit


class PlotError(Exception):
    """matplotlib is missing, or the run has nothing to draw."""


def medians_of(document: dict[str, Any]) -> tuple[Medians, Units]:
    medians: Medians = {}
    units: Units = {}
    for m in document["measurements"]:
        medians[(m["workload"], m["system"])] = float(m["median"])
        units[m["workload"]] = m["unit"]
    return medians, units


# One look per system on every chart: the colour says whose code it is, the hatching (bars)
# or the dashes (lines) say PostgreSQL.
COLOURS = {"evstore": "#1f77b4", "evstore-nogin": "#17becf", "raw": "#7f7f7f",
           "es": "#ff7f0e", "es-bytes": "#d62728"}


def _kind(system: str) -> str:
    if system.endswith("-bytes"):
        return "es-bytes"
    if system.endswith("-nogin"):
        return "evstore-nogin"
    return system.split("-")[0]


def _order(system: str) -> tuple[bool, int, str]:
    """SQLite first, then PostgreSQL; in each, evstore, raw, eventsourcing, its limit."""
    kinds = list(COLOURS)
    kind = _kind(system)
    return ("postgres" in system, kinds.index(kind) if kind in kinds else len(kinds), system)


def _look(system: str) -> dict[str, Any]:
    return {"color": COLOURS.get(_kind(system), "#2ca02c"), "postgres": "postgres" in system}


def _systems(medians: Medians, keep: Callable[[str], bool]) -> list[str]:
    return sorted(dict.fromkeys(s for w, s in medians if keep(w)), key=_order)


def _legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend under the charts, from the axes that drew the most series."""
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes),
                          key=lambda hl: len(hl[1]))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) + 3) // 4), 1, 1))


def _grouped_bars(ax: Any, groups: Sequence[str], systems: Sequence[str],
                  value: Callable[[str, str], float | None]) -> int:
    """One bar container (series) per system over the groups; returns the series drawn."""
    width = 0.8 / max(len(systems), 1)
    drawn = 0
    for k, system in enumerate(systems):
        xs, ys = [], []
        for g, group in enumerate(groups):
            v = value(group, system)
            if v is not None and v > 0:
                xs.append(g + (k - (len(systems) - 1) / 2) * width)
                ys.append(v)
        if ys:
            look = _look(system)
            ax.bar(xs, ys, width=width, label=system, color=look["color"],
                   hatch="//" if look["postgres"] else None, edgecolor="white", linewidth=0.5)
            drawn += 1
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3, which="both")
    return drawn


def require_matplotlib() -> None:
    """Before a run that ends in --plot: fail now rather than after the run."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotError("--plot needs matplotlib: pip install -e '.[bench]'")


def draw(document: dict[str, Any], folder: Path) -> dict[str, dict[str, int]]:
    """Write the charts of one run into `folder`; per file, the series of each of its axes.
    A chart with no data in the run is not written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotError("--plot needs matplotlib: pip install -e '.[bench]'") from e
    medians, units = medians_of(document)
    folder.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, dict[str, int]] = {}

    core = [w for w in dict.fromkeys(w for w, _ in medians)
            if CORE.match(w) and units.get(w) in HIGHER_IS_BETTER]
    if core:
        fig, ax = plt.subplots(figsize=(10, 5))
        systems = _systems(medians, lambda w: w in core)
        n = _grouped_bars(ax, core, systems, lambda w, s: medians.get((w, s)))
        ax.set_title("Throughput per workload (median; W4 in streams/s, others events/s)")
        ax.set_ylabel("per second (log scale)")
        _legend(fig, [ax])
        fig.savefig(folder / "throughput.png", dpi=110)
        plt.close(fig)
        drawn["throughput.png"] = {"throughput": n}

    latency = [w for w, _ in medians if LATENCY.match(w)]
    if latency:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
        counts = {}
        for ax, what in zip(axes, ("tail", "checkpoint"), strict=True):
            groups = [f"{cond} {pct}" for cond in ("idle", "loaded")
                      for pct in ("p50", "p99", "max")]
            systems = _systems(medians, lambda w, what=what: w.startswith(f"W7 {what} ")
                               and bool(LATENCY.match(w)))
            counts[what] = _grouped_bars(
                ax, groups, systems,
                lambda g, s, what=what: medians.get((f"W7 {what} {g}", s)))
            ax.set_title(f"W7 commit to {what} (ms, log scale)")
            ax.set_ylabel("ms")
        _legend(fig, axes)
        fig.savefig(folder / "latency.png", dpi=110)
        plt.close(fig)
        drawn["latency.png"] = counts

    families = list(dict.fromkeys(m.group(1) for w, _ in medians if (m := SCALING.match(w))))
    if families:
        panels = [f for f in ("W8 writers", "W8 readers", "WT threads") if f in families]
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
        counts = {}
        for ax, family in zip(axes[0], panels, strict=True):
            series = 0
            lines: list[tuple[str, str]] = [(family, "")]
            if family == "WT threads" and "WT tasks" in families:
                lines.append(("WT tasks", " (asyncio tasks)"))
            for fam, suffix in lines:
                points: dict[str, list[tuple[int, float]]] = {}
                for (w, s), v in medians.items():
                    m = SCALING.match(w)
                    if m and m.group(1) == fam:
                        points.setdefault(s, []).append((int(m.group(2)), v))
                for system in sorted(points, key=_order):
                    pts = sorted(points[system])
                    look = _look(system)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], color=look["color"],
                            linestyle="--" if look["postgres"] else "-",
                            marker="s" if look["postgres"] else "o",
                            alpha=0.6 if suffix else 1.0, label=system + suffix)
                    series += 1
            ax.set_title(f"{family} (events/s)")
            ax.set_xlabel(family.split()[-1])
            ax.set_ylabel("events/s")
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            counts[family.split()[-1]] = series
        _legend(fig, list(axes[0]))
        fig.savefig(folder / "scaling.png", dpi=110)
        plt.close(fig)
        drawn["scaling.png"] = counts
    if not drawn:
        raise PlotError("the run has no workload to draw (W1-W5, W7, W8 or WT)")
    return drawn
