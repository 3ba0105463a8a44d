"""`evstore grant`: least-privilege PostgreSQL grants for an application role."""

from __future__ import annotations

from psycopg import sql

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
