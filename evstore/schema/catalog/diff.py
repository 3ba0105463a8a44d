"""Compare two schemas: differences(postgres, sqlite) returns data, in a stable order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evstore.schema.catalog import constraints, mapping
from evstore.schema.catalog.constraints import Facts, Fields
from evstore.schema.catalog.declared import Declared
from evstore.schema.catalog.model import Check, Index, Schema
from evstore.schema.catalog.sqlite import pg_spelling


@dataclass(frozen=True, order=True)
class Difference:
    """One field of one object that differs: `object` like "column event_store.version"."""

    object: str
    field: str
    postgres: Any
    sqlite: Any
    hint: str | None = None  # how to make the two agree, where parity can tell

    def __str__(self) -> str:
        text = f"{self.object}: {self.field} differs (postgres: {_show(self.postgres)}; " \
               f"sqlite: {_show(self.sqlite)})"
        return f"{text}; {self.hint}" if self.hint else text

    def to_dict(self, left: str = "postgres", right: str = "sqlite") -> dict[str, Any]:
        """The JSON form: object, field, the two values under the sides' names, and hint
        (null when there is none)."""
        return {"object": self.object, "field": self.field, left: self.postgres,
                right: self.sqlite, "hint": self.hint}

    def line(self, width: int = 0, left: str = "postgres", right: str = "sqlite") -> str:
        """The text form, one line, with the hint on a second line when there is one."""
        text = f"{self.object:<{width}}  {self.field}: {left} {self.postgres!r}, " \
               f"{right} {self.sqlite!r}"
        return f"{text}\n{'':<{width}}  hint: {self.hint}" if self.hint else text


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

    def trigger_when(
        self, table: str, timing: str, events: tuple[str, ...], expression: str
    ) -> str | None: ...


def _check_form(dialect: str, norm: Normalizer | None) -> constraints.CheckForm:
    """A CHECK in comparison form: PostgreSQL's as pg_get_constraintdef printed it, SQLite's
    printed by PostgreSQL's parser when a normalizer is given."""
    def form(table: str, check: Check) -> str:
        if dialect == "postgres":
            return mapping.check_body(check.expression)
        printed = norm.check(table, pg_spelling(check.expression)) if norm else None
        return mapping.check_body(printed) if printed else mapping.light_expression(
            check.expression)
    return form


def _key_nulls(
    index: Index, columns: tuple[str, ...], not_null: set[str]
) -> tuple[str | None, ...]:
    """Where each key keeps its NULLs; None for a key on a NOT NULL column, which has none."""
    return tuple(
        None if column in not_null else ("FIRST" if first else "LAST")
        for column, first in zip(columns, index.nulls_first, strict=False)
    )


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
            printed = norm.predicate(i.table, pg_spelling(i.predicate)) if i.predicate else None
            predicate = mapping.light_expression(printed or i.predicate) if i.predicate else None
        table = schema.tables.get(i.table)
        not_null = {c.name for c in table.columns if c.not_null} if table else set()
        collations = tuple(
            mapping.sqlite_collation_for(c) if pg else (c or "BINARY").upper()
            for c in i.collations
        )
        facts[f"index {i.name}"] = {
            "table": _same(i.table),
            "columns": (columns, i.columns),
            "unique": _same(i.unique),
            "predicate": (predicate, i.predicate),
            "method": _same(i.method),
            "directions": _same(tuple("DESC" if d else "ASC" for d in i.descending)),
            "nulls": _same(_key_nulls(i, columns, not_null)),
            "collations": (collations, i.collations),
        }
    for g in schema.triggers.values():
        if g.when is None:
            when = None
        elif pg or norm is None:
            when = mapping.light_expression(g.when)
        else:
            printed = norm.trigger_when(g.table, g.timing, g.events, pg_spelling(g.when))
            when = mapping.light_expression(printed or g.when)
        facts[f"trigger {g.name}"] = {
            "table": _same(g.table),
            "timing": _same(g.timing),
            "events": _same(g.events),
            "columns": _same(g.columns),
            "level": _same(g.level),
            "when": (when, g.when),
        }
    for fn in schema.functions.values():
        facts[f"function {fn.name}"] = {"language": _same(fn.language)}
    for s in schema.sequences:
        facts[f"sequence {s}"] = {}
    return facts


def _all_facts(
    left: Schema, right: Schema, norm: Normalizer | None
) -> tuple[Facts, Facts, dict[str, constraints.Named]]:
    """Both sides' facts, constraints paired across the two (see catalog.constraints)."""
    left_facts = _facts(left, left.dialect, norm)
    right_facts = _facts(right, right.dialect, norm)
    left_keys, right_keys, named = constraints.compare(
        left, right, _check_form(left.dialect, norm), _check_form(right.dialect, norm)
    )
    left_facts.update(left_keys)
    right_facts.update(right_keys)
    return left_facts, right_facts, named


def _nulls_hint(pg: Fields, lite: Fields) -> str | None:
    """Which keys to spell with an explicit NULLS clause on PostgreSQL: SQLite's order is fixed
    by the direction and its CREATE INDEX takes no NULLS clause."""
    keys = [
        f"{column} {direction} NULLS {lite_nulls}"
        for column, direction, pg_nulls, lite_nulls in zip(
            lite["columns"][1], lite["directions"][1], pg["nulls"][1], lite["nulls"][1],
            strict=False,
        )
        if lite_nulls is not None and pg_nulls != lite_nulls
    ]
    if not keys:  # the NULLs differ because a column's nullability does: that is reported
        return None
    return ("SQLite keeps NULLs first in an ASC key and last in a DESC one and cannot be told "
            f"otherwise: write {', '.join(keys)} on the postgres side")


def _renamed(found: list[Difference], left: Facts, right: Facts) -> list[Difference]:
    """An index or trigger on one side only, alike in every field to one on the other side
    only, is the same object under another name: one difference, with the fix."""
    gone = {d.object for d in found if d.field == "exists" and d.postgres}
    new = {d.object for d in found if d.field == "exists" and d.sqlite}
    merged: list[Difference] = []
    for obj in sorted(gone):
        kind, _, name = obj.partition(" ")
        if kind not in ("index", "trigger"):
            continue
        same = sorted(
            other for other in new
            if other.partition(" ")[0] == kind
            and {f: v[0] for f, v in right[other].items()} == {
                f: v[0] for f, v in left[obj].items()}
        )
        if not same:
            continue
        other = same[0]
        new.discard(other)
        twin = other.partition(" ")[2]
        merged.append(Difference(
            obj, "name", name, twin,
            f"only the name differs: name the {kind} `{name}` on the sqlite side, or "
            f"`{twin}` on the postgres side",
        ))
        found = [d for d in found if d.object not in (obj, other)]
    return found + merged


def differences(
    postgres: Schema,
    sqlite: Schema,
    declared: Declared | None = None,
    normalizer: Normalizer | None = None,
) -> list[Difference]:
    """Every difference between a PostgreSQL schema and a SQLite schema, sorted.

    `normalizer` lets PostgreSQL print SQLite's CHECK bodies, predicates, index expressions and
    trigger WHEN conditions its own way (see catalog.postgres.ExpressionNormalizer); without
    one, expressions are compared after light normalisation only. A name difference, and a
    difference in where an index key's NULLs sit, carry a hint saying how to agree."""
    declared = declared or Declared()
    left, right, named = _all_facts(postgres, sqlite, normalizer)
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
                hint = None
                if field == "name" and obj in named:
                    only = all(
                        other == "name" or left[obj][other][0] == right[obj][other][0]
                        for other in set(left[obj]) & set(right[obj])
                    )
                    hint = named[obj].hint(("postgres", "sqlite"), only)
                elif field == "nulls":
                    hint = _nulls_hint(left[obj], right[obj])
                found.append(Difference(obj, field, a[1], b[1], hint))
    found = _renamed(found, left, right)
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
    left, right, named = _all_facts(expected, actual, None)
    found = []
    for obj in sorted(set(left) | set(right)):
        if obj not in left or obj not in right:
            found.append(Difference(obj, "exists", obj in left, obj in right))
            continue
        for field in sorted(set(left[obj]) | set(right[obj])):
            a, b = left[obj].get(field, (None, None)), right[obj].get(field, (None, None))
            if a[1] != b[1]:
                hint = None
                if field == "name" and obj in named:
                    only = all(other == "name" or left[obj][other][1] == right[obj][other][1]
                               for other in set(left[obj]) & set(right[obj]))
                    hint = named[obj].hint(("expected", "actual"), only)
                found.append(Difference(obj, field, a[1], b[1], hint))
    for name in sorted(set(expected.functions) & set(actual.functions)):
        if expected.functions[name].body != actual.functions[name].body:
            found.append(Difference(f"function {name}", "body", "(as migrated)", "(changed)"))
    return found
