"""Retrieval over the synced chunks: hybrid search with Confluence-aware filters, and metadata queries.

No Dagster here. The SQL lives in sql/0.1.0/030_confluence_search.sql (confluence_hybrid_search,
confluence_filtered_pages and Archon's search functions); these modules call it.
"""

from confluence_assets.search import metadata_queries
from confluence_assets.search.evaluation import EvaluationReport, KnownItem, evaluate, generate_known_item_queries
from confluence_assets.search.filters import InvalidFilterError, SearchFilters, parse_since
from confluence_assets.search.hybrid import MODES, SearchArgumentError, SearchResult, search
from confluence_assets.search.service import (
    EmbeddingMismatchError,
    SearchError,
    SearchService,
    check_embeddings,
    embedder_from_env,
    stored_embeddings,
)

__all__ = [
    "MODES",
    "EmbeddingMismatchError",
    "EvaluationReport",
    "InvalidFilterError",
    "KnownItem",
    "SearchArgumentError",
    "SearchError",
    "SearchFilters",
    "SearchResult",
    "SearchService",
    "check_embeddings",
    "embedder_from_env",
    "evaluate",
    "generate_known_item_queries",
    "metadata_queries",
    "parse_since",
    "search",
    "stored_embeddings",
]
