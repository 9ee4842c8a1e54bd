"""A page's live index rows: its chunks in archon_crawled_pages and, on an Archon >= 011 database, its row
in archon_page_metadata. Every statement that writes or removes them is here.

Two layouts (sql/0.1.0/090_confluence_archon_pages.sql says why):

- seed (no archon_page_metadata): chunk ``metadata->>'page_id'`` is the Confluence id;
- Archon (archon_page_metadata exists): each page has a stable UUID (``page_uuid``) in its chunks'
  ``metadata->>'page_id'``, so Archon's pages mode groups them; a page without read restrictions (the only
  kind Archon's identity-less tools may show) has its row there under that id, and its chunks' ``page_id``
  column points at it.

In both, ``metadata->>'confluence_page_id'`` is the Confluence id, and queries read it through the SQL
function ``confluence_chunk_page_id(metadata)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import psycopg
from psycopg import sql

# Fixed namespace of the archon_page_metadata ids of Confluence pages (uuid5 of the page id, which is
# unique on a site as confluence_pages.page_id is): the same page gets the same id in every run.
PAGE_NAMESPACE = uuid.UUID("6f1c1d1e-8a55-5b7e-9d0c-2f6f3c0a1e90")


def page_uuid(page_id: str) -> uuid.UUID:
    """The archon_page_metadata id of a Confluence page."""
    return uuid.uuid5(PAGE_NAMESPACE, f"confluence-page:{page_id}")


def archon_layout(conn: psycopg.Connection) -> bool:
    """Does the database have Archon's archon_page_metadata and the chunks' page_id column (Archon >= 011)?"""
    return conn.execute(
        """SELECT to_regclass('archon_page_metadata') IS NOT NULL
                  AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'archon_crawled_pages'::regclass
                              AND attname = 'page_id' AND NOT attisdropped)"""
    ).fetchone()[0]


def remove(conn: psycopg.Connection, page_ids: Iterable[str]) -> int:
    """Delete the pages' chunks and archon_page_metadata rows, in the caller's transaction; returns the
    chunks removed."""
    ids = sorted({str(p) for p in page_ids if p})
    if not ids:
        return 0
    removed = conn.execute(
        "DELETE FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = ANY(%s)", (ids,)
    ).rowcount
    if archon_layout(conn):
        conn.execute("DELETE FROM archon_page_metadata WHERE id = ANY(%s)", ([page_uuid(p) for p in ids],))
    return removed


class ChunkSwap:
    """Replace one page's chunks with its staged ones (and, in the Archon layout, write its
    archon_page_metadata row first), in the caller's transaction."""

    def __init__(self, dimensions: int, *, archon: bool) -> None:
        self.archon = archon
        column = sql.Identifier(f"embedding_{int(dimensions)}")
        vtype = sql.SQL(f"vector({int(dimensions)})")  # dimension whitelisted by the caller's column
        if archon:
            self.insert = sql.SQL(
                """INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, {col},
                     embedding_model, embedding_dimension, page_id)
                   SELECT {url}, chunk_number, content,
                          metadata || jsonb_build_object('page_id', %(uuid)s::text, 'confluence_page_id', page_id),
                          source_id, embedding::{vtype}, embedding_model, embedding_dimension, %(row)s::uuid
                   FROM confluence_sync_staged_chunks s WHERE s.source_id = %(sid)s AND s.page_id = %(pid)s
                   ORDER BY s.chunk_number"""
            ).format(col=column, vtype=vtype, url=_CHUNK_URL)
        else:
            self.insert = sql.SQL(
                """INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, {col},
                     embedding_model, embedding_dimension)
                   SELECT {url}, chunk_number, content,
                          metadata || jsonb_build_object('page_id', page_id, 'confluence_page_id', page_id),
                          source_id, embedding::{vtype}, embedding_model, embedding_dimension
                   FROM confluence_sync_staged_chunks s WHERE s.source_id = %(sid)s AND s.page_id = %(pid)s
                   ORDER BY s.chunk_number"""
            ).format(col=column, vtype=vtype, url=_CHUNK_URL)

    def replace(self, conn: psycopg.Connection, source_id: str, page_id: str, url: str) -> tuple[int, int]:
        """(chunks deleted, chunks written). A chunk's url is its section's link (metadata url), ``url`` for
        chunks staged before chunks had one."""
        deleted = conn.execute(
            "DELETE FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = %s", (page_id,)
        ).rowcount
        params = {"url": url, "sid": source_id, "pid": page_id, "uuid": page_uuid(page_id), "row": None}
        if self.archon:
            # Archon's server reads archon_page_metadata as service_role, which row level security does not
            # narrow, and knows no identity: only a page every reader of its space may read gets a row
            # there (as only such pages' chunks come out of Archon's search functions, sql/0.1.0/040).
            # Unknown restrictions count as restricted. Its chunks keep the UUID in metadata either way.
            if conn.execute("SELECT confluence_page_unrestricted(%s)", (page_id,)).fetchone()[0]:
                conn.execute(_PAGE_ROW, params)
                params["row"] = params["uuid"]
            else:
                conn.execute("DELETE FROM archon_page_metadata WHERE id = %s", (params["uuid"],))
        written = conn.execute(self.insert, params).rowcount
        return deleted, written


# A chunk's url column: its link, unless a row of another source has that (url, chunk_number), Archon's
# unique key (Archon's own crawl of the same page: its chunks carry the page's link): then the link with a
# fragment naming the page id. Our own rows of the page are deleted before, so they never collide.
_CHUNK_URL = sql.SQL(
    """CASE WHEN EXISTS (SELECT 1 FROM archon_crawled_pages o
                         WHERE o.url = coalesce(s.metadata->>'url', %(url)s) AND o.chunk_number = s.chunk_number)
            THEN coalesce(s.metadata->>'url', %(url)s)
                 || CASE WHEN strpos(coalesce(s.metadata->>'url', %(url)s), '#') > 0 THEN '-' ELSE '#' END
                 || 'confluence-page-' || s.page_id
            ELSE coalesce(s.metadata->>'url', %(url)s) END"""
)


# The page's archon_page_metadata row from what staging and confluence_pages hold. Archon's url is unique:
# a page whose link is taken by another row (Archon's own crawl of the same page) gets the link with a
# fragment naming the page id.
_PAGE_ROW = """
WITH page AS (
  SELECT sp.source_id, coalesce(sp.markdown, '') AS markdown, sp.title, cp.space_key,
         coalesce(cp.metadata->>'page_url', (SELECT c.metadata->>'page_url' FROM confluence_sync_staged_chunks c
                                             WHERE c.source_id = sp.source_id AND c.page_id = sp.page_id
                                             LIMIT 1), '') AS link,
         cp.content_type, sp.version, cp.last_modified, cp.metadata->'labels' AS labels,
         (SELECT c.metadata->>'knowledge_type' FROM confluence_sync_staged_chunks c
          WHERE c.source_id = sp.source_id AND c.page_id = sp.page_id LIMIT 1) AS knowledge_type,
         (SELECT count(*) FROM confluence_sync_staged_chunks c
          WHERE c.source_id = sp.source_id AND c.page_id = sp.page_id) AS chunks
  FROM confluence_sync_staged_pages sp JOIN confluence_pages cp ON cp.page_id = sp.page_id
  WHERE sp.source_id = %(sid)s AND sp.page_id = %(pid)s)
INSERT INTO archon_page_metadata AS m (id, source_id, url, full_content, section_title, section_order, word_count,
                                       char_count, chunk_count, metadata, updated_at)
SELECT %(uuid)s, page.source_id,
       CASE WHEN EXISTS (SELECT 1 FROM archon_page_metadata o WHERE o.url = page.link AND o.id <> %(uuid)s)
            THEN page.link || '#confluence-page-' || %(pid)s ELSE page.link END,
       page.markdown, page.title, 0,
       coalesce(array_length(regexp_split_to_array(nullif(btrim(page.markdown), ''), '\\s+'), 1), 0),
       length(page.markdown), page.chunks,
       jsonb_build_object('source_type', 'confluence', 'confluence_page_id', %(pid)s::text,
                          'confluence_space_key', page.space_key, 'content_type', page.content_type,
                          'version', page.version, 'last_modified', page.last_modified,
                          'tags', coalesce(page.labels, '[]'::jsonb),
                          'knowledge_type', coalesce(page.knowledge_type, 'technical')),
       now()
FROM page
ON CONFLICT (id) DO UPDATE SET source_id = EXCLUDED.source_id, url = EXCLUDED.url, full_content = EXCLUDED.full_content,
  section_title = EXCLUDED.section_title, word_count = EXCLUDED.word_count, char_count = EXCLUDED.char_count,
  chunk_count = EXCLUDED.chunk_count, metadata = EXCLUDED.metadata, updated_at = now()
"""
