"""The dialect mapping, in one place a reviewer can read: how a PostgreSQL type, default or
expression is spelled on SQLite. Everything parity treats as "the same" is decided here."""

from __future__ import annotations

import re

# PostgreSQL type (format_type, without length or precision) -> SQLite declared type.
TYPES: dict[str, str] = {
    "bigint": "INTEGER",  # with identity: INTEGER PRIMARY KEY AUTOINCREMENT
    "integer": "INTEGER",
    "smallint": "INTEGER",
    "boolean": "INTEGER",  # with CHECK (x IN (0, 1)) on SQLite, declared in parity.toml
    "text": "TEXT",
    "character varying": "TEXT",
    "character": "TEXT",
    "uuid": "TEXT",
    "jsonb": "TEXT",  # with CHECK (json_valid(x)) on SQLite, declared in parity.toml
    "json": "TEXT",
    "timestamp with time zone": "TEXT",  # ISO-8601 UTC text with milliseconds and Z
    "timestamp without time zone": "TEXT",
    "date": "TEXT",
    "double precision": "REAL",
    "real": "REAL",
    "numeric": "REAL",
    "bytea": "BLOB",
}

# PostgreSQL default (after casts are dropped) -> its SQLite twin.
DEFAULTS: dict[str, str] = {
    "now()": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    "CURRENT_TIMESTAMP": "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    "true": "1",
    "false": "0",
}

_CAST = re.compile(r"::[a-z_]+(?: [a-z_]+)*(?:\(\d+(?:,\d+)?\))?(?:\[\])?")
_SPACE = re.compile(r"\s+")
_STRING = re.compile(r"'(?:[^']|'')*'")


def sqlite_type_for(pg_type: str) -> str:
    base = re.sub(r"\(.*\)", "", pg_type).strip().removesuffix("[]")
    return TYPES.get(base, pg_type.upper())


def _outside_strings(text: str, fn: re.Pattern[str], repl: str) -> str:
    out, last = [], 0
    for m in _STRING.finditer(text):
        out.append(fn.sub(repl, text[last : m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(fn.sub(repl, text[last:]))
    return "".join(out)


def strip_casts(text: str) -> str:
    return _outside_strings(text, _CAST, "")


def squash(text: str) -> str:
    """Whitespace collapsed and spaces inside parentheses dropped, outside string literals."""
    text = _outside_strings(text.strip(), _SPACE, " ")
    text = _outside_strings(text, re.compile(r"\(\s+"), "(")
    return _outside_strings(text, re.compile(r"\s+\)"), ")")


def _strip_outer_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def pg_default(default: str | None) -> str | None:
    """A PostgreSQL default as SQLite would spell it: casts dropped, known functions mapped."""
    if default is None:
        return None
    text = squash(strip_casts(default))
    return DEFAULTS.get(text, text)


def sqlite_default(default: str | None) -> str | None:
    if default is None:
        return None
    return squash(_strip_outer_parens(squash(default)))


_QUOTED_SIMPLE = re.compile(r'"([a-z_][a-z0-9_]*)"')


def light_expression(text: str) -> str:
    """The comparison form of an expression: casts, needless identifier quotes, extra
    whitespace and outer parentheses removed."""
    text = _outside_strings(strip_casts(text), _QUOTED_SIMPLE, r"\1")
    return _strip_outer_parens(squash(text))


def check_body(definition: str) -> str:
    """'CHECK ((x > 0))' -> 'x > 0' for display and light comparison."""
    body = definition.strip()
    if body.upper().startswith("CHECK"):
        body = body[5:].strip()
    return light_expression(body)
