"""Search as a user runs it: resolve who searches, embed the query with the configured provider, check that
the stored chunks were embedded with the same model and dimension, then run the hybrid search.

A query vector from another model (or of another dimension) than the chunks' is meaningless to compare:
the search refuses, naming the space, the stored model and the configured one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from confluence_assets import settings
from confluence_assets.confluence.keys import SOURCE_ID_PREFIX, source_id_for
from confluence_assets.embeddings import Embedder, EmbeddingError
from confluence_assets.search.errors import SearchError
from confluence_assets.search.filters import SearchFilters
from confluence_assets.search.hybrid import SearchResult, count_withheld, search
from confluence_assets.search.principal import NOBODY, Principal, resolve_principal

log = logging.getLogger(__name__)


class EmbeddingMismatchError(SearchError):
    pass


class SearchResults(list[SearchResult]):
    """The results (best first) and what the search ran as. ``withheld``: for a search with no principal,
    how many of the first ``limit`` matches of the service account were left out because of permissions;
    None for a named principal (who is never told how much is hidden from them) and the service account."""

    def __init__(self, results=(), *, principal: Principal = NOBODY, withheld: int | None = None) -> None:
        super().__init__(results)
        self.principal = principal
        self.withheld = withheld


@dataclass(frozen=True)
class StoredEmbedding:
    space_key: str
    model: str
    dimension: int


# A loose index scan over idx_crawled_pages_source_embedding: one index probe per distinct
# (model, dimension) of the source, however many chunks it has.
_STORED_EMBEDDINGS = """
WITH RECURSIVE combos AS (
  (SELECT embedding_model, embedding_dimension FROM archon_crawled_pages
   WHERE source_id = %(source)s AND embedding_model IS NOT NULL AND embedding_dimension IS NOT NULL
   ORDER BY 1, 2 LIMIT 1)
  UNION ALL
  SELECT n.embedding_model, n.embedding_dimension FROM combos c CROSS JOIN LATERAL (
    SELECT a.embedding_model, a.embedding_dimension FROM archon_crawled_pages a
    WHERE a.source_id = %(source)s AND a.embedding_model IS NOT NULL AND a.embedding_dimension IS NOT NULL
      AND (a.embedding_model, a.embedding_dimension) > (c.embedding_model, c.embedding_dimension)
    ORDER BY 1, 2 LIMIT 1) n
)
SELECT embedding_model, embedding_dimension FROM combos
"""


def stored_embeddings(conn: psycopg.Connection, spaces: Sequence[str] = ()) -> list[StoredEmbedding]:
    """Model and dimension of the chunks of each space (all Confluence spaces when ``spaces`` is empty)."""
    if spaces:
        sources = [source_id_for(s) for s in spaces]
    else:
        sources = [
            row[0]
            for row in conn.execute(
                "SELECT source_id FROM archon_sources WHERE starts_with(source_id, %s) ORDER BY 1",
                (SOURCE_ID_PREFIX,),
            )
        ]
    found = []
    for source in sources:
        space = source[len(SOURCE_ID_PREFIX) :]
        for model, dimension in conn.execute(_STORED_EMBEDDINGS, {"source": source}, prepare=False):
            found.append(StoredEmbedding(space, model, dimension))
    return found


def check_embeddings(conn: psycopg.Connection, model: str, dimension: int, spaces: Sequence[str] = ()) -> None:
    """Raise EmbeddingMismatchError unless every chunk in scope is embedded with ``model``/``dimension``."""
    stored = stored_embeddings(conn, spaces)
    if not stored:
        where = f" in space {', '.join(spaces)}" if spaces else ""
        raise SearchError(f"no embedded Confluence chunks{where} to search yet: run a sync first")
    other = [s for s in stored if (s.model, s.dimension) != (model, dimension)]
    if other:
        described = "; ".join(f"chunks of space {s.space_key} are embedded with {s.model}/{s.dimension}" for s in other)
        raise EmbeddingMismatchError(
            f"{described}, but {settings.EMBEDDING_MODEL}/{settings.EMBEDDING_DIMENSIONS} is {model}/{dimension}: "
            f"re-sync with this model, or configure the model the chunks were embedded with"
        )


class SearchService:
    """Embeds queries with ``embedder`` and searches through ``conn``. Without an embedder only keyword
    search works. The model check runs once per set of spaces."""

    def __init__(self, conn: psycopg.Connection, embedder: Embedder | None = None) -> None:
        self.conn = conn
        self.embedder = embedder
        self._checked: set[tuple[str, ...]] = set()

    @classmethod
    def from_env(cls, database_url: str | None = None, *, need_embedder: bool = True) -> SearchService:
        """Database from ``database_url``/``DATABASE_URL``/embedded; embedder from OPENAI_* and EMBEDDING_*.

        Raises :class:`~confluence_assets.settings.SettingsError` when an embedding setting has a bad value.
        """
        from confluence_assets.db.connection import connect, resolve_database

        embedder = embedder_from_env() if need_embedder else None
        conn = connect(resolve_database(database_url).url, autocommit=True)
        return cls(conn, embedder)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SearchService:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def embed_query(self, text: str) -> list[float]:
        if self.embedder is None:
            raise SearchError(f"{settings.OPENAI_API_KEY} is not set: only keyword search works without embeddings")
        try:
            result = self.embedder.embed([text])
        except EmbeddingError as exc:
            raise SearchError(str(exc)) from None
        if result.vectors[0] is None:
            raise SearchError(f"the embedding provider rejected the query: {result.rejected.get(0, 'no reason given')}")
        return result.vectors[0]

    def check(self, filters: SearchFilters) -> None:
        if self.embedder is None:
            return
        spaces = filters.validated().spaces
        if spaces in self._checked:
            return
        check_embeddings(self.conn, self.embedder.model, self.embedder.dimensions, spaces)
        self._checked.add(spaces)

    def search(
        self,
        query: str,
        filters: SearchFilters | None = None,
        *,
        limit: int = 10,
        mode: str = "hybrid",
        as_user: str | None = None,
        as_service_account: bool = False,
        principal: Principal | None = None,
    ) -> SearchResults:
        """Search as ``as_user`` (an account id, or an e-mail known from the group listings), as nobody
        (neither given: pages without read restrictions only, and ``withheld`` says how many matches that
        left out), or as the service account (every page; logged at WARNING). ``principal``: one resolved
        already (the MCP server resolves each connection's once), instead of ``as_user``/``as_service_account``."""
        if principal is None:
            principal = resolve_principal(self.conn, as_user, as_service_account)
        elif as_user is not None or as_service_account:
            raise SearchError("a search runs as one principal: give it resolved or as as_user, not both")
        filters = (filters or SearchFilters()).validated()
        embedding = None
        if mode != "keyword":
            self.check(filters)
            embedding = self.embed_query(query)
        viewer = {"viewer_account_id": principal.account_id, "as_service_account": principal.service_account}
        results = search(self.conn, query, embedding, filters, limit=limit, mode=mode, **viewer)
        withheld = None
        if principal.is_nobody:
            withheld = count_withheld(self.conn, query, embedding, filters, limit=limit, mode=mode)
        return SearchResults(results, principal=principal, withheld=withheld)


def embedder_from_env() -> Embedder:
    """The Embedder the sync uses, configured from the same settings (``settings.load()``: a bad value raises
    the SettingsError the code location gives too)."""
    embeddings = settings.load().embeddings
    if not embeddings.api_key:
        raise SearchError(
            f"{settings.OPENAI_API_KEY} is not set: the query must be embedded like the chunks "
            "(any value for a local OpenAI-compatible server; --mode keyword needs none)"
        )
    try:
        return Embedder(
            model=embeddings.model,
            dimensions=embeddings.dimensions,
            api_key=embeddings.api_key,
            base_url=embeddings.base_url,
            max_retries=2,
            timeout_seconds=30,
        )
    except EmbeddingError as exc:
        raise SearchError(str(exc)) from None
