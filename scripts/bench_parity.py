"""Time `evstore parity` on the shipped schema (scratch databases included): median of N runs."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from evstore.schema.catalog.parity import run_parity
from evstore.schema.migrations import shipped_sql_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default=os.environ.get(
        "EVSTORE_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sql = shipped_sql_dir()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = run_parity(args.postgres, sql / "postgres", sql / "sqlite",
                            Path(sql / "parity.toml"))
        times.append(time.perf_counter() - start)
        assert report.equal, report.differences
    print(f"evstore parity, {args.runs} runs: median {statistics.median(times):.3f}s "
          f"(min {min(times):.3f}s, max {max(times):.3f}s)")


if __name__ == "__main__":
    main()
