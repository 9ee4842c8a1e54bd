"""Step 3 (page_chunks): chunk converted pages into staging, with heading context and content hashes.

A page the chunker cannot split is recorded as failed with its reason (as page_metadata does for one
that cannot be converted) and the others carry on; the next run converts and chunks it again, up to the
same number of attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import page_url, section_url
from confluence_assets.content.extras import extra_chunks
from confluence_assets.content.metadata import breadcrumb_prefix
from confluence_assets.settings import DEFAULT_KNOWLEDGE_TYPE
from confluence_assets.sync import crashpoints, staging
from confluence_assets.sync.extras import stored_extras
from confluence_assets.sync.staging import FailedPage

log = logging.getLogger(__name__)

BATCH = 50


@dataclass
class ChunkSettings:
    chunk_tokens: int = 800
    overlap_tokens: int = 80
    max_tokens: int = 8191


@dataclass
class ChunkSummary:
    pages: int = 0
    chunks: int = 0
    tokens: int = 0
    failed: list[FailedPage] = field(default_factory=list)

    def metrics(self) -> dict[str, int]:
        return {
            "pages_chunked": self.pages,
            "chunks_staged": self.chunks,
            "tokens_estimated": self.tokens,
            "pages_failed": len(self.failed),
        }


def chunk_staged(
    conn: psycopg.Connection,
    space_key: str,
    *,
    base_url: str,
    chunker: Callable[..., list],
    settings: ChunkSettings | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH,
    knowledge_type: str = DEFAULT_KNOWLEDGE_TYPE,
) -> ChunkSummary:
    """Chunk every converted page waiting for it, ``batch_size`` pages a transaction; ``conn`` in autocommit.
    ``knowledge_type``: Archon's, for the chunks' metadata (settings: CONFLUENCE_KNOWLEDGE_TYPES)."""
    settings = settings or ChunkSettings()
    source_id = source_id_for(space_key)
    summary = ChunkSummary()
    for rows in staging.to_chunk(conn, source_id, batch_size):
        kinds = _content_types(conn, [r[0] for r in rows])
        extras = stored_extras(conn, [r[0] for r in rows])  # comments and attachment texts (page_attachments)
        with conn.transaction(), conn.cursor() as cur:
            for page_id, title, version, last_modified, markdown, webui in rows:
                url = page_url(base_url, {"id": page_id, "_links": {"webui": webui}}, space_key)
                kind, prefix, labels = kinds.get(page_id, ("page", [], []))
                meta = {"page_id": page_id, "page_title": title, "page_url": url, "space_key": space_key}
                meta |= {"content_type": kind, "breadcrumb_prefix": prefix}
                # The keys Archon's own chunks carry (its agents cite metadata.url), alongside ours.
                meta |= {"title": title, "source_id": source_id, "knowledge_type": knowledge_type, "tags": labels}
                try:
                    chunks = chunker(
                        markdown or "",
                        title,
                        chunk_tokens=settings.chunk_tokens,
                        overlap_tokens=settings.overlap_tokens,
                        max_tokens=settings.max_tokens,
                    )
                    staged = [_chunk_row(source_id, c, meta, version, last_modified) for c in chunks]
                    more = _extra_chunks(chunker, title, extras.get(page_id), len(chunks), settings)
                    staged += [_chunk_row(source_id, c, meta | extra, version, last_modified) for c, extra in more]
                    chunks = [*chunks, *(c for c, _ in more)]
                except Exception as exc:  # a chunker bug must cost one page, not the space
                    log.exception("unexpected error chunking page %s", page_id)
                    failure = FailedPage(page_id, title, f"chunking failed: {type(exc).__name__}: {exc}")
                    staging.drop_chunks(cur, source_id, page_id)
                    staging.record_failure(cur, source_id, failure)
                    summary.failed.append(failure)
                    continue
                staging.mark_chunked(cur, source_id, page_id, staged)
                summary.pages += 1
                summary.chunks += len(chunks)
                summary.tokens += sum(c.token_count for c in chunks)
        crashpoints.reached("chunk_batch")
        if progress:
            progress(summary.pages)
    return summary


def _extra_chunks(chunker: Callable[..., list], title: str, extras, first: int, settings: ChunkSettings) -> list:
    """The page's comment and attachment chunks after its body's (content/extras.py), with their metadata."""
    if not extras:
        return []
    comments, attachments = extras
    return extra_chunks(
        chunker,
        title,
        comments,
        attachments,
        first_index=first,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens,
        max_tokens=settings.max_tokens,
    )


def _content_types(conn: psycopg.Connection, page_ids: list[str]) -> dict[str, tuple[str, list[str], list[str]]]:
    """Each converted page's content type, breadcrumb prefix (a blog post's space, "Blog" and day) and
    labels, as page_metadata stored them with the page."""
    return {
        pid: (kind or "page", breadcrumb_prefix({"content_type": kind, "space_key": key, "posted_on": day}), labels)
        for pid, kind, key, day, labels in conn.execute(
            """SELECT page_id, content_type, metadata->>'space_key', metadata->>'posted_on',
                      coalesce(metadata->'labels', '[]'::jsonb)
               FROM confluence_pages WHERE page_id = ANY(%s)""",
            (page_ids,),
        )
    }


def _chunk_row(source_id: str, c, meta: dict, version: int, last_modified) -> tuple:
    meta = dict(meta)
    prefix = meta.pop("breadcrumb_prefix", [])
    metadata = {
        "source_type": "confluence",
        **meta,
        "section_title": c.section_title,
        # A link to the chunk's section (comments and attachments: the page's).
        "url": meta["page_url"] if "section" in meta else section_url(meta["page_url"], c.section_title, meta["title"]),
        "word_count": len(c.content.split()),
        "char_count": len(c.content),
        # Search shows the stored ancestors' titles, then this: a blog post (no ancestors) its blog and day.
        "breadcrumb": [*prefix, *c.breadcrumb],
        "content_hash": c.content_hash,
        "chunk_index": c.index,
        # content[own_start:own_end] is this chunk's share of the page (no overlap, repeated table header or
        # added fence): what reading a page back from its chunks joins (search.pages.read_page).
        "own_start": c.own_start,
        "own_end": c.own_end,
        "token_count": c.token_count,
        "version": version,
        "last_modified": last_modified.isoformat(),
    }
    return (
        source_id,
        meta["page_id"],
        c.index,
        c.content,
        c.embedding_text,
        Jsonb(metadata),
        c.content_hash,
        c.token_count,
    )
