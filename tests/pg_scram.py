"""A throwaway PostgreSQL server that asks TCP clients for a SCRAM password.

Local (Unix socket) connections are trusted, so the tests can create roles through the socket
and then fail to log in over TCP with the wrong password."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.pg_server import _bindir, _free_port, _has_user

HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
"""


@dataclass(frozen=True)
class ScramServer:
    port: int
    socket_dir: str

    def socket_conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"


@contextlib.contextmanager
def scram_server() -> Iterator[ScramServer]:
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) found")
    workdir = Path(tempfile.mkdtemp(prefix="evstore-scram-"))
    data, sock = workdir / "data", workdir / "sock"
    sock.mkdir()
    preexec = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres" if _has_user("postgres") else "nobody")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        os.chown(sock, user.pw_uid, user.pw_gid)

        def preexec() -> None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
        check=True, capture_output=True, preexec_fn=preexec, env=env, cwd=workdir,
    )
    hba = data / "pg_hba.conf"
    subprocess.run(["/bin/sh", "-c", f"printf '%s' '{HBA}' > {hba}"], check=True,
                   preexec_fn=preexec, cwd=workdir)
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-w", "-o",
         f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
         "-c password_encryption=scram-sha-256", "start"],
        check=True, capture_output=True, preexec_fn=preexec, env=env, cwd=workdir,
    )
    try:
        yield ScramServer(port, str(sock))
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, preexec_fn=preexec, env=env, cwd=workdir,
        )
        shutil.rmtree(workdir, ignore_errors=True)
