"""Every bad command line gets an evstore error with a remedy, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from evstore.cli import main, shown
from tests.conftest import SQL

CODES = {0, 1, 2, 130}
BIG = [2**63, 2**63 + 1, 2**64, 10**30]
NEGATIVE = [-1, -(2**63), -(10**30)]


def run(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated SQLite database with one event, and copies of both folders."""
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(SQL / "postgres", root / "pg")
    shutil.copytree(SQL / "sqlite", root / "lite")
    db = f"sqlite:///{root}/w.db"
    assert main(["migrate", "--database", db]) == 0
    assert main(["append", "s", "--type", "T", "--database", db]) == 0
    yield {"root": str(root), "db": db, "pg": str(root / "pg"), "lite": str(root / "lite")}


# -- the property ----------------------------------------------------------------------------

nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),  # any code point, lone surrogates included
        st.sampled_from(["\n", "\r", "\x1b", "\x00", "\x7f", "\x85", "\u2028", "\\", "%", "'"]),
    ),
    max_size=30,
)
# Mostly text that passes the up-front NUL/surrogate check, so that examples reach the
# commands themselves; controls, escapes and quotes included.
gentle_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        st.sampled_from(["\n", "\x1b", "\x7f", "\x85", "\u2028", "\\", "%", "'", "-"]),
    ),
    min_size=1, max_size=30,
)
some_text = st.one_of(gentle_text, gentle_text, gentle_text, nasty_text)
nasty_int = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from(BIG + NEGATIVE)
).map(str)
odd_path = st.sampled_from([
    "", ".", "/", "/nonexistent/x.db", "/proc/self/mem", "/dev/null", "a b", "ü.db",
    "\udcff.db", "x\x00y", "../../..", "-", "--", "~", "sqlite:///", "%2F",
])
number_options = ["--after", "--limit", "--from-version", "--count", "--expected-version"]
OPTIONS = {
    "migrate": ["--lock-timeout", "--dry-run", "--json", "--break-lock"],
    "rollback": ["--count", "--to", "--lock-timeout", "--dry-run", "--yes", "--json"],
    "status": ["--json"], "schema": ["--json"], "drift": ["--json"], "sum": ["--json"],
    "lint": ["--json"], "new": ["--json"],
    "parity": ["--dump", "--declared", "--json", "--live", "--sqlite"],
    "grant": ["--schema", "--apply"],
    "append": ["--type", "--data", "--metadata", "--event-id", "--file", "--expected-version",
               "--json"],
    "read": ["--stream", "--from-version", "--after", "--limit", "--types", "--backwards",
             "--json"],
    "tail": ["--after", "--types", "--json"],
}
FLAGS = {"--yes", "--dry-run", "--json", "--break-lock", "--apply", "--backwards", "--live"}


@st.composite
def command_lines(draw: st.DrawFn, world: dict[str, str]) -> list[str]:
    command = draw(st.sampled_from(sorted(OPTIONS)))
    args = [command]
    database = draw(st.one_of(
        st.just(world["db"]), st.just(world["db"]), st.just(world["db"]),
        st.just(f"sqlite:///{world['root']}/missing.db"),
        some_text.map(lambda t: "sqlite:///" + t), some_text,
        st.sampled_from(["postgresql://u:p@/db", "postgresql://u:p#w@h:1/db", "mysql://x/y"]),
    ))
    args += ["--database", database, "--pg-dir", world["pg"], "--sqlite-dir", world["lite"]]
    if command == "tail":
        args += ["--idle-timeout", "0"]
    if command == "lint":
        args.append("--no-squawk")
    if command in {"append", "new"}:
        args.append(draw(some_text))
    if command == "grant":
        args += ["--role", draw(some_text)]
    for _ in range(draw(st.integers(0, 3))):
        option = draw(st.sampled_from(OPTIONS[command]))
        if option in FLAGS:
            args.append(option)
        elif option in number_options:
            args += [option, draw(st.one_of(nasty_int, st.integers(0, 5).map(str)))]
        elif option in {"--file", "--dump", "--declared"}:
            args += [option, draw(st.one_of(odd_path, some_text))]
        else:
            args += [option, draw(st.one_of(some_text, nasty_int))]
    return args


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_command_line_ends_in_a_known_exit_code_without_a_traceback(
    data: st.DataObject, world: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(world["root"])
    for name in ("EVSTORE_DATABASE_URL", "EVSTORE_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    argv = data.draw(command_lines(world))
    code = main(argv)
    err = capsys.readouterr().err
    event(f"{argv[0]} exit {code}")
    assert code in CODES, (argv, err)
    assert "Traceback" not in err, (argv, err)
    assert "bug in evstore" not in err, (argv, err)
    if code == 2:
        assert err.startswith(("evstore: error:", "usage:")), (argv, err)


@pytest.mark.parametrize("option", ["--after", "--limit", "--from-version", "--count",
                                    "--expected-version"])
@pytest.mark.parametrize("value", [str(v) for v in BIG + NEGATIVE])
def test_out_of_range_numbers(world: dict[str, str], capsys: pytest.CaptureFixture[str],
                              option: str, value: str) -> None:
    command = "rollback" if option == "--count" else "append" if "expected" in option else "read"
    extra = ["s", "--type", "T"] if command == "append" else []
    code = main([command, *extra, "--database", world["db"], option, value])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "give a" in err and "Traceback" not in err


# -- files and folders -----------------------------------------------------------------------


def test_file_arguments(tmp_path: Path, world: dict[str, str]) -> None:
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"type": "caf\xe9"}\n')
    cases = {
        str(tmp_path / "missing.jsonl"): "no such file",
        str(tmp_path): "is a folder",
        str(latin1): "is not UTF-8",
    }
    for path, fragment in cases.items():
        result = run("append", "s", "--file", path, "--database", world["db"])
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_unwritable_dump_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    for dump in (blocker, blocker / "below"):
        result = run("parity", "--postgres", "postgresql://u@127.0.0.1:1/db", "--dump",
                     str(dump))
        assert result.returncode == 2 and "--dump" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["foo.sql", "0009_x.SQL", "0009_a b.sql", "0009_caf\u00e9.sql",
                                  "0009_x.py", "notes.rollback.sql"])
def test_odd_migration_file_names(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "lite"
    shutil.copytree(SQL / "sqlite", folder)
    (folder / name).write_text("-- Odd.\nSELECT 1;\n")
    result = run("migrate", "--database", f"sqlite:///{tmp_path}/o.db", "--sqlite-dir",
                 str(folder))
    assert result.returncode == 2, result.stderr
    assert f"'{name}'" in result.stderr and "rename" in result.stderr
    assert not (tmp_path / "o.db").exists()


def test_undecodable_argument_bytes(tmp_path: Path) -> None:
    result = run("read", "--stream", b"caf\xe9", "--database", f"sqlite:///{tmp_path}/u.db")
    assert result.returncode == 2 and "not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_shown_escapes_what_could_forge_a_line() -> None:
    assert shown("a\nb\x1b[0m\u2028\x85\\\udcff") == "a\\nb\\x1b[0m\\u2028\\x85\\\\\\udcff"
    assert shown("plain stream-1 \u00e9") == "plain stream-1 \u00e9"


# -- signals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_and_terminate_print_one_line(
    tmp_path: Path, world: dict[str, str], signum: int, code: int
) -> None:
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "evstore", "append", "s", "--file", str(fifo), "--database",
         world["db"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Opening the writer end returns once evstore has opened the reader end: main() runs.
    with open(fifo, "w") as writer:
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
        del writer
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert out == ""
