"""Step (page_attachments): the staged pages' attachments and comments, between page_metadata and page_chunks.

For each converted staged page, its attachments as its staged listing shows them (the ``children.attachment``
expansion, completed by changed_pages) are compared with ``confluence_attachments``:

- a new attachment, a new version, or text from another extractor version: downloaded (streamed to a
  temporary file, size- and time-limited: confluence/downloads.py), extracted in worker subprocesses
  (one :class:`~confluence_assets.extract.Extractor` for the whole step, bounded in memory and time) and
  stored with its outcome: ``extracted`` with the text, ``failed`` with the reason, ``skipped`` for types
  that are not extracted (images, audio and video are not even downloaded);
- the same version: nothing is downloaded (an edit of the page alone costs no download);
- no longer listed: its row is deleted (its chunks go with the page's swap, which follows in this run).

A staged payload without the expansion (nothing listed at all) changes nothing stored. Then the comments
of the same pages: one CQL search ``type = comment AND container in (...)`` per batch of pages (bodies,
authors, inline anchors and resolution in the same requests, 50 comments a request), replacing each page's
rows in ``confluence_comments``. page_chunks then chunks the page's Markdown, its comments and its
attachments' text together, so all of it is the page's chunk set: swapped, deleted and permission-checked
with the page.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.cql import comments_cql
from confluence_assets.confluence.downloads import DownloadError, download_attachment, listed_version
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import clean_text
from confluence_assets.content.comments import PageComment, comment_from_v1
from confluence_assets.extract import EXTRACTED, EXTRACTOR_VERSION, FAILED, SKIPPED, Extractor, Limits
from confluence_assets.sync import crashpoints, staging

BATCH = 50  # pages per comment search (ids in one `container in (...)`)
NOT_DOWNLOADED = ("image/", "audio/", "video/")  # never extracted: listed with their metadata only
COMMENT_EXPAND = "body.storage,version,history,ancestors,container,extensions.inlineProperties,extensions.resolution"
MB = 1024 * 1024


@dataclass(frozen=True)
class AttachmentOptions:
    attachments: bool = True
    comments: bool = True
    max_bytes: int = 50 * MB
    timeout_seconds: float = 30.0
    max_text_chars: int = 300_000


@dataclass(frozen=True)
class AttachmentFailure:
    page_id: str
    attachment_id: str
    file_name: str
    reason: str


@dataclass
class AttachmentSummary:
    pages: int = 0
    listed: int = 0
    downloaded: int = 0
    unchanged: int = 0
    skipped: int = 0
    removed: int = 0
    bytes_downloaded: int = 0
    download_requests: int = 0
    extraction_seconds: float = 0.0
    peak_worker_rss_bytes: int = 0
    comments: int = 0
    comment_requests: int = 0
    failed: list[AttachmentFailure] = field(default_factory=list)
    # file type (its extension) -> [files extracted, pages / slides / sheets read, worker seconds, bytes]
    by_type: dict[str, list[float]] = field(default_factory=dict)

    def metrics(self) -> dict[str, int | float]:
        return {
            "attachment_pages": self.pages,
            "attachments_listed": self.listed,
            "attachments_downloaded": self.downloaded,
            "attachments_unchanged": self.unchanged,
            "attachments_failed": len(self.failed),
            "attachments_skipped": self.skipped,
            "attachments_removed": self.removed,
            "attachment_bytes_downloaded": self.bytes_downloaded,
            "attachment_download_requests": self.download_requests,
            "attachment_extraction_seconds": round(self.extraction_seconds, 2),
            "attachment_peak_worker_rss_mb": round(self.peak_worker_rss_bytes / MB, 1),
            "comments_stored": self.comments,
            "comment_requests": self.comment_requests,
        }


@dataclass(frozen=True)
class Listed:
    attachment_id: str
    file_name: str
    media_type: str
    file_size: int | None
    version: int


def sync_attachments(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    space_key: str,
    *,
    base_url: str,
    options: AttachmentOptions | None = None,
    progress: Callable[[int], None] | None = None,
) -> AttachmentSummary:
    """Bring the converted staged pages' attachments and comments up to date; ``conn`` in autocommit."""
    options = options or AttachmentOptions()
    source_id = source_id_for(space_key)
    summary = AttachmentSummary()
    limits = Limits(
        max_file_bytes=options.max_bytes, timeout_seconds=options.timeout_seconds, max_text_chars=options.max_text_chars
    )
    extractor: Extractor | None = None

    def extractor_for_batch() -> Extractor:
        nonlocal extractor
        if extractor is None:  # started by the first file to extract, kept for the step
            extractor = Extractor(limits)
        return extractor

    try:
        with tempfile.TemporaryDirectory(prefix="confluence-attachments-") as tmp:
            for rows in staging.to_chunk(conn, source_id, BATCH):
                page_ids = [r[0] for r in rows]
                summary.pages += len(page_ids)
                if options.attachments:
                    listings = _listings(conn, source_id, page_ids)
                    _sync_batch(api, conn, source_id, listings, extractor_for_batch, options, Path(tmp), summary)
                else:
                    conn.execute("DELETE FROM confluence_attachments WHERE page_id = ANY(%s)", (page_ids,))
                if options.comments:
                    _sync_comments(api, conn, source_id, page_ids, base_url, summary)
                else:
                    conn.execute("DELETE FROM confluence_comments WHERE page_id = ANY(%s)", (page_ids,))
                crashpoints.reached("attachment_batch")
                if progress:
                    progress(summary.pages)
    finally:
        if extractor is not None:
            summary.peak_worker_rss_bytes = extractor.stats.peak_worker_rss_bytes
            extractor.close()
    return summary


def _listings(conn: psycopg.Connection, source_id: str, page_ids: list[str]) -> dict[str, list[Listed]]:
    """{page id: its listed attachments} of the staged pages whose payload has the attachment expansion."""
    found: dict[str, list[Listed]] = {}
    for page_id, results in conn.execute(
        """SELECT page_id, payload->'children'->'attachment'->'results' FROM confluence_sync_staged_pages
           WHERE source_id = %s AND page_id = ANY(%s)
             AND json_typeof(payload->'children'->'attachment'->'results') = 'array'""",
        (source_id, page_ids),
    ):
        listed = []
        for att in results or []:
            if not isinstance(att, dict) or not att.get("id"):
                continue
            meta, ext = att.get("metadata") or {}, att.get("extensions") or {}
            size = ext.get("fileSize")
            listed.append(
                Listed(
                    attachment_id=str(att["id"]),
                    file_name=str(att.get("title") or ""),
                    media_type=str(meta.get("mediaType") or ext.get("mediaType") or ""),
                    file_size=size if isinstance(size, int) else None,
                    version=listed_version(att) or 0,
                )
            )
        found[page_id] = listed
    return found


def _stored(conn: psycopg.Connection, page_ids: list[str]) -> dict[str, dict[str, tuple[int, str]]]:
    """{page id: {attachment id: (version, extractor_version)}} stored for the pages."""
    stored: dict[str, dict[str, tuple[int, str]]] = {}
    for page_id, aid, version, extractor in conn.execute(
        """SELECT page_id, attachment_id, version, extractor_version FROM confluence_attachments
           WHERE page_id = ANY(%s)""",
        (page_ids,),
    ):
        stored.setdefault(page_id, {})[aid] = (version, extractor)
    return stored


def _unchanged(att: Listed, stored: dict[str, tuple[int, str]]) -> bool:
    return stored.get(att.attachment_id) == (att.version, EXTRACTOR_VERSION)


def _sync_batch(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    source_id: str,
    listings: dict[str, list[Listed]],
    extractor_for_batch: Callable[[], Extractor],
    options: AttachmentOptions,
    tmp: Path,
    summary: AttachmentSummary,
) -> None:
    """The attachments of a batch of pages: what changed is downloaded and extracted as one stream (the
    next file downloads while the workers extract the previous ones, every worker busy however few files
    each page has), then each page's rows are written in a transaction of its own."""
    stored = _stored(conn, list(listings))
    rows: dict[str, list[tuple]] = {page_id: [] for page_id in listings}
    wanted: list[tuple[str, Listed]] = []
    for page_id, listed in listings.items():
        summary.listed += len(listed)
        for att in listed:
            if _unchanged(att, stored.get(page_id, {})):
                summary.unchanged += 1
            elif att.media_type.startswith(NOT_DOWNLOADED):
                summary.skipped += 1
                reason = "images, audio and video are not extracted"
                rows[page_id].append(_row(source_id, page_id, att, SKIPPED, reason))
            elif att.file_size is not None and att.file_size > options.max_bytes:
                reason = f"too large: {att.file_size / MB:,.1f} MB (limit {options.max_bytes / MB:,.0f} MB)"
                rows[page_id].append(_failed(summary, source_id, page_id, att, reason))
            else:
                wanted.append((page_id, att))

    fetched: list[tuple[str, Listed, Path, datetime]] = []  # in the order the extractor answers

    def downloaded() -> Iterator[tuple[str, str, str | None]]:
        for page_id, att in wanted:
            dest = tmp / f"{att.attachment_id}-{att.version}"
            before = api.stats.attempts
            try:
                got = download_attachment(
                    api,
                    page_id,
                    att.attachment_id,
                    dest,
                    version=att.version or None,
                    max_bytes=options.max_bytes,
                    timeout_seconds=options.timeout_seconds,
                )
            except DownloadError as exc:
                # A transient failure is stored without an extractor version: the page's next sync tries again.
                rows[page_id].append(_failed(summary, source_id, page_id, att, exc.reason, retry=exc.transient))
                dest.unlink(missing_ok=True)
                continue
            finally:
                summary.download_requests += api.stats.attempts - before
            summary.downloaded += 1
            summary.bytes_downloaded += got.size
            fetched.append((page_id, att, got.path, datetime.now(UTC)))
            yield (str(got.path), att.file_name, att.media_type or None)

    if wanted:
        for index, result in enumerate(extractor_for_batch().extract_many(downloaded())):
            page_id, att, path, when = fetched[index]
            path.unlink(missing_ok=True)
            summary.extraction_seconds += result.seconds
            figures = summary.by_type.setdefault(Path(att.file_name).suffix.lower().lstrip(".") or "-", [0, 0, 0.0, 0])
            figures[0] += 1
            figures[1] += result.units
            figures[2] += result.seconds
            figures[3] += att.file_size or 0
            if result.status == FAILED:
                rows[page_id].append(_failed(summary, source_id, page_id, att, result.reason, downloaded_at=when))
                continue
            if result.status == SKIPPED:
                summary.skipped += 1
            text = clean_text(result.text) if result.status == EXTRACTED else ""
            rows[page_id].append(_row(source_id, page_id, att, result.status, result.reason, text, result.units, when))

    for page_id, listed in listings.items():
        still_listed = {a.attachment_id for a in listed}
        gone = [aid for aid in stored.get(page_id, {}) if aid not in still_listed]
        if not gone and not rows[page_id]:
            continue
        with conn.transaction():
            if gone:
                conn.execute("DELETE FROM confluence_attachments WHERE attachment_id = ANY(%s)", (gone,))
            if rows[page_id]:
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT, rows[page_id])
        summary.removed += len(gone)


def _failed(
    summary: AttachmentSummary,
    source_id: str,
    page_id: str,
    att: Listed,
    reason: str,
    *,
    retry: bool = False,
    downloaded_at: datetime | None = None,
) -> tuple:
    # Logged once, by the asset (Dagster's logger), from summary.failed.
    summary.failed.append(AttachmentFailure(page_id, att.attachment_id, att.file_name, reason))
    return _row(source_id, page_id, att, FAILED, reason, downloaded_at=downloaded_at, extractor="" if retry else None)


def _row(
    source_id: str,
    page_id: str,
    att: Listed,
    status: str,
    reason: str = "",
    text: str = "",
    units: int = 0,
    downloaded_at: datetime | None = None,
    extractor: str | None = None,
) -> tuple:
    return (
        att.attachment_id,
        page_id,
        source_id,
        att.file_name,
        att.media_type,
        att.file_size,
        att.version,
        status,
        reason[:2000],
        EXTRACTOR_VERSION if extractor is None else extractor,
        text,
        len(text),
        units,
        downloaded_at,
    )


_UPSERT = """
    INSERT INTO confluence_attachments (attachment_id, page_id, source_id, file_name, media_type, file_size, version,
                                        status, reason, extractor_version, text, chars, units, downloaded_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (attachment_id) DO UPDATE SET
      page_id = EXCLUDED.page_id, source_id = EXCLUDED.source_id, file_name = EXCLUDED.file_name,
      media_type = EXCLUDED.media_type, file_size = EXCLUDED.file_size, version = EXCLUDED.version,
      status = EXCLUDED.status, reason = EXCLUDED.reason, extractor_version = EXCLUDED.extractor_version,
      text = EXCLUDED.text, chars = EXCLUDED.chars, units = EXCLUDED.units,
      downloaded_at = COALESCE(EXCLUDED.downloaded_at, confluence_attachments.downloaded_at), updated_at = now()"""


def _sync_comments(
    api: ConfluenceAPI,
    conn: psycopg.Connection,
    source_id: str,
    page_ids: list[str],
    base_url: str,
    summary: AttachmentSummary,
) -> None:
    """Replace the comments of ``page_ids`` with what Confluence lists now (one search for them all)."""
    ids = [p for p in page_ids if p.isdigit()]
    if not ids:
        return
    before = api.stats.attempts
    found: list[PageComment] = []
    for comment in api.search_pages(comments_cql(ids), expand=COMMENT_EXPAND):
        container = comment.get("container") or {}
        page_id = str(container.get("id") or "")
        if page_id in ids and comment.get("id"):
            found.append(comment_from_v1(clean_text(comment), page_id, base_url))
    summary.comment_requests += api.stats.attempts - before
    summary.comments += len(found)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM confluence_comments WHERE page_id = ANY(%s)", (ids,))
        cur.executemany(
            """INSERT INTO confluence_comments (comment_id, page_id, source_id, parent_id, location, resolved, anchor,
                                                author, created_at, version, markdown)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (comment_id) DO UPDATE SET page_id = EXCLUDED.page_id, parent_id = EXCLUDED.parent_id,
                 location = EXCLUDED.location, resolved = EXCLUDED.resolved, anchor = EXCLUDED.anchor,
                 author = EXCLUDED.author, created_at = EXCLUDED.created_at, version = EXCLUDED.version,
                 markdown = EXCLUDED.markdown, updated_at = now()""",
            [
                (
                    c.comment_id,
                    c.page_id,
                    source_id,
                    c.parent_id,
                    c.location if c.location == "inline" else "footer",
                    c.resolved,
                    c.anchor,
                    c.author,
                    c.created_at,
                    c.version,
                    c.markdown,
                )
                for c in found
            ],
        )
