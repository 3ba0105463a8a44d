"""scripts/bench.py runs every workload end to end, checks what it measured, and reports it.

Tiny sizes: this proves the benchmark works and its checks hold (every event read back, no
event missed by evstore's tailer, every committed event delivered once and in order), not how
fast anything is. No assertion here is about a duration.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT, require_pg

BENCH = ROOT / "scripts" / "bench.py"


def bench(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=timeout)


def measured(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["workload"], m["system"]): m for m in report["measurements"]}


def eventsourcing_installed() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True


def test_bench_runs_every_workload_and_checks_its_results(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    systems = "evstore-sqlite,raw-sqlite,evstore-postgres,raw-postgres,evstore-postgres-nogin"
    bytes_systems = ("es-sqlite-bytes", "es-postgres-bytes")
    if "es-sqlite" in new_systems():
        systems += ",es-sqlite,es-postgres," + ",".join(bytes_systems)
    result = bench(
        "--pg-dsn", require_pg(), "--dir", str(tmp_path / "db"),
        "--systems", systems, "--reps", "2", "--workloads", "W1,W2,W3,W4,W5,W6",
        "--events", "600", "--streams", "6", "--batch", "50",
        "--singles", "40", "--single-streams", "4", "--page", "100",
        "--w5-writers", "2", "--w5-seconds", "1", "--w5-pool", "3000",
        "--growth", "2000", "--w6-pages", "3", "--w6-base", "900",
        "--json", str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    m = measured(report)
    for system in ("evstore-sqlite", "raw-sqlite", "evstore-postgres", "raw-postgres"):
        for workload in ("W1", "W2", "W3", "W4"):
            x = m[(workload, system)]
            assert len(x["values"]) == 2 and x["min"] > 0, (workload, system)
            assert x["min"] <= x["median"] <= x["max"]
    for system in ("evstore-postgres", "evstore-postgres-nogin"):
        assert m[("W5", system)]["median"] > 0
        assert m[("W5 missed", system)]["values"] == [0, 0]
    if bytes_systems[0] in systems:
        # eventsourcing handed bytes: a system of its own, and evstore's third ratio column.
        for system in bytes_systems:
            for workload in ("W1", "W2", "W3", "W4"):
                assert m[(workload, system)]["min"] > 0, (workload, system)
        assert m[("W5", "es-postgres-bytes")]["median"] > 0
        line = next(x for x in result.stdout.splitlines()
                    if x.startswith("W1 ") and "evstore-postgres " in x)
        assert float(line.split()[-1]) > 0 and len(line.split()) == 8
    w6_systems = [s for s in systems.split(",") if s != "evstore-postgres-nogin"]
    for system in w6_systems:  # W6 beside the raw driver and eventsourcing
        for workload in ("W6 W1 @empty", "W6 W1 @large", "W6 read @start", "W6 read @middle"):
            assert m[(workload, system)]["median"] > 0, (workload, system)
        assert 10 < m[("W6 replay MB @large", system)]["median"] < 1000, system
        assert "2,600 events replayed" in m[("W6 replay MB @large", system)]["notes"][0]
        # --w6-base 900: the small log was grown from W1's 600 events to 900 first.
        assert "900 events replayed" in m[("W6 replay MB @small", system)]["notes"][0]
        # The event table and its indexes: a few hundred bytes to a few kB per event.
        for at in ("@small", "@large"):
            assert 100 < m[(f"W6 bytes/event {at}", system)]["median"] < 20_000, (system, at)
        assert m[("W6 bytes/event @large", system)]["notes"] == ["2,600 events"]
    # The table: a header with the ratio columns and one ratio per evstore line.
    assert "vs raw" in result.stdout and "vs es-bytes" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("W1 ") and
                "evstore-sqlite " in x)
    assert float(line.split()[-1]) > 0
    assert report["environment"]["pg.synchronous_commit"] == "on"
    assert not list((tmp_path / "db").glob("bench_*.db")), "SQLite files left behind"


# -- W7, W8, WT and eventsourcing handed bytes: one tiny run, shared by the tests below -----


def new_systems() -> list[str]:
    systems = ["evstore-sqlite", "raw-sqlite", "evstore-postgres", "raw-postgres"]
    if eventsourcing_installed():
        systems += ["es-sqlite", "es-postgres"]
    elif IN_CI:
        pytest.fail("CI=true and eventsourcing is not installed (it is in the test extra)")
    return systems


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """W1, W7, W8 and WT on every system, a few events each; with --plot when matplotlib is
    there, so the charts of a live run are drawn too."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "run.json"
    systems = new_systems()
    args = [
        "--pg-dsn", require_pg(), "--dir", str(folder / "db"),
        "--systems", ",".join(systems), "--workloads", "W1,W7,W8,WT", "--reps", "1",
        "--events", "200", "--streams", "4", "--batch", "25",
        "--w5-batch", "5", "--w5-pool", "2000", "--poll", "0.02",
        "--w7-probes", "5", "--w7-gap", "0.005", "--w7-writers", "1",
        "--w8-writers", "1,2", "--w8-readers", "2", "--w8-seconds", "0.3", "--w8-log", "300",
        "--page", "50", "--wt-threads", "1,4", "--wt-events", "80",
        "--json", str(out),
    ]
    plotted = has_matplotlib()
    if plotted:
        args += ["--plot", str(folder / "live")]
    result = bench(*args)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not list((folder / "db").glob("bench_*.db")), "SQLite files left behind"
    return {"report": json.loads(out.read_text()), "stdout": result.stdout, "json": out,
            "systems": systems, "folder": folder, "plotted": plotted}


GAP_FREE = ("evstore-", "es-", "raw-sqlite")  # raw-postgres takes no lock: it may skip


def gap_free(system: str) -> bool:
    return system.startswith(GAP_FREE)


def test_w7_latency_reports_percentiles_and_delivers_every_probe(
    tiny_run: dict[str, Any],
) -> None:
    m = measured(tiny_run["report"])
    for system in tiny_run["systems"]:
        for what in ("tail", "checkpoint"):
            for phase in ("idle", "loaded"):
                p50, p99, top = (m[(f"W7 {what} {phase} {p}", system)]["median"]
                                 for p in ("p50", "p99", "max"))
                assert 0 <= p50 <= p99 <= top, (system, what, phase)
                assert m[(f"W7 {what} {phase} p50", system)]["unit"] == "ms"
                missed = m[(f"W7 {what} {phase} probes missed", system)]["values"]
                if gap_free(system):
                    assert missed == [0], (system, what, phase)
            violations = m[(f"W7 tail {phase} no-skip violations", system)]
            if gap_free(system):
                assert violations["values"] == [0], (system, phase, violations["notes"])
        assert "events from 1 writers" in " ".join(m[("W7 tail loaded p50", system)]["notes"])


def test_w8_scaling_has_every_point_and_no_skip(tiny_run: dict[str, Any]) -> None:
    m = measured(tiny_run["report"])
    for system in tiny_run["systems"]:
        for point in ("writers=1", "writers=2", "readers=2"):
            assert m[(f"W8 {point}", system)]["median"] > 0, (system, point)
            assert m[(f"W8 {point}", system)]["unit"] == "events/s"
            check = m[(f"W8 {point} no-skip violations", system)]
            if gap_free(system) or point.startswith("readers"):
                assert check["values"] == [0], (system, point, check["notes"])
        assert ("W8 writers=4", system) not in m  # only the points asked for


def test_wt_threads_share_one_client_and_asyncio_says_na(tiny_run: dict[str, Any]) -> None:
    report = tiny_run["report"]
    m = measured(report)
    for system in tiny_run["systems"]:
        for n in (1, 4):
            assert m[(f"WT threads={n}", system)]["median"] > 0, (system, n)
    try:
        import evstore.aio  # noqa: F401
    except ImportError:
        not_run = {(x["workload"], x["system"]) for x in report["not_run"]}
        for dialect in ("sqlite", "postgres"):
            assert {(f"WT tasks={n}", f"evstore-{dialect}") for n in (1, 4)} <= not_run
        assert "n/a" in tiny_run["stdout"]
    else:
        for dialect in ("sqlite", "postgres"):
            assert m[("WT tasks=4", f"evstore-{dialect}")]["median"] > 0


# -- --compare ------------------------------------------------------------------------------


def scaled(report: dict[str, Any], workload: str, system: str, factor: float) -> dict[str, Any]:
    copy = json.loads(json.dumps(report))
    for x in copy["measurements"]:
        if (x["workload"], x["system"]) == (workload, system):
            x["median"] *= factor
    return copy


def test_compare_passes_on_the_same_run_and_fails_on_a_drop(
    tiny_run: dict[str, Any], tmp_path: Path,
) -> None:
    old = tiny_run["json"]
    same = bench("--compare", str(old), str(old))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "OK: no ratio dropped" in same.stdout
    assert "W1" in same.stdout and "raw (raw-sqlite)" in same.stdout

    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(scaled(tiny_run["report"], "W1", "evstore-sqlite", 0.8)))
    dropped = bench("--compare", str(old), str(slower))
    assert dropped.returncode == 1, dropped.stdout + dropped.stderr
    assert "FAIL" in dropped.stdout and "-20.0%" in dropped.stdout
    assert "W1 evstore-sqlite vs raw (raw-sqlite)" in dropped.stdout
    # A 20% drop passes a 25% threshold; a latency that doubles counts as a drop too.
    assert bench("--compare", str(old), str(slower), "--threshold", "25").returncode == 0
    # (SQLite's followers poll, so their latencies are above 0 and have a ratio.)
    slower.write_text(json.dumps(scaled(tiny_run["report"], "W7 tail idle p50",
                                        "evstore-sqlite", 2.0)))
    worse = bench("--compare", str(old), str(slower))
    assert worse.returncode == 1 and "W7 tail idle p50" in worse.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ('{"measurements": [{"workload": "W1"', "not valid JSON (line 1"),
        ("[1, 2]", "no list of measurements"),
        ('{"measurements": [{"workload": "W1"}]}', "lacks workload, system, unit or median"),
        ('{"measurements": [{"workload": "W1", "system": "evstore-sqlite", "unit": '
         '"events/s", "median": "fast"}]}', "not a number"),
        ('{"measurements": []}', "no evstore ratio in common"),
    ],
)
def test_compare_refuses_bad_files_without_a_traceback(
    tmp_path: Path, content: str | None, expected: str,
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"measurements": [
        {"workload": "W1", "system": s, "unit": "events/s", "median": v}
        for s, v in (("evstore-sqlite", 900.0), ("raw-sqlite", 1000.0))]}))
    assert bench("--compare", str(good), str(good)).returncode == 0
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    result = bench("--compare", str(good), str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_refuses_a_threshold_that_is_not_a_percentage(tmp_path: Path) -> None:
    result = bench("--compare", "a.json", "b.json", "--threshold", "0")
    assert result.returncode == 2 and "--threshold" in result.stderr
    assert "Traceback" not in result.stderr


# -- --plot ---------------------------------------------------------------------------------


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def series_lines(stdout: str) -> dict[str, str]:
    return {Path(line.split()[1].rstrip(":")).name: line
            for line in stdout.splitlines() if line.startswith("chart ")}


def check_charts(folder: Path, stdout: str, systems: list[str]) -> None:
    import matplotlib.image

    n = len(systems)
    try:
        import evstore.aio  # noqa: F401
        tasks = 2  # one asyncio line per evstore system, beside the threads
    except ImportError:
        tasks = 0
    expected = {
        "throughput.png": [f"throughput {n} series"],
        "latency.png": [f"tail {n} series", f"checkpoint {n} series"],
        "scaling.png": [f"writers {n} series", f"readers {n} series",
                        f"threads {n + tasks} series"],
    }
    lines = series_lines(stdout)
    assert set(lines) == set(expected), stdout
    for name, parts in expected.items():
        for part in parts:
            assert part in lines[name], (name, lines[name])
        width, height = png_size(folder / name)
        assert width > 200 and height > 200
        pixels = matplotlib.image.imread(folder / name)  # decodes the whole image
        assert pixels.shape[:2] == (height, width)


def test_plot_draws_the_charts_of_a_run_and_of_a_saved_one(
    tiny_run: dict[str, Any], tmp_path: Path,
) -> None:
    if not has_matplotlib():
        if IN_CI:
            pytest.fail("CI=true and matplotlib is not installed (it is in the test extra)")
        pytest.skip("matplotlib is not installed: pip install -e '.[bench]'")
    assert tiny_run["plotted"]
    check_charts(tiny_run["folder"] / "live", tiny_run["stdout"], tiny_run["systems"])
    saved = bench("--plot", str(tmp_path / "saved"), "--from", str(tiny_run["json"]))
    assert saved.returncode == 0, saved.stderr
    check_charts(tmp_path / "saved", saved.stdout, tiny_run["systems"])


def test_plot_from_a_bad_file_or_without_plot_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{")
    result = bench("--plot", str(tmp_path / "charts"), "--from", str(bad))
    assert result.returncode == 2 and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    result = bench("--from", str(bad))
    assert result.returncode == 2 and "--plot DIR" in result.stderr
    assert not (tmp_path / "charts").exists()


def test_bench_package_keeps_the_command_line_working_from_any_directory(
    tmp_path: Path,
) -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--compare", "--plot", "--from", "--threshold", "--w6-10m", "--w7-probes",
                   "--w8-writers", "--wt-threads"):
        assert option in result.stdout


def test_w6_10m_is_postgresql_only_and_sets_its_sizes(tmp_path: Path) -> None:
    """The 10,000,000-event W6 is not run here; on SQLite alone the flag runs nothing."""
    out = tmp_path / "run.json"
    result = bench("--pg-dsn", require_pg(), "--dir", str(tmp_path / "db"), "--w6-10m",
                   "--workloads", "W6", "--systems", "evstore-sqlite,raw-sqlite",
                   "--reps", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["measurements"] == []
    arguments = report["arguments"]
    assert (arguments["growth"], arguments["w6_base"], arguments["w6_dialects"]) == (
        10_000_000, 100_000, "postgres")
