"""Benchmark evstore beside the raw drivers and the eventsourcing library: the command line.

The workloads, systems and report live in the evbench package beside this file;
`python scripts/bench.py --help` lists the workloads and every option.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
