"""Reconciliation: compare every live page id of a space with confluence_pages.

CQL never returns trashed or purged pages, so deletions are found only by comparing full id sets. The
listing runs to its last cursor before anything is compared; if it fails part-way the function raises
and nothing is deleted (an incomplete list must never look like deletions).

- stored live, not listed       -> soft-deleted (is_deleted, deleted_at) and its chunks removed, in one
                                   transaction per batch
- listed, newer than indexed    -> a change CQL missed: fetched with its body and staged ('requeued')
- listed under another parent   -> moved (a move makes no new version, so CQL cannot see it): re-queued
                                   like a missed change; its subtree's paths follow
- listed, soft-deleted here     -> restored: fetched and staged ('restored'); chunks come back on the
                                   next sync run
- listed, gone when fetched     -> recorded as vanished (trashed or restricted between the listing and
                                   the fetch); the next reconciliation deletes it if it stays gone

The children lists (``metadata.children``) of the parents of deleted pages are recomputed from the stored
tree in the transaction that deletes them; moved and restored pages get theirs when page_metadata
converts them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import page_ids_cql
from confluence_assets.confluence.errors import ConfluenceNotFoundError
from confluence_assets.confluence.keys import source_id_for, validate_space_key
from confluence_assets.confluence.responses import page_version
from confluence_assets.sync import page_tree, rendering, sources, staging

log = logging.getLogger(__name__)

FETCH_BATCH = 50  # ids per CQL `id in (...)` request (bodies expanded: Confluence caps at 50)


@dataclass
class ReconcileSummary:
    live_pages: int = 0
    stored_live: int = 0
    deleted: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)  # pages showing a staged one, staged again
    rendered: list[str] = field(default_factory=list)  # staged pages given Confluence's rendering
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): not stageable
    chunks_removed: int = 0
    api_calls: int = 0
    duration_seconds: float = 0.0

    def metrics(self) -> dict:
        return {
            "live_pages": self.live_pages,
            "stored_live_pages": self.stored_live,
            "deleted": len(self.deleted),
            "restored": len(self.restored),
            "requeued": len(self.requeued),
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
            "restored": self.restored,
            "vanished": self.vanished,
        }


@dataclass(frozen=True)
class LivePage:
    version: int
    parent_id: str | None


def list_live_pages(api: ConfluenceAPI, space_key: str) -> dict[str, LivePage]:
    """Every current page of the space (version and parent), listed to the last cursor.

    Cloud: v2 ``/spaces/{id}/pages`` (ids, versions and parent ids, 250 per request, no bodies). Data
    Center has no v2 API (404): v1 ``/content?spaceKey=`` with ``expand=version,ancestors`` instead.
    """
    validate_space_key(space_key)
    try:
        found = api.get_json("api/v2/spaces", {"keys": space_key}).get("results") or []
    except ConfluenceNotFoundError:
        pages = api.paginate(
            "rest/api/content",
            {"spaceKey": space_key, "type": "page", "status": "current", "limit": 200, "expand": "version,ancestors"},
        )
        return {
            str(p["id"]): LivePage(
                int((p.get("version") or {}).get("number") or 0),
                str(p["ancestors"][-1]["id"]) if p.get("ancestors") else None,
            )
            for p in pages
        }
    if not found:
        raise ConfluenceNotFoundError(f"space {space_key} is not visible to these credentials")
    pages = api.paginate(f"api/v2/spaces/{found[0]['id']}/pages", {"limit": 250, "status": "current"})
    return {
        str(p["id"]): LivePage(
            int((p.get("version") or {}).get("number") or 0),
            str(p["parentId"]) if p.get("parentId") and p.get("parentType", "page") == "page" else None,
        )
        for p in pages
    }


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
) -> ReconcileSummary:
    """Reconcile one space; ``conn`` must be in autocommit mode. The pages it stages get what
    changed_pages' do (sync/rendering.py): their dependents staged again, their ``rendered_macros``
    rendered."""
    started = time.monotonic()
    calls_before = api.stats.attempts
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    live = list_live_pages(api, space_key)  # raises on any failure: nothing below runs
    summary = ReconcileSummary(live_pages=len(live))

    stored = {
        pid: (indexed, deleted, page_tree.parent_of(path, pid))
        for pid, indexed, deleted, path in conn.execute(
            "SELECT page_id, indexed_version, is_deleted, path FROM confluence_pages WHERE source_id = %s",
            (source_id,),
        )
    }
    summary.stored_live = sum(not deleted for _, deleted, _ in stored.values())
    gone = sorted(pid for pid, (_, deleted, _) in stored.items() if not deleted and pid not in live)
    restored = sorted(pid for pid, (_, deleted, _) in stored.items() if deleted and pid in live)
    missed = sorted(
        pid
        for pid, page in live.items()
        if pid not in stored
        or (not stored[pid][1] and ((stored[pid][0] or 0) < page.version or stored[pid][2] != page.parent_id))
    )

    for batch in _batches(gone, 500):
        with conn.transaction():
            summary.chunks_removed += conn.execute(
                """DELETE FROM archon_crawled_pages
                   WHERE metadata ? 'page_id' AND metadata->>'page_id' = ANY(%s) AND url LIKE 'confluence://%%'""",
                (batch,),
            ).rowcount
            conn.execute(
                """UPDATE confluence_pages SET is_deleted = TRUE, deleted_at = now(), indexed_version = NULL,
                     updated_at = now() WHERE page_id = ANY(%s)""",
                (batch,),
            )
            staging.drop(conn, source_id, batch)
            page_tree.refresh_children(conn, {stored[pid][2] for pid in batch if stored[pid][2]})
    summary.deleted = gone

    followed: dict[str, rendering.StagedPage] = {}
    for kind, ids in (("restored", restored), ("requeued", missed)):
        staged = _stage_by_id(api, conn, source_id, ids, kind, run_id, summary.skipped, followed)
        getattr(summary, kind).extend(staged)
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


def _stage_by_id(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    source_id: str,
    ids: list[str],
    kind: str,
    run_id: str | None,
    skipped: list[tuple[str, str]],
    followed: dict[str, rendering.StagedPage],
) -> list[str]:
    """Fetch pages by id with their bodies and stage them; pages gone meanwhile are left out, pages that
    came without version information are added to ``skipped`` with the reason."""
    staged: list[str] = []
    for batch in _batches(ids, FETCH_BATCH):
        pages = list(api.search_pages(page_ids_cql(batch)))
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
