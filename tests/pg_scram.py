"""A throwaway PostgreSQL server that asks TCP clients for a SCRAM password.

Local (Unix socket) connections are trusted, so the tests can create roles through the socket
and then fail to log in over TCP with the wrong password."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.pg_server import LocalServer, local_server

HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
"""


ScramServer = LocalServer


@contextlib.contextmanager
def scram_server() -> Iterator[LocalServer]:
    with local_server(HBA, ["password_encryption=scram-sha-256"]) as server:
        yield server
