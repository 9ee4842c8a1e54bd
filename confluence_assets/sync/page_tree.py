"""The page tree as confluence_pages stores it: a page upserted with its materialised ``path`` and its
``content_type`` (pages, blog posts outside the tree, and the tree's folders, whiteboards, databases and
embeds, whose moves re-path what is below them like a page's), and what Confluence does not report as
modified kept right by us, in the transaction that changed the tree.

- When a page moves or is renamed, its descendants' ``path`` column and their ``metadata.path`` and
  ``metadata.ancestors`` follow (a move makes no new version, so they are not re-staged).
- ``metadata.children`` is derived from the stored tree, not from the ``children.page`` expansion (the
  first 25 only, and stale as soon as a child is added, moved away or deleted, since the parent's
  version does not change): every parent a change touches gets its list recomputed (page_metadata for
  the pages it converts, reconciliation for the parents of the pages it deletes).
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg.types.json import Jsonb


def parent_of(path: str | None, page_id: str | None = None) -> str | None:
    """The parent's id in a materialised path (``/<root>/.../<parent>/<page>``), None for a root page;
    with ``page_id``, None too when the path does not end in that page."""
    parts = [p for p in (path or "").split("/") if p]
    if len(parts) < 2 or (page_id is not None and parts[-1] != page_id):
        return None
    return parts[-2]


def _id_order(page_id: str) -> tuple[int, str]:
    return (int(page_id), page_id) if page_id.isdigit() else (1 << 62, page_id)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _update_pages(conn: psycopg.Connection, query: str, rows: list[tuple]) -> int:
    """Run the UPDATE ``query`` of confluence_pages once per row; returns the rows."""
    if rows:
        with conn.cursor() as cur:
            cur.executemany(query, rows)
    return len(rows)


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
    return _update_pages(
        conn,
        """UPDATE confluence_pages SET metadata = jsonb_set(metadata, '{children}', %s), updated_at = now()
           WHERE page_id = %s""",
        updates,
    )


def store_page(
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
             (page_id, source_id, space_key, title, version, last_modified, path, metadata, content_type,
              is_deleted, deleted_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, FALSE, NULL)
           ON CONFLICT (page_id) DO UPDATE SET
             source_id = EXCLUDED.source_id, space_key = EXCLUDED.space_key, title = EXCLUDED.title,
             version = EXCLUDED.version, last_modified = EXCLUDED.last_modified, path = EXCLUDED.path,
             metadata = EXCLUDED.metadata, content_type = EXCLUDED.content_type, is_deleted = FALSE,
             deleted_at = NULL, updated_at = now()""",
        (
            page_id,
            source_id,
            space_key,
            title,
            int(version.get("number") or 0),
            version.get("when"),
            converted.path,
            Jsonb(converted.metadata),
            converted.metadata.get("content_type") or "page",
        ),
    )
    parents.update(p for p in (page_id, parent_of(converted.path)) if p)
    if old is None:
        return 0
    old_path, old_title, old_url = old
    parents.update(p for p in (parent_of(old_path),) if p)
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
    return _update_pages(
        conn,
        """UPDATE confluence_pages SET path = %s, metadata = metadata || %s, updated_at = now()
           WHERE page_id = %s""",
        updates,
    )
