"""Read a SQLite schema from sqlite_schema and the pragmas into the model.

The pragmas give columns, keys, indexes and foreign keys; what SQLite keeps only in the stored
CREATE text (constraint names, CHECK expressions, partial index predicates, trigger timing) is
read from that text with a small tokenizer that respects quotes and parentheses."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from evstore.dialects import queries
from evstore.schema.catalog.model import (
    Check,
    Column,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Table,
    Trigger,
    Unique,
)
from evstore.schema.catalog.postgres import IGNORED_TABLES

_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|\w+|[^\s\w]""",
    re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokens(text: str) -> list[Token]:
    """Significant tokens (no whitespace or comments) with their offsets in text."""
    out = []
    for m in _TOKEN.finditer(text):
        t = m.group()
        if t.isspace() or t.startswith(("--", "/*")):
            continue
        out.append(Token(t, m.start(), m.end()))
    return out


def unquote(identifier: str) -> str:
    if identifier[:1] in "\"`[" and len(identifier) > 1:
        return identifier[1:-1].replace('""', '"')
    return identifier


def _closing(toks: list[Token], open_index: int) -> int:
    depth = 0
    for i in range(open_index, len(toks)):
        if toks[i].text == "(":
            depth += 1
        elif toks[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses")


def _table_body_items(sql: str) -> list[tuple[str, list[Token]]]:
    """The comma-separated column and constraint definitions of a CREATE TABLE."""
    toks = tokens(sql)
    start = next(i for i, t in enumerate(toks) if t.text == "(")
    end = _closing(toks, start)
    parts = _split_commas(toks[start + 1 : end])
    return [(sql[part[0].start : part[-1].end], part) for part in parts]


def _split_commas(toks: list[Token]) -> list[list[Token]]:
    """Tokens split at the commas outside parentheses; empty parts dropped."""
    parts: list[list[Token]] = []
    depth, current = 0, list[Token]()
    for t in toks:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        if t.text == "," and depth == 0:
            parts.append(current)
            current = []
        else:
            current.append(t)
    parts.append(current)
    return [p for p in parts if p]


@dataclass
class _ParsedTable:
    checks: list[Check]
    constraint_names: dict[tuple[str, tuple[str, ...]], str]  # (kind, columns) -> name
    autoincrement: bool


_CONSTRAINT_WORDS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}
_KINDS = {"PRIMARY": "p", "UNIQUE": "u", "FOREIGN": "f", "REFERENCES": "f"}


def _key_columns(toks: list[Token], open_index: int) -> tuple[tuple[str, ...], int]:
    """The column names of `(a COLLATE NOCASE, b DESC)` at open_index, and the index after."""
    close = _closing(toks, open_index)
    parts = _split_commas(toks[open_index + 1 : close])
    return tuple(unquote(part[0].text) for part in parts), close + 1


def _skip_references(toks: list[Token], i: int) -> int:
    """The index after `REFERENCES parent [(columns)]` at i; the actions that follow hold no
    constraint words."""
    i += 2
    if i < len(toks) and toks[i].text == "(":
        i = _closing(toks, i) + 1
    return i


def _parse_table(sql: str) -> _ParsedTable:
    checks: list[Check] = []
    names: dict[tuple[str, tuple[str, ...]], str] = {}
    autoincrement = False
    for _text, toks in _table_body_items(sql):
        is_column = toks[0].upper not in _CONSTRAINT_WORDS
        column = unquote(toks[0].text) if is_column else None
        pending_name: str | None = None
        i = 1 if is_column else 0
        while i < len(toks):
            word = toks[i].upper
            if word == "CONSTRAINT" and i + 1 < len(toks):
                pending_name = unquote(toks[i + 1].text)
                i += 2
                continue
            if word == "CHECK":
                close = _closing(toks, i + 1)
                expr = sql[toks[i + 2].start : toks[close - 1].end] if close > i + 2 else ""
                checks.append(Check(pending_name, expr))
                pending_name, i = None, close + 1
                continue
            if word in _KINDS and (word != "REFERENCES" or column):
                j = i + 1 + (1 if word in ("PRIMARY", "FOREIGN") else 0)  # skip KEY
                if word != "REFERENCES" and j < len(toks) and toks[j].text == "(":
                    cols, i = _key_columns(toks, j)
                else:
                    cols, i = ((column,) if column else ()), j
                if word == "REFERENCES":
                    i = _skip_references(toks, i - 1)
                elif word == "FOREIGN" and i < len(toks) and toks[i].upper == "REFERENCES":
                    i = _skip_references(toks, i)
                if pending_name:
                    names[(_KINDS[word], cols)] = pending_name
                pending_name = None
                continue
            if word == "AUTOINCREMENT":
                autoincrement = True
            # A name before NOT NULL, DEFAULT or COLLATE names nothing parity compares.
            pending_name = None
            i += 1
    return _ParsedTable(checks, names, autoincrement)


def _index_predicate(sql: str) -> str | None:
    toks = tokens(sql)
    depth = 0
    for i, t in enumerate(toks):
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0 and t.upper == "WHERE" and i + 1 < len(toks):
            return sql[toks[i + 1].start : toks[-1].end].rstrip(";").strip()
    return None


def _index_expressions(sql: str) -> list[str]:
    toks = tokens(sql)
    on = next(i for i, t in enumerate(toks) if t.upper == "ON")
    start = next(i for i in range(on, len(toks)) if toks[i].text == "(")
    end = _closing(toks, start)
    out = []
    for part in _split_commas(toks[start + 1 : end]):
        while part and part[-1].upper in ("ASC", "DESC"):
            part = part[:-1]
        if len(part) > 2 and part[-2].upper == "COLLATE":
            part = part[:-2]
        out.append(sql[part[0].start : part[-1].end])
    return out


@dataclass(frozen=True)
class _TriggerShape:
    timing: str
    events: tuple[str, ...]
    columns: tuple[str, ...]  # UPDATE OF
    when: str | None


def _trigger_shape(sql: str) -> _TriggerShape:
    toks = tokens(sql)
    upper = [t.upper for t in toks]
    on = upper.index("ON")
    head = upper[:on]
    timing = "INSTEAD OF" if "INSTEAD" in head else ("AFTER" if "AFTER" in head else "BEFORE")
    events = tuple(sorted(e for e in ("INSERT", "UPDATE", "DELETE") if e in head))
    columns: tuple[str, ...] = ()
    of = head.index("UPDATE") + 1 if "UPDATE" in head else on
    if of < on and head[of] == "OF":
        columns = tuple(sorted(unquote(p[0].text) for p in _split_commas(toks[of + 1 : on])))
    i = on + (4 if on + 2 < len(toks) and toks[on + 2].text == "." else 2)  # [schema.]table
    if upper[i : i + 3] == ["FOR", "EACH", "ROW"]:
        i += 3
    when = None
    if i < len(upper) and upper[i] == "WHEN":
        begin = next(k for k in range(i + 1, len(upper)) if upper[k] == "BEGIN")
        when = sql[toks[i + 1].start : toks[begin - 1].end]
    return _TriggerShape(timing, events, columns, when)


_IS_OPERANDS = {"NULL", "TRUE", "FALSE", "DISTINCT", "NOT"}


def pg_spelling(expression: str) -> str:
    """SQLite's NULL-safe comparisons `a IS b` and `a IS NOT b` spelled as PostgreSQL spells
    them (IS NOT DISTINCT FROM, IS DISTINCT FROM), so that PostgreSQL's parser can print them;
    IS [NOT] NULL, TRUE and FALSE are left alone."""
    toks = tokens(expression)
    out, last = [], 0
    for i, t in enumerate(toks[:-1]):
        following = toks[i + 1]
        if t.upper != "IS":
            continue
        if following.upper == "NOT" and i + 2 < len(toks) and (
            toks[i + 2].upper not in _IS_OPERANDS
        ):
            out += [expression[last : t.start], "IS DISTINCT FROM"]
            last = following.end
        elif following.upper not in _IS_OPERANDS:
            out += [expression[last : t.start], "IS NOT DISTINCT FROM"]
            last = t.end
    return "".join([*out, expression[last:]])


def introspect(conn: sqlite3.Connection) -> Schema:
    """The schema of a SQLite database, leaving out yoyo's tables and sqlite_* internals."""
    rows = _rows(conn, "sqlite_catalog_objects")
    result = Schema(dialect="sqlite")
    for kind, name, table, sql in rows:
        if table in IGNORED_TABLES or sql is None:
            continue
        if kind == "table":
            result.tables[name] = _table(conn, name, sql)
        elif kind == "index":
            result.indexes[name] = _index(conn, name, table, sql)
        elif kind == "trigger":
            shape = _trigger_shape(sql)
            result.triggers[name] = Trigger(
                name, table, shape.timing, shape.events, "ROW", None, shape.when, shape.columns
            )
    return result


def _rows(conn: sqlite3.Connection, name: str, **params: str) -> list[tuple[Any, ...]]:
    """The rows of one named query of sql/catalog/sqlite.sql."""
    return conn.execute(queries.sql("sqlite", "catalog")[name], params).fetchall()


def _table(conn: sqlite3.Connection, name: str, sql: str) -> Table:
    parsed = _parse_table(sql)
    info = _rows(conn, "sqlite_catalog_columns", table=name)
    pk_cols = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
    rowid_alias = len(pk_cols) == 1 and any(
        r[1] == pk_cols[0] and r[2].upper() == "INTEGER" for r in info
    )
    columns = []
    for cid, col, type_, not_null, default, _pk, hidden in info:
        if hidden in (1,):  # virtual-table hidden columns are not part of the schema
            continue
        identity = None
        if rowid_alias and col == pk_cols[0]:
            identity = "generated" if parsed.autoincrement else "rowid"
        columns.append(
            Column(
                name=col,
                position=cid + 1,
                type=type_,
                not_null=bool(not_null) or identity is not None,
                default=default,
                identity=identity,
            )
        )
    primary_key = (
        PrimaryKey(parsed.constraint_names.get(("p", pk_cols)), pk_cols) if pk_cols else None
    )
    uniques = []
    for _seq, index_name, _unique, origin, _partial in _rows(
        conn, "sqlite_catalog_index_list", table=name
    ):
        if origin != "u":
            continue
        cols = tuple(r[0] for r in _rows(conn, "sqlite_catalog_index_columns", index=index_name))
        uniques.append(Unique(parsed.constraint_names.get(("u", cols)), cols))
    fk_rows = _rows(conn, "sqlite_catalog_foreign_keys", table=name)
    grouped: dict[int, list[tuple[object, ...]]] = {}
    for r in fk_rows:
        grouped.setdefault(r[0], []).append(r)
    fks = []
    for parts in grouped.values():
        cols = tuple(str(p[3]) for p in parts)
        ref_cols = tuple(str(p[4]) for p in parts)
        fks.append(
            ForeignKey(
                parsed.constraint_names.get(("f", cols)),
                cols,
                str(parts[0][2]),
                ref_cols,
                str(parts[0][6]).upper(),
                str(parts[0][5]).upper(),
            )
        )
    return Table(
        name=name,
        columns=tuple(columns),
        primary_key=primary_key,
        uniques=tuple(sorted(uniques, key=lambda u: (u.name or "", u.columns))),
        checks=tuple(sorted(parsed.checks, key=lambda c: (c.name or "", c.expression))),
        foreign_keys=tuple(sorted(fks, key=lambda f: (f.name or "", f.columns))),
    )


def _index(conn: sqlite3.Connection, name: str, table: str, sql: str) -> Index:
    listed = {
        index_name: (bool(unique), bool(partial))
        for _seq, index_name, unique, _origin, partial in _rows(
            conn, "sqlite_catalog_index_list", table=table
        )
    }
    unique, _partial = listed.get(name, (False, False))
    key_rows = _rows(conn, "sqlite_catalog_index_keys", index=name)
    expressions = _index_expressions(sql)
    columns = tuple(
        str(r[2]) if r[1] >= 0 else expressions[r[0]] for r in key_rows
    )
    descending = tuple(bool(r[3]) for r in key_rows)
    return Index(
        name, table, columns, unique, _index_predicate(sql), "btree",
        descending=descending,
        nulls_first=tuple(not d for d in descending),  # NULL is SQLite's smallest value
        collations=tuple(str(r[4]).upper() for r in key_rows),
    )
