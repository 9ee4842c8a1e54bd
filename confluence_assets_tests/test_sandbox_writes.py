"""The sandbox accepts page writes as atlassian-python-api sends them (used by the demo and e2e tests)."""

from __future__ import annotations

import pytest
from atlassian import Confluence
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, Site, generate_corpus


@pytest.fixture
def client_and_site():
    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=1, spaces=1, pages_per_space=6, large_pages=0, empty_pages=0)
    with ConfluenceServer(site) as conf:
        yield Confluence(conf.url, username=conf.email, password=conf.api_token), site, info


def test_update_page_makes_a_new_version_visible_to_cql(client_and_site):
    client, site, info = client_and_site
    key = info.space_keys[0]
    page_id = info.page_ids[key][2]
    before = site.snapshot(page_id)
    site.clock.advance(minutes=5)
    updated = client.update_page(page_id, "Edited through the client", "<p>fresh words</p>")
    after = site.snapshot(page_id)
    assert updated["version"]["number"] == before.version + 1 == after.version
    assert after.title == "Edited through the client" and after.body == "<p>fresh words</p>"
    found = client.get(
        "rest/api/content/search", params={"cql": f'space = "{key}" AND title = "Edited through the client"'}
    )
    assert [r["id"] for r in found["results"]] == [page_id]


def test_create_page_under_a_parent(client_and_site):
    client, site, info = client_and_site
    key = info.space_keys[0]
    home = info.page_ids[key][0]
    created = client.create_page(key, "Created through the client", "<p>hello</p>", parent_id=home)
    assert site.snapshot(created["id"]).ancestors == (home,)


def test_a_stale_version_is_refused_with_409(client_and_site):
    client, _, info = client_and_site
    page_id = info.page_ids[info.space_keys[0]][1]
    with pytest.raises(HTTPError) as excinfo:
        client.put(f"rest/api/content/{page_id}", data={"version": {"number": 1}, "title": "x", "type": "page"})
    assert excinfo.value.response.status_code == 409
