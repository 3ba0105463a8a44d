"""evstore lint, parity, drift, schema and grant: the schema tooling's commands."""


from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evstore.cli.common import (
    EXIT_DIFFERENT,
    EXIT_OK,
    Add,
    Options,
    UsageError,
    check_text,
    database_arg,
    folders_arg,
    print_json,
    project_config,
    readable_file,
    require_existing,
    schema_arg,
    shown,
)
from evstore.schema.migrations import (
    read_folder,
    shipped_sql_dir,
)
from evstore.urls import parse_url


def cmd_lint(args: argparse.Namespace) -> int:
    from evstore.schema.lint import lint

    pg, lite = folders_arg(args, "postgres"), folders_arg(args, "sqlite")
    findings = [f for pair in zip(pg, lite, strict=True)
                for f in lint(pair[0], pair[1], squawk=not args.no_squawk)]
    if len(pg) > 1:
        for folders in (pg, lite):
            read_folder(folders)  # the union: ids distinct across folders, depends resolvable
    if args.json:
        print_json([f.to_dict() for f in findings])
    else:
        for f in findings:
            print(f)
        print(f"{len(findings)} finding(s)" if findings else "no findings")
    return EXIT_DIFFERENT if findings else EXIT_OK


def _report(diffs: Sequence[Any], as_json: bool, left: str, right: str, ok: str) -> int:
    if as_json:
        print_json([d.to_dict(left, right) for d in diffs])
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



def cmd_parity(args: argparse.Namespace) -> int:
    from evstore.schema.catalog.parity import cleanup_scratch, run_live, run_parity

    postgres = args.postgres or os.environ.get("EVSTORE_PG_URL")
    if args.cleanup:
        dropped, busy = cleanup_scratch(postgres)
        if args.json:
            print_json({"dropped": dropped, "in_use": busy})
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
        declared = [readable_file(args.declared, "--declared")]
    elif args.pg_dir or args.sqlite_dir:
        beside = Path(args.pg_dir or args.sqlite_dir).parent / "parity.toml"
        declared = [beside] if beside.exists() else []
    elif project_config(args).declared is not None:
        declared.append(readable_file(str(project_config(args).declared), "declared"))
    dump = _writable_folder(args.dump, "--dump") if args.dump else None
    if args.live:
        if not args.sqlite:
            raise UsageError("--live needs --sqlite sqlite:///path.db as well as --postgres")
        check_text(args.sqlite, "--sqlite")
        report = run_live(postgres, args.sqlite, declared, schema_arg(args))
    else:
        pg_dir, lite_dir = folders_arg(args, "postgres"), folders_arg(args, "sqlite")
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
    from evstore.schema.catalog.parity import run_drift

    url = parse_url(database_arg(args))
    require_existing(url)
    folders = folders_arg(args, url.dialect)
    read_folder(folders)
    report = run_drift(url, folders, schema_arg(args))
    return _report(report.differences, args.json, "expected", "actual",
                   f"no drift: {url.redacted} matches "
                   f"{', '.join(shown(f) for f in folders)}")


def cmd_schema(args: argparse.Namespace) -> int:
    """Dump a live database's schema as stable JSON."""
    url = parse_url(database_arg(args))
    require_existing(url)
    if url.dialect == "postgres":
        from evstore.dialects.postgres import SQL as PG_SQL
        from evstore.dialects.postgres import open_connection
        from evstore.schema.catalog import postgres as pg_catalog

        with open_connection(url, schema_arg(args)) as conn:
            row = conn.execute(PG_SQL["postgres_current_schema"]).fetchone()
            schema = pg_catalog.introspect(conn, str(row[0]) if row else "public")
    else:
        from evstore.schema.catalog.parity import introspect_sqlite

        assert url.sqlite_path is not None
        schema = introspect_sqlite(url.sqlite_path)
    sys.stdout.write(schema.to_json())
    return EXIT_OK


def cmd_grant(args: argparse.Namespace) -> int:
    from evstore.schema.grant import check_role, statements

    url = parse_url(database_arg(args))
    if url.dialect != "postgres":
        raise UsageError(
            "grants do not apply to SQLite: it has no roles or privileges; control access "
            "with the file's permissions (chmod), or give a PostgreSQL --database"
        )
    from evstore.dialects.postgres import SQL as PG_SQL
    from evstore.dialects.postgres import open_connection, translated

    with open_connection(url, schema_arg(args)) as conn:
        check_role(conn, args.role)
        row = conn.execute(PG_SQL["postgres_current_schema"]).fetchone()
        args.schema = schema_arg(args) or (str(row[0]) if row and row[0] else "public")
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


def register(add: Add, o: Options) -> None:
    """The schema commands' parsers."""
    p = add("lint", "check the migration folders statically: evstore's own and the "
            "application's", o.folders, o.cfg, o.out)
    p.add_argument("--no-squawk", action="store_true", help="skip squawk even if installed")
    p.set_defaults(func=cmd_lint)

    p = add("parity", "apply both folders to scratch databases and prove the schemas match",
            o.folders, o.cfg, o.out)
    p.add_argument("--postgres", metavar="URL", help="PostgreSQL server for the scratch "
                   "database (default: $EVSTORE_PG_URL)")
    p.add_argument("--declared", metavar="FILE", help="declared differences (default: "
                   "parity.toml beside the o.folders)")
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
            o.db, o.folders, o.cfg, o.out)
    p.set_defaults(func=cmd_drift)

    p = add("schema", "print a live database's schema as stable, sorted JSON", o.db, o.cfg)
    p.set_defaults(func=cmd_schema)

    p = add("grant", "print (or --apply) least-privilege grants for an application role "
            "(PostgreSQL only)", o.db, o.cfg)
    p.add_argument("--role", required=True, help="the application's login role")
    p.add_argument("--apply", action="store_true",
                   help="run the grants instead of printing them")
    p.set_defaults(func=cmd_grant)
