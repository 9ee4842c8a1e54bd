"""Faults on demand, as the real clients meet them: 429 with and without Retry-After, 500/502/503, slow
responses, connection resets, empty pages that still say ``next``; rule counting; request counters."""

from __future__ import annotations

import time

import openai
import pytest
import requests
from atlassian import Confluence
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus, parse_rules

SEARCH = "GET /wiki/rest/api/content/search"
SPACE = "GET /wiki/rest/api/space/{key}"


@pytest.fixture(scope="module")
def site() -> Site:
    site = Site()
    generate_corpus(site, seed=3, spaces=1, pages_per_space=60, large_pages=0, empty_pages=0)
    return site


@pytest.fixture
def conf(site):
    with ConfluenceServer(site) as server:
        yield server


def client(conf: ConfluenceServer, **kwargs) -> Confluence:
    return Confluence(conf.url, username=conf.email, password=conf.api_token, **kwargs)


def backoff_client(conf: ConfluenceServer) -> Confluence:
    return client(conf, backoff_and_retry=True, backoff_factor=0.01, backoff_jitter=0.0, max_backoff_retries=5)


def test_429_without_retry_after_fails_plain_clients_and_is_retried_with_backoff(conf):
    rule = conf.faults.add(SPACE, status=429)
    with client(conf) as plain, pytest.raises(HTTPError) as info:
        plain.get_space("ENG")
    assert info.value.response.status_code == 429 and "Retry-After" not in info.value.response.headers
    assert rule.applied == 1
    conf.faults.add(SPACE, status=429, times=2)
    with backoff_client(conf) as patient:
        assert patient.get_space("ENG")["key"] == "ENG"
    assert conf.stats[SPACE] == 4  # 1 failed + 2 throttled + 1 served


def test_429_with_retry_after_is_honoured_even_by_the_default_client(conf):
    conf.faults.add(SPACE, status=429, retry_after=0)
    with client(conf) as plain:  # atlassian-python-api retries 429 + Retry-After by default
        assert plain.get_space("ENG")["key"] == "ENG"
    assert conf.stats[SPACE] == 2


def test_503_with_retry_after(conf):
    conf.faults.add(SPACE, status=503, retry_after=1, times=1)
    with client(conf) as plain:
        response = plain.get("rest/api/space/ENG", advanced_mode=True)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.headers["Content-Type"].startswith("text/html")
    conf.faults.add(SPACE, status=503, retry_after=0, times=1)
    with backoff_client(conf) as patient:
        assert patient.get_space("ENG")["key"] == "ENG"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(conf, status):
    conf.faults.add(SEARCH, status=status)
    with client(conf) as plain:
        with pytest.raises(HTTPError) as info:
            plain.get("rest/api/content/search", params={"cql": "type = page"})
        assert info.value.response.status_code == status
        assert plain.get("rest/api/content/search", params={"cql": "type = page"})["size"] == 25
    if status == 500:
        assert info.value.response.json()["statusCode"] == 500


def test_slow_responses(conf):
    conf.faults.add("GET /wiki/rest/api/content/{id}", delay=0.3, times=None)
    with client(conf) as plain:
        began = time.monotonic()
        plain.get_page_by_id(conf.site.spaces["ENG"].homepage_id)
        assert time.monotonic() - began >= 0.3
        began = time.monotonic()
        plain.get_space("ENG")  # other endpoints stay fast
        assert time.monotonic() - began < 0.3


def test_connection_reset(conf):
    conf.faults.add(SPACE, reset=True)
    with client(conf) as plain:
        with pytest.raises(requests.exceptions.ConnectionError):
            plain.get_space("ENG")
        assert plain.get_space("ENG")["key"] == "ENG"


def test_empty_page_with_a_next_link(conf, site):
    conf.faults.add(SEARCH, empty_page=True, skip=1)  # the second page comes back empty, once
    with client(conf) as plain:
        response = plain.get("rest/api/content/search", params={"cql": "space = ENG and type = page", "limit": 25})
        ids, sizes = [r["id"] for r in response["results"]], [response["size"]]
        while nxt := response["_links"].get("next"):
            response = plain.get(nxt)
            ids += [r["id"] for r in response["results"]]
            sizes.append(response["size"])
    assert sizes[1] == 0  # an empty page in the middle, yet the walk goes on
    assert sorted(ids) == sorted(s.id for s in site.live_pages("ENG"))


def test_permission_filtering_makes_short_and_empty_pages_before_the_end():
    site = Site()
    home = site.add_space("FLAT", "Flat").homepage_id
    kids = [site.create_page("FLAT", f"Flat {i}").id for i in range(40)]
    for pid in kids[:10] + kids[25:30]:
        site.restrict_page(pid, "someone-else")
    cql = f"space = FLAT and parent = {home}"
    with ConfluenceServer(site) as conf, client(conf) as plain:
        response = plain.get("rest/api/content/search", params={"cql": cql, "limit": 10})
        assert response["size"] == 0 and "next" in response["_links"]  # a whole window restricted
        seen, sizes = [], [0]
        while nxt := response["_links"].get("next"):
            response = plain.get(nxt)
            seen += [r["id"] for r in response["results"]]
            sizes.append(response["size"])
        assert sizes == [0, 10, 5, 10, 0] and seen == kids[10:25] + kids[30:]
        # The start-offset helper stops at the first short page: the trap it sets on real sites.
        stopped = list(plain.get_all_pages_from_space_as_generator("FLAT", limit=25))
        assert len(stopped) == 15 < len(site.live_pages("FLAT", user=conf.user)) == 26


def test_rule_counting_skip_times_every_and_query(conf):
    rule = conf.faults.add(SPACE, status=500, skip=1, times=2)
    outcomes = []
    with client(conf) as plain:
        for _ in range(5):
            try:
                plain.get_space("ENG")
                outcomes.append("ok")
            except HTTPError:
                outcomes.append("fail")
    assert outcomes == ["ok", "fail", "fail", "ok", "ok"] and (rule.seen, rule.applied) == (5, 2)
    conf.faults.clear()
    conf.faults.add(SPACE, status=500, every=2, times=None)
    conf.faults.add(SEARCH, status=500, query={"cql": "*lastModified*"}, times=None)
    with client(conf) as plain:
        results = []
        for _ in range(4):
            try:
                plain.get_space("ENG")
                results.append("ok")
            except HTTPError:
                results.append("fail")
        assert results == ["fail", "ok", "fail", "ok"]
        assert plain.get("rest/api/content/search", params={"cql": "type = page"})["size"] == 25
        with pytest.raises(HTTPError):
            plain.get("rest/api/content/search", params={"cql": 'lastModified > "2020-01-01"'})


def test_stats_count_templates_and_paths(conf, site):
    home = site.spaces["ENG"].homepage_id
    with client(conf) as plain:
        plain.get_page_by_id(home)
        plain.get_page_by_id(home)
        plain.get_space("ENG")
    assert conf.stats["GET /wiki/rest/api/content/{id}"] == 2
    assert conf.stats[f"GET /wiki/rest/api/content/{home}"] == 2
    assert conf.stats["GET /wiki/rest/api/*"] == 3 and conf.stats.total == 3
    conf.stats.reset()
    assert conf.stats.total == 0


def test_fault_rules_from_text():
    rules = parse_rules("endpoint=GET /wiki/rest/api/search,status=429,retry_after=2,every=5; delay=0.05")
    assert rules == [
        {"endpoint": "GET /wiki/rest/api/search", "status": 429, "retry_after": 2.0, "every": 5, "times": None},
        {"delay": 0.05, "times": None},
    ]
    assert parse_rules("reset,times=1") == [{"reset": True, "times": 1}]
    with pytest.raises(ValueError):
        parse_rules("colour=red")


# ---------------------------------------------------------------------------------------------- embeddings


@pytest.fixture
def emb():
    with EmbeddingsServer() as server:
        yield server


def openai_client(emb: EmbeddingsServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=emb.url, api_key=emb.api_key, **kwargs)


def test_embeddings_429_with_and_without_retry_after(emb):
    emb.faults.add("POST /v1/embeddings", status=429)
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(emb, max_retries=0).embeddings.create(model="text-embedding-3-small", input="x")
    assert "retry-after" not in info.value.response.headers
    assert info.value.body["code"] == "rate_limit_exceeded"
    emb.faults.add("POST /v1/embeddings", status=429, retry_after=3, times=1)
    with pytest.raises(openai.RateLimitError) as info:
        openai_client(emb, max_retries=0).embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.response.headers["retry-after-ms"] == "3000"
    emb.stats.reset()
    emb.faults.add("POST /v1/embeddings", status=429, retry_after=0.01, times=2)
    result = openai_client(emb, max_retries=2).embeddings.create(model="text-embedding-3-small", input="x")
    assert len(result.data) == 1
    assert emb.stats.requests == 3 and emb.stats.inputs == 1  # two refusals, then served


@pytest.mark.parametrize(("status", "error"), [(500, openai.InternalServerError), (502, openai.InternalServerError),
                                               (503, openai.InternalServerError)])  # fmt: skip
def test_embeddings_server_errors(emb, status, error):
    emb.faults.add("POST /v1/embeddings", status=status)
    with pytest.raises(error):
        openai_client(emb, max_retries=0).embeddings.create(model="text-embedding-3-small", input="x")


def test_embeddings_reset_and_delay(emb):
    emb.faults.add("POST /v1/embeddings", reset=True)
    with pytest.raises(openai.APIConnectionError):
        openai_client(emb, max_retries=0).embeddings.create(model="text-embedding-3-small", input="x")
    emb.faults.add("POST /v1/embeddings", delay=0.2)
    began = time.monotonic()
    openai_client(emb, max_retries=0).embeddings.create(model="text-embedding-3-small", input="x")
    assert time.monotonic() - began >= 0.2
