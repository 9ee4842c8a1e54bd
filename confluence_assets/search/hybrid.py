"""Hybrid search over live Confluence chunks: the Python face of ``confluence_hybrid_search()`` (SQL).

The SQL function does the work (HNSW cosine + full text, Reciprocal Rank Fusion, page filters); this
module passes a query, its precomputed embedding and the viewer (an account id, nobody, or the service
account) and returns typed results. Embedding the query with the configured provider, checking it matches
the stored chunks and resolving who searches (``principal``) is ``service.SearchService``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from confluence_assets.search.filters import SearchFilters

MODES = ("hybrid", "vector", "keyword")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SearchResult:
    page_id: str
    page_title: str
    space_key: str
    breadcrumb: list[str]  # ancestor page titles, the page title, then the chunk's headings
    section_title: str | None
    url: str | None  # the page in Confluence
    score: float  # RRF score (ranking order); for one side alone, that side's RRF contribution
    similarity: float | None  # cosine similarity of the chunk to the query embedding
    text_score: float | None  # the chunk's keyword (BM25-like) score; None when the keyword side did not rank it
    match_type: str  # 'hybrid' (found by both sides), 'vector' or 'keyword'
    vector_rank: int | None
    text_rank: int | None
    content: str
    chunk_id: int
    chunk_number: int
    last_modified: datetime

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_modified"] = self.last_modified.isoformat()
        return data


class SearchArgumentError(ValueError):
    """A search argument that cannot work (mode, limit, missing query)."""


def search(
    conn: psycopg.Connection,
    query_text: str | None,
    query_embedding: Sequence[float] | None,
    filters: SearchFilters | None = None,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    candidates: int | None = None,
    ef_search: int | None = None,
    viewer_account_id: str | None = None,
    as_service_account: bool = False,
) -> list[SearchResult]:
    """Search the live Confluence chunks the viewer may read. ``query_embedding`` must come from the model
    the chunks were embedded with (``SearchService`` checks that); it may be None in keyword mode,
    ``query_text`` None in vector mode. ``viewer_account_id`` None: nobody named (pages without read
    restrictions only); ``as_service_account``: every page, no permission applied (the caller logs it).
    """
    if mode not in MODES:
        raise SearchArgumentError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchArgumentError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if mode != "keyword" and query_embedding is None:
        raise SearchArgumentError(f"{mode} search needs the query's embedding")
    if mode != "vector" and not (query_text or "").strip():
        raise SearchArgumentError(f"{mode} search needs a query text")
    if viewer_account_id is not None and as_service_account:
        raise SearchArgumentError("a search runs as a user or as the service account, not both")
    query, params = _call(query_text, query_embedding, filters, limit, mode, candidates, ef_search)
    query = sql.SQL(
        """SELECT page_id, page_title, space_key, breadcrumb, section_title, page_url, score, similarity,
                  text_score, match_type, vector_rank, text_rank, content, id, chunk_number, last_modified
           FROM {call}"""
    ).format(call=query)
    params.update(viewer=viewer_account_id, admin=as_service_account)
    # prepare=False: a server-side prepared statement could get a generic plan; the function plans its
    # own queries with the actual values anyway.
    rows = conn.execute(query, params, prepare=False).fetchall()
    return [
        SearchResult(
            page_id=r[0],
            page_title=r[1],
            space_key=r[2],
            breadcrumb=list(r[3] or []),
            section_title=r[4],
            url=r[5],
            score=float(r[6]),
            similarity=None if r[7] is None else float(r[7]),
            text_score=None if r[8] is None else float(r[8]),
            match_type=r[9],
            vector_rank=r[10],
            text_rank=r[11],
            content=r[12],
            chunk_id=r[13],
            chunk_number=r[14],
            last_modified=r[15],
        )
        for r in rows
    ]


def count_withheld(
    conn: psycopg.Connection,
    query_text: str | None,
    query_embedding: Sequence[float] | None,
    filters: SearchFilters | None = None,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    candidates: int | None = None,
    ef_search: int | None = None,
) -> int:
    """Of the first ``limit`` results the service account would get, how many nobody named may not read:
    the matches a search without a principal withholds. Only ever for that search: a named user is never
    told how much is hidden from them."""
    call, params = _call(query_text, query_embedding, filters, limit, mode, candidates, ef_search)
    query = sql.SQL(
        """SELECT count(*) FROM {call} h
           JOIN confluence_pages p ON p.page_id = h.page_id AND p.source_id = h.source_id
           WHERE NOT confluence_can_view((SELECT confluence_viewer_access(NULL::text, false)),
                                         p.path, p.page_id, p.space_key)"""
    ).format(call=call)
    params.update(viewer=None, admin=True)
    return conn.execute(query, params, prepare=False).fetchone()[0]


def _call(
    query_text: str | None,
    query_embedding: Sequence[float] | None,
    filters: SearchFilters | None,
    limit: int,
    mode: str,
    candidates: int | None,
    ef_search: int | None,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The confluence_hybrid_search(...) call and its parameters (the viewer's, %(viewer)s and %(admin)s,
    for the caller to set)."""
    filter_sql, params = (filters or SearchFilters()).sql_arguments()
    call = sql.SQL(
        """confluence_hybrid_search(%(embedding)s::vector, %(text)s, %(limit)s, {filters},
                                    search_mode => %(mode)s, candidate_count => %(candidates)s::integer,
                                    ef_search => %(ef_search)s::integer,
                                    viewer_account_id => %(viewer)s::text, as_service_account => %(admin)s)"""
    ).format(filters=filter_sql)
    params.update(
        embedding=vector_literal(query_embedding) if query_embedding is not None and mode != "keyword" else None,
        text=query_text if mode != "vector" else None,
        limit=limit,
        mode=mode,
        candidates=candidates,
        ef_search=ef_search,
    )
    return call, params


def vector_literal(values: Sequence[float]) -> str:
    """pgvector's text form ``[1.0,2.0]``: works on any connection, with or without registered adapters."""
    if hasattr(values, "to_list"):  # pgvector.Vector
        values = values.to_list()
    elif hasattr(values, "tolist"):  # numpy arrays
        values = values.tolist()
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def excerpt(content: str, query: str | None, width: int = 280) -> str:
    """``width`` characters of ``content`` (whitespace collapsed) around the first word of ``query`` found."""
    text = " ".join(content.split())
    if len(text) <= width:
        return text
    lowered = text.lower()
    positions = [lowered.find(w) for w in (query or "").lower().split() if len(w) >= 3]
    found = min((p for p in positions if p >= 0), default=0)
    start = max(0, min(found - width // 4, len(text) - width))
    cut = text[start : start + width]
    return ("…" if start else "") + cut + ("…" if start + width < len(text) else "")
