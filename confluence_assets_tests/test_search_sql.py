"""The search SQL (sql/0.1.0/030): Archon-compatible functions, RRF, filters, deleted pages, index use."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from confluence_assets.db import migrations
from confluence_assets.db.connection import connect
from confluence_assets.search import SearchFilters, search
from confluence_assets.search.hybrid import vector_literal
from confluence_assets_tests.search_data import DIMS, Page, Site, generated_text, lexical_embedding

FIXTURES = Path(__file__).parent / "fixtures"
ARCHON_SIGNATURES = {
    "match_archon_crawled_pages_multi": (
        "query_embedding vector, embedding_dimension integer, match_count integer DEFAULT 10, "
        "filter jsonb DEFAULT '{}'::jsonb, source_filter text DEFAULT NULL::text",
        "TABLE(id bigint, url character varying, chunk_number integer, content text, metadata jsonb, "
        "source_id text, similarity double precision)",
    ),
    "match_archon_crawled_pages": (
        "query_embedding vector, match_count integer DEFAULT 10, filter jsonb DEFAULT '{}'::jsonb, "
        "source_filter text DEFAULT NULL::text",
        "TABLE(id bigint, url character varying, chunk_number integer, content text, metadata jsonb, "
        "source_id text, similarity double precision)",
    ),
    "hybrid_search_archon_crawled_pages_multi": (
        "query_embedding vector, embedding_dimension integer, query_text text, match_count integer DEFAULT 10, "
        "filter jsonb DEFAULT '{}'::jsonb, source_filter text DEFAULT NULL::text",
        "TABLE(id bigint, url character varying, chunk_number integer, content text, metadata jsonb, "
        "source_id text, similarity double precision, match_type text)",
    ),
    "hybrid_search_archon_crawled_pages": (
        "query_embedding vector, query_text text, match_count integer DEFAULT 10, filter jsonb DEFAULT "
        "'{}'::jsonb, source_filter text DEFAULT NULL::text",
        "TABLE(id bigint, url character varying, chunk_number integer, content text, metadata jsonb, "
        "source_id text, similarity double precision, match_type text)",
    ),
}


def _functions(conn, name: str) -> list[tuple[str, str, str]]:
    return conn.execute(
        """SELECT pg_get_function_arguments(oid), pg_get_function_result(oid), pg_get_functiondef(oid)
           FROM pg_proc WHERE proname = %s""",
        (name,),
    ).fetchall()


def q(text: str) -> str:
    return vector_literal(lexical_embedding(text))


@pytest.fixture
def conn(migrated_db_url):
    with connect(migrated_db_url, autocommit=True) as c:
        yield c


# -- Archon compatibility -----------------------------------------------------------------------------


def test_fresh_database_has_archons_functions_with_their_exact_signatures(conn):
    for name, (arguments, result) in ARCHON_SIGNATURES.items():
        found = _functions(conn, name)
        assert len(found) == 1, name
        assert found[0][0] == arguments, name
        assert found[0][1] == result, name
    ours = conn.execute(
        "SELECT proname, obj_description(oid) FROM pg_proc WHERE proname LIKE 'confluence\\_%' ORDER BY 1"
    ).fetchall()
    assert {n for n, _ in ours} >= {"confluence_hybrid_search", "confluence_filtered_pages", "confluence_rrf_fuse"}
    assert all(comment for _, comment in ours)
    indexes = dict(
        conn.execute(
            """SELECT c.relname, obj_description(c.oid) FROM pg_class c WHERE c.relname = ANY (%s)""",
            (
                [
                    "idx_confluence_pages_labels",
                    "idx_confluence_pages_internal_links",
                    "idx_confluence_pages_created_by",
                    "idx_confluence_pages_with_attachments",
                    "idx_confluence_pages_last_modified",
                    "idx_crawled_pages_source_embedding",
                ],
            ),  # fmt: skip
        ).fetchall()
    )
    assert len(indexes) == 6 and all(indexes.values()), indexes


def test_an_archon_database_gets_permission_aware_search_functions(fresh_db_url):
    """Archon's match_* exist (sentinel bodies); its hybrid_* are missing (an older Archon): ours fill those
    in, and 040 replaces Archon's _multi functions (which know no permission, and which Archon's server
    calls as service_role, past row level security) by ours; the legacy ones, which call the _multi
    ones, stay Archon's. A second migrate run changes nothing."""
    sentinel = """
      CREATE FUNCTION match_archon_crawled_pages_multi(query_embedding VECTOR, embedding_dimension INTEGER,
          match_count INT DEFAULT 10, filter JSONB DEFAULT '{}'::jsonb, source_filter TEXT DEFAULT NULL)
      RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
                     similarity FLOAT)
      LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT -1::bigint, 'archon'::varchar, 0, 'archon's own'::text,
        '{}'::jsonb, 'x'::text, 1.0::float; END; $$;
      CREATE FUNCTION match_archon_crawled_pages(query_embedding vector(1536), match_count INT DEFAULT 10,
          filter JSONB DEFAULT '{}'::jsonb, source_filter TEXT DEFAULT NULL)
      RETURNS TABLE (id BIGINT, url VARCHAR, chunk_number INTEGER, content TEXT, metadata JSONB, source_id TEXT,
                     similarity FLOAT)
      LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT * FROM match_archon_crawled_pages_multi(query_embedding,
        1536, match_count, filter, source_filter); END; $$;
    """.replace("'archon's own'", "'archon''s own'")
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        c.execute((FIXTURES / "archon_existing.sql").read_text())
        c.execute(sentinel)
        archons = ("match_archon_crawled_pages_multi", "match_archon_crawled_pages")
        before = {name: _functions(c, name) for name in archons}
    migrations.migrate(fresh_db_url)
    with connect(fresh_db_url, autocommit=True) as c:
        after = {name: _functions(c, name) for name in archons}
    migrations.migrate(fresh_db_url)
    with connect(fresh_db_url, autocommit=True) as c:
        assert {name: _functions(c, name) for name in archons} == after  # the second run changed nothing
        assert after["match_archon_crawled_pages"] == before["match_archon_crawled_pages"]
        ((_, _, replaced),) = after["match_archon_crawled_pages_multi"]
        assert "confluence_archon_search" in replaced
        (multi,) = _functions(c, "hybrid_search_archon_crawled_pages_multi")
        (legacy,) = _functions(c, "hybrid_search_archon_crawled_pages")
        assert "confluence_archon_search" in multi[2] and "hybrid_search_archon_crawled_pages_multi" in legacy[2]
        # Archon's legacy function answers through ours now, on Archon's own data.
        rows = c.execute(
            "SELECT url FROM match_archon_crawled_pages(%s::vector, 3)", (vector_literal([0.1] * 1536),)
        ).fetchall()
        assert rows and all(u.startswith("https://docs.python.org/") for (u,) in rows)
        hybrid = c.execute(
            "SELECT url, match_type FROM hybrid_search_archon_crawled_pages(%s::vector, 'Python chunk 7', 5)",
            (vector_literal([0.07] * 1536),),
        ).fetchall()
        assert hybrid and all(u.startswith("https://docs.python.org/") for u, _ in hybrid)
        assert "hybrid" in {m for _, m in hybrid}


def test_archon_functions_search_every_source_but_never_deleted_pages(conn):
    site = Site(conn, dims=DIMS)
    site.add(Page("10", "ENG", "Deploy runbook", [("Rollback", "how to roll back a failed deploy of the api")]))
    site.add(Page("11", "ENG", "Old deploy notes", [("Rollback", "roll back a failed deploy quickly")], deleted=True))
    site.add_web_chunk("web1", "https://example.com/deploy", "deploy and roll back guide from the web")
    query = "roll back a failed deploy"
    rows = conn.execute(
        "SELECT url, similarity FROM match_archon_crawled_pages_multi(%s::vector, %s, 10)", (q(query), DIMS)
    ).fetchall()
    urls = [u for u, _ in rows]
    assert set(urls) == {"confluence://ENG/10", "https://example.com/deploy"}
    similarities = [s for _, s in rows]
    assert similarities == sorted(similarities, reverse=True) and all(0 < s <= 1 for s in similarities)

    source_only = conn.execute(
        "SELECT url FROM match_archon_crawled_pages_multi(%s::vector, %s, 10, '{}', 'web1')", (q(query), DIMS)
    ).fetchall()
    assert source_only == [("https://example.com/deploy",)]
    by_metadata = conn.execute(
        """SELECT url FROM match_archon_crawled_pages_multi(%s::vector, %s, 10, '{"space_key": "ENG"}')""",
        (q(query), DIMS),
    ).fetchall()
    assert by_metadata == [("confluence://ENG/10",)]

    cur = conn.execute(
        "SELECT * FROM hybrid_search_archon_crawled_pages_multi(%s::vector, %s, %s, 10)", (q(query), DIMS, query)
    )
    assert [d.name for d in cur.description] == [
        "id", "url", "chunk_number", "content", "metadata", "source_id", "similarity", "match_type"
    ]  # fmt: skip
    hybrid = cur.fetchall()
    # Every query word is in the Confluence chunk; the web chunk lacks "failed": vector only.
    assert {r[1]: r[7] for r in hybrid} == {"confluence://ENG/10": "hybrid", "https://example.com/deploy": "vector"}
    assert all(0 < r[6] <= 1 for r in hybrid)  # a cosine similarity, as Archon's callers threshold it


def test_1536_wrappers_delegate(conn):
    site = Site(conn, dims=1536)
    site.add(Page("20", "ENG", "Wide vectors", [("Intro", "wide vectors use the 1536 column")]))
    vector = vector_literal(lexical_embedding("wide vectors use the 1536 column", 1536))
    assert conn.execute("SELECT url FROM match_archon_crawled_pages(%s::vector)", (vector,)).fetchall() == [
        ("confluence://ENG/20",)
    ]
    rows = conn.execute("SELECT url, match_type FROM hybrid_search_archon_crawled_pages(%s::vector, 'wide')", (vector,))
    assert rows.fetchall() == [("confluence://ENG/20", "hybrid")]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="Unsupported embedding dimension"):
        conn.execute("SELECT * FROM match_archon_crawled_pages_multi('[1,2]'::vector, 2)")


# -- Reciprocal Rank Fusion ---------------------------------------------------------------------------


def test_rrf_scores_are_reciprocal_ranks_summed(conn):
    rows = conn.execute("SELECT id, score, vector_rank, text_rank FROM confluence_rrf_fuse('{1,2,3}', '{3,4}')")
    fused = {r[0]: r[1:] for r in rows}
    assert fused[3] == pytest.approx((1 / 63 + 1 / 61, 3, 1))
    assert fused[1] == pytest.approx((1 / 61, 1, None)) and fused[4] == pytest.approx((1 / 62, None, 2))
    assert fused[1][0] == pytest.approx(1 / 61) and fused[2][0] == pytest.approx(1 / 62)
    assert conn.execute("SELECT count(*) FROM confluence_rrf_fuse(NULL, '{}')").fetchone()[0] == 0


def test_a_chunk_found_by_both_sides_outranks_chunks_found_by_one(conn):
    site = Site(conn)
    # "both": the query words and a similar vector; "vec": the closest vector but none of the query words
    # (any one of them is a keyword match, 070); "kw": every query word, in a text otherwise unlike the query.
    site.add(Page("1", "ENG", "Both", [("S", "zephyr quartz deployment checklist for the staging cluster")]))
    site.add(Page("2", "ENG", "Vec", [("S", "deployment checklist for the staging cluster nodes")]))
    site.add(Page("3", "ENG", "Kw", [("S", "quartz zephyr " + " ".join(["lorem ipsum dolor"] * 10))]))
    query = "zephyr quartz"
    results = search(conn, query, lexical_embedding("zephyr deployment checklist staging cluster"))
    by_page = {r.page_id: r for r in results}
    assert results[0].page_id == "1" and results[0].match_type == "hybrid"
    assert results[0].vector_rank is not None and results[0].text_rank is not None
    assert by_page["1"].score > max(r.score for r in results if r.match_type != "hybrid")
    # Ties on the RRF score are broken by cosine similarity, then id: deterministic.
    scores = [(r.score, r.similarity) for r in results]
    assert scores == sorted(scores, key=lambda s: (-s[0], -(s[1] or 0)))
    vector_only = search(conn, None, lexical_embedding(query), mode="vector")
    assert {r.match_type for r in vector_only} == {"vector"} and len(vector_only) == 3
    keyword_only = search(conn, query, None, mode="keyword")
    assert {r.page_id for r in keyword_only} == {"1", "3"} and {r.match_type for r in keyword_only} == {"keyword"}
    assert all(r.similarity is None for r in keyword_only)


def test_result_fields_breadcrumb_section_url(conn):
    site = Site(conn)
    site.add(Page("100", "DOCS", "Handbook", [("Handbook", "welcome to the handbook")]))
    site.add(Page("101", "DOCS", "Operations", [("Operations", "operations overview")], parent="100"))
    site.add(Page("102", "DOCS", "Backups", [("Restore", "restore a backup with pg_restore")], parent="101"))
    (hit,) = search(conn, "restore backup", lexical_embedding("restore backup"), limit=1)
    assert hit.page_id == "102" and hit.page_title == "Backups" and hit.space_key == "DOCS"
    assert hit.breadcrumb == ["Handbook", "Operations", "Backups", "Restore"]
    assert hit.section_title == "Restore"
    assert hit.url == "https://example.atlassian.net/wiki/spaces/DOCS/pages/102"
    assert hit.content == "restore a backup with pg_restore" and hit.chunk_number == 0
    assert hit.to_dict()["last_modified"].startswith("2024-06-01")


# -- deleted pages and filters -----------------------------------------------------------------------


@pytest.fixture
def filter_site(conn):
    """Three spaces, a hierarchy, labels, Jira links, mentions, authors and dates; one deleted page that
    matches everything."""
    site = Site(conn)
    may, june = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 15, tzinfo=UTC)
    text = "incident postmortem for the payment gateway outage"
    pages = [
        Page("1", "ENG", "Engineering", [("Engineering", text)]),
        Page("2", "ENG", "Payments", [("Payments", text)], parent="1", labels=("payments", "postmortem"),
             jira=("PAY-1",), mentions=("acc-bob",), author="acc-bob", modified=june),
        Page("3", "ENG", "Gateway", [("Gateway", text)], parent="2", labels=("postmortem",), jira=("PAY-1", "PAY-2"),
             mentions=("acc-bob", "acc-carol"), modified=june),
        Page("4", "OPS", "Ops outage", [("Outage", text)], labels=("postmortem",), jira=("OPS-9",), modified=may),
        Page("5", "HR", "Holidays", [("Holidays", text)], author="acc-carol", modified=may),
        Page("6", "ENG", "Deleted payments", [("Gone", text)], parent="2", labels=("payments", "postmortem"),
             jira=("PAY-1", "PAY-2"), mentions=("acc-bob", "acc-carol"), author="acc-bob", deleted=True,
             modified=june),
    ]  # fmt: skip
    for page in pages:
        site.add(page)
    return site, text


FILTER_CASES = [
    (SearchFilters(), {"1", "2", "3", "4", "5"}),
    (SearchFilters(spaces=("ENG",)), {"1", "2", "3"}),
    (SearchFilters(spaces=("ENG", "HR")), {"1", "2", "3", "5"}),
    (SearchFilters(labels=("postmortem",)), {"2", "3", "4"}),
    (SearchFilters(labels=("postmortem", "payments")), {"2"}),
    (SearchFilters(labels=("PostMortem",)), {"2", "3", "4"}),  # Confluence labels are lower case
    (SearchFilters(jira_keys=("pay-1",)), {"2", "3"}),
    (SearchFilters(jira_keys=("PAY-1", "PAY-2")), {"3"}),
    (SearchFilters(jira_keys=("PAY-12",)), set()),  # exact keys, not prefixes
    (SearchFilters(mentions=("acc-carol",)), {"3"}),
    (SearchFilters(authors=("acc-bob",)), {"2"}),
    (SearchFilters(authors=("acc-bob", "acc-carol")), {"2", "5"}),
    (SearchFilters(under_page_id="2"), {"2", "3"}),
    (SearchFilters(under_page_id="1"), {"1", "2", "3"}),
    (SearchFilters(modified_since=datetime(2024, 6, 1, tzinfo=UTC)), {"1", "2", "3"}),
    (SearchFilters(spaces=("ENG",), labels=("postmortem",), modified_since=datetime(2024, 6, 1).date()), {"2", "3"}),
    (SearchFilters(spaces=("OPS",), under_page_id="2"), set()),
]


@pytest.mark.parametrize("exact_chunk_limit", ["5000", "0"], ids=["exact", "hnsw"])
def test_filters_narrow_and_deleted_pages_never_appear(conn, filter_site, exact_chunk_limit):
    _, text = filter_site
    conn.execute("SELECT set_config('confluence_search.exact_chunk_limit', %s, false)", (exact_chunk_limit,))
    for filters, expected in FILTER_CASES:
        for mode in ("hybrid", "vector", "keyword"):
            results = search(conn, "payment outage", lexical_embedding(text), filters, limit=50, mode=mode)
            assert {r.page_id for r in results} == expected, (filters, mode)


def test_filters_reject_bad_values_before_querying():
    from confluence_assets.search import InvalidFilterError

    for bad in (
        SearchFilters(spaces=("ENG'; DROP TABLE x; --",)),
        SearchFilters(jira_keys=("PAY 1",)),
        SearchFilters(under_page_id="1/2"),
        SearchFilters(mentions=("",)),
    ):
        with pytest.raises(InvalidFilterError):
            bad.validated()
    assert SearchFilters(spaces="ENG").spaces == ("ENG",)  # a lone string is one space, not three


def test_hnsw_iterative_scan_finds_the_few_chunks_a_selective_filter_allows(conn):
    """3,000 chunks in one space, 6 in another: with the index path forced, a space filter still returns
    all 6 (without iterative scans the first 40 candidates would hold none of them) and the HNSW index
    is what was scanned."""
    site = Site(conn)
    rng = random.Random(5)
    for n in range(300):
        site.add(Page(str(1000 + n), "BIG", f"Big {n}", [(f"S{i}", generated_text(rng)) for i in range(10)]))
    site.add(Page("9", "SMALL", "Small", [(f"S{i}", generated_text(rng)) for i in range(6)]))
    conn.execute("ANALYZE")
    conn.execute("SET confluence_search.exact_chunk_limit = 0")
    index = "idx_archon_crawled_pages_embedding_384"
    scans = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = %s"
    conn.execute("SELECT pg_stat_force_next_flush()")
    before = conn.execute(scans, (index,)).fetchone()[0]
    query = lexical_embedding(generated_text(rng))
    results = search(conn, None, query, SearchFilters(spaces=("SMALL",)), limit=10, mode="vector")
    conn.execute("SELECT pg_stat_force_next_flush()")
    after = conn.execute(scans, (index,)).fetchone()[0]
    assert len(results) == 6 and {r.page_id for r in results} == {"9"}
    assert after > before
    # The exact path for the same filter: same answer, no index scan.
    conn.execute("SET confluence_search.exact_chunk_limit = 5000")
    exact = search(conn, None, query, SearchFilters(spaces=("SMALL",)), limit=10, mode="vector")
    assert {r.chunk_id for r in exact} == {r.chunk_id for r in results}


def test_keyword_ranking_is_capped_but_still_sees_the_vector_candidates(conn):
    site = Site(conn)
    for n in range(10):
        site.add(Page(str(300 + n), "ENG", f"Common {n}", [("S", f"zephyr common word number {n} " + "x" * n)]))
    conn.execute("SET confluence_search.keyword_rank_limit = 3")
    keyword = search(conn, "zephyr", None, limit=10, mode="keyword")
    assert len(keyword) == 3
    hybrid = search(conn, "zephyr", lexical_embedding("zephyr common word"), limit=10)
    assert len(hybrid) == 10 and {r.match_type for r in hybrid} == {"hybrid"}
    conn.execute("RESET confluence_search.keyword_rank_limit")
    assert len(search(conn, "zephyr", None, limit=10, mode="keyword")) == 10
