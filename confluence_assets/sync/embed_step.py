"""Step 4 (chunk_embeddings): embed what is new, reuse what is known, swap each page in atomically.

1. Reuse: a staged chunk whose content hash already has an embedding for the same model and dimension
   in archon_crawled_pages takes that vector; nothing is sent for it.
2. Embed the remaining distinct hashes in batches; each batch's vectors are committed to staging at
   once, so a run that dies later does not pay for them again.
3. Swap: per page, in one transaction, delete its chunk rows, insert the new ones (all embedded), set
   confluence_pages.indexed_version and drop the page from staging. A reader sees the old chunks or the
   new ones, never a mix, never none, never an unembedded one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.embeddings import Embedder
from confluence_assets.settings import SUPPORTED_DIMENSIONS
from confluence_assets.sync import crashpoints, indexed_pages, sources, staging
from confluence_assets.sync.staging import FailedPage

log = logging.getLogger(__name__)

HASH_BATCH = 512
SWAP_WORKERS = 2  # connections swapping pages at once (see _swap_ready_pages)
SWAP_PARALLEL_MIN_PAGES = 40  # fewer pages than this are swapped on the step's own connection


@dataclass
class EmbedSummary:
    chunks_staged: int = 0
    chunks_reused: int = 0
    embeddings_requested: int = 0
    pages_swapped: int = 0
    chunks_created: int = 0
    chunks_replaced: int = 0
    embed_seconds: float = 0.0
    swap_seconds: float = 0.0
    failed: list[FailedPage] = field(default_factory=list)
    swapped_page_ids: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, int]:
        return {
            "pages_swapped": self.pages_swapped,
            "chunks_created": self.chunks_created,
            "chunks_replaced": self.chunks_replaced,
            "chunks_reused": self.chunks_reused,
            "embeddings_requested": self.embeddings_requested,
            "pages_failed": len(self.failed),
        }


def embedding_column(dimensions: int) -> sql.Identifier:
    if dimensions not in SUPPORTED_DIMENSIONS:
        raise ValueError(f"no embedding column for dimension {dimensions}")
    return sql.Identifier(f"embedding_{dimensions}")


def embed_and_swap(
    conn: psycopg.Connection,
    space_key: str,
    embedder: Embedder,
    *,
    progress: Callable[[str, int], None] | None = None,
    connect: Callable[[], psycopg.Connection] | None = None,
    swap_workers: int = SWAP_WORKERS,
) -> EmbedSummary:
    """Embed and swap every chunked page of the space; ``conn`` must be in autocommit mode. With
    ``connect`` (a factory of autocommit connections), ``swap_workers`` connections swap pages at once."""
    source_id = source_id_for(space_key)
    summary = EmbedSummary()
    model, dims = embedder.model, embedder.dimensions
    column = embedding_column(dims)

    with conn.transaction():
        # Vectors staged under another model or dimension are useless now.
        conn.execute(
            """UPDATE confluence_sync_staged_chunks SET embedding = NULL, embedding_model = NULL,
                 embedding_dimension = NULL
               WHERE source_id = %s AND embedding IS NOT NULL
                 AND (embedding_model IS DISTINCT FROM %s OR embedding_dimension IS DISTINCT FROM %s)""",
            (source_id, model, dims),
        )
        summary.chunks_staged = staging.chunks_of_chunked_pages(conn, source_id)
        reused = conn.execute(
            sql.SQL(
                """UPDATE confluence_sync_staged_chunks s
                   SET embedding = known.vec, embedding_model = %(model)s, embedding_dimension = %(dims)s
                   FROM (SELECT DISTINCT ON (metadata->>'content_hash')
                                metadata->>'content_hash' AS hash, {col}::vector AS vec
                         FROM archon_crawled_pages
                         WHERE metadata ? 'content_hash'
                           AND metadata->>'content_hash' IN (
                               SELECT content_hash FROM confluence_sync_staged_chunks
                               WHERE source_id = %(sid)s AND embedding IS NULL)
                           AND embedding_model = %(model)s AND embedding_dimension = %(dims)s
                           AND {col} IS NOT NULL) AS known
                   WHERE s.source_id = %(sid)s AND s.embedding IS NULL AND s.content_hash = known.hash"""
            ).format(col=column),
            {"model": model, "dims": dims, "sid": source_id},
        )
        summary.chunks_reused = reused.rowcount

    started = time.monotonic()
    _embed_missing(conn, source_id, embedder, summary, progress)
    summary.embed_seconds = time.monotonic() - started
    _swap_ready_pages(conn, source_id, space_key, dims, summary, progress, connect, swap_workers)
    summary.swap_seconds = time.monotonic() - started - summary.embed_seconds
    sources.summary_from_first_page(conn, source_id)  # a space without a description (Archon shows it)
    crashpoints.reached("complete")
    return summary


def _embed_missing(
    conn: psycopg.Connection,
    source_id: str,
    embedder: Embedder,
    summary: EmbedSummary,
    progress: Callable[[str, int], None] | None,
) -> None:
    for rows in staging.to_embed(conn, source_id, HASH_BATCH):
        result = embedder.embed([text for _, text in rows])
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                """UPDATE confluence_sync_staged_chunks SET embedding = %s::vector, embedding_model = %s,
                     embedding_dimension = %s
                   WHERE content_hash = %s AND embedding IS NULL""",
                [
                    (str(vector), embedder.model, embedder.dimensions, content_hash)
                    for (content_hash, _), vector in zip(rows, result.vectors, strict=True)
                    if vector is not None
                ],
            )
            for index, reason in result.rejected.items():
                summary.failed.extend(
                    staging.fail_pages_with_hash(cur, source_id, rows[index][0], f"embedding input rejected: {reason}")
                )
        crashpoints.reached("embed_batch")
        summary.embeddings_requested += sum(v is not None for v in result.vectors)
        if progress:
            progress("embedded", summary.embeddings_requested)


def _swap_ready_pages(
    conn: psycopg.Connection,
    source_id: str,
    space_key: str,
    dimensions: int,
    summary: EmbedSummary,
    progress: Callable[[str, int], None] | None,
    connect: Callable[[], psycopg.Connection] | None = None,
    workers: int = 1,
) -> None:
    ready = staging.ready_to_swap(conn, source_id)
    embedding_column(dimensions)  # refuses a dimension without a column before any SQL is built
    chunk_swap = indexed_pages.ChunkSwap(dimensions, archon=indexed_pages.archon_layout(conn))
    swap = _PageSwap(source_id, space_key, chunk_swap, summary)
    reported = 0

    def report() -> None:  # from the step's own thread only (Dagster's logger is not called from workers)
        nonlocal reported
        hundreds = summary.pages_swapped // 100 * 100
        if progress and hundreds > reported:
            progress("swapped", hundreds)
            reported = hundreds

    if connect is None or workers <= 1 or len(ready) < SWAP_PARALLEL_MIN_PAGES:
        for page_id in ready:
            swap.one(conn, page_id)
            report()
        return

    # Inserting into the HNSW index is most of a swap's cost and runs in the database backend: a few
    # connections swapping different pages use more than one core. Each page is still one transaction.
    def worker(pages: list[str]) -> None:
        with connect() as own:
            for page_id in pages:
                swap.one(own, page_id)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunk-swap") as pool:
        futures = [pool.submit(worker, ready[i::workers]) for i in range(workers)]
        while wait(futures, timeout=1.0).not_done:
            report()
    report()
    summary.swapped_page_ids.sort()
    first = next((f.exception() for f in futures if f.exception() is not None), None)
    if first is not None:
        raise first


class _PageSwap:
    """One page's swap: replace its chunk rows (and its archon_page_metadata row on an Archon database) with
    the staged ones, mark the version indexed, drop it from staging, all in one transaction. Safe to call
    from several threads, each with its connection."""

    def __init__(self, source_id: str, space_key: str, swap: indexed_pages.ChunkSwap, summary: EmbedSummary) -> None:
        self.source_id, self.space_key, self.swap, self.summary = source_id, space_key, swap, summary
        self.lock = threading.Lock()

    def one(self, conn: psycopg.Connection, page_id: str) -> None:
        source_id = self.source_id
        with conn.transaction():
            deleted, written = self.swap.replace(conn, source_id, page_id, f"confluence://{self.space_key}/{page_id}")
            staging.complete(conn, source_id, page_id)
            crashpoints.reached("swap_inside")
        crashpoints.reached("swap_done")
        with self.lock:
            summary = self.summary
            summary.pages_swapped += 1
            summary.chunks_created += written
            summary.chunks_replaced += deleted
            summary.swapped_page_ids.append(page_id)
