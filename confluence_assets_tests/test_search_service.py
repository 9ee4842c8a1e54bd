"""Search as users run it: the service (query embedded through the openai client, model check), the
``confluence-assets search`` command, and the known-item evaluation.

The embeddings endpoint is search_data's minimal OpenAI-compatible server (the lexical embedding over
HTTP, base64 little-endian float32 vectors as the openai client asks for by default).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from confluence_assets.db.connection import connect
from confluence_assets.embeddings import Embedder
from confluence_assets.search import (
    EmbeddingMismatchError,
    SearchError,
    SearchFilters,
    SearchService,
    evaluate,
    generate_known_item_queries,
    search,
    stored_embeddings,
)
from confluence_assets_tests.search_data import (
    DIMS,
    MODEL,
    Page,
    Site,
    generated_text,
    lexical_embedding,
    lexical_embeddings_server,
)

CLI = str(Path(sys.executable).parent / "confluence-assets")


@pytest.fixture(scope="module")
def embeddings_url():
    with lexical_embeddings_server() as url:
        yield url


@pytest.fixture
def docs(migrated_db_url):
    with connect(migrated_db_url, autocommit=True) as conn:
        site = Site(conn)
        site.add(Page("100", "DOCS", "Handbook", [("Handbook", "welcome to the handbook of the team")]))
        site.add(Page("101", "DOCS", "Operations", [("Operations", "operations overview and on call")], parent="100"))
        site.add(
            Page(
                "102",
                "DOCS",
                "Backups",
                [("Restore", "restore a database backup with pg_restore into a fresh cluster " * 8)],
                parent="101",
                labels=("runbook",),
            )
        )
        site.add(Page("200", "ENG", "Release process", [("Release", "tag the release and deploy it")]))
    return migrated_db_url


def embedder(url: str, model: str = MODEL, dims: int = DIMS) -> Embedder:
    return Embedder(model=model, dimensions=dims, api_key="sk-test-key", base_url=url, max_retries=0)


# -- service -----------------------------------------------------------------------------------------


def test_service_embeds_the_query_and_searches(docs, embeddings_url):
    with SearchService(connect(docs, autocommit=True), embedder(embeddings_url)) as service:
        results = service.search("restore a backup", limit=3)
        assert results[0].page_id == "102" and results[0].match_type == "hybrid"
        narrowed = service.search("restore a backup", SearchFilters(spaces=("ENG",)))
        assert {r.page_id for r in narrowed} == {"200"}
        assert service.search("restore", SearchFilters(labels=("runbook",)), mode="keyword")[0].page_id == "102"
        assert stored_embeddings(service.conn) == stored_embeddings(service.conn, ("DOCS", "ENG"))
        assert {(s.space_key, s.model, s.dimension) for s in stored_embeddings(service.conn)} == {
            ("DOCS", MODEL, DIMS),
            ("ENG", MODEL, DIMS),
        }


def test_service_refuses_another_model_or_dimension(docs, embeddings_url):
    conn = connect(docs, autocommit=True)
    with pytest.raises(EmbeddingMismatchError) as excinfo:
        SearchService(conn, embedder(embeddings_url, model="text-embedding-3-small")).search("backup")
    message = str(excinfo.value)
    assert f"space DOCS are embedded with {MODEL}/{DIMS}" in message
    assert "EMBEDDING_MODEL/EMBEDDING_DIMENSIONS is text-embedding-3-small/384" in message
    assert "re-sync" in message
    with pytest.raises(EmbeddingMismatchError, match=f"{MODEL}/{DIMS}"):
        SearchService(conn, embedder(embeddings_url, dims=768)).search("backup", SearchFilters(spaces=("ENG",)))
    with pytest.raises(SearchError, match="no embedded Confluence chunks in space NOPE"):
        SearchService(conn, embedder(embeddings_url)).search("backup", SearchFilters(spaces=("NOPE",)))
    # A space embedded with another model is refused even when the others match.
    conn.execute("UPDATE archon_crawled_pages SET embedding_model = 'old-model' WHERE source_id = 'confluence_ENG'")
    with pytest.raises(EmbeddingMismatchError, match="space ENG are embedded with old-model/384"):
        SearchService(conn, embedder(embeddings_url)).search("backup")
    assert SearchService(conn, embedder(embeddings_url)).search("backup", SearchFilters(spaces=("DOCS",)))
    # Keyword search needs no embedding, so no model check.
    assert SearchService(conn).search("backup", mode="keyword")
    with pytest.raises(SearchError, match="OPENAI_API_KEY is not set"):
        SearchService(conn).search("backup")
    conn.close()


# -- command line ------------------------------------------------------------------------------------


def run_search(*args: str, db_url: str, embeddings_url: str | None, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "OPENAI_", "EMBEDDING_"))}
    full_env["CONFLUENCE_ASSETS_HOME"] = os.environ["CONFLUENCE_ASSETS_HOME"]
    full_env["DATABASE_URL"] = db_url
    if embeddings_url:
        full_env.update(
            OPENAI_API_KEY="sk-sekrit-0042",
            OPENAI_BASE_URL=embeddings_url,
            EMBEDDING_MODEL=MODEL,
            EMBEDDING_DIMENSIONS=str(DIMS),
        )
    full_env.update(env)
    return subprocess.run([CLI, "search", *args], env=full_env, capture_output=True, text=True, timeout=60)


def test_cli_search_prints_title_breadcrumb_section_url_score_and_text(docs, embeddings_url):
    done = run_search("restore a backup", "--space", "DOCS", "--limit", "2", db_url=docs, embeddings_url=embeddings_url)
    assert done.returncode == 0, done.stderr
    first = done.stdout.split("\n\n")[0]
    assert first.startswith("1. Backups  [DOCS]  score ")
    assert "(hybrid, similarity " in first
    assert "Handbook > Operations > Backups > Restore" in first
    assert "section: Restore" in first
    assert "https://example.atlassian.net/wiki/spaces/DOCS/pages/102" in first
    assert "restore a database backup with pg_restore" in first
    assert "Release process" not in done.stdout


def test_cli_search_full_prints_each_chunks_whole_text(docs, embeddings_url):
    args = ("restore a backup", "--space", "DOCS", "--limit", "3")
    as_json = run_search(*args, "--json", db_url=docs, embeddings_url=embeddings_url)
    full = run_search(*args, "--full", db_url=docs, embeddings_url=embeddings_url)
    assert as_json.returncode == 0 and full.returncode == 0, full.stderr
    results = json.loads(as_json.stdout)["results"]
    assert any("\n" in r["content"].strip() or len(r["content"]) > 280 for r in results)  # more than an excerpt
    for result in results:
        assert textwrap.indent(result["content"].rstrip(), "   ") in full.stdout


def test_cli_search_json(docs, embeddings_url):
    done = run_search(
        "deploy", "--json", "--since", "2024-01-01", "--author", "acc-alice", db_url=docs, embeddings_url=embeddings_url
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["principal"] == {"kind": "nobody", "account_id": None} and document["withheld"] == 0
    results = document["results"]
    assert results[0]["page_id"] == "200"
    assert set(results[0]) >= {
        "page_id", "page_title", "space_key", "breadcrumb", "section_title", "url", "score", "similarity",
        "match_type", "content", "chunk_number", "last_modified",
    }  # fmt: skip
    none = run_search("deploy", "--json", "--since", "2030-01-01", db_url=docs, embeddings_url=embeddings_url)
    assert none.returncode == 0 and json.loads(none.stdout)["results"] == []


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("q", "--space", "EN G"), {}, "invalid Confluence space key"),
        (("q", "--jira", "nope"), {}, "invalid Jira issue key"),
        (("q", "--since", "yesterday"), {}, "invalid date 'yesterday': use YYYY-MM-DD"),
        (("q",), {"EMBEDDING_MODEL": "text-embedding-3-large"}, "re-sync with this model"),
        (("q",), {"OPENAI_API_KEY": ""}, "OPENAI_API_KEY is not set"),
    ],
    ids=["space", "jira", "since", "model", "key"],
)
def test_cli_search_errors_are_one_line(docs, embeddings_url, args, env, expected):
    done = run_search(*args, db_url=docs, embeddings_url=embeddings_url, **env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "sk-sekrit" not in done.stderr + done.stdout


def test_cli_keyword_search_needs_no_provider_and_an_unmigrated_database_says_so(docs, fresh_db_url):
    done = run_search("handbook", "--mode", "keyword", db_url=docs, embeddings_url=None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1. Handbook  [DOCS]  score ") and "(keyword)" in done.stdout
    bare = run_search("handbook", "--mode", "keyword", db_url=fresh_db_url, embeddings_url=None)
    assert bare.returncode == 2 and "run confluence-assets migrate" in bare.stderr


# -- known-item evaluation -----------------------------------------------------------------------------


def test_known_item_queries_find_their_page_in_the_top_3(migrated_db_url):
    """200 generated distinctive-phrase queries over 70 pages: >= 95% find their page in the top 3."""
    with connect(migrated_db_url, autocommit=True) as conn:
        site = Site(conn)
        rng = random.Random(11)
        for n in range(70):
            chunks = [(f"Section {i}", generated_text(rng, 80)) for i in range(3)]
            site.add(Page(str(5000 + n), ("ENG", "OPS")[n % 2], f"Page {n}", chunks))
        site.add(Page("9999", "ENG", "Deleted", [("S", generated_text(rng, 80))], deleted=True))
        conn.execute("ANALYZE")
        items = generate_known_item_queries(conn, 200, seed=3)
        assert len(items) == 200
        pages = {i.page_id for i in items}
        assert len(pages) >= 60 and "9999" not in pages  # round-robin over the pages with a distinctive phrase
        assert all(i.matching_pages == 1 and len(i.query.split()) == 6 for i in items)
        assert items == generate_known_item_queries(conn, 200, seed=3)  # deterministic

        def run(query: str):
            return search(conn, query, lexical_embedding(query), limit=3)

        report = evaluate(run, items, k=3)
        assert report.total == 200
        assert report.hit_rate >= 0.95, (report.summary(), report.misses[:5])
        assert evaluate(lambda query: [], items[:10]).hit_rate == 0.0
        scoped = generate_known_item_queries(conn, 20, seed=1, spaces=("OPS",))
        assert len(scoped) == 20 and all(int(i.page_id) % 2 == 1 for i in scoped)
