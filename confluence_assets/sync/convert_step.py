"""Step 2 (page_metadata): convert staged pages and upsert confluence_pages.

Each staged page is converted (Markdown + metadata + materialised path); the result goes to
confluence_pages and the Markdown stays in staging for chunking. A page that cannot be converted is
recorded as failed with its reason and the others carry on.

What Confluence does not report as modified is kept right here, in the transaction of each batch:

- user mentions show the names of the users we already know (the authors of every staged page and of
  every stored page of the space), without asking Confluence for them;
- when a page moves or is renamed, its descendants' ``path`` column and their ``metadata.path`` and
  ``metadata.ancestors`` follow (a move makes no new version, so they are not re-staged);
- ``metadata.children`` is derived from the stored tree, not from the ``children.page`` expansion (the
  first 25 only, and stale as soon as a child is added, moved away or deleted, since the parent's
  version does not change): every parent a batch touches gets its list recomputed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.sync import crashpoints

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
BATCH = 50


@dataclass
class FailedPage:
    page_id: str
    title: str
    error: str


def record_failure(conn: psycopg.Connection | psycopg.Cursor, source_id: str, failure: FailedPage) -> None:
    """Mark a staged page failed with its reason; a later run tries it again, up to MAX_ATTEMPTS."""
    conn.execute(
        """UPDATE confluence_sync_staged_pages SET stage = 'failed', error = %s, attempts = attempts + 1,
             updated_at = now() WHERE source_id = %s AND page_id = %s""",
        (failure.error[:2000], source_id, failure.page_id),
    )


@dataclass
class ConvertSummary:
    converted: int = 0
    moved: int = 0
    links_resolved: int = 0
    failed: list[FailedPage] = field(default_factory=list)


def _title_index(conn: psycopg.Connection, source_id: str, space_key: str) -> dict[tuple[str, str], str]:
    """(space_key, title) -> page_id for internal links that name a title: each page under its current
    title, the staged one if the page is staged. A renamed page's old stored title must not resolve, or
    the result would depend on how much of an interrupted run was already converted."""
    index = {
        (sk, title): pid
        for pid, sk, title in conn.execute(
            """SELECT p.page_id, p.space_key, p.title FROM confluence_pages p
               WHERE p.is_deleted = FALSE AND NOT EXISTS (
                 SELECT 1 FROM confluence_sync_staged_pages s
                 WHERE s.source_id = %s AND s.page_id = p.page_id)""",
            (source_id,),
        )
    }
    for pid, title in conn.execute(
        "SELECT page_id, title FROM confluence_sync_staged_pages WHERE source_id = %s", (source_id,)
    ):
        index[(space_key, title)] = pid
    return index


def known_users(conn: psycopg.Connection, source_id: str) -> dict[str, str]:
    """{account id (or DC user key / username): display name} of the users this space already tells us
    about: the authors of its stored pages (``created_by``/``last_modified_by``), then those of its staged
    payloads (``history.createdBy``, ``version.by``, ``history.lastUpdated.by``), newer names winning.
    No request to Confluence."""
    users: dict[str, str] = {}
    for account_id, name in conn.execute(
        """SELECT u->>'account_id', u->>'display_name'
           FROM confluence_pages p,
                LATERAL (VALUES (p.metadata->'created_by'), (p.metadata->'last_modified_by')) AS v(u)
           WHERE p.source_id = %s AND jsonb_typeof(u) = 'object'
           ORDER BY p.last_modified, p.page_id""",
        (source_id,),
    ):
        if account_id and name:
            users[account_id] = name
    for account_id, user_key, username, name in conn.execute(
        """SELECT u->>'accountId', u->>'userKey', u->>'username', COALESCE(u->>'displayName', u->>'publicName')
           FROM confluence_sync_staged_pages s,
                LATERAL (VALUES (s.payload->'history'->'createdBy'), (s.payload->'version'->'by'),
                                (s.payload->'history'->'lastUpdated'->'by')) AS v(u)
           WHERE s.source_id = %s AND json_typeof(u) = 'object'
           ORDER BY s.last_modified, s.page_id""",
        (source_id,),
    ):
        if name:
            for ident in (account_id, user_key, username):
                if ident:
                    users[ident] = name
    return users


def _parent_of(path: str | None) -> str | None:
    parts = [p for p in (path or "").split("/") if p]
    return parts[-2] if len(parts) >= 2 else None


def _id_order(page_id: str) -> tuple[int, str]:
    return (int(page_id), page_id) if page_id.isdigit() else (1 << 62, page_id)


def refresh_children(conn: psycopg.Connection, parent_ids: Iterable[str]) -> int:
    """Recompute ``metadata.children`` of the given pages from the stored tree: their live child rows
    (the pages whose path ends in ``/<parent>/<child>``), as ``{id, title, url}``. Order: by sibling
    position (``metadata.position``, the order of Confluence's expansion), children without one after in
    the order the parent's list had them, then by id. Returns how many parents' lists changed. Run it in
    the transaction that changed the tree."""
    wanted = sorted({p for p in parent_ids if p})
    if not wanted:
        return 0
    parents = conn.execute(
        """SELECT page_id, source_id, metadata->'children' FROM confluence_pages
           WHERE page_id = ANY(%s) AND is_deleted = FALSE""",
        (wanted,),
    ).fetchall()
    if not parents:
        return 0
    kids: dict[str, list[tuple]] = {pid: [] for pid, _, _ in parents}
    for parent, page_id, title, url, position in conn.execute(
        """SELECT parent, page_id, title, url, position FROM (
             SELECT (regexp_match(path, '/([^/]+)/[^/]+$'))[1] AS parent, page_id, title,
                    metadata->>'page_url' AS url, metadata->'position' AS position
             FROM confluence_pages WHERE source_id = ANY(%s) AND is_deleted = FALSE) c
           WHERE parent = ANY(%s)""",
        (sorted({sid for _, sid, _ in parents}), list(kids)),
    ):
        kids[parent].append((page_id, title, url, position))
    updates = []
    for parent, _, old in parents:
        listed = {c.get("id"): i for i, c in enumerate(old or []) if isinstance(c, dict)}

        def order(kid: tuple, listed: dict = listed) -> tuple:
            page_id, _, _, position = kid
            known = isinstance(position, int | float) and not isinstance(position, bool)
            return (not known, position if known else 0, listed.get(page_id, len(listed)), _id_order(page_id))

        children = [{"id": pid, "title": title, "url": url} for pid, title, url, _ in sorted(kids[parent], key=order)]
        if children != old:
            updates.append((Jsonb(children), parent))
    if updates:
        with conn.cursor() as cur:
            cur.executemany(
                """UPDATE confluence_pages SET metadata = jsonb_set(metadata, '{children}', %s), updated_at = now()
                   WHERE page_id = %s""",
                updates,
            )
    return len(updates)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def convert_staged(
    conn: psycopg.Connection,
    space_key: str,
    *,
    base_url: str,
    convert: Callable[..., object],
    conversion_error: type[Exception],
    progress: Callable[[int], None] | None = None,
) -> ConvertSummary:
    """Convert every staged page waiting for it; ``conn`` must be in autocommit mode."""
    source_id = source_id_for(space_key)
    titles = _title_index(conn, source_id, space_key)
    users: dict[str, str] | None = None  # read once there is something to convert
    summary = ConvertSummary()

    def resolve_title(target_space: str | None, title: str) -> str | None:
        found = titles.get((target_space or space_key, title))
        if found:
            summary.links_resolved += 1
        return found

    last_id = ""
    while True:
        rows = conn.execute(
            """SELECT page_id, title, payload::text FROM confluence_sync_staged_pages
               WHERE source_id = %s AND page_id > %s
                 AND (stage = 'fetched' OR (stage = 'failed' AND attempts < %s))
               ORDER BY page_id LIMIT %s""",
            (source_id, last_id, MAX_ATTEMPTS, BATCH),
        ).fetchall()
        if not rows:
            return summary
        last_id = rows[-1][0]
        if users is None:
            users = known_users(conn, source_id)
        done, failed = [], []
        for page_id, title, payload in rows:
            try:
                page = json.loads(payload)
                converted = convert(page, base_url, resolve_title=resolve_title, users=users)
                done.append((page_id, page, converted))
            except conversion_error as exc:
                failed.append(FailedPage(page_id, title, str(exc)))
            except Exception as exc:  # a converter bug must cost one page, not the space
                log.exception("unexpected error converting page %s", page_id)
                failed.append(FailedPage(page_id, title, f"{type(exc).__name__}: {exc}"))
        with conn.transaction():
            parents: set[str] = set()  # pages whose children lists this batch may have changed
            for page_id, page, converted in done:
                summary.moved += _store_page(conn, source_id, space_key, page, converted, parents)
                conn.execute(
                    """UPDATE confluence_sync_staged_pages SET stage = 'converted', markdown = %s, error = NULL,
                         updated_at = now() WHERE source_id = %s AND page_id = %s""",
                    (converted.markdown, source_id, page_id),
                )
            for f in failed:
                record_failure(conn, source_id, f)
            refresh_children(conn, parents)
        crashpoints.reached("convert_batch")
        summary.converted += len(done)
        summary.failed.extend(failed)
        if progress:
            progress(summary.converted + len(summary.failed))


def _store_page(
    conn: psycopg.Connection, source_id: str, space_key: str, page: dict, converted, parents: set[str]
) -> int:
    """Upsert one page; returns 1 when it moved. When it moved or was renamed, its descendants' paths
    and ancestors are rewritten. Adds to ``parents`` the pages whose children lists may have changed:
    the page itself (its expansion's list is replaced), its parent, and its parent before a move."""
    page_id = page["id"]
    old = conn.execute(
        "SELECT path, title, metadata->>'page_url' FROM confluence_pages WHERE page_id = %s", (page_id,)
    ).fetchone()
    version = page.get("version") or {}
    title = page.get("title") or ""
    conn.execute(
        """INSERT INTO confluence_pages
             (page_id, source_id, space_key, title, version, last_modified, path, metadata, is_deleted, deleted_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, FALSE, NULL)
           ON CONFLICT (page_id) DO UPDATE SET
             source_id = EXCLUDED.source_id, space_key = EXCLUDED.space_key, title = EXCLUDED.title,
             version = EXCLUDED.version, last_modified = EXCLUDED.last_modified, path = EXCLUDED.path,
             metadata = EXCLUDED.metadata, is_deleted = FALSE, deleted_at = NULL, updated_at = now()""",
        (
            page_id,
            source_id,
            space_key,
            title,
            int(version.get("number") or 0),
            version.get("when"),
            converted.path,
            Jsonb(converted.metadata),
        ),
    )
    parents.update(p for p in (page_id, _parent_of(converted.path)) if p)
    if old is None:
        return 0
    old_path, old_title, old_url = old
    parents.update(p for p in (_parent_of(old_path),) if p)
    url = converted.metadata.get("page_url") or converted.url
    if old_path and (old_path != converted.path or old_title != title or old_url != url):
        _rewrite_descendants(conn, page_id, old_path, converted, {"id": page_id, "title": title, "url": url})
    return 1 if old_path and old_path != converted.path else 0


def _rewrite_descendants(conn: psycopg.Connection, page_id: str, old_path: str, converted, ref: dict) -> int:
    """After ``page_id`` moved (``old_path`` -> ``converted.path``) or was renamed: each descendant's
    path column, ``metadata.path`` and ``metadata.ancestors`` (the page's new ancestors, the page itself,
    then the pages between it and the descendant, as stored now). Returns the rows rewritten."""
    rows = conn.execute(
        """SELECT page_id, path, title, metadata->>'page_url', metadata->'ancestors' FROM confluence_pages
           WHERE path LIKE %s ESCAPE '\\'""",
        (_escape_like(old_path) + "/%",),
    ).fetchall()
    if not rows:
        return 0
    head = [*(converted.metadata.get("ancestors") or []), ref]
    stored = {pid: {"id": pid, "title": title or "", "url": url} for pid, _, title, url, _ in rows}
    updates = []
    for pid, path, _, _, ancestors in rows:
        new_path = converted.path + path[len(old_path) :]
        between = [p for p in new_path.split("/") if p][len(head) : -1]
        old_refs = {a.get("id"): a for a in ancestors or [] if isinstance(a, dict)}
        new_ancestors = head + [
            stored.get(i) or old_refs.get(i) or {"id": i, "title": "", "url": None} for i in between
        ]
        if new_path != path or new_ancestors != ancestors:
            updates.append((new_path, Jsonb({"path": new_path, "ancestors": new_ancestors}), pid))
    if updates:
        with conn.cursor() as cur:
            cur.executemany(
                """UPDATE confluence_pages SET path = %s, metadata = metadata || %s, updated_at = now()
                   WHERE page_id = %s""",
                updates,
            )
    return len(updates)
