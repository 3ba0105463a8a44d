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


# -- Constraint names ------------------------------------------------------------------------
# PostgreSQL names every constraint; SQLite keeps no name for one declared without CONSTRAINT.
# A PostgreSQL name that PostgreSQL would have chosen itself therefore counts as "unnamed".

NAMEDATALEN = 64  # PostgreSQL's identifier buffer: names are at most 63 bytes

# What PostgreSQL appends to the names it chooses (ChooseConstraintName, ChooseRelationName).
GENERATED_LABELS: dict[str, str] = {
    "primary key": "pkey",
    "unique": "key",
    "foreign key": "fkey",
    "check": "check",
}

_SUFFIX = re.compile(r"(?:[1-9][0-9]*)?$")


def make_object_name(name1: str, name2: str | None, label: str) -> str:
    """PostgreSQL's makeObjectName: name1_name2_label within 63 bytes, shortening the longer
    of name1 and name2 one byte at a time and never cutting a character in two."""
    first, second = name1.encode(), (name2 or "").encode()
    available = NAMEDATALEN - 1 - (len(label.encode()) + 1) - (1 if name2 is not None else 0)
    n1, n2 = len(first), len(second)
    while n1 + n2 > available:
        if n1 > n2:
            n1 -= 1
        else:
            n2 -= 1
    parts = [first[:n1].decode(errors="ignore")]
    if name2 is not None:
        parts.append(second[:n2].decode(errors="ignore"))
    return "_".join([*parts, label])


def pg_generated_name(name: str, table: str, kind: str, columns: tuple[str, ...]) -> bool:
    """Whether PostgreSQL could have chosen `name` itself for an unnamed constraint of this
    kind: <table>_pkey, <table>_<cols>_key, <table>_<cols>_fkey, <table>_<col>_check (one
    column read) or <table>_check, truncated to 63 bytes, with 1, 2, ... after the label when
    the first choice was taken."""
    label = GENERATED_LABELS[kind]
    match = _SUFFIX.search(name)
    suffix = match.group() if match else ""
    if kind == "primary key":
        name2: str | None = None
    elif kind == "check":
        name2 = columns[0] if len(columns) == 1 else None
    else:
        name2 = "_".join(columns)
    return name == make_object_name(table, name2, label + suffix)


# -- Index keys ------------------------------------------------------------------------------
# NULLs are compared where they actually sit. PostgreSQL puts them last in an ASC key and
# first in a DESC one unless told otherwise (NULLS FIRST / NULLS LAST); SQLite treats NULL as
# the smallest value, so NULLs come first in an ASC key and last in a DESC one, and its
# CREATE INDEX accepts no NULLS clause ("unsupported use of NULLS FIRST"). A PostgreSQL key
# `x NULLS FIRST` is therefore the same as SQLite's `x`, and `x DESC NULLS LAST` the same as
# SQLite's `x DESC`. Keys on NOT NULL columns hold no NULLs; their NULLs order is not compared.

# PostgreSQL collation -> the SQLite collation with the same semantics. SQLite has BINARY
# (memcmp, the default), NOCASE (ASCII case folding) and RTRIM. "C", "POSIX", "ucs_basic" and
# glibc's "C.utf8" order by code point, as BINARY does on UTF-8. "default" is the database's
# collation: it is deterministic (equal only when byte-equal, as BINARY) though its order
# follows LC_COLLATE, and it is what a key gets when nobody asked for anything. A key that
# cannot be collated (bigint) has no collation on PostgreSQL and BINARY on SQLite. NOCASE and
# RTRIM have no built-in PostgreSQL twin (a nondeterministic ICU collation comes close): a pair
# meant to be the same is declared in parity.toml, [[equivalent]] field = "collations".
COLLATIONS: dict[str, str] = {
    "default": "BINARY",
    "C": "BINARY",
    "POSIX": "BINARY",
    "ucs_basic": "BINARY",
    "C.utf8": "BINARY",
    "C.UTF-8": "BINARY",
}


def sqlite_collation_for(pg_collation: str | None) -> str:
    if pg_collation is None:
        return "BINARY"
    return COLLATIONS.get(pg_collation, pg_collation)
