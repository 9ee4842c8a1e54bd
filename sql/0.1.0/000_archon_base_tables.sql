-- Migration: 000_archon_base_tables.sql
-- Description: The Archon base tables this project writes into (archon_sources, archon_crawled_pages,
--              archon_migrations), created only where absent. On an existing Archon database every
--              statement below is a no-op: its tables, columns, indexes and rows are left as they are.
-- Version: 0.1.0
-- Idempotent: yes (IF NOT EXISTS / ON CONFLICT everywhere).

CREATE EXTENSION IF NOT EXISTS vector;

-- Migration bookkeeping, identical to Archon's 008_add_migration_tracking.
CREATE TABLE IF NOT EXISTS archon_migrations (
  id UUID DEFAULT gen_random_uuid() PRIMARY KEY,
  version VARCHAR(20) NOT NULL,
  migration_name VARCHAR(255) NOT NULL,
  applied_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  checksum VARCHAR(32),
  UNIQUE(version, migration_name)
);
CREATE INDEX IF NOT EXISTS idx_archon_migrations_version ON archon_migrations(version);
CREATE INDEX IF NOT EXISTS idx_archon_migrations_applied_at ON archon_migrations(applied_at DESC);
COMMENT ON TABLE archon_migrations IS
  'Tracks database migrations that have been applied to maintain schema version consistency';
COMMENT ON COLUMN archon_migrations.checksum IS 'MD5 checksum of the migration file content';

-- One row per knowledge source; a Confluence space is source_id 'confluence_<SPACE_KEY>'.
CREATE TABLE IF NOT EXISTS archon_sources (
    source_id TEXT PRIMARY KEY,
    source_url TEXT,
    source_display_name TEXT,
    summary TEXT,
    total_word_count INTEGER DEFAULT 0,
    title TEXT,
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT timezone('utc'::text, now()) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT timezone('utc'::text, now()) NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_archon_sources_title ON archon_sources(title);
CREATE INDEX IF NOT EXISTS idx_archon_sources_url ON archon_sources(source_url);
CREATE INDEX IF NOT EXISTS idx_archon_sources_display_name ON archon_sources(source_display_name);
CREATE INDEX IF NOT EXISTS idx_archon_sources_metadata ON archon_sources USING GIN(metadata);
COMMENT ON TABLE archon_sources IS
  'Knowledge sources. Confluence spaces keep their sync state and metrics in metadata (JSONB).';

-- The unified chunk table shared by every source type (web crawls, uploads, Confluence).
CREATE TABLE IF NOT EXISTS archon_crawled_pages (
    id BIGSERIAL PRIMARY KEY,
    url VARCHAR NOT NULL,
    chunk_number INTEGER NOT NULL,
    content TEXT NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb,
    source_id TEXT NOT NULL REFERENCES archon_sources(source_id) ON DELETE CASCADE,
    embedding_384 VECTOR(384),
    embedding_768 VECTOR(768),
    embedding_1024 VECTOR(1024),
    embedding_1536 VECTOR(1536),
    embedding_3072 VECTOR(3072),
    llm_chat_model TEXT,
    embedding_model TEXT,
    embedding_dimension INTEGER,
    content_search_vector tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT timezone('utc'::text, now()) NOT NULL,
    UNIQUE(url, chunk_number)
);
COMMENT ON TABLE archon_crawled_pages IS
  'Unified chunk table with embeddings. Confluence chunks link to confluence_pages by metadata->>''page_id''.';

-- HNSW, not ivfflat: ivfflat built on an empty table has useless centroids. 3072-d vectors exceed
-- pgvector's 2000-dimension index limit and stay unindexed, as in Archon.
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_384
  ON archon_crawled_pages USING hnsw (embedding_384 vector_cosine_ops);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_768
  ON archon_crawled_pages USING hnsw (embedding_768 vector_cosine_ops);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_1024
  ON archon_crawled_pages USING hnsw (embedding_1024 vector_cosine_ops);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_1536
  ON archon_crawled_pages USING hnsw (embedding_1536 vector_cosine_ops);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_metadata
  ON archon_crawled_pages USING GIN (metadata);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_source_id ON archon_crawled_pages (source_id);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_content_search
  ON archon_crawled_pages USING GIN (content_search_vector);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_model ON archon_crawled_pages (embedding_model);
CREATE INDEX IF NOT EXISTS idx_archon_crawled_pages_embedding_dimension
  ON archon_crawled_pages (embedding_dimension);

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '000_archon_base_tables')
ON CONFLICT (version, migration_name) DO NOTHING;
