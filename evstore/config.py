"""Project configuration: where an application keeps its own migrations beside evstore's.

evstore looks for it from the current folder upwards, in this order, and uses the first found:
    evstore.toml                      the whole file is the table
    pyproject.toml, [tool.evstore]    the usual home of a Python project's tool settings

    [tool.evstore]
    database = "postgresql://app@db/app"    # or "${EVSTORE_DATABASE_URL}"; a URL with a
                                            # password belongs in the environment, not here
    schema = "events"                       # PostgreSQL schema for evstore and yoyo's tables
    pg_dir = "migrations/postgres"          # the application's own folders, relative to the
    sqlite_dir = "migrations/sqlite"        # configuration file
    declared = "migrations/parity.toml"     # the application's declared differences

For the database, --database wins, then $EVSTORE_DATABASE_URL, then this file. Folders:
--pg-dir/--sqlite-dir replace evstore's own folder; without them evstore's folder runs first
and the application's (pg_dir, sqlite_dir) after it, in the same yoyo run.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from evstore.errors import EvstoreError

KEYS = ("database", "schema", "pg_dir", "sqlite_dir", "declared")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(EvstoreError):
    """The project configuration cannot be used."""


@dataclass(frozen=True)
class ProjectConfig:
    path: Path | None = None  # the file it came from; None when there is none
    database: str | None = None
    schema: str | None = None
    pg_dir: Path | None = None
    sqlite_dir: Path | None = None
    declared: Path | None = None

    def folder(self, dialect: str) -> Path | None:
        return self.pg_dir if dialect == "postgres" else self.sqlite_dir


def _expand(value: str, where: Path) -> str:
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{where}: ${{{name}}} is not set in the environment; export it, or write "
                "the value into the file"
            )
        return os.environ[name]

    return _ENV.sub(variable, value)


def _read(path: Path, table: dict[str, object]) -> ProjectConfig:
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown evstore setting(s) {', '.join(unknown)}; known: {', '.join(KEYS)}"
        )
    values: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: {key} must be a non-empty string")
        values[key] = _expand(value, path)
    base = path.parent

    def folder(key: str) -> Path | None:
        return (base / values[key]).resolve() if key in values else None

    return ProjectConfig(
        path=path,
        database=values.get("database"),
        schema=values.get("schema"),
        pg_dir=folder("pg_dir"),
        sqlite_dir=folder("sqlite_dir"),
        declared=folder("declared"),
    )


def load(start: Path | None = None) -> ProjectConfig:
    """The configuration that applies in `start` (default: the current folder)."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        own = candidate / "evstore.toml"
        if own.is_file():
            return _read(own, _parse(own))
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            tool = _parse(pyproject).get("tool")
            if isinstance(tool, dict) and isinstance(tool.get("evstore"), dict):
                return _read(pyproject, tool["evstore"])
    return ProjectConfig()


def load_file(path: Path) -> ProjectConfig:
    """The configuration in one named file: evstore.toml, or a pyproject.toml whose
    [tool.evstore] table holds it."""
    data = _parse(path)
    if path.name == "pyproject.toml" or "tool" in data:
        tool = data.get("tool")
        table = tool.get("evstore") if isinstance(tool, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(f"{path} has no [tool.evstore] table; add one, or name an "
                              "evstore.toml")
        return _read(path, table)
    return _read(path, data)


def _parse(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}; fix the file or remove it") from e
