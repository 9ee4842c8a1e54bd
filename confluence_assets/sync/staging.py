"""The staging state machine (confluence_sync_staged_pages and _chunks, sql/0.1.0/020), owned here alone.

A page is staged ``fetched`` with its REST payload (changed_pages, reconciliation), becomes ``converted``
with its Markdown (page_metadata), ``chunked`` with its chunks (page_chunks), and leaves staging in the
transaction that swaps its chunks in (chunk_embeddings). A page a step cannot process is ``failed`` with
its reason and converted again by a later run, up to MAX_ATTEMPTS. Staged work is "unfinished" until
it leaves staging; failed pages are recorded, not unfinished. The steps claim their work here in
batches by key, move pages between stages here, and ask here what is left; no other module names a
stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

MAX_ATTEMPTS = 3
ERROR_CHARS = 2000  # of a failure's reason kept in staging


class Stage(StrEnum):
    """confluence_sync_staged_pages.stage (its CHECK constraint lists the same values)."""

    FETCHED = "fetched"
    CONVERTED = "converted"
    CHUNKED = "chunked"
    FAILED = "failed"


@dataclass
class FailedPage:
    page_id: str
    title: str
    error: str


# -- staging pages -------------------------------------------------------------------------------------
def staged_row(source_id: str, page: dict, version: int, when: datetime, kind: str, run_id: str | None) -> tuple:
    """The upsert_staged_pages row of a page as Confluence returned it (``kind``: its change kind)."""
    return (source_id, page["id"], version, page.get("title") or "", when, kind, json.dumps(page), run_id)


def upsert_staged_pages(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """Stage pages: (source_id, page_id, version, title, last_modified, kind, payload_json, run_id) rows.
    An older version never replaces a newer staged one. ``staged_at`` is the transaction's start: after
    the fetch of these payloads, before any later one (the caller stages each batch when it has it)."""
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO confluence_sync_staged_pages
                 (source_id, page_id, version, title, last_modified, change_kind, stage, payload, staged_by_run)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (source_id, page_id) DO UPDATE SET
                 version = EXCLUDED.version, title = EXCLUDED.title, last_modified = EXCLUDED.last_modified,
                 change_kind = EXCLUDED.change_kind, stage = EXCLUDED.stage, payload = EXCLUDED.payload,
                 markdown = NULL, error = NULL, attempts = 0, staged_by_run = EXCLUDED.staged_by_run,
                 staged_at = now(), updated_at = now()
               WHERE confluence_sync_staged_pages.version <= EXCLUDED.version""",
            [(*row[:6], Stage.FETCHED, *row[6:]) for row in rows],
        )


def rendered_pages(conn: psycopg.Connection, source_id: str, page_ids: list[str]) -> set[str]:
    """The staged pages among ``page_ids`` whose payload already has Confluence's rendering."""
    return {
        row[0]
        for row in conn.execute(
            """SELECT page_id FROM confluence_sync_staged_pages
               WHERE source_id = %s AND page_id = ANY(%s) AND payload->'body'->'export_view' IS NOT NULL""",
            (source_id, page_ids),
        )
    }


def attach_rendering(conn: psycopg.Connection, source_id: str, page_id: str, representation: str, body: dict) -> None:
    """Keep a rendering of a staged page (``body.<representation>`` as Confluence returned it) in its
    payload, where conversion reads it; the page's stage stays."""
    conn.execute(
        """UPDATE confluence_sync_staged_pages
           SET payload = jsonb_set(payload::jsonb, ARRAY['body', %s], %s)::json, updated_at = now()
           WHERE source_id = %s AND page_id = %s""",
        (representation, Jsonb(body), source_id, page_id),
    )


# -- claiming work, a batch at a time ------------------------------------------------------------------
def _batches(
    conn: psycopg.Connection, query: str, params: dict[str, Any], start: dict[str, Any] | None = None
) -> Iterator[list[tuple]]:
    """The rows of ``query`` a batch at a time, keyed on their first columns: each batch is read when the
    one before has been handled, starting after its last key. ``start`` names the key's parameters in
    the order of those columns, with the values to start from (default: ``%(after)s``, the first column,
    from "")."""
    key = dict(start or {"after": ""})
    while True:
        rows = conn.execute(query, {**params, **key}).fetchall()
        if not rows:
            return
        key = dict(zip(key, rows[-1], strict=False))
        yield rows


def to_convert(conn: psycopg.Connection, source_id: str, batch: int) -> Iterator[list[tuple[str, str, str]]]:
    """(page_id, title, payload as JSON text) of the pages waiting to be converted: fetched, or failed
    with attempts left. ``batch`` at a time, in the order they were staged (then by id): payloads fetched
    at different times can disagree on the page tree (an ancestor moved or renamed in between), and the
    later one must be stored last, so that its rewrite of the subtree is what stays."""
    rows = _batches(
        conn,
        """SELECT staged_at, page_id, title, payload::text FROM confluence_sync_staged_pages
           WHERE source_id = %(sid)s AND (staged_at, page_id) > (%(at)s, %(after)s)
             AND (stage = %(fetched)s OR (stage = %(failed)s AND attempts < %(attempts)s))
           ORDER BY staged_at, page_id LIMIT %(limit)s""",
        {
            "sid": source_id,
            "fetched": Stage.FETCHED,
            "failed": Stage.FAILED,
            "attempts": MAX_ATTEMPTS,
            "limit": batch,
        },
        start={"at": datetime.min.replace(tzinfo=UTC), "after": ""},
    )
    return ([row[1:] for row in batch_rows] for batch_rows in rows)


def to_chunk(conn: psycopg.Connection, source_id: str, batch: int) -> Iterator[list[tuple]]:
    """(page_id, title, version, last_modified, markdown, ``_links.webui``) of the converted pages. By page
    id, ``batch`` at a time."""
    return _batches(
        conn,
        """SELECT page_id, title, version, last_modified, markdown, payload->'_links'->>'webui'
           FROM confluence_sync_staged_pages
           WHERE source_id = %(sid)s AND stage = %(converted)s AND page_id > %(after)s
           ORDER BY page_id LIMIT %(limit)s""",
        {"sid": source_id, "converted": Stage.CONVERTED, "limit": batch},
    )


def to_embed(conn: psycopg.Connection, source_id: str, batch: int) -> Iterator[list[tuple[str, str]]]:
    """(content_hash, embedding_text) of the distinct hashes the chunked pages' chunks still need a vector
    for. By hash, ``batch`` at a time."""
    return _batches(
        conn,
        """SELECT DISTINCT ON (c.content_hash) c.content_hash, c.embedding_text
           FROM confluence_sync_staged_chunks c JOIN confluence_sync_staged_pages p USING (source_id, page_id)
           WHERE c.source_id = %(sid)s AND p.stage = %(chunked)s AND c.embedding IS NULL
             AND c.content_hash > %(after)s
           ORDER BY c.content_hash LIMIT %(limit)s""",
        {"sid": source_id, "chunked": Stage.CHUNKED, "limit": batch},
    )


def chunks_of_chunked_pages(conn: psycopg.Connection, source_id: str) -> int:
    """How many staged chunks the chunked pages have."""
    return conn.execute(
        """SELECT count(*) FROM confluence_sync_staged_chunks c JOIN confluence_sync_staged_pages p
             USING (source_id, page_id) WHERE c.source_id = %s AND p.stage = %s""",
        (source_id, Stage.CHUNKED),
    ).fetchone()[0]


def ready_to_swap(conn: psycopg.Connection, source_id: str) -> list[str]:
    """The chunked pages every chunk of which has its vector, by page id."""
    return [
        row[0]
        for row in conn.execute(
            """SELECT p.page_id FROM confluence_sync_staged_pages p
               WHERE p.source_id = %s AND p.stage = %s
                 AND NOT EXISTS (SELECT 1 FROM confluence_sync_staged_chunks c
                                 WHERE c.source_id = p.source_id AND c.page_id = p.page_id AND c.embedding IS NULL)
               ORDER BY p.page_id""",
            (source_id, Stage.CHUNKED),
        )
    ]


# -- moving pages between stages -----------------------------------------------------------------------
def mark_converted(conn: psycopg.Connection, source_id: str, page_id: str, markdown: str) -> None:
    conn.execute(
        """UPDATE confluence_sync_staged_pages SET stage = %s, markdown = %s, error = NULL,
             updated_at = now() WHERE source_id = %s AND page_id = %s""",
        (Stage.CONVERTED, markdown, source_id, page_id),
    )


def drop_chunks(cur: psycopg.Cursor, source_id: str, page_id: str) -> None:
    """Delete the page's staged chunks."""
    cur.execute("DELETE FROM confluence_sync_staged_chunks WHERE source_id = %s AND page_id = %s", (source_id, page_id))


def mark_chunked(cur: psycopg.Cursor, source_id: str, page_id: str, chunks: list[tuple]) -> None:
    """Replace the page's staged chunks with ``chunks`` (source_id, page_id, chunk_number, content,
    embedding_text, metadata, content_hash, token_count) and move it to chunked."""
    drop_chunks(cur, source_id, page_id)
    cur.executemany(
        """INSERT INTO confluence_sync_staged_chunks
             (source_id, page_id, chunk_number, content, embedding_text, metadata, content_hash, token_count)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        chunks,
    )
    cur.execute(
        """UPDATE confluence_sync_staged_pages SET stage = %s, updated_at = now()
           WHERE source_id = %s AND page_id = %s""",
        (Stage.CHUNKED, source_id, page_id),
    )


def record_failure(conn: psycopg.Connection | psycopg.Cursor, source_id: str, failure: FailedPage) -> None:
    """Mark a staged page failed with its reason; a later run tries it again, up to MAX_ATTEMPTS."""
    conn.execute(
        """UPDATE confluence_sync_staged_pages SET stage = %s, error = %s, attempts = attempts + 1,
             updated_at = now() WHERE source_id = %s AND page_id = %s""",
        (Stage.FAILED, failure.error[:ERROR_CHARS], source_id, failure.page_id),
    )


def fail_pages_with_hash(cur: psycopg.Cursor, source_id: str, content_hash: str, reason: str) -> list[FailedPage]:
    """Mark failed every chunked page with a chunk of ``content_hash`` (its text cannot be embedded)."""
    cur.execute(
        """UPDATE confluence_sync_staged_pages p SET stage = %s, error = %s, attempts = attempts + 1,
             updated_at = now()
           FROM confluence_sync_staged_chunks c
           WHERE c.source_id = p.source_id AND c.page_id = p.page_id
             AND p.source_id = %s AND c.content_hash = %s AND p.stage = %s
           RETURNING p.page_id, p.title""",
        (Stage.FAILED, reason[:ERROR_CHARS], source_id, content_hash, Stage.CHUNKED),
    )
    return [FailedPage(pid, title, reason) for pid, title in cur.fetchall()]


def complete(conn: psycopg.Connection, source_id: str, page_id: str) -> None:
    """The page's staged version is live (its chunks were swapped in): record it as indexed in
    confluence_pages and drop the page from staging. Run it in the swap's transaction."""
    conn.execute(
        """UPDATE confluence_pages cp SET indexed_version = sp.version, updated_at = now()
           FROM confluence_sync_staged_pages sp
           WHERE cp.page_id = sp.page_id AND sp.source_id = %s AND sp.page_id = %s""",
        (source_id, page_id),
    )
    drop(conn, source_id, [page_id])


def drop(conn: psycopg.Connection, source_id: str, page_ids: list[str]) -> None:
    """Remove pages from staging (their staged chunks go with them)."""
    conn.execute(
        "DELETE FROM confluence_sync_staged_pages WHERE source_id = %s AND page_id = ANY(%s)", (source_id, page_ids)
    )


def staged_restrictions(conn: psycopg.Connection, source_id: str) -> list[dict]:
    """The read restriction expansion of each staged page of the space (``{"id", "restrictions"}``)."""
    rows = conn.execute(
        """SELECT jsonb_build_object('id', page_id, 'restrictions', payload->'restrictions')
           FROM confluence_sync_staged_pages WHERE source_id = %s AND payload->'restrictions' IS NOT NULL""",
        (source_id,),
    )
    return [row for (row,) in rows]


# -- what is left --------------------------------------------------------------------------------------
def unfinished_versions(conn: psycopg.Connection, source_id: str) -> dict[str, int]:
    """{page id: staged version} of the pages still on their way."""
    return dict(
        conn.execute(
            "SELECT page_id, version FROM confluence_sync_staged_pages WHERE source_id = %s AND stage <> %s",
            (source_id, Stage.FAILED),
        ).fetchall()
    )


def unfinished(conn: psycopg.Connection, source_id: str) -> tuple[int, datetime | None]:
    """(how many, newest change) of the staged pages still on their way."""
    count, newest = conn.execute(
        """SELECT count(*), max(last_modified) FROM confluence_sync_staged_pages
           WHERE source_id = %s AND stage <> %s""",
        (source_id, Stage.FAILED),
    ).fetchone()
    return count, newest


def unfinished_pages(conn: psycopg.Connection, source_id: str) -> int:
    """Staged pages still on their way (failed ones are recorded, not unfinished)."""
    return unfinished(conn, source_id)[0]


def unfinished_by_source(
    conn: psycopg.Connection, source_ids: list[str]
) -> list[tuple[str, str | None, int, datetime | None]]:
    """For each archon_sources row of ``source_ids``: (source_id, ``last_sync_timestamp`` as stored, how
    many staged pages are still on their way, when its staging last changed, failed pages included)."""
    return conn.execute(
        """SELECT s.source_id, s.metadata->>'last_sync_timestamp',
                  count(p.page_id) FILTER (WHERE p.stage <> %(failed)s), max(p.updated_at)
           FROM archon_sources s LEFT JOIN confluence_sync_staged_pages p ON p.source_id = s.source_id
           WHERE s.source_id = ANY(%(sids)s) GROUP BY 1, 2""",
        {"failed": Stage.FAILED, "sids": source_ids},
    ).fetchall()
