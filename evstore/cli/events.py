"""evstore append, read and tail: the event store from the command line."""


from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import evstore
from evstore import errors
from evstore.cli.common import (
    EXIT_OK,
    MAX_INT,
    Add,
    Options,
    UsageError,
    open_store,
    print_json,
    progress_bar,
    readable_file,
    require_tables,
    seconds,
    shown,
    whole_number,
)
from evstore.events import as_document


def _expected(text: str) -> evstore.events.Expected:
    named = {"any": evstore.ANY, "no-stream": evstore.NO_STREAM, "exists": evstore.STREAM_EXISTS}
    if text in named:
        return named[text]
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= MAX_INT:
        raise UsageError(f"--expected-version {shown(text)!r}: give a number from 0 to {MAX_INT}, "
                         "any, no-stream or exists") from None
    return number


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON ({e}): {shown(text[:80])}") from e


def _event_dict(e: evstore.RecordedEvent) -> dict[str, Any]:
    return {"position": e.position, "stream_id": e.stream_id, "version": e.version,
            "event_id": e.event_id, "type": e.type, "data": as_document(e.data),
            "metadata": e.metadata, "recorded_at": e.recorded_at.isoformat()}


def cmd_append(args: argparse.Namespace) -> int:
    events = []
    if args.file:
        name = shown(args.file)
        for number, line in _lines(args.file):
            if line.strip():
                item = _json_arg(line, f"line {number} of {name}")
                if not isinstance(item, dict) or "type" not in item:
                    raise UsageError(f"line {number} of {name}: each line must be an "
                                     'object like {"type": "...", "data": {...}}')
                events.append(evstore.NewEvent(item["type"], item.get("data"),
                                               item.get("metadata"), item.get("event_id")))
    else:
        if not args.type:
            raise UsageError("append needs --type and --data, or --file events.jsonl")
        events.append(evstore.NewEvent(
            args.type, _json_arg(args.data or "null", "--data"),
            _json_arg(args.metadata, "--metadata") if args.metadata else None, args.event_id))
    expected = _expected(args.expected_version)
    with open_store(args) as store:
        require_tables(store)
        recorded = store.append(args.stream, events, expected)
    if args.json:
        print_json([_event_dict(e) for e in recorded])
    else:
        for e in recorded:
            print(f"{e.position} {shown(e.stream_id)}@{e.version} {shown(e.type)} "
                  f"{shown(e.event_id)}")
    return EXIT_OK


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 file (or stdin for -), every read error a usage error."""
    name = shown(path)
    try:
        if path == "-":
            source = sys.stdin
        else:
            file = readable_file(path, "--file")
            source = open(file, encoding="utf-8")
        with source:
            yield from enumerate(source, 1)
    except UnicodeDecodeError as e:
        raise UsageError(f"--file {name} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "save it as UTF-8 JSON lines") from e
    except OSError as e:
        raise UsageError(f"--file {name}: cannot read it ({e.strerror}); check the path and "
                         "its permissions") from e


def cmd_read(args: argparse.Namespace) -> int:
    total: int | None
    events: Any
    with open_store(args, must_exist=True) as store:
        require_tables(store)
        if args.event_id:
            if args.stream or args.types:
                raise UsageError("--event-id looks up one event; drop --stream and --types")
            found = store.get_event(args.event_id)
            if found is None:
                raise errors.EvstoreError(f"no event with id {args.event_id} in "
                                          f"{store.url.redacted}")
            events = [found]
            total = 1
        elif args.stream:
            events = store.read_stream(args.stream, args.from_version, args.limit,
                                            args.backwards)
            total = len(events)
        else:
            head = store.head_position()
            total = None if args.types else max(head - args.after, 0)
            if args.limit is not None:
                total = min(total, args.limit) if total is not None else args.limit
            events = store.iter_all(after=args.after, types=args.types)
        with progress_bar(total, True) as bar:
            count = 0
            for e in events:
                if args.limit is not None and count >= args.limit:
                    break
                print(_event_line(e, args.json))
                count += 1
                bar.update(1)
    return EXIT_OK


def _event_line(e: evstore.RecordedEvent, as_json: bool) -> str:
    if as_json:
        return json.dumps(_event_dict(e), sort_keys=True)
    # json.dumps escapes every control character of the data itself; binary data prints as
    # the document it is stored as, {"$bytes": "<base64>"}.
    return (f"{e.position} {shown(e.stream_id)}@{e.version} {shown(e.type)} "
            f"{json.dumps(as_document(e.data), sort_keys=True)}")


def cmd_tail(args: argparse.Namespace) -> int:
    with open_store(args, must_exist=True) as store:
        require_tables(store)
        tail = store.tail(after=args.after, types=args.types, idle_timeout=args.idle_timeout)
        try:
            for e in tail:
                print(_event_line(e, args.json), flush=True)
        except KeyboardInterrupt:
            tail.close()
    return EXIT_OK


def register(add: Add, o: Options) -> None:
    """The events commands' parsers."""
    p = add("append", "append events to a stream", o.db, o.cfg, o.out)
    p.add_argument("stream", help="the stream's id")
    p.add_argument("--type", help="the event's type")
    p.add_argument("--data", help="the event's data as JSON (default null)")
    p.add_argument("--metadata", help="the event's metadata as a JSON object")
    p.add_argument("--event-id", metavar="ULID",
                   help="the event's id, for a retry that must not append twice")
    p.add_argument("--file", help="JSON lines of {type, data, metadata?, event_id?}; - for stdin")
    p.add_argument("--expected-version", default="any",
                   help="a number, any, no-stream or exists (default any)")
    p.set_defaults(func=cmd_append)

    p = add("read", "read a stream, or the whole log in global order", o.db, o.cfg, o.out)
    p.add_argument("--stream", help="read this stream in version order")
    p.add_argument("--from-version", type=whole_number(0, "a stream version"), default=None,
                   help="first version to read (default 1; with --backwards, the last)")
    p.add_argument("--backwards", action="store_true",
                   help="with --stream: newest first")
    p.add_argument("--after", type=whole_number(0, "a position"), default=0,
                   help="global position to read after")
    p.add_argument("--limit", type=whole_number(0, "a number of events"),
                   help="print at most this many events")
    p.add_argument("--types", nargs="+", metavar="TYPE",
                   help="only events of these types (whole log only)")
    p.add_argument("--event-id", metavar="ULID", help="look up one event by its id")
    p.set_defaults(func=cmd_read)

    p = add("tail", "print events as they commit (Ctrl-C to stop)", o.db, o.cfg, o.out)
    p.add_argument("--after", type=whole_number(0, "a position"), default=0,
                   help="global position to start after (default 0: the whole log)")
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only events of these types")
    p.add_argument("--idle-timeout", type=seconds, metavar="SECONDS",
                   help="stop after this long without a new event")
    p.set_defaults(func=cmd_tail)
