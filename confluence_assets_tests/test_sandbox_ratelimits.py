"""Confluence as it rate-limits and deprecates in 2026, and the client keeping to that budget.

The sandbox: a token bucket behind the rate-limit headers of every response (Cloud's and Data Center's
forms), Atlassian's 429s for a burst limit and for an exhausted hourly quota, ``atl-traceid`` everywhere,
``Deprecation`` headers on the deprecated v1 endpoints and a mode in which they answer 410 Gone. The
client (ConfluenceAPI on atlassian-python-api, real HTTP): paced before the limit so that no 429 comes,
a 429 storm waited out as told, a quota exhaustion failed once with its reset time, a 410 as one line.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests

from confluence_assets import doctor, settings
from confluence_assets.confluence import errors, ratelimit
from confluence_assets.confluence.client import ConfluenceAPI, RetryPolicy
from confluence_assets.db.request_budget import SiteRequestBudget, site_key
from confluence_assets.defs.resources import build_resources
from confluence_assets.sandbox import ConfluenceServer, Site, generate_corpus
from confluence_assets.sandbox.ratelimits import (
    BURST_REASON,
    DATA_CENTER,
    QUOTA_REASON,
    RateLimit,
    TokenBucket,
    parse_rate_limit,
)
from confluence_assets_tests.pipeline_support import (
    asset_metadata,
    db_state,
    discover_spaces,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

SEARCH = "GET /wiki/rest/api/content/search"
CQL = "type=page order by id"
# A bucket that never refills within a test: the countdown is exact.
NO_REFILL = dict(fill_rate=1, interval_seconds=3600)


@pytest.fixture(scope="module")
def site() -> Site:
    site = Site(timezone="UTC")
    generate_corpus(site, seed=5, spaces=1, pages_per_space=40, large_pages=0, empty_pages=0)
    return site


def session(conf: ConfluenceServer) -> requests.Session:
    s = requests.Session()
    s.auth = (conf.email, conf.api_token)
    return s


def search(s: requests.Session, conf: ConfluenceServer) -> requests.Response:
    return s.get(f"{conf.url}/rest/api/content/search", params={"cql": CQL, "limit": 1})


def api_for(conf: ConfluenceServer, **policy) -> ConfluenceAPI:
    retry = RetryPolicy(**{"backoff_seconds": 0.01, "backoff_max_seconds": 0.05, "jitter_seconds": 0.0, **policy})
    return ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token, retry=retry)


# -- the sandbox -------------------------------------------------------------------------------------------


def test_cloud_headers_count_down_then_a_burst_429_in_atlassians_form(site):
    with ConfluenceServer(site, rate_limit=RateLimit(capacity=10, **NO_REFILL)) as conf, session(conf) as s:
        seen = [search(s, conf) for _ in range(10)]
        assert [r.status_code for r in seen] == [200] * 10
        assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == list(range(9, -1, -1))
        assert {r.headers["X-RateLimit-Limit"] for r in seen} == {"10"}
        near = [int(r.headers["X-RateLimit-Remaining"]) for r in seen if r.headers.get("X-RateLimit-NearLimit")]
        assert near == [1, 0]  # under 20 % of 10 left
        reset = ratelimit.parse_reset(seen[-1].headers["X-RateLimit-Reset"])
        assert reset is not None and reset > datetime.now(UTC)  # ISO 8601, in the future
        refused = search(s, conf)
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Reason"] == BURST_REASON and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["statusCode"] == 429 and "Rate limit exceeded" in refused.json()["message"]
    assert conf.stats.rate_limited == 1 and conf.stats[SEARCH] == 11


def test_an_exhausted_hourly_quota_blocks_until_the_next_utc_hour(site):
    with ConfluenceServer(site, rate_limit=RateLimit(capacity=100, hourly_quota=2)) as conf, session(conf) as s:
        assert [search(s, conf).status_code for _ in range(2)] == [200, 200]
        refused = search(s, conf)
        again = search(s, conf)
    now = datetime.now(UTC)
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert refused.status_code == again.status_code == 429
    assert refused.headers["RateLimit-Reason"] == QUOTA_REASON
    assert refused.headers["X-RateLimit-Reset"] == next_hour.strftime("%Y-%m-%dT%H:%MZ")  # Cloud's documented form
    assert abs(int(refused.headers["Retry-After"]) - (next_hour - now).total_seconds()) <= 3


def test_data_center_sends_its_token_bucket_headers(site):
    limit = RateLimit(capacity=3, fill_rate=2, interval_seconds=3600, style=DATA_CENTER)
    with ConfluenceServer(site, context_path="", rate_limit=limit) as conf:
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {conf.pat}"
            seen = [s.get(f"{conf.url}/rest/api/space") for _ in range(4)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429]
    first = seen[0].headers
    assert first["X-RateLimit-Limit"] == "3" and first["X-RateLimit-Remaining"] == "2"
    assert first["X-RateLimit-FillRate"] == "2" and first["X-RateLimit-Interval-Seconds"] == "3600"
    assert first["Retry-After"] == "0"  # tokens left: no wait (Data Center's convention)
    assert "X-RateLimit-Reset" not in first and "RateLimit-Reason" not in seen[3].headers
    assert int(seen[3].headers["Retry-After"]) >= 1


def test_rate_limits_are_off_by_default_and_every_response_has_a_trace_id(site):
    with ConfluenceServer(site) as conf, session(conf) as s:
        conf.faults.add(SEARCH, status=503, times=1)
        answers = [search(s, conf), search(s, conf), s.get(f"{conf.url}/rest/api/nothing-here")]
    assert [r.status_code for r in answers] == [503, 200, 404]
    assert not any(name.lower().startswith("x-ratelimit") for r in answers for name in r.headers)
    traces = [r.headers["atl-traceid"] for r in answers]
    assert len(set(traces)) == 3 and all(len(t) == 16 for t in traces)


def test_deprecated_v1_endpoints_say_so_and_answer_410_once_removed(site):
    page_id = next(iter(site.pages))
    paths = [
        "/rest/api/space",
        f"/rest/api/content/{page_id}",
        "/rest/api/content/search?cql=type=page",
        "/api/v2/spaces",
    ]
    for removed in (False, True):
        with ConfluenceServer(site, v1_removed=removed) as conf, session(conf) as s:
            answers = [s.get(conf.url + path) for path in paths]
        deprecated = [r for r in answers if "Deprecation" in r.headers]
        assert deprecated == answers[:2]  # CQL search (no v2 equivalent) and v2 are not deprecated
        assert all('rel="deprecation"' in r.headers["Link"] and "CHANGE-864" in r.headers["Link"] for r in deprecated)
        expected = [410, 410, 200, 200] if removed else [200, 200, 200, 200]
        assert [r.status_code for r in answers] == expected
    gone = answers[0].json()
    assert gone["statusCode"] == 410 and gone["message"] == "This deprecated endpoint has been removed"


def test_sandbox_rate_limit_setting():
    assert parse_rate_limit("20") == RateLimit(capacity=20, fill_rate=20)
    assert parse_rate_limit("capacity=5,fill_rate=2,hourly_quota=9") == RateLimit(5, 2, hourly_quota=9)
    assert parse_rate_limit("") is None
    loaded = settings.load({settings.SANDBOX_RATE_LIMIT: "capacity=5,fill_rate=2", settings.SANDBOX_V1_REMOVED: "1"})
    assert loaded.sandbox.rate_limit == "capacity=5,fill_rate=2" and loaded.sandbox.v1_removed
    with pytest.raises(settings.SettingsError, match=f"^{settings.SANDBOX_RATE_LIMIT} must be"):
        settings.load({settings.SANDBOX_RATE_LIMIT: "very fast"})


# -- the client --------------------------------------------------------------------------------------------


def test_the_client_slows_down_before_the_limit_and_never_meets_a_429(site):
    limit = RateLimit(capacity=5, fill_rate=5)  # 5 requests/s after a burst of 5 (the sandbox serves ~20/s)
    with ConfluenceServer(site, rate_limit=limit) as conf:
        # A client that ignores the headers meets the limit within the first second.
        with session(conf) as s:
            assert 429 in {search(s, conf).status_code for _ in range(30)}
        time.sleep(0.6)  # the bucket refills
        conf.stats.reset()
        api = api_for(conf)
        began = time.monotonic()
        pages = list(api.search_pages(CQL, expand="", limit=3))  # 14 requests
        elapsed = time.monotonic() - began
        api.close()
    assert len(pages) == 40
    made = conf.stats[SEARCH]
    assert made >= 14 and conf.stats.rate_limited == 0 and api.stats.rate_limited == 0
    assert api.stats.by_status == {200: made}
    assert api.stats.lowest_remaining is not None and api.stats.lowest_remaining <= 1  # it used the budget
    assert elapsed >= (made - 5) / 5 * 0.8  # ~ the fill rate, no faster
    assert api.stats.seconds_waited > 0 or elapsed > made / 5  # it paced itself, or the machine did


def test_after_a_429_storm_the_client_waits_as_told(site):
    with ConfluenceServer(site) as conf:
        conf.faults.add(SEARCH, status=429, retry_after=1, times=2)
        api = api_for(conf, retry_after_cap_seconds=5)
        began = time.monotonic()
        found = api.first_match(CQL)
        elapsed = time.monotonic() - began
        api.close()
    assert found.page is not None and conf.stats[SEARCH] == 3
    assert api.stats.rate_limited == 2
    assert 2.0 <= api.stats.seconds_waited < 2.5 and 2.0 <= elapsed < 5  # Retry-After: 1, twice


def test_a_quota_exhaustion_fails_once_naming_the_reset_time(site):
    # The quota is per UTC hour: the bucket's wall clock stays mid-hour, or a test run across the hour
    # would see the quota renewed between its two requests.
    half_past = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    with ConfluenceServer(site) as conf:
        conf.bucket = TokenBucket(RateLimit(capacity=100, hourly_quota=1), wall=lambda: half_past)
        api = api_for(conf, max_retries=6, rate_limit_max_wait_seconds=60)
        assert api.first_match(CQL).page is not None
        began = time.monotonic()
        with pytest.raises(errors.ConfluenceRateLimitError) as info:
            api.first_match(CQL)
        api.close()
    message = str(info.value)
    next_hour = (half_past + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00Z")
    assert "\n" not in message and "quota is exhausted" in message and QUOTA_REASON in message
    assert f"until {next_hour}" in message and settings.CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS in message
    assert "atl-traceid" in message
    assert conf.stats[SEARCH] == 2 and api.stats.rate_limited == 1  # not retried: no retries burnt
    assert time.monotonic() - began < 3  # no wait for the reset, no retries


def test_a_long_burst_429_also_fails_at_once_and_says_burst(site):
    with ConfluenceServer(site) as conf:
        conf.faults.add(SEARCH, status=429, retry_after=600, times=None)
        api = api_for(conf)  # waits up to 120 s by default: 600 is beyond
        with pytest.raises(errors.ConfluenceRateLimitError, match="burst rate limit") as info:
            api.first_match(CQL)
        api.close()
    assert "until 20" in str(info.value) and conf.stats[SEARCH] == 1


def test_410_gone_is_a_one_line_error_naming_the_endpoint_and_the_upgrade(site):
    page_id = next(iter(site.pages))
    with ConfluenceServer(site, v1_removed=True) as conf:
        api = api_for(conf)
        # The client itself asks v2 on Cloud (test_confluence_api_forms.py); a caller asking v1 meets the 410.
        with pytest.raises(errors.ConfluenceGoneError) as spaces:
            list(api.paginate("rest/api/space", {"limit": 25}))
        with pytest.raises(errors.ConfluenceGoneError) as page:
            api.get_json(f"rest/api/content/{page_id}")
        assert api.first_match(CQL).page is not None  # CQL search is not deprecated
        assert len(list(api.list_spaces())) == len(site.spaces) and api.get_page(page_id)["id"] == page_id
        api.close()
    for info, endpoint, v2 in (
        (spaces, "GET /wiki/rest/api/space", "api/v2/spaces"),
        (page, "GET /wiki/rest/api/content/{id}", "api/v2/pages/{id}"),
    ):
        message = str(info.value)
        assert "\n" not in message and message.startswith(endpoint + ":")
        assert "410 Gone" in message and f"v2 equivalent: {v2}" in message and "upgrade confluence-assets" in message
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained stack trace
    assert conf.stats["GET /wiki/rest/api/space"] == 1  # a 410 is never retried


def test_deprecation_headers_are_logged_once_per_endpoint(site, caplog):
    ratelimit._deprecations_logged.clear()
    ids = list(site.pages)[:3]
    with ConfluenceServer(site) as conf, caplog.at_level(logging.WARNING, logger=ratelimit.__name__):
        api = api_for(conf)
        for page_id in ids:
            assert api.get_json(f"rest/api/content/{page_id}")["id"] == page_id
        api.get_json("rest/api/space")
        api.get_json("rest/api/space")
        assert api.get_page(ids[0]) is not None and list(api.list_spaces())  # v2: no deprecation
        api.first_match(CQL)
        api.close()
    lines = [r.getMessage() for r in caplog.records if r.name == ratelimit.__name__]
    assert len(lines) == 2, lines
    assert any("GET /wiki/rest/api/content/{id}" in line for line in lines)
    assert any("GET /wiki/rest/api/space " in line and "CHANGE-864" in line for line in lines)


def _in_flight_at_most(conf: ConfluenceServer, clients: int, bound: int | None) -> int:
    """``clients`` clients of one site sending one request each at the same moment; the most in flight."""
    apis = [
        ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token, max_concurrent_requests=bound)
        for _ in range(clients)
    ]
    start = threading.Barrier(clients)

    def probe(api: ConfluenceAPI) -> None:
        start.wait(10)
        api.first_match(CQL)

    threads = [threading.Thread(target=probe, args=(api,)) for api in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for api in apis:
        api.close()
    return conf.stats.max_in_flight


def test_requests_in_flight_to_a_site_are_bounded_per_process(site):
    with ConfluenceServer(site) as conf:
        conf.faults.add("*", delay=0.3, times=None)
        unbounded = _in_flight_at_most(conf, 6, None)
        conf.stats.reset()
        bounded = _in_flight_at_most(conf, 6, 2)
        assert conf.stats[SEARCH] == 6
    assert unbounded > 2 and bounded == 2


# -- item 5: the seed's configuration names ----------------------------------------------------------------


def test_the_seeds_request_settings_are_read_validated_wired_and_shown():
    defaults = settings.load({}).confluence
    assert (defaults.api_timeout_seconds, defaults.max_pages_per_request, defaults.max_concurrent_requests) == (
        30.0,
        100,
        None,  # unset: no bound of its own (probes run 8 at a time, as before)
    )
    assert (defaults.retry_attempts, defaults.sync_batch_size, defaults.rate_limit_max_wait_seconds) == (6, 50, 120.0)
    env = {
        settings.CONFLUENCE_API_TIMEOUT: "12.5",
        settings.CONFLUENCE_MAX_PAGES_PER_REQUEST: "40",
        settings.CONFLUENCE_MAX_CONCURRENT_REQUESTS: "3",
        settings.CONFLUENCE_RETRY_ATTEMPTS: "2",
        settings.CONFLUENCE_SYNC_BATCH_SIZE: "25",
        settings.CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS: "30",
    }
    loaded = settings.load(env)
    resource = build_resources(loaded)["confluence"]
    assert (resource.timeout_seconds, resource.page_size, resource.max_concurrent_requests) == (12.5, 40, 3)
    assert (resource.max_retries, resource.rate_limit_max_wait_seconds) == (2, 30.0)
    assert loaded.confluence.sync_batch_size == 25
    shown = doctor._request_limits(loaded.confluence).line()
    assert all(f"{name}=" in shown for name in env) and "=12.5 s" in shown and "=25," in shown
    bad = {
        settings.CONFLUENCE_API_TIMEOUT: "soon",
        settings.CONFLUENCE_MAX_PAGES_PER_REQUEST: "5000",
        settings.CONFLUENCE_MAX_CONCURRENT_REQUESTS: "0",
        settings.CONFLUENCE_RETRY_ATTEMPTS: "-1",
        settings.CONFLUENCE_SYNC_BATCH_SIZE: "many",
    }
    _, problems = settings.load_reporting(bad)
    assert set(problems) == set(bad)
    assert all("\n" not in m and m.startswith(name) for name, m in problems.items())


# -- the site's request budget, shared through the database -------------------------------------------------


def _burst(conf: ConfluenceServer, clients: int, each: int, gate_for) -> float:
    """``clients`` threads, each with its own client (and its own database connection, as separate processes
    would have), making ``each`` requests as fast as they can; the seconds it took."""
    gates: list = []
    closed: list[bool] = []

    def run() -> None:
        gate = gate_for()
        gates.append(gate)
        api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token, request_gate=gate)
        for _ in range(each):
            api.get_json("rest/api/user/current")
        api.close()
        if gate is not None:
            closed.append(gate._local.conn is None)  # closing the client closed the budget's connection

    began = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(gates) == clients and closed.count(True) == sum(g is not None for g in gates)
    return time.monotonic() - began


def test_four_clients_share_one_requests_per_second_ceiling_per_site(site, migrated_db_url):
    ceiling = 4
    with ConfluenceServer(site) as conf:
        _burst(conf, 4, 5, lambda: None)  # without the budget: well above the ceiling
        unbounded = conf.stats.busiest_second()
        conf.stats.reset()
        took = _burst(conf, 4, 5, lambda: SiteRequestBudget(migrated_db_url, conf.url, ceiling))
        bounded = conf.stats.busiest_second()
        assert conf.stats.total == 20
        url = conf.url
    assert unbounded > ceiling + 1
    assert bounded <= ceiling + 1 and took >= (20 - 1) / ceiling * 0.9
    with psycopg.connect(migrated_db_url) as conn:
        sites = conn.execute("SELECT site FROM confluence_request_budget").fetchall()
    assert sites == [(site_key(url),)]


def test_the_code_locations_client_uses_the_shared_budget_when_a_ceiling_is_set(migrated_db_url):
    env = {
        settings.CONFLUENCE_REQUESTS_PER_SECOND: "4",
        settings.DATABASE_URL: migrated_db_url,
        settings.CONFLUENCE_URL: "https://example.atlassian.net/wiki",
    }
    loaded = settings.load(env)
    assert loaded.confluence.requests_per_second == 4.0
    resource = build_resources(loaded)["confluence"]
    assert resource.requests_per_second == 4.0
    gate = resource.model_copy(update={"url": env[settings.CONFLUENCE_URL], "budget_database_url": migrated_db_url})
    budget = gate._request_gate()
    assert isinstance(budget, SiteRequestBudget) and budget.site == "https://example.atlassian.net"
    waits = [budget.reserve() for _ in range(5)]  # one slot now, then one every 1/4 s
    budget.close()
    assert waits[0] == 0 and all(abs(w - n * 0.25) < 0.05 for n, w in enumerate(waits[1:], start=1))
    assert build_resources(settings.load({}))["confluence"].requests_per_second == 0  # off by default


def test_a_sync_under_a_rate_limit_meets_no_429_and_reports_its_budget(migrated_db_url, instance):
    site = generated_site(21, pages=20)
    key = only_space(site)
    with sandbox_servers(site) as sandbox:
        sandbox.conf.set_rate_limit(RateLimit(capacity=8, fill_rate=10))
        resources = resources_for(sandbox, migrated_db_url)
        discover_spaces(instance, resources)
        result = sync_space(instance, resources, key)
        refused = sandbox.conf.stats.rate_limited
    shown = asset_metadata(result, "changed_pages")
    assert refused == 0 and shown["confluence_429s"] == 0
    assert shown["confluence_requests"] == shown["api_calls"] > 0
    assert 0 <= shown["rate_limit_lowest_remaining"] < 8 and shown["rate_limit_seconds_waited"] >= 0
    assert db_state(migrated_db_url, key)["pages"]  # and the sync did its work
