"""`evstore lint`: static checks of both migration folders, before anything runs."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlparse

from evstore.dialects import queries
from evstore.schema import sumfile

DIRECTIVES = ("depends", "transactional")
_DIRECTIVE_LIKE = re.compile(r"^\s*--\s*([A-Za-z_][\w-]*)\s*:")


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int
    rule: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.rule}] {self.message}\n    fix: {self.fix}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _leading_block(text: str) -> list[tuple[int, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == "" or line.lstrip().startswith("--"):
            out.append((number, line))
        else:
            break
    return out


def _line_of(text: str, fragment: str) -> int:
    index = text.find(fragment.strip()[:40])
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _normalized(statement: str) -> str:
    stripped = sqlparse.format(statement, strip_comments=True).strip().rstrip(";").strip()
    return " ".join(stripped.split())


def sqlite_split(text: str) -> list[str]:
    """SQLite's own idea of where statements end: sqlite3.complete_statement, line by line."""
    statements, buffer = [], ""
    for line in text.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    if buffer.strip() and _normalized(buffer):
        statements.append(buffer)
    return [s for s in statements if _normalized(s)]


def postgres_split(text: str) -> list[str] | None:
    """PostgreSQL's own parser's split (pglast), or None when pglast is not installed."""
    try:
        import pglast
        import pglast.parser
    except ImportError:
        return None
    try:
        return [s for s in pglast.split(text) if _normalized(s)]
    except pglast.parser.ParseError:
        return None  # reported by the postgres-parse rule


def _check_file(path: Path, dialect: str) -> list[Finding]:
    findings: list[Finding] = []
    text = path.read_text(encoding="utf-8")
    name = str(path)
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if not re.match(r"^--\s*\S", first) or _DIRECTIVE_LIKE.match(first):
        findings.append(Finding(name, 1, "header-comment", "the file does not open with a "
                                "one-line comment saying what it does",
                                "start the file with `-- <what this migration does>`"))
    transactional = True
    for number, line in _leading_block(text):
        m = _DIRECTIVE_LIKE.match(line)
        if m and m.group(1) not in DIRECTIVES:
            findings.append(Finding(name, number, "unknown-directive",
                                    f"`{m.group(1)}:` in the leading comment looks like a yoyo "
                                    "directive, but yoyo knows only depends and transactional",
                                    "reword the comment, or use `-- depends:` / "
                                    "`-- transactional: false`"))
        if m and m.group(1) == "transactional":
            transactional = line.split(":", 1)[1].strip().lower() != "false"
    yoyo_statements = [s for s in sqlparse.split(text) if _normalized(s)]
    own = sqlite_split(text) if dialect == "sqlite" else postgres_split(text)
    if own is not None and [_normalized(s) for s in own] != [
        _normalized(s) for s in yoyo_statements
    ]:
        at = 1
        for a, b in zip(own, yoyo_statements, strict=False):
            if _normalized(a) != _normalized(b):
                at = _line_of(text, b)
                break
        findings.append(Finding(
            name, at, "statement-split",
            f"yoyo (sqlparse) splits this file into {len(yoyo_statements)} statement(s), "
            f"{'SQLite' if dialect == 'sqlite' else 'PostgreSQL'} into {len(own)}",
            "a string literal ending in a backslash or an unusual quote confuses sqlparse: "
            "rewrite the literal (for example with chr(92)) or move the statement to its own "
            "migration",
        ))
    if dialect == "postgres":
        try:
            import pglast
            import pglast.parser
        except ImportError:
            pass
        else:
            try:
                pglast.parse_sql(text)
            except pglast.parser.ParseError as e:
                location = getattr(e, "location", None)
                at = text.count("\n", 0, location) + 1 if isinstance(location, int) else 1
                findings.append(Finding(name, at, "postgres-parse", f"PostgreSQL cannot "
                                        f"parse this file: {e}", "fix the SQL syntax"))
        for statement in yoyo_statements:
            if re.search(r"\bCONCURRENTLY\b", _normalized(statement), re.IGNORECASE) and (
                transactional or len(yoyo_statements) != 1
            ):
                findings.append(Finding(
                    name, _line_of(text, statement), "concurrently",
                    "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction",
                    "put it alone in its own migration whose header has "
                    "`-- transactional: false`",
                ))
    return findings


def lint(pg_dir: Path, sqlite_dir: Path, *, squawk: bool = True) -> list[Finding]:
    """Every finding for both folders, sorted by file and line."""
    findings: list[Finding] = []
    folders = {"postgres": Path(pg_dir), "sqlite": Path(sqlite_dir)}
    ids: dict[str, set[str]] = {}
    for dialect, folder in folders.items():
        if not folder.is_dir():
            findings.append(Finding(str(folder), 0, "folder-missing", "folder does not exist",
                                    "create it or pass --pg-dir / --sqlite-dir"))
            continue
        forward = sorted(
            p for p in folder.glob("*.sql") if not p.name.endswith(".rollback.sql")
        )
        ids[dialect] = {p.name[:-4] for p in forward}
        for path in forward:
            findings += _check_file(path, dialect)
            rollback = path.with_name(path.name[:-4] + ".rollback.sql")
            if not rollback.exists():
                findings.append(Finding(str(path), 1, "rollback-missing",
                                        "no rollback file: yoyo would 'roll back' silently "
                                        "by doing nothing",
                                        f"add {rollback.name} that undoes this migration"))
            else:
                findings += _check_file(rollback, dialect)
        for orphan in sorted(folder.glob("*.rollback.sql")):
            if orphan.name[: -len(".rollback.sql")] not in ids[dialect]:
                findings.append(Finding(str(orphan), 1, "rollback-orphan",
                                        "rollback file without a forward migration",
                                        "rename it to match its migration or remove it"))
        for problem in sumfile.verify(folder):
            findings.append(Finding(problem.file, problem.line, "checksum", problem.message,
                                    "if the change is intended and not yet applied anywhere, "
                                    "run `evstore sum`; otherwise restore the file"))
    if "postgres" in ids and "sqlite" in ids:
        for mid in sorted(ids["postgres"] ^ ids["sqlite"]):
            present, missing = ("postgres", "sqlite") if mid in ids["postgres"] else (
                "sqlite", "postgres")
            findings.append(Finding(str(folders[present] / f"{mid}.sql"), 1, "ids-match",
                                    f"migration {mid} exists for {present} but not for {missing}",
                                    f"add {mid}.sql (and its rollback) to {folders[missing]}, "
                                    "`evstore new` creates both sides"))
    for kind in queries.QUERY_SETS:
        findings += lint_queries(*query_files(pg_dir, sqlite_dir, kind))
    if squawk and shutil.which("squawk") and folders["postgres"].is_dir():
        findings += _squawk(folders["postgres"])
    return sorted(findings)


def _squawk(folder: Path) -> list[Finding]:
    files = [str(p) for p in sorted(folder.glob("*.sql")) if not p.name.endswith(".rollback.sql")]
    proc = subprocess.run(["squawk", "--reporter", "json", *files], capture_output=True,
                          text=True)
    try:
        reports = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return [Finding(str(folder), 0, "squawk", "squawk output was not JSON: "
                        + (proc.stderr or proc.stdout)[:200], "run squawk by hand")]
    findings = []
    for r in reports if isinstance(reports, list) else []:
        findings.append(Finding(str(r.get("file", folder)), int(r.get("line", 0)) + 1,
                                f"squawk:{r.get('rule_name', '?')}", str(r.get("message", "")),
                                "; ".join(str(h) for h in r.get("messages", [])) or
                                "see squawk's documentation for the rule"))
    return findings


# -- the named queries (sql/queries, sql/catalog, sql/tooling) ----------------------------------


def query_files(
    pg_dir: Path, sqlite_dir: Path, kind: queries.QuerySet = "queries"
) -> tuple[Path, Path]:
    """sql/<kind>/<dialect>.sql beside the migration folders when there, else the shipped."""
    pg = Path(pg_dir).parent / kind / "postgres.sql"
    lite = Path(sqlite_dir).parent / kind / "sqlite.sql"
    return (pg if pg.is_file() else queries.queries_file("postgres", kind=kind),
            lite if lite.is_file() else queries.queries_file("sqlite", kind=kind))


def lint_queries(pg_file: Path, sqlite_file: Path) -> list[Finding]:
    """queries-match: both files of one set (sql/queries, sql/catalog or sql/tooling) hold the
    same names with the same parameters, each block with a description; a postgres_/sqlite_
    name only in its own dialect's file.
    queries-parse: PostgreSQL's parser (pglast, when installed) accepts every query."""
    findings: list[Finding] = []
    parsed: dict[str, dict[str, queries.Query]] = {}
    files = {"postgres": Path(pg_file), "sqlite": Path(sqlite_file)}
    for dialect, path in files.items():
        if not path.is_file():
            findings.append(Finding(str(path), 0, "queries-match", "file of named queries "
                                    "does not exist",
                                    f"create it: sql/{path.parent.name}/{dialect}.sql"))
            continue
        text = path.read_text(encoding="utf-8")
        first = (text.splitlines() or [""])[0]
        if not re.match(r"^--\s*\S", first) or queries.NAME_LINE.match(first):
            findings.append(Finding(str(path), 1, "queries-match", "the file does not open with "
                                    "a one-line comment saying what it is",
                                    "start it with `-- <what this file holds>`"))
        seen: set[str] = set()
        for number, line in enumerate(text.splitlines(), 1):
            m = queries.NAME_LINE.match(line)
            if m and m.group(1) in seen:
                findings.append(Finding(str(path), number, "queries-match",
                                        f"query {m.group(1)} is defined twice",
                                        "rename or remove one of the blocks"))
            elif m:
                seen.add(m.group(1))
        parsed[dialect] = queries.parse(text, dialect)  # type: ignore[arg-type]
        for q in parsed[dialect].values():
            if not q.description:
                findings.append(Finding(str(path), q.line, "queries-match",
                                        f"query {q.name} has no description line",
                                        "add `-- <what it does>` right after `-- name:`"))
            if not q.text:
                findings.append(Finding(str(path), q.line, "queries-match",
                                        f"query {q.name} has no SQL", "write the statement"))
            other = "sqlite" if dialect == "postgres" else "postgres"
            if q.name.startswith(other + "_"):
                findings.append(Finding(str(path), q.line, "queries-match",
                                        f"query {q.name} is named for {other} but defined for "
                                        f"{dialect}", f"move it to {other}.sql or rename it"))
        if dialect == "postgres":
            findings += _parse_queries(path, parsed[dialect])
    if len(parsed) == 2:
        pg, lite = parsed["postgres"], parsed["sqlite"]
        for name in sorted(set(pg) | set(lite)):
            if name.startswith(queries.DIALECT_ONLY):
                continue
            if name not in pg or name not in lite:
                present, missing = ("postgres", "sqlite") if name in pg else ("sqlite",
                                                                            "postgres")
                q = parsed[present][name]
                findings.append(Finding(str(files[present]), q.line, "queries-match",
                                        f"query {name} exists for {present} but not for "
                                        f"{missing}", f"add it to {files[missing]}, or prefix "
                                        f"its name with {present}_ if only {present} runs it"))
            elif set(pg[name].params) != set(lite[name].params):
                findings.append(Finding(str(files["sqlite"]), lite[name].line, "queries-match",
                                        f"query {name} takes {sorted(pg[name].params)} on "
                                        f"postgres but {sorted(lite[name].params)} on sqlite",
                                        "use the same parameter names in both files"))
    return findings


def _parse_queries(path: Path, parsed: dict[str, queries.Query]) -> list[Finding]:
    try:
        import pglast
        import pglast.parser
    except ImportError:
        return []
    findings = []
    for q in parsed.values():
        try:
            pglast.parse_sql(queries.numbered(q))
        except pglast.parser.ParseError as e:
            findings.append(Finding(str(path), q.line, "queries-parse", f"PostgreSQL cannot "
                                    f"parse query {q.name}: {e}", "fix the SQL syntax"))
    return findings
