"""Declared differences: objects meant for one dialect only, and field values that differ on
purpose. Read from a TOML file beside the SQL (sql/parity.toml), each entry with its reason."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evstore.errors import EvstoreError


class DeclaredFileError(EvstoreError):
    """The declared-differences file cannot be used."""


@dataclass(frozen=True)
class Declared:
    postgres_only: dict[str, str] = field(default_factory=dict)  # object -> reason
    sqlite_only: dict[str, str] = field(default_factory=dict)
    # (object, field) -> (postgres value, sqlite value, reason)
    equivalent: dict[tuple[str, str], tuple[Any, Any, str]] = field(default_factory=dict)


def load_declared(path: Path | Sequence[Path] | None) -> Declared:
    """One declared-differences file, or several (evstore's own and an application's),
    merged."""
    if path is not None and not isinstance(path, str | Path):
        merged = Declared()
        for one in path:
            part = load_declared(one)
            merged.postgres_only.update(part.postgres_only)
            merged.sqlite_only.update(part.sqlite_only)
            merged.equivalent.update(part.equivalent)
        return merged
    if path is None or not Path(path).exists():
        if path is not None:
            raise DeclaredFileError(
                f"declared-differences file {str(path)!r} does not exist; create it or omit "
                "--declared"
            )
        return Declared()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise DeclaredFileError(f"{path}: not valid TOML ({e})") from e
    declared = Declared()
    for section, target in (("postgres_only", declared.postgres_only),
                            ("sqlite_only", declared.sqlite_only)):
        for entry in data.get(section, []):
            _require(path, section, entry, ("object", "reason"))
            target[entry["object"]] = entry["reason"]
    for entry in data.get("equivalent", []):
        _require(path, "equivalent", entry, ("object", "field", "postgres", "sqlite", "reason"))
        declared.equivalent[(entry["object"], entry["field"])] = (
            _freeze(entry["postgres"]), _freeze(entry["sqlite"]), entry["reason"]
        )
    unknown = set(data) - {"postgres_only", "sqlite_only", "equivalent"}
    if unknown:
        raise DeclaredFileError(
            f"{path}: unknown section(s) {sorted(unknown)}; use [[postgres_only]], "
            "[[sqlite_only]] and [[equivalent]]"
        )
    return declared


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _require(path: Path, section: str, entry: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(entry, dict) or any(k not in entry for k in keys):
        raise DeclaredFileError(
            f"{path}: every [[{section}]] entry needs {', '.join(keys)}; got {entry!r}"
        )
    if not str(entry["reason"]).strip():
        raise DeclaredFileError(f"{path}: [[{section}]] {entry['object']!r} gives no reason")
