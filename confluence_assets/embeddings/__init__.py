"""Embeddings through the openai client, for OpenAI or any OpenAI-compatible server (no Dagster)."""

from confluence_assets.embeddings.client import (
    Embedder,
    EmbeddingAuthError,
    EmbeddingConfigError,
    EmbeddingError,
    EmbeddingQuotaError,
    EmbeddingResult,
    EmbeddingStats,
)

__all__ = [
    "Embedder",
    "EmbeddingAuthError",
    "EmbeddingConfigError",
    "EmbeddingError",
    "EmbeddingQuotaError",
    "EmbeddingResult",
    "EmbeddingStats",
]
