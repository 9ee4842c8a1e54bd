"""Retrieval over the synced chunks: hybrid search with Confluence-aware filters, and metadata queries.

No Dagster here. The SQL lives in sql/0.1.0/030_confluence_search.sql and 040_confluence_permissions.sql
(confluence_hybrid_search, confluence_filtered_pages, confluence_viewer_access and Archon's search
functions); these modules call it. Every search runs as a principal (``principal.Principal``): a
Confluence user, nobody named, or the service account.
"""

from confluence_assets.search import metadata_queries
from confluence_assets.search.errors import SearchError
from confluence_assets.search.evaluation import EvaluationReport, KnownItem, evaluate, generate_known_item_queries
from confluence_assets.search.filters import InvalidFilterError, SearchFilters, parse_since
from confluence_assets.search.hybrid import MODES, SearchArgumentError, SearchResult, search
from confluence_assets.search.principal import NOBODY, SERVICE_ACCOUNT, Principal, PrincipalError, resolve_principal
from confluence_assets.search.service import (
    EmbeddingMismatchError,
    SearchResults,
    SearchService,
    check_embeddings,
    embedder_from_env,
    stored_embeddings,
)

__all__ = [
    "MODES",
    "NOBODY",
    "SERVICE_ACCOUNT",
    "EmbeddingMismatchError",
    "EvaluationReport",
    "InvalidFilterError",
    "KnownItem",
    "Principal",
    "PrincipalError",
    "SearchArgumentError",
    "SearchError",
    "SearchFilters",
    "SearchResult",
    "SearchResults",
    "SearchService",
    "check_embeddings",
    "embedder_from_env",
    "evaluate",
    "generate_known_item_queries",
    "metadata_queries",
    "parse_since",
    "resolve_principal",
    "search",
    "stored_embeddings",
]
