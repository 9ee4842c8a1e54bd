"""Reading the stored pages as a principal: one page in full (its Markdown back from its live chunks, its
metadata, its breadcrumb) and the spaces a principal can read something in; search results grouped by page.

Every query goes through ``confluence_filtered_pages`` with the principal's viewer arguments (as
``metadata_queries`` does), so a page the principal may not read is exactly as absent as a page that does
not exist: ``read_page`` returns None for both. What the stored metadata says about *other* pages
(``ancestors``, ``children``) is never passed on as stored: the breadcrumb comes from
``metadata_queries.breadcrumbs_query`` and children from ``metadata_queries.children_query``, which both
apply the principal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from confluence_assets.confluence.keys import SOURCE_ID_PREFIX
from confluence_assets.search import metadata_queries as mq
from confluence_assets.search.filters import SearchFilters
from confluence_assets.search.hybrid import SearchResult
from confluence_assets.search.principal import VIEWER_ARGUMENTS, Principal, with_access

# The metadata of a page that is about the page itself (what its readers see in Confluence), passed on as
# stored. Left out: ancestors and children (titles of other pages, which the principal may not be allowed to
# see: the breadcrumb and children queries apply the principal instead), the path and the sibling position.
PAGE_FIELDS = (
    "content_type",
    "posted_on",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "last_modified_by",
    "labels",
    "jira_issue_links",
    "user_mentions",
    "internal_links",
    "external_links",
    "asset_links",
    "word_count",
    "headings",
    "code_languages",
)


@dataclass(frozen=True)
class PageDocument:
    page_id: str
    title: str
    space_key: str
    url: str | None
    last_modified: datetime
    markdown: str
    breadcrumb: list[mq.Crumb]
    metadata: dict[str, Any] = field(default_factory=dict)
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "page_id": self.page_id,
            "title": self.title,
            "space_key": self.space_key,
            "url": self.url,
            "last_modified": self.last_modified.isoformat(),
            "breadcrumb": [{"page_id": c.page_id, "title": c.title, "url": c.url} for c in self.breadcrumb],
            "metadata": self.metadata,
            "chunks": self.chunks,
            "markdown": self.markdown,
        }


@dataclass(frozen=True)
class SpaceSummary:
    space_key: str
    name: str | None
    url: str | None
    readable_pages: int
    last_modified: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "space_key": self.space_key,
            "name": self.name,
            "url": self.url,
            "readable_pages": self.readable_pages,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
        }


_PAGE = sql.SQL(
    """SELECT p.page_id, p.title, p.space_key, p.metadata->>'page_url', p.last_modified, p.metadata
       FROM confluence_filtered_pages({viewer}) p WHERE p.page_id = %(page)s"""
).format(viewer=VIEWER_ARGUMENTS)

# The page's live chunks in order (idx_crawled_pages_confluence_chunk_page_id of 090 serves the lookup).
# The body's chunks only: the page's comments and attachments' text follow them as chunks of their own
# ("section" in their metadata; content/extras.py), which are not the page's Markdown.
_CHUNKS = """SELECT content, metadata->'own_start', metadata->'own_end' FROM archon_crawled_pages
             WHERE confluence_chunk_page_id(metadata) = %s AND NOT metadata ? 'section'
             ORDER BY chunk_number"""

_SPACES = sql.SQL(
    """SELECT p.space_key, s.title, s.source_url, count(*), max(p.last_modified)
       FROM confluence_filtered_pages({viewer}) p
       LEFT JOIN archon_sources s ON s.source_id = %(prefix)s || p.space_key
       GROUP BY p.space_key, s.title, s.source_url ORDER BY p.space_key"""
).format(viewer=VIEWER_ARGUMENTS)


def read_page(conn: psycopg.Connection, page_id: str, principal: Principal) -> PageDocument | None:
    """The page as ``principal`` may read it, or None when it does not exist, is deleted or is not theirs
    to read (the three are not told apart)."""
    row = _readable_row(conn, page_id, principal)
    if row is None:
        return None
    found_id, title, space_key, url, last_modified, metadata = row
    chunks = conn.execute(_CHUNKS, (found_id,), prepare=False).fetchall()
    crumbs_query = mq.breadcrumbs_query(found_id, principal=principal)
    crumbs = [mq.Crumb(*r) for r in conn.execute(crumbs_query.text, crumbs_query.params, prepare=False).fetchall()]
    stored = metadata if isinstance(metadata, dict) else {}
    return PageDocument(
        page_id=found_id,
        title=title,
        space_key=space_key,
        url=url,
        last_modified=last_modified,
        markdown=markdown_from_chunks(chunks),
        breadcrumb=crumbs,
        metadata={name: stored[name] for name in PAGE_FIELDS if name in stored},
        chunks=len(chunks),
    )


def is_readable(conn: psycopg.Connection, page_id: str, principal: Principal) -> bool:
    """Whether the page exists, is live and ``principal`` may read it (one answer for all three)."""
    return _readable_row(conn, page_id, principal) is not None


def _readable_row(conn: psycopg.Connection, page_id: str, principal: Principal) -> tuple | None:
    target = SearchFilters(under_page_id=str(page_id)).validated().under_page_id  # InvalidFilterError if bad
    params = with_access(conn, {"page": target, **principal.sql_params()})
    return conn.execute(_PAGE, params, prepare=False).fetchone()


def markdown_from_chunks(chunks: list[tuple[str, Any, Any]]) -> str:
    """The page's Markdown from its chunks in order: each chunk's own share (``content[own_start:own_end]``,
    without the overlap that repeats the previous chunk's tail), joined as ``chunking.reassemble`` joins
    them. Chunks stored before the bounds were recorded are taken whole (their overlap then repeats)."""
    parts = []
    for content, start, end in chunks:
        if isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(content):
            parts.append(content[start:end])
        else:
            parts.append(content)
    return "\n".join(parts)


def readable_spaces(conn: psycopg.Connection, principal: Principal) -> list[SpaceSummary]:
    """The spaces in which ``principal`` may read at least one live page, with how many."""
    params = with_access(conn, {"prefix": SOURCE_ID_PREFIX, **principal.sql_params()})
    return [SpaceSummary(*row) for row in conn.execute(_SPACES, params, prepare=False).fetchall()]


def group_by_page(results: Iterable[SearchResult], limit: int, per_page: int) -> list[dict[str, Any]]:
    """Chunks (best first) grouped into pages in the order of each page's best chunk; each page keeps its
    ``per_page`` best chunks, each chunk a citation (the page's Confluence URL and the chunk's breadcrumb)."""
    grouped: dict[str, dict] = {}
    for r in results:
        page = grouped.get(r.page_id)
        if page is None:
            if len(grouped) == limit:
                continue
            title_at = r.breadcrumb.index(r.page_title) + 1 if r.page_title in r.breadcrumb else len(r.breadcrumb)
            page = grouped[r.page_id] = {
                "page_id": r.page_id,
                "title": r.page_title,
                "space_key": r.space_key,
                "url": r.url,
                "breadcrumb": " > ".join(r.breadcrumb[:title_at]),
                "score": r.score,
                "last_modified": r.last_modified.isoformat(),
                "chunks": [],
            }
        if len(page["chunks"]) < per_page:
            page["chunks"].append(
                {
                    "chunk_id": r.chunk_id,
                    "section": r.section_title,
                    "score": r.score,
                    "match_type": r.match_type,
                    "content": r.content,
                    "citation": {"title": r.page_title, "url": r.url, "breadcrumb": " > ".join(r.breadcrumb)},
                }
            )
    return list(grouped.values())
