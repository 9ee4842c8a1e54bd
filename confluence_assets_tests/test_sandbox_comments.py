"""Comments in the sandbox, through atlassian-python-api 4.x and plain HTTP as Cloud answers them: footer and
inline comments, replies, resolution, the v1 child/comment listing and content shape, the v2 comment
endpoints, CQL (``type = comment``, ``lastModified``, ``expand=container``), writes, and permissions."""

from __future__ import annotations

import pytest
import requests
from atlassian import Confluence

from confluence_assets.sandbox import ConfluenceServer, Site, SiteError


@pytest.fixture
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-03-01T00:00:00Z")
    site.add_space("ENG", "Engineering")
    return site


@pytest.fixture
def conf(site):
    with ConfluenceServer(site) as server:
        yield server


@pytest.fixture
def client(conf):
    with Confluence(conf.url, username=conf.email, password=conf.api_token, cloud=True) as c:
        yield c


@pytest.fixture
def http(conf):
    with requests.Session() as session:
        session.auth = (conf.email, conf.api_token)
        yield session


@pytest.fixture
def page(site):
    return site.create_page("ENG", "Design Review", "<p>We deploy stacks of default resources daily.</p>")


def test_add_comment_through_the_client_leaves_the_page_version_alone(site, client, page):
    site.clock.set("2026-03-02T00:00:00Z")
    made = client.add_comment(page.id, "<p>Looks good.</p>")
    assert made["type"] == "comment" and made["container"]["id"] == page.id
    assert made["title"] == "Re: Design Review" and made["extensions"]["location"] == "footer"
    assert made["body"]["storage"]["value"] == "<p>Looks good.</p>" and made["version"]["number"] == 1
    got = client.get_page_by_id(page.id, expand="version")
    assert got["version"]["number"] == 1 and got["version"]["when"] == "2026-03-01T00:00:00.000Z"
    listed = client.get_page_comments(page.id, expand="body.view.value", depth="all")["results"]  # LangChain's call
    assert [c["body"]["view"]["value"] for c in listed] == ["<p>Looks good.</p>"]


def test_edit_and_delete_through_the_rest_calls_the_client_makes(site, client, page):
    comment = site.add_comment(page.id, "<p>first draft</p>")
    site.clock.set("2026-03-03T00:00:00Z")
    client.update_page(comment.id, "Re: Design Review", "<p>second thoughts</p>", type="comment")
    got = client.get_page_by_id(comment.id, expand="body.storage,version,container")
    assert got["version"]["number"] == 2 and got["version"]["when"] == "2026-03-03T00:00:00.000Z"
    assert got["body"]["storage"]["value"] == "<p>second thoughts</p>" and got["container"]["id"] == page.id
    assert client.get_page_by_id(page.id, expand="version")["version"]["number"] == 1
    with pytest.raises(requests.HTTPError) as stale:
        client.put(f"rest/api/content/{comment.id}", data={"type": "comment", "version": {"number": 2}})
    assert stale.value.response.status_code == 409
    client.remove_content(comment.id)
    assert comment.id not in site.comments and client.get_page_comments(page.id)["results"] == []


def test_inline_comments_anchor_resolve_and_filter_by_location(site, client, page):
    footer = site.add_comment(page.id, "<p>footer</p>")
    inline = site.add_comment(page.id, "<p>why default?</p>", inline_anchor="default resources")
    done = site.add_comment(page.id, "<p>ok</p>", inline_anchor="daily", resolved=True)
    body = site.pages[page.id].body
    marker = f'<ac:inline-comment-marker ac:ref="{inline.marker_ref}">default resources</ac:inline-comment-marker>'
    assert marker in body
    assert site.pages[page.id].version == 1
    expand = "body.storage,extensions.inlineProperties,extensions.resolution,version,ancestors"

    def ids(location=None):
        results = client.get_page_comments(page.id, expand=expand, location=location)["results"]
        return [c["id"] for c in results], results

    everything, results = ids()
    assert everything == [footer.id, inline.id, done.id]
    assert ids("footer")[0] == [footer.id] and ids("inline")[0] == [inline.id, done.id]
    assert ids("resolved")[0] == [done.id]
    props = {c["id"]: c["extensions"] for c in results}
    assert props[inline.id]["inlineProperties"]["originalSelection"] == "default resources"
    assert props[inline.id]["inlineProperties"]["markerRef"] == inline.marker_ref
    assert props[inline.id]["resolution"]["status"] == "open" and props[done.id]["resolution"]["status"] == "resolved"
    assert props[footer.id]["location"] == "footer" and "inlineProperties" not in props[footer.id]
    assert props[footer.id]["resolution"]["lastModifiedDate"] == "1970-01-01T00:00:00.000Z"  # as Cloud shows it
    assert props[done.id]["resolution"]["lastModifier"]["accountId"] == site.default_user.account_id
    focused = f"?focusedCommentId={footer.id}#comment-{footer.id}"
    assert results[0]["_links"]["webui"] == f"/spaces/ENG/pages/{page.id}{focused}"
    with pytest.raises(SiteError):
        site.add_comment(page.id, "<p>x</p>", inline_anchor="not in the page")
    site.delete_comment(inline.id)
    assert "inline-comment-marker" in site.pages[page.id].body  # the other marker stays
    assert inline.marker_ref not in site.pages[page.id].body and "default resources" in site.pages[page.id].body


def test_replies_are_children_not_roots(site, client, http, conf, page):
    root = site.add_comment(page.id, "<p>root</p>")
    reply = client.post(
        "rest/api/content/",
        data={
            "type": "comment",
            "container": {"id": page.id, "type": "page"},
            "ancestors": [{"id": root.id}],
            "body": {"storage": {"value": "<p>reply</p>", "representation": "storage"}},
        },
    )
    assert reply["ancestors"][0]["id"] == root.id
    assert [c["id"] for c in client.get_page_comments(page.id, depth="all")["results"]] == [root.id]
    assert [c["id"] for c in client.get_page_comments(root.id)["results"]] == [reply["id"]]
    children = http.get(f"{conf.url}/api/v2/footer-comments/{root.id}/children", params={"body-format": "storage"})
    data = children.json()["results"]
    assert [(c["id"], c["parentCommentId"], c["body"]["storage"]["value"]) for c in data] == [
        (reply["id"], root.id, "<p>reply</p>")
    ]
    site.delete_comment(root.id)
    assert site.comments == {}  # the reply went with its parent


def test_v2_footer_and_inline_comments_shapes_and_paging(site, http, conf, page):
    made = [site.add_comment(page.id, f"<p>c{i}</p>", when=f"2026-03-0{i + 1}T00:00:00Z") for i in range(5)]
    inline = site.add_comment(page.id, "<p>hmm</p>", inline_anchor="stacks", resolved=True)
    url = f"{conf.url}/api/v2/pages/{page.id}/footer-comments"
    got, nxt = [], None
    while True:
        response = http.get(conf.url.removesuffix("/wiki") + nxt if nxt else url, params=None if nxt else {"limit": 2})
        got += response.json()["results"]
        nxt = response.json()["_links"].get("next")
        if not nxt:
            break
    assert [c["id"] for c in got] == [c.id for c in made]
    assert set(got[0]) == {"id", "status", "title", "pageId", "version", "body", "_links"} and got[0]["body"] == {}
    assert got[0]["_links"]["webui"].endswith(f"?focusedCommentId={made[0].id}")
    one = http.get(f"{conf.url}/api/v2/inline-comments/{inline.id}", params={"body-format": "storage"}).json()
    assert one["resolutionStatus"] == "resolved" and one["properties"]["inline-original-selection"] == "stacks"
    assert one["properties"]["inlineOriginalSelection"] == "stacks" and one["body"]["storage"]["value"] == "<p>hmm</p>"
    assert one["resolutionLastModifiedAt"] == "2026-03-01T00:00:00.000Z"
    listed = http.get(f"{conf.url}/api/v2/pages/{page.id}/inline-comments", params={"resolution-status": "open"})
    assert listed.json()["results"] == []
    assert http.get(f"{conf.url}/api/v2/footer-comments/{inline.id}").status_code == 404  # wrong location


def test_v2_comment_writes(site, http, conf, page):
    created = http.post(
        f"{conf.url}/api/v2/inline-comments",
        json={
            "pageId": page.id,
            "body": {"representation": "storage", "value": "<p>source?</p>"},
            "inlineCommentProperties": {"textSelection": "deploy", "textSelectionMatchCount": 1},
        },
    ).json()
    assert created["resolutionStatus"] == "open" and created["properties"]["inline-original-selection"] == "deploy"
    resolved = http.put(
        f"{conf.url}/api/v2/inline-comments/{created['id']}", json={"version": {"number": 2}, "resolved": True}
    )
    assert resolved.status_code == 200 and site.comments[created["id"]].resolution == "resolved"
    reply = http.post(
        f"{conf.url}/api/v2/footer-comments",
        json={"pageId": page.id, "body": {"representation": "storage", "value": "<p>top</p>"}},
    ).json()
    edited = http.put(
        f"{conf.url}/api/v2/footer-comments/{reply['id']}",
        json={"version": {"number": 2}, "body": {"representation": "storage", "value": "<p>top!</p>"}},
    ).json()
    assert edited["version"]["number"] == 2 and edited["body"]["storage"]["value"] == "<p>top!</p>"
    assert http.delete(f"{conf.url}/api/v2/footer-comments/{reply['id']}").status_code == 204
    assert reply["id"] not in site.comments and site.pages[page.id].version == 1


def test_cql_finds_changed_comments_and_their_container(site, client, page):
    other = site.create_page("ENG", "Quiet page")
    site.add_comment(other.id, "<p>old</p>")
    site.clock.set("2026-03-10T01:00:00Z")  # 10:00 in Seoul, the site's time zone
    fresh = site.add_comment(page.id, "<p>a new zanzibar remark</p>")
    found = client.cql('type = comment and lastModified >= "2026-03-10 10:00"', expand="content.container")["results"]
    assert [(r["content"]["id"], r["content"]["container"]["id"]) for r in found] == [(fresh.id, page.id)]
    assert found[0]["lastModified"] == "2026-03-10T01:00:00.000Z" and found[0]["url"].endswith(fresh.id)
    assert client.cql('type = page and lastModified >= "2026-03-10 10:00"')["results"] == []
    assert [r["content"]["id"] for r in client.cql("type = comment and text ~ zanzibar")["results"]] == [fresh.id]
    assert {r["content"]["id"] for r in client.cql(f"container = {page.id}")["results"]} == {fresh.id}
    site.clock.set("2026-03-11T01:00:00Z")
    site.edit_comment(fresh.id, "<p>edited</p>")
    again = client.cql('type = comment and lastModified >= "2026-03-11 10:00"')["results"]
    assert [r["content"]["id"] for r in again] == [fresh.id]
    site.trash_page(page.id)
    assert client.cql("type = comment")["size"] == 1  # trashed containers hide their comments


def test_comments_are_readable_exactly_when_their_page_is(site, conf, page):
    comment = site.add_comment(page.id, "<p>internal</p>", inline_anchor="daily")
    outsider = site.add_user("Outsider", email="out@example.com", api_token="out-token")
    site.restrict_page(page.id, [site.default_user])
    with requests.Session() as s:
        s.auth = ("out@example.com", "out-token")
        assert s.get(f"{conf.url}/rest/api/content/{page.id}/child/comment").status_code == 404
        assert s.get(f"{conf.url}/rest/api/content/{comment.id}").status_code == 404
        assert s.get(f"{conf.url}/api/v2/inline-comments/{comment.id}").status_code == 404
        assert s.get(f"{conf.url}/rest/api/content/search", params={"cql": "type = comment"}).json()["size"] == 0
        created = s.post(
            f"{conf.url}/api/v2/footer-comments",
            json={"pageId": page.id, "body": {"representation": "storage", "value": "<p>sneak</p>"}},
        )
        assert created.status_code == 404
    assert not site.can_read(outsider, comment) and site.can_read(site.default_user, comment)


def test_children_comment_expansion_lists_root_comments(site, client, page):
    root = site.add_comment(page.id, "<p>root</p>")
    site.add_comment(page.id, "<p>reply</p>", parent_comment_id=root.id)
    got = client.get_page_by_id(page.id, expand="children.comment.body.storage")
    comments = got["children"]["comment"]
    assert comments["size"] == 1 and comments["results"][0]["body"]["storage"]["value"] == "<p>root</p>"


def test_blog_post_comments_use_the_blog_post_routes(site, http, conf):
    post = site.create_page("ENG", "Launch notes", "<p>We shipped.</p>", kind="blogpost")
    comment = site.add_comment(post.id, "<p>congrats</p>")
    listed = http.get(f"{conf.url}/api/v2/blogposts/{post.id}/footer-comments").json()["results"]
    assert [(c["id"], c["blogPostId"]) for c in listed] == [(comment.id, post.id)]
    assert http.get(f"{conf.url}/api/v2/pages/{post.id}/footer-comments").status_code == 404
    v1 = http.get(f"{conf.url}/rest/api/content/{post.id}/child/comment", params={"expand": "container"}).json()
    assert v1["results"][0]["container"]["type"] == "blogpost"
