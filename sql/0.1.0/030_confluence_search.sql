-- Migration: 030_confluence_search.sql
-- Description: Retrieval. Indexes for the page metadata queries, the page filter every search shares
--              (confluence_filtered_pages), our hybrid search (confluence_hybrid_search: HNSW cosine +
--              full text, fused by Reciprocal Rank Fusion) and Archon's search functions
--              (match_archon_crawled_pages[_multi], hybrid_search_archon_crawled_pages[_multi]), the
--              latter created only where absent: an existing Archon database keeps its own.
-- Version: 0.1.0
-- Idempotent: yes. Our own functions are CREATE OR REPLACE; Archon's names are created only when no
--             function of that name exists.

-- ---------------------------------------------------------------------------------------------------
-- Indexes for the metadata queries (pages with a label, linking to a page, by author, with attachments,
-- modified since). Jira keys, mentions and path prefixes already have theirs (010).
-- ---------------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS idx_confluence_pages_labels
  ON confluence_pages USING GIN ((metadata->'labels') jsonb_path_ops);
CREATE INDEX IF NOT EXISTS idx_confluence_pages_internal_links
  ON confluence_pages USING GIN ((metadata->'internal_links') jsonb_path_ops);
CREATE INDEX IF NOT EXISTS idx_confluence_pages_created_by
  ON confluence_pages ((metadata->'created_by'->>'account_id')) WHERE is_deleted = FALSE;
CREATE INDEX IF NOT EXISTS idx_confluence_pages_with_attachments
  ON confluence_pages (space_key, last_modified DESC)
  WHERE is_deleted = FALSE AND (metadata->'asset_links'->0) IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_confluence_pages_last_modified
  ON confluence_pages (last_modified) WHERE is_deleted = FALSE;
-- Which model and dimension the chunks of a source were embedded with, read by a loose index scan.
CREATE INDEX IF NOT EXISTS idx_crawled_pages_source_embedding
  ON archon_crawled_pages (source_id, embedding_model, embedding_dimension);

COMMENT ON INDEX idx_confluence_pages_labels IS
  'Containment queries on labels (a list of label names): metadata->''labels'' @> ''["runbook"]''';
COMMENT ON INDEX idx_confluence_pages_internal_links IS
  'Pages linking to a page: metadata->''internal_links'' @> ''[{"page_id": "123"}]''';
COMMENT ON INDEX idx_confluence_pages_created_by IS
  'Live pages by author: metadata->''created_by''->>''account_id'' = ... AND is_deleted = FALSE';
COMMENT ON INDEX idx_confluence_pages_with_attachments IS
  'Live pages with attachments: is_deleted = FALSE AND (metadata->''asset_links''->0) IS NOT NULL';
COMMENT ON INDEX idx_confluence_pages_last_modified IS 'Live pages modified since a date';
COMMENT ON INDEX idx_crawled_pages_source_embedding IS
  'Embedding model and dimension per source (search refuses a query embedded with another model)';

-- ---------------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------------

-- '[{"<key>": v1}, {"<key>": v2}]': the containment probe for lists of objects (Jira links, mentions).
-- IMMUTABLE, so a call with constant arguments is folded at plan time and the GIN index sees a constant.
CREATE OR REPLACE FUNCTION confluence_jsonb_probe(probe_key text, probe_values text[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(probe_key, v)), '[]'::jsonb) FROM unnest(probe_values) AS v
$$;
COMMENT ON FUNCTION confluence_jsonb_probe(text, text[]) IS
  'Containment probe [{key: value}, ...] for the jsonb_path_ops GIN indexes on confluence_pages.metadata';

CREATE OR REPLACE FUNCTION confluence_page_path(page text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT path FROM confluence_pages WHERE page_id = page $$;
COMMENT ON FUNCTION confluence_page_path(text) IS 'Materialised path of a page (NULL if unknown)';

CREATE OR REPLACE FUNCTION confluence_embedding_column(embedding_dimension integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF embedding_dimension IN (384, 768, 1024, 1536, 3072) THEN
    RETURN 'embedding_' || embedding_dimension;
  END IF;
  RAISE EXCEPTION 'Unsupported embedding dimension: % (use 384, 768, 1024, 1536 or 3072)', embedding_dimension
    USING ERRCODE = 'invalid_parameter_value';
END
$$;
COMMENT ON FUNCTION confluence_embedding_column(integer) IS
  'archon_crawled_pages column holding vectors of a dimension';

-- ---------------------------------------------------------------------------------------------------
-- The page filter: the one place that says what each search filter means. A plain SQL function, so the
-- planner inlines it and folds away the filters that are NULL: each remaining condition meets its index.
--   space_keys             the page is in one of these spaces
--   labels                 the page has every one of these labels
--   jira_keys              the page links every one of these Jira issues (exact keys)
--   mentioned_account_ids  the page mentions every one of these users
--   author_account_ids     the page was created by one of these users
--   under_page_id          the page is this page or one of its descendants (path prefix)
--   modified_since         last modified at or after this time
-- Deleted pages are never returned.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION confluence_filtered_pages(
    space_keys text[] DEFAULT NULL,
    labels text[] DEFAULT NULL,
    jira_keys text[] DEFAULT NULL,
    mentioned_account_ids text[] DEFAULT NULL,
    author_account_ids text[] DEFAULT NULL,
    under_page_id text DEFAULT NULL,
    modified_since timestamptz DEFAULT NULL
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
    -- The range over text_pattern_ops is what the path index serves; the second line is the exact test.
    AND (under_page_id IS NULL
         OR (p.path ~>=~ confluence_page_path(under_page_id)
             AND p.path ~<~ (confluence_page_path(under_page_id) || '0')
             AND (p.path = confluence_page_path(under_page_id)
                  OR starts_with(p.path, confluence_page_path(under_page_id) || '/'))))
    AND (modified_since IS NULL OR p.last_modified >= modified_since)
$$;
COMMENT ON FUNCTION confluence_filtered_pages(text[], text[], text[], text[], text[], text, timestamptz) IS
  'Live Confluence pages matching the search filters (NULL = no condition); inlined by the planner';

-- ---------------------------------------------------------------------------------------------------
-- Reciprocal Rank Fusion: score = sum over the rankings that contain a chunk of 1 / (rrf_k + rank).
-- With rrf_k = 60 and at most 61 candidates per side, a chunk found by both sides always outranks a
-- chunk found by one.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION confluence_rrf_fuse(vector_ids bigint[], text_ids bigint[], rrf_k integer DEFAULT 60)
RETURNS TABLE (id bigint, score double precision, vector_rank integer, text_rank integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(v.id, t.id),
         coalesce(1.0::float8 / (rrf_k + v.r), 0) + coalesce(1.0::float8 / (rrf_k + t.r), 0),
         v.r::integer, t.r::integer
  FROM unnest(coalesce(vector_ids, '{}')) WITH ORDINALITY AS v (id, r)
  FULL JOIN unnest(coalesce(text_ids, '{}')) WITH ORDINALITY AS t (id, r) ON v.id = t.id
$$;
COMMENT ON FUNCTION confluence_rrf_fuse(bigint[], bigint[], integer) IS
  'Reciprocal Rank Fusion of two ranked id lists (best first)';

-- ---------------------------------------------------------------------------------------------------
-- Our hybrid search over live Confluence chunks.
--   search_mode      'hybrid' (default), 'vector' or 'keyword'; query_embedding may be NULL for keyword,
--                    query_text NULL for vector
--   candidate_count  candidates taken from each side before fusion (default: max(50, 2 * match_count))
--   ef_search        hnsw.ef_search for this call (default: the function's setting below)
-- Vector side: when the filters leave at most 5,000 chunks (setting confluence_search.exact_chunk_limit),
-- they are ranked exactly (perfect recall, no index needed); otherwise the HNSW index is scanned
-- iteratively (relaxed order, then re-sorted) until enough chunks pass the filters.
-- Keyword side: content_search_vector @@ websearch_to_tsquery, ranked by ts_rank_cd (at most 2,000
-- matches ranked: setting confluence_search.keyword_rank_limit).
-- score is the RRF score; similarity the cosine similarity of every returned chunk.
-- ---------------------------------------------------------------------------------------------------
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
    ef_search integer DEFAULT NULL
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
  -- Up to this many chunks are ranked exactly, without the index: ~5 us a chunk when cached, while an
  -- HNSW scan that must skip the ~95% of the graph the filters exclude costs more. The setting
  -- confluence_search.exact_chunk_limit overrides it (0: always the index).
  exact_chunk_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.exact_chunk_limit', true), '')::integer, 5000);
  exact_page_limit constant integer := least(exact_chunk_limit, 2000);
  keyword_rank_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.keyword_rank_limit', true), '')::integer, 2000);
  filter_args constant text := '$3, $4, $5, $6, $7, $8, $9';
  cand integer := least(coalesce(candidate_count, greatest(50, 2 * match_count)), 1000);
  col text;
  tsq tsquery;
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

  IF filtered THEN
    EXECUTE format('SELECT array_agg(page_id) FROM (SELECT page_id FROM confluence_filtered_pages(%s) LIMIT %s) s',
                   filter_args, exact_page_limit + 1)
      INTO page_ids
      USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since;
    IF page_ids IS NULL THEN
      RETURN;  -- no live page matches the filters
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
              author_account_ids, under_page_id, modified_since, page_ids;
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
              author_account_ids, under_page_id, modified_since;
    END IF;
  END IF;

  IF tsq IS NOT NULL AND search_mode IN ('hybrid', 'keyword') THEN
    -- Ranking reads every matching chunk's tsvector (out of line: ~10 us each). A query whose words match
    -- more than keyword_rank_limit chunks ranks the first that many found, plus the vector side's
    -- candidates that match: such common words say little on their own, and the fusion still sees them.
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
            author_account_ids, under_page_id, modified_since, page_ids, v_ids;
  END IF;

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
       ORDER BY f.score DESC, 15 DESC NULLS LAST, c.id
       LIMIT $6$q$,
    CASE WHEN col IS NULL THEN 'NULL::float8' ELSE format('(1 - (c.%I <=> $1))::float8', col) END)
    USING query_embedding, tsq, v_ids, t_ids, rrf_k, match_count;
END
$fn$;
COMMENT ON FUNCTION confluence_hybrid_search(vector, text, integer, text[], text[], text[], text[], text[], text,
                                             timestamptz, text, integer, integer, integer) IS
  'Hybrid search over live Confluence chunks: HNSW cosine + full text fused by RRF, with page filters';

-- ---------------------------------------------------------------------------------------------------
-- Archon's search functions, implemented here for a fresh database (Archon's callers expect them).
-- Same arguments and result columns as Archon's; chunks of deleted Confluence pages never match, chunks
-- of every other source do. The hybrid one ranks by RRF; its similarity column stays a similarity
-- (cosine where the chunk has an embedding, else the text rank) so that callers' thresholds still apply.
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
  conditions text := $c$(c.url NOT LIKE 'confluence://%' OR (SELECT p.is_deleted = FALSE FROM confluence_pages p
                          WHERE p.page_id = c.metadata->>'page_id'))$c$;
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
COMMENT ON FUNCTION confluence_archon_search(vector, integer, text, integer, jsonb, text) IS
  'Implements Archon''s match_/hybrid_search_archon_crawled_pages[_multi] on databases that lack them';

-- Archon's four names, only where no function of that name exists yet (on an Archon database they do,
-- and its callers depend on them as they are).
DO $archon$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'match_archon_crawled_pages_multi'
                 AND pg_function_is_visible(oid)) THEN
    CREATE FUNCTION match_archon_crawled_pages_multi(
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
      FROM confluence_archon_search(query_embedding, embedding_dimension, NULL, match_count, filter,
                                    source_filter) s
    $f$;
    COMMENT ON FUNCTION match_archon_crawled_pages_multi(vector, integer, integer, jsonb, text) IS
      'Archon-compatible vector search (cosine) with a configurable embedding dimension';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'match_archon_crawled_pages'
                 AND pg_function_is_visible(oid)) THEN
    CREATE FUNCTION match_archon_crawled_pages(
        query_embedding VECTOR(1536),
        match_count INT DEFAULT 10,
        filter JSONB DEFAULT '{}'::jsonb,
        source_filter TEXT DEFAULT NULL
    )
    RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
                   similarity FLOAT)
    LANGUAGE sql
    AS $f$
      SELECT * FROM match_archon_crawled_pages_multi(query_embedding, 1536, match_count, filter, source_filter)
    $f$;
    COMMENT ON FUNCTION match_archon_crawled_pages(vector, integer, jsonb, text) IS
      'Archon-compatible vector search over 1536-dimensional embeddings';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'hybrid_search_archon_crawled_pages_multi'
                 AND pg_function_is_visible(oid)) THEN
    CREATE FUNCTION hybrid_search_archon_crawled_pages_multi(
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
      'Archon-compatible hybrid search: vector and full-text rankings fused by Reciprocal Rank Fusion';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'hybrid_search_archon_crawled_pages'
                 AND pg_function_is_visible(oid)) THEN
    CREATE FUNCTION hybrid_search_archon_crawled_pages(
        query_embedding vector(1536),
        query_text TEXT,
        match_count INT DEFAULT 10,
        filter JSONB DEFAULT '{}'::jsonb,
        source_filter TEXT DEFAULT NULL
    )
    RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
                   similarity FLOAT, match_type TEXT)
    LANGUAGE sql
    AS $f$
      SELECT * FROM hybrid_search_archon_crawled_pages_multi(query_embedding, 1536, query_text, match_count,
                                                             filter, source_filter)
    $f$;
    COMMENT ON FUNCTION hybrid_search_archon_crawled_pages(vector, text, integer, jsonb, text) IS
      'Archon-compatible hybrid search over 1536-dimensional embeddings';
  END IF;
END
$archon$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '030_confluence_search')
ON CONFLICT (version, migration_name) DO NOTHING;
