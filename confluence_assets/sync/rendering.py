"""Macros whose text exists only when rendered: what the sync does about them around the staging.

After changed_pages has staged its listing (:func:`follow_up`):

1. **Dependents.** A page shows other pages (an ``include`` / ``excerpt-include`` of a staged page, a
   ``children`` list whose page gained, renamed or lost a child, a page properties report when a page
   with a ``details`` macro changed) but Confluence gives it no new version when they change. Such
   stored pages are fetched again (one CQL ``id in (...)`` request per 49) and staged as ``requeued``
   (sync/dependents.py finds and stages them), so page_metadata converts them in the same run with the
   new content; up to ``MAX_ROUNDS`` levels (a page including a page that includes the changed one).
2. **Rendering.** The staged pages whose macros nothing stored can answer (Jira issue tables, reports,
   includes of pages that are not staged and have no stored excerpt), for the macro kinds configured
   (``CONFLUENCE_RENDERED_MACROS``), get Confluence's rendering: ``body.export_view`` in one CQL
   ``id in (...)`` request per 49 such pages, kept in their staged payload. Expanding ``export_view``
   on the listing itself would make Confluence render every page; pages without such macros cost
   nothing.

:class:`StoredSources` is where page_metadata's conversion finds included pages (staged payloads, then
the stored excerpts) and child lists (the stored tree) without a request, and what it may show of them.
Conversion runs once, as the service account: a page T's content or title goes into page P's text only
when every reader of P can read T, as stored data proves it (``StoredSources.readable``; unknown = no):
every page on T's path (ancestors and T) not on P's path has a known restriction that is no read
restriction (this run's staged ``restrictions.read.restrictions.user/group`` expansion, else
``confluence_page_restrictions`` with status ``ok``), so a child of P is shown iff it has no read
restriction of its own; and, T in another space, both spaces' permissions are known
(``confluence_space_permissions``, status ``ok``) and T's lets in everyone P's does (anonymous access,
or P's readers and reader groups among its own). A permission change gives no page a new version: the
permission refresh withdraws the pages showing a page whose permissions narrowed and converts them again
(sync/dependents.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import page_ids_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import page_url
from confluence_assets.content.links import space_key_from
from confluence_assets.content.macro_scan import IncludeRef
from confluence_assets.content.rendered import IncludedPage
from confluence_assets.sync import access, dependents, staging
from confluence_assets.sync.dependents import StagedPage  # noqa: F401 - the steps name it as rendering.StagedPage

log = logging.getLogger(__name__)

MAX_ROUNDS = 3
RENDER_EXPAND = "body.export_view"


@dataclass
class FollowUp:
    """What follow_up did: dependents staged again, pages rendered, the requests each cost."""

    dependents: list[tuple[str, str, int, str]] = field(default_factory=list)  # (id, title, version, url)
    dependent_requests: int = 0
    rendered: list[str] = field(default_factory=list)
    render_requests: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


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
        ids = dependents.changed_dependents(conn, source_id, space_key, todo, set(staged))
        if not ids:
            break
        again = dependents.stage_again(api, conn, source_id, ids, "requeued", run_id)
        result.dependents.extend(again.listed)
        result.skipped.extend(again.skipped)
        result.dependent_requests += again.requests
        todo = again.pages
        staged.update(todo)
    _render(api, conn, source_id, space_key, staged, frozenset(rendered_macros), result)
    return result


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
    size = dependents.batch_size(api)
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
        self._chains: dict[str, tuple[str, tuple[str, ...]] | None] = {}  # page -> (space, path ids)
        self._open: dict[str, bool] = {}  # page -> its restriction is known and restricts no reader
        self._spaces: dict[str, access.SpaceReadersState | None] = {}

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

    # -- who may see what -----------------------------------------------------------------------------
    def readable(self, reader: Mapping[str, Any], page_ids: Iterable[str]) -> set[str]:
        """Of ``page_ids``, the pages every reader of ``reader`` (the page being converted, a content
        object with its space and ancestors) can read, as far as stored data proves it (module docstring)."""
        wanted = {str(p) for p in page_ids if p}
        space = space_key_from(reader) or self.space_key
        on_path = {str(a.get("id")) for a in reader.get("ancestors") or [] if isinstance(a, Mapping)}
        on_path.add(str(reader.get("id") or ""))
        chains = self._chain_of(wanted)
        self._read_restrictions({x for found in chains.values() if found for x in found[1] if x not in on_path})
        out = set()
        for pid, found in chains.items():
            if found is None or not all(x in on_path or self._open[x] for x in found[1]):
                continue
            if found[0] == space or self._space_lets_in(found[0], space):
                out.add(pid)
        return out

    def _chain_of(self, ids: set[str]) -> dict[str, tuple[str, tuple[str, ...]] | None]:
        """Each page's space and path (root first, the page last): this run's staged payload, else the
        stored row; None when neither knows it."""
        todo = [i for i in ids if i not in self._chains]
        if todo:
            found: dict[str, tuple[str, tuple[str, ...]] | None] = dict.fromkeys(todo)
            for pid, space, path in self.conn.execute(
                "SELECT page_id, space_key, path FROM confluence_pages WHERE page_id = ANY(%s) AND is_deleted = FALSE",
                (todo,),
            ):
                parts = tuple(p for p in (path or "").split("/") if p)
                found[pid] = (space, parts) if parts and parts[-1] == pid else None
            for pid, space, links, ancestors in self.conn.execute(
                """SELECT page_id, payload->'space', payload->'_links', payload->'ancestors'
                   FROM confluence_sync_staged_pages WHERE page_id = ANY(%s) ORDER BY source_id""",
                (todo,),
            ):
                key = space_key_from({"space": space, "_links": links})
                if key and isinstance(ancestors, list) and all(isinstance(a, dict) and a.get("id") for a in ancestors):
                    found[pid] = (key, (*(str(a["id"]) for a in ancestors), pid))
            self._chains.update(found)
        return {i: self._chains[i] for i in ids}

    def _read_restrictions(self, ids: set[str]) -> None:
        """Whether each page restricts no reader (True) or may (False: restricted or not known)."""
        todo = [i for i in ids if i not in self._open]
        for pid, subjects, stored in self.conn.execute(
            """SELECT i.id, s.payload->'restrictions'->'read'->'restrictions', EXISTS (SELECT 1
                 FROM confluence_page_restrictions r WHERE r.page_id = i.id AND r.status = 'ok' AND NOT r.restricted)
               FROM unnest(%s::text[]) i(id) LEFT JOIN confluence_sync_staged_pages s ON s.page_id = i.id""",
            (todo,),
        ):
            verdict = _unrestricted(subjects)  # this run's listing first, else the stored restriction
            self._open[pid] = self._open.get(pid, True) and (stored if verdict is None else verdict)

    def _space_lets_in(self, target: str, space: str) -> bool:
        """Whether space ``target`` lets in everyone space ``space`` does (both known)."""
        todo = [k for k in (target, space) if k not in self._spaces]
        if todo:
            self._spaces.update(dict.fromkeys(todo))
            self._spaces.update(access.space_readers_of(self.conn, todo))
        theirs, ours = self._spaces[target], self._spaces[space]
        return theirs is not None and ours is not None and theirs.lets_in_all_of(ours)


def _unrestricted(subjects: Any) -> bool | None:
    """A staged ``restrictions.read.restrictions``: names nobody (True), someone (False), not expanded (None)."""
    lists = [subjects.get(k) for k in ("user", "group")] if isinstance(subjects, dict) else [None]
    if any(isinstance(x, dict) and x.get("results") for x in lists):
        return False
    if all(isinstance(x, dict) and x.get("results") == [] and not x.get("size") for x in lists):
        return True
    return None
