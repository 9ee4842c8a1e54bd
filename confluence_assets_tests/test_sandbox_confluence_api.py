"""The Confluence sandbox as atlassian-python-api 4.x sees it: one test per endpoint, pagination to the
end over at least three pages, caps, auth, permissions, and the shape of real Cloud responses."""

from __future__ import annotations

import json
import re

import pytest
from atlassian import Confluence
from atlassian.errors import ApiError, ApiValueError
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, Site, generate_corpus, load_samples
from confluence_assets.sandbox.samples import PACKAGED_SAMPLES_DIR

# The copy shipped with the package (a fresh clone has it); test_sandbox_corpus checks it is the team's copy.
SAMPLES = PACKAGED_SAMPLES_DIR
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FULL_EXPAND = "body.storage,version,ancestors,history,space,metadata.labels,children.page,children.attachment"


@pytest.fixture(scope="module")
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    generate_corpus(site, seed=7, spaces=2, pages_per_space=80, large_pages=0)
    load_samples(site, "QM", SAMPLES)
    return site


@pytest.fixture(scope="module")
def conf(site):
    with ConfluenceServer(site) as server:
        yield server


@pytest.fixture
def client(conf):
    with Confluence(conf.url, username=conf.email, password=conf.api_token) as client:
        yield client


def walk_cursor(client: Confluence, first: dict) -> tuple[list[dict], int]:
    """Follow v1 ``_links.next`` (relative to ``_links.base``) to the end; returns results and requests."""
    results, response, requests = list(first["results"]), first, 1
    while nxt := response["_links"].get("next"):
        assert nxt.startswith("/rest/api/"), nxt  # relative to base, which already holds /wiki
        response = client.get(nxt)
        results.extend(response["results"])
        requests += 1
    return results, requests


def walk_v2(client: Confluence, conf: ConfluenceServer, first: dict) -> tuple[list[dict], int]:
    """v2 ``next`` links carry the context path: join them onto the site root, not onto base."""
    root = conf.url.removesuffix("/wiki")
    results, response, requests = list(first["results"]), first, 1
    while nxt := response["_links"].get("next"):
        assert nxt.startswith("/wiki/api/v2/"), nxt
        response = client.get(root + nxt, absolute=True)
        results.extend(response["results"])
        requests += 1
    return results, requests


def key_paths(value, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(f"{prefix}/{key}")
            out |= key_paths(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for item in value:
            out |= key_paths(item, prefix + "[]")
    return out


# ---------------------------------------------------------------------------------------------- spaces


def test_get_all_spaces_paginates_by_start_and_hides_nothing_readable(client, site):
    keys = []
    start = 0
    requests = 0
    while True:
        page = client.get_all_spaces(start=start, limit=1)
        requests += 1
        keys += [s["key"] for s in page["results"]]
        if "next" not in page["_links"]:
            break
        start += 1
    assert requests >= 3
    assert keys == sorted(site.spaces)
    assert page["_links"]["base"] == client.url and page["_links"]["context"] == "/wiki"


def test_get_space_with_description_and_homepage(client, site):
    space = client.get_space("ENG")
    assert space["key"] == "ENG" and space["name"] == "Engineering"
    assert space["homepage"]["id"] == site.spaces["ENG"].homepage_id
    assert space["description"]["plain"]["value"].startswith("Engineering space")
    assert space["_links"]["webui"] == "/spaces/ENG"


def test_missing_space_is_404(client):
    with pytest.raises(ApiError):
        client.get_space("NOPE")


def test_v2_spaces_by_keys(client, site):
    result = client.get("api/v2/spaces", params={"keys": "ENG,QM"})
    assert sorted(s["key"] for s in result["results"]) == ["ENG", "QM"]
    qm = next(s for s in result["results"] if s["key"] == "QM")
    assert qm["id"] == "539099246" and qm["homepageId"] == "576585864"


def test_v2_space_by_id(client, site):
    space = client.get(f"api/v2/spaces/{site.spaces['OPS'].id}")
    assert (space["key"], space["homepageId"]) == ("OPS", site.spaces["OPS"].homepage_id)
    assert space["_links"]["base"] == client.url
    assert client.get("api/v2/spaces/1", advanced_mode=True).status_code == 404


def test_v2_space_list_paginates_with_cursor(client, conf, site):
    first = client.get("api/v2/spaces", params={"limit": 1})
    spaces, requests = walk_v2(client, conf, first)
    assert requests >= 3
    assert sorted(s["key"] for s in spaces) == sorted(site.spaces)


# ---------------------------------------------------------------------------------------------- content


def test_get_page_by_id_with_every_expansion(client, site):
    page_id = site.page_by_title("ENG", site.pages[site.spaces["ENG"].homepage_id].title).id
    child = site.child_ids(page_id)[0]
    site.add_label(child, "howto")
    page = client.get_page_by_id(child, expand=FULL_EXPAND)
    snap = site.snapshot(child)
    assert page["title"] == snap.title
    assert page["version"]["number"] == snap.version
    assert ISO_MS.match(page["version"]["when"]) and ISO_MS.match(page["history"]["createdDate"])
    assert [a["id"] for a in page["ancestors"]] == list(snap.ancestors)
    assert page["space"]["key"] == "ENG"
    assert "howto" in [lb["name"] for lb in page["metadata"]["labels"]["results"]]
    assert page["body"]["storage"]["value"] == snap.body
    assert page["body"]["storage"]["representation"] == "storage"
    assert page["children"]["page"]["size"] == len(site.child_ids(child)[:25])
    assert page["children"]["attachment"]["size"] == len(snap.attachments)
    assert "body" not in page["_expandable"] and "children" not in page["_expandable"]
    assert page["_links"]["base"] == client.url


def test_get_page_ancestors_helper(client, site):
    pid = site.live_pages("QM")[-1].id
    assert [a["id"] for a in client.get_page_ancestors(pid)] == list(site.snapshot(pid).ancestors)


def test_content_list_by_space_paginates_by_start(client, site):
    pages = list(client.get_all_pages_from_space_as_generator("OPS", limit=25, expand="version"))
    assert len(pages) == len(site.live_pages("OPS")) == 80
    assert [p["id"] for p in pages] == [s.id for s in site.live_pages("OPS")]


def test_content_list_next_links_and_cap(client):
    first = client.get("rest/api/content", params={"spaceKey": "ENG", "type": "page", "limit": 30})
    results, requests = walk_cursor(client, first)
    assert requests == 3 and len(results) == 80
    assert first["_links"]["next"].startswith("/rest/api/content?") and "start=30" in first["_links"]["next"]
    capped = client.get("rest/api/content", params={"spaceKey": "ENG", "limit": 5000})
    assert capped["limit"] == 1000


def test_page_by_title(client, site):
    snap = site.live_pages("ENG")[5]
    assert client.get_page_by_title("ENG", snap.title)["id"] == snap.id
    assert client.get_page_id("ENG", snap.title) == snap.id


def test_child_pages_follow_next_to_the_end(client, site):
    home = site.spaces["ENG"].homepage_id
    expected = site.child_ids(home)
    for i in range(60 - len(expected)):  # enough children for three pages of 25
        site.create_page("ENG", f"Child filler {i}", "<p>x</p>", parent_id=home)
    expected = site.child_ids(home)
    got = [c["id"] for c in client.get_page_child_by_type(home, type="page")]
    assert got == expected and len(got) >= 51


def test_attachments_paginate_by_start(client, site):
    pid = "544112828"  # 42 real attachments
    names, start, requests = [], 0, 0
    while True:
        page = client.get_attachments_from_content(pid, start=start, limit=15)
        requests += 1
        names += [a["title"] for a in page["results"]]
        if "next" not in page["_links"]:
            break
        start += 15
    assert requests == 3 and names == list(site.snapshot(pid).attachments)
    assert page["results"][0]["extensions"]["fileSize"] > 0
    assert page["results"][0]["_links"]["download"].startswith("/download/attachments/544112828/")


def test_labels_paginate(client, site):
    pid = site.live_pages("OPS")[3].id
    for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"):
        site.add_label(pid, name)
    names, start, requests = [], 0, 0
    while True:
        page = client.get_page_labels(pid, start=start, limit=3)
        requests += 1
        names += [lb["name"] for lb in page["results"]]
        if "next" not in page["_links"]:
            break
        start += 3
    assert requests >= 3 and names == list(site.snapshot(pid).labels)


def test_history(client, site):
    pid = "544112828"
    history = client.history(pid)
    assert history["createdDate"] == "2024-07-14T05:25:02.926Z"
    assert history["lastUpdated"]["number"] == 19
    assert history["lastUpdated"]["when"] == "2025-11-15T03:45:52.751Z"
    assert history["createdBy"]["accountId"] == "630c844a9796033b256b98a5"


def test_current_user(client, conf):
    assert client.get("rest/api/user/current")["accountId"] == conf.user.account_id


# ---------------------------------------------------------------------------------------------- search


def test_cql_helper_walks_search_with_cursor(client, site):
    first = client.cql('space = "ENG" AND type = page ORDER BY lastModified DESC', limit=20, expand="content.version")
    results, requests = walk_cursor(client, first)
    assert requests >= 3
    ids = [r["content"]["id"] for r in results]
    expected = sorted(site.live_pages("ENG"), key=lambda s: (-s.last_modified.timestamp(), int(s.id)))
    assert ids == [s.id for s in expected]
    assert first["totalSize"] == len(expected) and first["cqlQuery"].startswith("space")
    assert "cursor=" in first["_links"]["next"] and first["_links"]["next"].startswith("/rest/api/search?")
    assert results[0]["entityType"] == "content" and ISO_MS.match(results[0]["lastModified"])


def test_content_search_with_body_caps_limit_at_50(client, site):
    first = client.get(
        "rest/api/content/search",
        params={"cql": "space in (ENG, OPS) and type = page", "limit": 200, "expand": "body.storage,version"},
    )
    assert first["limit"] == 50 and first["size"] == 50
    assert "cursor" in first["_links"]["next"]
    results, requests = walk_cursor(client, first)
    assert requests >= 3
    assert sorted(r["id"] for r in results) == sorted(s.id for k in ("ENG", "OPS") for s in site.live_pages(k))
    assert all("storage" in r["body"] for r in results)


def test_content_search_without_type_returns_attachments_too(client, site):
    response = client.get("rest/api/content/search", params={"cql": "space = QM", "limit": 1000})
    kinds = {r["type"] for r in response["results"]}
    assert kinds == {"page", "attachment"}


def test_full_last_page_is_followed_by_an_empty_one(client, site):
    total = len(site.search("space = OPS and type = page"))
    assert total == 80
    first = client.get("rest/api/content/search", params={"cql": "space = OPS and type = page", "limit": 40})
    second = client.get(first["_links"]["next"])
    assert second["size"] == 40 and "next" in second["_links"]  # full page: Confluence cannot know it is the last
    third = client.get(second["_links"]["next"])
    assert third["size"] == 0 and "next" not in third["_links"]


def test_invalid_cql_is_400_in_confluence_shape(client, conf):
    with pytest.raises(ApiValueError):
        client.cql("space = ")
    response = client.get("rest/api/content/search", params={"cql": "space == ENG"}, advanced_mode=True)
    assert response.status_code == 400
    body = response.json()
    assert body["statusCode"] == 400 and body["reason"] == "Bad Request"
    assert body["message"] == "Could not parse cql : space == ENG"
    assert set(body["data"]) >= {"authorized", "valid", "errors", "successful"}


# ---------------------------------------------------------------------------------------------- v2 pages


def test_v2_space_pages_paginate_with_cursor_and_cap(client, conf, site):
    space_id = site.spaces["OPS"].id
    first = client.get(f"api/v2/spaces/{space_id}/pages", params={"limit": 30, "status": "current"})
    pages, requests = walk_v2(client, conf, first)
    assert requests >= 3
    assert [p["id"] for p in pages] == [s.id for s in site.live_pages("OPS")]
    assert all("storage" not in p["body"] for p in pages)
    capped = client.get(f"api/v2/spaces/{space_id}/pages", params={"limit": 1000}, advanced_mode=True)
    assert len(capped.json()["results"]) == 80  # (250 cap > 80 pages)
    assert "Link" not in capped.headers


def test_v2_limit_is_capped_at_250(client, conf, site):
    site.add_space("BULK", "Bulk")
    for i in range(260):
        site.create_page("BULK", f"Bulk page {i}")
    ids = ",".join(s.id for s in site.live_pages("ENG"))
    response = client.get("api/v2/pages", params={"limit": 1000}, advanced_mode=True)
    body = response.json()
    assert len(body["results"]) == 250 and "next" in body["_links"]
    assert 'rel="next"' in response.headers["Link"]
    by_id = client.get("api/v2/pages", params={"id": ids, "limit": 10})
    pages, requests = walk_v2(client, conf, by_id)
    assert requests >= 3 and sorted(p["id"] for p in pages) == sorted(ids.split(","))


def test_v2_page_with_storage_body(client, site):
    page = client.get("api/v2/pages/544112828", params={"body-format": "storage"})
    assert page["body"]["storage"]["value"] == (SAMPLES / "544112828" / "page.xhtml").read_text()
    assert page["version"]["number"] == 19 and page["parentId"] == "544211126"
    assert page["spaceId"] == "539099246" and page["_links"]["base"] == client.url


def test_v2_children_and_labels(client, site):
    children = client.get("api/v2/pages/1454342158/children")
    assert [c["id"] for c in children["results"]] == ["1495433217"]
    assert set(children["results"][0]) >= {"id", "status", "title", "spaceId", "childPosition"}
    labels = client.get("api/v2/pages/1454342158/labels")
    assert labels["results"] == []


def test_v2_errors_have_v2_shape(client):
    response = client.get("api/v2/pages/1", advanced_mode=True)
    assert response.status_code == 404
    assert response.json()["errors"][0]["status"] == 404


# ---------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("page_id", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_sample_page_has_every_key_of_the_real_response(client, page_id):
    real = json.loads((SAMPLES / page_id / "page.v1.json").read_text())
    ours = client.get_page_by_id(page_id, expand="body.storage,body.view,ancestors")
    missing = key_paths(real) - key_paths(ours)
    assert not missing, sorted(missing)
    assert ours["body"]["storage"]["value"] == real["body"]["storage"]["value"]
    assert [(a["id"], a["title"]) for a in ours["ancestors"]] == [(a["id"], a["title"]) for a in real["ancestors"]]
    assert ours["_links"]["tinyui"] == real["_links"]["tinyui"]
    assert ours["_links"]["webui"] == real["_links"]["webui"]
    assert ours["extensions"] == real["extensions"]

    real_v2 = json.loads((SAMPLES / page_id / "page.v2.json").read_text())
    ours_v2 = client.get(f"api/v2/pages/{page_id}", params={"body-format": "storage"})
    assert set(ours_v2) >= set(real_v2) and set(ours_v2["version"]) >= set(real_v2["version"])
    assert ours_v2["version"]["createdAt"] == real_v2["version"]["createdAt"]
    assert ours_v2["createdAt"] == real_v2["createdAt"]

    real_atts = json.loads((SAMPLES / page_id / "attachments.v1.json").read_text())
    ours_atts = client.get_attachments_from_content(page_id, limit=100)
    assert not key_paths(real_atts) - key_paths(ours_atts) - {"/_links/next"}
    assert [a["id"] for a in ours_atts["results"]] == [a["id"] for a in real_atts["results"]]


# ---------------------------------------------------------------------------------------------- auth


def test_bearer_pat_works(conf):
    with Confluence(conf.url, token=conf.pat) as dc:
        assert dc.get_space("ENG")["key"] == "ENG"


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "sandbox@example.com", "password": "wrong-token"},
        {"username": "someone@example.com", "password": "sandbox-api-token"},
        {"username": "sandbox@example.com", "password": ""},
        {"token": "wrong-pat"},
        {},
    ],
    ids=["wrong-token", "unknown-email", "empty-token", "wrong-pat", "anonymous"],
)
def test_wrong_credentials_are_401(conf, credentials):
    with Confluence(conf.url, **credentials) as bad:
        with pytest.raises(HTTPError) as info:
            bad.get_space("ENG")
    assert info.value.response.status_code == 401


def test_data_center_flavour_without_context_path(site):
    with ConfluenceServer(site, context_path="") as dc:
        assert dc.url.count("/") == 2  # http://127.0.0.1:port
        with Confluence(dc.url, token=dc.pat) as client:
            spaces = client.get_all_spaces(limit=100)
            assert spaces["_links"]["context"] == "" and spaces["_links"]["base"] == dc.url
            page = client.get_page_by_id("544112828", expand="ancestors")
            assert page["_links"]["self"].startswith(dc.url + "/rest/api/content/")


def test_restricted_space_is_invisible_to_others_and_visible_to_readers(site, conf):
    other = site.add_user("Reader Two", email="two@example.com", api_token="token-two")
    site.add_space("SECRET", "Secret", readers=[other])
    secret_page = site.create_page("SECRET", "Hidden plans", "<p>plans</p>")
    with Confluence(conf.url, username=conf.email, password=conf.api_token) as me:
        assert "SECRET" not in [s["key"] for s in me.get_all_spaces(limit=100)["results"]]
        with pytest.raises(ApiError):
            me.get_space("SECRET")
        with pytest.raises(ApiError):
            me.get_page_by_id(secret_page.id)
        assert me.cql('space = "SECRET"')["size"] == 0
        assert me.get("api/v2/spaces", params={"keys": "SECRET"})["results"] == []
    with Confluence(conf.url, username="two@example.com", password="token-two") as two:
        assert two.get_space("SECRET")["key"] == "SECRET"
        assert two.cql('space = "SECRET" and type = page')["size"] == 2
