"""Database URLs: parsing, dialect choice, and keeping passwords out of every printed text."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    unquote_plus,
    urlencode,
    urlsplit,
    urlunsplit,
)

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
_PERCENT_HINT = (
    "percent-encode the characters # / ? @ : % in a password (%23 %2F %3F %40 %3A %25), "
    "or pass it as ?password=... or in PGPASSWORD"
)
HIDDEN = "***"

# `password=VALUE` in a query string or a key=value conninfo string; VALUE may be quoted.
_PASSWORD_SETTING = re.compile(
    r"""(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^\s&;'"]*)"""
)
# The userinfo of any URL in a text: scheme://user:PASSWORD@ (up to the last @ of the word).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(\S*)@")


def secrets_of(text: str | None) -> set[str]:
    """Every spelling of every password that a database URL or conninfo string may carry.

    Generous on purpose: each '@' of the URL is tried as the end of the userinfo (libpq stops
    at the first one, urllib at the last), and both the raw and the percent-decoded forms are
    kept, so the password is found however a library reprints it."""
    found: set[str] = set()
    if not text:
        return found
    rest = text.split("://", 1)[1] if "://" in text else ""
    ats = [i for i, c in enumerate(rest) if c == "@"]
    for at in ats:
        userinfo = rest[:at]
        if ":" in userinfo:
            candidate = userinfo.split(":", 1)[1]
            # The last '@' gives the password evstore uses; shorter readings of the other
            # '@'s are kept only when long enough not to blank out every "p" of a message.
            if at == ats[-1] or len(candidate) >= 4:
                found.add(candidate)
    for m in _PASSWORD_SETTING.finditer(text):
        value = m.group(2)
        found.add(value)
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            found |= {value[1:-1], re.sub(r"\\(.)", r"\1", value[1:-1])}
    for value in list(found):
        found |= {unquote(value), unquote_plus(value), quote(value, safe=""), quote(value)}
    found.discard("")
    return found


def scrub(text: str, *sources: str | None) -> str:
    """`text` with the passwords of the given URLs (and of $PGPASSWORD) replaced by ***, and
    any password that looks like one (`password=...`, `scheme://user:...@`) hidden as well.

    Use it on anything printed or raised that may echo a URL or a driver's error text."""
    known: set[str] = set()
    for source in sources:
        known |= secrets_of(source)
    env_password = os.environ.get("PGPASSWORD")
    if env_password:
        known |= {env_password, quote(env_password, safe=""), quote(env_password)}
    text = _PASSWORD_SETTING.sub(lambda m: m.group(1) + HIDDEN, text)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + HIDDEN + "@", text)
    # A password echoed anywhere else (a driver's "invalid percent-encoded token" or host name
    # error) goes too: readability loses to secrecy when a password is a common word.
    for secret in sorted(known - {HIDDEN}, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def redact(url: str) -> str:
    """The URL with any password replaced by ***; safe to print and log."""
    return scrub(url, url)


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed evstore database URL. Its repr hides the password."""

    url: str = field(repr=False)
    dialect: Dialect
    sqlite_path: str | None = None  # ":memory:" for the in-memory database
    conninfo: str | None = field(default=None, repr=False)  # libpq URI for psycopg
    database: str | None = None  # PostgreSQL database name

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted!r})"

    @property
    def redacted(self) -> str:
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """`text` without this URL's password; for driver error texts."""
        return scrub(text, self.url, self.conninfo)

    @property
    def is_memory(self) -> bool:
        return self.sqlite_path == ":memory:"

    @property
    def yoyo_url(self) -> str:
        """The same database spelled the way yoyo's backends want it.

        yoyo's parse_uri lower-cases the host and does not decode it, so a socket folder
        (%2Fvar%2Frun%2Fpostgresql) would become a host name. Host and port therefore travel
        as query parameters, which yoyo hands to psycopg.connect as keyword arguments."""
        if self.dialect == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        assert self.conninfo is not None
        parts = urlsplit(self.conninfo)
        user, password, host, port = _credentials_and_host(parts)
        args = dict(parse_qsl(parts.query, keep_blank_values=True))
        if host:
            args.setdefault("host", host)
        if port:
            args.setdefault("port", port)
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        return urlunsplit(("postgresql+psycopg", userinfo, parts.path, urlencode(args), ""))

    def with_database(self, name: str) -> DatabaseURL:
        """The same PostgreSQL server, another database."""
        if self.dialect != "postgres":
            raise InvalidURL("only a PostgreSQL URL names a server with other databases")
        parts = urlsplit(self.url)
        return parse_url(urlunsplit(parts._replace(path="/" + name)))


def _credentials_and_host(
    parts: SplitResult,
) -> tuple[str | None, str | None, str | None, str | None]:
    """(user, password, host, port) of a split URL, decoded; the host keeps its case."""
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        user, password = unquote(name), (unquote(secret) if colon else None)
    port = None
    if hostport.startswith("["):  # [IPv6]:port
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] or None
    elif ":" in hostport:
        host, _, port = hostport.rpartition(":")
    else:
        host = hostport
    return user, password, unquote(host) or None, port or None


def parse_url(url: str) -> DatabaseURL:
    """Parse a database URL, raising InvalidURL with an example of a good one."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidURL(f"empty database URL; give one like {_EXAMPLES}")
    try:
        parts = urlsplit(url)
        port = parts.port  # validates the port
    except ValueError as e:
        raise InvalidURL(
            # urllib's own message quotes the text it took for a port, which may be part of
            # a password, so it is not repeated.
            f"malformed database URL {redact(url)!r}: its host or port part is not valid; "
            f"give one like {_EXAMPLES}; {_PERCENT_HINT}"
        ) from e
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidURL(f"database URL {redact(url)!r} has no scheme; give one like {_EXAMPLES}")
    dialect = SCHEMES.get(scheme)
    if dialect is None:
        known = ", ".join(sorted(SCHEMES))
        raise InvalidURL(
            f"unknown database URL scheme {scheme!r} in {redact(url)!r}; "
            f"evstore knows {known}"
        )
    if dialect == "sqlite":
        if parts.netloc:
            raise InvalidURL(
                f"malformed SQLite URL {redact(url)!r}: a SQLite URL has no host; write "
                f"sqlite:///{parts.netloc}{parts.path} for a relative path or "
                f"sqlite:////{parts.netloc}{parts.path} for an absolute one"
            )
        path = parts.path.removeprefix("/")
        if not path:
            raise InvalidURL(f"SQLite URL {url!r} names no file; give one like {_EXAMPLES}")
        return DatabaseURL(url=url, dialect="sqlite", sqlite_path=path)
    if parts.fragment:
        raise InvalidURL(
            f"PostgreSQL URL {redact(url)!r} has a '#' in it; {_PERCENT_HINT}"
        )
    database = parts.path.lstrip("/")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if not parts.hostname and "host" not in query:
        raise InvalidURL(
            f"PostgreSQL URL {redact(url)!r} names no host; give one like {_EXAMPLES}, or "
            "postgresql://user@/dbname?host=/var/run/postgresql for a Unix socket; "
            f"{_PERCENT_HINT}"
        )
    if not database:
        raise InvalidURL(
            f"PostgreSQL URL {redact(url)!r} names no database; give one like {_EXAMPLES}"
        )
    del port
    # libpq ends the userinfo at the first '@', urllib at the last: spell the credentials
    # percent-encoded so both read the same password.
    user, password, _host, _port = _credentials_and_host(parts)
    hostport = parts.netloc.rpartition("@")[2]
    userinfo = ""
    if user is not None:
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    conninfo = urlunsplit(parts._replace(scheme="postgresql", netloc=userinfo + hostport))
    return DatabaseURL(url=url, dialect="postgres", conninfo=conninfo, database=database)
