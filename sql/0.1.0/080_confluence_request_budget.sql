-- Migration: 080_confluence_request_budget.sql
-- Description: One request budget per Confluence site, shared by every process that uses this database
--              (sync runs, reconciliation, the change sensor's probes): a token bucket in one row. Each
--              request reserves a token in one statement (confluence_assets/db/request_budget.py); tokens
--              may go negative, meaning slots reserved in the future, which the reserving process sleeps
--              until. So the site sees at most its requests-per-second ceiling (+ the bucket's burst).
-- Version: 0.1.0
-- Idempotent: yes. CREATE TABLE IF NOT EXISTS.

CREATE TABLE IF NOT EXISTS confluence_request_budget (
  site TEXT PRIMARY KEY,
  tokens DOUBLE PRECISION NOT NULL,
  refilled_at TIMESTAMPTZ NOT NULL
);

COMMENT ON TABLE confluence_request_budget IS
  'Per-site token bucket of Confluence requests, shared across processes (CONFLUENCE_REQUESTS_PER_SECOND)';
COMMENT ON COLUMN confluence_request_budget.site IS 'scheme://host[:port] of the Confluence site';
COMMENT ON COLUMN confluence_request_budget.tokens IS
  'Tokens left when last refilled; negative: requests reserved for slots still to come';

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '080_confluence_request_budget')
ON CONFLICT (version, migration_name) DO NOTHING;
