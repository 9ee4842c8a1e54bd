-- Migration: 120_confluence_staged_order.sql
-- Description: page_metadata stores staged pages in the order their payloads were staged, and
--              staged_at now says when the current payload was staged (a re-stage sets it again; see
--              confluence_assets/sync/staging.py). Two payloads can disagree on the page tree: a page
--              staged before its ancestor moved or was renamed still names the old ancestors, the
--              ancestor staged after names the new place. Stored by page id, the ancestor could rewrite
--              its subtree first and the older payload then put the old path back; stored in staging
--              order, the later payload always wins. This index serves that order.
-- Version: 0.1.0
-- Idempotent: yes. CREATE INDEX IF NOT EXISTS.

CREATE INDEX IF NOT EXISTS idx_confluence_sync_staged_pages_staged_at
  ON confluence_sync_staged_pages (source_id, staged_at, page_id);

COMMENT ON COLUMN confluence_sync_staged_pages.staged_at IS
  'When the current payload was staged (set again when a newer fetch replaces it): the order page_metadata stores pages in';

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '120_confluence_staged_order')
ON CONFLICT (version, migration_name) DO NOTHING;
