"""`evstore grant`: least-privilege PostgreSQL grants for an application role."""

from __future__ import annotations

from psycopg import sql

# What the append path, readers, projections and snapshots need; nothing more. event_store
# gets no UPDATE, DELETE or TRUNCATE, and no table gets ownership, so the role cannot run DDL
# or disable the append-only triggers (ALTER TABLE needs ownership).
TABLE_PRIVILEGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event_store", ("SELECT", "INSERT")),
    ("stream", ("SELECT", "INSERT", "UPDATE")),
    ("subscription", ("SELECT", "INSERT", "UPDATE")),
    ("snapshot", ("SELECT", "INSERT", "UPDATE")),
)
SEQUENCES = ("event_store_position_seq", "subscription_subscription_id_seq")


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
    return out
