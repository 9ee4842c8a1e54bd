-- Migration: 040_confluence_permissions.sql
-- Description: Confluence's view permissions, mirrored and enforced. Who may read each space (users,
--              groups, anonymous access), each page's own read restriction (its effective restriction
--              is the chain through its ancestors, read through confluence_pages.path), groups and their
--              members. Every search resolves its viewer once (confluence_viewer_access) and the page
--              filter keeps only what that viewer may open in Confluence; pages whose permissions are
--              not known are visible to nobody but the explicit service-account mode. On a Supabase /
--              Archon database the staging and permission tables get row level security with no policy
--              for anon / authenticated, and the chunks and pages of Confluence get a restrictive policy
--              for those roles: they read only what every reader of a space may read.
-- Version: 0.1.0
-- Idempotent: yes. Tables and indexes IF NOT EXISTS, functions CREATE OR REPLACE, the signatures they
--             replace dropped by their exact argument types, policies dropped and re-created.

-- ---------------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS confluence_groups (
  group_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  members_status TEXT NOT NULL DEFAULT 'unknown' CHECK (members_status IN ('ok', 'unknown')),
  member_count INTEGER,
  error TEXT,
  refreshed_at TIMESTAMPTZ
);
COMMENT ON TABLE confluence_groups IS
  'Confluence groups named by a space permission or a read restriction; members_status ''ok'' once listed';
COMMENT ON COLUMN confluence_groups.members_status IS
  'ok: confluence_group_members is the full list; unknown: not listed (yet) or the listing failed, no member counts';

CREATE TABLE IF NOT EXISTS confluence_group_members (
  group_id TEXT NOT NULL REFERENCES confluence_groups (group_id) ON DELETE CASCADE,
  account_id TEXT NOT NULL,
  PRIMARY KEY (group_id, account_id)
);
CREATE INDEX IF NOT EXISTS idx_confluence_group_members_account ON confluence_group_members (account_id);
COMMENT ON TABLE confluence_group_members IS 'Members (account ids) of the groups in confluence_groups';

-- Users met in group listings: resolves the e-mail a searcher names to an account id.
CREATE TABLE IF NOT EXISTS confluence_users (
  account_id TEXT PRIMARY KEY,
  email TEXT,
  display_name TEXT,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_confluence_users_email ON confluence_users (lower(email)) WHERE email IS NOT NULL;
COMMENT ON TABLE confluence_users IS
  'Account ids with the e-mail Confluence showed for them (NULL where hidden): for searching as a user by e-mail';

CREATE TABLE IF NOT EXISTS confluence_space_permissions (
  source_id TEXT PRIMARY KEY REFERENCES archon_sources (source_id) ON DELETE CASCADE,
  space_key TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'unknown')),
  anonymous_access BOOLEAN NOT NULL DEFAULT FALSE,
  reader_account_ids TEXT[] NOT NULL DEFAULT '{}',
  reader_group_ids TEXT[] NOT NULL DEFAULT '{}',
  error TEXT,
  refreshed_at TIMESTAMPTZ
);
COMMENT ON TABLE confluence_space_permissions IS
  'Who may view each space: users and groups with read/space, and anonymous access (which opens it to every user)';
COMMENT ON COLUMN confluence_space_permissions.status IS
  'ok: read in full at refreshed_at; unknown: never read or the last read failed (error): nobody is let in';

CREATE TABLE IF NOT EXISTS confluence_page_restrictions (
  page_id TEXT PRIMARY KEY REFERENCES confluence_pages (page_id) ON DELETE CASCADE,
  source_id TEXT NOT NULL REFERENCES archon_sources (source_id) ON DELETE CASCADE,
  status TEXT NOT NULL CHECK (status IN ('ok', 'unknown')),
  read_account_ids TEXT[] NOT NULL DEFAULT '{}',
  read_group_ids TEXT[] NOT NULL DEFAULT '{}',
  restricted BOOLEAN GENERATED ALWAYS AS (cardinality(read_account_ids) + cardinality(read_group_ids) > 0) STORED,
  error TEXT,
  read_at TIMESTAMPTZ
);
-- The exceptions every search collects once: pages with a read restriction of their own, or unknown ones.
CREATE INDEX IF NOT EXISTS idx_confluence_page_restrictions_exceptions
  ON confluence_page_restrictions (source_id) WHERE status <> 'ok' OR restricted;
COMMENT ON TABLE confluence_page_restrictions IS
  'Each page''s own read restriction (users, groups); a page is readable only if it and every ancestor on its path allow the reader';
COMMENT ON COLUMN confluence_page_restrictions.status IS
  'ok: read at read_at; unknown: not read yet or the read failed (error): the page and its descendants are hidden';
COMMENT ON COLUMN confluence_page_restrictions.restricted IS 'The page has a read restriction of its own';

-- A page is never stored without a restriction row: until its restriction is read it is unknown (hidden).
CREATE OR REPLACE FUNCTION confluence_page_restrictions_default()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO confluence_page_restrictions (page_id, source_id, status)
  VALUES (NEW.page_id, NEW.source_id, 'unknown')
  ON CONFLICT (page_id) DO NOTHING;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION confluence_page_restrictions_default() IS
  'Trigger: a new confluence_pages row gets an ''unknown'' restriction row (hidden until its restriction is read)';
DROP TRIGGER IF EXISTS confluence_pages_restriction_default ON confluence_pages;
CREATE TRIGGER confluence_pages_restriction_default
  AFTER INSERT ON confluence_pages
  FOR EACH ROW EXECUTE FUNCTION confluence_page_restrictions_default();

-- Pages stored before this migration: unknown until the next permission refresh reads them.
INSERT INTO confluence_page_restrictions (page_id, source_id, status)
SELECT page_id, source_id, 'unknown' FROM confluence_pages
ON CONFLICT (page_id) DO NOTHING;

-- ---------------------------------------------------------------------------------------------------
-- The viewer of a search
-- ---------------------------------------------------------------------------------------------------
DO $type$
BEGIN
  IF to_regtype('confluence_access') IS NULL THEN
    CREATE TYPE confluence_access AS (
      all_pages boolean,     -- the service account: no permission applies
      space_keys text[],     -- spaces the viewer may read; NULL: any space (no viewer named)
      hidden_pages jsonb     -- {page_id: true} of pages that hide themselves and their descendants
    );
  END IF;
END
$type$;
COMMENT ON TYPE confluence_access IS 'What one viewer may read, resolved once per search by confluence_viewer_access()';

-- viewer_account_id NULL: nobody named. Then only pages with no read restriction on their path, and
-- whose restrictions are known, in any space (what every reader of the space may read); the setting
-- confluence_search.unidentified_access narrows that: 'anonymous' (spaces with anonymous access only)
-- or 'none' (nothing). as_service_account: everything stored, for administrators (the caller logs it).
CREATE OR REPLACE FUNCTION confluence_viewer_access(
    viewer_account_id text DEFAULT NULL,
    as_service_account boolean DEFAULT false
)
RETURNS confluence_access
LANGUAGE plpgsql STABLE
-- As its owner: a role that cannot read the permission tables must not get an empty "nothing is
-- restricted" answer (that would open everything). Who may call it is decided by EXECUTE (below).
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_variable
DECLARE
  unidentified constant text :=
    coalesce(nullif(current_setting('confluence_search.unidentified_access', true), ''), 'unrestricted');
  viewer_groups text[];
  sources text[];
  spaces text[];
  hidden jsonb;
BEGIN
  IF coalesce(as_service_account, false) THEN
    RETURN ROW(true, NULL, '{}'::jsonb)::confluence_access;
  END IF;
  IF viewer_account_id IS NULL THEN
    IF unidentified NOT IN ('unrestricted', 'anonymous', 'none') THEN
      RAISE EXCEPTION 'confluence_search.unidentified_access must be unrestricted, anonymous or none, not %',
        unidentified USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF unidentified = 'none' THEN
      RETURN ROW(false, '{}'::text[], '{}'::jsonb)::confluence_access;
    END IF;
    IF unidentified = 'anonymous' THEN
      SELECT coalesce(array_agg(s.space_key), '{}') INTO spaces
      FROM confluence_space_permissions s WHERE s.status = 'ok' AND s.anonymous_access;
    END IF;
    SELECT coalesce(jsonb_object_agg(r.page_id, true), '{}'::jsonb) INTO hidden
    FROM confluence_page_restrictions r WHERE r.status <> 'ok' OR r.restricted;
    RETURN ROW(false, spaces, hidden)::confluence_access;
  END IF;

  SELECT coalesce(array_agg(m.group_id), '{}') INTO viewer_groups
  FROM confluence_group_members m JOIN confluence_groups g ON g.group_id = m.group_id
  WHERE m.account_id = viewer_account_id AND g.members_status = 'ok';
  SELECT coalesce(array_agg(s.space_key), '{}'), coalesce(array_agg(s.source_id), '{}') INTO spaces, sources
  FROM confluence_space_permissions s
  WHERE s.status = 'ok'
    AND (s.anonymous_access OR viewer_account_id = ANY (s.reader_account_ids) OR s.reader_group_ids && viewer_groups);
  SELECT coalesce(jsonb_object_agg(r.page_id, true), '{}'::jsonb) INTO hidden
  FROM confluence_page_restrictions r
  WHERE r.source_id = ANY (sources)
    AND (r.status <> 'ok' OR r.restricted)
    AND (r.status <> 'ok'
         OR NOT (viewer_account_id = ANY (r.read_account_ids) OR r.read_group_ids && viewer_groups));
  RETURN ROW(false, spaces, hidden)::confluence_access;
END
$$;
COMMENT ON FUNCTION confluence_viewer_access(text, boolean) IS
  'The spaces a viewer may read and the pages hidden from them (with their descendants); NULL viewer: nobody named';
-- Only the owner (the sync's and the search's role) and roles it grants EXECUTE to resolve viewers;
-- anyone else's search fails instead of guessing.
REVOKE EXECUTE ON FUNCTION confluence_viewer_access(text, boolean) FROM PUBLIC;

-- The page test, given a resolved viewer. The path holds the page's ancestors and the page itself; a page
-- stored without a path is tested on its own id (never skipped). NULL access reads nothing.
CREATE OR REPLACE FUNCTION confluence_can_view(access confluence_access, page_path text, page_id text, space_key text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(access.all_pages, false)
         OR (access.all_pages IS NOT NULL  -- not "access IS NOT NULL": false when any field is NULL
             AND (access.space_keys IS NULL OR space_key = ANY (access.space_keys))
             AND NOT (coalesce(access.hidden_pages, '{}'::jsonb)
                      ?| (string_to_array(ltrim(coalesce(page_path, ''), '/'), '/') || page_id)))
$$;
COMMENT ON FUNCTION confluence_can_view(confluence_access, text, text, text) IS
  'May this resolved viewer read the page (space, and no hiding page on its path)?';

-- Without a viewer (Archon's functions, the restrictive row policies below): is the page readable by
-- every reader of its space? SECURITY DEFINER so that roles without access to the permission tables can
-- ask; it reveals no more than whether the page is unrestricted.
CREATE OR REPLACE FUNCTION confluence_page_unrestricted(page text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
  SELECT coalesce((
    SELECT coalesce(nullif(current_setting('confluence_search.unidentified_access', true), ''), 'unrestricted')
             = 'unrestricted'
           AND NOT EXISTS (
             SELECT 1 FROM confluence_page_restrictions r
             WHERE r.page_id = ANY (string_to_array(ltrim(coalesce(p.path, ''), '/'), '/') || p.page_id)
               AND (r.status <> 'ok' OR r.restricted))
           AND EXISTS (SELECT 1 FROM confluence_page_restrictions r WHERE r.page_id = p.page_id)
    FROM confluence_pages p WHERE p.page_id = page AND p.is_deleted = FALSE), false)
$$;
COMMENT ON FUNCTION confluence_page_unrestricted(text) IS
  'The page is live, its restrictions are known and nothing on its path restricts reading';

-- Own and effective restriction per page, for people and the UI (searches use the functions above).
CREATE OR REPLACE VIEW confluence_page_access WITH (security_invoker = true) AS
SELECT p.page_id, p.source_id, p.space_key, p.title,
       r.status AS own_status,
       coalesce(r.restricted, false) AS own_restricted,
       ARRAY(SELECT a.page_id FROM unnest(string_to_array(ltrim(coalesce(p.path, ''), '/'), '/') || p.page_id)
                                 WITH ORDINALITY AS s (id, n)
             JOIN confluence_page_restrictions a ON a.page_id = s.id
             WHERE a.restricted ORDER BY s.n) AS restricted_by,
       NOT EXISTS (SELECT 1 FROM confluence_page_restrictions a
                   WHERE a.page_id = ANY (string_to_array(ltrim(coalesce(p.path, ''), '/'), '/') || p.page_id)
                     AND a.status <> 'ok')
         AND r.status = 'ok' AS effective_known
FROM confluence_pages p LEFT JOIN confluence_page_restrictions r ON r.page_id = p.page_id
WHERE p.is_deleted = FALSE;
COMMENT ON VIEW confluence_page_access IS
  'Live pages with their own restriction and the effective one: the restricted pages on their path (root first)';

-- ---------------------------------------------------------------------------------------------------
-- The page filter and our hybrid search, now with their viewer. The signatures of 030 are dropped: a
-- call without viewer arguments now means "nobody named" (fail closed), never "everything".
-- ---------------------------------------------------------------------------------------------------
DROP FUNCTION IF EXISTS confluence_filtered_pages(text[], text[], text[], text[], text[], text, timestamptz);
DROP FUNCTION IF EXISTS confluence_hybrid_search(vector, text, integer, text[], text[], text[], text[], text[],
                                                 text, timestamptz, text, integer, integer, integer);

-- As in 030, plus the viewer: viewer_account_id / as_service_account, or an already resolved access
-- (which wins). The access subquery is uncorrelated: evaluated once per query, not per row.
CREATE OR REPLACE FUNCTION confluence_filtered_pages(
    space_keys text[] DEFAULT NULL,
    labels text[] DEFAULT NULL,
    jira_keys text[] DEFAULT NULL,
    mentioned_account_ids text[] DEFAULT NULL,
    author_account_ids text[] DEFAULT NULL,
    under_page_id text DEFAULT NULL,
    modified_since timestamptz DEFAULT NULL,
    viewer_account_id text DEFAULT NULL,
    as_service_account boolean DEFAULT false,
    access confluence_access DEFAULT NULL
)
RETURNS SETOF confluence_pages
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT p.* FROM confluence_pages p
  WHERE p.is_deleted = FALSE
    AND (space_keys IS NULL OR p.space_key = ANY (space_keys))
    AND (labels IS NULL OR p.metadata->'labels' @> to_jsonb(labels))
    AND (jira_keys IS NULL
         OR p.metadata->'jira_issue_links' @> confluence_jsonb_probe('issue_key', jira_keys))
    AND (mentioned_account_ids IS NULL
         OR p.metadata->'user_mentions' @> confluence_jsonb_probe('account_id', mentioned_account_ids))
    AND (author_account_ids IS NULL OR p.metadata->'created_by'->>'account_id' = ANY (author_account_ids))
    AND (under_page_id IS NULL
         OR (p.path ~>=~ confluence_page_path(under_page_id)
             AND p.path ~<~ (confluence_page_path(under_page_id) || '0')
             AND (p.path = confluence_page_path(under_page_id)
                  OR starts_with(p.path, confluence_page_path(under_page_id) || '/'))))
    AND (modified_since IS NULL OR p.last_modified >= modified_since)
    AND confluence_can_view(
          coalesce(access, (SELECT confluence_viewer_access(viewer_account_id, as_service_account))),
          p.path, p.page_id, p.space_key)
$$;
COMMENT ON FUNCTION confluence_filtered_pages(text[], text[], text[], text[], text[], text, timestamptz, text, boolean,
                                              confluence_access) IS
  'Live Confluence pages matching the search filters (NULL = no condition) that the viewer may read; inlined';

CREATE OR REPLACE FUNCTION confluence_hybrid_search(
    query_embedding vector,
    query_text text,
    match_count integer DEFAULT 10,
    space_keys text[] DEFAULT NULL,
    labels text[] DEFAULT NULL,
    jira_keys text[] DEFAULT NULL,
    mentioned_account_ids text[] DEFAULT NULL,
    author_account_ids text[] DEFAULT NULL,
    under_page_id text DEFAULT NULL,
    modified_since timestamptz DEFAULT NULL,
    search_mode text DEFAULT 'hybrid',
    candidate_count integer DEFAULT NULL,
    rrf_k integer DEFAULT 60,
    ef_search integer DEFAULT NULL,
    viewer_account_id text DEFAULT NULL,
    as_service_account boolean DEFAULT false
)
RETURNS TABLE (
    id bigint,
    url varchar,
    chunk_number integer,
    content text,
    metadata jsonb,
    source_id text,
    page_id text,
    page_title text,
    space_key text,
    page_url text,
    breadcrumb text[],
    section_title text,
    last_modified timestamptz,
    score double precision,
    similarity double precision,
    text_score double precision,
    vector_rank integer,
    text_rank integer,
    match_type text
)
LANGUAGE plpgsql
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 150  -- bench/search.py: recall@10 0.99 at 100,000 chunks, hybrid p95 ~15 ms
SET jit = off  -- compiling would cost more than these short queries take
AS $fn$
#variable_conflict use_variable
DECLARE
  -- See 030: up to this many chunks are ranked exactly, without the index.
  exact_chunk_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.exact_chunk_limit', true), '')::integer, 5000);
  exact_page_limit constant integer := least(exact_chunk_limit, 2000);
  keyword_rank_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.keyword_rank_limit', true), '')::integer, 2000);
  -- $12 is the viewer's resolved access in every query below.
  filter_args constant text := '$3, $4, $5, $6, $7, $8, $9, access => $12';
  cand integer := least(coalesce(candidate_count, greatest(50, 2 * match_count)), 1000);
  col text;
  tsq tsquery;
  acc confluence_access := confluence_viewer_access(viewer_account_id, as_service_account);
  filtered boolean := space_keys IS NOT NULL OR labels IS NOT NULL OR jira_keys IS NOT NULL
                      OR mentioned_account_ids IS NOT NULL OR author_account_ids IS NOT NULL
                      OR under_page_id IS NOT NULL OR modified_since IS NOT NULL;
  page_ids text[];
  exact boolean := false;
  v_ids bigint[] := '{}';
  t_ids bigint[] := '{}';
BEGIN
  IF search_mode NOT IN ('hybrid', 'vector', 'keyword') THEN
    RAISE EXCEPTION 'search_mode must be hybrid, vector or keyword, not %', search_mode
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF match_count IS NULL OR match_count < 1 THEN
    RETURN;
  END IF;
  IF acc.all_pages THEN
    RAISE LOG 'confluence_hybrid_search as the service account: Confluence permissions not applied';
  END IF;
  IF ef_search IS NOT NULL THEN
    PERFORM set_config('hnsw.ef_search', ef_search::text, true);  -- reverted on exit (SET clause above)
  END IF;
  IF query_embedding IS NOT NULL THEN
    col := confluence_embedding_column(vector_dims(query_embedding));
  END IF;
  IF coalesce(btrim(query_text), '') <> '' THEN
    tsq := websearch_to_tsquery('english', query_text);
    IF numnode(tsq) = 0 THEN
      tsq := NULL;  -- only stop words
    END IF;
  END IF;

  -- When filters or the viewer's spaces narrow the search, the pages it may return are collected first;
  -- if they are few, their chunks are ranked exactly.
  -- Only the viewer's spaces narrow the search, and they hold more live pages than are ranked exactly:
  -- collecting the readable ones (the page test on each page) would be wasted, since the index path below
  -- tests every candidate anyway. Counted on idx_confluence_pages_space, without the page test
  -- (bench/search.py, a principal in 100 groups: hybrid p50 34 -> 20 ms at 100,000 chunks).
  IF NOT filtered AND acc.space_keys IS NOT NULL AND exact_page_limit < (
       SELECT count(*) FROM (SELECT 1 FROM confluence_pages p
                             WHERE p.is_deleted = FALSE AND p.space_key = ANY (acc.space_keys)
                             LIMIT exact_page_limit + 1) s) THEN
    NULL;
  ELSIF filtered OR acc.space_keys IS NOT NULL THEN
    EXECUTE format('SELECT array_agg(page_id) FROM (SELECT page_id FROM confluence_filtered_pages(%s) LIMIT %s) s',
                   filter_args, exact_page_limit + 1)
      INTO page_ids
      USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, NULL::text[], NULL::bigint[], acc;
    IF page_ids IS NULL THEN
      RETURN;  -- no live page matches the filters or may be read by this viewer
    END IF;
    IF cardinality(page_ids) <= exact_page_limit AND exact_chunk_limit > 0 THEN
      SELECT count(*) <= exact_chunk_limit INTO exact FROM (
        SELECT 1 FROM archon_crawled_pages c
        WHERE c.metadata ? 'page_id' AND (c.metadata->>'page_id') = ANY (page_ids)
        LIMIT exact_chunk_limit + 1) s;
    END IF;
  END IF;

  IF col IS NOT NULL AND search_mode IN ('hybrid', 'vector') THEN
    IF exact THEN
      -- "+ 0" keeps the planner off the HNSW index: these few chunks are ranked exactly.
      EXECUTE format(
        $q$SELECT array_agg(id ORDER BY d, id) FROM (
             SELECT c.id, (c.%1$I <=> $1) + 0 AS d FROM archon_crawled_pages c
             WHERE c.metadata ? 'page_id' AND (c.metadata->>'page_id') = ANY ($10) AND c.%1$I IS NOT NULL
               AND (SELECT true FROM confluence_pages p
                    WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)
             ORDER BY 2, 1 LIMIT %2$s) s$q$, col, cand)
        INTO v_ids
        USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
              author_account_ids, under_page_id, modified_since, page_ids, NULL::bigint[], acc;
    ELSE
      -- The page test is a scalar subquery on purpose: evaluated per index candidate (a primary-key
      -- probe), it keeps the HNSW scan in distance order instead of turning into a join.
      EXECUTE format(
        $q$WITH nearest AS MATERIALIZED (
             SELECT c.id, c.%1$I <=> $1 AS d FROM archon_crawled_pages c
             WHERE c.%1$I IS NOT NULL AND c.metadata ? 'page_id'
               AND (SELECT true FROM confluence_filtered_pages(%3$s) p
                    WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)
             ORDER BY c.%1$I <=> $1 LIMIT %2$s)
           SELECT array_agg(id ORDER BY d, id) FROM nearest$q$, col, cand, filter_args)
        INTO v_ids
        USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
              author_account_ids, under_page_id, modified_since, NULL::text[], NULL::bigint[], acc;
    END IF;
  END IF;

  IF tsq IS NOT NULL AND search_mode IN ('hybrid', 'keyword') THEN
    -- See 030: at most keyword_rank_limit matches ranked, plus the vector side's candidates that match.
    EXECUTE format(
      $q$SELECT array_agg(id ORDER BY r DESC, id) FROM (
           SELECT d.id, ts_rank_cd(d.v, $2) AS r FROM (
             SELECT DISTINCT ON (u.id) u.id, u.v FROM (
               (SELECT c.id, c.content_search_vector AS v FROM archon_crawled_pages c
                WHERE c.content_search_vector @@ $2 AND c.metadata ? 'page_id' AND %1$s LIMIT %3$s)
               UNION ALL
               (SELECT c.id, c.content_search_vector FROM archon_crawled_pages c
                WHERE c.id = ANY ($11) AND c.content_search_vector @@ $2 AND c.metadata ? 'page_id' AND %1$s)
             ) u ORDER BY u.id) d
           ORDER BY 2 DESC, 1 LIMIT %2$s) s$q$,
      CASE WHEN exact
        THEN $c$(c.metadata->>'page_id') = ANY ($10) AND EXISTS (SELECT 1 FROM confluence_pages p
                 WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)$c$
        ELSE format($c$EXISTS (SELECT 1 FROM confluence_filtered_pages(%s) p
                 WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)$c$, filter_args)
      END,
      cand, keyword_rank_limit)
      INTO t_ids
      USING query_embedding, tsq, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, page_ids, v_ids, acc;
  END IF;

  -- The final join tests the viewer once more: whatever produced an id, no page the viewer may not read
  -- is ever returned.
  RETURN QUERY EXECUTE format(
    $q$SELECT c.id, c.url, c.chunk_number, c.content, c.metadata, c.source_id,
              p.page_id, p.title, p.space_key,
              coalesce(c.metadata->>'page_url', p.metadata->>'page_url'),
              ARRAY(SELECT a->>'title' FROM jsonb_array_elements(
                      CASE jsonb_typeof(p.metadata->'ancestors') WHEN 'array' THEN p.metadata->'ancestors'
                      ELSE '[]'::jsonb END) AS a)
                || CASE jsonb_typeof(c.metadata->'breadcrumb')
                   WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(c.metadata->'breadcrumb'))
                   ELSE ARRAY[p.title] END,
              c.metadata->>'section_title',
              p.last_modified,
              f.score,
              %s,
              CASE WHEN $2 IS NULL THEN NULL
                   ELSE ts_rank_cd(c.content_search_vector, $2)::float8 END,
              f.vector_rank, f.text_rank,
              CASE WHEN f.vector_rank IS NOT NULL AND f.text_rank IS NOT NULL THEN 'hybrid'
                   WHEN f.vector_rank IS NOT NULL THEN 'vector' ELSE 'keyword' END
       FROM confluence_rrf_fuse($3, $4, $5) f
       JOIN archon_crawled_pages c ON c.id = f.id
       JOIN confluence_pages p
         ON p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id AND p.is_deleted = FALSE
       WHERE confluence_can_view($7, p.path, p.page_id, p.space_key)
       ORDER BY f.score DESC, 15 DESC NULLS LAST, c.id
       LIMIT $6$q$,
    CASE WHEN col IS NULL THEN 'NULL::float8' ELSE format('(1 - (c.%I <=> $1))::float8', col) END)
    USING query_embedding, tsq, v_ids, t_ids, rrf_k, match_count, acc;
END
$fn$;
COMMENT ON FUNCTION confluence_hybrid_search(vector, text, integer, text[], text[], text[], text[], text[], text,
                                             timestamptz, text, integer, integer, integer, text, boolean) IS
  'Hybrid search over the Confluence chunks a viewer may read (none named: unrestricted pages only); RRF-fused';

-- ---------------------------------------------------------------------------------------------------
-- Archon's search functions (ours on a fresh database) know no identity: Confluence chunks count only
-- when their page is unrestricted. Same signature as 030.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION confluence_archon_search(
    query_embedding vector,
    embedding_dimension integer,
    query_text text,
    match_count integer,
    filter jsonb,
    source_filter text
)
RETURNS TABLE (
    id bigint, url varchar, chunk_number integer, content text, metadata jsonb, source_id text,
    similarity double precision, match_type text
)
LANGUAGE plpgsql
SET hnsw.iterative_scan = 'relaxed_order'
SET ivfflat.iterative_scan = 'relaxed_order'  -- Archon databases index with ivfflat
SET hnsw.ef_search = 150  -- bench/search.py: recall@10 0.99 at 100,000 chunks, hybrid p95 ~15 ms
SET jit = off  -- compiling would cost more than these short queries take
AS $fn$
#variable_conflict use_variable
DECLARE
  col text := confluence_embedding_column(embedding_dimension);
  cand integer := CASE WHEN query_text IS NULL THEN match_count
                       ELSE least(greatest(50, 2 * match_count), 1000) END;
  conditions text := $c$(c.url NOT LIKE 'confluence://%' OR confluence_page_unrestricted(c.metadata->>'page_id'))$c$;
  tsq tsquery;
  v_ids bigint[] := '{}';
  t_ids bigint[] := '{}';
BEGIN
  IF match_count IS NULL OR match_count < 1 THEN
    RETURN;
  END IF;
  IF filter IS NOT NULL AND filter <> '{}'::jsonb THEN
    conditions := conditions || ' AND c.metadata @> $3';
  END IF;
  IF source_filter IS NOT NULL THEN
    conditions := conditions || ' AND c.source_id = $4';
  END IF;
  IF query_embedding IS NOT NULL THEN
    EXECUTE format(
      $q$WITH nearest AS MATERIALIZED (
           SELECT c.id, c.%1$I <=> $1 AS d FROM archon_crawled_pages c
           WHERE c.%1$I IS NOT NULL AND %2$s ORDER BY c.%1$I <=> $1 LIMIT %3$s)
         SELECT array_agg(id ORDER BY d, id) FROM nearest$q$, col, conditions, cand)
      INTO v_ids USING query_embedding, NULL::tsquery, filter, source_filter;
  END IF;
  IF coalesce(btrim(query_text), '') <> '' THEN
    tsq := websearch_to_tsquery('english', query_text);
    IF numnode(tsq) > 0 THEN
      EXECUTE format(
        $q$SELECT array_agg(id ORDER BY r DESC, id) FROM (
             SELECT c.id, ts_rank_cd(c.content_search_vector, $2) AS r FROM archon_crawled_pages c
             WHERE c.content_search_vector @@ $2 AND %s ORDER BY 2 DESC, 1 LIMIT %s) s$q$, conditions, cand)
        INTO t_ids USING query_embedding, tsq, filter, source_filter;
    END IF;
  END IF;
  RETURN QUERY EXECUTE format(
    $q$SELECT c.id, c.url, c.chunk_number, c.content, c.metadata, c.source_id,
              coalesce(1 - (c.%1$I <=> $1), ts_rank_cd(c.content_search_vector, $2), 0)::float8,
              CASE WHEN f.vector_rank IS NOT NULL AND f.text_rank IS NOT NULL THEN 'hybrid'
                   WHEN f.vector_rank IS NOT NULL THEN 'vector' ELSE 'keyword' END
       FROM confluence_rrf_fuse($3, $4) f JOIN archon_crawled_pages c ON c.id = f.id
       ORDER BY f.score DESC, 7 DESC, c.id LIMIT $5$q$, col)
    USING query_embedding, tsq, v_ids, t_ids, match_count;
END
$fn$;

-- On an Archon database 030 kept Archon's own two _multi functions (the other two call them). They know
-- no permission, and Archon's server calls them as service_role, which row level security does not
-- narrow: they would return restricted Confluence chunks. So they are replaced by ours, with Archon's
-- arguments and result columns: web sources as before (similarity still a cosine), Confluence chunks of
-- unrestricted pages only; the hybrid one ranks by Reciprocal Rank Fusion.
CREATE OR REPLACE FUNCTION match_archon_crawled_pages_multi(
    query_embedding VECTOR,
    embedding_dimension INTEGER,
    match_count INT DEFAULT 10,
    filter JSONB DEFAULT '{}'::jsonb,
    source_filter TEXT DEFAULT NULL
)
RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
               similarity FLOAT)
LANGUAGE sql
AS $f$
  SELECT s.id, s.url, s.chunk_number, s.content, s.metadata, s.source_id, s.similarity
  FROM confluence_archon_search(query_embedding, embedding_dimension, NULL, match_count, filter, source_filter) s
$f$;
COMMENT ON FUNCTION match_archon_crawled_pages_multi(vector, integer, integer, jsonb, text) IS
  'Archon-compatible vector search (cosine); Confluence chunks of unrestricted pages only';

CREATE OR REPLACE FUNCTION hybrid_search_archon_crawled_pages_multi(
    query_embedding VECTOR,
    embedding_dimension INTEGER,
    query_text TEXT,
    match_count INT DEFAULT 10,
    filter JSONB DEFAULT '{}'::jsonb,
    source_filter TEXT DEFAULT NULL
)
RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
               similarity FLOAT, match_type TEXT)
LANGUAGE sql
AS $f$
  SELECT * FROM confluence_archon_search(query_embedding, embedding_dimension, coalesce(query_text, ''),
                                         match_count, filter, source_filter)
$f$;
COMMENT ON FUNCTION hybrid_search_archon_crawled_pages_multi(vector, integer, text, integer, jsonb, text) IS
  'Archon-compatible hybrid search fused by RRF; Confluence chunks of unrestricted pages only';

-- ---------------------------------------------------------------------------------------------------
-- Supabase / Archon databases: anon and authenticated get default grants on every table in public.
-- The staging and permission tables are ours alone (row level security, no policy for those roles);
-- Confluence rows of the shared tables are readable by them only where the page is unrestricted (a
-- restrictive policy: it narrows Archon's public-read policies and changes nothing else). Roles that
-- bypass row level security (service_role, the tables' owner) are not affected.
-- ---------------------------------------------------------------------------------------------------
ALTER TABLE confluence_sync_staged_pages ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_sync_staged_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_users ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_space_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE confluence_page_restrictions ENABLE ROW LEVEL SECURITY;

DO $rls$
DECLARE
  roles text;
BEGIN
  SELECT string_agg(quote_ident(rolname), ', ') INTO roles
  FROM pg_roles WHERE rolname IN ('anon', 'authenticated');
  IF roles IS NULL THEN
    RETURN;  -- plain PostgreSQL: no such roles, nothing to narrow
  END IF;
  EXECUTE format('REVOKE ALL ON confluence_sync_staged_pages, confluence_sync_staged_chunks, confluence_groups, '
                 'confluence_group_members, confluence_users, confluence_space_permissions, '
                 'confluence_page_restrictions, confluence_page_access FROM %s', roles);
  EXECUTE format('REVOKE EXECUTE ON FUNCTION confluence_viewer_access(text, boolean) FROM PUBLIC, %s', roles);
  -- The search functions run as their caller, so row level security still applies to these roles.
  EXECUTE 'DROP POLICY IF EXISTS "Confluence chunks: unrestricted pages only" ON archon_crawled_pages';
  EXECUTE format('CREATE POLICY "Confluence chunks: unrestricted pages only" ON archon_crawled_pages '
                 'AS RESTRICTIVE FOR SELECT TO %s USING (url NOT LIKE ''confluence://%%'' '
                 'OR confluence_page_unrestricted(metadata->>''page_id''))', roles);
  EXECUTE 'DROP POLICY IF EXISTS "Confluence pages: unrestricted pages only" ON confluence_pages';
  EXECUTE format('CREATE POLICY "Confluence pages: unrestricted pages only" ON confluence_pages '
                 'AS RESTRICTIVE FOR SELECT TO %s USING (confluence_page_unrestricted(page_id))', roles);
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'confluence_pages' AND relrowsecurity) THEN
    EXECUTE 'ALTER TABLE confluence_pages ENABLE ROW LEVEL SECURITY';
    EXECUTE 'DROP POLICY IF EXISTS "Confluence pages: read" ON confluence_pages';
    EXECUTE format('CREATE POLICY "Confluence pages: read" ON confluence_pages FOR SELECT TO %s USING (true)', roles);
  END IF;
END
$rls$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '040_confluence_permissions')
ON CONFLICT (version, migration_name) DO NOTHING;
