"""Read a PostgreSQL schema from pg_catalog into the model."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import psycopg
from psycopg import sql

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

_COLUMNS = """
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       f.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
       k.confdeltype, k.confupdtype
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class f ON f.oid = k.confrelid
WHERE n.nspname = %(schema)s AND k.contype IN ('p', 'u', 'c', 'f')
ORDER BY c.relname, k.conname
"""

# Indexes that back a constraint are reported with the constraint, not as indexes.
_INDEXES = """
SELECT i.relname, t.relname, x.indisunique, am.amname, pg_get_expr(x.indpred, x.indrelid),
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
       pg_indexam_has_property(am.oid, 'can_order'),
       ARRAY(SELECT x.indoption[k - 1] FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
       ARRAY(SELECT co.collname FROM generate_series(1, x.indnkeyatts) k
             LEFT JOIN pg_collation co ON co.oid = x.indcollation[k - 1] ORDER BY k)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = %(schema)s
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
ORDER BY i.relname
"""

_TRIGGERS = """
SELECT g.tgname, c.relname, g.tgtype, p.proname, pg_get_triggerdef(g.oid, true),
       ARRAY(SELECT a.attname FROM unnest(g.tgattr::int2[]) u(n)
             JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = u.n ORDER BY a.attname)
FROM pg_trigger g
JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = g.tgfoid
WHERE n.nspname = %(schema)s AND NOT g.tgisinternal
ORDER BY g.tgname
"""

_FUNCTIONS = """
SELECT p.proname, l.lanname, p.prosrc
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'p')
ORDER BY p.proname
"""

# Sequences that no identity or serial column owns.
_SEQUENCES = """
SELECT s.relname
FROM pg_class s
JOIN pg_namespace n ON n.oid = s.relnamespace
WHERE n.nspname = %(schema)s AND s.relkind = 'S'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a', 'i'))
ORDER BY s.relname
"""


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
    params = {"schema": schema}
    with conn.transaction():
        conn.execute("SELECT set_config('search_path', %s, true)", (schema,))
        columns = conn.execute(_COLUMNS, params).fetchall()
        constraints = conn.execute(_CONSTRAINTS, params).fetchall()
        indexes = conn.execute(_INDEXES, params).fetchall()
        triggers = conn.execute(_TRIGGERS, params).fetchall()
        functions = conn.execute(_FUNCTIONS, params).fetchall()
        sequences = conn.execute(_SEQUENCES, params).fetchall()

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
                    f'ALTER TABLE "{copy}" ADD CONSTRAINT evstore_norm CHECK ({expression}) '
                    "NOT VALID"
                )
                row = self.conn.execute(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'evstore_norm' AND conrelid = %s::regclass",
                    (f'"{copy}"',),
                ).fetchone()
        except psycopg.Error:
            return None
        return strip_not_valid(row[0]) if row else None

    def predicate(self, table: str, expression: str) -> str | None:
        row = self.conn.execute(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum LIMIT 1",
            (self.schema, table),
        ).fetchone()
        if row is None:
            return None
        column = '"' + str(row[0]).replace('"', '""') + '"'
        return self._index_part(table, f"({column}) WHERE {expression}", "pred")

    def index_column(self, table: str, expression: str) -> str | None:
        return self._index_part(table, f"(({expression}))", "col")

    def trigger_when(
        self, table: str, timing: str, events: tuple[str, ...], expression: str
    ) -> str | None:
        """A SQLite trigger's WHEN condition as pg_get_triggerdef prints it, from a trigger on
        the same events of the copy (OLD and NEW mean what they mean there)."""
        copy = self._copy_of(table)
        if copy is None:
            return None
        on = " OR ".join(e for e in events if e != "TRUNCATE") or "UPDATE"
        when = timing if timing in ("BEFORE", "AFTER") else "AFTER"
        try:
            with self.conn.transaction(force_rollback=True):
                # Any trigger function will do: the trigger never fires.
                self.conn.execute(
                    f'CREATE TRIGGER evstore_norm_tg {when} {on} ON "{copy}" FOR EACH ROW '
                    f"WHEN ({expression}) EXECUTE FUNCTION suppress_redundant_updates_trigger()"
                )
                row = self.conn.execute(
                    "SELECT pg_get_triggerdef(oid, true) FROM pg_trigger "
                    "WHERE tgname = 'evstore_norm_tg' AND tgrelid = %s::regclass",
                    (f'"{copy}"',),
                ).fetchone()
        except psycopg.Error:
            return None
        return trigger_when(str(row[0])) if row else None

    def _index_part(self, table: str, clause: str, part: str) -> str | None:
        copy = self._copy_of(table)
        if copy is None:
            return None
        try:
            with self.conn.transaction(force_rollback=True):
                self.conn.execute(f'CREATE INDEX evstore_norm_ix ON "{copy}" {clause}')
                row = self.conn.execute(
                    "SELECT pg_get_expr(x.indpred, x.indrelid), "
                    "pg_get_indexdef(x.indexrelid, 1, true) FROM pg_index x "
                    "JOIN pg_class i ON i.oid = x.indexrelid WHERE i.relname = 'evstore_norm_ix'"
                ).fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return None
        return str(row[0] if part == "pred" else row[1])
