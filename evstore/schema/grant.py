"""`evstore grant`: least-privilege PostgreSQL grants for an application role."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from evstore.dialects import queries
from evstore.errors import RefusedRole

# What readers, projections, checkpoints and snapshots need; nothing more. The log and the
# stream heads are read-only to the role: it appends only through evstore_append() (migration
# 0010), which runs with its owner's rights and enforces every rule of an append. No table
# gets ownership, so the role cannot run DDL or disable the append-only triggers (ALTER TABLE
# needs ownership).
TABLE_PRIVILEGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event_store", ("SELECT",)),
    ("stream", ("SELECT",)),
    ("subscription", ("SELECT", "INSERT", "UPDATE")),
    ("snapshot", ("SELECT", "INSERT", "UPDATE")),
    # Consumer-group members take, renew and give back their leases (migration 0013).
    ("consumer_group_lease", ("SELECT", "INSERT", "UPDATE", "DELETE")),
)
SEQUENCES = ("subscription_subscription_id_seq",)
FUNCTIONS = (
    "evstore_append(text, text, bigint, text[], text[], text[], text[], bytea[], integer)",
)


def statements(role: str, schema: str = "public") -> list[sql.Composed]:
    r, s = sql.Identifier(role), sql.Identifier(schema)
    out = [sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r)]
    for table, privileges in TABLE_PRIVILEGES:
        out.append(
            sql.SQL("GRANT {} ON TABLE {}.{} TO {}").format(
                sql.SQL(", ").join(sql.SQL(p) for p in privileges), s, sql.Identifier(table), r
            )
        )
    for sequence in SEQUENCES:
        out.append(
            sql.SQL("GRANT USAGE ON SEQUENCE {}.{} TO {}").format(s, sql.Identifier(sequence), r)
        )
    for function in FUNCTIONS:
        name, arguments = function.split("(", 1)
        out.append(
            sql.SQL("GRANT EXECUTE ON FUNCTION {}.{}({} TO {}").format(
                s, sql.Identifier(name), sql.SQL(arguments), r
            )
        )
    return out


def check_role(conn: psycopg.Connection[Any], role: str) -> None:
    """Refuse roles that must not receive the application's grants: PUBLIC (every role),
    the predefined pg_* roles, a superuser (who needs no grants and should not be the
    application's login), and the role running the grant (it owns the tables already)."""
    if not role.strip():
        raise RefusedRole("--role is empty; name the application's login role")
    if role.strip().lower() == "public":
        raise RefusedRole(
            f"will not grant to {role!r}: PUBLIC is every role on the server; create a role "
            "for the application (CREATE ROLE app LOGIN) and grant to it"
        )
    if role.lower().startswith("pg_"):
        raise RefusedRole(
            f"will not grant to {role!r}: pg_* roles are PostgreSQL's predefined roles; "
            "create a role for the application and grant to it"
        )
    row = conn.execute(queries.sql("postgres")["postgres_current_user"]).fetchone()
    if row is not None and row[0] == role:
        raise RefusedRole(
            f"will not grant to {role!r}: it is the role running this grant (the owner of the "
            "tables); grant to a separate application role"
        )
    row = conn.execute(
        queries.sql("postgres")["postgres_role_is_superuser"], {"role": role}
    ).fetchone()
    if row is not None and row[0]:
        raise RefusedRole(
            f"will not grant to {role!r}: it is a superuser, which bypasses every privilege; "
            "run the application as an ordinary role and grant to that"
        )
