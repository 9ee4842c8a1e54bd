"""Archon's real schema (../shared/archon, the team's copy of Archon's own SQL) applied to a test database."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

ARCHON = Path(__file__).resolve().parents[2] / "shared" / "archon"
SUPABASE_ROLES = ("anon", "authenticated", "service_role")


def archon_on_supabase(url: str) -> None:
    """Archon's real schema as Supabase hosts it: the Supabase stand-ins (roles, auth.role(), default
    grants to anon/authenticated), then Archon's complete_setup.sql (which includes its migration 011,
    archon_page_metadata). The embedded server lacks pgcrypto and pg_trgm: gen_random_uuid() is built in,
    and the three trigram indexes are left out."""
    setup = (ARCHON / "migration" / "complete_setup.sql").read_text()
    setup = re.sub(r"CREATE EXTENSION IF NOT EXISTS (pgcrypto|pg_trgm);", "", setup)
    setup, trigram = re.subn(r"CREATE INDEX \S+ ON \S+ USING GIN \(\w+ gin_trgm_ops\);", "", setup)
    assert trigram == 3
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((ARCHON / "supabase_standins.sql").read_text())
        conn.execute(setup)


def supabase_roles(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY (%s)", (list(SUPABASE_ROLES),))
    return {r[0] for r in rows}


def drop_roles(conn: psycopg.Connection, roles: set[str]) -> None:
    """Drop the Supabase roles a test created (they are the cluster's; the other tests expect none)."""
    for role in sorted(roles):
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(psycopg.sql.Identifier(role)))
