"""What every evstore command shares: exit codes, the database and folders an invocation
names, the option groups, confirmation, and output that cannot forge lines."""


from __future__ import annotations

import argparse
import json
import math
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evstore
from evstore import config, errors
from evstore.config import ProjectConfig
from evstore.schema.migrations import (
    Migrator,
    default_dir,
)
from evstore.urls import DatabaseURL, parse_url

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


def project_config(args: argparse.Namespace) -> ProjectConfig:
    """The project configuration: --config FILE, else evstore.toml or pyproject.toml's
    [tool.evstore] from the current folder upwards (evstore/config.py)."""
    cached: ProjectConfig | None = getattr(args, "_project_config", None)
    if cached is None:
        given = getattr(args, "config", None)
        if given:
            check_text(given, "--config")
            cached = config.load_file(readable_file(given, "--config"))
        else:
            cached = config.load()
        args._project_config = cached
    return cached


def database_arg(args: argparse.Namespace) -> str:
    """--database, else $EVSTORE_DATABASE_URL, else the project configuration, else the
    embedded default."""
    url = str(getattr(args, "database", None) or os.environ.get("EVSTORE_DATABASE_URL")
              or project_config(args).database or DEFAULT_DATABASE)
    check_text(url, "the database URL")
    return url


def schema_arg(args: argparse.Namespace) -> str | None:
    schema = getattr(args, "schema", None) or project_config(args).schema
    return str(schema) if schema else None


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


def check_text(value: str, what: str) -> None:
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


def given_folder(args: argparse.Namespace, dialect: str) -> Path | None:
    given = getattr(args, "pg_dir" if dialect == "postgres" else "sqlite_dir", None)
    return Path(given) if given else None


def folder_arg(args: argparse.Namespace, dialect: str) -> Path:
    """The one folder of a dialect that --pg-dir/--sqlite-dir names, else evstore's own."""
    return given_folder(args, dialect) or default_dir(dialect)  # type: ignore[arg-type]


def folders_arg(args: argparse.Namespace, dialect: str) -> list[Path]:
    """What migrate, status, parity and drift run, in order: --pg-dir/--sqlite-dir alone when
    given; otherwise evstore's own folder, then the application's from the configuration."""
    given = given_folder(args, dialect)
    if given is not None:
        return [given]
    app = project_config(args).folder(dialect)
    return [default_dir(dialect), *([app] if app else [])]  # type: ignore[arg-type]


def app_folders(args: argparse.Namespace) -> list[Path]:
    """The folders `new` and `sum` write to: the application's, never an installed package."""
    folders = []
    for dialect, option in (("postgres", "--pg-dir"), ("sqlite", "--sqlite-dir")):
        folder = given_folder(args, dialect) or project_config(args).folder(dialect)
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


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def require_existing(url: DatabaseURL) -> None:
    """Commands that only read never create a SQLite file on a mistyped path."""
    if url.dialect == "sqlite" and not url.is_memory:
        assert url.sqlite_path is not None
        if not Path(url.sqlite_path).is_file():
            raise UsageError(
                f"no database at {shown(url.sqlite_path)}; check the path, or run "
                "`evstore migrate` to create one"
            )


def open_store(args: argparse.Namespace, *, must_exist: bool = False) -> evstore.Store:
    url = parse_url(database_arg(args))
    if must_exist:
        require_existing(url)
    folders = folders_arg(args, url.dialect)
    return evstore.Store(url, migrations_dir=folders[0],
                         app_migrations_dir=folders[1] if len(folders) > 1 else None,
                         schema=schema_arg(args))


def require_tables(store: evstore.Store) -> None:
    """A database evstore never migrated: say so, instead of a driver's "no such table"."""
    if not store.run_query("event_store_exists"):
        where = f" in schema {store.schema}" if store.schema else ""
        raise UsageError(
            f"{store.url.redacted} has no event store tables{where}; run `evstore migrate` on "
            "it first (with the same --schema)"
        )


def migrator_for(args: argparse.Namespace, url: DatabaseURL) -> Migrator:
    """A Migrator for plans and status: reads without writing, creates no file."""
    shared = sqlite3.connect(":memory:") if url.is_memory else None
    schema = schema_arg(args)
    if schema is not None and url.dialect == "postgres":
        from evstore.store import check_schema

        check_schema(schema, url.dialect)
    return Migrator(url, folders_arg(args, url.dialect), sqlite_connection=shared,
                    schema=schema if url.dialect == "postgres" else None)


def print_plan(url: DatabaseURL, direction: str, migrations: Sequence[Any],
                as_json: bool) -> None:
    from evstore.schema.migrations import rollback_path

    steps = []
    for m in migrations:
        path = Path(m.path) if direction == "apply" else rollback_path(Path(m.path))
        steps.append({"id": m.id, "direction": direction, "file": str(path),
                      "sql": path.read_text(encoding="utf-8")})
    if as_json:
        print_json({"database": url.redacted, "dry_run": True, "plan": steps})
        return
    if not steps:
        print(f"dry run: nothing to {direction} on {url.redacted}")
        return
    print(f"dry run: would {direction} {len(steps)} migration(s) on {url.redacted}; "
          "nothing was changed")
    for step in steps:
        print(f"\n-- {step['id']} ({direction}): {shown(step['file'])}")
        print("\n".join(shown(line) for line in step["sql"].rstrip("\n").splitlines()))


def confirm(question: str) -> bool:
    """A y/N question, asked only when a person is at the terminal."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (EOFError, OSError):
        return False
    return answer.strip().lower() in {"y", "yes"}


def progress_bar(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, unit="ev", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr)


def whole_number(minimum: int, what: str) -> Callable[[str], int]:
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


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= 86400 * 365):
        raise argparse.ArgumentTypeError(
            f"{shown(text)!r} is not a number of seconds: give one from 0 to 31536000")
    return value



@dataclass(frozen=True)
class Options:
    """The option groups; each command takes only the groups that apply to it."""

    db: argparse.ArgumentParser
    folders: argparse.ArgumentParser
    cfg: argparse.ArgumentParser
    out: argparse.ArgumentParser


# sub.add_parser with evstore's epilog: add(name, help, *option groups)
Add = Callable[..., argparse.ArgumentParser]


def option_groups() -> Options:
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
    return Options(db, folders, cfg, out)

def readable_file(path: str, option: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise UsageError(f"{option} {shown(path)}: no such file; check the path")
    if file.is_dir():
        raise UsageError(f"{option} {shown(path)} is a folder; give a file")
    return file
