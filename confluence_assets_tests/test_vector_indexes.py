"""doctor's view of ivfflat indexes (db/vector_indexes.py) on the real embedded PostgreSQL: an index built
on the empty table, as Archon's complete_setup.sql builds its own, then filled, is reported with its
rebuild; rebuilt on the data, it is not."""

from __future__ import annotations

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from confluence_assets.db import vector_indexes
from confluence_assets.doctor import _archon_checks

LISTS = 20
ROWS = 2_000


def _clustered(n: int, dim: int = 384, clusters: int = 40, seed: int = 18) -> np.ndarray:
    """Vectors around a few dozen centres, as embeddings of a few dozen topics are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    vectors = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_ivfflat_index_built_empty_is_reported_with_its_rebuild_and_not_once_rebuilt(migrated_db_url):
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_archon_crawled_pages_embedding_384")
        conn.execute(
            "CREATE INDEX idx_archon_crawled_pages_embedding_384 ON archon_crawled_pages"
            f" USING ivfflat (embedding_384 vector_cosine_ops) WITH (lists = {LISTS})"
        )
        conn.execute("INSERT INTO archon_sources (source_id) VALUES ('web')")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_384)"
                " VALUES (%s, 0, 'x', %s, 'web', %s::vector)",
                [(f"https://example.com/{i}", Jsonb({}), str(v.tolist())) for i, v in enumerate(_clustered(ROWS))],
            )
        (empty_built,) = vector_indexes.ivfflat_indexes(conn)
        checks = {c.name: c for c in _archon_checks(conn, 1536)}
        conn.execute("REINDEX INDEX idx_archon_crawled_pages_embedding_384")
        (rebuilt,) = vector_indexes.ivfflat_indexes(conn)
        after = {c.name: c for c in _archon_checks(conn, 1536)}
    name = "index idx_archon_crawled_pages_embedding_384"
    assert (empty_built.rows, empty_built.lists) == (ROWS, LISTS)
    assert (empty_built.newer_share, rebuilt.newer_share) == (1.0, 0.0)  # every row came after the build
    assert empty_built.skewed and not rebuilt.skewed, (empty_built, rebuilt)
    assert rebuilt.one_probe_recall > empty_built.one_probe_recall  # what the rebuild is worth
    assert (
        not checks[name].ok
        and "REINDEX INDEX CONCURRENTLY idx_archon_crawled_pages_embedding_384;" in checks[name].hint
    )
    assert after[name].ok
    assert "archon" not in checks  # no Archon table here: nothing to say about Archon's server
