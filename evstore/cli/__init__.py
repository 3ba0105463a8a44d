"""The evstore command line.

Exit codes: 0 success (parity/drift: schemas equal; lint: no findings); 1 differences,
findings, or an operation refused (failed migration, changed applied migration, wrong
expected version); 2 usage or connection error (bad URL, unreachable server, missing folder,
held migration lock, a destructive command without --yes); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM).

Every error is printed in one place, main(), with the passwords of every URL given scrubbed
out; human output escapes control characters so a stream id cannot forge output lines."""


from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import evstore
from evstore import config, errors
from evstore.cli import copy, events, migrations, operations, relay, schema
from evstore.cli.common import (
    EXIT_CODES,
    EXIT_DIFFERENT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    UsageError,
    check_text,
    option_groups,
    shown,
)
from evstore.urls import scrub

__all__ = ["build_parser", "main", "shown"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evstore", description="Hand-written SQL migrations for PostgreSQL and SQLite, "
        "proven at parity, and the append-only event store they define.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"evstore {evstore.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, *groups: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=list(groups), help=help_, description=help_,
                              epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    options = option_groups()
    for group in (migrations, schema, events, operations, copy, relay):
        group.register(add, options)
    return parser


_USAGE_ERRORS = (
    UsageError, config.ConfigError, errors.InvalidURL, errors.ConnectionFailed,
    errors.MigrationsNotFound,
    errors.MigrationLocked, errors.UnknownMigration, errors.InvalidInput,
    errors.BadMigrationName, errors.ConfirmationRequired, errors.CopyRefused,
)


def _urls_given(argv: Sequence[str]) -> list[str | None]:
    """Every URL this run may print a piece of: their passwords are scrubbed from errors."""
    return [*argv, os.environ.get("EVSTORE_DATABASE_URL"), os.environ.get("EVSTORE_PG_URL")]


def _fail(message: str, sources: Sequence[str | None]) -> None:
    """The one place errors are printed: passwords scrubbed, controls escaped (but the
    message's own line breaks kept)."""
    text = scrub(message, *sources)
    print("evstore: error: " + "\n".join(shown(line) for line in text.split("\n")),
          file=sys.stderr)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated, so that finally blocks (a parity run's scratch databases,
    yoyo's lock) run as they do on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sources = _urls_given(argv)
    parser = build_parser()
    try:
        with _sigterm_raises():
            try:
                for number, arg in enumerate(argv, 1):
                    check_text(arg, f"argument {number}")
                args = parser.parse_args(argv)
            except SystemExit as e:  # --help, --version, or argparse's own usage error
                return e.code if isinstance(e.code, int) else EXIT_USAGE
            except UsageError as e:
                _fail(str(e), sources)
                return EXIT_USAGE
            return _run(args, sources)
    except KeyboardInterrupt:
        print("evstore: interrupted; nothing more was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("evstore: terminated (SIGTERM); nothing more was done", file=sys.stderr)
        return EXIT_TERMINATED


def _run(args: argparse.Namespace, sources: Sequence[str | None]) -> int:
    try:
        return int(args.func(args))
    except _USAGE_ERRORS as e:
        _fail(str(e), sources)
        return EXIT_USAGE
    except errors.EvstoreError as e:
        _fail(str(e), sources)
        return EXIT_DIFFERENT
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        # A bug, or a library error evstore does not translate yet: one scrubbed line, and
        # the (scrubbed) traceback only when asked for.
        if os.environ.get("EVSTORE_DEBUG"):
            import traceback

            print(scrub("".join(traceback.format_exception(e)), *sources), file=sys.stderr)
        _fail(f"unexpected {type(e).__name__}: {e}. This is a bug in evstore; please report "
              "it (set EVSTORE_DEBUG=1 to print the traceback)", sources)
        return EXIT_DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
