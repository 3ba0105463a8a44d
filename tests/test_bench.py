"""scripts/bench.py runs every workload end to end, checks what it measured, and reports it.

Tiny sizes: this proves the benchmark works and its checks hold (every event read back, no
event missed by evstore's tailer), not how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, require_pg


def test_bench_runs_every_workload_and_checks_its_results(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    systems = "evstore-sqlite,raw-sqlite,evstore-postgres,raw-postgres,evstore-postgres-nogin"
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts" / "bench.py"),
            "--pg-dsn", require_pg(), "--dir", str(tmp_path / "db"),
            "--systems", systems, "--reps", "2",
            "--events", "600", "--streams", "6", "--batch", "50",
            "--singles", "40", "--single-streams", "4", "--page", "100",
            "--w5-writers", "2", "--w5-seconds", "1", "--w5-pool", "3000",
            "--growth", "2000", "--w6-pages", "3",
            "--json", str(out),
        ],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    measured = {(m["workload"], m["system"]): m for m in report["measurements"]}
    for system in ("evstore-sqlite", "raw-sqlite", "evstore-postgres", "raw-postgres"):
        for workload in ("W1", "W2", "W3", "W4"):
            m = measured[(workload, system)]
            assert len(m["values"]) == 2 and m["min"] > 0, (workload, system)
            assert m["min"] <= m["median"] <= m["max"]
    for system in ("evstore-postgres", "evstore-postgres-nogin"):
        assert measured[("W5", system)]["median"] > 0
        assert measured[("W5 missed", system)]["values"] == [0, 0]
    for dialect in ("sqlite", "postgres"):
        system = f"evstore-{dialect}"
        for workload in ("W6 W1 @empty", "W6 W1 @large", "W6 read @start", "W6 read @middle"):
            assert measured[(workload, system)]["median"] > 0, (workload, system)
        assert 10 < measured[("W6 replay MB @large", system)]["median"] < 1000
        assert "2,600 events replayed" in measured[("W6 replay MB @large", system)]["notes"][0]
    # The table: a header with the ratio columns and one ratio per evstore line.
    assert "vs raw" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("W1 ") and
                "evstore-sqlite " in x)
    assert float(line.split()[-1]) > 0
    assert report["environment"]["pg.synchronous_commit"] == "on"
    assert not list((tmp_path / "db").glob("bench_*.db")), "SQLite files left behind"
