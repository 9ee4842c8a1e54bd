-- Migration: 020_confluence_sync_staging.sql
-- Description: Durable staging between the assets of a sync run (changed pages -> metadata -> chunks ->
--              embeddings), so that a run that fails or is killed anywhere loses nothing and the next
--              run picks the same work up again. Rows leave staging only inside the transaction that
--              swaps a page's chunks into archon_crawled_pages.
-- Version: 0.1.0
-- Idempotent: yes.

-- The version whose chunks are live in archon_crawled_pages. confluence_pages.version can run ahead of it
-- while a page is between metadata and embeddings; change detection compares against this one.
ALTER TABLE confluence_pages ADD COLUMN IF NOT EXISTS indexed_version INTEGER;
COMMENT ON COLUMN confluence_pages.indexed_version IS
  'Version whose chunks are live in archon_crawled_pages (NULL until the first swap)';

CREATE TABLE IF NOT EXISTS confluence_sync_staged_pages (
  source_id TEXT NOT NULL REFERENCES archon_sources(source_id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  title TEXT NOT NULL,
  last_modified TIMESTAMPTZ NOT NULL,
  change_kind TEXT NOT NULL CHECK (change_kind IN ('new', 'updated', 'restored', 'requeued')),
  stage TEXT NOT NULL CHECK (stage IN ('fetched', 'converted', 'chunked', 'failed')),
  payload JSON NOT NULL,
  markdown TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  staged_by_run TEXT,
  staged_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (source_id, page_id)
);
CREATE INDEX IF NOT EXISTS idx_confluence_sync_staged_pages_stage
  ON confluence_sync_staged_pages (source_id, stage);
COMMENT ON TABLE confluence_sync_staged_pages IS
  'Pages of a space waiting to be converted, chunked, embedded and swapped in; failed pages keep their error';
COMMENT ON COLUMN confluence_sync_staged_pages.payload IS 'The REST content object as Confluence returned it';
COMMENT ON COLUMN confluence_sync_staged_pages.stage IS 'fetched -> converted -> chunked -> (swapped: row deleted); failed';

CREATE TABLE IF NOT EXISTS confluence_sync_staged_chunks (
  source_id TEXT NOT NULL,
  page_id TEXT NOT NULL,
  chunk_number INTEGER NOT NULL,
  content TEXT NOT NULL,
  embedding_text TEXT NOT NULL,
  metadata JSONB NOT NULL,
  content_hash TEXT NOT NULL,
  token_count INTEGER NOT NULL,
  embedding vector,
  embedding_model TEXT,
  embedding_dimension INTEGER,
  PRIMARY KEY (source_id, page_id, chunk_number),
  FOREIGN KEY (source_id, page_id)
    REFERENCES confluence_sync_staged_pages (source_id, page_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_confluence_sync_staged_chunks_hash
  ON confluence_sync_staged_chunks (content_hash);
COMMENT ON TABLE confluence_sync_staged_chunks IS
  'Chunks of staged pages with their embeddings once computed (embeddings survive a failed run)';

-- Embedding reuse: a chunk whose content hash already has an embedding for the same model and
-- dimension is not sent to the provider again.
CREATE INDEX IF NOT EXISTS idx_crawled_pages_content_hash
  ON archon_crawled_pages ((metadata->>'content_hash')) WHERE metadata ? 'content_hash';
COMMENT ON INDEX idx_crawled_pages_content_hash IS 'Embedding reuse by chunk content hash';

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '020_confluence_sync_staging')
ON CONFLICT (version, migration_name) DO NOTHING;
