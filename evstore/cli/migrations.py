"""evstore migrate, rollback, status, new and sum: the migration folders through yoyo."""


from __future__ import annotations

import argparse
import re
import sys

from evstore import errors
from evstore.cli.common import (
    EXIT_OK,
    Add,
    Options,
    UsageError,
    app_folders,
    confirm,
    database_arg,
    migrator_for,
    open_store,
    print_json,
    print_plan,
    require_existing,
    seconds,
    shown,
    whole_number,
)
from evstore.schema.migrations import (
    LEGACY_CHECKSUM_TABLE,
)
from evstore.urls import parse_url


def cmd_migrate(args: argparse.Namespace) -> int:
    url = parse_url(database_arg(args))
    migrator = migrator_for(args, url)
    # Changed or vanished applied files are refused here, before anything is written.
    planned = migrator.plan_apply()
    if args.dry_run:
        print_plan(url, "apply", planned, args.json)
        return EXIT_OK
    with open_store(args) as store:
        if args.break_lock:
            store.break_lock()
            # stdout stays the result alone (JSON with --json); the notice goes to stderr.
            print(f"evstore: migration lock of {store.url.redacted} removed", file=sys.stderr)
        applied = store.migrate(lock_timeout=args.lock_timeout)
        if args.json:
            print_json({"database": store.url.redacted, "applied": applied,
                         "lock_removed": bool(args.break_lock)})
        elif applied:
            for mid in applied:
                print(f"applied {mid}")
        else:
            print(f"{store.url.redacted} is up to date")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    if args.to is not None and args.count is not None:
        raise UsageError("give --to ID or --count N, not both")
    url = parse_url(database_arg(args))
    require_existing(url)
    count = None if args.to else (args.count or 1)
    migrator = migrator_for(args, url)
    try:
        targets = migrator.plan_rollback(to=args.to, count=count)
        ids = [m.id for m in targets]
        if args.dry_run:
            print_plan(url, "rollback", targets, args.json)
            return EXIT_OK
        # 0008's checksum table is exempt: its rows are a copy of _yoyo_evstore_checksum.
        risky = [d for d in migrator.drops(targets)
                 if (d.table == "event_store" and d.column is None)
                 or (d.has_rows and d.table != LEGACY_CHECKSUM_TABLE)]
        if risky and not args.yes:
            what = ", ".join(
                f"{d.what} ({'holds rows' if d.has_rows else 'the event log'}, dropped by "
                f"{d.migration_id})" for d in risky)
            question = f"Rolling back {', '.join(ids)} on {url.redacted} drops {what}."
            if not confirm(question + " Continue?"):
                raise errors.ConfirmationRequired(
                    f"{question} Nothing was changed. Check the plan with `evstore rollback "
                    "--dry-run`, back the data up, then pass --yes to confirm"
                )
        done = migrator.rollback(to=args.to, count=count, lock_timeout=args.lock_timeout,
                                 expect=ids)
    finally:
        migrator.close()
    if args.json:
        print_json({"database": url.redacted, "rolled_back": done})
    else:
        for mid in done:
            print(f"rolled back {mid}")
        if not done:
            print("nothing to roll back")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    url = parse_url(database_arg(args))
    require_existing(url)
    migrator = migrator_for(args, url)
    states = migrator.status()  # reads only: no lock, no writes
    changed = [s.id for s in states if s.applied and s.changed and not s.file_missing]
    missing = [s.id for s in states if s.file_missing]
    if args.json:
        print_json([
            {"id": s.id, "applied": s.applied, "changed_since_applied": s.changed,
             "file_missing": s.file_missing, "description": s.description} for s in states
        ])
    else:
        for s in states:
            mark = "applied" if s.applied else "pending"
            flag = ("  FILE MISSING FROM THE FOLDER" if s.file_missing else
                    "  CHANGED ON DISK SINCE APPLIED" if s.applied and s.changed else "")
            print(f"{mark:8} {shown(s.id)}  {shown(s.description)}{flag}")
    if missing:
        raise errors.MigrationFileMissing(missing, str(migrator.folder), url.redacted)
    if changed:
        raise errors.ChecksumMismatch(changed, url.redacted)
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    slug = re.sub(r"[^a-z0-9]+", "_", args.name.lower()).strip("_")
    if not slug:
        raise UsageError(f"migration name {args.name!r} has no letters or digits; "
                         "give a name like add_stream_index")
    folders = app_folders(args)
    numbered: list[tuple[int, str]] = [(0, "")]  # (number, prefix) of every existing id
    for folder in folders:
        if not folder.is_dir():
            raise errors.MigrationsNotFound(f"migrations folder {str(folder)!r} does not exist; "
                                            "create it or pass --pg-dir / --sqlite-dir")
        numbered += [(int(m.group(2)), m.group(1) or "") for p in folder.glob("*.sql")
                     if (m := re.match(r"(?:([a-z][a-z0-9]*)_)?(\d+)_", p.name))]
    number, prefix = max(numbered)  # the newest id's prefix (app_) carries on
    mid = f"{prefix + '_' if prefix else ''}{number + 1:04d}_{slug}"
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
        print_json({"id": mid, "files": created})
    else:
        for path in created:
            print(f"created {path}")
        print("fill in both dialects, then run `evstore sum` and `evstore lint`")
    return EXIT_OK


def cmd_sum(args: argparse.Namespace) -> int:
    from evstore.schema import sumfile

    written = []
    for folder in app_folders(args):
        if not folder.is_dir():
            raise errors.MigrationsNotFound(f"migrations folder {str(folder)!r} does not exist")
        written.append(str(sumfile.write(folder)))
    if args.json:
        print_json({"written": written})
    else:
        for path in written:
            print(f"wrote {path}")
    return EXIT_OK


def register(add: Add, o: Options) -> None:
    """The migrations commands' parsers."""
    p = add("migrate", "apply pending migrations through yoyo: evstore's own folder, then the "
            "application's", o.db, o.folders, o.cfg, o.out)
    p.add_argument("--lock-timeout", type=seconds, default=10, metavar="SECONDS",
                   help="how long to wait for yoyo's migration lock (default 10)")
    p.add_argument("--break-lock", action="store_true",
                   help="remove a stale migration lock left by a killed deploy, then migrate")
    p.add_argument("--dry-run", action="store_true", help="print the migrations and their SQL "
                   "that would run; change nothing, take no lock, create no file")
    p.set_defaults(func=cmd_migrate)

    p = add("rollback", "roll back the last migration, or down to --to ID (base: all)",
            o.db, o.folders, o.cfg, o.out)
    p.add_argument("--to", metavar="ID", help="keep this migration, roll back later ones")
    p.add_argument("--count", type=whole_number(1, "a count of migrations"),
                   help="how many to roll back (default 1)")
    p.add_argument("--lock-timeout", type=seconds, default=10, metavar="SECONDS",
                   help="how long to wait for yoyo's migration lock (default 10)")
    p.add_argument("--dry-run", action="store_true", help="print the migrations and the "
                   "rollback SQL that would run; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm a rollback that drops "
                   "event_store or a table holding rows (asked on a terminal otherwise)")
    p.set_defaults(func=cmd_rollback)

    p = add("status", "list applied and pending migrations; fail if an applied one changed",
            o.db, o.folders, o.cfg, o.out)
    p.set_defaults(func=cmd_status)

    p = add("new", "create paired forward and rollback files with the next id in both of the "
            "application's folders", o.folders, o.cfg, o.out)
    p.add_argument("name", help="what the migration does, as a few words (add_orders_view)")
    p.set_defaults(func=cmd_new)

    p = add("sum", "rewrite the evstore.sum checksum file of both of the application's "
            "folders", o.folders, o.cfg, o.out)
    p.set_defaults(func=cmd_sum)
