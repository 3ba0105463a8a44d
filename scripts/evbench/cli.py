"""The command line: python scripts/bench.py --help."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import evbench
from evbench.compare import CompareError, compare
from evbench.data import make_batches, make_singles
from evbench.databases import Scratch
from evbench.plot import PlotError, require_matplotlib
from evbench.ratios import dialect_of
from evbench.report import environment, load_document, report, run_document
from evbench.results import Results
from evbench.systems import (
    ALL_SYSTEMS,
    MIGRATION_DIRS,
    WORKLOADS,
    eventsourcing_installed,
    make_system,
)
from evbench.workloads.concurrent import run_w5
from evbench.workloads.core import run_core
from evbench.workloads.growth import run_w6
from evbench.workloads.latency import run_w7
from evbench.workloads.scaling import counts, run_w8
from evbench.workloads.threads import run_wt, run_wt_async


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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py", description=evbench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "EVSTORE_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a server where scratch databases may be created (default: %(default)s)")
    parser.add_argument("--dir", help="folder for the SQLite files (default: a temporary one)")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help="comma-separated; also evstore-postgres-nogin (GIN indexes dropped)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated subset of %(default)s (W2-W4 run on W1's data)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default: 3)")
    parser.add_argument("--events", type=int, default=100_000, help="W1 events")
    parser.add_argument("--streams", type=int, default=1_000, help="W1 streams")
    parser.add_argument("--batch", type=int, default=100, help="W1 events per append")
    parser.add_argument("--singles", type=int, default=5_000, help="W2 events")
    parser.add_argument("--single-streams", type=int, default=100, help="W2 streams")
    parser.add_argument("--page", type=int, default=1_000, help="W3/W6/W8 page size")
    parser.add_argument("--w5-writers", type=int, default=4)
    parser.add_argument("--w5-batch", type=int, default=10,
                        help="events per append of the W5, W7, W8 and WT writers")
    parser.add_argument("--w5-seconds", type=float, default=10.0)
    parser.add_argument("--w5-pool", type=int, default=120_000,
                        help="events each W5/W7/W8 writer makes before the clock starts")
    parser.add_argument("--growth", type=int, default=1_000_000, help="W6 log size")
    parser.add_argument("--w6-pages", type=int, default=20, help="W6 pages per read")
    parser.add_argument("--w6-dialects", default="sqlite,postgres")
    parser.add_argument("--w6-base", type=int, default=0,
                        help="W6's small log: grow to this many events before the @small "
                             "figures (default: W1's events)")
    parser.add_argument("--w6-10m", action="store_true",
                        help="W6 on PostgreSQL only, to 10,000,000 events against 100,000 "
                             "(sets --growth, --w6-base and --w6-dialects; takes minutes)")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="seconds a polling follower sleeps when it finds nothing; also "
                             "evstore's tail poll_interval (W7, W8; default: %(default)s)")
    parser.add_argument("--w7-probes", type=int, default=200,
                        help="W7 probe events per phase (default: %(default)s)")
    parser.add_argument("--w7-gap", type=float, default=0.02,
                        help="W7 seconds between probes (default: %(default)s)")
    parser.add_argument("--w7-writers", type=int, default=4,
                        help="W7 writer processes in the loaded phase (default: %(default)s)")
    parser.add_argument("--w8-writers", default="1,2,4,8",
                        help="W8 writer process counts (default: %(default)s)")
    parser.add_argument("--w8-readers", default="1,4,8",
                        help="W8 reader process counts (default: %(default)s)")
    parser.add_argument("--w8-seconds", type=float, default=5.0,
                        help="W8 seconds per writer point (default: %(default)s)")
    parser.add_argument("--w8-log", type=int, default=100_000,
                        help="events the W8 readers read (default: %(default)s)")
    parser.add_argument("--wt-threads", default="1,4,8",
                        help="WT thread (and asyncio task) counts (default: %(default)s)")
    parser.add_argument("--wt-events", type=int, default=20_000,
                        help="WT events per point, split over the threads "
                             "(default: %(default)s)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement here")
    parser.add_argument("--plot", metavar="DIR",
                        help="draw PNG charts of the run (or of --from RUN.json) into DIR")
    parser.add_argument("--from", dest="from_json", metavar="RUN.json",
                        help="with --plot: draw a saved run instead of running one")
    parser.add_argument("--compare", nargs=2, metavar=("OLD.json", "NEW.json"),
                        help="compare evstore's ratios of two saved runs; exit 1 when one "
                             "dropped by more than --threshold")
    parser.add_argument("--threshold", type=float, default=10.0, metavar="PCT",
                        help="with --compare: the drop in percent that fails "
                             "(default: %(default)s)")
    parser.add_argument("--pg-dir", metavar="DIR",
                        help="migrations the evstore-postgres systems apply instead of "
                             "evstore's own (to price a schema variant)")
    parser.add_argument("--sqlite-dir", metavar="DIR",
                        help="migrations the evstore-sqlite system applies instead of "
                             "evstore's own")
    args = parser.parse_args(argv)
    if args.from_json and not args.plot:
        parser.error("--from RUN.json draws a saved run: give --plot DIR too")
    if not 0 < args.threshold < 100:
        parser.error(f"--threshold must be a percentage above 0 and below 100, "
                     f"not {args.threshold:g}")
    if args.w6_10m:
        args.growth, args.w6_base, args.w6_dialects = 10_000_000, 100_000, "postgres"
    unknown = {w.strip().upper() for w in args.workloads.split(",")} - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(WORKLOADS)}")
    for option in ("w8_writers", "w8_readers", "wt_threads"):
        try:
            points = counts(getattr(args, option))
        except ValueError:
            points = []
        if not points or min(points) < 1:
            parser.error(f"--{option.replace('_', '-')} takes counts like 1,4,8")
    if args.events % args.streams or (args.events // args.streams) % args.batch:
        parser.error("--events must split into --streams streams of whole --batch appends")
    return args


def plot(document: dict[str, Any], folder: str) -> None:
    from evbench.plot import draw

    for name, axes in draw(document, Path(folder)).items():
        series = ", ".join(f"{axis} {n} series" for axis, n in axes.items())
        print(f"chart {Path(folder) / name}: {series}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.compare:
            text, failed = compare(args.compare[0], args.compare[1], args.threshold)
            print(text)
            return 1 if failed else 0
        if args.from_json:
            plot(load_document(args.from_json), args.plot)
            return 0
        return run(args)
    except (CompareError, PlotError) as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.pg_dir:
        MIGRATION_DIRS["postgres"] = args.pg_dir
    if args.sqlite_dir:
        MIGRATION_DIRS["sqlite"] = args.sqlite_dir
    if args.plot:
        require_matplotlib()

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
            dialects = {d.strip() for d in args.w6_dialects.split(",") if d.strip()}
            for name in [s for s in systems
                         if dialect_of(s) in dialects and not s.endswith("-nogin")]:
                print(f"W6 {name}", flush=True)
                run_w6(name, scratch, w1, args, results, random.Random(7))
        later = [("W7", run_w7), ("W8", run_w8), ("WT", run_wt), ("WT", run_wt_async)]
        for rep in range(args.reps):
            for workload, runner in later:
                if workload not in workloads:
                    continue
                order = [s for s in systems if s != "evstore-postgres-nogin"]
                random.Random(rep).shuffle(order)
                for name in order:
                    print(f"rep {rep + 1}/{args.reps}: {workload} {name}", flush=True)
                    runner(name, scratch, args, results, rep)

    print()
    print(report(results, systems))
    print(f"\ntotal {time.perf_counter() - begun:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    document = run_document(env, args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(document, indent=2))
        print(f"measurements written to {args.json}")
    if args.plot:
        plot(document, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
