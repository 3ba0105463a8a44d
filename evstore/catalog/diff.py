"""Compare two schemas: differences(postgres, sqlite) returns data, in a stable order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evstore.catalog import mapping
from evstore.catalog.declared import Declared
from evstore.catalog.model import Schema


@dataclass(frozen=True, order=True)
class Difference:
    """One field of one object that differs: `object` like "column event_store.version"."""

    object: str
    field: str
    postgres: Any
    sqlite: Any

    def __str__(self) -> str:
        return f"{self.object}: {self.field} differs (postgres: {_show(self.postgres)}; " \
               f"sqlite: {_show(self.sqlite)})"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ")"
    return str(value)


class Normalizer(Protocol):
    def check(self, table: str, expression: str) -> str | None: ...

    def predicate(self, table: str, expression: str) -> str | None: ...

    def index_column(self, table: str, expression: str) -> str | None: ...


# object -> field -> (value compared, value shown)
Facts = dict[str, dict[str, tuple[Any, Any]]]


def _same(value: Any) -> tuple[Any, Any]:
    return (value, value)


def _facts(schema: Schema, side: str, norm: Normalizer | None) -> Facts:
    """Everything parity compares, with PostgreSQL values mapped to SQLite's spelling and
    SQLite expressions printed by PostgreSQL's parser (when a normalizer is given)."""
    pg = side == "postgres"
    facts: Facts = {}
    for t in schema.tables.values():
        facts[f"table {t.name}"] = {}
        for c in t.columns:
            facts[f"column {t.name}.{c.name}"] = {
                "position": _same(c.position),
                "type": ((mapping.sqlite_type_for(c.type) if pg else c.type.upper()), c.type),
                "not_null": _same(c.not_null),
                "default": (
                    (mapping.pg_default(c.default) if pg else mapping.sqlite_default(c.default)),
                    c.default,
                ),
                "identity": _same(c.identity),
            }
        if t.primary_key is not None:
            facts[f"primary key {t.name}"] = {
                "name": _same(t.primary_key.name),
                "columns": _same(t.primary_key.columns),
            }
        for u in t.uniques:
            facts[f"unique {t.name}.{u.name or '(' + ','.join(u.columns) + ')'}"] = {
                "columns": _same(u.columns)
            }
        for k in t.checks:
            if pg:
                compared = mapping.check_body(k.expression)
            else:
                printed = norm.check(t.name, k.expression) if norm else None
                compared = (
                    mapping.check_body(printed) if printed else mapping.light_expression(
                        k.expression)
                )
            key = k.name or f"({mapping.light_expression(k.expression)})"
            facts[f"check {t.name}.{key}"] = {"expression": (compared, k.expression)}
        for f in t.foreign_keys:
            facts[f"foreign key {t.name}.{f.name or '(' + ','.join(f.columns) + ')'}"] = {
                "columns": _same(f.columns),
                "ref_table": _same(f.ref_table),
                "ref_columns": _same(f.ref_columns),
                "on_delete": _same(f.on_delete),
                "on_update": _same(f.on_update),
            }
    for i in schema.indexes.values():
        if pg or norm is None:
            columns = tuple(mapping.light_expression(c) for c in i.columns)
            predicate = mapping.light_expression(i.predicate) if i.predicate else None
        else:
            table_columns = {
                c.name for c in schema.tables[i.table].columns
            } if i.table in schema.tables else set()
            columns = tuple(
                c if c in table_columns else mapping.light_expression(
                    norm.index_column(i.table, c) or c)
                for c in i.columns
            )
            printed = norm.predicate(i.table, i.predicate) if i.predicate else None
            predicate = mapping.light_expression(printed or i.predicate) if i.predicate else None
        facts[f"index {i.name}"] = {
            "table": _same(i.table),
            "columns": (columns, i.columns),
            "unique": _same(i.unique),
            "predicate": (predicate, i.predicate),
            "method": _same(i.method),
        }
    for g in schema.triggers.values():
        facts[f"trigger {g.name}"] = {
            "table": _same(g.table),
            "timing": _same(g.timing),
            "events": _same(g.events),
            "level": _same(g.level),
        }
    for fn in schema.functions.values():
        facts[f"function {fn.name}"] = {"language": _same(fn.language)}
    for s in schema.sequences:
        facts[f"sequence {s}"] = {}
    return facts


def differences(
    postgres: Schema,
    sqlite: Schema,
    declared: Declared | None = None,
    normalizer: Normalizer | None = None,
) -> list[Difference]:
    """Every difference between a PostgreSQL schema and a SQLite schema, sorted.

    `normalizer` lets PostgreSQL print SQLite's CHECK bodies and predicates its own way (see
    catalog.postgres.ExpressionNormalizer); without one, expressions are compared after light
    normalisation only."""
    declared = declared or Declared()
    left = _facts(postgres, "postgres", normalizer)
    right = _facts(sqlite, "sqlite", normalizer)
    found: list[Difference] = []
    for obj in sorted(set(left) | set(right)):
        on_pg, on_lite = obj in left, obj in right
        if obj in declared.postgres_only:
            if not on_pg or on_lite:
                found.append(Difference(obj, "declared postgres-only", on_pg, on_lite))
            continue
        if obj in declared.sqlite_only:
            if not on_lite or on_pg:
                found.append(Difference(obj, "declared sqlite-only", on_pg, on_lite))
            continue
        if not (on_pg and on_lite):
            found.append(Difference(obj, "exists", on_pg, on_lite))
            continue
        for field in sorted(set(left[obj]) | set(right[obj])):
            a = left[obj].get(field, (None, None))
            b = right[obj].get(field, (None, None))
            equivalent = declared.equivalent.get((obj, field))
            if equivalent is not None:
                if (a[1], b[1]) != equivalent[:2]:
                    found.append(Difference(obj, f"{field} (declared equivalent)", a[1], b[1]))
                continue
            if a[0] != b[0]:
                found.append(Difference(obj, field, a[1], b[1]))
    for obj in sorted(
        set(declared.postgres_only) | set(declared.sqlite_only) - set(left) - set(right)
    ):
        if obj not in left and obj not in right:
            kind = "declared postgres-only" if obj in declared.postgres_only else \
                "declared sqlite-only"
            found.append(Difference(obj, kind, False, False))
    for (obj, field), _values in sorted(declared.equivalent.items()):
        if obj not in left or obj not in right:
            if not any(d.object == obj for d in found):
                found.append(Difference(obj, f"{field} (declared equivalent)", obj in left,
                                        obj in right))
    return sorted(set(found), key=lambda d: (d.object, d.field))


def drift(expected: Schema, actual: Schema) -> list[Difference]:
    """Differences between two schemas of the same dialect (what the folder builds, and a live
    database); `postgres` holds the expected value and `sqlite` the actual one."""
    left = _facts(expected, expected.dialect, None)
    right = _facts(actual, actual.dialect, None)
    found = []
    for obj in sorted(set(left) | set(right)):
        if obj not in left or obj not in right:
            found.append(Difference(obj, "exists", obj in left, obj in right))
            continue
        for field in sorted(set(left[obj]) | set(right[obj])):
            a, b = left[obj].get(field, (None, None)), right[obj].get(field, (None, None))
            if a[1] != b[1]:
                found.append(Difference(obj, field, a[1], b[1]))
    for name in sorted(set(expected.functions) & set(actual.functions)):
        if expected.functions[name].body != actual.functions[name].body:
            found.append(Difference(f"function {name}", "body", "(as migrated)", "(changed)"))
    return found
