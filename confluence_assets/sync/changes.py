"""Step 1 (changed_pages): find what changed in a space and stage it durably.

One CQL search, bodies and versions expanded in the same requests, from the watermark minus an overlap
window (or the whole space on the first run), of the selected content types: pages with the tree's other
nodes (folders, whiteboards, databases, embeds: Cloud's, without a body) and blog posts. Each page is
classified against what is indexed: new / updated (version above the indexed one) / restored (was
soft-deleted) / unchanged (skipped), and pages already staged by an unfinished run stay staged.

A result that comes without version information cannot be classified: it is skipped with its reason
(``ChangeSummary.skipped``), the rest of the listing is staged. Each page brings its own read restriction
in the same requests (the ``restrictions.read.restrictions.user/group`` expansion); only a subject list
longer than the expansion shows costs a request (the client completes it). One that cannot be completed
leaves the page's restriction unknown (hidden once converted), named in ``restrictions_unknown``. A page
with more attachments than the ``children.attachment`` expansion holds (25 on Cloud, with a ``next`` link)
gets the rest of its list before it is staged: one more request per such page, none for the others.

Macros whose text exists only when rendered (sync/rendering.py): pages that show a staged page (an
include of it, the child list of its parent) are staged again, and the staged pages whose macros need
Confluence's rendering get it, each in one request per 49 such pages; pages without them cost nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from confluence_assets.confluence.client import SYNC_EXPAND, ConfluenceAPI
from confluence_assets.confluence.cql import CHILD_TYPES, space_pages_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.permissions import UNKNOWN, page_restriction
from confluence_assets.confluence.responses import listed_types, page_version
from confluence_assets.sync import crashpoints, dependents, extras, rendering, sources, staging

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(minutes=10)
# Bounded memory: stage in batches of pages or bytes of payload, whichever fills first.
BATCH_PAGES = 100
BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class StagedChange:
    page_id: str
    title: str
    version: int
    kind: str  # new | updated | restored | requeued (shows a staged page)
    url: str


@dataclass
class ChangeSummary:
    cql: str
    full_load: bool
    seen: int = 0
    new: int = 0
    updated: int = 0
    restored: int = 0
    unchanged: int = 0
    already_staged: int = 0
    attachment_requests: int = 0
    dependents: int = 0  # stored pages staged again because they show a staged page
    dependent_requests: int = 0
    rendered: int = 0  # staged pages given Confluence's rendering (body.export_view)
    rendering_requests: int = 0
    restriction_requests: int = 0  # completions of restriction lists longer than the listing's expansion
    container_pages: int = 0  # staged again: a comment or attachment of theirs changed (no page version)
    container_requests: int = 0
    restrictions_unknown: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): hidden
    newest_change: datetime | None = None
    changes: list[StagedChange] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): not classifiable

    def metrics(self) -> dict[str, int]:
        """The step's figures, under the names the run's sync_metrics use."""
        return {
            "pages_listed": self.seen,
            "pages_created": self.new,
            "pages_updated": self.updated,
            "pages_restored": self.restored,
            "pages_unchanged": self.unchanged,
            "pages_already_staged": self.already_staged,
            "pages_skipped": len(self.skipped),
            "attachment_requests": self.attachment_requests,
            "dependent_pages_requeued": self.dependents,
            "dependent_requests": self.dependent_requests,
            "rendered_pages": self.rendered,
            "rendering_requests": self.rendering_requests,
            "restriction_requests": self.restriction_requests,
            "pages_with_changed_comments_or_attachments": self.container_pages,
            "comment_attachment_requests": self.container_requests,
            "pages_restriction_unknown": len(self.restrictions_unknown),
        }


def classify(
    version: int, indexed: tuple[int | None, bool] | None, staged_version: int | None, *, reprocess: bool = False
) -> str:
    """new | updated | restored | unchanged | staged, for one live page. ``reprocess`` turns unchanged
    pages into updates (after a converter or chunker upgrade)."""
    if staged_version is not None and staged_version >= version:
        return "staged"
    if indexed is None:
        return "new"
    indexed_version, is_deleted = indexed
    if is_deleted:
        return "restored"
    if indexed_version is None:
        return "new" if staged_version is None else "updated"
    return "updated" if version > indexed_version or reprocess else "unchanged"


def _batches(pages: Iterable[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    size = 0
    for page in pages:
        batch.append(page)
        size += len(((page.get("body") or {}).get("storage") or {}).get("value") or "")
        if len(batch) >= BATCH_PAGES or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def stage_changes(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    *,
    run_id: str | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    zone: ZoneInfo | None = None,
    full: bool = False,
    reprocess: bool = False,
    rendered_macros: Iterable[str] = (),
    content_types: Iterable[str] = ("page", "blogpost"),
    child_types: Sequence[str] = (),
) -> ChangeSummary:
    """Stage the space's new/updated pages, then the pages showing them, then fetch the rendering of
    the ``rendered_macros`` kinds the staged pages need; ``conn`` must be in autocommit mode.
    ``content_types``: pages (and with them the tree's folders, whiteboards, databases, embeds), blog
    posts, or both; each goes through the same steps."""
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    state = sources.get_sync_state(conn, source_id)
    since = None if full or state.watermark is None else state.watermark - overlap
    types = listed_types(content_types)
    # A new or edited comment or attachment makes no new version of its page: the same search lists them
    # (with their container) so that a run with no change at all still costs one request.
    watched = tuple(child_types) if since is not None else ()  # a first load reads every page's anyway
    cql = space_pages_cql(space_key, since, zone=zone, types=types + watched)
    summary = ChangeSummary(cql=cql, full_load=since is None)

    indexed = {
        pid: (iv, deleted)
        for pid, iv, deleted in conn.execute(
            "SELECT page_id, indexed_version, is_deleted FROM confluence_pages WHERE source_id = %s", (source_id,)
        )
    }
    staged = staging.unfinished_versions(conn, source_id)
    followed: dict[str, rendering.StagedPage] = {}  # staged now or before: their macros and place
    completions_before = api.stats.restriction_requests
    children: dict[str, tuple[str, int]] = {}  # changed comment / attachment id -> (its page's id, version)

    for batch in _batches(api.search_pages(cql, expand=f"{SYNC_EXPAND},container" if watched else SYNC_EXPAND)):
        rows = []
        for page in batch:
            child = page.get("type") in CHILD_TYPES
            summary.seen += 0 if child else 1
            try:
                version, when = page_version(page)
            except ValueError as exc:
                log.warning("%s: skipped a search result: %s", space_key, exc)
                summary.skipped.append((str(page.get("id") or "?"), str(exc)))
                continue
            if summary.newest_change is None or when > summary.newest_change:
                summary.newest_change = when
            if child:
                container = str((page.get("container") or {}).get("id") or "")
                if container:
                    children[str(page["id"])] = (container, version)
                continue
            kind = classify(version, indexed.get(page["id"]), staged.get(page["id"]), reprocess=reprocess)
            if kind == "unchanged":
                summary.unchanged += 1
                continue
            if kind == "staged":
                summary.already_staged += 1
                followed[page["id"]] = rendering.StagedPage.of(page)  # its rendering may still be missing
                continue
            setattr(summary, kind, getattr(summary, kind) + 1)
            summary.attachment_requests += api.complete_attachments(page)
            restriction = page_restriction(page)
            if restriction.status == UNKNOWN:
                summary.restrictions_unknown.append((page["id"], restriction.error or ""))
            summary.changes.append(StagedChange(page["id"], page.get("title") or "", version, kind, api.page_url(page)))
            rows.append(staging.staged_row(source_id, page, version, when, kind, run_id))
            followed[page["id"]] = rendering.StagedPage.of(page)
        if rows:
            with conn.transaction():
                staging.upsert_staged_pages(conn, rows)
            crashpoints.reached("stage_batch")
    if children:
        _stage_containers(api, conn, space_key, children, followed, run_id, summary)
    extra = rendering.follow_up(api, conn, space_key, followed, rendered_macros=rendered_macros, run_id=run_id)
    summary.dependents, summary.dependent_requests = len(extra.dependents), extra.dependent_requests
    summary.rendered, summary.rendering_requests = len(extra.rendered), extra.render_requests
    summary.restriction_requests = api.stats.restriction_requests - completions_before
    if summary.restrictions_unknown:
        log.warning(
            "%s: %d staged pages' read restrictions could not be read in full (hidden until read): %s",
            space_key,
            len(summary.restrictions_unknown),
            [pid for pid, _ in summary.restrictions_unknown[:20]],
        )
    summary.skipped.extend(extra.skipped)
    summary.changes.extend(StagedChange(pid, title, v, "requeued", url) for pid, title, v, url in extra.dependents)
    if summary.newest_change is not None:
        sources.raise_pending_watermark(conn, source_id, summary.newest_change)
    return summary


# -- comments and attachments: changes that make no page version ---------------------------------------
def _stage_containers(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    children: dict[str, tuple[str, int]],
    followed: dict[str, rendering.StagedPage],
    run_id: str | None,
    summary: ChangeSummary,
) -> None:
    """Stage again (``updated``) the pages holding a changed comment or attachment of ``children`` whose
    version is not the stored one and that this run has not staged already, fetched by id, so that
    page_attachments reads their comments and attachments in this run."""
    known = extras.known_versions(conn, list(children))
    ids = sorted({page for child, (page, v) in children.items() if page not in followed and known.get(child) != v})
    restaged = dependents.stage_again(api, conn, source_id_for(space_key), ids, "updated", run_id)
    for page_id, title, version, url in restaged.listed:
        summary.changes.append(StagedChange(page_id, title, version, "updated", url))
    followed.update(restaged.pages)
    summary.skipped.extend(restaged.skipped)
    summary.container_pages, summary.container_requests = len(restaged.pages), restaged.requests
