"""Database URLs: parsing, dialect choice and password redaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from evstore.errors import InvalidURL

Dialect = Literal["sqlite", "postgres"]

# The dialect is picked from the URL scheme and nothing else.
SCHEMES: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql+psycopg": "postgres",
}

_EXAMPLES = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory: "
    "or postgresql://user:password@host:5432/dbname"
)


def redact(url: str) -> str:
    """The URL with any password replaced by ***; safe to print and log."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed evstore database URL."""

    url: str
    dialect: Dialect
    sqlite_path: str | None = None  # ":memory:" for the in-memory database
    conninfo: str | None = None  # libpq URI for psycopg
    database: str | None = None  # PostgreSQL database name

    @property
    def redacted(self) -> str:
        return redact(self.url)

    @property
    def is_memory(self) -> bool:
        return self.sqlite_path == ":memory:"

    @property
    def yoyo_url(self) -> str:
        """The same database spelled the way yoyo's backends want it."""
        if self.dialect == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        assert self.conninfo is not None
        return "postgresql+psycopg://" + self.conninfo.split("://", 1)[1]

    def with_database(self, name: str) -> DatabaseURL:
        """The same PostgreSQL server, another database."""
        if self.dialect != "postgres":
            raise InvalidURL("only a PostgreSQL URL names a server with other databases")
        parts = urlsplit(self.url)
        return parse_url(urlunsplit(parts._replace(path="/" + name)))


def parse_url(url: str) -> DatabaseURL:
    """Parse a database URL, raising InvalidURL with an example of a good one."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL(f"empty database URL; give one like {_EXAMPLES}")
    try:
        parts = urlsplit(url)
        port = parts.port  # validates the port
    except ValueError as e:
        raise InvalidURL(
            f"malformed database URL {redact(url)!r} ({e}); give one like {_EXAMPLES}"
        ) from e
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidURL(f"database URL {redact(url)!r} has no scheme; give one like {_EXAMPLES}")
    dialect = SCHEMES.get(scheme)
    if dialect is None:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidURL(
            f"unknown database URL scheme {parts.scheme!r} in {redact(url)!r}; "
            f"evstore knows {known}"
        )
    if dialect == "sqlite":
        if parts.netloc:
            raise InvalidURL(
                f"malformed SQLite URL {url!r}: a SQLite URL has no host; write "
                f"sqlite:///{parts.netloc}{parts.path} for a relative path or "
                f"sqlite:////{parts.netloc}{parts.path} for an absolute one"
            )
        path = parts.path.removeprefix("/")
        if not path:
            raise InvalidURL(f"SQLite URL {url!r} names no file; give one like {_EXAMPLES}")
        return DatabaseURL(url=url, dialect="sqlite", sqlite_path=path)
    database = parts.path.lstrip("/")
    if not parts.hostname and "host=" not in parts.query:
        raise InvalidURL(
            f"PostgreSQL URL {redact(url)!r} names no host; give one like {_EXAMPLES}"
        )
    if not database:
        raise InvalidURL(
            f"PostgreSQL URL {redact(url)!r} names no database; give one like {_EXAMPLES}"
        )
    del port
    conninfo = urlunsplit(parts._replace(scheme="postgresql"))
    return DatabaseURL(url=url, dialect="postgres", conninfo=conninfo, database=database)
