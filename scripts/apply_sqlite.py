"""Apply evstore's SQLite migrations on a machine with only Python: reads DB_URL
(default sqlite:///./dev.db) and runs them through yoyo, via evstore."""

from __future__ import annotations

import argparse
import os
import sys

import evstore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", default=os.environ.get("DB_URL", "sqlite:///./dev.db"),
                        help="SQLite URL (default: $DB_URL or sqlite:///./dev.db)")
    args = parser.parse_args()
    try:
        with evstore.connect(args.database) as store:
            if store.dialect != "sqlite":
                print("apply_sqlite.py applies the SQLite folder; use `evstore migrate` for "
                      "PostgreSQL", file=sys.stderr)
                return 2
            applied = store.migrate()
    except evstore.EvstoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s) to {store.url.redacted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
