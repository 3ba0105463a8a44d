"""evstore relay and evstore group: publishing the log to NATS JetStream, and consumer groups."""


from __future__ import annotations

import argparse

from evstore import errors
from evstore.cli.common import (
    EXIT_OK,
    Add,
    Options,
    Terminated,
    UsageError,
    confirm,
    database_arg,
    open_store,
    print_json,
    require_existing,
    require_tables,
    schema_arg,
    seconds,
    shown,
    whole_number,
)
from evstore.urls import parse_url


def cmd_relay(args: argparse.Namespace) -> int:
    try:
        from evstore.operations.relay import Relay
    except ImportError as e:  # pragma: no cover - nats-py is an optional extra
        raise UsageError("evstore relay needs nats-py: pip install 'evstore[nats]'") from e
    url = database_arg(args)
    require_existing(parse_url(url))
    relay = Relay(
        url, args.nats, args.stream, args.subject, name=args.name, schema=schema_arg(args),
        idle_timeout=args.idle_timeout, group_member=args.group_member,
        group_size=args.group_size, max_in_flight=args.max_in_flight,
        ack_timeout=args.ack_timeout, reconnect_attempts=args.reconnect_attempts,
        wait_for_lease=args.wait, lease_ttl=args.lease_ttl,
    )
    stats = relay.run(handle_signals=True)
    if stats.stopped_by == "SIGINT":
        raise KeyboardInterrupt
    if stats.stopped_by == "SIGTERM":
        raise Terminated()
    result = {
        "stream": relay.stream, "checkpoint": relay.checkpoint_name,
        "position": stats.position, "published": stats.published,
        "duplicates": stats.duplicates, "skipped": stats.skipped,
        "connections": stats.connections,
    }
    if args.json:
        print_json(result)
    else:
        print(f"relayed to JetStream stream {relay.stream}: {stats.published} published, "
              f"{stats.duplicates} duplicate(s) ignored by JetStream, {stats.skipped} found "
              f"already there; checkpoint {shown(relay.checkpoint_name)} at position "
              f"{stats.position}")
    return EXIT_OK


def cmd_group_status(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        require_tables(store)
        members = store.group_status(args.name)
    if args.json:
        print_json({"group": args.name, "members": [m.to_dict() for m in members]})
        return EXIT_OK
    if not members:
        print(f"consumer group {shown(args.name)}: no checkpoint and no lease")
    for m in members:
        lease = (f"held by {shown(m.holder)} until {m.expires_at}" if m.live
                 else "not held")
        print(f"member {m.member} of {m.group_size}: checkpoint "
              f"{shown(m.checkpoint or '(none)')} at position {m.position}, {lease}")
    return EXIT_OK


def cmd_group_reset(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        require_tables(store)
        members = store.group_status(args.name)
        if not args.yes:
            what = ", ".join(f"{m.checkpoint} at {m.position}" for m in members
                             if m.checkpoint) or "no checkpoints"
            question = (f"Resetting consumer group {args.name!r} on {store.url.redacted} "
                        f"forgets {what}; its members start again from position 0.")
            if not confirm(question + " Continue?"):
                raise errors.ConfirmationRequired(
                    f"{question} Nothing was changed. Reset what the members built as well, "
                    "then pass --yes to confirm"
                )
        reset = store.reset_group(args.name)
    if args.json:
        print_json({"group": args.name, "reset": [m.to_dict() for m in reset]})
    else:
        for m in reset:
            if m.checkpoint:
                print(f"reset checkpoint {shown(m.checkpoint)} (was at position {m.position})")
        print(f"consumer group {shown(args.name)} reset: start its members with any size")
    return EXIT_OK


def register(add: Add, o: Options) -> None:
    p = add("relay", "publish every committed event exactly once, in order, to a NATS "
            "JetStream stream (needs the nats extra)", o.db, o.cfg, o.out)
    p.add_argument("--nats", required=True, metavar="URL",
                   help="the NATS server, e.g. nats://127.0.0.1:4222 (user:password@ or "
                        "token@ in the URL are never printed)")
    p.add_argument("--stream", required=True, metavar="JS_STREAM",
                   help="the JetStream stream; created with subjects PREFIX.> when missing")
    p.add_argument("--subject", required=True, metavar="PREFIX",
                   help="subject prefix: events go to PREFIX.<stream id>.<event type>")
    p.add_argument("--name", metavar="CHECKPOINT",
                   help="the relay's checkpoint (default relay-JS_STREAM)")
    p.add_argument("--idle-timeout", type=seconds, metavar="SECONDS",
                   help="exit 0 after this long without a new event (default: run forever)")
    p.add_argument("--group-member", type=whole_number(0, "a member number"), metavar="I",
                   help="run as member I of a consumer group (with --group-size)")
    p.add_argument("--group-size", type=whole_number(1, "a group size"), metavar="N",
                   help="the consumer group's size")
    p.add_argument("--max-in-flight", type=whole_number(1, "a number of publishes"),
                   default=2000, metavar="N",
                   help="publishes awaiting their ack at most (default 2000)")
    p.add_argument("--ack-timeout", type=seconds, default=10.0, metavar="SECONDS",
                   help="how long a publish may wait for its ack before the relay "
                        "reconnects (default 10)")
    p.add_argument("--reconnect-attempts", type=whole_number(0, "a number of attempts"),
                   metavar="N", help="give up after N failed reconnects in a row (default: "
                   "never give up)")
    p.add_argument("--lease-ttl", type=seconds, default=30.0, metavar="SECONDS",
                   help="how long this relay's member lease outlives its last renewal: a "
                        "killed relay's member is free again after it (default 30)")
    p.add_argument("--wait", action="store_true",
                   help="when another process holds this relay's member, wait as a standby "
                        "instead of exiting")
    p.set_defaults(func=cmd_relay)

    p = add("group", "show or reset a consumer group's checkpoints and leases")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[o.db, o.cfg, o.out],
                                help="each member's checkpoint and lease")
    status.add_argument("name", help="the projection's or relay's name")
    status.set_defaults(func=cmd_group_status)
    reset = actions.add_parser("reset", parents=[o.db, o.cfg, o.out],
                               help="forget every checkpoint of the group (any size) so it "
                                    "can start again, e.g. with another size")
    reset.add_argument("name", help="the projection's or relay's name")
    reset.add_argument("--yes", action="store_true",
                       help="confirm (asked on a terminal otherwise)")
    reset.set_defaults(func=cmd_group_reset)
