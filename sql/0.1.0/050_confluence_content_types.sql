-- Migration: 050_confluence_content_types.sql
-- Description: What each confluence_pages row is: a page, a blog post, or one of the content tree's other
--              nodes (Confluence Cloud's folders, whiteboards, databases and embeds), so the sync and
--              search can tell them apart (search filters may take it later). Rows synced before this
--              migration are pages, the only type synced then. Chunk rows carry the same value in
--              archon_crawled_pages.metadata->>'content_type' (written by the sync, no schema change).
-- Version: 0.1.0
-- Idempotent: yes. ADD COLUMN IF NOT EXISTS, CREATE INDEX IF NOT EXISTS, the constraint dropped and re-added.

ALTER TABLE confluence_pages ADD COLUMN IF NOT EXISTS content_type TEXT NOT NULL DEFAULT 'page';

ALTER TABLE confluence_pages DROP CONSTRAINT IF EXISTS confluence_pages_content_type_check;
ALTER TABLE confluence_pages ADD CONSTRAINT confluence_pages_content_type_check
  CHECK (content_type IN ('page', 'blogpost', 'folder', 'whiteboard', 'database', 'embed'));

COMMENT ON COLUMN confluence_pages.content_type IS
  'page | blogpost | folder | whiteboard | database | embed (the last four: tree nodes without a body, indexed by title)';

-- Per space and type: "the blog posts of ENG", the metadata queries' filters.
CREATE INDEX IF NOT EXISTS idx_confluence_pages_source_content_type
  ON confluence_pages (source_id, content_type) WHERE is_deleted = FALSE;
COMMENT ON INDEX idx_confluence_pages_source_content_type IS
  'Live rows of a source by content type (page, blogpost, folder, ...)';

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '050_confluence_content_types')
ON CONFLICT (version, migration_name) DO NOTHING;
