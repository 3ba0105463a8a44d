"""The schema model both catalogs are read into: frozen, ordered records, dumpable as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Column:
    name: str
    position: int  # 1-based order in the table
    type: str  # as the catalog spells it: "bigint", "TEXT"
    not_null: bool
    default: str | None
    identity: str | None  # "generated" (PG identity, SQLite AUTOINCREMENT), "rowid", or None


@dataclass(frozen=True, order=True)
class PrimaryKey:
    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True, order=True)
class Unique:
    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True, order=True)
class Check:
    name: str | None
    expression: str
    # PostgreSQL: the columns the expression reads (pg_constraint.conkey), from which it names
    # an unnamed CHECK; SQLite does not record them.
    columns: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str  # "CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"
    on_update: str


@dataclass(frozen=True, order=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: PrimaryKey | None
    uniques: tuple[Unique, ...]
    checks: tuple[Check, ...]
    foreign_keys: tuple[ForeignKey, ...]


@dataclass(frozen=True, order=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]  # column names, or expressions as the catalog prints them
    unique: bool
    predicate: str | None  # partial index WHERE clause
    method: str  # "btree", "gin", ...
    # One entry per key, for methods that keep an order (btree); empty otherwise. nulls_first
    # is where NULLs actually sit, whether written or the dialect's default for the direction.
    descending: tuple[bool, ...] = ()
    nulls_first: tuple[bool, ...] = ()
    collations: tuple[str | None, ...] = ()  # as the catalog names them; None: not collatable


@dataclass(frozen=True, order=True)
class Trigger:
    name: str
    table: str
    timing: str  # "BEFORE", "AFTER", "INSTEAD OF"
    events: tuple[str, ...]  # sorted: "DELETE", "INSERT", "TRUNCATE", "UPDATE"
    level: str  # "ROW" or "STATEMENT"
    function: str | None  # PostgreSQL: the trigger function; SQLite: None (body inline)
    when: str | None = None  # the WHEN condition, as the catalog prints it
    columns: tuple[str, ...] = ()  # UPDATE OF these columns, sorted


@dataclass(frozen=True, order=True)
class Function:
    name: str
    language: str
    body: str


@dataclass(frozen=True)
class Schema:
    dialect: str
    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    sequences: tuple[str, ...] = ()  # standalone sequences (identity sequences are implied)

    def to_dict(self) -> dict[str, Any]:
        def records(items: dict[str, Any]) -> dict[str, Any]:
            return {k: asdict(v) for k, v in sorted(items.items())}

        return {
            "dialect": self.dialect,
            "tables": records(self.tables),
            "indexes": records(self.indexes),
            "triggers": records(self.triggers),
            "functions": records(self.functions),
            "sequences": sorted(self.sequences),
        }

    def to_json(self) -> str:
        """Stable, sorted JSON: two dumps of the same schema are byte-identical."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def is_empty(self) -> bool:
        return not (
            self.tables or self.indexes or self.triggers or self.functions or self.sequences
        )
