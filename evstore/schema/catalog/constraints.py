"""Pair the constraints of two schemas by what they are, so that a name counts only as a name.

PostgreSQL names every constraint (t_pkey, t_col_key, t_col_fkey, t_col_check when nobody
did); SQLite keeps no name for one declared without CONSTRAINT. Constraints are paired per
table: first by equal name, then by what they are (a primary key by being the table's; a
unique by its columns; a check by its expression in comparison form; a foreign key by its
columns, parent and actions), and last, foreign keys by their columns alone, so that a changed
action shows as that field. A name PostgreSQL could have chosen itself counts as no name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evstore.schema.catalog import mapping
from evstore.schema.catalog.model import Check, Schema, Table

# object -> field -> (value compared, value shown)
Fields = dict[str, tuple[Any, Any]]
Facts = dict[str, Fields]

# How a side spells a CHECK for comparison: (table, check) -> expression.
CheckForm = Callable[[str, Check], str]


@dataclass(frozen=True)
class Item:
    """One constraint of one side, ready to be paired."""

    kind: str  # "primary key", "unique", "check", "foreign key"
    table: str
    name: str | None
    generated: bool  # a PostgreSQL name PostgreSQL would have chosen for an unnamed one
    identity: tuple[Any, ...]  # what the constraint is, in comparison form
    loose: tuple[Any, ...] | None  # a weaker identity for the last pass
    label: str  # what an unnamed one is called in a report: "(a,b)", "(x > 0)"
    fields: tuple[tuple[str, tuple[Any, Any]], ...]

    @property
    def explicit(self) -> str | None:
        """The name as someone wrote it, or None."""
        return None if self.generated else self.name


def _generated(dialect: str, name: str | None, table: str, kind: str,
               columns: tuple[str, ...]) -> bool:
    return (
        dialect == "postgres" and name is not None
        and mapping.pg_generated_name(name, table, kind, columns)
    )


def _same(value: Any) -> tuple[Any, Any]:
    return (value, value)


def _columns_label(columns: tuple[str, ...]) -> str:
    return "(" + ",".join(columns) + ")"


def items(table: Table, dialect: str, check_form: CheckForm) -> list[Item]:
    out: list[Item] = []
    t = table.name
    pk = table.primary_key
    if pk is not None:
        out.append(Item(
            "primary key", t, pk.name, _generated(dialect, pk.name, t, "primary key", pk.columns),
            (), None, "", (("columns", _same(pk.columns)),),
        ))
    for u in table.uniques:
        out.append(Item(
            "unique", t, u.name, _generated(dialect, u.name, t, "unique", u.columns),
            (u.columns,), None, _columns_label(u.columns), (("columns", _same(u.columns)),),
        ))
    for k in table.checks:
        compared = check_form(t, k)
        out.append(Item(
            "check", t, k.name, _generated(dialect, k.name, t, "check", k.columns),
            (compared,), None, f"({compared})", (("expression", (compared, k.expression)),),
        ))
    for f in table.foreign_keys:
        what = (f.columns, f.ref_table, f.ref_columns, f.on_delete, f.on_update)
        out.append(Item(
            "foreign key", t, f.name, _generated(dialect, f.name, t, "foreign key", f.columns),
            what, (f.columns,), _columns_label(f.columns),
            tuple(zip(("columns", "ref_table", "ref_columns", "on_delete", "on_update"),
                      map(_same, what), strict=True)),
        ))
    return out


def pair(left: list[Item], right: list[Item]) -> list[tuple[Item | None, Item | None]]:
    """Every constraint of both sides, paired where they are the same constraint."""
    rest_left, rest_right = list(left), list(right)
    pairs: list[tuple[Item | None, Item | None]] = []

    def take(same: Callable[[Item, Item], bool]) -> None:
        for a in list(rest_left):
            b = next((b for b in rest_right if a.kind == b.kind and same(a, b)), None)
            if b is not None:
                pairs.append((a, b))
                rest_left.remove(a)
                rest_right.remove(b)

    take(lambda a, b: a.name is not None and a.name == b.name)
    take(lambda a, b: a.identity == b.identity)
    take(lambda a, b: a.loose is not None and a.loose == b.loose)
    return pairs + [(a, None) for a in rest_left] + [(None, b) for b in rest_right]


def _object(a: Item | None, b: Item | None) -> str:
    item = a or b
    assert item is not None
    if item.kind == "primary key":
        return f"primary key {item.table}"
    if a and b and a.name is not None and a.name == b.name:
        name: str | None = a.name
    else:
        name = (a.explicit if a else None) or (b.explicit if b else None)
    return f"{item.kind} {item.table}.{name or item.label}"


def _name_fields(a: Item | None, b: Item | None) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The name as compared (None for unnamed or named by PostgreSQL) and as shown."""
    left = (a.explicit, a.name) if a else (None, None)
    right = (b.explicit, b.name) if b else (None, None)
    if a and b and a.name is not None and a.name == b.name:
        right = (left[0], b.name)
    return left, right


@dataclass(frozen=True)
class Named:
    """A pair whose names differ, for the hint that says how to make them agree."""

    left: Item
    right: Item

    def hint(self, sides: tuple[str, str], only: bool) -> str:
        lead = "only the name differs" if only else "the name differs too"
        a, b = self.left.explicit, self.right.explicit
        if a and not b:
            return f"{lead}: name it `CONSTRAINT {a}` on the {sides[1]} side"
        if b and not a:
            chosen = f" ({self.left.name} is the name PostgreSQL chose)" if self.left.name else ""
            return f"{lead}: name it `CONSTRAINT {b}` on the {sides[0]} side{chosen}"
        return (f"{lead}: name it `CONSTRAINT {a}` on the {sides[1]} side, or "
                f"`CONSTRAINT {b}` on the {sides[0]} side")


def compare(left: Schema, right: Schema, left_form: CheckForm, right_form: CheckForm,
            ) -> tuple[Facts, Facts, dict[str, Named]]:
    """The constraint facts of both sides, keyed so that paired constraints share an object,
    and the paired objects whose names differ."""
    facts: tuple[Facts, Facts] = ({}, {})
    named: dict[str, Named] = {}
    for table in sorted(set(left.tables) | set(right.tables)):
        a_items = items(left.tables[table], left.dialect, left_form) \
            if table in left.tables else []
        b_items = items(right.tables[table], right.dialect, right_form) \
            if table in right.tables else []
        for a, b in pair(a_items, b_items):
            obj = _object(a, b)
            names = _name_fields(a, b)
            for side, item, name in ((0, a, names[0]), (1, b, names[1])):
                if item is None:
                    continue
                key = obj
                while key in facts[side]:  # two unnamed constraints alike on one side
                    key += "'"
                facts[side][key] = {"name": name, **dict(item.fields)}
            if a and b and names[0][0] != names[1][0]:
                named[obj] = Named(a, b)
    return facts[0], facts[1], named
