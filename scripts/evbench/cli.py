"""The command line: python scripts/bench.py --help."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import evbench
from evbench.data import make_batches, make_singles
from evbench.databases import Scratch
from evbench.report import environment, report
from evbench.results import Results
from evbench.systems import ALL_SYSTEMS, MIGRATION_DIRS, eventsourcing_installed, make_system
from evbench.workloads.concurrent import run_w5
from evbench.workloads.core import run_core
from evbench.workloads.growth import run_w6


@contextmanager
def scratch_space(args: argparse.Namespace) -> Iterator[Scratch]:
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="evstore-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Scratch(args.pg_dsn, folder)
    try:
        yield scratch
    finally:
        scratch.drop_all()
        for f in folder.glob("bench_*.db*"):
            f.unlink()
        if not args.dir:
            folder.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=evbench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "EVSTORE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where scratch databases may be created (default: %(default)s)")
    parser.add_argument("--dir", help="folder for the SQLite files (default: a temporary one)")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help="comma-separated; also evstore-postgres-nogin (GIN indexes dropped)")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6",
                        help="comma-separated subset of W1..W6 (W2-W4 run on W1's data)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default: 3)")
    parser.add_argument("--events", type=int, default=100_000, help="W1 events")
    parser.add_argument("--streams", type=int, default=1_000, help="W1 streams")
    parser.add_argument("--batch", type=int, default=100, help="W1 events per append")
    parser.add_argument("--singles", type=int, default=5_000, help="W2 events")
    parser.add_argument("--single-streams", type=int, default=100, help="W2 streams")
    parser.add_argument("--page", type=int, default=1_000, help="W3/W6 page size")
    parser.add_argument("--w5-writers", type=int, default=4)
    parser.add_argument("--w5-batch", type=int, default=10)
    parser.add_argument("--w5-seconds", type=float, default=10.0)
    parser.add_argument("--w5-pool", type=int, default=120_000,
                        help="events each W5 writer makes before the clock starts")
    parser.add_argument("--growth", type=int, default=1_000_000, help="W6 log size")
    parser.add_argument("--w6-pages", type=int, default=20, help="W6 pages per read")
    parser.add_argument("--w6-dialects", default="sqlite,postgres")
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    parser.add_argument("--pg-dir", metavar="DIR",
                        help="migrations the evstore-postgres systems apply instead of "
                             "evstore's own (to price a schema variant)")
    parser.add_argument("--sqlite-dir", metavar="DIR",
                        help="migrations the evstore-sqlite system applies instead of "
                             "evstore's own")
    args = parser.parse_args(argv)
    if args.pg_dir:
        MIGRATION_DIRS["postgres"] = args.pg_dir
    if args.sqlite_dir:
        MIGRATION_DIRS["sqlite"] = args.sqlite_dir

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        make_system(s)  # refuses unknown names
    if not eventsourcing_installed():
        dropped = [s for s in systems if s.startswith("es-")]
        if dropped:
            print(f"eventsourcing is not installed (pip install -e '.[bench]'); skipping "
                  f"{', '.join(dropped)}", file=sys.stderr)
        systems = [s for s in systems if not s.startswith("es-")]
    workloads = {w.strip().upper() for w in args.workloads.split(",")}
    if args.events % args.streams or (args.events // args.streams) % args.batch:
        parser.error("--events must split into --streams streams of whole --batch appends")

    env = environment(args.pg_dsn)
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    results = Results()
    rng = random.Random(42)
    w1 = make_batches(rng, args.streams, args.events // args.streams, args.batch)
    w2 = make_singles(rng, w1, args.singles, args.single_streams)
    begun = time.perf_counter()

    with scratch_space(args) as scratch:
        if workloads & {"W1", "W2", "W3", "W4"}:
            for rep in range(args.reps):
                order = systems[:]
                random.Random(rep).shuffle(order)  # spread the machine's noise over systems
                for name in order:
                    print(f"rep {rep + 1}/{args.reps}: W1-W4 {name}", flush=True)
                    run_core(make_system(name), scratch, w1, w2, args, results,
                             random.Random(rep), workloads)
        if "W5" in workloads:
            w5_systems = [s for s in systems if "postgres" in s]
            for rep in range(args.reps):
                for name in w5_systems:
                    print(f"rep {rep + 1}/{args.reps}: W5 {name}", flush=True)
                    run_w5(name, scratch, args, results)
        if "W6" in workloads:
            for dialect in [d.strip() for d in args.w6_dialects.split(",") if d.strip()]:
                if f"evstore-{dialect}" not in systems:
                    continue
                print(f"W6 evstore-{dialect}", flush=True)
                run_w6(dialect, scratch, w1, args, results, random.Random(7))

    print()
    print(report(results, systems))
    print(f"\ntotal {time.perf_counter() - begun:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "environment": env,
            "arguments": vars(args),
            "measurements": [
                {"workload": w, "system": s, "unit": results.units[w], "values": v,
                 "median": statistics.median(v), "min": min(v), "max": max(v),
                 "notes": results.notes.get((w, s), [])}
                for (w, s), v in results.values.items()
            ],
        }, indent=2))
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
