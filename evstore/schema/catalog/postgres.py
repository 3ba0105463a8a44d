"""Read a PostgreSQL schema from pg_catalog into the model."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import psycopg
from psycopg import sql

from evstore.dialects import queries
from evstore.schema.catalog.model import (
    Check,
    Column,
    ForeignKey,
    Function,
    Index,
    PrimaryKey,
    Schema,
    Table,
    Trigger,
    Unique,
)

# yoyo's bookkeeping is not part of anyone's schema.
IGNORED_TABLES = frozenset(
    {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock", "_yoyo_migrations",
     "_yoyo_evstore_checksum"}
)

_FK_ACTIONS = {
    "a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT",
}



def _rows(conn: psycopg.Connection[Any], name: str, **params: str) -> list[tuple[Any, ...]]:
    """The rows of one named query of sql/catalog/postgres.sql (always with a dict of
    parameters: the loader doubles each literal %, which psycopg undoes only then)."""
    return conn.execute(queries.sql("postgres", "catalog")[name], params).fetchall()


def _timing_and_events(tgtype: int) -> tuple[str, tuple[str, ...], str]:
    level = "ROW" if tgtype & 1 else "STATEMENT"
    timing = "INSTEAD OF" if tgtype & 64 else ("BEFORE" if tgtype & 2 else "AFTER")
    events = [name for bit, name in ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE"),
                                      (32, "TRUNCATE")) if tgtype & bit]
    return timing, tuple(sorted(events)), level


def introspect(conn: psycopg.Connection[Any], schema: str = "public") -> Schema:
    """The schema's tables, constraints, indexes, triggers and functions, from pg_catalog.

    The search_path is fixed to the schema for the duration, so pg_get_*def print names
    unqualified and identically whatever the caller's setting was."""
    with conn.transaction():
        _rows(conn, "postgres_catalog_search_path", schema=schema)
        columns = _rows(conn, "postgres_catalog_columns", schema=schema)
        constraints = _rows(conn, "postgres_catalog_constraints", schema=schema)
        indexes = _rows(conn, "postgres_catalog_indexes", schema=schema)
        triggers = _rows(conn, "postgres_catalog_triggers", schema=schema)
        functions = _rows(conn, "postgres_catalog_functions", schema=schema)
        sequences = _rows(conn, "postgres_catalog_sequences", schema=schema)

    cols: dict[str, list[Column]] = defaultdict(list)
    for table, _num, name, type_, not_null, default, identity in columns:
        if table in IGNORED_TABLES:
            continue
        cols[table].append(
            Column(
                name=name,
                position=len(cols[table]) + 1,
                type=type_,
                not_null=bool(not_null),
                default=default,
                identity="generated" if identity in ("a", "d") else None,
            )
        )
    pks: dict[str, PrimaryKey] = {}
    uniques: dict[str, list[Unique]] = defaultdict(list)
    checks: dict[str, list[Check]] = defaultdict(list)
    fks: dict[str, list[ForeignKey]] = defaultdict(list)
    for table, name, kind, definition, keys, ref_table, ref_keys, on_del, on_upd in constraints:
        if kind == "p":
            pks[table] = PrimaryKey(name, tuple(keys))
        elif kind == "u":
            uniques[table].append(Unique(name, tuple(keys)))
        elif kind == "c":
            checks[table].append(Check(name, strip_not_valid(definition), tuple(keys)))
        else:
            fks[table].append(
                ForeignKey(
                    name, tuple(keys), ref_table, tuple(ref_keys),
                    _FK_ACTIONS[on_del], _FK_ACTIONS[on_upd],
                )
            )
    result = Schema(dialect="postgres", sequences=tuple(r[0] for r in sequences))
    for table, table_columns in cols.items():
        result.tables[table] = Table(
            name=table,
            columns=tuple(table_columns),
            primary_key=pks.get(table),
            uniques=tuple(sorted(uniques[table])),
            checks=tuple(sorted(checks[table], key=lambda c: (c.name or "", c.expression))),
            foreign_keys=tuple(sorted(fks[table], key=lambda f: (f.name or "", f.columns))),
        )
    for name, table, unique, method, predicate, keys, ordered, options, collations in indexes:
        if table in IGNORED_TABLES:
            continue
        result.indexes[name] = Index(
            name, table, tuple(keys), bool(unique), predicate, method,
            descending=tuple(bool(o & _DESC) for o in options) if ordered else (),
            nulls_first=tuple(bool(o & _NULLS_FIRST) for o in options) if ordered else (),
            collations=tuple(collations),
        )
    for name, table, tgtype, function, definition, columns in triggers:
        timing, events, level = _timing_and_events(tgtype)
        result.triggers[name] = Trigger(
            name, table, timing, events, level, function, trigger_when(definition),
            tuple(columns),
        )
    for name, language, body in functions:
        result.functions[name] = Function(name, language, body.strip())
    return result


def strip_not_valid(definition: str) -> str:
    return definition.removesuffix(" NOT VALID")


# pg_index.indoption bits (INDOPTION_DESC, INDOPTION_NULLS_FIRST): set for where the key
# actually sorts, so `x DESC` and `x DESC NULLS FIRST` read alike.
_DESC = 1
_NULLS_FIRST = 2

_FOR_EACH = re.compile(r" FOR EACH (?:ROW|STATEMENT) WHEN \(")


def trigger_when(definition: str) -> str | None:
    """The WHEN condition of a pg_get_triggerdef text, without its parentheses. pg_trigger keeps
    it as a node tree over OLD and NEW that pg_get_expr cannot print, so it is cut from there."""
    match = _FOR_EACH.search(definition)
    if match is None:
        return None
    depth, quote = 1, ""
    for i in range(match.end(), len(definition)):
        ch = definition[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "()":
            depth += 1 if ch == "(" else -1
            if depth == 0:
                return definition[match.end() : i]
    return None


class ExpressionNormalizer:
    """Prints SQLite expressions the way PostgreSQL prints its own, by letting PostgreSQL parse
    them against a temporary copy of the table: IN lists become = ANY (ARRAY[...]), BETWEEN
    becomes two comparisons, casts and parentheses appear exactly as in pg_get_constraintdef.

    Returns None when PostgreSQL cannot parse the expression (a SQLite-only function)."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = "public") -> None:
        self.conn = conn
        self.schema = schema
        self._copies: dict[str, str | None] = {}

    def _copy_of(self, table: str) -> str | None:
        if table not in self._copies:
            name = f"evstore_norm_{len(self._copies)}"
            try:
                with self.conn.transaction():
                    self.conn.execute(
                        sql.SQL("CREATE TEMP TABLE {} (LIKE {}.{})").format(
                            sql.Identifier(name),
                            sql.Identifier(self.schema),
                            sql.Identifier(table),
                        )
                    )
                self._copies[table] = name
            except psycopg.Error:
                self._copies[table] = None
        return self._copies[table]

    def check(self, table: str, expression: str) -> str | None:
        copy = self._copy_of(table)
        if copy is None:
            return None
        try:
            with self.conn.transaction(force_rollback=True):
                self.conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT evstore_norm CHECK ({}) NOT VALID")
                    .format(sql.Identifier(copy), sql.SQL(expression))
                )
                rows = _rows(self.conn, "postgres_norm_check", copy=copy)
        except psycopg.Error:
            return None
        return strip_not_valid(rows[0][0]) if rows else None

    def predicate(self, table: str, expression: str) -> str | None:
        rows = _rows(self.conn, "postgres_catalog_first_column", schema=self.schema,
                     table=table)
        if not rows:
            return None
        return self._index_part(
            table,
            sql.SQL("({}) WHERE {}").format(sql.Identifier(str(rows[0][0])), sql.SQL(expression)),
            "pred",
        )

    def index_column(self, table: str, expression: str) -> str | None:
        return self._index_part(table, sql.SQL("(({}))").format(sql.SQL(expression)), "col")

    def trigger_when(
        self, table: str, timing: str, events: tuple[str, ...], expression: str
    ) -> str | None:
        """A SQLite trigger's WHEN condition as pg_get_triggerdef prints it, from a trigger on
        the same events of the copy (OLD and NEW mean what they mean there)."""
        copy = self._copy_of(table)
        if copy is None:
            return None
        # Keywords from fixed sets, never from the SQLite text.
        on = [e for e in events if e in ("INSERT", "UPDATE", "DELETE")] or ["UPDATE"]
        when = timing if timing in ("BEFORE", "AFTER") else "AFTER"
        try:
            with self.conn.transaction(force_rollback=True):
                # Any trigger function will do: the trigger never fires.
                self.conn.execute(
                    sql.SQL(
                        "CREATE TRIGGER evstore_norm_tg {} {} ON {} FOR EACH ROW WHEN ({}) "
                        "EXECUTE FUNCTION suppress_redundant_updates_trigger()"
                    ).format(
                        sql.SQL(when), sql.SQL(" OR ").join(sql.SQL(e) for e in on),
                        sql.Identifier(copy), sql.SQL(expression),
                    )
                )
                rows = _rows(self.conn, "postgres_norm_trigger", copy=copy)
        except psycopg.Error:
            return None
        return trigger_when(str(rows[0][0])) if rows else None

    def _index_part(self, table: str, clause: sql.Composable, part: str) -> str | None:
        copy = self._copy_of(table)
        if copy is None:
            return None
        try:
            with self.conn.transaction(force_rollback=True):
                self.conn.execute(
                    sql.SQL("CREATE INDEX evstore_norm_ix ON {} {}").format(
                        sql.Identifier(copy), clause
                    )
                )
                rows = _rows(self.conn, "postgres_norm_index")
        except psycopg.Error:
            return None
        if not rows:
            return None
        return str(rows[0][0] if part == "pred" else rows[0][1])
