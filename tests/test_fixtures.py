"""The test suite's own URL handling: any EVSTORE_TEST_PG_DSN must work, whatever it carries."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from evstore.urls import parse_url
from tests.conftest import role_url

PASSWORD = "p@ss:w/rd#1?"


@pytest.mark.parametrize("dsn, host, port, dbname", [
    ("postgresql://postgres@127.0.0.1:5432/postgres", "127.0.0.1", "5432", "postgres"),
    ("postgresql://evstore_ci:p%40ss%3Aw%2Frd%231%3F@127.0.0.1:5432/evstore_alt",
     "127.0.0.1", "5432", "evstore_alt"),
    ("postgresql://postgres@/postgres?host=/var/run/postgresql", "/var/run/postgresql", None,
     "postgres"),
    ("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/postgres", "/var/run/postgresql", None,
     "postgres"),
    ("postgresql://u:pw@[::1]:6543/db?sslmode=disable", "::1", "6543", "db"),
])
def test_role_url_keeps_everything_but_the_login(dsn: str, host: str, port: str | None,
                                                  dbname: str) -> None:
    for password in (None, PASSWORD):
        url = role_url(dsn, "app role", password)
        conninfo = parse_url(url).conninfo
        assert conninfo is not None
        params = conninfo_to_dict(conninfo)
        assert params["user"] == "app role"
        assert params.get("password") == password
        assert (params["host"], params.get("port"), params["dbname"]) == (host, port, dbname)
        assert "p%40ss" not in parse_url(url).redacted and "pw@" not in parse_url(url).redacted
