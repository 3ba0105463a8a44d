"""evstore verify: operations on a live store."""


from __future__ import annotations

import argparse

from evstore.cli.common import (
    EXIT_DIFFERENT,
    EXIT_OK,
    Add,
    Options,
    open_store,
    print_json,
    progress_bar,
    require_tables,
    whole_number,
)


def cmd_verify(args: argparse.Namespace) -> int:
    from evstore.operations.verify import verify

    with open_store(args, must_exist=True) as store:
        require_tables(store)
        head = store.head_position()
        with progress_bar(head, True) as bar:
            report = verify(store, page_size=args.page_size, max_findings=args.max_findings,
                            progress=bar.update)
    if args.json:
        print_json(report.to_dict())
    else:
        for finding in report.findings:
            print(finding)
        if report.truncated:
            print(f"(stopped listing after {args.max_findings} findings)")
        legacy = (f"; {report.legacy} event(s) predate content digests (migration 0009) and "
                  "were checked for order only" if report.legacy else "")
        verdict = "intact" if report.intact else f"{len(report.findings)} finding(s)"
        print(f"verified {report.events} event(s) in {report.streams} stream(s): "
              f"{verdict}{legacy}")
        if report.chain_head is not None:
            print(f"chain head at position {report.chain_head_position}: "
                  f"{report.chain_head.hex()} (keep it elsewhere: a later verify that ends "
                  "on another value at this position shows the log was rewritten)")
    return EXIT_OK if report.intact else EXIT_DIFFERENT


def register(add: Add, o: Options) -> None:
    """The operations commands' parsers."""
    p = add("verify", "recompute every event's content digest and check each stream's "
            "versions, positions and head; exit 1 listing each finding", o.db, o.cfg, o.out)
    p.add_argument("--page-size", type=whole_number(1, "a page size"), default=1000, metavar="N",
                   help="events read per page (memory stays flat; default 1000)")
    p.add_argument("--max-findings", type=whole_number(1, "a number of findings"), default=1000,
                   metavar="N",
                   help="stop listing after N findings (default 1000)")
    p.set_defaults(func=cmd_verify)
