"""Pages that show other pages, and what the sync does when those change without them.

A page P shows another page T through an ``include`` / ``excerpt-include`` of T, a ``children`` list or
page tree of T's parent or space, or a page properties report (which may list any page). Confluence gives
P no new version when T changes, so:

- **T's content, title or place changed** (T is staged): :func:`changed_dependents` names the stored
  pages showing it, :func:`stage_again` fetches and stages them (one CQL ``id in (...)`` request per 49),
  and page_metadata converts them with the new content in the same run (sync/rendering.py drives this).
- **T's permissions narrowed** (a permission refresh found T, or a page above it, newly restricted or not
  known any more, or T's space reading fewer people): P's text may hold what some of P's readers may no
  longer read. :func:`withdraw` takes P's chunks out of the index in the transaction that writes the
  narrowed permission (a reader sees P's old text or no P, never T's text after the change); P keeps its
  row with ``indexed_version`` NULL, which makes it :func:`withdrawn` until it is indexed again: staged and
  converted in the same run when P is in the refreshed space, by its own space's next permission refresh
  or reconciliation otherwise. Conversion then decides again what P may show (sync/rendering.py,
  ``StoredSources.readable``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import page_ids_cql
from confluence_assets.confluence.responses import listed_types, page_version
from confluence_assets.content.macro_scan import EMPTY_SCAN, TREE, VIEW_ONLY, MacroScan, scan_storage
from confluence_assets.sync import indexed_pages, page_tree, staging

# Ids per CQL `id in (...)` request: one under the page size (50 at most with bodies expanded), so that
# the answer is never a full page, which Confluence follows with a `next` link and one more request.
MAX_PAGE = 50
REPORTS = sorted(k for k in VIEW_ONLY if k != "jira")  # macros that may list any page of the site
EVERY_TYPE = listed_types(("page", "blogpost"))  # a stored id may be a page, a blog post or a tree node


@dataclass(frozen=True, slots=True)
class StagedPage:
    """What the follow-up of a staging needs of a staged page: its title, parent and macros."""

    title: str
    parent_id: str | None
    scan: MacroScan

    @classmethod
    def of(cls, page: dict) -> StagedPage:
        storage = ((page.get("body") or {}).get("storage") or {}).get("value") or ""
        ancestors = page.get("ancestors") or []
        parent = str(ancestors[-1].get("id")) if ancestors and isinstance(ancestors[-1], dict) else None
        return cls(page.get("title") or "", parent, scan_storage(storage) if storage else EMPTY_SCAN)


@dataclass
class Restaged:
    """What :func:`stage_again` staged: the pages (for the follow-up), a row per page for the run's
    metadata, the pages that came without a version (skipped, with the reason), the requests it cost."""

    pages: dict[str, StagedPage] = field(default_factory=dict)
    listed: list[tuple[str, str, int, str]] = field(default_factory=list)  # (id, title, version, url)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0


def batch_size(api: ConfluenceAPI) -> int:
    return max(1, min(api.page_size, MAX_PAGE) - 1)


def changed_dependents(
    conn: psycopg.Connection, source_id: str, space_key: str, changed: dict[str, StagedPage], staged: set[str]
) -> list[str]:
    """Stored pages of the space, not staged, that show one of the ``changed`` pages."""
    stored = {
        pid: (title, page_tree.parent_of(path, pid))
        for pid, title, path in conn.execute(
            "SELECT page_id, title, path FROM confluence_pages WHERE page_id = ANY(%s)", (list(changed),)
        )
    }
    titles = {(space_key, p.title) for p in changed.values()} | {(space_key, t) for t, _ in stored.values()}
    parents: set[str] = set()  # pages whose child list changed
    for pid, page in changed.items():
        before = stored.get(pid)
        if before is None or before != (page.title, page.parent_id):
            parents.update(p for p in (page.parent_id, before[1] if before else None) if p)
    details = any(p.scan.details for p in changed.values())
    busy = set(staging.unfinished_versions(conn, source_id)) | staged
    found = []
    for pid, includes, macros in conn.execute(
        """SELECT page_id, metadata->'includes', metadata->'rendered_macros' FROM confluence_pages
           WHERE source_id = %s AND is_deleted = FALSE AND (metadata ? 'includes' OR metadata ? 'rendered_macros')
           ORDER BY page_id""",
        (source_id,),
    ):
        if pid in busy:
            continue
        kinds = {m.get("macro") for m in macros or [] if isinstance(m, dict)}
        shows = any(
            isinstance(i, dict)
            and (i.get("page_id") in changed or (i.get("space_key") or space_key, i.get("title")) in titles)
            for i in includes or []
        )
        if shows or (pid in parents and "children" in kinds) or (details and "detailssummary" in kinds):
            found.append(pid)
    return found


def pages_showing(conn: psycopg.Connection, page_ids: Iterable[str]) -> list[str]:
    """Stored pages whose text may show one of ``page_ids`` (an include of it; a child list or page tree
    in its space; a report, which may list any page): what a change of their permissions changes."""
    ids = sorted({str(p) for p in page_ids if p})
    if not ids:
        return []
    rows = conn.execute(
        """SELECT s.page_id FROM confluence_pages s WHERE s.is_deleted = FALSE AND s.page_id <> ALL(%(ids)s)
             AND (EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(s.metadata->'includes', '[]')) i
                          JOIN confluence_pages t ON t.page_id = ANY(%(ids)s)
                          WHERE i->>'page_id' = t.page_id
                             OR (COALESCE(i->>'space_key', s.space_key) = t.space_key AND i->>'title' = t.title))
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(s.metadata->'rendered_macros', '[]')) m
                          WHERE m->>'macro' = ANY(%(reports)s)
                             OR (m->>'macro' = ANY(%(trees)s) AND s.space_key IN (
                                   SELECT space_key FROM confluence_pages WHERE page_id = ANY(%(ids)s)))))
           ORDER BY s.page_id""",
        {"ids": ids, "reports": REPORTS, "trees": list(TREE)},
    )
    return [pid for (pid,) in rows]


def pages_showing_space(conn: psycopg.Connection, source_id: str) -> list[str]:
    """Stored pages of OTHER spaces that may show a page of this one (when the space reads fewer people,
    its own pages are not affected: they had the same readers)."""
    rows = conn.execute(
        """SELECT s.page_id FROM confluence_pages s, jsonb_array_elements(COALESCE(s.metadata->'includes', '[]')) i
           WHERE s.source_id <> %(sid)s AND s.is_deleted = FALSE
             AND EXISTS (SELECT 1 FROM confluence_pages t
                         WHERE t.source_id = %(sid)s AND t.is_deleted = FALSE
                           AND (t.page_id = i->>'page_id' OR (t.space_key = i->>'space_key' AND t.title = i->>'title')))
           UNION
           SELECT s.page_id FROM confluence_pages s
           WHERE s.source_id <> %(sid)s AND s.is_deleted = FALSE
             AND EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(s.metadata->'rendered_macros', '[]')) m
                         WHERE m->>'macro' = ANY(%(reports)s))
           ORDER BY 1""",
        {"sid": source_id, "reports": REPORTS},
    )
    return [pid for (pid,) in rows]


def showing_narrowed(
    conn: psycopg.Connection, source_id: str, narrowed: Iterable[str], *, space_narrowed: bool = False
) -> list[str]:
    """Stored pages that may show a page whose permissions narrowed: one of ``narrowed`` or below it (a
    restriction holds for the descendants too), or, ``space_narrowed``, any page of the space."""
    ids = sorted({str(p) for p in narrowed if p})
    below = (
        [
            pid
            for (pid,) in conn.execute(
                """SELECT DISTINCT p.page_id FROM confluence_pages p JOIN confluence_pages a ON a.page_id = ANY(%s)
               WHERE p.is_deleted = FALSE AND (p.page_id = a.page_id OR starts_with(p.path, a.path || '/'))""",
                (ids,),
            )
        ]
        if ids
        else []
    )
    found = set(pages_showing(conn, below))
    if space_narrowed:
        found.update(pages_showing_space(conn, source_id))
    return sorted(found)


def withdraw(conn: psycopg.Connection, page_ids: Iterable[str]) -> int:
    """Take the pages' chunks out of the index and mark them not indexed (``indexed_version`` NULL), in the
    caller's transaction; returns the chunks removed. The staged row goes first: its delete waits for a
    swap of the page that another space's run may have in flight, so the chunk delete after it sees what
    that swap wrote (and removes it too), and nothing staged before the change is swapped in after it."""
    ids = sorted({str(p) for p in page_ids if p})
    if not ids:
        return 0
    conn.execute("DELETE FROM confluence_sync_staged_pages WHERE page_id = ANY(%s)", (ids,))
    removed = indexed_pages.remove(conn, ids)
    conn.execute(
        "UPDATE confluence_pages SET indexed_version = NULL, updated_at = now() WHERE page_id = ANY(%s)", (ids,)
    )
    return removed


def withdrawn(conn: psycopg.Connection, source_id: str) -> list[str]:
    """Live pages of the space that are not indexed and not staged: withdrawn, or left so by a crash."""
    rows = conn.execute(
        """SELECT p.page_id FROM confluence_pages p
           WHERE p.source_id = %s AND p.is_deleted = FALSE AND p.indexed_version IS NULL
             AND NOT EXISTS (SELECT 1 FROM confluence_sync_staged_pages s WHERE s.page_id = p.page_id)
           ORDER BY p.page_id""",
        (source_id,),
    )
    return [pid for (pid,) in rows]


def stage_again(
    api: ConfluenceAPI, conn: psycopg.Connection, source_id: str, ids: list[str], kind: str, run_id: str | None
) -> Restaged:
    """Fetch stored pages by id with their bodies and stage them as ``kind`` for page_metadata."""
    result = Restaged()
    size = batch_size(api)
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        before = api.stats.attempts
        rows = []
        for page in api.search_pages(page_ids_cql(batch, types=EVERY_TYPE)):
            try:
                version, when = page_version(page)
            except ValueError as exc:
                result.skipped.append((str(page.get("id") or "?"), str(exc)))
                continue
            api.complete_attachments(page)
            rows.append(staging.staged_row(source_id, page, version, when, kind, run_id))
            result.pages[page["id"]] = StagedPage.of(page)
            result.listed.append((page["id"], page.get("title") or "", version, api.page_url(page)))
        if rows:
            with conn.transaction():
                staging.upsert_staged_pages(conn, rows)
        result.requests += api.stats.attempts - before
    return result
