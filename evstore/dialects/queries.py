"""The named queries of sql/<set>/<dialect>.sql: parse the blocks, translate the parameters
for the driver. The files' headers describe the format. Three sets, one format and one loader:
  queries   what the event store runs at run time (store.py and the dialect modules)
  catalog   what parity and drift read from pg_catalog and SQLite's pragmas (schema.catalog)
  tooling   migration bookkeeping and parity's scratch databases (schema.migrations, parity)

Why a loader of our own and not aiosql (15.0), measured with scripts/bench_queries.py (the
append path's statements from these files, minimum of 7 runs, two runs of the script):
  SQLite :memory:, 1-event append (BEGIN, head UPDATE, INSERT, COMMIT):
      this loader 29.0-30.0 us, aiosql 36.7-37.1 us: about 3.5 us more per aiosql query call
  PostgreSQL, 100-event evstore_append():
      this loader 2.44-3.02 ms, aiosql 4.97-5.11 ms: aiosql sends every parameter as text
      (%(name)s), so the JSON arrays lose the binary %b format and are escaped quote by quote
aiosql is slower on both, and would be a runtime dependency for what is one regular
expression here; the store keeps calling the driver directly with the translated text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from evstore.urls import Dialect

NAME_LINE = re.compile(r"^--\s*name:\s*(\S+)\s*$")
# A string literal (left alone), or a :name parameter, maybe cast to an array type (binary).
PARAM = re.compile(r"'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)(::\w+\[\])?")
DIALECT_ONLY = ("postgres_", "sqlite_")
QuerySet = Literal["queries", "catalog", "tooling"]
QUERY_SETS: tuple[QuerySet, ...] = ("queries", "catalog", "tooling")


@dataclass(frozen=True)
class Query:
    name: str
    description: str  # the block's one-line description ("" when missing: lint says so)
    text: str  # the SQL as written in the file
    line: int  # the line of `-- name:` in the file
    params: tuple[str, ...]  # parameter names, in order of first appearance
    sql: str  # the text as the driver takes it: %(name)s / %(name)b, or sqlite3's :name

    def positional(self) -> str:
        """The text with `?` for each parameter, bound by position in the order of `params`
        (SQLite's append path: a tuple binds faster than a dict)."""
        return PARAM.sub(lambda m: "?" if m.group(1) else m.group(0), self.text)

    def repeated_rows(self, rows: int) -> str:
        """positional(), with its VALUES row written `rows` times (SQLite's multi-row insert)."""
        qmark = self.positional()
        head, row, tail = re.split(r"(\([?,\s]*\))", qmark, maxsplit=1)
        return head + ",".join([re.sub(r"\s+", "", row)] * rows) + tail


def numbered(query: Query) -> str:
    """The text with PostgreSQL's own $1, $2... for its parameters (for its parser)."""
    at = {name: f"${i}" for i, name in enumerate(query.params, 1)}
    return PARAM.sub(lambda m: at[m.group(1)] + (m.group(2) or "") if m.group(1) else m.group(0),
                     query.text)


def parse(text: str, dialect: Dialect) -> dict[str, Query]:
    """The blocks of one file, by name (a repeated name keeps the last; lint reports it)."""
    blocks: list[tuple[str, int, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = NAME_LINE.match(line)
        if m:
            blocks.append((m.group(1), number, []))
        elif blocks:
            blocks[-1][2].append(line)
    out = {}
    for name, number, lines in blocks:
        description = ""
        if lines and lines[0].startswith("-- ") and not NAME_LINE.match(lines[0]):
            description = lines.pop(0)[3:].strip()
        body = "\n".join(lines).strip().rstrip(";").strip()
        params = tuple(dict.fromkeys(m.group(1) for m in PARAM.finditer(body) if m.group(1)))
        out[name] = Query(name, description, body, number, params, _for_driver(body, dialect))
    return out


def _for_driver(text: str, dialect: Dialect) -> str:
    if dialect == "sqlite":
        return text

    def placeholder(m: re.Match[str]) -> str:
        if m.group(1):
            return f"%({m.group(1)})" + ("b" + m.group(2) if m.group(2) else "s")
        return m.group(0).replace("%", "%%")  # psycopg reads every % as a placeholder

    return _PARAM_OR_PERCENT.sub(placeholder, text)


_PARAM_OR_PERCENT = re.compile(PARAM.pattern + "|%")


def queries_file(
    dialect: Dialect, sql_dir: Path | None = None, kind: QuerySet = "queries"
) -> Path:
    """sql/<kind>/<dialect>.sql, in the given sql/ tree or the shipped one."""
    from evstore.schema.migrations import shipped_sql_dir

    return (sql_dir or shipped_sql_dir()) / kind / f"{dialect}.sql"


@cache
def load(dialect: Dialect, kind: QuerySet = "queries") -> dict[str, Query]:
    """The shipped queries of one dialect and set, read once."""
    return parse(queries_file(dialect, kind=kind).read_text(encoding="utf-8"), dialect)


def sql(dialect: Dialect, kind: QuerySet = "queries") -> dict[str, str]:
    """name -> the statement as the driver takes it."""
    return {name: q.sql for name, q in load(dialect, kind).items()}
