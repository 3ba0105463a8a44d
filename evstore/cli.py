"""The evstore command line.

Exit codes: 0 success (parity/drift: schemas equal; lint: no findings); 1 differences,
findings, or an operation refused (failed migration, changed applied migration, wrong
expected version); 2 usage or connection error (bad URL, unreachable server, missing folder,
held migration lock, a destructive command without --yes); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM).

Every error is printed in one place, main(), with the passwords of every URL given scrubbed
out; human output escapes control characters so a stream id cannot forge output lines."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import evstore
from evstore import config, errors
from evstore.config import ProjectConfig
from evstore.migrations import (
    LEGACY_CHECKSUM_TABLE,
    Migrator,
    default_dir,
    read_folder,
    shipped_sql_dir,
)
from evstore.urls import DatabaseURL, parse_url, scrub

DEFAULT_DATABASE = "sqlite:///evstore.db"
EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
MAX_INT = 2**63 - 1  # a bigint on both dialects

EXIT_CODES = """exit codes:
  0  success; parity/drift: schemas equal; lint: no findings
  1  differences or findings; an operation refused (failed migration, applied migration
     changed on disk, wrong expected version)
  2  usage or connection error: bad URL, unreachable server, missing folder, held lock,
     a destructive rollback without --yes
  130 interrupted (Ctrl-C); 143 terminated (SIGTERM)"""


class UsageError(errors.EvstoreError):
    """The command line is not valid."""


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so that cleanup (finally) runs."""


def _config(args: argparse.Namespace) -> ProjectConfig:
    """The project configuration: --config FILE, else evstore.toml or pyproject.toml's
    [tool.evstore] from the current folder upwards (evstore/config.py)."""
    cached: ProjectConfig | None = getattr(args, "_project_config", None)
    if cached is None:
        given = getattr(args, "config", None)
        if given:
            _check_text(given, "--config")
            cached = config.load_file(_readable_file(given, "--config"))
        else:
            cached = config.load()
        args._project_config = cached
    return cached


def _database(args: argparse.Namespace) -> str:
    """--database, else $EVSTORE_DATABASE_URL, else the project configuration, else the
    embedded default."""
    url = str(getattr(args, "database", None) or os.environ.get("EVSTORE_DATABASE_URL")
              or _config(args).database or DEFAULT_DATABASE)
    _check_text(url, "the database URL")
    return url


def _schema(args: argparse.Namespace) -> str | None:
    schema = getattr(args, "schema", None) or _config(args).schema
    return str(schema) if schema else None


# -- output ----------------------------------------------------------------------------------

# C0 and C1 controls, DEL, line and paragraph separators, bidirectional overrides and lone
# surrogates: printed as escapes, so that no value can start a line of its own, recolour the
# terminal, or reorder what is shown.
_UNSAFE = re.compile(
    r"[\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    r"\ud800-\udfff]"
)


def shown(text: object) -> str:
    """`text` for a human: controls escaped as in a Python literal (\\n, \\x1b, \\u2028), and
    backslashes doubled so that an escape cannot be faked either."""
    return _UNSAFE.sub(_escape, str(text))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\\\" if char == "\\" else char.encode("unicode_escape").decode("ascii")


def _check_text(value: str, what: str) -> None:
    """Refuse what the databases cannot store and a terminal cannot print: NUL, and lone
    surrogates (bytes that were not UTF-8, smuggled in by the file system encoding)."""
    if "\x00" in value:
        raise UsageError(f"{what} contains a NUL character; remove it")
    bad = re.search(r"[\ud800-\udfff]", value)
    if bad:
        raise UsageError(
            f"{what} is not valid UTF-8 text (it holds {shown(bad.group())}, an undecodable "
            f"byte): {shown(value)[:80]!s}; pass UTF-8 text (rename the file if it is a path)"
        )


def _given_folder(args: argparse.Namespace, dialect: str) -> Path | None:
    given = getattr(args, "pg_dir" if dialect == "postgres" else "sqlite_dir", None)
    return Path(given) if given else None


def _folder(args: argparse.Namespace, dialect: str) -> Path:
    """The one folder of a dialect that --pg-dir/--sqlite-dir names, else evstore's own."""
    return _given_folder(args, dialect) or default_dir(dialect)  # type: ignore[arg-type]


def _folders(args: argparse.Namespace, dialect: str) -> list[Path]:
    """What migrate, status, parity and drift run, in order: --pg-dir/--sqlite-dir alone when
    given; otherwise evstore's own folder, then the application's from the configuration."""
    given = _given_folder(args, dialect)
    if given is not None:
        return [given]
    app = _config(args).folder(dialect)
    return [default_dir(dialect), *([app] if app else [])]  # type: ignore[arg-type]


def _app_folders(args: argparse.Namespace) -> list[Path]:
    """The folders `new` and `sum` write to: the application's, never an installed package."""
    folders = []
    for dialect, option in (("postgres", "--pg-dir"), ("sqlite", "--sqlite-dir")):
        folder = _given_folder(args, dialect) or _config(args).folder(dialect)
        if folder is None:
            raise UsageError(
                f"no {dialect} folder of your own to write to; evstore's folders are part of "
                f"the installed package. Set pg_dir and sqlite_dir under [tool.evstore] in "
                f"pyproject.toml (or in evstore.toml), or pass {option}"
            )
        resolved = folder.resolve()
        package = Path(evstore.__file__).resolve().parent
        if "site-packages" in resolved.parts or "dist-packages" in resolved.parts or (
            resolved == package or package in resolved.parents
        ):
            raise UsageError(
                f"{shown(folder)} is inside an installed package; keep your migrations in "
                "your project's own folders (pg_dir and sqlite_dir in [tool.evstore])"
            )
        folders.append(folder)
    return folders


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _require_existing(url: DatabaseURL) -> None:
    """Commands that only read never create a SQLite file on a mistyped path."""
    if url.dialect == "sqlite" and not url.is_memory:
        assert url.sqlite_path is not None
        if not Path(url.sqlite_path).is_file():
            raise UsageError(
                f"no database at {shown(url.sqlite_path)}; check the path, or run "
                "`evstore migrate` to create one"
            )


def _open(args: argparse.Namespace, *, must_exist: bool = False) -> evstore.Store:
    url = parse_url(_database(args))
    if must_exist:
        _require_existing(url)
    folders = _folders(args, url.dialect)
    return evstore.Store(url, migrations_dir=folders[0],
                         app_migrations_dir=folders[1] if len(folders) > 1 else None,
                         schema=_schema(args))


def _require_tables(store: evstore.Store) -> None:
    """A database evstore never migrated: say so, instead of a driver's "no such table"."""
    if not store.run_query("event_store_exists"):
        where = f" in schema {store.schema}" if store.schema else ""
        raise UsageError(
            f"{store.url.redacted} has no event store tables{where}; run `evstore migrate` on "
            "it first (with the same --schema)"
        )


def _migrator(args: argparse.Namespace, url: DatabaseURL) -> Migrator:
    """A Migrator for plans and status: reads without writing, creates no file."""
    shared = sqlite3.connect(":memory:") if url.is_memory else None
    schema = _schema(args)
    if schema is not None and url.dialect == "postgres":
        from evstore.store import check_schema

        check_schema(schema, url.dialect)
    return Migrator(url, _folders(args, url.dialect), sqlite_connection=shared,
                    schema=schema if url.dialect == "postgres" else None)


def _print_plan(url: DatabaseURL, direction: str, migrations: Sequence[Any],
                as_json: bool) -> None:
    from evstore.migrations import rollback_path

    steps = []
    for m in migrations:
        path = Path(m.path) if direction == "apply" else rollback_path(Path(m.path))
        steps.append({"id": m.id, "direction": direction, "file": str(path),
                      "sql": path.read_text(encoding="utf-8")})
    if as_json:
        _print_json({"database": url.redacted, "dry_run": True, "plan": steps})
        return
    if not steps:
        print(f"dry run: nothing to {direction} on {url.redacted}")
        return
    print(f"dry run: would {direction} {len(steps)} migration(s) on {url.redacted}; "
          "nothing was changed")
    for step in steps:
        print(f"\n-- {step['id']} ({direction}): {shown(step['file'])}")
        print("\n".join(shown(line) for line in step["sql"].rstrip("\n").splitlines()))


def _confirm(question: str) -> bool:
    """A y/N question, asked only when a person is at the terminal."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (EOFError, OSError):
        return False
    return answer.strip().lower() in {"y", "yes"}


# -- migrations ------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    url = parse_url(_database(args))
    migrator = _migrator(args, url)
    # Changed or vanished applied files are refused here, before anything is written.
    planned = migrator.plan_apply()
    if args.dry_run:
        _print_plan(url, "apply", planned, args.json)
        return EXIT_OK
    with _open(args) as store:
        if args.break_lock:
            store.break_lock()
            # stdout stays the result alone (JSON with --json); the notice goes to stderr.
            print(f"evstore: migration lock of {store.url.redacted} removed", file=sys.stderr)
        applied = store.migrate(lock_timeout=args.lock_timeout)
        if args.json:
            _print_json({"database": store.url.redacted, "applied": applied,
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
    url = parse_url(_database(args))
    _require_existing(url)
    count = None if args.to else (args.count or 1)
    migrator = _migrator(args, url)
    try:
        targets = migrator.plan_rollback(to=args.to, count=count)
        ids = [m.id for m in targets]
        if args.dry_run:
            _print_plan(url, "rollback", targets, args.json)
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
            if not _confirm(question + " Continue?"):
                raise errors.ConfirmationRequired(
                    f"{question} Nothing was changed. Check the plan with `evstore rollback "
                    "--dry-run`, back the data up, then pass --yes to confirm"
                )
        done = migrator.rollback(to=args.to, count=count, lock_timeout=args.lock_timeout,
                                 expect=ids)
    finally:
        migrator.close()
    if args.json:
        _print_json({"database": url.redacted, "rolled_back": done})
    else:
        for mid in done:
            print(f"rolled back {mid}")
        if not done:
            print("nothing to roll back")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    url = parse_url(_database(args))
    _require_existing(url)
    migrator = _migrator(args, url)
    states = migrator.status()  # reads only: no lock, no writes
    changed = [s.id for s in states if s.applied and s.changed and not s.file_missing]
    missing = [s.id for s in states if s.file_missing]
    if args.json:
        _print_json([
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
    folders = _app_folders(args)
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
        _print_json({"id": mid, "files": created})
    else:
        for path in created:
            print(f"created {path}")
        print("fill in both dialects, then run `evstore sum` and `evstore lint`")
    return EXIT_OK


def cmd_sum(args: argparse.Namespace) -> int:
    from evstore import sumfile

    written = []
    for folder in _app_folders(args):
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

    pg, lite = _folders(args, "postgres"), _folders(args, "sqlite")
    findings = [f for pair in zip(pg, lite, strict=True)
                for f in lint(pair[0], pair[1], squawk=not args.no_squawk)]
    if len(pg) > 1:
        for folders in (pg, lite):
            read_folder(folders)  # the union: ids distinct across folders, depends resolvable
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
        width = max(len(shown(d.object)) for d in diffs)
        for d in diffs:
            print(shown(d.line(width, left, right)))
        print(f"{len(diffs)} difference(s)")
    else:
        print(ok)
    return EXIT_DIFFERENT if diffs else EXIT_OK


def _writable_folder(path: str, option: str) -> Path:
    """A folder for output files, created if missing; refused up front, before any work."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {shown(path)}: cannot create the folder ({e.strerror}); "
                         "give a folder you can write to") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {shown(path)}: the folder is not writable; give a folder "
                         "you can write to")
    return folder


def _readable_file(path: str, option: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{option} {shown(path)}: no such file; check the path")
    if file.is_dir():
        raise UsageError(f"{option} {shown(path)} is a folder; give a file")
    return file


def cmd_parity(args: argparse.Namespace) -> int:
    from evstore.catalog.parity import cleanup_scratch, run_live, run_parity

    postgres = args.postgres or os.environ.get("EVSTORE_PG_URL")
    if args.cleanup:
        dropped, busy = cleanup_scratch(postgres)
        if args.json:
            _print_json({"dropped": dropped, "in_use": busy})
        else:
            for name in dropped:
                print(f"dropped scratch database {name}")
            for name in busy:
                print(f"kept scratch database {name}: a session is using it (a parity or "
                      "drift run in progress?)")
            if not dropped and not busy:
                print("no scratch databases left by killed runs")
        return EXIT_OK
    declared: list[Path] = [shipped_sql_dir() / "parity.toml"]
    if args.declared is not None:
        declared = [_readable_file(args.declared, "--declared")]
    elif args.pg_dir or args.sqlite_dir:
        beside = Path(args.pg_dir or args.sqlite_dir).parent / "parity.toml"
        declared = [beside] if beside.exists() else []
    elif _config(args).declared is not None:
        declared.append(_readable_file(str(_config(args).declared), "declared"))
    dump = _writable_folder(args.dump, "--dump") if args.dump else None
    if args.live:
        if not args.sqlite:
            raise UsageError("--live needs --sqlite sqlite:///path.db as well as --postgres")
        _check_text(args.sqlite, "--sqlite")
        report = run_live(postgres, args.sqlite, declared, _schema(args))
    else:
        pg_dir, lite_dir = _folders(args, "postgres"), _folders(args, "sqlite")
        for folders in (pg_dir, lite_dir):
            read_folder(folders)  # a missing or unreadable folder is a usage error
        report = run_parity(postgres, pg_dir, lite_dir, declared)
    if dump is not None:
        try:
            (dump / "postgres.json").write_text(report.postgres.to_json(), encoding="utf-8")
            (dump / "sqlite.json").write_text(report.sqlite.to_json(), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--dump {shown(args.dump)}: cannot write the schemas "
                             f"({e.strerror}); give a folder you can write to") from e
    return _report(report.differences, args.json, "postgres", "sqlite",
                   "parity: the PostgreSQL and SQLite schemas match")


def cmd_drift(args: argparse.Namespace) -> int:
    from evstore.catalog.parity import run_drift

    url = parse_url(_database(args))
    _require_existing(url)
    folders = _folders(args, url.dialect)
    read_folder(folders)
    report = run_drift(url, folders, _schema(args))
    return _report(report.differences, args.json, "expected", "actual",
                   f"no drift: {url.redacted} matches "
                   f"{', '.join(shown(f) for f in folders)}")


def cmd_schema(args: argparse.Namespace) -> int:
    """Dump a live database's schema as stable JSON."""
    url = parse_url(_database(args))
    _require_existing(url)
    if url.dialect == "postgres":
        from evstore.catalog import postgres as pg_catalog
        from evstore.postgres import SQL as PG_SQL
        from evstore.postgres import open_connection

        with open_connection(url, _schema(args)) as conn:
            row = conn.execute(PG_SQL["postgres_current_schema"]).fetchone()
            schema = pg_catalog.introspect(conn, str(row[0]) if row else "public")
    else:
        from evstore.catalog.parity import introspect_sqlite

        assert url.sqlite_path is not None
        schema = introspect_sqlite(url.sqlite_path)
    sys.stdout.write(schema.to_json())
    return EXIT_OK


def cmd_grant(args: argparse.Namespace) -> int:
    from evstore.grant import check_role, statements

    url = parse_url(_database(args))
    if url.dialect != "postgres":
        raise UsageError(
            "grants do not apply to SQLite: it has no roles or privileges; control access "
            "with the file's permissions (chmod), or give a PostgreSQL --database"
        )
    from evstore.postgres import SQL as PG_SQL
    from evstore.postgres import open_connection, translated

    with open_connection(url, _schema(args)) as conn:
        check_role(conn, args.role)
        row = conn.execute(PG_SQL["postgres_current_schema"]).fetchone()
        args.schema = _schema(args) or (str(row[0]) if row and row[0] else "public")
        if args.apply:
            with translated(), conn.transaction():
                for stmt in statements(args.role, args.schema):
                    conn.execute(stmt)
            print(f"granted the event store's privileges to {shown(args.role)} on "
                  f"{url.redacted}")
        else:
            for stmt in statements(args.role, args.schema):
                print(shown(stmt.as_string(conn)) + ";")
    return EXIT_OK


# -- events ----------------------------------------------------------------------------------


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
            "event_id": e.event_id, "type": e.type, "data": e.data, "metadata": e.metadata,
            "recorded_at": e.recorded_at.isoformat()}


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
    with _open(args) as store:
        _require_tables(store)
        recorded = store.append(args.stream, events, expected)
    if args.json:
        _print_json([_event_dict(e) for e in recorded])
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
            file = _readable_file(path, "--file")
            source = open(file, encoding="utf-8")
        with source:
            yield from enumerate(source, 1)
    except UnicodeDecodeError as e:
        raise UsageError(f"--file {name} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "save it as UTF-8 JSON lines") from e
    except OSError as e:
        raise UsageError(f"--file {name}: cannot read it ({e.strerror}); check the path and "
                         "its permissions") from e


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, unit="ev", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr)


def cmd_read(args: argparse.Namespace) -> int:
    total: int | None
    events: Any
    with _open(args, must_exist=True) as store:
        _require_tables(store)
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
                print(_event_line(e, args.json))
                count += 1
                bar.update(1)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from evstore.verify import verify

    with _open(args, must_exist=True) as store:
        _require_tables(store)
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
        if report.chain_head is not None:
            print(f"chain head at position {report.chain_head_position}: "
                  f"{report.chain_head.hex()} (keep it elsewhere: a later verify that ends "
                  "on another value at this position shows the log was rewritten)")
    return EXIT_OK if report.intact else EXIT_DIFFERENT


def _event_line(e: evstore.RecordedEvent, as_json: bool) -> str:
    if as_json:
        return json.dumps(_event_dict(e), sort_keys=True)
    # json.dumps escapes every control character of the data itself.
    return (f"{e.position} {shown(e.stream_id)}@{e.version} {shown(e.type)} "
            f"{json.dumps(e.data, sort_keys=True)}")


def cmd_tail(args: argparse.Namespace) -> int:
    with _open(args, must_exist=True) as store:
        _require_tables(store)
        tail = store.tail(after=args.after, types=args.types, idle_timeout=args.idle_timeout)
        try:
            for e in tail:
                print(_event_line(e, args.json), flush=True)
        except KeyboardInterrupt:
            tail.close()
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def _whole(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to 2**63-1 (a bigint on both dialects)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not minimum <= value <= MAX_INT:
            raise argparse.ArgumentTypeError(
                f"{shown(text)!r} is not {what}: give a whole number from {minimum} to {MAX_INT}")
        return value

    parse.__name__ = what
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 86400 * 365):
        raise argparse.ArgumentTypeError(
            f"{shown(text)!r} is not a number of seconds: give one from 0 to 31536000")
    return value


def build_parser() -> argparse.ArgumentParser:
    # Option groups: each command takes only the groups that apply to it.
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database", metavar="URL",
                    help="database URL (default: $EVSTORE_DATABASE_URL, else the project "
                         f"configuration's database, else {DEFAULT_DATABASE})")
    db.add_argument("--schema", metavar="NAME",
                    help="PostgreSQL schema that holds the store and yoyo's tables (default: "
                         "the configuration's schema, else the first of the URL's search_path)")
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument("--pg-dir", metavar="DIR",
                         help="PostgreSQL migrations folder, used instead of evstore's own and "
                              "the configured application folder")
    folders.add_argument("--sqlite-dir", metavar="DIR",
                         help="SQLite migrations folder, used instead of evstore's own and the "
                              "configured application folder")
    cfg = argparse.ArgumentParser(add_help=False)
    cfg.add_argument("--config", metavar="FILE",
                     help="project configuration: an evstore.toml, or a pyproject.toml with "
                          "[tool.evstore] (default: the first found from here upwards)")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="print the result as JSON data")

    parser = argparse.ArgumentParser(
        prog="evstore", description="Hand-written SQL migrations for PostgreSQL and SQLite, "
        "proven at parity, and the append-only event store they define.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evstore {evstore.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, *groups: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=list(groups), help=help_, description=help_,
                              epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("migrate", "apply pending migrations through yoyo: evstore's own folder, then the "
            "application's", db, folders, cfg, out)
    p.add_argument("--lock-timeout", type=_seconds, default=10, metavar="SECONDS",
                   help="how long to wait for yoyo's migration lock (default 10)")
    p.add_argument("--break-lock", action="store_true",
                   help="remove a stale migration lock left by a killed deploy, then migrate")
    p.add_argument("--dry-run", action="store_true", help="print the migrations and their SQL "
                   "that would run; change nothing, take no lock, create no file")
    p.set_defaults(func=cmd_migrate)

    p = add("rollback", "roll back the last migration, or down to --to ID (base: all)",
            db, folders, cfg, out)
    p.add_argument("--to", metavar="ID", help="keep this migration, roll back later ones")
    p.add_argument("--count", type=_whole(1, "a count of migrations"),
                   help="how many to roll back (default 1)")
    p.add_argument("--lock-timeout", type=_seconds, default=10, metavar="SECONDS",
                   help="how long to wait for yoyo's migration lock (default 10)")
    p.add_argument("--dry-run", action="store_true", help="print the migrations and the "
                   "rollback SQL that would run; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm a rollback that drops "
                   "event_store or a table holding rows (asked on a terminal otherwise)")
    p.set_defaults(func=cmd_rollback)

    p = add("status", "list applied and pending migrations; fail if an applied one changed",
            db, folders, cfg, out)
    p.set_defaults(func=cmd_status)

    p = add("new", "create paired forward and rollback files with the next id in both of the "
            "application's folders", folders, cfg, out)
    p.add_argument("name", help="what the migration does, as a few words (add_orders_view)")
    p.set_defaults(func=cmd_new)

    p = add("sum", "rewrite the evstore.sum checksum file of both of the application's "
            "folders", folders, cfg, out)
    p.set_defaults(func=cmd_sum)

    p = add("lint", "check the migration folders statically: evstore's own and the "
            "application's", folders, cfg, out)
    p.add_argument("--no-squawk", action="store_true", help="skip squawk even if installed")
    p.set_defaults(func=cmd_lint)

    p = add("parity", "apply both folders to scratch databases and prove the schemas match",
            folders, cfg, out)
    p.add_argument("--postgres", metavar="URL", help="PostgreSQL server for the scratch "
                   "database (default: $EVSTORE_PG_URL)")
    p.add_argument("--declared", metavar="FILE", help="declared differences (default: "
                   "parity.toml beside the folders)")
    p.add_argument("--live", action="store_true", help="compare existing databases "
                   "(--postgres and --sqlite) without migrating")
    p.add_argument("--sqlite", metavar="URL", help="with --live: the SQLite file's URL")
    p.add_argument("--schema", metavar="NAME", help="with --live: the PostgreSQL schema to "
                   "compare (default: the first of the URL's search_path)")
    p.add_argument("--dump", metavar="DIR", help="also write both schemas as sorted JSON")
    p.add_argument("--cleanup", action="store_true", help="drop the scratch databases "
                   "(evstore_parity_*, evstore_drift_*) that killed runs left on --postgres")
    p.set_defaults(func=cmd_parity)

    p = add("drift", "compare a live database with what its folders build",
            db, folders, cfg, out)
    p.set_defaults(func=cmd_drift)

    p = add("schema", "print a live database's schema as stable, sorted JSON", db, cfg)
    p.set_defaults(func=cmd_schema)

    p = add("grant", "print (or --apply) least-privilege grants for an application role "
            "(PostgreSQL only)", db, cfg)
    p.add_argument("--role", required=True, help="the application's login role")
    p.add_argument("--apply", action="store_true",
                   help="run the grants instead of printing them")
    p.set_defaults(func=cmd_grant)

    p = add("append", "append events to a stream", db, cfg, out)
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

    p = add("read", "read a stream, or the whole log in global order", db, cfg, out)
    p.add_argument("--stream", help="read this stream in version order")
    p.add_argument("--from-version", type=_whole(0, "a stream version"), default=None,
                   help="first version to read (default 1; with --backwards, the last)")
    p.add_argument("--backwards", action="store_true",
                   help="with --stream: newest first")
    p.add_argument("--after", type=_whole(0, "a position"), default=0,
                   help="global position to read after")
    p.add_argument("--limit", type=_whole(0, "a number of events"),
                   help="print at most this many events")
    p.add_argument("--types", nargs="+", metavar="TYPE",
                   help="only events of these types (whole log only)")
    p.add_argument("--event-id", metavar="ULID", help="look up one event by its id")
    p.set_defaults(func=cmd_read)

    p = add("verify", "recompute every event's content digest and check each stream's "
            "versions, positions and head; exit 1 listing each finding", db, cfg, out)
    p.add_argument("--page-size", type=_whole(1, "a page size"), default=1000, metavar="N",
                   help="events read per page (memory stays flat; default 1000)")
    p.add_argument("--max-findings", type=_whole(1, "a number of findings"), default=1000,
                   metavar="N",
                   help="stop listing after N findings (default 1000)")
    p.set_defaults(func=cmd_verify)

    p = add("tail", "print events as they commit (Ctrl-C to stop)", db, cfg, out)
    p.add_argument("--after", type=_whole(0, "a position"), default=0,
                   help="global position to start after (default 0: the whole log)")
    p.add_argument("--types", nargs="+", metavar="TYPE", help="only events of these types")
    p.add_argument("--idle-timeout", type=_seconds, metavar="SECONDS",
                   help="stop after this long without a new event")
    p.set_defaults(func=cmd_tail)
    return parser


_USAGE_ERRORS = (
    UsageError, config.ConfigError, errors.InvalidURL, errors.ConnectionFailed,
    errors.MigrationsNotFound,
    errors.MigrationLocked, errors.UnknownMigration, errors.InvalidInput,
    errors.BadMigrationName, errors.ConfirmationRequired,
)


def _urls_given(argv: Sequence[str]) -> list[str | None]:
    """Every URL this run may print a piece of: their passwords are scrubbed from errors."""
    return [*argv, os.environ.get("EVSTORE_DATABASE_URL"), os.environ.get("EVSTORE_PG_URL")]


def _fail(message: str, sources: Sequence[str | None]) -> None:
    """The one place errors are printed: passwords scrubbed, controls escaped (but the
    message's own line breaks kept)."""
    text = scrub(message, *sources)
    print("evstore: error: " + "\n".join(shown(line) for line in text.split("\n")),
          file=sys.stderr)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated, so that finally blocks (a parity run's scratch databases,
    yoyo's lock) run as they do on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sources = _urls_given(argv)
    parser = build_parser()
    try:
        with _sigterm_raises():
            try:
                for number, arg in enumerate(argv, 1):
                    _check_text(arg, f"argument {number}")
                args = parser.parse_args(argv)
            except SystemExit as e:  # --help, --version, or argparse's own usage error
                return e.code if isinstance(e.code, int) else EXIT_USAGE
            except UsageError as e:
                _fail(str(e), sources)
                return EXIT_USAGE
            return _run(args, sources)
    except KeyboardInterrupt:
        print("evstore: interrupted; nothing more was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("evstore: terminated (SIGTERM); nothing more was done", file=sys.stderr)
        return EXIT_TERMINATED


def _run(args: argparse.Namespace, sources: Sequence[str | None]) -> int:
    try:
        return int(args.func(args))
    except _USAGE_ERRORS as e:
        _fail(str(e), sources)
        return EXIT_USAGE
    except errors.EvstoreError as e:
        _fail(str(e), sources)
        return EXIT_DIFFERENT
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        # A bug, or a library error evstore does not translate yet: one scrubbed line, and
        # the (scrubbed) traceback only when asked for.
        if os.environ.get("EVSTORE_DEBUG"):
            import traceback

            print(scrub("".join(traceback.format_exception(e)), *sources), file=sys.stderr)
        _fail(f"unexpected {type(e).__name__}: {e}. This is a bug in evstore; please report "
              "it (set EVSTORE_DEBUG=1 to print the traceback)", sources)
        return EXIT_DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
