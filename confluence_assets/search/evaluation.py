"""Known-item evaluation: does searching a phrase from a page find that page near the top?

``generate_known_item_queries`` picks, from the stored chunks of live pages, word windows that occur on as
few pages as possible (ideally only their own: a "distinctive phrase"); ``evaluate`` runs each through a
search function and reports the share whose page is among the first k results. The phrases come only from
pages the principal may read, and count only those pages (nobody named by default: pages without read
restrictions), so that an evaluation never quotes a page its reader could not open.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from confluence_assets.search.filters import SearchFilters
from confluence_assets.search.principal import VIEWER_ARGUMENTS, resolve_principal, with_access

_URLS = re.compile(r"\]\([^)]*\)|https?://\S+|`[^`]*`")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]")


@dataclass(frozen=True)
class KnownItem:
    page_id: str
    query: str
    matching_pages: int  # live pages whose chunks contain every word of the query (>= 1: its own)


@dataclass
class EvaluationReport:
    k: int
    total: int = 0
    hits: int = 0
    misses: list[tuple[KnownItem, list[str]]] = field(default_factory=list)  # item, page ids returned

    @property
    def hit_rate(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def summary(self) -> str:
        return f"{self.hits}/{self.total} known-item queries found their page in the top {self.k} ({self.hit_rate:.1%})"


def generate_known_item_queries(
    conn: psycopg.Connection,
    count: int = 200,
    *,
    seed: int = 0,
    words: int = 6,
    spaces: Sequence[str] = (),
    windows_per_try: int = 8,
    max_matching_pages: int = 1,
    as_user: str | None = None,
    as_service_account: bool = False,
) -> list[KnownItem]:
    """Up to ``count`` (page, phrase) pairs, pages taken round-robin so that every page gets queries.

    A phrase is ``words`` consecutive words of one of the page's chunks (links, URLs and code left out)
    with at least three indexable words; of ``windows_per_try`` random windows the one found on the fewest
    pages is kept, if that is at most ``max_matching_pages``. Deterministic for a given ``seed`` and data.
    Pages and matches are those ``as_user`` / ``as_service_account`` may read (neither: nobody named).
    """
    rng = random.Random(seed)
    principal = resolve_principal(conn, as_user, as_service_account)
    filters = SearchFilters(spaces=tuple(spaces))
    arguments, params = filters.sql_arguments()
    arguments = psycopg.sql.SQL("{}, {}").format(arguments, VIEWER_ARGUMENTS)
    params.update(with_access(conn, principal.sql_params()))  # resolved once for every query below
    pages = [
        row[0]
        for row in conn.execute(
            psycopg.sql.SQL("SELECT p.page_id FROM confluence_filtered_pages({}) p ORDER BY p.page_id").format(
                arguments
            ),
            params,
            prepare=False,
        )
    ]
    rng.shuffle(pages)
    windows: dict[str, list[str]] = {}  # read when a page's turn comes: only as many pages as needed
    used: set[tuple[str, str]] = set()
    items: list[KnownItem] = []
    exhausted: set[str] = set()
    while len(items) < count and len(exhausted) < len(pages):
        for page in pages:
            if len(items) >= count:
                break
            if page in exhausted:
                continue
            if page not in windows:
                windows[page] = _windows(conn, page, words)
            fresh = [w for w in windows[page] if (page, w) not in used]
            if not fresh:
                exhausted.add(page)
                continue
            tried = rng.sample(fresh, min(windows_per_try, len(fresh)))
            used.update((page, w) for w in tried)
            best = min(((_matching_pages(conn, w, arguments, params), w) for w in tried), key=lambda x: x[0])
            if 1 <= best[0] <= max_matching_pages:
                items.append(KnownItem(page, best[1], best[0]))
    return items


def evaluate(search: Callable[[str], Sequence], items: Sequence[KnownItem], *, k: int = 3) -> EvaluationReport:
    """Run each item's query through ``search`` (returning results with a ``page_id``, best first)."""
    report = EvaluationReport(k=k)
    for item in items:
        returned = [r.page_id for r in search(item.query)]
        report.total += 1
        if item.page_id in returned[:k]:
            report.hits += 1
        else:
            report.misses.append((item, returned[:k]))
    return report


def _windows(conn: psycopg.Connection, page_id: str, words: int) -> list[str]:
    rows = conn.execute(
        """SELECT content FROM archon_crawled_pages
           WHERE confluence_chunk_page_id(metadata) = %s ORDER BY chunk_number""",
        (page_id,),
        prepare=False,
    ).fetchall()
    out: list[str] = []
    for (content,) in rows:
        tokens = _WORD.findall(_URLS.sub(" ", content))
        for start in range(0, max(0, len(tokens) - words + 1), max(1, words // 2)):
            out.append(" ".join(tokens[start : start + words]))
    return list(dict.fromkeys(out))


def _matching_pages(conn: psycopg.Connection, phrase: str, arguments, params) -> int:
    """Live pages (in scope) with a chunk containing every word; 0 when the phrase has < 3 indexable words."""
    query = psycopg.sql.SQL(
        """SELECT CASE WHEN length(to_tsvector('english', %(phrase)s)) < 3 THEN 0 ELSE (
             SELECT count(DISTINCT confluence_chunk_page_id(c.metadata)) FROM archon_crawled_pages c
             WHERE c.content_search_vector @@ websearch_to_tsquery('english', %(phrase)s)
               AND confluence_chunk_page_id(c.metadata) IS NOT NULL
               AND EXISTS (SELECT 1 FROM confluence_filtered_pages({}) p
                           WHERE p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id)) END"""
    ).format(arguments)
    return conn.execute(query, {**params, "phrase": phrase}, prepare=False).fetchone()[0]
