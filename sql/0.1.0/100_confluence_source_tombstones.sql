-- Migration: 100_confluence_source_tombstones.sql
-- Description: A space whose archon_sources row the user deleted (in Archon's UI or API: the row, and by
--              cascade its pages and chunks) stays deleted. Before, the next space refresh or sync
--              re-created the row and re-embedded the whole space. confluence_sources_seen remembers each
--              source the sync created; a source seen here whose archon_sources row is gone was deleted by
--              the user and is tombstoned (deleted_by_user_at): the space refresh drops its partition and
--              never re-creates it, a sync of it fails with one line naming the way back
--              (`confluence-assets space restore KEY`, which forgets the tombstone). Not a foreign key to
--              archon_sources on purpose: the row must outlive the one it remembers.
-- Version: 0.1.0
-- Idempotent: yes. CREATE TABLE IF NOT EXISTS; the existing Confluence sources are recorded once.

CREATE TABLE IF NOT EXISTS confluence_sources_seen (
  source_id TEXT PRIMARY KEY,
  space_key TEXT NOT NULL,
  first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  deleted_by_user_at TIMESTAMPTZ
);

COMMENT ON TABLE confluence_sources_seen IS
  'Confluence sources the sync created; deleted_by_user_at set once the user deleted the archon_sources row';
COMMENT ON COLUMN confluence_sources_seen.source_id IS 'archon_sources.source_id (confluence_<SPACE_KEY>)';
COMMENT ON COLUMN confluence_sources_seen.space_key IS 'Confluence space key';
COMMENT ON COLUMN confluence_sources_seen.first_seen_at IS 'When the sync first created the source row';
COMMENT ON COLUMN confluence_sources_seen.deleted_by_user_at IS
  'When the sync found the source row deleted (NULL: not deleted); the space stays out until restored';

INSERT INTO confluence_sources_seen (source_id, space_key)
SELECT source_id, metadata->>'confluence_space_key' FROM archon_sources
WHERE metadata->>'source_type' = 'confluence' AND metadata ? 'confluence_space_key'
ON CONFLICT (source_id) DO NOTHING;

-- Ours alone, as the staging and permission tables (040): no policy for anon or authenticated.
ALTER TABLE confluence_sources_seen ENABLE ROW LEVEL SECURITY;
DO $rls$
DECLARE
  roles text;
BEGIN
  SELECT string_agg(quote_ident(rolname), ', ') INTO roles FROM pg_roles WHERE rolname IN ('anon', 'authenticated');
  IF roles IS NOT NULL THEN
    EXECUTE format('REVOKE ALL ON confluence_sources_seen FROM %s', roles);
  END IF;
END
$rls$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '100_confluence_source_tombstones')
ON CONFLICT (version, migration_name) DO NOTHING;
