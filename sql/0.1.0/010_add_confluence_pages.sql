-- Migration: 010_add_confluence_pages.sql
-- Description: Hybrid schema for Confluence: rich per-page metadata in confluence_pages, chunks in the
--              shared archon_crawled_pages table linked by metadata->>'page_id'.
-- Version: 0.1.0
-- Idempotent: yes. Running it twice is a no-op.

CREATE TABLE IF NOT EXISTS confluence_pages (
  page_id TEXT PRIMARY KEY,
  source_id TEXT NOT NULL REFERENCES archon_sources(source_id) ON DELETE CASCADE,
  space_key TEXT NOT NULL,
  title TEXT NOT NULL,
  version INTEGER NOT NULL,
  last_modified TIMESTAMPTZ NOT NULL,
  is_deleted BOOLEAN DEFAULT FALSE,
  deleted_at TIMESTAMPTZ,
  path TEXT,
  metadata JSONB NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW()
);

COMMENT ON TABLE confluence_pages IS
  'One row per Confluence page: rich metadata stored once per page; its chunks live in archon_crawled_pages (metadata->>''page_id'').';
COMMENT ON COLUMN confluence_pages.page_id IS 'Confluence content id of the page';
COMMENT ON COLUMN confluence_pages.source_id IS 'Owning space: archon_sources.source_id (confluence_<SPACE_KEY>)';
COMMENT ON COLUMN confluence_pages.space_key IS 'Confluence space key';
COMMENT ON COLUMN confluence_pages.title IS 'Current page title';
COMMENT ON COLUMN confluence_pages.version IS 'Confluence version number of the stored metadata';
COMMENT ON COLUMN confluence_pages.last_modified IS 'When Confluence last modified the page (version.when)';
COMMENT ON COLUMN confluence_pages.is_deleted IS 'Soft delete: the page was trashed or purged in Confluence';
COMMENT ON COLUMN confluence_pages.deleted_at IS 'When the page was found deleted (NULL while it is live)';
COMMENT ON COLUMN confluence_pages.path IS 'Materialised path of ancestor ids: /root_id/.../page_id';
COMMENT ON COLUMN confluence_pages.metadata IS
  'ancestors, children, created_by, last_modified_by, labels, jira_issue_links, user_mentions, internal_links, external_links, asset_links, word_count, content_length, headings, code_languages';
COMMENT ON COLUMN confluence_pages.created_at IS 'When this row was first written';
COMMENT ON COLUMN confluence_pages.updated_at IS 'When this row was last written';

CREATE INDEX IF NOT EXISTS idx_confluence_pages_source
  ON confluence_pages (source_id) WHERE is_deleted = FALSE;
CREATE INDEX IF NOT EXISTS idx_confluence_pages_space
  ON confluence_pages (space_key) WHERE is_deleted = FALSE;
CREATE INDEX IF NOT EXISTS idx_confluence_pages_version
  ON confluence_pages (page_id, version);
CREATE INDEX IF NOT EXISTS idx_confluence_pages_path
  ON confluence_pages (path text_pattern_ops);
CREATE INDEX IF NOT EXISTS idx_confluence_pages_jira
  ON confluence_pages USING GIN ((metadata->'jira_issue_links') jsonb_path_ops);
CREATE INDEX IF NOT EXISTS idx_confluence_pages_mentions
  ON confluence_pages USING GIN ((metadata->'user_mentions') jsonb_path_ops);
CREATE INDEX IF NOT EXISTS idx_crawled_pages_confluence_page_id
  ON archon_crawled_pages ((metadata->>'page_id')) WHERE metadata ? 'page_id';

COMMENT ON INDEX idx_confluence_pages_source IS 'Live pages of a source (soft-deleted rows excluded)';
COMMENT ON INDEX idx_confluence_pages_space IS 'Live pages of a space key (soft-deleted rows excluded)';
COMMENT ON INDEX idx_confluence_pages_version IS 'Version lookups for incremental sync';
COMMENT ON INDEX idx_confluence_pages_path IS 'Hierarchy queries by path prefix: path LIKE ''/root/parent/%''';
COMMENT ON INDEX idx_confluence_pages_jira IS 'Containment queries on Jira links: metadata->''jira_issue_links'' @> ''[{"issue_key": "X-1"}]''';
COMMENT ON INDEX idx_confluence_pages_mentions IS 'Containment queries on user mentions: metadata->''user_mentions'' @> ''[{"account_id": "..."}]''';
COMMENT ON INDEX idx_crawled_pages_confluence_page_id IS 'Links Confluence chunks back to their page';

-- Row level security as Archon has it, only where Supabase's auth.role() exists; on plain PostgreSQL
-- the policies could never match, so the block does nothing there.
DO $rls$
BEGIN
  IF to_regprocedure('auth.role()') IS NOT NULL THEN
    EXECUTE 'ALTER TABLE confluence_pages ENABLE ROW LEVEL SECURITY';
    EXECUTE 'DROP POLICY IF EXISTS "Allow service role full access to confluence_pages" ON confluence_pages';
    EXECUTE 'DROP POLICY IF EXISTS "Allow authenticated users to read confluence_pages" ON confluence_pages';
    EXECUTE 'CREATE POLICY "Allow service role full access to confluence_pages" ON confluence_pages '
            'FOR ALL USING (auth.role() = ''service_role'')';
    EXECUTE 'CREATE POLICY "Allow authenticated users to read confluence_pages" ON confluence_pages '
            'FOR SELECT TO authenticated USING (true)';
  END IF;
END
$rls$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '010_add_confluence_pages')
ON CONFLICT (version, migration_name) DO NOTHING;
