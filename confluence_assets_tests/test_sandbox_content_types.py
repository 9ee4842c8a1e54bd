"""The sandbox's blog posts, folders, whiteboards, databases and embeds, driven through atlassian-python-api
4.x over HTTP, against Confluence Cloud's shapes (v1 content and ancestors, v2 endpoints, CQL)."""

from __future__ import annotations

import pytest
from atlassian import Confluence
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, Site
from confluence_assets.sandbox.site import SiteError

FOLDER_KEYS = {"id", "type", "status", "title", "parentId", "parentType", "position", "authorId", "ownerId",
               "createdAt", "spaceId", "version", "_links"}  # fmt: skip
CHILD_KEYS = {"id", "status", "title", "type", "spaceId", "childPosition"}


@pytest.fixture
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-06-01T09:30:00Z")
    site.add_space("ENG", "Engineering")
    return site


@pytest.fixture
def server(site):
    with ConfluenceServer(site) as conf:
        yield conf


@pytest.fixture
def client(server) -> Confluence:
    return Confluence(server.url, username=server.email, password=server.api_token, cloud=True)


def _cql(client: Confluence, cql: str, expand: str = "") -> list[dict]:
    params = {"cql": cql, "limit": 100, **({"expand": expand} if expand else {})}
    return client.get("rest/api/content/search", params=params)["results"]


def test_a_blog_post_created_through_the_client_has_cloud_shapes(site, server, client):
    created = client.create_page("ENG", "Launch day", "<p>We shipped.</p>", type="blogpost")
    assert created["type"] == "blogpost" and created["ancestors"] == []
    post = site.page(created["id"])
    assert post.kind == "blogpost" and post.parent_id is None
    day = site.blog_date(post)  # the site's day: 2026-06-01 18:30 in Seoul
    assert created["_links"]["webui"] == f"/spaces/ENG/blog/{day:%Y/%m/%d}/{post.id}/Launch+day"
    v1 = client.get(f"rest/api/content/{post.id}", params={"expand": "ancestors,version,body.storage"})
    assert (v1["type"], v1["ancestors"], v1["body"]["storage"]["value"]) == ("blogpost", [], "<p>We shipped.</p>")
    v2 = client.get(f"api/v2/blogposts/{post.id}", params={"body-format": "storage"})
    assert v2["id"] == post.id and "parentId" not in v2 and v2["body"]["storage"]["value"] == "<p>We shipped.</p>"
    space_id = site.spaces["ENG"].id
    assert [b["id"] for b in client.get(f"api/v2/spaces/{space_id}/blogposts")["results"]] == [post.id]
    assert post.id not in [p["id"] for p in client.get(f"api/v2/spaces/{space_id}/pages")["results"]]
    with pytest.raises(HTTPError):
        client.get(f"api/v2/pages/{post.id}")  # a blog post is not a page in v2
    # CQL: by type, and both types at once; v1 listing by type.
    assert [r["id"] for r in _cql(client, 'space = "ENG" AND type = blogpost')] == [post.id]
    both = {r["type"] for r in _cql(client, 'space = "ENG" AND type in (page, blogpost)')}
    assert both == {"page", "blogpost"}
    listed = client.get("rest/api/content", params={"spaceKey": "ENG", "type": "blogpost"})["results"]
    assert [r["id"] for r in listed] == [post.id]


def test_blog_post_titles_are_unique_per_day_and_trash_and_purge_like_pages(site, client):
    first = site.create_blogpost("ENG", "Weekly notes", "<p>1</p>", when="2026-03-01T01:00:00Z")
    with pytest.raises(SiteError):
        site.create_blogpost("ENG", "Weekly notes", "<p>again</p>", when="2026-03-01T05:00:00Z")
    later = site.create_blogpost("ENG", "Weekly notes", "<p>2</p>", when="2026-03-08T01:00:00Z")
    assert site.page_by_title("ENG", "Weekly notes") is None  # pages' titles are another namespace
    site.edit_page(first.id, body="<p>1 edited</p>", when="2026-03-02T00:00:00Z")  # a new version
    assert site.page(first.id).version == 2
    site.trash_page(first.id)
    assert [r["id"] for r in _cql(client, "type = blogpost")] == [later.id]  # CQL never returns trash
    site.restore_page(first.id)
    assert site.page(first.id).parent_id is None and site.page(first.id).status == "current"
    site.trash_page(first.id)
    site.purge_page(first.id)
    assert first.id not in site.pages
    with pytest.raises(SiteError):
        site.move_page(later.id, site.spaces["ENG"].homepage_id)  # blog posts have no place in the tree


def test_folders_and_nodes_in_v1_ancestors_and_v2(site, client):
    home = site.spaces["ENG"].homepage_id
    outer = site.create_folder("ENG", "Design")
    inner = site.create_folder("ENG", "RFCs", parent_id=outer.id)
    page = site.create_page("ENG", "RFC 1", "<p>one</p>", parent_id=inner.id)
    board = site.create_whiteboard("ENG", "Roadmap", parent_id=outer.id)
    db = site.create_database("ENG", "Tracker")
    embed = site.create_embed("ENG", "Mock", "https://www.figma.com/file/x", parent_id=inner.id)
    site.create_folder("ENG", "Design", parent_id=home)  # folders may share a title

    v1 = client.get(f"rest/api/content/{page.id}", params={"expand": "ancestors"})
    assert [(a["id"], a["type"], a["title"]) for a in v1["ancestors"]] == [
        (home, "page", "Engineering"),
        (outer.id, "folder", "Design"),
        (inner.id, "folder", "RFCs"),
    ]
    assert v1["ancestors"][1]["_links"]["webui"] == f"/spaces/ENG/folder/{outer.id}"
    folder_v1 = client.get(f"rest/api/content/{inner.id}", params={"expand": "ancestors,version"})
    assert folder_v1["type"] == "folder" and folder_v1["version"]["number"] == 1

    v2_page = client.get(f"api/v2/pages/{page.id}")
    assert (v2_page["parentId"], v2_page["parentType"]) == (inner.id, "folder")
    folder = client.get(f"api/v2/folders/{inner.id}")
    assert set(folder) == FOLDER_KEYS and (folder["parentId"], folder["parentType"]) == (outer.id, "folder")
    assert isinstance(folder["createdAt"], int)  # epoch milliseconds, as Cloud answers for folders
    assert client.get(f"api/v2/whiteboards/{board.id}")["type"] == "whiteboard"
    assert client.get(f"api/v2/databases/{db.id}")["parentType"] == "page"
    assert client.get(f"api/v2/embeds/{embed.id}")["embedUrl"] == "https://www.figma.com/file/x"
    for wrong in (f"api/v2/folders/{page.id}", f"api/v2/pages/{inner.id}", f"api/v2/whiteboards/{db.id}"):
        with pytest.raises(HTTPError):
            client.get(wrong)

    kids = client.get(f"api/v2/folders/{inner.id}/direct-children")["results"]
    assert [(k["id"], k["type"]) for k in kids] == [(page.id, "page"), (embed.id, "embed")]
    assert all(set(k) == CHILD_KEYS for k in kids)
    outer_kids = client.get(f"api/v2/folders/{outer.id}/direct-children")["results"]
    assert [k["type"] for k in outer_kids] == ["folder", "whiteboard"]
    home_kids = client.get(f"api/v2/pages/{home}/direct-children")["results"]
    assert {k["type"] for k in home_kids} == {"folder", "database"}
    # The pages-only listings stay pages-only.
    assert client.get(f"rest/api/content/{home}/child/page")["results"] == []
    assert client.get(f"api/v2/pages/{home}/children")["results"] == []
    space_pages = client.get(f"api/v2/spaces/{site.spaces['ENG'].id}/pages")["results"]
    assert sorted(p["id"] for p in space_pages) == sorted([home, page.id])
    # CQL sees every type, with ancestors through folders.
    found = _cql(client, 'space = "ENG" AND type in (folder, whiteboard, database, embed)', "ancestors")
    assert {r["type"] for r in found} == {"folder", "whiteboard", "database", "embed"}
    assert [r["id"] for r in _cql(client, f"ancestor = {outer.id} AND type = page")] == [page.id]


def test_moving_a_page_to_another_folder_and_the_ground_truth(site, client):
    a = site.create_folder("ENG", "A")
    b = site.create_folder("ENG", "B", parent_id=a.id)
    page = site.create_page("ENG", "Moving page", "<p>m</p>", parent_id=a.id)
    child = site.create_page("ENG", "Its child", "<p>c</p>", parent_id=page.id)
    version = site.page(page.id).version
    site.move_page(page.id, b.id)
    assert site.page(page.id).version == version  # a move makes no new version
    snap = site.snapshot(child.id)
    assert snap.ancestors[1:] == (a.id, b.id, page.id)
    assert snap.ancestor_kinds == ("page", "folder", "folder", "page") and snap.kind == "page"
    assert snap.ancestor_titles[1:] == ("A", "B", "Moving page")
    assert client.get(f"api/v2/pages/{page.id}")["parentId"] == b.id
    assert {s.kind for s in site.live_of_kind("ENG", "folder")} == {"folder"}
    site.trash_page(b.id)  # a folder's children move up to its parent, as a page's do
    assert site.page(page.id).parent_id == a.id


def test_a_folder_created_through_v2_and_a_page_moved_into_it_with_the_client(site, client):
    space_id = str(site.spaces["ENG"].id)
    folder = client.post("api/v2/folders", data={"spaceId": space_id, "title": "Made by REST"})
    assert folder["type"] == "folder" and folder["parentType"] == "page" and folder["_links"]["base"]
    inner = client.post("api/v2/folders", data={"spaceId": space_id, "title": "Inner", "parentId": folder["id"]})
    assert (inner["parentId"], inner["parentType"]) == (folder["id"], "folder")
    page = client.create_page("ENG", "Filed page", "<p>f</p>")
    client.update_page(page["id"], "Filed page", "<p>f</p>", parent_id=inner["id"], always_update=True)  # v1 PUT
    assert site.page(page["id"]).parent_id == inner["id"]
    assert client.get(f"api/v2/pages/{page['id']}")["parentType"] == "folder"
    with pytest.raises(HTTPError):
        client.post("api/v2/folders", data={"spaceId": "999", "title": "Nowhere"})


def test_add_content_types_gives_a_generated_space_a_cloud_tree():
    from confluence_assets.sandbox import generate_corpus
    from confluence_assets.sandbox.nodes import add_content_types

    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-06-01T09:30:00Z")
    key = generate_corpus(site, seed=3, spaces=1, pages_per_space=15, large_pages=0, empty_pages=0).space_keys[0]
    ids = add_content_types(site, key, seed=3)
    again = Site(timezone="Asia/Seoul")
    again.clock.set("2026-06-01T09:30:00Z")
    generate_corpus(again, seed=3, spaces=1, pages_per_space=15, large_pages=0, empty_pages=0)
    assert add_content_types(again, key, seed=3) == ids  # deterministic by seed
    kinds = {s.kind for s in site.live_of_kind(key)}
    assert kinds == {"page", "folder", "whiteboard", "database", "embed", "blogpost"}
    in_folders = [s for s in site.live_of_kind(key, "page") if "folder" in s.ancestor_kinds]
    assert len(in_folders) >= 2  # moved with their subtrees
    days = {site.blog_date(site.page(p)).date() for p in ids["blogpost"]}
    assert len(days) == 3
