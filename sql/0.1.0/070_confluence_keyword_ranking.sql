-- Migration: 070_confluence_keyword_ranking.sql
-- Description: Keyword ranking that works for questions, and hnsw.ef_search per embedding dimension.
--              The keyword side of confluence_hybrid_search required every word of the query
--              (websearch_to_tsquery), so a question matched no chunk and hybrid was vector-only. Now a
--              chunk matches when it has ANY of the query's terms and is ranked by Okapi BM25 (k1 1.2,
--              b 0.75): more matched terms, rarer terms (document frequency counted among the chunks the
--              search may return) and repeated terms score higher. "Quoted phrases" stay required,
--              -exclusions stay excluded, and a word the parser splits (ERR_CERT_DATE_INVALID, PAY-123,
--              max_connections) is one term that matches only as the whole phrase. The vector side gets
--              its hnsw.ef_search from the embedding dimension and the candidate count
--              (confluence_hnsw_ef_search; bench/search.py --ann measures it). Permissions unchanged: every
--              query still goes through confluence_filtered_pages(..., access) and the final
--              confluence_can_view test.
-- Version: 0.1.0
-- Idempotent: yes. Functions CREATE OR REPLACE with the signatures of 040 (confluence_hybrid_search keeps
--             its arguments and result columns).

-- ---------------------------------------------------------------------------------------------------
-- The query text as keyword terms.
--   "a phrase"   required (AND), matched as a phrase; -word / -"a phrase" excluded
--   or / OR      ignored: terms are alternatives anyway
--   any other whitespace-separated word: one optional term, phraseto_tsquery of the word, so that a word
--   the parser splits into several lexemes (max_connections -> 'max' <-> 'connect') matches whole
-- match_query: the chunks the keyword side may return (required & !excluded, or without a required phrase
-- !excluded & (term1 | term2 | ...)); NULL when the text has no positive term (only stop words or
-- exclusions). filter_query: the required and excluded part alone (NULL if none). terms: every positive term
-- (required phrases too: they count in the ranking), deduplicated; lexemes[i]: the lexeme when terms[i]
-- is a single lexeme (its term frequency is read from the chunk's positions), NULL for a phrase.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION confluence_keyword_query(
    query_text text,
    OUT match_query tsquery,
    OUT filter_query tsquery,
    OUT terms tsquery[],
    OUT lexemes text[]
)
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $fn$
DECLARE
  m text[];
  word text;
  term tsquery;
  required tsquery;
  excluded tsquery;
  optional tsquery;
  rest text := coalesce(query_text, '');
  parts text[];
BEGIN
  terms := '{}';
  lexemes := '{}';
  -- Quoted phrases: -"..." excluded, "..." required.
  FOR m IN SELECT regexp_matches(rest, '(^|\s)(-?)"([^"]*)"', 'g') LOOP
    term := phraseto_tsquery('english', m[3]);
    CONTINUE WHEN numnode(term) = 0;
    IF m[2] = '-' THEN
      excluded := CASE WHEN excluded IS NULL THEN term ELSE excluded || term END;
    ELSE
      required := CASE WHEN required IS NULL THEN term ELSE required && term END;
      IF NOT term = ANY (terms) THEN
        terms := terms || term;
        lexemes := lexemes || CASE WHEN numnode(term) = 1 THEN (tsvector_to_array(to_tsvector('english', m[3])))[1] END;
      END IF;
    END IF;
  END LOOP;
  rest := regexp_replace(rest, '(^|\s)-?"[^"]*"', ' ', 'g');
  rest := replace(rest, '"', ' ');  -- an unclosed quote: its words count as plain words
  FOREACH word IN ARRAY regexp_split_to_array(btrim(rest), '\s+') LOOP
    CONTINUE WHEN word = '' OR lower(word) = 'or';
    IF left(word, 1) = '-' THEN
      term := phraseto_tsquery('english', substr(word, 2));
      IF numnode(term) > 0 THEN
        excluded := CASE WHEN excluded IS NULL THEN term ELSE excluded || term END;
      END IF;
      CONTINUE;
    END IF;
    term := phraseto_tsquery('english', word);
    CONTINUE WHEN numnode(term) = 0 OR term = ANY (terms);  -- a stop word, or a term seen already
    terms := terms || term;
    parts := tsvector_to_array(to_tsvector('english', word));
    lexemes := lexemes || CASE WHEN numnode(term) = 1 AND cardinality(parts) = 1 THEN parts[1] END;
    optional := CASE WHEN optional IS NULL THEN term ELSE optional || term END;
  END LOOP;
  IF cardinality(terms) = 0 THEN
    RETURN;  -- match_query NULL: nothing to rank by
  END IF;
  -- With a required phrase the other words rank, they do not filter: a chunk with the phrase and none of
  -- them still matches.
  match_query := coalesce(required, optional);
  filter_query := required;
  IF excluded IS NOT NULL THEN
    match_query := match_query && !!excluded;
    filter_query := CASE WHEN required IS NULL THEN !!excluded ELSE required && !!excluded END;
  END IF;
END
$fn$;
COMMENT ON FUNCTION confluence_keyword_query(text) IS
  'Keyword terms of a query text: the tsquery a chunk must match (any term; quoted phrases required, '
  '-exclusions excluded) and each positive term with its lexeme (NULL for a phrase)';

-- ---------------------------------------------------------------------------------------------------
-- hnsw.ef_search for a vector search: the per-dimension value bench/search.py --ann found for
-- recall@10 >= 0.98 against exact search, and never less than the candidates asked for (an HNSW scan
-- returns at most ef_search rows before it has to iterate). The setting confluence_search.ef_search
-- overrides the per-dimension value for every dimension.
-- ---------------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION confluence_hnsw_ef_search(embedding_dimension integer, candidates integer)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT least(1000, greatest(
    coalesce(nullif(current_setting('confluence_search.ef_search', true), '')::integer,
             CASE embedding_dimension WHEN 384 THEN 200 WHEN 768 THEN 200 WHEN 1024 THEN 200 ELSE 150 END),
    candidates))
$$;
COMMENT ON FUNCTION confluence_hnsw_ef_search(integer, integer) IS
  'hnsw.ef_search for a vector search of this dimension taking this many candidates (bench/search.py --ann)';

-- ---------------------------------------------------------------------------------------------------
-- confluence_hybrid_search: as in 040 (same arguments, same result columns, same permission tests), with
-- the keyword side described above; text_score is the chunk's BM25 score (NULL when the keyword side did
-- not rank it), and hnsw.ef_search comes from confluence_hnsw_ef_search unless the caller gives one.
-- Keyword side, step by step (each query carries the filters and the viewer's access):
--   1. document frequency of each term among the chunks the search may return, counted up to
--      keyword_rank_limit (500; a term found more often than that weighs as if found that often);
--   2. candidates: the chunks of the rarest terms first, at most keyword_rank_limit in all, plus the vector
--      side's candidates that match and the chunks holding every term (a chunk with none of the rare terms
--      but several common ones can be missed: the price of a bounded cost);
--   3. a BM25-like score over the candidates: for each term idf * ts_rank(chunk, term) (ts_rank of one
--      lexeme is a term frequency that saturates as BM25's k1 ~ 1.2 does; a phrase counts once), divided
--      by BM25's length norm (b 0.75, dl the chunk's distinct lexemes, avgdl their mean over the
--      candidates), plus the same over the chunk's page and section titles; idf = ln(1 + (N - df + 0.5) /
--      (df + 0.5)), N the number of stored chunks (pg_class: no count of what the viewer may not read
--      enters a score).
--      Chunks holding every term rank first; in hybrid mode they alone are the keyword ranking when there
--      are any (a remembered sentence), else (a question) the chunks holding any term are.
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

  IF tsq IS NOT NULL THEN
    -- The chunks this search may return: the same page tests as the vector side.
    allowed := CASE WHEN exact
      THEN $c$(c.metadata->>'page_id') = ANY ($10) AND EXISTS (SELECT 1 FROM confluence_pages p
               WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)$c$
      ELSE format($c$EXISTS (SELECT 1 FROM confluence_filtered_pages(%s) p
               WHERE p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id)$c$, filter_args)
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
           WHERE c.content_search_vector @@ t.term AND %3$s AND c.metadata ? 'page_id' AND %1$s
           LIMIT %2$s) s) x
         ORDER BY cardinality(x.ids), t.i$q$, allowed, keyword_rank_limit, narrow)
      USING query_embedding, kq.terms, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, page_ids, NULL::bigint[], acc, tsq, NULL::bigint[],
            NULL::text[], NULL::float8[], kq.filter_query
    LOOP
      dfs[rec.i] := cardinality(rec.ids);
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
           SELECT DISTINCT ON (u.id) u.id, u.v, u.h FROM (
             (SELECT c.id, c.content_search_vector AS v, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title') AS h
              FROM archon_crawled_pages c WHERE c.id = ANY ($14))
             UNION ALL
             (SELECT c.id, c.content_search_vector, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title')
              FROM archon_crawled_pages c
              WHERE c.id = ANY ($11) AND c.content_search_vector @@ $13 AND c.metadata ? 'page_id' AND %1$s)
             UNION ALL
             (SELECT c.id, c.content_search_vector, concat_ws(' ', c.metadata->>'page_title',
                     c.metadata->>'section_title')
              FROM archon_crawled_pages c
              WHERE c.content_search_vector @@ $16 AND c.metadata ? 'page_id' AND %1$s LIMIT %5$s)
           ) u ORDER BY u.id),
         marked AS (
           SELECT d.id, x.w, x.t, length(x.w)::float8 AS dl, greatest(avg(length(x.w)) OVER (), 1) AS avgdl
           FROM candidates d
           CROSS JOIN LATERAL (SELECT setweight(d.v, 'D') AS w, to_tsvector('english', d.h) AS t OFFSET 0) x),
         scored AS (
           SELECT m.id, m.w @@ $16 AS every_term,
                  ((%3$s) / (0.25 + 0.75 * m.dl / m.avgdl) + (%4$s))::float8 AS r FROM marked m)
         SELECT array_agg(id ORDER BY every_term DESC, r DESC, id), array_agg(r ORDER BY every_term DESC, r DESC, id),
                count(*) FILTER (WHERE every_term)
         FROM (SELECT id, every_term, r FROM scored ORDER BY every_term DESC, r DESC, id LIMIT %2$s) s$q$,
      allowed, cand, replace(score_sql, '{w}', 'm.w'), replace(score_sql, '{w}', 'm.t'),
      least(cand, keyword_rank_limit))
      INTO t_ids, t_scores, n_every_term
      USING query_embedding, kq.terms, space_keys, labels, jira_keys, mentioned_account_ids,
            author_account_ids, under_page_id, modified_since, page_ids, v_ids, acc, tsq, pool,
            NULL::text[], every_term_query, kq.filter_query;
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
         ON p.page_id = c.metadata->>'page_id' AND p.source_id = c.source_id AND p.is_deleted = FALSE
       WHERE confluence_can_view($7, p.path, p.page_id, p.space_key)
       ORDER BY f.score DESC, 15 DESC NULLS LAST, c.id
       LIMIT $6$q$,
    CASE WHEN col IS NULL THEN 'NULL::float8' ELSE format('(1 - (c.%I <=> $1))::float8', col) END)
    USING query_embedding, t_scores, v_ids, t_ids, rrf_k, match_count, acc;
END
$fn$;
COMMENT ON FUNCTION confluence_hybrid_search(vector, text, integer, text[], text[], text[], text[], text[], text,
                                             timestamptz, text, integer, integer, integer, text, boolean) IS
  'Hybrid search over the Confluence chunks a viewer may read: HNSW cosine + BM25 over full text (any term; '
  'phrases required, -exclusions excluded), fused by RRF';

INSERT INTO archon_migrations (version, migration_name)
VALUES ('0.1.0', '070_confluence_keyword_ranking')
ON CONFLICT (version, migration_name) DO NOTHING;
