-- Migration: 060_confluence_attachments.sql
-- Description: What the sync knows of each page's attachments and comments, so that their text is part of
--              the page's chunks without asking Confluence again. confluence_attachments: one row per
--              attachment of a stored page (its current version, what extraction made of it, the text);
--              an attachment is downloaded again only when its version or the extractor changes.
--              confluence_comments: the page's footer and inline comments (replies too), as Markdown.
--              Both are replaced per page by page_attachments and go with the page when it is purged
--              (ON DELETE CASCADE); their chunks are the page's chunks (archon_crawled_pages,
--              metadata->>'page_id'), swapped, deleted and permission-checked with the page.
-- Version: 0.1.0
-- Idempotent: yes. CREATE TABLE / INDEX IF NOT EXISTS, row level security re-applied, grants re-revoked.

CREATE TABLE IF NOT EXISTS confluence_attachments (
  attachment_id TEXT PRIMARY KEY,
  page_id TEXT NOT NULL REFERENCES confluence_pages (page_id) ON DELETE CASCADE,
  source_id TEXT NOT NULL,
  file_name TEXT NOT NULL,
  media_type TEXT NOT NULL DEFAULT '',
  file_size BIGINT,
  version INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('extracted', 'failed', 'skipped')),
  reason TEXT NOT NULL DEFAULT '',
  extractor_version TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  chars INTEGER NOT NULL DEFAULT 0,
  units INTEGER NOT NULL DEFAULT 0,
  downloaded_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE confluence_attachments IS
  'Attachments of stored pages: the version last read, the extraction outcome and its text (chunked with the page)';
COMMENT ON COLUMN confluence_attachments.status IS
  'extracted | failed (reason says why: encrypted, corrupt, too large, a zip bomb, ...) | skipped (a type not extracted)';
COMMENT ON COLUMN confluence_attachments.extractor_version IS
  'confluence_assets.extract.EXTRACTOR_VERSION of the text; another value makes the next sync download the file again';

CREATE INDEX IF NOT EXISTS idx_confluence_attachments_page ON confluence_attachments (page_id);
CREATE INDEX IF NOT EXISTS idx_confluence_attachments_source ON confluence_attachments (source_id, status);

CREATE TABLE IF NOT EXISTS confluence_comments (
  comment_id TEXT PRIMARY KEY,
  page_id TEXT NOT NULL REFERENCES confluence_pages (page_id) ON DELETE CASCADE,
  source_id TEXT NOT NULL,
  parent_id TEXT,
  location TEXT NOT NULL DEFAULT 'footer' CHECK (location IN ('footer', 'inline')),
  resolved BOOLEAN NOT NULL DEFAULT FALSE,
  anchor TEXT NOT NULL DEFAULT '',
  author TEXT NOT NULL DEFAULT '',
  created_at TIMESTAMPTZ,
  version INTEGER NOT NULL DEFAULT 1,
  markdown TEXT NOT NULL DEFAULT '',
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

COMMENT ON TABLE confluence_comments IS
  'Footer and inline comments of stored pages (replies name their parent), as Markdown: the page''s "Comments" section';

CREATE INDEX IF NOT EXISTS idx_confluence_comments_page ON confluence_comments (page_id);

-- As the 040 staging and permission tables: Supabase's anon and authenticated roles neither read nor
-- write them (row level security with no policy for them; the grants revoked). The text reaches readers
-- only as chunks, which the search and the chunk policies filter by the page's permissions.
ALTER TABLE confluence_attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_comments ENABLE ROW LEVEL SECURITY;

DO $rls$
DECLARE
  roles text;
BEGIN
  SELECT string_agg(quote_ident(rolname), ', ') INTO roles
  FROM pg_roles WHERE rolname IN ('anon', 'authenticated');
  IF roles IS NULL THEN
    RETURN;  -- plain PostgreSQL: no such roles, nothing to narrow
  END IF;
  EXECUTE format('REVOKE ALL ON confluence_attachments, confluence_comments FROM %s', roles);
END
$rls$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '060_confluence_attachments')
ON CONFLICT (version, migration_name) DO NOTHING;
