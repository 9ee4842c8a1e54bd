"""Retrieval on a space synced by the real pipeline (sandbox Confluence + embeddings, real Dagster runs).

200 known-item queries (distinctive phrases of known pages) must find their page in the top 3 for at
least 95%; filters must narrow to exactly the pages the sandbox says match; deleted pages never appear;
the CLI answers with the same page; a model mismatch is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from confluence_assets.db.connection import connect
from confluence_assets.embeddings import Embedder
from confluence_assets.sandbox import Site, generate_corpus, load_samples
from confluence_assets.search import SearchFilters, SearchService
from confluence_assets.search.evaluation import evaluate, generate_known_item_queries
from confluence_assets_tests.pipeline_support import (
    assert_matches_site,
    discover_spaces,
    resources_for,
    sandbox_servers,
    sync_space,
)

CLI = str(Path(sys.executable).parent / "confluence-assets")


@pytest.fixture(scope="module")
def synced(server_url, _migrated_template):
    """One generated space and the real samples, synced once for the module's tests."""
    from confluence_assets_tests.conftest import _create_database, _drop_database

    db_url = _create_database(server_url, "t_search_synced", template=_migrated_template)
    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=17, spaces=1, pages_per_space=120, large_pages=0, empty_pages=1)
    load_samples(site, "QM")
    key = info.space_keys[0]
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, db_url)
        discover_spaces(instance, resources)
        for space in (key, "QM"):
            sync_space(instance, resources, space)
            assert_matches_site(site, db_url, space)
        yield {
            "site": site,
            "info": info,
            "key": key,
            "db_url": db_url,
            "sb": sb,
            "instance": instance,
            "resources": resources,
        }
    _drop_database(server_url, "t_search_synced")


def _service(synced) -> SearchService:
    sb = synced["sb"]
    embedder = Embedder(model="text-embedding-3-small", dimensions=1536, api_key=sb.emb.api_key, base_url=sb.emb.url)
    return SearchService(connect(synced["db_url"], autocommit=True), embedder)


def test_two_hundred_known_item_queries_find_their_page_in_the_top_3(synced):
    service = _service(synced)
    try:
        items = generate_known_item_queries(service.conn, 200, seed=7, spaces=(synced["key"], "QM"))
        assert len(items) == 200
        assert len({i.page_id for i in items}) >= 100  # spread over many pages, both spaces
        report = evaluate(lambda q: service.search(q, limit=3), items, k=3)
    finally:
        service.close()
    assert report.hit_rate >= 0.95, report.summary()


def test_filters_narrow_to_the_pages_the_sandbox_says(synced):
    site, key = synced["site"], synced["key"]
    live = site.live_pages(key)
    labelled = [p for p in live if p.labels]
    label = labelled[0].labels[0]
    expected_label = {p.id for p in live if label in p.labels}
    root = next(p for p in live if p.parent_id and site.child_ids(p.id))
    expected_under = {p.id for p in live if p.id == root.id or root.id in p.ancestors}
    service = _service(synced)
    try:
        # Hybrid: the vector side ranks every chunk the filters allow, whatever the words.
        by_label = service.search(labelled[0].title, SearchFilters(spaces=(key,), labels=(label,)), limit=50)
        under = service.search(root.title, SearchFilters(under_page_id=root.id), limit=50)
        only_qm = service.search("QueryPie", SearchFilters(spaces=("QM",)), limit=20)
    finally:
        service.close()
    assert {r.page_id for r in by_label} <= expected_label and by_label
    assert {r.page_id for r in under} <= expected_under and under
    assert only_qm and {r.space_key for r in only_qm} == {"QM"}


def test_deleted_pages_never_appear(synced):
    from confluence_assets.defs.assets import chunk_embeddings, page_chunks, page_metadata, page_reconciliation

    site, key = synced["site"], synced["key"]
    victim = site.live_pages(key)[5]
    service = _service(synced)
    try:
        phrase = next(
            i.query
            for i in generate_known_item_queries(service.conn, 400, seed=3, spaces=(key,))
            if i.page_id == victim.id
        )
        assert victim.id in [r.page_id for r in service.search(phrase, limit=3)]
        site.trash_page(victim.id)
        result = dg.materialize(
            [page_reconciliation, page_metadata, page_chunks, chunk_embeddings],
            partition_key=key,
            instance=synced["instance"],
            resources=synced["resources"],
        )
        assert result.success
        assert victim.id not in [r.page_id for r in service.search(phrase, limit=20)]
        assert victim.id not in [r.page_id for r in service.search(phrase, limit=20, mode="keyword")]
    finally:
        service.close()


def test_cli_json_finds_a_known_page(synced):
    sb = synced["sb"]
    service = _service(synced)
    try:
        item = generate_known_item_queries(service.conn, 1, seed=11, spaces=("QM",))[0]
    finally:
        service.close()
    env = {
        **os.environ,
        "DATABASE_URL": synced["db_url"],
        "OPENAI_API_KEY": sb.emb.api_key,
        "OPENAI_BASE_URL": sb.emb.url,
    }
    out = subprocess.run(
        [CLI, "search", item.query, "--space", "QM", "--json", "--limit", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert item.page_id in [r["page_id"] for r in results]
    assert all(r["url"].startswith(sb.conf.url) for r in results)


def test_a_query_with_another_model_is_refused(synced):
    sb = synced["sb"]
    other = Embedder(model="text-embedding-3-large", dimensions=1536, api_key=sb.emb.api_key, base_url=sb.emb.url)
    service = SearchService(connect(synced["db_url"], autocommit=True), other)
    try:
        with pytest.raises(Exception, match="embedded with text-embedding-3-small/1536"):
            service.search("anything", SearchFilters(spaces=("QM",)))
    finally:
        service.close()
