"""Reconciliation: compare every live page id of a space with confluence_pages.

CQL never returns trashed or purged pages, so deletions are found only by comparing full id sets: of
pages, blog posts and the tree's folders, whiteboards, databases and embeds (content types as the sync's).
A page's parent is the same here as in page_metadata's path, a folder too (v2 ``parentId`` whatever its
``parentType``; the v1 ``ancestors`` page_metadata reads include folders), so the two agree on every run. The
listing runs to its last cursor before anything is compared; if it fails part-way the function raises
and nothing is deleted (an incomplete list must never look like deletions).

- stored live, not listed       -> soft-deleted (is_deleted, deleted_at) and its chunks removed, in one
                                   transaction per batch
- listed, newer than indexed    -> a change CQL missed: fetched with its body and staged ('requeued')
- listed under another parent   -> moved (a move makes no new version, so CQL cannot see it): re-queued
                                   like a missed change; its subtree's paths follow
- stored with other ancestors   -> its path or an ancestor's title is not what the listing's parents
                                   and titles make of it (stored from a payload older than an ancestor's
                                   move or rename): re-queued, so reconciliation converges whatever left it
- listed, soft-deleted here     -> restored: fetched and staged ('restored'); chunks come back on the
                                   next sync run
- listed, gone when fetched     -> recorded as vanished (trashed or restricted between the listing and
                                   the fetch); the next reconciliation deletes it if it stays gone

When more of the space's live pages would be deleted than the mass-deletion limit allows
(sync/deletion_guard.py), none is: the summary's ``held_back`` says how many and which, and a run with
``confirm_mass_deletion`` deletes them. Everything else (restores, missed changes, moves) goes ahead.

The children lists (``metadata.children``) of the parents of deleted pages are recomputed from the stored
tree in the transaction that deletes them; moved and restored pages get theirs when page_metadata
converts them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import page_ids_cql, space_pages_cql
from confluence_assets.confluence.errors import ConfluenceNotFoundError
from confluence_assets.confluence.keys import source_id_for, validate_space_key
from confluence_assets.confluence.responses import BLOGPOST, PAGE, TREE_NODE_TYPES, listed_types, page_version
from confluence_assets.settings import MassDeletionSettings
from confluence_assets.sync import extras, indexed_pages, page_tree, rendering, sources, staging
from confluence_assets.sync.deletion_guard import HeldBackDeletion, hold_back

log = logging.getLogger(__name__)

FETCH_BATCH = 50  # ids per CQL `id in (...)` request (bodies expanded: Confluence caps at 50)
NODE_PAGE = 200  # tree nodes per CQL request (version and ancestors expanded, no body: Confluence caps at 200)


@dataclass
class ReconcileSummary:
    live_pages: int = 0
    stored_live: int = 0
    deleted: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    children_changed: list[str] = field(default_factory=list)  # a comment or attachment deleted or missed
    vanished: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)  # pages showing a staged one, staged again
    rendered: list[str] = field(default_factory=list)  # staged pages given Confluence's rendering
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): not stageable
    chunks_removed: int = 0
    held_back: HeldBackDeletion | None = None  # deletions waiting for confirm_mass_deletion
    api_calls: int = 0
    duration_seconds: float = 0.0

    def metrics(self) -> dict:
        return {
            "live_pages": self.live_pages,
            "stored_live_pages": self.stored_live,
            "deleted": len(self.deleted),
            "deletions_held_back": self.held_back.would_delete if self.held_back else 0,
            "restored": len(self.restored),
            "requeued": len(self.requeued),
            "pages_with_changed_comments_or_attachments": len(self.children_changed),
            "vanished": len(self.vanished),
            "dependent_pages_requeued": len(self.dependents),
            "rendered_pages": len(self.rendered),
            "skipped": len(self.skipped),
            "chunks_removed": self.chunks_removed,
            "api_calls": self.api_calls,
            "duration_seconds": round(self.duration_seconds, 2),
        }

    def as_metadata(self) -> dict:
        """The record kept in archon_sources (``last_full_reconciliation``)."""
        return {"completed_at": datetime.now(UTC).isoformat(), **self.metrics()}

    def page_ids(self) -> dict[str, list[str]]:
        return {
            "deleted": self.deleted,
            "requeued": self.requeued,
            "children_changed": self.children_changed,
            "restored": self.restored,
            "vanished": self.vanished,
        }


@dataclass(frozen=True)
class LivePage:
    version: int
    parent_id: str | None
    title: str = ""


def listed_ancestors(live: dict[str, LivePage], page_id: str) -> tuple[list[str], bool]:
    """The page's ancestors (root first) as the listing's parent ids make them, and whether the chain is
    whole (it ends at a root; False when a parent is not listed, e.g. outside the listed types)."""
    chain: list[str] = []
    parent = live[page_id].parent_id
    while parent is not None:
        if parent not in live or parent in chain or parent == page_id:  # not listed, or a loop: stop there
            return chain[::-1], False
        chain.append(parent)
        parent = live[parent].parent_id
    return chain[::-1], True


def _path_differs(path: str | None, listed: list[str], whole: bool) -> bool:
    """Whether a stored path differs from the listed ancestors (``listed_ancestors``): as far as the
    listing knows the tree, the whole path when it reaches the root."""
    stored = [p for p in (path or "").split("/") if p][:-1]
    if whole:
        return stored != listed
    return len(stored) < len(listed) or stored[len(stored) - len(listed) :] != listed


def _titles_differ(live: dict[str, LivePage], ancestors: object, listed: list[str]) -> bool:
    """Whether a stored page's ``metadata.ancestors`` names a listed ancestor by another title."""
    refs = ancestors if isinstance(ancestors, list) else []
    titles = {a.get("id"): a.get("title") for a in refs if isinstance(a, dict)}
    return any(pid in titles and titles[pid] != live[pid].title for pid in listed if live[pid].title)


def stale_trees(
    live: dict[str, LivePage], stored_tree: dict[str, tuple[str | None, str, object]], requeued: set[str]
) -> set[str]:
    """The stored live pages (``stored_tree``: page id -> (path, title, metadata.ancestors)) to re-queue
    because the listing contradicts their path or their ancestors' titles, leaving out those a re-queued
    page's storing mends anyway: a moved or renamed page A rewrites every page whose stored path lies under
    its own to A's new path + the rest of the stored path, which is right when that rest is what the
    listing has below A (re-fetching such a subtree would cost a request per 50 pages for nothing).
    ``requeued``: the pages re-queued already (newer, or under another parent)."""
    chains = {pid: listed_ancestors(live, pid) for pid in stored_tree}
    moved = {pid for pid, (path, _, _) in stored_tree.items() if _path_differs(path, *chains[pid])}
    differs = moved | {
        pid for pid, (_, _, ancestors) in stored_tree.items() if _titles_differ(live, ancestors, chains[pid][0])
    }
    renamed = {pid for pid, (_, title, _) in stored_tree.items() if live[pid].title and title != live[pid].title}
    rewriting: dict[str, str] = {}  # page id -> its stored path, for the pages whose storing rewrites below it
    stale: set[str] = set()

    def mended(path: str, above: list[str], listed: list[str]) -> bool:
        return any(
            a in rewriting
            and path.startswith(rewriting[a] + "/")
            and a in listed
            and listed[listed.index(a) + 1 :] == above[above.index(a) + 1 :]
            for a in above
        )

    for pid in sorted(differs | renamed, key=lambda p: ((stored_tree[p][0] or "").count("/"), p)):  # top first
        path = stored_tree[pid][0] or ""
        above = [p for p in path.split("/") if p][:-1]
        if pid in differs and pid not in requeued and not mended(path, above, chains[pid][0]):
            stale.add(pid)
        # Storing it rewrites below it only when its path or its title changes (page_tree.store_page).
        if (pid in requeued or pid in stale) and (pid in renamed or pid in moved):
            rewriting[pid] = path
    return stale


def _version(content: dict) -> int:
    return int((content.get("version") or {}).get("number") or 0)


def _last_ancestor(content: dict) -> str | None:
    ancestors = content.get("ancestors") or []
    return str(ancestors[-1]["id"]) if ancestors else None


def list_live_pages(
    api: ConfluenceAPI, space_key: str, content_types: Iterable[str] = (PAGE, BLOGPOST)
) -> dict[str, LivePage]:
    """Every current page, blog post and tree node of the space (version and parent), listed to the last
    cursor; ``content_types`` as the sync's (pages bring the tree's folders, whiteboards, databases and
    embeds with them).

    Cloud: v2 ``/spaces/{id}/pages`` and ``/spaces/{id}/blogposts`` (ids, versions and parent ids, 250 per
    request, no bodies); the parent is the page's ``parentId`` whatever its ``parentType`` (a folder
    too, as page_metadata's path has it from the v1 ancestors). Tree nodes have no space-wide v2 listing:
    CQL lists them with their versions and ancestors. Data Center has no v2 API (404) and no tree nodes:
    v1 ``/content?spaceKey=&type=`` with ``expand=version,ancestors`` instead.
    """
    validate_space_key(space_key)
    types = set(content_types)
    try:
        if api.has_v2 is False:  # known Data Center (a personal access token, or an earlier 404): no v2 to ask
            raise ConfluenceNotFoundError("no v2 API")
        found = api.get_json("api/v2/spaces", {"keys": space_key}).get("results") or []
    except ConfluenceNotFoundError:
        live: dict[str, LivePage] = {}
        for kind in (k for k in (PAGE, BLOGPOST) if k in types):
            params = {"spaceKey": space_key, "type": kind, "status": "current", "limit": 200}
            for p in api.paginate("rest/api/content", {**params, "expand": "version,ancestors"}):
                live[str(p["id"])] = LivePage(_version(p), _last_ancestor(p), p.get("title") or "")
        return live
    if not found:
        raise ConfluenceNotFoundError(f"space {space_key} is not visible to these credentials")
    space_id = found[0]["id"]
    live = {}
    for kind, collection in ((PAGE, "pages"), (BLOGPOST, "blogposts")):
        if kind in types:
            for p in api.paginate(f"api/v2/spaces/{space_id}/{collection}", {"limit": 250, "status": "current"}):
                parent = str(p["parentId"]) if p.get("parentId") else None
                live[str(p["id"])] = LivePage(_version(p), parent, p.get("title") or "")
    if PAGE in types:
        cql = space_pages_cql(space_key, types=TREE_NODE_TYPES)
        for n in api.search_pages(cql, expand="version,ancestors", limit=NODE_PAGE):
            live[str(n["id"])] = LivePage(_version(n), _last_ancestor(n), n.get("title") or "")
    return live


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def reconcile_space(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    *,
    run_id: str | None = None,
    rendered_macros: Iterable[str] = (),
    content_types: Iterable[str] = (PAGE, BLOGPOST),
    child_types: Sequence[str] = (),
    deletion_limit: MassDeletionSettings | None = None,
    confirm_mass_deletion: bool = False,
) -> ReconcileSummary:
    """Reconcile one space; ``conn`` must be in autocommit mode. The pages it stages get what
    changed_pages' do (sync/rendering.py): their dependents staged again, their ``rendered_macros``
    rendered. With ``child_types`` (comment, attachment) the space's comments and attachments are listed
    too: a page one of whose was deleted (CQL never shows a deletion) or missed is staged again.
    Deletions beyond ``deletion_limit`` are held back unless ``confirm_mass_deletion``."""
    started = time.monotonic()
    calls_before = api.stats.attempts
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    content_types = tuple(content_types)
    live = list_live_pages(api, space_key, content_types)  # raises on any failure: nothing below runs
    summary = ReconcileSummary(live_pages=len(live))

    stored: dict[str, tuple[int | None, bool, str | None]] = {}
    stored_tree: dict[str, tuple[str | None, str, object]] = {}  # the live, listed ones: path, title, ancestors
    for pid, indexed, deleted, path, title, ancestors in conn.execute(
        """SELECT page_id, indexed_version, is_deleted, path, title, metadata->'ancestors' FROM confluence_pages
           WHERE source_id = %s""",
        (source_id,),
    ):
        stored[pid] = (indexed, deleted, page_tree.parent_of(path, pid))
        if not deleted and pid in live:
            stored_tree[pid] = (path, title or "", ancestors)
    summary.stored_live = sum(not deleted for _, deleted, _ in stored.values())
    gone = sorted(pid for pid, (_, deleted, _) in stored.items() if not deleted and pid not in live)
    restored = sorted(pid for pid, (_, deleted, _) in stored.items() if deleted and pid in live)
    missed_set = {
        pid
        for pid, page in live.items()
        if pid not in stored
        or (not stored[pid][1] and ((stored[pid][0] or 0) < page.version or stored[pid][2] != page.parent_id))
    }
    missed = sorted(missed_set | stale_trees(live, stored_tree, missed_set))

    summary.held_back = hold_back(conn, source_id, gone, summary.stored_live, deletion_limit, confirm_mass_deletion)
    if summary.held_back:
        log.warning("%s: %s", space_key, summary.held_back.describe())
        gone = []
    for batch in _batches(gone, 500):
        with conn.transaction():
            summary.chunks_removed += indexed_pages.remove(conn, batch)
            conn.execute(
                """UPDATE confluence_pages SET is_deleted = TRUE, deleted_at = now(), indexed_version = NULL,
                     updated_at = now() WHERE page_id = ANY(%s)""",
                (batch,),
            )
            staging.drop(conn, source_id, batch)
            page_tree.refresh_children(conn, {stored[pid][2] for pid in batch if stored[pid][2]})
    summary.deleted = gone

    children = _pages_with_changed_children(api, conn, space_key, child_types, live, set(missed) | set(restored))
    followed: dict[str, rendering.StagedPage] = {}
    for kind, ids in (("restored", restored), ("requeued", missed), ("updated", children)):
        staged = _stage_by_id(
            api, conn, source_id, ids, kind, run_id, summary.skipped, followed, listed_types(content_types)
        )
        getattr(summary, "children_changed" if kind == "updated" else kind).extend(staged)
        vanished = sorted(set(ids) - set(staged) - {pid for pid, _ in summary.skipped})
        if vanished:
            log.warning("%s: %d pages listed but gone when fetched: %s", space_key, len(vanished), vanished[:20])
            summary.vanished.extend(vanished)
    extra = rendering.follow_up(api, conn, space_key, followed, rendered_macros=rendered_macros, run_id=run_id)
    summary.dependents = [pid for pid, *_ in extra.dependents]
    summary.rendered = extra.rendered
    summary.skipped.extend(extra.skipped)

    summary.api_calls = api.stats.attempts - calls_before
    summary.duration_seconds = time.monotonic() - started
    sources.merge_metadata(conn, source_id, {"last_full_reconciliation": summary.as_metadata()})
    return summary


def _pages_with_changed_children(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    child_types: Sequence[str],
    live: dict[str, LivePage],
    staging_anyway: set[str],
) -> list[str]:
    """Live, stored pages (not staged by this reconciliation anyway) whose comments or attachments in
    Confluence are not the ones stored: one deleted, one new that a change search missed, another version.
    One CQL listing of the space's ``child_types`` (container and version, no body, 200 a request)."""
    if not child_types:
        return []
    listed: dict[str, tuple[str, int]] = {}
    for item in api.search_pages(
        space_pages_cql(space_key, types=tuple(child_types)), expand="container,version", limit=NODE_PAGE
    ):
        container = str((item.get("container") or {}).get("id") or "")
        if container and item.get("id"):
            listed[str(item["id"])] = (container, int((item.get("version") or {}).get("number") or 0))
    stored = extras.stored_children(conn, source_id_for(space_key), child_types)
    differ = {page for child, (page, v) in listed.items() if stored.get(child) != (page, v)}
    differ |= {page for child, (page, _) in stored.items() if child not in listed}
    indexed = {
        pid
        for (pid,) in conn.execute(
            "SELECT page_id FROM confluence_pages WHERE source_id = %s AND NOT is_deleted AND page_id = ANY(%s)",
            (source_id_for(space_key), sorted(differ)),
        )
    }
    return sorted(p for p in differ & indexed if p in live and p not in staging_anyway)


def _stage_by_id(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    source_id: str,
    ids: list[str],
    kind: str,
    run_id: str | None,
    skipped: list[tuple[str, str]],
    followed: dict[str, rendering.StagedPage],
    types: tuple[str, ...] = (PAGE,),
) -> list[str]:
    """Fetch pages by id with their bodies and stage them; pages gone meanwhile are left out, pages that
    came without version information are added to ``skipped`` with the reason."""
    staged: list[str] = []
    for batch in _batches(ids, FETCH_BATCH):
        pages = list(api.search_pages(page_ids_cql(batch, types)))
        rows = []
        for page in pages:
            try:
                version, when = page_version(page)
            except ValueError as exc:
                log.warning("%s: skipped a fetched page: %s", source_id, exc)
                skipped.append((str(page.get("id") or "?"), str(exc)))
                continue
            api.complete_attachments(page)
            rows.append(staging.staged_row(source_id, page, version, when, kind, run_id))
            staged.append(page["id"])
            followed[page["id"]] = rendering.StagedPage.of(page)
        if rows:
            with conn.transaction():
                staging.upsert_staged_pages(conn, rows)
    return staged
