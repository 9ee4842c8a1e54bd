-- Migration: 110_confluence_keyword_pages.sql
-- Description: Keyword ranking that weighs a page's terms together, as BM25 over whole pages does, while
--              still returning chunks. A question's terms are often spread over a page (the system in its
--              title and first chunk, the subject and the event in a later one): 070 ranked each chunk on
--              its own terms, and read the chunks of the rarest term and then of the next ones up to a
--              cap, so the chunk holding the subject was often never read (bench/keyword_ranking.py:
--              recall@10 0.993 against BM25's 1.000, MRR@10 0.708). Now (1) the other chunks of the pages
--              holding the rarest term that hold any term are read too, and (2) each chunk gets a small
--              share (confluence_search.page_term_weight, 0.1) of its page's coverage: the idf of every
--              term that any of the page's candidate chunks or its title holds. Only confluence_hybrid_search
--              changes (its keyword side); signature, results and permissions as in 090: the added chunks
--              pass the same page tests, and the final join tests the viewer again.
-- Version: 0.1.0
-- Idempotent: yes. CREATE OR REPLACE with 090's signature.

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
SET hnsw.ef_search = 150  -- replaced per call by confluence_hnsw_ef_search (reverted on exit)
SET ivfflat.iterative_scan = 'relaxed_order'  -- Archon databases index with ivfflat
SET ivfflat.probes = 1  -- replaced per call by confluence_ivfflat_probes (reverted on exit)
SET enable_seqscan = on  -- off around the vector query (reverted on exit)
SET jit = off  -- compiling would cost more than these short queries take
AS $fn$
#variable_conflict use_variable
DECLARE
  -- See 030: up to this many chunks are ranked exactly, without the index.
  exact_chunk_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.exact_chunk_limit', true), '')::integer, 5000);
  exact_page_limit constant integer := least(exact_chunk_limit, 2000);
  -- At most this many chunks of each term are read (the cap on its document frequency) and ranked in all:
  -- checking a chunk's page costs ~10 us, ranking it ~15 us (bench/search.py, bench/keyword_ranking.py).
  keyword_rank_limit constant integer :=
    coalesce(nullif(current_setting('confluence_search.keyword_rank_limit', true), '')::integer, 500);
  -- $12 is the viewer's resolved access in every query below.
  filter_args constant text := '$3, $4, $5, $6, $7, $8, $9, access => $12';
  cand integer := least(coalesce(candidate_count, greatest(50, 2 * match_count)), 1000);
  col text;
  kq record;
  tsq tsquery;
  acc confluence_access := confluence_viewer_access(viewer_account_id, as_service_account);
  filtered boolean := space_keys IS NOT NULL OR labels IS NOT NULL OR jira_keys IS NOT NULL
                      OR mentioned_account_ids IS NOT NULL OR author_account_ids IS NOT NULL
                      OR under_page_id IS NOT NULL OR modified_since IS NOT NULL;
  page_ids text[];
  exact boolean := false;
  allowed text;
  dfs integer[];
  idfs float8[];
  pool bigint[] := '{}';
  top_idf float8;
  score_sql text;
  coverage_sql text;
  rarest bigint[];
  -- How much a page's coverage of the terms adds to each of its chunks' scores (bench/keyword_ranking.py:
  -- 0.1 keeps recall@10 at BM25's and lifts MRR@10 most; more ranks whole pages over the chunk that answers).
  page_term_weight constant float8 :=
    coalesce(nullif(current_setting('confluence_search.page_term_weight', true), '')::float8, 0.1);
  every_term_query tsquery;
  n_every_term integer;
  k integer;
  rec record;
  n_chunks float8;
  narrow text;
  v_ids bigint[] := '{}';
  t_ids bigint[] := '{}';
  t_scores float8[] := '{}';
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
  IF query_embedding IS NOT NULL THEN
    col := confluence_embedding_column(vector_dims(query_embedding));
    PERFORM set_config('hnsw.ef_search',
                       coalesce(ef_search, confluence_hnsw_ef_search(vector_dims(query_embedding), cand))::text,
                       true);  -- reverted on exit (SET clause above)
    PERFORM set_config('ivfflat.probes', confluence_ivfflat_probes()::text, true);
  END IF;
  IF coalesce(btrim(query_text), '') <> '' AND search_mode IN ('hybrid', 'keyword') THEN
    kq := confluence_keyword_query(query_text);
    tsq := kq.match_query;
  END IF;

  -- As in 040: when filters or the viewer's spaces narrow the search, the pages it may return are
  -- collected first; if they are few, their chunks are ranked exactly.
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
        WHERE confluence_chunk_page_id(c.metadata) = ANY (page_ids)
        LIMIT exact_chunk_limit + 1) s;
    END IF;
  END IF;

  IF col IS NOT NULL AND search_mode IN ('hybrid', 'vector') THEN
    IF exact THEN
      -- "+ 0" keeps the planner off the HNSW index: these few chunks are ranked exactly.
      EXECUTE format(
        $q$SELECT array_agg(id ORDER BY d, id) FROM (
             SELECT c.id, (c.%1$I <=> $1) + 0 AS d FROM archon_crawled_pages c
             WHERE confluence_chunk_page_id(c.metadata) = ANY ($10) AND c.%1$I IS NOT NULL
               AND (SELECT true FROM confluence_pages p
                    WHERE p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id)
             ORDER BY 2, 1 LIMIT %2$s) s$q$, col, cand)
        INTO v_ids
        USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
              author_account_ids, under_page_id, modified_since, page_ids, NULL::bigint[], acc;
    ELSE
      -- The page test is a scalar subquery on purpose: evaluated per index candidate (a primary-key
      -- probe), it keeps the HNSW scan in distance order instead of turning into a join. At many ivfflat
      -- probes the planner would rather scan the whole table (testing every row's page): the index scan
      -- reads fewer rows, so it is the only way here (reverted right after, and by the SET clause).
      PERFORM set_config('enable_seqscan', 'off', true);
      EXECUTE format(
        $q$WITH nearest AS MATERIALIZED (
             SELECT c.id, c.%1$I <=> $1 AS d FROM archon_crawled_pages c
             WHERE c.%1$I IS NOT NULL AND confluence_chunk_page_id(c.metadata) IS NOT NULL
               AND (SELECT true FROM confluence_filtered_pages(%3$s) p
                    WHERE p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id)
             ORDER BY c.%1$I <=> $1 LIMIT %2$s)
           SELECT array_agg(id ORDER BY d, id) FROM nearest$q$, col, cand, filter_args)
        INTO v_ids
        USING query_embedding, query_text, space_keys, labels, jira_keys, mentioned_account_ids,
              author_account_ids, under_page_id, modified_since, NULL::text[], NULL::bigint[], acc;
      PERFORM set_config('enable_seqscan', 'on', true);
    END IF;
  END IF;

  IF tsq IS NOT NULL THEN
    -- The chunks this search may return: the same page tests as the vector side.
    allowed := CASE WHEN exact
      THEN $c$confluence_chunk_page_id(c.metadata) = ANY ($10) AND EXISTS (SELECT 1 FROM confluence_pages p
               WHERE p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id)$c$
      ELSE format($c$EXISTS (SELECT 1 FROM confluence_filtered_pages(%s) p
               WHERE p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id)$c$, filter_args)
    END;
    -- A required phrase or an exclusion narrows every step as it narrows the results.
    narrow := CASE WHEN kq.filter_query IS NULL THEN 'true' ELSE 'c.content_search_vector @@ $17' END;
    -- 1. and 2. in one pass: for each term, up to keyword_rank_limit of the chunks this search may return
    --    that hold it (their number is the term's document frequency, capped), rarest term first; the
    --    candidates are these chunks in that order, keyword_rank_limit in all.
    dfs := array_fill(0, ARRAY[cardinality(kq.terms)]);
    FOR rec IN EXECUTE format(
      $q$SELECT t.i::integer AS i, x.ids FROM unnest($2::tsquery[]) WITH ORDINALITY AS t (term, i)
         CROSS JOIN LATERAL (SELECT coalesce(array_agg(s.id), '{}') AS ids FROM (
           SELECT c.id FROM archon_crawled_pages c
           WHERE c.content_search_vector @@ t.term AND %3$s AND confluence_chunk_page_id(c.metadata) IS NOT NULL AND %1$s
           LIMIT %2$s) s) x
         ORDER BY cardinality(x.ids), t.i$q$, allowed, keyword_rank_limit, narrow)
      USING query_embedding, kq.terms, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, page_ids, NULL::bigint[], acc, tsq, NULL::bigint[],
            NULL::text[], NULL::float8[], kq.filter_query
    LOOP
      dfs[rec.i] := cardinality(rec.ids);
      IF rarest IS NULL AND cardinality(rec.ids) > 0 THEN
        rarest := rec.ids;
      END IF;
      IF cardinality(pool) < keyword_rank_limit THEN
        pool := pool || rec.ids[1:keyword_rank_limit - cardinality(pool)];
      END IF;
    END LOOP;
    -- N: all stored chunks, from the catalogue (which every role may read), counted when small or never
    -- analysed. No count of what the viewer may not read enters a score.
    SELECT reltuples INTO n_chunks FROM pg_class WHERE oid = 'archon_crawled_pages'::regclass;
    IF n_chunks < 10000 THEN
      SELECT count(*) INTO n_chunks FROM archon_crawled_pages;
    END IF;
    SELECT array_agg(ln(1 + (greatest(n_chunks, d) - d + 0.5) / (d + 0.5)) ORDER BY o.i) INTO idfs
      FROM unnest(dfs) WITH ORDINALITY AS o (d, i);
    -- 3. The score: for each term idf * ts_rank(chunk, term), ts_rank of one lexeme being
    --    (1 + 1/4 + ... + 1/tf^2) / 1.645, a term frequency that saturates as BM25's does (k1 ~ 1.2),
    --    divided by BM25's length norm (b 0.75, on the number of distinct lexemes). A phrase counts its idf
    --    once when the chunk holds it. The chunk's page title and section title are a second field,
    --    scored the same way and added (as BM25F does): a chunk that does not repeat its page's subject
    --    still gets the credit of the title. Chunks holding every term come first (read even when their
    --    terms are all common): a remembered sentence finds its chunk as it did when every word was
    --    required. The tsvector is decompressed once per chunk (setweight
    --    returns it in memory; every position is labelled D already).
    top_idf := greatest((SELECT max(x) FROM unnest(idfs) AS x), 1e-6);
    every_term_query := CASE WHEN kq.filter_query IS NULL THEN kq.terms[1] ELSE kq.filter_query && kq.terms[1] END;
    FOR k IN 2..cardinality(kq.terms) LOOP
      every_term_query := every_term_query && kq.terms[k];
    END LOOP;
    -- A page's coverage: the idf of each term that any of its candidate chunks (or its title) holds, so a
    -- page whose terms are spread over several chunks ranks as BM25 over the whole page would have it.
    coverage_sql := '0';
    FOR k IN 1..cardinality(kq.terms) LOOP
      coverage_sql := coverage_sql || format(
        ' + %s * max(CASE WHEN m.w @@ $2[%s] OR m.t @@ $2[%s] THEN 1 ELSE 0 END) OVER (PARTITION BY m.pg)',
        idfs[k] / top_idf, k, k);
    END LOOP;
    score_sql := '0';
    FOR k IN 1..cardinality(kq.terms) LOOP
      IF kq.lexemes[k] IS NOT NULL THEN
        score_sql := score_sql || format($s$ + %s * ts_rank('{1,1,1,1}', {w}, $2[%s], 0)$s$, idfs[k] / top_idf, k);
      ELSE
        score_sql := score_sql || format(' + CASE WHEN {w} @@ $2[%s] THEN %s ELSE 0 END', k, 0.608 * idfs[k] / top_idf);
      END IF;
    END LOOP;
    EXECUTE format(
      $q$WITH candidates AS MATERIALIZED (
           SELECT DISTINCT ON (u.id) u.id, u.v, u.h, u.pg FROM (
             (SELECT c.id, c.content_search_vector AS v, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title') AS h, c.source_id || '/' || confluence_chunk_page_id(c.metadata) AS pg
              FROM archon_crawled_pages c WHERE c.id = ANY ($14))
             UNION ALL
             (SELECT c.id, c.content_search_vector, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title'), c.source_id || '/' || confluence_chunk_page_id(c.metadata)
              FROM archon_crawled_pages c
              WHERE c.id = ANY ($11) AND c.content_search_vector @@ $13 AND confluence_chunk_page_id(c.metadata) IS NOT NULL AND %1$s)
             UNION ALL
             (SELECT c.id, c.content_search_vector, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title'), c.source_id || '/' || confluence_chunk_page_id(c.metadata)
              FROM archon_crawled_pages c
              WHERE c.content_search_vector @@ $16 AND confluence_chunk_page_id(c.metadata) IS NOT NULL AND %1$s LIMIT %5$s)
             UNION ALL
             -- The other chunks of the pages holding the rarest term that hold any term: a page's terms
             -- spread over its chunks (the subject in one, the system in another) all get ranked.
             (SELECT c.id, c.content_search_vector, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title'), c.source_id || '/' || confluence_chunk_page_id(c.metadata)
              FROM archon_crawled_pages c
              WHERE (c.source_id, confluence_chunk_page_id(c.metadata)) IN (
                      SELECT x.source_id, confluence_chunk_page_id(x.metadata) FROM archon_crawled_pages x
                      WHERE x.id = ANY ($18))
                AND c.content_search_vector @@ $13 AND %1$s LIMIT %8$s)
           ) u ORDER BY u.id),
         marked AS (
           SELECT d.id, d.pg, x.w, x.t, length(x.w)::float8 AS dl, greatest(avg(length(x.w)) OVER (), 1) AS avgdl
           FROM candidates d
           CROSS JOIN LATERAL (SELECT setweight(d.v, 'D') AS w, to_tsvector('english', d.h) AS t OFFSET 0) x),
         scored AS (
           SELECT m.id, m.w @@ $16 AS every_term,
                  ((%3$s) / (0.25 + 0.75 * m.dl / m.avgdl) + (%4$s) + %6$s * (%7$s))::float8 AS r FROM marked m)
         SELECT array_agg(id ORDER BY every_term DESC, r DESC, id), array_agg(r ORDER BY every_term DESC, r DESC, id),
                count(*) FILTER (WHERE every_term)
         FROM (SELECT id, every_term, r FROM scored ORDER BY every_term DESC, r DESC, id LIMIT %2$s) s$q$,
      allowed, cand, replace(score_sql, '{w}', 'm.w'), replace(score_sql, '{w}', 'm.t'),
      least(cand, keyword_rank_limit), page_term_weight, coverage_sql, keyword_rank_limit)
      INTO t_ids, t_scores, n_every_term
      USING query_embedding, kq.terms, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, page_ids, v_ids, acc, tsq, pool,
            NULL::text[], every_term_query, kq.filter_query, coalesce(rarest, '{}');
    -- In hybrid, chunks holding every term are the keyword ranking when there are any (as when every word
    -- was required): the chunks holding only some would each add a little to the vector side's chunks in
    -- the fusion and push down the one the words were remembered from. A question, which no chunk holds
    -- whole, fuses the ranking of the chunks holding any of its terms.
    IF search_mode = 'hybrid' AND n_every_term > 0 THEN
      t_ids := t_ids[1:n_every_term];
      t_scores := t_scores[1:n_every_term];
    END IF;
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
              $2[f.text_rank],
              f.vector_rank, f.text_rank,
              CASE WHEN f.vector_rank IS NOT NULL AND f.text_rank IS NOT NULL THEN 'hybrid'
                   WHEN f.vector_rank IS NOT NULL THEN 'vector' ELSE 'keyword' END
       FROM confluence_rrf_fuse($3, $4, $5) f
       JOIN archon_crawled_pages c ON c.id = f.id
       JOIN confluence_pages p
         ON p.page_id = confluence_chunk_page_id(c.metadata) AND p.source_id = c.source_id AND p.is_deleted = FALSE
       WHERE confluence_can_view($7, p.path, p.page_id, p.space_key)
       ORDER BY f.score DESC, 15 DESC NULLS LAST, c.id
       LIMIT $6$q$,
    CASE WHEN col IS NULL THEN 'NULL::float8' ELSE format('(1 - (c.%I <=> $1))::float8', col) END)
    USING query_embedding, t_scores, v_ids, t_ids, rrf_k, match_count, acc;
END
$fn$;

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '110_confluence_keyword_pages')
ON CONFLICT (version, migration_name) DO NOTHING;
