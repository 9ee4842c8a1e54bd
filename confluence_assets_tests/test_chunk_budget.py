"""Chunks fit the configured embedding model: the budget follows its input limit, and a run reports the
inputs longer than the model reads (0 when the chunks were cut for it)."""

from __future__ import annotations

import psycopg
import pytest

from confluence_assets import settings
from confluence_assets.embeddings.limits import chunk_token_limit, model_input_tokens
from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer
from confluence_assets.tokens import estimate_tokens
from confluence_assets_tests.pipeline_support import (
    Sandbox,
    asset_metadata,
    generated_site,
    only_space,
    resources_for,
    sync_space,
)

MINILM = "all-MiniLM-L6-v2"


def test_the_limit_comes_from_the_table_or_the_setting():
    assert chunk_token_limit("text-embedding-3-small") == 8191
    # A WordPiece model reads 256 of its pieces: fewer estimated tokens than that (Korean takes more pieces).
    assert 64 <= chunk_token_limit(MINILM) < 256
    assert chunk_token_limit(f"sentence-transformers/{MINILM}") == chunk_token_limit(MINILM)
    assert model_input_tokens("nomic-embed-text:latest") == 8192
    assert model_input_tokens("some-new-model") == 512  # unknown: the smallest common limit
    assert model_input_tokens("some-new-model", 2048) == 2048
    loaded = settings.load({settings.EMBEDDING_MAX_INPUT_TOKENS: "1024"})
    assert loaded.embeddings.max_input_tokens == 1024
    with pytest.raises(settings.SettingsError, match=settings.EMBEDDING_MAX_INPUT_TOKENS):
        settings.load({settings.EMBEDDING_MAX_INPUT_TOKENS: "ten"})


def _sync(db_url, instance, run_config=None):
    site = generated_site(3, pages=12)
    space = only_space(site)
    with ConfluenceServer(site) as conf, EmbeddingsServer(models={MINILM: 384}) as emb:
        resources = resources_for(Sandbox(site, conf, emb), db_url, embeddings={"model": MINILM, "dimensions": 384})
        result = sync_space(instance, resources, space, run_config=run_config)
    return result, space


def test_chunks_are_cut_to_the_models_limit_and_none_is_over_it(migrated_db_url, instance):
    result, space = _sync(migrated_db_url, instance)
    limit = chunk_token_limit(MINILM)
    assert asset_metadata(result, "page_chunks")["chunk_token_limit"] == limit
    assert asset_metadata(result, "chunk_embeddings")["embedding_inputs_over_model_limit"] == 0
    with psycopg.connect(migrated_db_url) as conn:
        sizes = [
            row[0]
            for row in conn.execute(
                "SELECT (metadata->>'token_count')::int FROM archon_crawled_pages WHERE metadata->>'space_key' = %s",
                (space,),
            )
        ]
        totals = conn.execute(
            "SELECT metadata->'sync_metrics' FROM archon_sources WHERE source_id = %s", (f"confluence_{space}",)
        ).fetchone()[0]
    assert sizes and max(sizes) <= limit
    assert len(sizes) > 12  # the generated pages are longer than one such chunk
    assert totals["embedding_inputs_over_model_limit"] == 0  # recorded with the run's figures


def test_chunks_cut_larger_than_the_model_reads_are_reported(migrated_db_url, instance):
    config = {"ops": {"page_chunks": {"config": {"max_tokens": 2000}}}}
    result, _ = _sync(migrated_db_url, instance, run_config=config)
    over = asset_metadata(result, "chunk_embeddings")["embedding_inputs_over_model_limit"]
    chunks = asset_metadata(result, "chunk_embeddings")["chunks_created"]
    assert 0 < over <= chunks
    assert estimate_tokens("word " * 300) > chunk_token_limit(MINILM)  # such an input is what is counted
