"""No password reaches any output: URLs, driver errors, and real failed logins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

import evstore
from evstore.urls import parse_url, redact, scrub
from tests.conftest import IN_CI
from tests.pg_scram import ScramServer, scram_server
from tests.pg_server import _free_port

SECRET = "Se#c/r?e@t:1%x9"  # every character a URL treats specially, and a bad %-escape
WRONG = "Wr#ng/p?ss@w:0%zz"
ROLE = "evstore_secret_role"


def _leaks(text: str, *secrets: str) -> list[str]:
    """Every spelling of each secret, and distinctive pieces of it, found in text."""
    found = []
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote(secret), secret[:4], secret[-6:]):
            if form in text:
                found.append(form)
    return found


# -- the scrubbing itself --------------------------------------------------------------------

SPELLINGS = [
    f"postgresql://u:{quote(SECRET, safe='')}@db.example:5432/app",  # percent-encoded
    f"postgresql://u:{SECRET}@db.example:5432/app",  # raw: urllib and libpq disagree
    "postgresql://u:p@ss:w@rd@db.example/app",  # raw @ and :
    f"postgresql://u@db.example/app?sslmode=require&password={quote(SECRET, safe='')}",
    "postgresql://u@db.example/app?password=plain-secret-1",
    "host=db.example user=u password=plain-secret-1 dbname=app",
    "host=db.example user=u password = 'quoted secret\\'s' dbname=app",
    "postgres://u:plain-secret-1@[::1]:5432/app",
]


@pytest.mark.parametrize("url", SPELLINGS)
def test_redact_and_scrub_hide_every_spelling(url: str) -> None:
    secrets = [SECRET, "plain-secret-1", "p@ss:w@rd", "quoted secret\\'s", "quoted secret's"]
    present = [s for s in secrets if s in url or quote(s, safe="") in url]
    assert present, url
    assert _leaks(redact(url), *present) == []
    # A driver's error text that echoes the password in any spelling.
    for secret in present:
        for echoed in (secret, quote(secret, safe="")):
            error = f'invalid percent-encoded token: "{echoed}" in {url}'
            assert _leaks(scrub(error, url), *present) == [], error


def test_parsed_url_never_shows_its_password() -> None:
    url = parse_url(f"postgresql://u:{quote(SECRET, safe='')}@h/db")
    assert SECRET not in repr(url) and quote(SECRET, safe="") not in repr(url)
    assert url.conninfo is not None and "%40" in url.conninfo  # still usable by libpq


def test_pgpassword_is_scrubbed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "env-secret-42")
    assert "env-secret-42" not in scrub("login failed with env-secret-42")


@pytest.mark.parametrize("url", SPELLINGS[:3] + SPELLINGS[5:6])
def test_cli_errors_of_malformed_urls_hide_the_password(url: str) -> None:
    from tests.test_cli import run

    result = run("status", "--database", url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert _leaks(result.stdout + result.stderr, SECRET, "plain-secret-1", "p@ss:w@rd") == []


# -- real failures against a server that asks for a SCRAM password ---------------------------


@pytest.fixture(scope="module")
def scram() -> Iterator[ScramServer]:
    try:
        with scram_server() as server:
            with psycopg.connect(server.socket_conninfo(), autocommit=True) as conn:
                conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    psycopg.sql.Identifier(ROLE), psycopg.sql.Literal(SECRET)))
                conn.execute(f'CREATE DATABASE app OWNER "{ROLE}"')
                conn.execute('CREATE ROLE "evstore_app" LOGIN')
            yield server
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        if IN_CI:
            pytest.fail(f"CI=true and no throwaway PostgreSQL server: {e}", pytrace=False)
        pytest.skip(f"no throwaway PostgreSQL server: {e}")


def _url(port: int, db: str, password: str, spelling: str) -> str:
    netloc = f"127.0.0.1:{port}"
    if spelling == "userinfo":
        return urlunsplit(("postgresql", f"{ROLE}:{quote(password, safe='')}@{netloc}",
                           f"/{db}", "", ""))
    return urlunsplit(("postgresql", f"{ROLE}@{netloc}", f"/{db}",
                       f"password={quote(password, safe='')}", ""))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def _command(name: str, url: str) -> list[str]:
    if name == "parity":
        return ["parity", "--postgres", url]
    if name == "grant":
        return ["grant", "--role", "evstore_app", "--database", url]
    return [name, "--database", url]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("spelling", ["userinfo", "query"])
def test_real_login_failures_print_no_secret(scram: ScramServer, spelling: str) -> None:
    failures = {
        "wrong password": _url(scram.port, "app", WRONG, spelling),
        "wrong database": _url(scram.port, "no_such_db", SECRET, spelling),
        "unreachable port": _url(_free_port(), "app", SECRET, spelling),
    }
    for what, url in failures.items():
        for name in ("migrate", "status", "read", "parity", "grant"):
            result = _cli(*_command(name, url))
            out = result.stdout + result.stderr
            assert result.returncode == 2, (what, name, out)
            assert "Traceback" not in out, (what, name, out)
            assert _leaks(out, SECRET, WRONG) == [], (what, name, out)
    # The same URL in the environment instead of on the command line.
    result = _cli("status", env={"EVSTORE_DATABASE_URL": failures["wrong password"]})
    assert result.returncode == 2 and _leaks(result.stderr, SECRET, WRONG) == []


@pytest.mark.postgres
@pytest.mark.parametrize("spelling", ["userinfo", "query"])
def test_the_right_password_works_in_both_spellings(scram: ScramServer, spelling: str) -> None:
    with psycopg.connect(scram.socket_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "app_{spelling}" OWNER "{ROLE}"')
    url = _url(scram.port, f"app_{spelling}", SECRET, spelling)
    for args in (["migrate", "--json"], ["status"], ["append", "s", "--type", "T"], ["read"]):
        result = _cli(*args, "--database", url)
        assert result.returncode == 0, result.stderr
        assert _leaks(result.stdout + result.stderr, SECRET) == []
    with evstore.connect(url) as store:
        assert [e.type for e in store.read_all()] == ["T"]


@pytest.mark.postgres
def test_library_errors_and_conninfo_strings_hide_the_password(scram: ScramServer) -> None:
    url = _url(scram.port, "app", WRONG, "userinfo")
    with pytest.raises(evstore.ConnectionFailed) as caught:
        evstore.connect(url)
    assert _leaks(str(caught.value), WRONG) == []
    conninfo = f"host=127.0.0.1 port={scram.port} user={ROLE} password='{WRONG}' dbname=app"
    result = _cli("migrate", "--database", conninfo)
    assert result.returncode == 2 and _leaks(result.stdout + result.stderr, WRONG) == []
    raw = f"postgresql://{ROLE}:{SECRET}@127.0.0.1:{scram.port}/app"  # unencoded on purpose
    result = _cli("migrate", "--database", raw)
    assert result.returncode == 2 and _leaks(result.stdout + result.stderr, SECRET) == []


def test_urls_are_built_by_parsing_not_replacing() -> None:
    """The helper above puts the password where libpq reads it, whatever the characters."""
    split = urlsplit(_url(5432, "app", SECRET, "userinfo"))
    assert split.password is not None and split.hostname == "127.0.0.1"
    assert Path(split.path).name == "app"
