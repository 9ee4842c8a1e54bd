"""Keyword ranking (sql/0.1.0/070, 110): any term matches, BM25 ranks, a page's terms count together;
phrases, exclusions and identifiers hold.

A small runbook-like site is written straight into the schema: the page that answers a question shares
words with several distractors (each has some of the question's words, none all of them), identifiers
appear next to pages holding their parts as separate words, and filler pages make the common words
common. Questions in natural language must find their page; with every word required they match nothing.
"""

from __future__ import annotations

import random

import pytest

from confluence_assets.db.connection import connect
from confluence_assets.search import SearchFilters, search
from confluence_assets_tests.search_data import Page, Site, generated_text, lexical_embedding

WIDE = 50

PAGES = {
    "100": (
        "Serving runtime rollback",
        [
            (
                "Rollback",
                "When the serving runtime fails its canary analysis, the on-call engineer rolls the release "
                "back: freeze the rollout, pin the previous serving image, drain the new pods.",
            ),
            ("Checks", "After the rollback the error rate of the serving runtime must return to its baseline."),
        ],
    ),
    "101": (
        "Database rollback procedure",
        [
            ("Steps", "The database rollback procedure restores the last snapshot and replays the write-ahead log."),
        ],
    ),
    "102": (
        "Canary analysis settings",
        [
            ("Thresholds", "A canary fails when its error rate exceeds the baseline by two percent for ten minutes."),
        ],
    ),
    "103": (
        "Runtime upgrades",
        [
            ("Plan", "Upgrade the runtime of the batch workers first, then the schedulers, one zone at a time."),
        ],
    ),
    "110": (
        "Browser certificate errors",
        [
            (
                "Expired certificates",
                "Chrome shows ERR_CERT_DATE_INVALID when the server certificate has expired "
                "or the client clock is wrong; renew the certificate with the ACME job.",
            ),
        ],
    ),
    "111": (
        "Certificate inventory",
        [
            (
                "Dates",
                "Each cert entry records its issue date; an invalid date or a missing err field fails the import.",
            ),
        ],
    ),
    "120": (
        "Payments incident review",
        [
            ("Summary", "The outage tracked as PAY-123 stopped card captures for forty minutes."),
        ],
    ),
    "121": (
        "Payments backlog",
        [
            ("Open", "PAY-1234 and PAY-124 stay open; pay 123 invoices by hand until the fix ships."),
        ],
    ),
    "130": (
        "PostgreSQL tuning",
        [
            ("Connections", "Raise max_connections only together with the pooler size; each backend costs memory."),
        ],
    ),
    "131": (
        "Connection limits",
        [
            ("Pooler", "The pooler keeps connections warm; the max pool size is twenty connections per service."),
        ],
    ),
}
RESTRICTED = "140"  # readable by acc-alice only
ALICE, BOB = "acc-alice", "acc-bob"


@pytest.fixture
def conn(migrated_db_url):
    with connect(migrated_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def site(conn):
    site = Site(conn)
    for page_id, (title, chunks) in PAGES.items():
        site.add(Page(page_id, "OPS", title, chunks))
    site.add(
        Page(
            RESTRICTED,
            "OPS",
            "Vault unseal keys",
            [("Unseal", "The quorum of keyholders unseals the vault with three of the five shamir shares.")],
            read_users=(ALICE,),
        )
    )
    rng = random.Random(19)
    for n in range(40):  # filler: common words everywhere, the answer pages' words nowhere
        site.add(Page(str(500 + n), "OPS", f"Notes {n}", [(f"S{i}", generated_text(rng)) for i in range(2)]))
    site.space_permissions("OPS", users=(ALICE, BOB))
    return site


def keyword(conn, text: str, **kwargs) -> list:
    return search(conn, text, None, limit=kwargs.pop("limit", WIDE), mode="keyword", **kwargs)


def pages(results) -> list[str]:
    return list(dict.fromkeys(r.page_id for r in results))


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is the rollback procedure when the serving runtime fails its canary?", "100"),
        ("how do I undo a bad database migration with a snapshot?", "101"),
        ("what error rate threshold makes a canary fail", "102"),
        ("why does chrome say ERR_CERT_DATE_INVALID for our site", "110"),
        ("what happened in the PAY-123 outage", "120"),
        ("is it safe to raise max_connections on postgres?", "130"),
    ],
)
def test_a_question_finds_its_page_first(conn, site, question, answer):
    every_word = conn.execute(
        "SELECT count(*) FROM archon_crawled_pages WHERE content_search_vector @@ websearch_to_tsquery('english', %s)",
        (question,),
    ).fetchone()[0]
    assert every_word == 0  # requiring every word (the old keyword side) finds nothing for these
    results = keyword(conn, question)
    assert pages(results)[0] == answer
    scores = [r.text_score for r in results]
    assert all(s is not None and s > 0 for s in scores) and scores == sorted(scores, reverse=True)


def test_more_and_rarer_matched_terms_rank_higher(conn, site):
    # 100 holds rollback, procedure, serving, runtime, fails, canary; 101 rollback and procedure; 103 runtime.
    ranked = pages(keyword(conn, "rollback procedure serving runtime canary"))
    assert ranked[:2] == ["100", "101"] and ranked.index("101") < ranked.index("103")


@pytest.mark.parametrize(
    ("identifier", "page", "not_matched"),
    [("ERR_CERT_DATE_INVALID", "110", "111"), ("PAY-123", "120", "121"), ("max_connections", "130", "131")],
)
def test_an_identifier_matches_whole(conn, site, identifier, page, not_matched):
    # The distractor holds the identifier's parts as separate words (or a longer identifier): no match.
    assert pages(keyword(conn, identifier)) == [page]
    assert not_matched not in pages(keyword(conn, f"{identifier} problem"))


def test_a_quoted_phrase_is_required_and_an_exclusion_excludes(conn, site):
    phrase = keyword(conn, 'rollback "canary analysis"')
    assert pages(phrase) == ["100"]  # the one page with the phrase; 101 and 102 hold only its words or rollback
    assert pages(keyword(conn, '"rollback canary"')) == []  # the words, never as this phrase
    excluded = pages(keyword(conn, "rollback procedure -database"))
    assert "101" not in excluded and excluded[0] == "100"
    assert "100" not in pages(keyword(conn, 'rollback -"serving runtime"'))
    assert keyword(conn, "the of -rollback") == []  # nothing but stop words and an exclusion: nothing to rank


def test_filters_still_narrow_the_keyword_side(conn, site):
    site.add(Page("150", "ENG", "Serving runtime rollback (ENG copy)", PAGES["100"][1]))
    assert "150" in pages(keyword(conn, "serving runtime rollback"))
    assert "150" not in pages(keyword(conn, "serving runtime rollback", filters=SearchFilters(spaces=("OPS",))))


def test_hybrid_ranking_differs_from_vector_only_where_keyword_evidence_exists(conn, site):
    # The query vector is the distractor's: vector-only ranks the certificate inventory first; the
    # identifier in the text moves its page to the top of the hybrid ranking.
    text = "ERR_CERT_DATE_INVALID"
    vector = lexical_embedding(PAGES["111"][1][0][1])
    vector_only = search(conn, None, vector, limit=10, mode="vector")
    hybrid = search(conn, text, vector, limit=10, mode="hybrid")
    assert vector_only[0].page_id == "111"
    assert hybrid[0].page_id == "110" and hybrid[0].text_rank == 1
    assert [r.chunk_id for r in hybrid] != [r.chunk_id for r in vector_only]


def test_a_page_whose_terms_are_spread_over_its_chunks_is_found_by_the_chunk_that_answers(conn, site):
    # The system's name is only in the title and the first chunk; the subject and the event are in a later
    # chunk, among many chunks holding those common words. Read three chunks in all (the cap), the rarest
    # term's two and one of the subject's would be all that is ranked: the answering chunk is read because
    # its page holds the rarest term.
    conn.execute("SET confluence_search.keyword_rank_limit = 3")
    for n in range(12):  # "quota" and "drifts" are common: in chunks read before the answer's
        text = (
            f"Capacity review for week {n}: the quota drifts a little as new tenants arrive, so the storage team "
            "records the headroom of every node pool and files tickets for the clusters that need more disks."
        )
        site.add(Page(str(600 + n), "OPS", f"Capacity {n}", [("Quota", text)]))
    site.add(Page("160", "OPS", "Zorblatt failover", [("Scope", "Zorblatt fails over to the standby region.")]))
    site.add(
        Page(
            "161",
            "OPS",
            "Zorblatt rollback",
            [
                ("Scope", "Zorblatt rolls back to the previous release."),
                ("When", "Roll back at once when the quota drifts past its limit."),
            ],
        )
    )
    results = keyword(conn, "what should I do with zorblatt when the quota drifts?")
    assert pages(results)[0] == "161"
    assert results[0].section_title == "When"  # the chunk that answers, not only the page's first


def test_a_restricted_page_stays_hidden_from_keyword_search(conn, site):
    question = "how many shamir shares unseal the vault?"
    assert pages(keyword(conn, question, viewer_account_id=ALICE))[0] == RESTRICTED  # its reader finds it
    assert pages(keyword(conn, question, as_service_account=True))[0] == RESTRICTED
    for viewer in (None, BOB):  # nobody named, a user of the space the restriction leaves out
        assert RESTRICTED not in pages(keyword(conn, question, viewer_account_id=viewer))
        hybrid = search(conn, question, lexical_embedding(question), limit=WIDE, viewer_account_id=viewer)
        assert RESTRICTED not in pages(hybrid)


def test_ef_search_follows_the_dimension_the_candidates_and_the_setting(conn):
    def ef(dimension: int, candidates: int) -> int:
        return conn.execute("SELECT confluence_hnsw_ef_search(%s, %s)", (dimension, candidates)).fetchone()[0]

    assert (ef(384, 50), ef(768, 50), ef(1024, 50), ef(1536, 50)) == (200, 200, 200, 150)
    assert ef(1536, 400) == 400 and ef(384, 5000) == 1000  # never below the candidates, at most 1,000
    conn.execute("SET confluence_search.ef_search = 600")
    assert ef(384, 50) == ef(1536, 50) == 600
