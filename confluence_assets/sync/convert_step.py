"""Step 2 (page_metadata): convert staged pages and upsert confluence_pages.

Each staged page is converted (Markdown + metadata + materialised path); the result goes to
confluence_pages and the Markdown stays in staging for chunking. A page that cannot be converted is
recorded as failed with its reason and the others carry on. When a page moved, the paths of its
descendants are rewritten too (Confluence does not report them as modified).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
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
        done, failed = [], []
        for page_id, title, payload in rows:
            try:
                page = json.loads(payload)
                converted = convert(page, base_url, resolve_title=resolve_title)
                done.append((page_id, page, converted))
            except conversion_error as exc:
                failed.append(FailedPage(page_id, title, str(exc)))
            except Exception as exc:  # a converter bug must cost one page, not the space
                log.exception("unexpected error converting page %s", page_id)
                failed.append(FailedPage(page_id, title, f"{type(exc).__name__}: {exc}"))
        with conn.transaction():
            for page_id, page, converted in done:
                summary.moved += _store_page(conn, source_id, space_key, page, converted)
                conn.execute(
                    """UPDATE confluence_sync_staged_pages SET stage = 'converted', markdown = %s, error = NULL,
                         updated_at = now() WHERE source_id = %s AND page_id = %s""",
                    (converted.markdown, source_id, page_id),
                )
            for f in failed:
                conn.execute(
                    """UPDATE confluence_sync_staged_pages SET stage = 'failed', error = %s,
                         attempts = attempts + 1, updated_at = now() WHERE source_id = %s AND page_id = %s""",
                    (f.error[:2000], source_id, f.page_id),
                )
        crashpoints.reached("convert_batch")
        summary.converted += len(done)
        summary.failed.extend(failed)
        if progress:
            progress(summary.converted + len(summary.failed))


def _store_page(conn: psycopg.Connection, source_id: str, space_key: str, page: dict, converted) -> int:
    """Upsert one page; returns 1 when it moved (its subtree's paths were rewritten)."""
    page_id = page["id"]
    old = conn.execute("SELECT path FROM confluence_pages WHERE page_id = %s", (page_id,)).fetchone()
    version = page.get("version") or {}
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
            page.get("title") or "",
            int(version.get("number") or 0),
            version.get("when"),
            converted.path,
            Jsonb(converted.metadata),
        ),
    )
    old_path = old[0] if old else None
    if old_path and old_path != converted.path:
        conn.execute(
            """UPDATE confluence_pages SET path = %s || substr(path, length(%s) + 1), updated_at = now()
               WHERE path LIKE %s ESCAPE '\\'""",
            (converted.path, old_path, _escape_like(old_path) + "/%"),
        )
        return 1
    return 0
