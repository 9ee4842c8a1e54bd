"""Site mutations as the API then shows them: what bumps version and lastModified (edit, rename) and what
does not (move, labels, attachments, restrictions, trash, restore), as on Confluence."""

from __future__ import annotations

import pytest
from atlassian import Confluence
from atlassian.errors import ApiError

from confluence_assets.sandbox import ConfluenceServer, Site, SiteError


@pytest.fixture
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-03-01T00:00:00Z")
    site.add_space("ENG", "Engineering")
    site.add_space("OPS", "Operations")
    return site


@pytest.fixture
def conf(site):
    with ConfluenceServer(site) as server:
        yield server


@pytest.fixture
def client(conf):
    with Confluence(conf.url, username=conf.email, password=conf.api_token) as c:
        yield c


def fetch(client: Confluence, page_id: str, **kwargs) -> dict:
    return client.get_page_by_id(page_id, expand="version,ancestors,body.storage,metadata.labels", **kwargs)


def test_create_page_is_version_one_under_the_homepage(site, client):
    page = site.create_page("ENG", "New page", "<p>hello</p>", labels=["Draft Notes"])
    got = fetch(client, page.id)
    assert got["version"]["number"] == 1 and got["version"]["when"] == "2026-03-01T00:00:00.000Z"
    assert [a["id"] for a in got["ancestors"]] == [site.spaces["ENG"].homepage_id]
    assert [lb["name"] for lb in got["metadata"]["labels"]["results"]] == ["draft-notes"]
    with pytest.raises(SiteError):
        site.create_page("ENG", "New page")  # titles are unique within a space
    site.create_page("OPS", "New page")  # ... but not across spaces


def test_edit_bumps_version_and_last_modified_at_the_clock(site, client):
    page = site.create_page("ENG", "Doc", "<p>v1</p>")
    site.clock.set("2026-03-01T09:30:15.123Z")
    site.edit_page(page.id, body="<p>v2</p>", message="second")
    got = fetch(client, page.id)
    assert got["version"]["number"] == 2 and got["version"]["when"] == "2026-03-01T09:30:15.123Z"
    assert got["version"]["message"] == "second" and got["body"]["storage"]["value"] == "<p>v2</p>"
    site.edit_page(page.id, body="<p>v3</p>", when="2026-03-02T00:00:00Z")
    assert fetch(client, page.id)["version"]["number"] == 3
    history = client.history(page.id)
    assert history["previousVersion"]["number"] == 2 and history["createdDate"] == "2026-03-01T00:00:00.000Z"


def test_rename_is_a_new_version(site, client):
    page = site.create_page("ENG", "Old title")
    site.clock.advance(minutes=5)
    site.rename_page(page.id, "New title")
    got = fetch(client, page.id)
    assert got["title"] == "New title" and got["version"]["number"] == 2
    assert got["version"]["when"] == "2026-03-01T00:05:00.000Z"
    assert client.get_page_by_title("ENG", "Old title") is None
    assert client.get_page_id("ENG", "New title") == page.id


def test_move_changes_ancestors_of_the_subtree_but_no_version(site, client):
    a = site.create_page("ENG", "A")
    b = site.create_page("ENG", "B", parent_id=a.id)
    c = site.create_page("ENG", "C", parent_id=b.id)
    target = site.create_page("ENG", "Target")
    site.clock.advance(hours=1)
    site.move_page(b.id, target.id)
    got_b, got_c = fetch(client, b.id), fetch(client, c.id)
    home = site.spaces["ENG"].homepage_id
    assert [x["id"] for x in got_b["ancestors"]] == [home, target.id]
    assert [x["id"] for x in got_c["ancestors"]] == [home, target.id, b.id]
    assert got_b["version"]["number"] == 1 and got_b["version"]["when"] == "2026-03-01T00:00:00.000Z"
    assert [x["id"] for x in client.get_page_child_by_type(target.id, type="page")] == [b.id]
    assert client.cql(f'lastModified >= "2026-03-01 09:30" and id = {b.id}')["size"] == 0  # invisible to CQL
    with pytest.raises(SiteError):
        site.move_page(b.id, c.id)  # not under its own descendant


def test_move_across_spaces_moves_the_subtree(site, client):
    a = site.create_page("ENG", "Moving")
    b = site.create_page("ENG", "Moving child", parent_id=a.id)
    site.add_attachment(b.id, "plan.pdf")
    site.move_page(a.id, site.spaces["OPS"].homepage_id)
    assert fetch(client, b.id)["ancestors"][0]["id"] == site.spaces["OPS"].homepage_id
    assert client.get_page_by_id(b.id, expand="space")["space"]["key"] == "OPS"
    assert {r["content"]["id"] for r in client.cql("space = OPS and type = page")["results"]} >= {a.id, b.id}
    assert client.cql("space = OPS and type = attachment")["size"] == 1


def test_trash_hides_the_page_and_moves_children_up(site, client):
    parent = site.create_page("ENG", "Parent")
    doomed = site.create_page("ENG", "Doomed", parent_id=parent.id)
    kid = site.create_page("ENG", "Kid", parent_id=doomed.id)
    site.trash_page(doomed.id)
    with pytest.raises(ApiError):
        client.get_page_by_id(doomed.id)
    trashed = client.get_page_by_id(doomed.id, status="trashed")
    assert trashed["status"] == "trashed"
    assert [x["id"] for x in fetch(client, kid.id)["ancestors"]][-1] == parent.id
    assert client.cql(f"id = {doomed.id}")["size"] == 0
    assert doomed.id not in [p["id"] for p in client.get_all_pages_from_space("ENG", limit=100)]
    trash = client.get_all_pages_from_space_trash("ENG")
    assert [p["id"] for p in trash] == [doomed.id]
    v2 = client.get(f"api/v2/spaces/{site.spaces['ENG'].id}/pages", params={"status": "trashed"})
    assert [p["id"] for p in v2["results"]] == [doomed.id]
    site.restore_page(doomed.id)
    restored = fetch(client, doomed.id)
    assert restored["version"]["number"] == 1 and restored["ancestors"][-1]["id"] == parent.id


def test_trash_with_descendants_and_purge(site, client):
    doomed = site.create_page("ENG", "Doomed tree")
    kid = site.create_page("ENG", "Doomed kid", parent_id=doomed.id)
    with pytest.raises(SiteError):
        site.purge_page(doomed.id)  # only from the trash
    site.trash_page(doomed.id, with_descendants=True)
    assert client.get_page_by_id(kid.id, status="trashed")["status"] == "trashed"
    site.purge_page(doomed.id)
    for pid in (doomed.id, kid.id):
        with pytest.raises(ApiError):
            client.get_page_by_id(pid, status="any")
    assert site.search("space = ENG and type = page") == [site.spaces["ENG"].homepage_id]


def test_restore_goes_to_the_homepage_when_the_parent_is_gone(site, client):
    parent = site.create_page("ENG", "Gone parent")
    kid = site.create_page("ENG", "Orphan", parent_id=parent.id)
    site.trash_page(kid.id)
    site.trash_page(parent.id)
    site.restore_page(kid.id)
    assert [x["id"] for x in fetch(client, kid.id)["ancestors"]] == [site.spaces["ENG"].homepage_id]


def test_restrictions_hide_a_page_and_its_descendants_per_user(site, conf, client):
    reader = site.add_user("Reader", email="reader@example.com", api_token="reader-token")
    secret = site.create_page("ENG", "Secret")
    below = site.create_page("ENG", "Below secret", parent_id=secret.id)
    site.restrict_page(secret.id, reader)
    for pid in (secret.id, below.id):
        with pytest.raises(ApiError):
            client.get_page_by_id(pid)
    assert client.cql(f"id in ({secret.id}, {below.id})")["size"] == 0
    with Confluence(conf.url, username="reader@example.com", password="reader-token") as other:
        assert other.get_page_by_id(below.id)["title"] == "Below secret"
    assert fetch(client, site.spaces["ENG"].homepage_id)["version"]["number"] == 1
    site.unrestrict_page(secret.id)
    assert fetch(client, below.id)["version"]["number"] == 1  # no new version either way


def test_labels_and_attachments_do_not_touch_the_version(site, client):
    page = site.create_page("ENG", "Labelled")
    site.clock.advance(days=1)
    site.add_label(page.id, "runbook")
    att = site.add_attachment(page.id, "diagram.png", file_size=2048)
    got = fetch(client, page.id)
    assert got["version"]["number"] == 1 and got["version"]["when"] == "2026-03-01T00:00:00.000Z"
    assert [lb["name"] for lb in client.get_page_labels(page.id)["results"]] == ["runbook"]
    atts = client.get_attachments_from_content(page.id)["results"]
    assert [(a["id"], a["title"], a["metadata"]["mediaType"]) for a in atts] == [(att.id, "diagram.png", "image/png")]
    assert client.get_page_by_id(att.id)["type"] == "attachment"
    assert client.cql('label = "runbook"')["results"][0]["content"]["id"] == page.id
    site.remove_label(page.id, "runbook")
    site.remove_attachment(page.id, "diagram.png")
    assert client.get_page_labels(page.id)["results"] == []
    assert client.get_attachments_from_content(page.id)["results"] == []


def test_ground_truth_matches_the_api(site, client):
    a = site.create_page("ENG", "Truth A")
    b = site.create_page("ENG", "Truth B", parent_id=a.id, labels=["kb"])
    site.edit_page(b.id, body="<p>new</p>")
    truth = {s.id: s for s in site.live_pages("ENG")}
    assert set(truth) == {p["id"] for p in client.get_all_pages_from_space("ENG", limit=100)}
    snap = truth[b.id]
    assert snap.version == 2 and snap.ancestors == (site.spaces["ENG"].homepage_id, a.id)
    assert snap.ancestor_titles == ("Engineering", "Truth A") and snap.labels == ("kb",)
    assert site.user_names()[site.default_user.account_id] == "Sandbox User"
