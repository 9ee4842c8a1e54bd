"""The permission state (sql/0.1.0/040), owned here alone: every statement that writes or reads the
permission tables for the sync is in this module.

- ``confluence_page_restrictions``: each stored page's own read restriction. A write never goes back in
  time: a restriction read at ``read_at`` replaces the stored one only if that was read no later (or never);
  an ``unknown`` one replaces it unless the stored one was read later, so a payload without the
  expansion (read_at unknown) always hides its page. ``narrow_only`` (a listing that failed part-way)
  writes only what opens nothing: unknowns, and ``ok`` restrictions that name a subset of who was let in.
- ``confluence_space_permissions``: who may read each space; a failed read keeps the last readers for the
  record and sets ``unknown`` (nobody is let in).
- ``confluence_groups`` / ``_group_members`` / ``confluence_users``: groups named by any space permission
  or read restriction and their members; a group that cannot be listed is ``unknown`` with no members.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from confluence_assets.confluence.permissions import OK, UNKNOWN, GroupRef, Member, PageRestriction, SpaceReaders

ERROR_CHARS = 1000
LISTED_IDS = 200  # page ids (or group names) a figure names at most
NEVER_READ = "never read"  # the error of a space whose permissions were never read


def _error(text: str | None) -> str | None:
    return text[:ERROR_CHARS] if text else None


# -- page restrictions ---------------------------------------------------------------------------------
def store_page_restrictions(
    conn: psycopg.Connection, source_id: str, restrictions: Sequence[PageRestriction], *, narrow_only: bool = False
) -> int:
    """Write the restrictions of the space's stored pages (others are left out: a page's row comes with it)
    and remember the groups they name; returns the rows written. Call it inside a transaction with the
    pages' own writes where they go together (page_metadata)."""
    if not restrictions:
        return 0
    rows = [
        {
            "page_id": r.page_id,
            "status": r.status,
            "users": list(r.users),
            "groups": [g.id for g in r.groups],
            "error": _error(r.error),
            "read_at": r.read_at.isoformat() if r.read_at else None,
        }
        for r in restrictions
    ]
    with conn.transaction():
        remember_groups(conn, {g for r in restrictions for g in r.groups})
        written = conn.execute(
            """INSERT INTO confluence_page_restrictions AS r
                 (page_id, source_id, status, read_account_ids, read_group_ids, error, read_at)
               SELECT n.page_id, p.source_id, n.status, ARRAY(SELECT jsonb_array_elements_text(n.users)),
                      ARRAY(SELECT jsonb_array_elements_text(n.groups)), n.error, n.read_at
               FROM jsonb_to_recordset(%(rows)s)
                      AS n(page_id text, status text, users jsonb, groups jsonb, error text, read_at timestamptz)
               JOIN confluence_pages p ON p.page_id = n.page_id AND p.source_id = %(sid)s
               ON CONFLICT (page_id) DO UPDATE SET
                 source_id = EXCLUDED.source_id, status = EXCLUDED.status,
                 read_account_ids = EXCLUDED.read_account_ids, read_group_ids = EXCLUDED.read_group_ids,
                 error = EXCLUDED.error, read_at = COALESCE(EXCLUDED.read_at, r.read_at)
               WHERE CASE WHEN EXCLUDED.status = %(unknown)s
                 THEN EXCLUDED.read_at IS NULL OR r.read_at IS NULL OR EXCLUDED.read_at >= r.read_at
                 ELSE (r.read_at IS NULL OR EXCLUDED.read_at >= r.read_at)
                      AND (NOT %(narrow)s OR (
                        r.status = %(ok)s
                        AND cardinality(EXCLUDED.read_account_ids) + cardinality(EXCLUDED.read_group_ids) > 0
                        AND (NOT r.restricted OR (EXCLUDED.read_account_ids <@ r.read_account_ids
                                                  AND EXCLUDED.read_group_ids <@ r.read_group_ids))))
               END""",
            {"rows": Jsonb(rows), "sid": source_id, "ok": OK, "unknown": UNKNOWN, "narrow": narrow_only},
        ).rowcount
    return written


def open_pages(conn: psycopg.Connection, source_id: str) -> set[str]:
    """The space's stored pages whose own restriction is known and restricts no reader: the pages another
    page may show (sync/rendering.py); one that leaves this set narrowed (sync/dependents.py)."""
    return {
        pid
        for (pid,) in conn.execute(
            """SELECT page_id FROM confluence_page_restrictions
               WHERE source_id = %s AND status = %s AND NOT restricted""",
            (source_id, OK),
        )
    }


# -- space permissions ---------------------------------------------------------------------------------
def store_space_permissions(
    conn: psycopg.Connection, source_id: str, space_key: str, readers: SpaceReaders | None, error: str | None = None
) -> None:
    """The space's readers (status ok), or, ``readers`` None, the failure (status unknown, ``error``)."""
    if readers is None:
        conn.execute(
            """INSERT INTO confluence_space_permissions (source_id, space_key, status, error, refreshed_at)
               VALUES (%s, %s, %s, %s, now())
               ON CONFLICT (source_id) DO UPDATE SET status = EXCLUDED.status, error = EXCLUDED.error,
                 space_key = EXCLUDED.space_key, refreshed_at = EXCLUDED.refreshed_at""",
            (source_id, space_key, UNKNOWN, _error(error) or "not read"),
        )
        return
    with conn.transaction():
        remember_groups(conn, readers.groups)
        conn.execute(
            """INSERT INTO confluence_space_permissions (source_id, space_key, status, anonymous_access,
                 reader_account_ids, reader_group_ids, error, refreshed_at)
               VALUES (%s, %s, %s, %s, %s, %s, NULL, now())
               ON CONFLICT (source_id) DO UPDATE SET space_key = EXCLUDED.space_key, status = EXCLUDED.status,
                 anonymous_access = EXCLUDED.anonymous_access, reader_account_ids = EXCLUDED.reader_account_ids,
                 reader_group_ids = EXCLUDED.reader_group_ids, error = NULL, refreshed_at = EXCLUDED.refreshed_at""",
            (source_id, space_key, OK, readers.anonymous, list(readers.users), [g.id for g in readers.groups]),
        )


def space_status(conn: psycopg.Connection, source_id: str) -> tuple[str, str | None]:
    """(status, error) of the space's permissions; ('unknown', 'never read') before the first read."""
    row = conn.execute(
        "SELECT status, error FROM confluence_space_permissions WHERE source_id = %s", (source_id,)
    ).fetchone()
    return (row[0], row[1]) if row else (UNKNOWN, NEVER_READ)


@dataclass(frozen=True)
class SpaceReadersState:
    """Who a space lets in, as stored (status ok); :meth:`lets_in_all_of` compares two of them."""

    anonymous: bool
    users: frozenset[str]
    groups: frozenset[str]

    def lets_in_all_of(self, other: SpaceReadersState) -> bool:
        return self.anonymous or (not other.anonymous and other.users <= self.users and other.groups <= self.groups)


def space_readers_of(conn: psycopg.Connection, space_keys: Sequence[str]) -> dict[str, SpaceReadersState]:
    """The stored readers of the spaces (by key) whose permissions are known."""
    return {
        key: SpaceReadersState(bool(anonymous), frozenset(users or ()), frozenset(groups or ()))
        for key, anonymous, users, groups in conn.execute(
            """SELECT space_key, anonymous_access, reader_account_ids, reader_group_ids
               FROM confluence_space_permissions WHERE status = %s AND space_key = ANY(%s)""",
            (OK, list(space_keys)),
        )
    }


def space_readers_state(conn: psycopg.Connection, source_id: str) -> SpaceReadersState | None:
    """The space's stored readers; None when they are not known (nobody is let in)."""
    row = conn.execute(
        """SELECT anonymous_access, reader_account_ids, reader_group_ids FROM confluence_space_permissions
           WHERE source_id = %s AND status = %s""",
        (source_id, OK),
    ).fetchone()
    return None if row is None else SpaceReadersState(bool(row[0]), frozenset(row[1] or ()), frozenset(row[2] or ()))


# -- groups --------------------------------------------------------------------------------------------
def remember_groups(conn: psycopg.Connection, groups: Iterable[GroupRef]) -> None:
    """Rows for groups named by a permission (members unknown until listed); a real name replaces an id
    kept in its place."""
    refs = sorted(set(groups))
    if refs:
        conn.execute(
            """INSERT INTO confluence_groups (group_id, name)
               SELECT * FROM unnest(%s::text[], %s::text[])
               ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name
               WHERE confluence_groups.name <> EXCLUDED.name AND EXCLUDED.name <> EXCLUDED.group_id""",
            ([g.id for g in refs], [g.name for g in refs]),
        )


def named_groups(conn: psycopg.Connection, *, unlisted_only: bool = False) -> list[GroupRef]:
    """The groups any stored space permission or read restriction names (``unlisted_only``: those whose
    members are not known yet, or were not the last time), by id."""
    rows = conn.execute(
        """SELECT n.id, COALESCE(g.name, n.id) FROM (
             SELECT unnest(reader_group_ids) AS id FROM confluence_space_permissions
             UNION SELECT unnest(read_group_ids) FROM confluence_page_restrictions) n
           LEFT JOIN confluence_groups g ON g.group_id = n.id
           WHERE NOT %s OR g.members_status IS DISTINCT FROM %s
           ORDER BY n.id""",
        (unlisted_only, OK),
    ).fetchall()
    return [GroupRef(gid, name) for gid, name in rows]


def unlisted(conn: psycopg.Connection, groups: Iterable[GroupRef]) -> list[GroupRef]:
    """Of ``groups``, those whose members are not known, by id."""
    wanted = {g.id: g for g in groups}
    known = {
        gid
        for (gid,) in conn.execute(
            "SELECT group_id FROM confluence_groups WHERE group_id = ANY(%s) AND members_status = %s",
            (list(wanted), OK),
        )
    }
    return [wanted[gid] for gid in sorted(wanted) if gid not in known]


def store_group_members(conn: psycopg.Connection, group: GroupRef, members: Sequence[Member]) -> None:
    """The group's complete member list (status ok); the users' e-mails and names kept for look-ups."""
    by_id = {m.account_id: m for m in members}
    ids = sorted(by_id)
    with conn.transaction():
        conn.execute(
            """INSERT INTO confluence_groups (group_id, name, members_status, member_count, error, refreshed_at)
               VALUES (%s, %s, %s, %s, NULL, now())
               ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name, members_status = EXCLUDED.members_status,
                 member_count = EXCLUDED.member_count, error = NULL, refreshed_at = EXCLUDED.refreshed_at""",
            (group.id, group.name, OK, len(ids)),
        )
        conn.execute(
            "DELETE FROM confluence_group_members WHERE group_id = %s AND account_id <> ALL(%s)", (group.id, ids)
        )
        conn.execute(
            """INSERT INTO confluence_group_members (group_id, account_id) SELECT %s, unnest(%s::text[])
               ON CONFLICT DO NOTHING""",
            (group.id, ids),
        )
        conn.execute(
            """INSERT INTO confluence_users (account_id, email, display_name)
               SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
               ON CONFLICT (account_id) DO UPDATE SET email = COALESCE(EXCLUDED.email, confluence_users.email),
                 display_name = COALESCE(EXCLUDED.display_name, confluence_users.display_name), updated_at = now()
               WHERE (confluence_users.email, confluence_users.display_name)
                     IS DISTINCT FROM (COALESCE(EXCLUDED.email, confluence_users.email),
                                       COALESCE(EXCLUDED.display_name, confluence_users.display_name))""",
            (ids, [by_id[i].email for i in ids], [by_id[i].display_name for i in ids]),
        )


def mark_group_unknown(conn: psycopg.Connection, group: GroupRef, error: str) -> None:
    """The group could not be listed: unknown, and no members (stale ones could keep a removed user in)."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO confluence_groups (group_id, name, members_status, member_count, error, refreshed_at)
               VALUES (%s, %s, %s, NULL, %s, now())
               ON CONFLICT (group_id) DO UPDATE SET members_status = EXCLUDED.members_status, member_count = NULL,
                 error = EXCLUDED.error, refreshed_at = EXCLUDED.refreshed_at""",
            (group.id, group.name, UNKNOWN, _error(error)),
        )
        conn.execute("DELETE FROM confluence_group_members WHERE group_id = %s", (group.id,))


def drop_unnamed_groups(conn: psycopg.Connection) -> int:
    """Forget groups no stored permission names any more (their members with them); returns how many."""
    return conn.execute(
        """DELETE FROM confluence_groups g WHERE NOT EXISTS (
             SELECT 1 FROM confluence_space_permissions s WHERE g.group_id = ANY(s.reader_group_ids))
           AND NOT EXISTS (SELECT 1 FROM confluence_page_restrictions r WHERE g.group_id = ANY(r.read_group_ids))"""
    ).rowcount


# -- figures -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpaceAccess:
    """What the space's live pages' permissions are now."""

    live_pages: int
    restricted_pages: int  # with a read restriction of their own
    inherited_pages: int  # without one, hidden by a restricted ancestor's
    unknown_pages: int  # own restriction not known: hidden with their descendants
    unknown_page_ids: list[str]  # the first LISTED_IDS of them
    space_status: str
    space_error: str | None
    space_refreshed_at: datetime | None


def space_access(conn: psycopg.Connection, source_id: str) -> SpaceAccess:
    live, restricted, inherited, unknown = conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE own_status = %(ok)s AND own_restricted),
                  count(*) FILTER (WHERE NOT own_restricted AND cardinality(restricted_by) > 0),
                  count(*) FILTER (WHERE own_status IS DISTINCT FROM %(ok)s)
           FROM confluence_page_access WHERE source_id = %(sid)s""",
        {"ok": OK, "sid": source_id},
    ).fetchone()
    ids = [
        pid
        for (pid,) in conn.execute(
            """SELECT p.page_id FROM confluence_pages p
               LEFT JOIN confluence_page_restrictions r ON r.page_id = p.page_id
               WHERE p.source_id = %s AND p.is_deleted = FALSE AND r.status IS DISTINCT FROM %s
               ORDER BY length(p.page_id), p.page_id LIMIT %s""",
            (source_id, OK, LISTED_IDS),
        )
    ]
    row = conn.execute(
        "SELECT status, error, refreshed_at FROM confluence_space_permissions WHERE source_id = %s", (source_id,)
    ).fetchone()
    status, error, refreshed = row if row else (UNKNOWN, NEVER_READ, None)
    return SpaceAccess(live, restricted, inherited, unknown, ids, status, error, refreshed)


def restricted_counts(conn: psycopg.Connection, source_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """source id -> (live pages with a read restriction of their own, live pages not known) of each space."""
    rows = conn.execute(
        """SELECT p.source_id, count(*) FILTER (WHERE r.status = %(ok)s AND r.restricted),
                  count(*) FILTER (WHERE r.status IS DISTINCT FROM %(ok)s)
           FROM confluence_pages p LEFT JOIN confluence_page_restrictions r ON r.page_id = p.page_id
           WHERE p.source_id = ANY(%(sids)s) AND p.is_deleted = FALSE GROUP BY p.source_id""",
        {"ok": OK, "sids": list(source_ids)},
    ).fetchall()
    return {sid: (restricted, unknown) for sid, restricted, unknown in rows}
