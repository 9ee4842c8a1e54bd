"""Macros whose text exists only when rendered: what the sync does about them around the staging.

After changed_pages has staged its listing (:func:`follow_up`):

1. **Dependents.** A page shows other pages (an ``include`` / ``excerpt-include`` of a staged page, a
   ``children`` list whose page gained, renamed or lost a child, a page properties report when a page
   with a ``details`` macro changed) but Confluence gives it no new version when they change. Such
   stored pages are fetched again (one CQL ``id in (...)`` request per 49) and staged as ``requeued``,
   so page_metadata converts them in the same run with the new content; up to ``MAX_ROUNDS`` levels
   (a page including a page that includes the changed one).
2. **Rendering.** The staged pages whose macros nothing stored can answer (Jira issue tables, reports,
   includes of pages that are not staged and have no stored excerpt), for the macro kinds configured
   (``CONFLUENCE_RENDERED_MACROS``), get Confluence's rendering: ``body.export_view`` in one CQL
   ``id in (...)`` request per 49 such pages, kept in their staged payload. Expanding ``export_view``
   on the listing itself would make Confluence render every page; pages without such macros cost
   nothing.

:class:`StoredSources` is where page_metadata's conversion finds included pages (staged payloads, then
the stored excerpts) and child lists (the stored tree) without a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import page_ids_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import page_url, page_version
from confluence_assets.content.macro_scan import EMPTY_SCAN, IncludeRef, MacroScan, scan_storage
from confluence_assets.content.rendered import IncludedPage
from confluence_assets.sync import page_tree, staging

log = logging.getLogger(__name__)

# Ids per CQL `id in (...)` request: one under the page size (50 at most with bodies expanded), so that
# the answer is never a full page, which Confluence follows with a `next` link and one more request.
MAX_PAGE = 50
MAX_ROUNDS = 3
RENDER_EXPAND = "body.export_view"


@dataclass(frozen=True, slots=True)
class StagedPage:
    """What follow_up needs of a page changed_pages staged (or found staged)."""

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
class FollowUp:
    """What follow_up did: dependents staged again, pages rendered, the requests each cost."""

    dependents: list[tuple[str, str, int, str]] = field(default_factory=list)  # (id, title, version, url)
    dependent_requests: int = 0
    rendered: list[str] = field(default_factory=list)
    render_requests: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _batch_size(api: ConfluenceAPI) -> int:
    return max(1, min(api.page_size, MAX_PAGE) - 1)


def follow_up(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    staged: dict[str, StagedPage],
    *,
    rendered_macros: Iterable[str],
    run_id: str | None = None,
) -> FollowUp:
    """Stage the dependents of ``staged`` and fetch the rendering the staged pages need."""
    result = FollowUp()
    if not staged:
        return result
    source_id = source_id_for(space_key)
    todo = dict(staged)
    for _ in range(MAX_ROUNDS):
        ids = _dependents(conn, source_id, space_key, todo, set(staged))
        if not ids:
            break
        todo = _stage_dependents(api, conn, source_id, ids, run_id, result)
        staged.update(todo)
    _render(api, conn, source_id, space_key, staged, frozenset(rendered_macros), result)
    return result


def _dependents(
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


def _stage_dependents(
    api: ConfluenceAPI, conn: psycopg.Connection, source_id: str, ids: list[str], run_id: str | None, result: FollowUp
) -> dict[str, StagedPage]:
    staged: dict[str, StagedPage] = {}
    size = _batch_size(api)
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        before = api.stats.attempts
        rows = []
        for page in api.search_pages(page_ids_cql(batch)):
            try:
                version, when = page_version(page)
            except ValueError as exc:
                result.skipped.append((str(page.get("id") or "?"), str(exc)))
                continue
            api.complete_attachments(page)
            rows.append(staging.staged_row(source_id, page, version, when, "requeued", run_id))
            staged[page["id"]] = StagedPage.of(page)
            result.dependents.append((page["id"], page.get("title") or "", version, api.page_url(page)))
        if rows:
            with conn.transaction():
                staging.upsert_staged_pages(conn, rows)
        result.dependent_requests += api.stats.attempts - before
    return staged


def _render(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    source_id: str,
    space_key: str,
    staged: dict[str, StagedPage],
    kinds: frozenset[str],
    result: FollowUp,
) -> None:
    if not kinds:
        return
    sources = StoredSources(conn, space_key)
    need = []
    for pid, page in staged.items():
        wanted = page.scan.view_only & kinds
        if not wanted:
            wanted = {ref.macro for ref in page.scan.includes if ref.macro in kinds and not sources.resolvable(ref)}
        if wanted:
            need.append(pid)
    done = staging.rendered_pages(conn, source_id, need) if need else set()  # by an earlier attempt
    need = [pid for pid in need if pid not in done]
    need.sort()
    size = _batch_size(api)
    for start in range(0, len(need), size):
        batch = need[start : start + size]
        before = api.stats.attempts
        for page in api.search_pages(page_ids_cql(batch), expand=RENDER_EXPAND):
            view = (page.get("body") or {}).get("export_view")
            if isinstance(view, dict) and isinstance(view.get("value"), str):
                staging.attach_rendering(conn, source_id, page["id"], "export_view", view)
                result.rendered.append(page["id"])
        result.render_requests += api.stats.attempts - before


class StoredSources:
    """content.rendered.MacroSources over the database: included pages from staging (their storage) or
    confluence_pages (their excerpts), child lists from the stored tree. Answers are remembered."""

    def __init__(self, conn: psycopg.Connection, space_key: str, base_url: str = "") -> None:
        self.conn = conn
        self.space_key = space_key
        self.base_url = base_url
        self._pages: dict[tuple, IncludedPage | None] = {}

    def page(self, space_key: str | None, title: str | None, page_id: str | None) -> IncludedPage | None:
        key = (page_id, space_key or self.space_key, title)
        if key not in self._pages:
            self._pages[key] = self._find(page_id, space_key or self.space_key, title)
        return self._pages[key]

    def _find(self, page_id: str | None, space_key: str, title: str | None) -> IncludedPage | None:
        if not page_id and not title:
            return None
        params: dict[str, Any] = {"id": page_id, "sid": source_id_for(space_key), "title": title}
        staged = self.conn.execute(
            """SELECT page_id, title, payload->'body'->'storage'->>'value' FROM confluence_sync_staged_pages
               WHERE (%(id)s::text IS NOT NULL AND page_id = %(id)s)
                  OR (%(id)s::text IS NULL AND source_id = %(sid)s AND title = %(title)s)
               LIMIT 1""",
            params,
        ).fetchone()
        stored = self.conn.execute(
            """SELECT page_id, title, space_key, metadata->>'page_url', metadata->'excerpts' FROM confluence_pages
               WHERE is_deleted = FALSE AND ((%(id)s::text IS NOT NULL AND page_id = %(id)s)
                  OR (%(id)s::text IS NULL AND space_key = %(space)s AND title = %(title)s))
               LIMIT 1""",
            {**params, "space": space_key},
        ).fetchone()
        if staged is not None:
            url = stored[3] if stored is not None and stored[0] == staged[0] else None
            return IncludedPage(staged[0], staged[1], space_key, url, staged[2] or "")
        if stored is not None:
            excerpts = stored[4] if isinstance(stored[4], dict) else None
            return IncludedPage(stored[0], stored[1], stored[2], stored[3], None, excerpts)
        return None

    def resolvable(self, ref: IncludeRef) -> bool:
        """Whether conversion can show ``ref`` without the rendered page."""
        found = self.page(ref.space_key, ref.title, ref.page_id)
        if found is None:
            return False
        if found.storage is not None:
            return True
        excerpts = found.excerpts or {}
        return ref.macro == "excerpt-include" and bool(excerpts) and (not ref.excerpt or ref.excerpt in excerpts)

    def children(self, page_id: str) -> list[dict[str, Any]]:
        """The page's children in sibling order: the stored ones (the path index finds them) that are not
        staged under another parent, and the staged ones (this run's pages, not stored yet)."""
        sid = source_id_for(self.space_key)
        row = self.conn.execute("SELECT path FROM confluence_pages WHERE page_id = %s", (page_id,)).fetchone()
        kids: dict[str, tuple] = {}
        if row is not None and row[0]:
            prefix = row[0].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/"
            for pid, title, url, position in self.conn.execute(
                """SELECT page_id, title, metadata->>'page_url', metadata->'position' FROM confluence_pages
                   WHERE path LIKE %s ESCAPE '\\' AND path NOT LIKE %s ESCAPE '\\' AND is_deleted = FALSE""",
                (prefix + "%", prefix + "%/%"),
            ):
                kids[pid] = (title, url, position)
        for pid, title, webui, position, parent in self.conn.execute(
            """SELECT page_id, title, payload->'_links'->>'webui', payload->'extensions'->'position',
                      payload->'ancestors'->-1->>'id'
               FROM confluence_sync_staged_pages
               WHERE source_id = %s AND (payload->'ancestors'->-1->>'id' = %s OR page_id = ANY(%s))""",
            (sid, page_id, list(kids)),
        ):
            if parent != page_id:
                kids.pop(pid, None)  # moved away in this run
            else:
                url = page_url(self.base_url, {"id": pid, "_links": {"webui": webui}}, self.space_key)
                kids[pid] = (title, kids.get(pid, (None, url))[1] or url, position)

        def order(item: tuple) -> tuple:
            pid, (_, _, position) = item
            known = isinstance(position, int | float) and not isinstance(position, bool)
            return (not known, position if known else 0, int(pid) if pid.isdigit() else 0, pid)

        return [{"id": pid, "title": title, "url": url} for pid, (title, url, _) in sorted(kids.items(), key=order)]
