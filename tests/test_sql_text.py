"""No SQL statement text in evstore's Python: every statement is a named block in sql/ (queries,
catalog, tooling), except the few built from identifiers, listed here with where they are built.
Also: the named files of every set are at parity, lint checks them, and they ship in the sdist
and wheel layout the loader expects."""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evstore.cli import main
from evstore.dialects import queries
from evstore.schema import migrations
from evstore.schema.lint import lint_queries
from tests.conftest import SQL

PACKAGE = Path(__file__).resolve().parents[1] / "evstore"

_VERBS = (
    "SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|WITH|VALUES|"
    "PRAGMA|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|END|ABORT|LISTEN|UNLISTEN|NOTIFY|SET|RESET|"
    "SHOW|VACUUM|ANALYZE|EXPLAIN|REINDEX|CLUSTER|COPY|LOCK|CALL|DO|PREPARE|EXECUTE|DEALLOCATE|"
    "DECLARE|FETCH|ATTACH|DETACH|COMMENT|REFRESH|DISCARD|CHECKPOINT|REPLACE|UPSERT"
)
# Statement text as evstore writes SQL: an upper-case verb and more after it.
_UPPER = re.compile(rf"^\s*(?:{_VERBS})\s")
# Upper-case phrases that start like a statement but name something: foreign-key actions.
KEYWORDS = {"SET NULL", "SET DEFAULT"}
_BARE = re.compile(r"^\s*(?:COMMIT|ROLLBACK|VACUUM|ABORT)\s*;?\s*$")
# ...and the shapes of a statement in any case, so lower-case SQL does not slip through.
_ANY_CASE = re.compile(
    r"""^\s*(?:
        select\s.*\bfrom\s | insert\s+(?:or\s+\w+\s+)?into\s | update\s+\S+\s+set\s
      | delete\s+from\s | replace\s+into\s
      | (?:create|drop|alter)\s+(?:or\s+replace\s+|temp(?:orary)?\s+|unique\s+)*
        (?:table|index|trigger|view|schema|database|function|procedure|role|sequence|type)\b
      | pragma\s+\w | explain\s | vacuum\b | grant\s.*\son\s | revoke\s.*\son\s
      | (?:begin|commit|rollback|end)\s+(?:transaction|work|immediate|exclusive|deferred|to)\b
      | set\s+(?:local\s+|session\s+)?\w+\s*(?:=|to\s) | listen\s+\w | notify\s+\w
    )""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)

# The statements that stay in Python because they are built from names known only at run time,
# each as its template ({} where a name or a SQLite expression goes) -> where it is built and
# how. PostgreSQL's go through psycopg.sql (checked below: the template is an sql.SQL argument),
# SQLite's through the doubled-quote helper evstore.dialects.sqlite.quote_identifier.
ALLOWED: dict[str, str] = {
    # schema/catalog/postgres.py: the normaliser's temporary copy of a table, and the CHECK,
    # index and trigger it creates on it from the SQLite expression under comparison.
    "CREATE TEMP TABLE {} (LIKE {}.{})": "psycopg",
    "ALTER TABLE {} ADD CONSTRAINT evstore_norm CHECK ({}) NOT VALID": "psycopg",
    "CREATE INDEX evstore_norm_ix ON {} {}": "psycopg",
    "CREATE TRIGGER evstore_norm_tg {} {} ON {} FOR EACH ROW WHEN ({}) "
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()": "psycopg",
    # schema/catalog/parity.py: the scratch databases of parity and drift, and their cleanup.
    "CREATE DATABASE {}": "psycopg",
    "DROP DATABASE IF EXISTS {} WITH (FORCE)": "psycopg",
    "DROP DATABASE IF EXISTS {}": "psycopg",
    # schema/migrations.py: --schema, and whether a table a rollback drops holds rows.
    "CREATE SCHEMA IF NOT EXISTS {}": "psycopg",
    "SELECT EXISTS (SELECT 1 FROM {})": "psycopg or sqlite",
    # schema/grant.py: the application role's grants.
    "GRANT USAGE ON SCHEMA {} TO {}": "psycopg",
    "GRANT {} ON TABLE {}.{} TO {}": "psycopg",
    "GRANT USAGE ON SEQUENCE {}.{} TO {}": "psycopg",
    "GRANT EXECUTE ON FUNCTION {}.{}({} TO {}": "psycopg",
    # dialects/sqlite.py: savepoints of nested transactions, by their quoted names.
    "SAVEPOINT {}": "sqlite",
    "RELEASE {}": "sqlite",
    "ROLLBACK TO {}": "sqlite",
}


def is_statement(text: str) -> bool:
    if text in KEYWORDS:
        return False
    return bool(_UPPER.match(text) or _BARE.match(text) or _ANY_CASE.match(text))


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _template(node: ast.JoinedStr) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def string_constants(source: str) -> Iterator[tuple[int, str, ast.AST, ast.AST | None]]:
    """(line, text, node, parent) of every string constant and f-string (its template, with
    {} for each value) that is not a docstring. Comments are not in the tree at all."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    for node in ast.walk(tree):
        parent = parents.get(id(node))
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, _template(node), node, parent
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and not isinstance(parent, ast.JoinedStr)):
            yield node.lineno, node.value, node, parent


def _is_sql_composition(parent: ast.AST | None, node: ast.AST) -> bool:
    """The template is the argument of psycopg's sql.SQL(...)."""
    return (isinstance(parent, ast.Call) and parent.args[:1] == [node]
            and ((isinstance(parent.func, ast.Attribute) and parent.func.attr == "SQL")
                 or (isinstance(parent.func, ast.Name) and parent.func.id == "SQL")))


def _quoted_values_only(node: ast.AST) -> bool:
    """An f-string whose values are quote_identifier(...) calls, or names (the savepoint
    name, quoted once when the savepoint is made)."""
    if not isinstance(node, ast.JoinedStr):
        return False
    for value in node.values:
        if not isinstance(value, ast.FormattedValue):
            continue
        inner = value.value
        called = (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)
                  and inner.func.id == "quote_identifier")
        if not (called or isinstance(inner, ast.Name)):
            return False
    return True


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_detector_knows_a_statement_from_a_message() -> None:
    statements = ["SELECT 1", "select x from t", "INSERT INTO t VALUES (1)", "COMMIT",
                  "DELETE FROM {} WHERE migration_id = :id", "create temp table x (a int)",
                  "PRAGMA foreign_keys = ON", "SELECT ", "pragma journal_mode", "SET search_path "
                  "TO x", "begin immediate", "LISTEN evstore_event_store", "WITH x AS (SELECT 1) "
                  "SELECT * FROM x", "update stream set version = 1"]
    others = ["SELECT", "UPDATE", "SET NULL", "SET DEFAULT", "rollback", "rollback file",
              "create it or pass --pg-dir / --sqlite-dir", "with --stream: newest first",
              "drop the scratch databases (evstore_parity_*)", "update the sums", "BEGIN",
              "Delete our lock row; on failure, drop the ballast"]
    assert [s for s in statements if not is_statement(s)] == []
    assert [s for s in others if is_statement(s)] == []


def test_no_sql_statement_text_in_python() -> None:
    """Outside the identifier-built statements of ALLOWED, every statement evstore runs is a
    named block in sql/queries, sql/catalog or sql/tooling."""
    found, misbuilt, used = [], [], set()
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        where = path.relative_to(PACKAGE.parent)
        for line, text, node, parent in string_constants(source):
            if not is_statement(text):
                continue
            how = ALLOWED.get(text)
            if how is None:
                found.append(f"{where}:{line}: {text[:70]!r}")
                continue
            used.add(text)
            ok = (("psycopg" in how and _is_sql_composition(parent, node))
                  or ("sqlite" in how and _quoted_values_only(node)))
            if not ok:
                misbuilt.append(f"{where}:{line}: {text!r} must be built as {how}")
    assert found == [], ("SQL statement text in Python; move it to a named block of "
                         "sql/<set>/<dialect>.sql:\n" + "\n".join(found))
    assert misbuilt == []
    # An allowance nobody needs any more goes too, so the list stays short and true.
    assert set(ALLOWED) - used == set()


def test_identifiers_are_quoted_by_one_helper() -> None:
    """No hand-made quoting (f'"{name}"', or a second doubled-quote helper): PostgreSQL names
    go through psycopg.sql.Identifier, SQLite's through dialects/sqlite.py's quote_identifier."""
    doubling, pasted = [], []
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "replace"
                    and [getattr(a, "value", None) for a in node.args] == ['"', '""']):
                doubling.append(str(where))
            if isinstance(node, ast.JoinedStr):
                for before, value in zip(node.values, node.values[1:], strict=False):
                    if (isinstance(before, ast.Constant) and str(before.value).endswith('"')
                            and isinstance(value, ast.FormattedValue)):
                        pasted.append(f"{where}:{node.lineno}")
    assert doubling == ["evstore/dialects/sqlite.py"]
    assert pasted == []


# -- the named sets --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", queries.QUERY_SETS)
def test_every_set_loads_described_and_at_parity(kind: queries.QuerySet) -> None:
    for dialect in ("postgres", "sqlite"):
        path = queries.queries_file(dialect, kind=kind)
        header = path.read_text(encoding="utf-8").splitlines()[:3]
        assert header[0].startswith("-- ") and "name:" not in header[0]
        loaded = queries.load(dialect, kind)
        assert loaded and all(q.description and q.text for q in loaded.values())
    assert lint_queries(queries.queries_file("postgres", kind=kind),
                        queries.queries_file("sqlite", kind=kind)) == []


def test_bookkeeping_queries_name_the_tables_the_code_checks_for() -> None:
    """migrations.py decides from these constants which tables exist; the named queries must
    read and write those very tables on both dialects."""
    for dialect in ("postgres", "sqlite"):
        tooling = queries.load(dialect, "tooling")  # type: ignore[arg-type]
        assert migrations.YOYO_MIGRATION_TABLE in tooling["applied_migrations"].text
        assert migrations.YOYO_LOCK_TABLE in tooling["migration_lock_pid"].text
        assert migrations.CHECKSUM_TABLE in tooling["create_checksum_table"].text
        for table, names in migrations._CHECKSUM_QUERIES.items():
            for name in names:
                assert re.search(rf"\b{table}\b", tooling[name].text), (dialect, name)


def _copy(tmp_path: Path) -> list[str]:
    """A copy of sql/ with every set; returns lint's folder options for it."""
    for folder in ("postgres", "sqlite", *queries.QUERY_SETS):
        shutil.copytree(SQL / folder, tmp_path / folder)
    return ["--pg-dir", str(tmp_path / "postgres"), "--sqlite-dir", str(tmp_path / "sqlite")]


@pytest.mark.parametrize("file, old, new, says", [
    ("tooling/sqlite.sql", "-- name: migration_lock_pid\n", "-- name: lock_pid\n",
     "query lock_pid exists for sqlite but not for postgres"),
    ("tooling/postgres.sql", "WHERE migration_id = :id\n\n-- name: insert_checksum",
     "WHERE migration_id = :migration\n\n-- name: insert_checksum",
     "query delete_checksum takes"),
    ("catalog/sqlite.sql", "-- name: sqlite_catalog_columns\n",
     "-- name: postgres_catalog_more\n", "named for postgres but defined for sqlite"),
    ("catalog/postgres.sql", "FROM pg_proc p\n", "FRM pg_proc p\n",
     "cannot parse query postgres_catalog_functions"),
])
def test_lint_checks_the_catalog_and_tooling_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, old: str, new: str, says: str
) -> None:
    dirs, root = _copy(tmp_path), tmp_path
    assert main(["lint", "--no-squawk", *dirs]) == 0
    text = (root / file).read_text()
    assert old in text
    (root / file).write_text(text.replace(old, new, 1))
    capsys.readouterr()
    assert main(["lint", "--no-squawk", "--json", *dirs]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert any(says in f["message"] for f in findings), findings
    assert all(f["file"].startswith(str(root / file.split("/")[0])) for f in findings)


def test_parity_reports_a_tooling_or_catalog_query_on_one_side_only(tmp_path: Path) -> None:
    from evstore.schema.catalog.parity import query_differences

    _copy(tmp_path)
    assert query_differences(tmp_path / "postgres", tmp_path / "sqlite") == []
    path = tmp_path / "tooling" / "postgres.sql"
    path.write_text(path.read_text().replace("-- name: checksums\n", "-- name: checksum_rows\n"))
    path = tmp_path / "catalog" / "sqlite.sql"  # dialect-only names have no counterpart
    path.write_text(path.read_text().replace("-- name: sqlite_catalog_columns\n",
                                             "-- name: sqlite_catalog_columns_2\n"))
    found = {(d.object, d.field, d.postgres, d.sqlite)
             for d in query_differences(tmp_path / "postgres", tmp_path / "sqlite")}
    assert found == {("tooling query checksum_rows", "exists", True, False),
                     ("tooling query checksums", "exists", False, True)}


def test_sqlite_catalog_binds_names_that_need_quoting(tmp_path: Path) -> None:
    """The pragma functions take the table and index names as parameters: a name with a
    quote, a space or a keyword reads like any other."""
    import sqlite3

    from evstore.schema.catalog import sqlite as catalog

    conn = sqlite3.connect(tmp_path / "odd.db")
    conn.executescript('''
        CREATE TABLE "pa""rent" (id INTEGER PRIMARY KEY);
        CREATE TABLE "order by" (
            "se""lect" TEXT NOT NULL, "from" INTEGER REFERENCES "pa""rent" (id),
            CONSTRAINT "uq ""x""" UNIQUE ("se""lect")
        );
        CREATE INDEX "ix ""odd""" ON "order by" ("from" DESC);
    ''')
    schema = catalog.introspect(conn)
    conn.close()
    table = schema.tables["order by"]
    assert [c.name for c in table.columns] == ['se"lect', "from"]
    assert [(u.name, u.columns) for u in table.uniques] == [('uq "x"', ('se"lect',))]
    assert [(f.columns, f.ref_table) for f in table.foreign_keys] == [(("from",), 'pa"rent')]
    index = schema.indexes['ix "odd"']
    assert (index.table, index.columns, index.descending) == ("order by", ("from",), (True,))
