"""Confluence as it is reached in 2026: v2 where Cloud has it (its deprecated v1 twins removed), the API
gateway with a scoped token, Data Center on v1; through atlassian-python-api and real HTTP against the
sandbox, with the embedded PostgreSQL."""

from __future__ import annotations

import socket
from datetime import timedelta

import dagster as dg
import pytest
import requests
from atlassian import Confluence
from requests import HTTPError

from confluence_assets import doctor, settings
from confluence_assets.confluence import errors
from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.errors import ConfluenceConfigError
from confluence_assets.confluence.responses import resolve_next, with_link_header
from confluence_assets.confluence.sites import CLOUD_GATEWAY, CLOUD_SITE, DATA_CENTER, site_form
from confluence_assets.sandbox import ConfluenceServer, Site
from confluence_assets.sandbox.confluence_server import Limits
from confluence_assets.sandbox.ratelimits import RateLimit
from confluence_assets.sync.reconcile import list_live_pages
from confluence_assets_tests.pipeline_support import (
    SITE_NOW,
    assert_matches_site,
    asset_metadata,
    db_state,
    discover_spaces,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

V1_SPACES, V1_PAGE = "GET /wiki/rest/api/space", "GET /wiki/rest/api/content/{id}"


def _full_then_incremental(site: Site, db_url: str, **server_options) -> tuple[dict, dict, list[int], dict]:
    """Discover, full sync, one edit, incremental sync: the database after each sync, the Confluence
    requests of each of the three runs, and the requests by endpoint."""
    key = only_space(site)
    target = sorted(p.id for p in site.live_pages(key))[3]
    with sandbox_servers(site, **server_options) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, db_url)
        counts = []
        for run in ("discover", "full", "incremental"):
            before = sb.conf.stats.total
            if run == "discover":
                discover_spaces(instance, resources)
            else:
                if run == "incremental":
                    site.edit_page(
                        target, body="<p>Edited once, in either mode.</p>", when=SITE_NOW + timedelta(minutes=5)
                    )
                result = sync_space(instance, resources, key)
                assert result.success
                assert_matches_site(site, db_url, key)
                if run == "full":
                    full = db_state(db_url, key)
                else:
                    changed = asset_metadata(result, "changed_pages")
                    assert (changed["pages_created"], changed["pages_updated"]) == (0, 1)
            counts.append(sb.conf.stats.total - before)
        by_endpoint = sb.conf.stats.snapshot()
    return full, db_state(db_url, key), counts, by_endpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _comparable(state: dict) -> tuple:
    pages = {pid: {k: v for k, v in row.items()} for pid, row in state["pages"].items()}
    return pages, state["chunks"]


def test_a_sync_with_v1_removed_gets_the_same_result_with_no_more_requests(migrated_db_url, second_migrated_db_url):
    port = _free_port()  # both sites at one address: the links in the chunks are the same text
    normal = _full_then_incremental(generated_site(23, pages=20), migrated_db_url, port=port)
    removed = _full_then_incremental(generated_site(23, pages=20), second_migrated_db_url, port=port, v1_removed=True)
    (full_n, inc_n, counts_n, endpoints_n), (full_r, inc_r, counts_r, endpoints_r) = normal, removed
    assert _comparable(full_r) == _comparable(full_n)  # the same pages, versions, paths and chunks
    assert _comparable(inc_r) == _comparable(inc_n)
    assert counts_r == counts_n, (counts_n, counts_r)  # discover, full, incremental: not one request more
    # Neither mode asked a deprecated v1 endpoint: the spaces come from v2 (one request, no 410 met).
    for endpoints in (endpoints_n, endpoints_r):
        assert endpoints.get(V1_SPACES, 0) == 0 and endpoints.get(V1_PAGE, 0) == 0, endpoints
        assert endpoints["GET /wiki/api/v2/spaces"] >= 1
    print(f"requests (discover, full, incremental): normal {counts_n}, v1 removed {counts_r}")


def test_spaces_and_a_page_come_from_v2_on_cloud_and_from_v1_on_data_center():
    site = generated_site(29, spaces=2, pages=8)
    site.spaces[only_space(site)].description = "What the first space is for"
    page = site.live_pages(only_space(site))[2]
    site.add_label(page.id, "zeppelin")
    with sandbox_servers(site, v1_removed=True, limits=Limits(v2_max=1)) as sb:  # one space per v2 page
        cloud = ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token)
        spaces = list(cloud.list_spaces())
        got = cloud.get_page(page.id)
        missing = cloud.get_page("999999999")
        cloud.close()
        assert cloud.has_v2 is True
        assert sb.conf.stats["GET /wiki/api/v2/spaces"] == len(site.spaces) + 1  # cursors to an empty last page
        # A missing page as the first v2 answer is a missing page, not a site without v2: one look at /spaces.
        first_call = ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token)
        assert first_call.get_page("999999998") is None and first_call.has_v2 is True
        first_call.close()
        dc = ConfluenceAPI(sb.conf.url, personal_access_token=sb.conf.pat)  # Data Center: v1 (here 410: removed)
        assert dc.has_v2 is False
        dc.close()
    assert sorted(s["key"] for s in spaces) == sorted(site.spaces)
    first = next(s for s in spaces if s["key"] == only_space(site))
    assert first["description"]["plain"]["value"] == "What the first space is for"
    assert got["id"] == page.id and got["title"] == page.title and got["type"] == "page"
    assert got["version"]["number"] == page.version and got["version"]["when"].endswith("Z")
    assert got["body"]["storage"]["value"] == site.snapshot(page.id).body
    assert "zeppelin" in [lb["name"] for lb in got["metadata"]["labels"]["results"]]
    assert got["_links"]["webui"].startswith(f"/spaces/{only_space(site)}/pages/{page.id}")
    assert missing is None
    assert sb.conf.stats[V1_SPACES] == 0 and sb.conf.stats[V1_PAGE] == 0


# -- Cloud through the API gateway ------------------------------------------------------------------------

GATEWAY = "GET /ex/confluence/{cloudId}/wiki/*"
MEDIA = "GET /media/*"  # attachment bytes come from the media host (a redirect), not through the gateway


def test_a_sync_through_the_gateway_stays_on_it_and_stores_site_urls(migrated_db_url, instance):
    site = generated_site(31, pages=24)
    key = only_space(site)
    # Small search pages: the listing is followed by many next links, each must stay on the gateway.
    with sandbox_servers(site, limits=Limits(search_body_max=5, v2_max=5)) as sb:
        scoped = dict(url=sb.conf.gateway_url, email=sb.conf.email, api_token=sb.conf.scoped_token)
        resources = resources_for(sb, migrated_db_url, confluence=scoped)
        discover_spaces(instance, resources)
        result = sync_space(instance, resources, key)
        assert result.success
        assert_matches_site(site, migrated_db_url, key)
        searches = sb.conf.stats["GET /ex/confluence/{cloudId}/wiki/rest/api/content/search"]
        through_gateway, elsewhere = sb.conf.stats[GATEWAY], sb.conf.stats.total - sb.conf.stats[MEDIA]
        site_url = sb.conf.url
        # A client that has read nothing yet learns the site from one v2 request before giving a page URL.
        fresh = ConfluenceAPI(scoped["url"], email=scoped["email"], api_token=scoped["api_token"])
        before = sb.conf.stats.total
        assert fresh.page_url({"id": "1", "_links": {"webui": "/spaces/X/pages/1"}}) == f"{site_url}/spaces/X/pages/1"
        assert sb.conf.stats.total == before + 1 and fresh.url == f"{scoped['url']}/wiki"
        fresh.close()
    assert searches >= len(site.live_pages(key)) // 5  # the listing's next links were followed ...
    assert through_gateway == elsewhere  # ... and every request but the media host's went through the gateway
    state = db_state(migrated_db_url, key)
    assert state["source"]["confluence_base_url"] == site_url  # the site (_links.base), not the gateway
    urls = {meta["page_url"] for meta in state["metadata"].values()}
    assert urls and all(u.startswith(site_url + "/spaces/") for u in urls), sorted(urls)[:3]
    chunk_urls = [c[2] for chunks in state["chunks"].values() for c in chunks]  # links readers follow, as Archon's
    assert chunk_urls and all(u.startswith(site_url + "/spaces/") for u in chunk_urls), sorted(chunk_urls)[:3]


def test_gateway_next_links_and_site_base_are_kept_apart():
    api = "https://api.atlassian.com/ex/confluence/abc-123/wiki"
    site = "https://x.atlassian.net/wiki"
    v1 = {"base": site, "context": "/wiki", "next": "/rest/api/content/search?cursor=a&limit=50"}
    v2 = {"base": site, "next": "/wiki/api/v2/spaces?cursor=b"}
    absolute = {"base": site, "next": f"{site}/rest/api/space?start=25"}
    assert resolve_next(v1, api) == f"{api}/rest/api/content/search?cursor=a&limit=50"
    assert resolve_next(v2, api) == f"{api}/api/v2/spaces?cursor=b"
    assert resolve_next(absolute, api) == f"{api}/rest/api/space?start=25"
    assert resolve_next({"next": "/wiki/api/v2/pages?cursor=c"}, api, site) == f"{api}/api/v2/pages?cursor=c"
    # The Link header names the next page when the body does not.
    header = {"next": {"url": "/wiki/api/v2/spaces?cursor=d", "rel": "next"}}
    assert resolve_next(with_link_header({"_links": {"base": site}}, header)["_links"], api).endswith("cursor=d")


def test_url_and_credential_forms_are_told_apart_before_any_request():
    gateway = site_form("https://api.atlassian.com/ex/confluence/0b1c-77", bearer=False)
    assert (gateway.kind, gateway.cloud_id, gateway.api_base) == (
        CLOUD_GATEWAY,
        "0b1c-77",
        "https://api.atlassian.com/ex/confluence/0b1c-77/wiki",
    )
    assert site_form("https://api.atlassian.com/ex/confluence/0b1c-77/wiki/", bearer=False) == gateway
    assert site_form("https://x.atlassian.net/wiki", bearer=False).kind == CLOUD_SITE
    assert site_form("https://confluence.example.com", bearer=True).kind == DATA_CENTER
    assert site_form("https://confluence.example.com", bearer=False).has_v2 is None  # told by a v2 request
    with pytest.raises(ConfluenceConfigError, match="API gateway, which takes CONFLUENCE_EMAIL and a scoped"):
        site_form("https://api.atlassian.com/ex/confluence/0b1c-77", bearer=True)


def test_doctor_says_which_form_it_found_and_what_a_refusal_there_means():
    site = generated_site(37, pages=3)
    with sandbox_servers(site) as sb:
        env = {
            settings.CONFLUENCE_URL: sb.conf.gateway_url,
            settings.CONFLUENCE_EMAIL: sb.conf.email,
            settings.CONFLUENCE_API_TOKEN: sb.conf.scoped_token,
        }
        ok = settings.load(env).confluence
        found = doctor._confluence_check(ok).line()
        reachable = doctor._confluence_reachable(ok).line()
        classic = settings.load({**env, settings.CONFLUENCE_API_TOKEN: sb.conf.api_token}).confluence
        refused = doctor._confluence_reachable(classic).line()
        sb.conf.faults.add("GET /ex/confluence/{cloudId}/wiki/api/v2/spaces", status=403, times=1)
        forbidden = doctor._confluence_reachable(ok).line()
        on_site = settings.load({**env, settings.CONFLUENCE_URL: sb.conf.url}).confluence
        scoped_on_site = doctor._confluence_reachable(on_site).line()
        site_url, gateway_url = sb.conf.url, sb.conf.gateway_url
    assert found.startswith(f"OK   confluence: {gateway_url}/wiki as {sb.conf.email} with a scoped API token (Basic)")
    assert f"Cloud through the API gateway, cloudId {site.cloud_id}" in found
    assert reachable.startswith("OK") and f"(site {site_url}, through {gateway_url}/wiki)" in reachable
    assert refused.startswith("FAIL") and "HTTP 401" in refused and "a classic (unscoped) token" in refused
    assert forbidden.startswith("FAIL") and "HTTP 403" in forbidden and "read scopes" in forbidden
    assert scoped_on_site.startswith("FAIL") and "HTTP 401" in scoped_on_site and "works only through" in scoped_on_site
    for line in (found, reachable, refused, forbidden, scoped_on_site):
        assert sb.conf.scoped_token not in line and sb.conf.api_token not in line


# -- sandbox fidelity: offsets, tokens and headers by flavour ---------------------------------------------


def test_offsets_past_the_end_as_cloud_answers_them():
    site = generated_site(41, pages=12)
    key, parent = only_space(site), site.spaces[only_space(site)].homepage_id
    far = {"start": 100_001, "limit": 1}
    with ConfluenceServer(site) as conf, Confluence(conf.url, username=conf.email, password=conf.api_token) as c:
        with pytest.raises(HTTPError) as refused:
            c.get("rest/api/content", params={"spaceKey": key, **far})
        assert c.get("rest/api/content", params={"spaceKey": key, "start": 15_000})["size"] == 0  # the limit itself
        spaces = c.get("rest/api/space", params=far)
        children = c.get(f"rest/api/content/{parent}/child/page", params=far)
        cql = f'space = "{key}" and type = page order by id'
        first = c.get("rest/api/content/search", params={"cql": cql, **far})
        walked, page = [r["id"] for r in first["results"]], first
        while page["_links"].get("next"):  # by cursor, the start of each next link beyond 100000
            assert "cursor=" in page["_links"]["next"] and "start=1000" in page["_links"]["next"]
            page = c.get(page["_links"]["next"])
            walked += [r["id"] for r in page["results"]]
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["statusCode"] == 400
    assert (spaces["size"], children["size"]) == (0, 0)  # other v1 lists: an empty page, no error
    assert first["size"] == 1 and first["start"] == 100_001  # search is not emptied by the offset
    assert walked == sorted((p.id for p in site.live_pages(key)), key=int)  # every page once, in order


def test_a_data_center_token_is_refused_on_a_cloud_site_as_cloud_refuses_it():
    site = generated_site(43, pages=3)
    with ConfluenceServer(site, flavour="cloud") as cloud, Confluence(cloud.url, token=cloud.pat) as pat_client:
        with pytest.raises(HTTPError) as refused:
            pat_client.get_space(only_space(site))
        api = ConfluenceAPI(cloud.url, personal_access_token=cloud.pat)
        with pytest.raises(errors.ConfluenceAuthError) as info:
            list(api.list_spaces())
        api.close()
        basic = Confluence(cloud.url, username=cloud.email, password=cloud.api_token)
        assert basic.get_space(only_space(site))["key"] == only_space(site)  # e-mail + token still work
    body = refused.value.response.json()
    assert refused.value.response.status_code == 401
    assert body["statusCode"] == 401 and body["data"]["authorized"] is False and body["reason"] == "Unauthorized"
    message = str(info.value)
    assert "HTTP 401" in message and "Cloud takes no personal access token" in message and cloud.pat not in message


def test_a_data_center_site_has_no_v2_and_sends_its_token_bucket_headers():
    site = generated_site(47, spaces=2, pages=3)
    limit = RateLimit(capacity=50, fill_rate=5, interval_seconds=1)  # the server's flavour picks the headers
    with ConfluenceServer(site, context_path="", flavour="datacenter", rate_limit=limit) as dc:
        api = ConfluenceAPI(dc.url, email=dc.email, api_token=dc.api_token)  # Basic: the form does not tell
        assert api.has_v2 is None
        first = sorted(s["key"] for s in api.list_spaces())
        assert api.has_v2 is False  # the 404 of v2 said Data Center: v1 from now on
        again = sorted(s["key"] for s in api.list_spaces())
        page_id = site.live_pages(only_space(site))[0].id
        assert api.get_page(page_id)["id"] == page_id
        api.close()
        fresh = ConfluenceAPI(dc.url, email=dc.email, api_token=dc.api_token)  # a page first: v2 404s, v1 answers
        assert fresh.get_page(page_id)["id"] == page_id and fresh.has_v2 is False
        fresh.close()
        headers = requests.get(f"{dc.url}/rest/api/space", auth=(dc.email, dc.api_token)).headers
        v2, deprecated = dc.stats["GET /api/v2/*"], "Deprecation" in headers
    assert first == again == sorted(site.spaces)
    assert v2 == 3 and dc.stats["GET /rest/api/space"] == 3  # v2 tried once by the first client, twice by the
    # second (its page, then /spaces to tell a missing page from a site without v2), never again
    assert not deprecated  # Data Center deprecates none of its v1
    assert headers["X-RateLimit-FillRate"] == "5" and headers["X-RateLimit-Interval-Seconds"] == "1"
    assert "X-RateLimit-Reset" not in headers and "X-RateLimit-NearLimit" not in headers


def test_reconciliation_on_data_center_lists_by_v1_without_asking_v2():
    site = generated_site(53, pages=6)
    key = only_space(site)
    with ConfluenceServer(site, context_path="", flavour="datacenter") as dc:
        api = ConfluenceAPI(dc.url, personal_access_token=dc.pat)  # a PAT: Data Center, known before any request
        live = list_live_pages(api, key)
        api.close()
        asked_v2, listed_v1 = dc.stats["GET /api/v2/*"], dc.stats["GET /rest/api/content"]
    expected = {p.id: p.version for p in site.live_pages(key)}
    assert {pid: page.version for pid, page in live.items()} == expected
    assert asked_v2 == 0 and listed_v1 >= 1
