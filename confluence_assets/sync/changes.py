"""Step 1 (changed_pages): find what changed in a space and stage it durably.

One CQL search, bodies and versions expanded in the same requests, from the watermark minus an overlap
window (or the whole space on the first run). Each page is classified against what is indexed:
new / updated (version above the indexed one) / restored (was soft-deleted) / unchanged (skipped), and
pages already staged by an unfinished run stay staged.

A result that comes without version information cannot be classified: it is skipped with its reason
(``ChangeSummary.skipped``), the rest of the listing is staged. A page with more attachments than the
``children.attachment`` expansion holds (25 on Cloud, with a ``next`` link) gets the rest of its list
before it is staged: one more request per such page, none for the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI, resolve_next
from confluence_assets.confluence.cql import space_pages_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.sync import crashpoints, sources

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(minutes=10)
# Bounded memory: stage in batches of pages or bytes of payload, whichever fills first.
BATCH_PAGES = 100
BATCH_BYTES = 16 * 1024 * 1024
# The rest of an attachment list is asked for this many at a time (the server may cap it lower).
ATTACHMENT_PAGE = 200
MAX_ATTACHMENT_REQUESTS = 100  # per page: beyond that the list is kept as far as it got


@dataclass(frozen=True)
class StagedChange:
    page_id: str
    title: str
    version: int
    kind: str  # new | updated | restored
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
    newest_change: datetime | None = None
    changes: list[StagedChange] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (page id, reason): not classifiable


def parse_when(value: str) -> datetime:
    """Confluence timestamps: ISO 8601 with milliseconds, 'Z' or an offset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def page_version(page: dict) -> tuple[int, datetime]:
    """(version number, when) of a search result; ValueError naming the page when it has none usable."""
    version = page.get("version") if isinstance(page.get("version"), dict) else {}
    history = page.get("history") if isinstance(page.get("history"), dict) else {}
    last_updated = history.get("lastUpdated") if isinstance(history.get("lastUpdated"), dict) else {}
    number = version.get("number")
    when = version.get("when") or last_updated.get("when")
    if not page.get("id"):
        raise ValueError("a result came without an id")
    if number is None or when is None:
        raise ValueError(f"page {page.get('id')} came without version information (expand=version missing?)")
    try:
        return int(number), parse_when(str(when))
    except (TypeError, ValueError):
        raise ValueError(
            f"page {page.get('id')} came with unreadable version information: {number!r}, {when!r}"
        ) from None


def complete_attachments(api: ConfluenceAPI, page: dict) -> int:
    """Follow the ``children.attachment`` expansion's ``next`` link to the end, merging the results into
    ``page`` (in place) so that it lists every attachment. Returns the requests made (0 when the expansion
    was complete). A failure is logged and the page keeps the attachments listed so far."""
    listing = (page.get("children") or {}).get("attachment")
    if not isinstance(listing, dict):
        return 0
    links = listing.get("_links") or {}
    nxt = resolve_next(links, api.site_base)
    results = list(listing.get("results") or [])
    seen = {a.get("id") for a in results if isinstance(a, dict)}
    requests = 0
    followed: set[str] = set()
    try:
        while nxt and nxt not in followed and requests < MAX_ATTACHMENT_REQUESTS:
            followed.add(nxt)
            data = api.get_json(_with_limit(nxt, ATTACHMENT_PAGE), absolute=True)
            requests += 1
            for att in data.get("results") or []:
                if isinstance(att, dict) and att.get("id") not in seen:
                    seen.add(att.get("id"))
                    results.append(att)
            nxt = resolve_next(data.get("_links") or {}, api.site_base)
    except Exception as exc:  # the attachments a page lists are worth a warning, not the sync
        log.warning("page %s: could not list all its attachments (%s); kept %d", page.get("id"), exc, len(results))
    if requests:
        listing["results"] = results
        listing["size"] = len(results)
        listing["_links"] = {k: v for k, v in links.items() if k != "next"}
    return requests


def _with_limit(url: str, limit: int) -> str:
    """``url`` asking for ``limit`` results per page (an expansion's next link asks for its 25)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "limit"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("limit", str(limit))])))


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
) -> ChangeSummary:
    """Stage the space's new/updated pages; ``conn`` must be in autocommit mode."""
    source_id = source_id_for(space_key)
    sources.ensure_source(conn, space_key, base_url=api.site_base)
    state = sources.get_sync_state(conn, source_id)
    since = None if full or state.watermark is None else state.watermark - overlap
    cql = space_pages_cql(space_key, since, zone=zone)
    summary = ChangeSummary(cql=cql, full_load=since is None)

    indexed = {
        pid: (iv, deleted)
        for pid, iv, deleted in conn.execute(
            "SELECT page_id, indexed_version, is_deleted FROM confluence_pages WHERE source_id = %s", (source_id,)
        )
    }
    staged = dict(
        conn.execute(
            "SELECT page_id, version FROM confluence_sync_staged_pages WHERE source_id = %s AND stage <> 'failed'",
            (source_id,),
        ).fetchall()
    )

    for batch in _batches(api.search_pages(cql)):
        rows = []
        for page in batch:
            summary.seen += 1
            try:
                version, when = page_version(page)
            except ValueError as exc:
                log.warning("%s: skipped a search result: %s", space_key, exc)
                summary.skipped.append((str(page.get("id") or "?"), str(exc)))
                continue
            if summary.newest_change is None or when > summary.newest_change:
                summary.newest_change = when
            kind = classify(version, indexed.get(page["id"]), staged.get(page["id"]), reprocess=reprocess)
            if kind == "unchanged":
                summary.unchanged += 1
                continue
            if kind == "staged":
                summary.already_staged += 1
                continue
            setattr(summary, kind, getattr(summary, kind) + 1)
            summary.attachment_requests += complete_attachments(api, page)
            summary.changes.append(StagedChange(page["id"], page.get("title") or "", version, kind, api.page_url(page)))
            rows.append((source_id, page["id"], version, page.get("title") or "", when, kind, json.dumps(page), run_id))
        if rows:
            with conn.transaction():
                upsert_staged_pages(conn, rows)
            crashpoints.reached("stage_batch")
    if summary.newest_change is not None:
        sources.raise_pending_watermark(conn, source_id, summary.newest_change)
    return summary


def upsert_staged_pages(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """Stage pages: (source_id, page_id, version, title, last_modified, kind, payload_json, run_id) rows.
    An older version never replaces a newer staged one."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO confluence_sync_staged_pages
                 (source_id, page_id, version, title, last_modified, change_kind, stage, payload, staged_by_run)
               VALUES (%s, %s, %s, %s, %s, %s, 'fetched', %s, %s)
               ON CONFLICT (source_id, page_id) DO UPDATE SET
                 version = EXCLUDED.version, title = EXCLUDED.title, last_modified = EXCLUDED.last_modified,
                 change_kind = EXCLUDED.change_kind, stage = 'fetched', payload = EXCLUDED.payload,
                 markdown = NULL, error = NULL, attempts = 0, staged_by_run = EXCLUDED.staged_by_run, updated_at = now()
               WHERE confluence_sync_staged_pages.version <= EXCLUDED.version""",
            rows,
        )
