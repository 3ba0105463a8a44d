"""The evstore command line.

Exit codes: 0 success (parity/drift: schemas equal; lint: no findings); 1 differences,
findings, or an operation refused (failed migration, changed applied migration, wrong
expected version); 2 usage or connection error (bad URL, unreachable server, missing folder,
held migration lock)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import evstore
from evstore import errors
from evstore.migrations import default_dir, read_folder, shipped_sql_dir
from evstore.urls import parse_url

DEFAULT_DATABASE = "sqlite:///evstore.db"
EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2

EXIT_CODES = """exit codes:
  0  success; parity/drift: schemas equal; lint: no findings
  1  differences or findings; an operation refused (failed migration, applied migration
     changed on disk, wrong expected version)
  2  usage or connection error: bad URL, unreachable server, missing folder, held lock"""


class UsageError(errors.EvstoreError):
    """The command line is not valid."""


def _database(args: argparse.Namespace) -> str:
    return str(args.database or os.environ.get("EVSTORE_DATABASE_URL") or DEFAULT_DATABASE)


def _folder(args: argparse.Namespace, dialect: str) -> Path:
    given = args.pg_dir if dialect == "postgres" else args.sqlite_dir
    return Path(given) if given else default_dir(dialect)  # type: ignore[arg-type]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _open(args: argparse.Namespace) -> evstore.Store:
    url = parse_url(_database(args))
    return evstore.Store(url, migrations_dir=_folder(args, url.dialect))


# -- migrations ------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.break_lock:
            store.break_lock()
            print(f"migration lock of {store.url.redacted} removed")
        applied = store.migrate(lock_timeout=args.lock_timeout)
        if args.json:
            _print_json({"database": store.url.redacted, "applied": applied})
        elif applied:
            for mid in applied:
                print(f"applied {mid}")
        else:
            print(f"{store.url.redacted} is up to date")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    with _open(args) as store:
        done = store.rollback(to=args.to, count=None if args.to else args.count,
                              lock_timeout=args.lock_timeout)
        if args.json:
            _print_json({"database": store.url.redacted, "rolled_back": done})
        else:
            for mid in done:
                print(f"rolled back {mid}")
            if not done:
                print("nothing to roll back")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with _open(args) as store:
        states = store.status()
    changed = [s.id for s in states if s.applied and s.changed]
    if args.json:
        _print_json([
            {"id": s.id, "applied": s.applied, "changed_since_applied": s.changed,
             "description": s.description} for s in states
        ])
    else:
        for s in states:
            mark = "applied" if s.applied else "pending"
            flag = "  CHANGED ON DISK SINCE APPLIED" if s.applied and s.changed else ""
            print(f"{mark:8} {s.id}  {s.description}{flag}")
    if changed:
        raise errors.ChecksumMismatch(changed, parse_url(_database(args)).redacted)
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    slug = re.sub(r"[^a-z0-9]+", "_", args.name.lower()).strip("_")
    if not slug:
        raise UsageError(f"migration name {args.name!r} has no letters or digits; "
                         "give a name like add_stream_index")
    folders = [_folder(args, "postgres"), _folder(args, "sqlite")]
    numbers = [0]
    for folder in folders:
        if not folder.is_dir():
            raise errors.MigrationsNotFound(f"migrations folder {str(folder)!r} does not exist; "
                                            "create it or pass --pg-dir / --sqlite-dir")
        numbers += [int(m.group(1)) for p in folder.glob("*.sql")
                    if (m := re.match(r"(\d+)_", p.name))]
    mid = f"{max(numbers) + 1:04d}_{slug}"
    created = []
    for folder in folders:
        dialect = "PostgreSQL" if folder == folders[0] else "SQLite"
        forward, rollback = folder / f"{mid}.sql", folder / f"{mid}.rollback.sql"
        forward.write_text(f"-- Describe in one line what {mid} does on {dialect}.\n\n",
                           encoding="utf-8")
        rollback.write_text(f"-- Describe in one line how this undoes {mid} on {dialect}.\n\n",
                            encoding="utf-8")
        created += [str(forward), str(rollback)]
    if args.json:
        _print_json({"id": mid, "files": created})
    else:
        for path in created:
            print(f"created {path}")
        print("fill in both dialects, then run `evstore sum` and `evstore lint`")
    return EXIT_OK


def cmd_sum(args: argparse.Namespace) -> int:
    from evstore import sumfile

    written = []
    for dialect in ("postgres", "sqlite"):
        folder = _folder(args, dialect)
        if not folder.is_dir():
            raise errors.MigrationsNotFound(f"migrations folder {str(folder)!r} does not exist")
        written.append(str(sumfile.write(folder)))
    if args.json:
        _print_json({"written": written})
    else:
        for path in written:
            print(f"wrote {path}")
    return EXIT_OK


def cmd_lint(args: argparse.Namespace) -> int:
    from evstore.lint import lint

    findings = lint(_folder(args, "postgres"), _folder(args, "sqlite"),
                    squawk=not args.no_squawk)
    if args.json:
        _print_json([f.to_dict() for f in findings])
    else:
        for f in findings:
            print(f)
        print(f"{len(findings)} finding(s)" if findings else "no findings")
    return EXIT_DIFFERENT if findings else EXIT_OK


# -- parity and drift ------------------------------------------------------------------------


def _report(diffs: Sequence[Any], as_json: bool, left: str, right: str, ok: str) -> int:
    if as_json:
        _print_json([d.to_dict(left, right) for d in diffs])
    elif diffs:
        width = max(len(d.object) for d in diffs)
        for d in diffs:
            print(d.line(width, left, right))
        print(f"{len(diffs)} difference(s)")
    else:
        print(ok)
    return EXIT_DIFFERENT if diffs else EXIT_OK


def cmd_parity(args: argparse.Namespace) -> int:
    from evstore.catalog.parity import run_live, run_parity

    postgres = args.postgres or os.environ.get("EVSTORE_PG_URL")
    declared = Path(args.declared) if args.declared else shipped_sql_dir() / "parity.toml"
    if args.declared is None and (args.pg_dir or args.sqlite_dir):
        beside = Path(args.pg_dir or args.sqlite_dir).parent / "parity.toml"
        declared = beside if beside.exists() else None  # type: ignore[assignment]
    if args.live:
        if not args.sqlite:
            raise UsageError("--live needs --sqlite sqlite:///path.db as well as --postgres")
        report = run_live(postgres, args.sqlite, declared)
    else:
        pg_dir, lite_dir = _folder(args, "postgres"), _folder(args, "sqlite")
        for folder in (pg_dir, lite_dir):
            read_folder(folder)  # a missing or unreadable folder is a usage error
        report = run_parity(postgres, pg_dir, lite_dir, declared)
    if args.dump:
        Path(args.dump, "postgres.json").write_text(report.postgres.to_json(), encoding="utf-8")
        Path(args.dump, "sqlite.json").write_text(report.sqlite.to_json(), encoding="utf-8")
    return _report(report.differences, args.json, "postgres", "sqlite",
                   "parity: the PostgreSQL and SQLite schemas match")


def cmd_drift(args: argparse.Namespace) -> int:
    from evstore.catalog.parity import run_drift

    url = parse_url(_database(args))
    folder = _folder(args, url.dialect)
    read_folder(folder)
    report = run_drift(url, folder)
    return _report(report.differences, args.json, "expected", "actual",
                   f"no drift: {url.redacted} matches {folder}")


def cmd_schema(args: argparse.Namespace) -> int:
    """Dump a live database's schema as stable JSON."""
    url = parse_url(_database(args))
    if url.dialect == "postgres":
        from evstore.catalog import postgres as pg_catalog
        from evstore.postgres import open_connection

        with open_connection(url) as conn:
            schema = pg_catalog.introspect(conn)
    else:
        from evstore.catalog.parity import introspect_sqlite

        assert url.sqlite_path is not None
        schema = introspect_sqlite(url.sqlite_path)
    sys.stdout.write(schema.to_json())
    return EXIT_OK


def cmd_grant(args: argparse.Namespace) -> int:
    from evstore.grant import statements

    url = parse_url(_database(args))
    if args.apply and url.dialect != "postgres":
        raise UsageError("grant --apply needs a PostgreSQL --database; SQLite has no roles")
    if args.apply:
        from evstore.postgres import open_connection, translated

        with open_connection(url) as conn, translated(), conn.transaction():
            for stmt in statements(args.role, args.schema):
                conn.execute(stmt)
        print(f"granted the event store's privileges to {args.role} on {url.redacted}")
    else:
        from evstore.postgres import open_connection

        if url.dialect == "postgres":
            with open_connection(url) as conn:
                lines = [s.as_string(conn) for s in statements(args.role, args.schema)]
        else:
            lines = [_plain(s) for s in statements(args.role, args.schema)]
        for line in lines:
            print(line + ";")
    return EXIT_OK


def _plain(stmt: Any) -> str:
    from psycopg import sql

    def render(part: Any) -> str:
        if isinstance(part, sql.Composed):
            return "".join(render(p) for p in part)
        if isinstance(part, sql.Identifier):
            return ".".join('"' + s.replace('"', '""') + '"' for s in part._obj)
        if isinstance(part, sql.SQL):
            return str(part._obj)
        return str(part)

    return render(stmt)


# -- events ----------------------------------------------------------------------------------


def _expected(text: str) -> evstore.events.Expected:
    named = {"any": evstore.ANY, "no-stream": evstore.NO_STREAM, "exists": evstore.STREAM_EXISTS}
    if text in named:
        return named[text]
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--expected-version {text!r}: give a number, any, no-stream or "
                         "exists") from None


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{what} is not valid JSON ({e}): {text[:80]!r}") from e


def _event_dict(e: evstore.RecordedEvent) -> dict[str, Any]:
    return {"position": e.position, "stream_id": e.stream_id, "version": e.version,
            "event_id": e.event_id, "type": e.type, "data": e.data, "metadata": e.metadata,
            "recorded_at": e.recorded_at.isoformat()}


def cmd_append(args: argparse.Namespace) -> int:
    events = []
    if args.file:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
        with source:
            for number, line in enumerate(source, 1):
                if line.strip():
                    item = _json_arg(line, f"line {number} of {args.file}")
                    if not isinstance(item, dict) or "type" not in item:
                        raise UsageError(f"line {number} of {args.file}: each line must be an "
                                         'object like {"type": "...", "data": {...}}')
                    events.append(evstore.NewEvent(item["type"], item.get("data"),
                                                   item.get("metadata"), item.get("event_id")))
    else:
        if not args.type:
            raise UsageError("append needs --type and --data, or --file events.jsonl")
        events.append(evstore.NewEvent(
            args.type, _json_arg(args.data or "null", "--data"),
            _json_arg(args.metadata, "--metadata") if args.metadata else None, args.event_id))
    with _open(args) as store:
        recorded = store.append(args.stream, events, _expected(args.expected_version))
    if args.json:
        _print_json([_event_dict(e) for e in recorded])
    else:
        for e in recorded:
            print(f"{e.position} {e.stream_id}@{e.version} {e.type} {e.event_id}")
    return EXIT_OK


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, unit="ev", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr)


def cmd_read(args: argparse.Namespace) -> int:
    total: int | None
    events: Any
    with _open(args) as store:
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
        with _progress(total, True) as bar:
            count = 0
            for e in events:
                if args.limit is not None and count >= args.limit:
                    break
                print(json.dumps(_event_dict(e), sort_keys=True) if args.json else
                      f"{e.position} {e.stream_id}@{e.version} {e.type} "
                      f"{json.dumps(e.data, sort_keys=True)}")
                count += 1
                bar.update(1)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from evstore.verify import verify

    with _open(args) as store:
        head = store.head_position()
        with _progress(head, True) as bar:
            report = verify(store, page_size=args.page_size, max_findings=args.max_findings,
                            progress=bar.update)
    if args.json:
        _print_json(report.to_dict())
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
    return EXIT_OK if report.intact else EXIT_DIFFERENT


def cmd_tail(args: argparse.Namespace) -> int:
    with _open(args) as store:
        tail = store.tail(after=args.after, types=args.types, idle_timeout=args.idle_timeout)
        try:
            for e in tail:
                print(json.dumps(_event_dict(e), sort_keys=True) if args.json else
                      f"{e.position} {e.stream_id}@{e.version} {e.type} "
                      f"{json.dumps(e.data, sort_keys=True)}", flush=True)
        except KeyboardInterrupt:
            tail.close()
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", metavar="URL",
                        help="database URL (default: $EVSTORE_DATABASE_URL, else "
                             f"{DEFAULT_DATABASE})")
    common.add_argument("--pg-dir", metavar="DIR", help="PostgreSQL migrations folder "
                        "(default: evstore's own sql/postgres)")
    common.add_argument("--sqlite-dir", metavar="DIR", help="SQLite migrations folder "
                        "(default: evstore's own sql/sqlite)")
    common.add_argument("--json", action="store_true", help="print the result as JSON data")

    parser = argparse.ArgumentParser(
        prog="evstore", description="Hand-written SQL migrations for PostgreSQL and SQLite, "
        "proven at parity, and the append-only event store they define.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evstore {evstore.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_, description=help_,
                              epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("migrate", "apply pending migrations through yoyo")
    p.add_argument("--lock-timeout", type=float, default=10, metavar="SECONDS")
    p.add_argument("--break-lock", action="store_true",
                   help="remove a stale migration lock left by a killed deploy, then migrate")
    p.set_defaults(func=cmd_migrate)

    p = add("rollback", "roll back the last migration, or down to --to ID (base: all)")
    p.add_argument("--to", metavar="ID", help="keep this migration, roll back later ones")
    p.add_argument("--count", type=int, default=1, help="how many to roll back (default 1)")
    p.add_argument("--lock-timeout", type=float, default=10, metavar="SECONDS")
    p.set_defaults(func=cmd_rollback)

    p = add("status", "list applied and pending migrations; fail if an applied one changed")
    p.set_defaults(func=cmd_status)

    p = add("new", "create paired forward and rollback files with the next id in both folders")
    p.add_argument("name")
    p.set_defaults(func=cmd_new)

    p = add("sum", "rewrite the evstore.sum checksum file of both folders")
    p.set_defaults(func=cmd_sum)

    p = add("lint", "check both migration folders statically")
    p.add_argument("--no-squawk", action="store_true", help="skip squawk even if installed")
    p.set_defaults(func=cmd_lint)

    p = add("parity", "apply both folders to scratch databases and prove the schemas match")
    p.add_argument("--postgres", metavar="URL", help="PostgreSQL server for the scratch "
                   "database (default: $EVSTORE_PG_URL)")
    p.add_argument("--declared", metavar="FILE", help="declared differences (default: "
                   "parity.toml beside the folders)")
    p.add_argument("--live", action="store_true", help="compare existing databases "
                   "(--postgres and --sqlite) without migrating")
    p.add_argument("--sqlite", metavar="URL", help="with --live: the SQLite file's URL")
    p.add_argument("--dump", metavar="DIR", help="also write both schemas as sorted JSON")
    p.set_defaults(func=cmd_parity)

    p = add("drift", "compare a live database with what its folder builds")
    p.set_defaults(func=cmd_drift)

    p = add("schema", "print a live database's schema as stable, sorted JSON")
    p.set_defaults(func=cmd_schema)

    p = add("grant", "print (or --apply) least-privilege grants for an application role")
    p.add_argument("--role", required=True)
    p.add_argument("--schema", default="public")
    p.add_argument("--apply", action="store_true")
    p.set_defaults(func=cmd_grant)

    p = add("append", "append events to a stream")
    p.add_argument("stream")
    p.add_argument("--type")
    p.add_argument("--data", help="JSON")
    p.add_argument("--metadata", help="JSON object")
    p.add_argument("--event-id")
    p.add_argument("--file", help="JSON lines of {type, data, metadata?, event_id?}; - for stdin")
    p.add_argument("--expected-version", default="any",
                   help="a number, any, no-stream or exists (default any)")
    p.set_defaults(func=cmd_append)

    p = add("read", "read a stream, or the whole log in global order")
    p.add_argument("--stream")
    p.add_argument("--from-version", type=int, default=None,
                   help="first version to read (default 1; with --backwards, the last)")
    p.add_argument("--backwards", action="store_true")
    p.add_argument("--after", type=int, default=0, help="global position to read after")
    p.add_argument("--limit", type=int)
    p.add_argument("--types", nargs="+", metavar="TYPE")
    p.add_argument("--event-id", metavar="ULID", help="look up one event by its id")
    p.set_defaults(func=cmd_read)

    p = add("verify", "recompute every event's content digest and check each stream's "
            "versions, positions and head; exit 1 listing each finding")
    p.add_argument("--page-size", type=int, default=1000, metavar="N",
                   help="events read per page (memory stays flat; default 1000)")
    p.add_argument("--max-findings", type=int, default=1000, metavar="N",
                   help="stop listing after N findings (default 1000)")
    p.set_defaults(func=cmd_verify)

    p = add("tail", "print events as they commit (Ctrl-C to stop)")
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--types", nargs="+", metavar="TYPE")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="stop after this long without a new event")
    p.set_defaults(func=cmd_tail)
    return parser


_USAGE_ERRORS = (
    UsageError, errors.InvalidURL, errors.ConnectionFailed, errors.MigrationsNotFound,
    errors.MigrationLocked, errors.UnknownMigration, errors.InvalidInput,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _USAGE_ERRORS as e:
        print(f"evstore: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except errors.EvstoreError as e:
        print(f"evstore: error: {e}", file=sys.stderr)
        return EXIT_DIFFERENT
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
