"""Confluence as it is reached in 2026: v2 where Cloud has it (its deprecated v1 twins removed), the API
gateway with a scoped token, Data Center on v1; through atlassian-python-api and real HTTP against the
sandbox, with the embedded PostgreSQL."""

from __future__ import annotations

import socket
from datetime import timedelta

import dagster as dg

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.sandbox import Site
from confluence_assets.sandbox.confluence_server import Limits
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
