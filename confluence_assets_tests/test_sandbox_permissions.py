"""The sandbox's permission model through atlassian-python-api: groups and membership, space permissions
(v2, and v1 for anonymous access), content restrictions (endpoints and expansions on content and CQL), and
the ground truth: every user's CQL results are exactly what ``site.can_read`` allows."""

from __future__ import annotations

import pytest
from atlassian import Confluence
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, Site, SiteError
from confluence_assets.sandbox.permissions import DEFAULT_GROUP, PermissionSite, generate_permissions

RESTRICTION_EXPAND = "restrictions.read.restrictions.user,restrictions.read.restrictions.group"
GROUP_KEYS = {"type", "name", "id", "usageType", "managedBy", "_links"}


@pytest.fixture(scope="module")
def site() -> Site:
    return Site(timezone="Asia/Seoul")


@pytest.fixture(scope="module")
def perms(site) -> PermissionSite:
    return generate_permissions(site, seed=11, users=50, groups=10, spaces=5, pages_per_space=40)


@pytest.fixture(scope="module")
def conf(site, perms):
    with ConfluenceServer(site) as server:
        yield server


@pytest.fixture
def client(conf):
    with Confluence(conf.url, username=conf.email, password=conf.api_token) as client:
        yield client


def login(conf: ConfluenceServer, perms: PermissionSite, account: str) -> Confluence:
    email, token = perms.users[account]
    return Confluence(conf.url, username=email, password=token)


def walk_v1(client: Confluence, path: str, params: dict) -> tuple[list[dict], int]:
    response, requests = client.get(path, params=params), 1
    results = list(response["results"])
    while nxt := response["_links"].get("next"):
        response = client.get(nxt)
        results.extend(response["results"])
        requests += 1
    return results, requests


def walk_v2(client: Confluence, conf: ConfluenceServer, path: str, params: dict) -> tuple[list[dict], int]:
    root = conf.url.removesuffix("/wiki")
    response, requests = client.get(path, params=params), 1
    results = list(response["results"])
    while nxt := response["_links"].get("next"):
        assert nxt.startswith("/wiki/api/v2/"), nxt
        response = client.get(root + nxt, absolute=True)
        results.extend(response["results"])
        requests += 1
    return results, requests


def cql_ids(client: Confluence, cql: str, expand: str | None = None) -> set[str]:
    params = {"cql": cql, "limit": 100, **({"expand": expand} if expand else {})}
    return {r["id"] for r in walk_v1(client, "rest/api/content/search", params)[0]}


def status(client: Confluence, path: str, **params) -> int:
    return client.get(path, params=params, advanced_mode=True).status_code


def not_in(site: Site, group_id: str, *also: str) -> str:
    """A generated user in none of these groups."""
    banned = {group_id, *also}
    return next(
        a for a in sorted(site.users) if a.startswith("712020:") and not banned & {g.id for g in site.groups_of(a)}
    )


# ---------------------------------------------------------------------------------------------- groups


def test_group_list_pages_alphabetically_with_cloud_shapes(client, site, perms):
    groups, requests = walk_v1(client, "rest/api/group", {"limit": 5})
    assert requests >= 3
    names = [g["name"] for g in groups]
    assert names == sorted((g.name for g in site.groups.values()), key=str.lower) and DEFAULT_GROUP in names
    assert all(set(g) == GROUP_KEYS and g["type"] == "group" for g in groups)
    assert len(site.groups) >= 12 and set(perms.groups) <= {g["id"] for g in groups}
    assert groups[0]["_links"]["self"] == f"{client.url}/rest/api/group/by-id?id={groups[0]['id']}"
    assert [g["id"] for g in client.get_all_groups(start=0, limit=1000)] == [g["id"] for g in groups]
    one = client.get("rest/api/group/by-id", params={"id": groups[1]["id"]})
    assert one == groups[1]
    assert status(client, "rest/api/group/by-id", id="no-such-group") == 404


def test_members_by_group_id_pages_and_follows_membership_over_time(client, site):
    team = site.add_group("release-crew")
    people = [site.add_user(f"Crew {i}", account_id=f"712020:crew-{i}") for i in range(7)]
    site.add_to_group(team, *people)
    path = f"rest/api/group/{team.id}/membersByGroupId"
    members, requests = walk_v1(client, path, {"limit": 3})
    assert requests == 3 and [m["accountId"] for m in members] == sorted(p.account_id for p in people)
    assert {"type", "accountId", "accountType", "publicName", "displayName"} <= set(members[0])
    assert client.get(path, params={"shouldReturnTotalSize": "true", "limit": 2})["totalSize"] == 7
    site.remove_from_group(team, people[0])
    site.add_to_group(team.name, "712020:crew-late")
    now = {m["accountId"] for m in walk_v1(client, path, {"limit": 50})[0]}
    assert people[0].account_id not in now and "712020:crew-late" in now
    assert status(client, "rest/api/group/00000000-0000-0000-0000-000000000000/membersByGroupId") == 404
    with pytest.raises(SiteError, match="do not nest"):
        site.add_to_group(team, site.default_group)


def test_memberof_lists_each_users_groups(client, site, perms):
    for account in list(perms.users)[:20]:
        got, _ = walk_v1(client, "rest/api/user/memberof", {"accountId": account, "limit": 2})
        assert [g["id"] for g in got] == [g.id for g in site.groups_of(account)]
        assert DEFAULT_GROUP in [g["name"] for g in got]
    assert status(client, "rest/api/user/memberof") == 400
    assert status(client, "rest/api/user/memberof", accountId="712020:nobody") == 404


# ---------------------------------------------------------------------------------------------- spaces


def test_v2_space_permissions_page_by_cursor(client, conf, site, perms):
    for key in perms.corpus.space_keys:
        space = site.spaces[key]
        got, requests = walk_v2(client, conf, f"api/v2/spaces/{space.id}/permissions", {"limit": 1})
        assert requests >= 2
        expected = [p for p in space.permissions if p.principal.type != "anonymous"]
        assert [(r["id"], r["principal"]["type"], r["principal"]["id"]) for r in got] == [
            (p.id, p.principal.type, p.principal.id) for p in expected
        ]
        assert all(set(r) == {"id", "principal", "operation"} for r in got)
        assert all(set(r["operation"]) == {"key", "targetType"} for r in got)
    open_key = next(k for k, v in perms.policies.items() if v == "open")
    ops = {
        (r["operation"]["key"], r["operation"]["targetType"])
        for r in walk_v2(client, conf, f"api/v2/spaces/{site.spaces[open_key].id}/permissions", {"limit": 250})[0]
    }
    assert {("read", "space"), ("create", "page"), ("administer", "space")} <= ops  # filter on read/space


def test_anonymous_access_shows_in_v1_and_opens_the_space_to_everyone(client, conf, site, perms):
    key = perms.anonymous_space
    v1 = client.get(f"rest/api/space/{key}", params={"expand": "permissions"})["permissions"]
    anonymous = [p for p in v1 if p["anonymousAccess"]]
    assert len(anonymous) == 1 and anonymous[0]["operation"] == {"operation": "read", "targetType": "space"}
    assert "subjects" not in anonymous[0]
    v2 = client.get(f"api/v2/spaces/{site.spaces[key].id}/permissions", params={"limit": 250})["results"]
    assert {r["id"] for r in v2} == {str(p["id"]) for p in v1 if not p["anonymousAccess"]}
    granted = {p.principal.id for p in site.spaces[key].permissions if p.principal.type == "group"}
    stranger = not_in(site, *granted)
    assert site.can_read_space(stranger, key) and site.can_read_space(None, key)
    with login(conf, perms, stranger) as other:
        assert cql_ids(other, f'space = "{key}" and type = page') == site.readable_page_ids(stranger, key) != set()
    home = site.spaces[key].homepage_id
    assert site.can_read(None, site.page(home))
    assert not site.can_read(None, site.page(perms.cases[f"{key}:restricted_parent"]))  # restrictions still hold


def test_space_permission_changes_and_legacy_readers(client, conf, site, perms):
    user = site.add_user("Late Joiner", email="late@example.com", api_token="late-token")
    site.add_space("LATE", "Late", readers=[site.default_user])
    page = site.create_page("LATE", "Late page", "<p>x</p>")
    with Confluence(conf.url, username="late@example.com", password="late-token") as late:
        assert cql_ids(late, 'space = "LATE"') == set()
        assert status(late, f"api/v2/spaces/{site.spaces['LATE'].id}/permissions") == 404
        group = site.add_group("late-readers")
        site.grant_space("LATE", group)
        assert cql_ids(late, 'space = "LATE"') == set()  # not a member yet
        site.add_to_group(group, user)
        assert cql_ids(late, 'space = "LATE" and type = page') == {page.id, site.spaces["LATE"].homepage_id}
        site.revoke_space("LATE", group)
        assert cql_ids(late, 'space = "LATE"') == set()
        site.grant_space("LATE", user)
        assert late.get_page_by_id(page.id)["id"] == page.id
        site.restrict_space("LATE", [site.default_user])  # the old API: only these readers
        assert status(late, f"rest/api/content/{page.id}") == 404
        site.unrestrict_space("LATE")  # the default group again: everyone
        assert late.get_page_by_id(page.id)["id"] == page.id
    with pytest.raises(SiteError):
        site.revoke_space("LATE", user)


# ---------------------------------------------------------------------------------------------- restrictions


def test_restriction_endpoints_have_cloud_shapes_and_page_subjects(client, site, perms):
    key = next(k for k, v in perms.policies.items() if v == "open")
    pid = perms.cases[f"{key}:restricted_parent"]
    read = client.get(f"rest/api/content/{pid}/restriction/byOperation/read")
    assert set(read) == {"operation", "restrictions", "_expandable", "_links"} and read["operation"] == "read"
    assert set(read["restrictions"]) == {"user", "group"}
    assert set(read["restrictions"]["group"]) == {"results", "start", "limit", "size"}
    assert {g["id"] for g in read["restrictions"]["group"]["results"]} == set(
        site.page(pid).restrictions["read"].groups
    )
    assert all(set(g) == GROUP_KEYS for g in read["restrictions"]["group"]["results"])
    assert read["_links"]["base"] == client.url and read["_expandable"]["content"] == f"/rest/api/content/{pid}"
    by_op = client.get_all_restrictions_for_content(pid)
    assert set(by_op) == {"read", "update", "_links"} and by_op["read"]["restrictions"] == read["restrictions"]
    assert by_op["update"]["restrictions"]["user"]["size"] == 0
    everything = client.get(f"rest/api/content/{pid}/restriction")
    assert [r["operation"] for r in everything["results"]] == ["read", "update"] and everything["size"] == 2
    assert len(everything["restrictionsHash"]) == 64
    with_content = client.get(f"rest/api/content/{pid}/restriction/byOperation/read", params={"expand": "content"})
    assert with_content["content"]["id"] == pid and "content" not in with_content["_expandable"]
    # Users and groups page together by start/limit.
    wide = site.create_page(key, "Wide restriction", "<p>w</p>")
    crowd = sorted(perms.users)[:7]
    site.restrict_page(wide.id, crowd + [site.default_user.account_id], groups=[perms.sync_group])
    seen, start = [], 0
    while True:
        window = client.get(
            f"rest/api/content/{wide.id}/restriction/byOperation/read", params={"start": start, "limit": 3}
        )["restrictions"]["user"]
        seen += [u["accountId"] for u in window["results"]]
        if window["size"] < window["limit"]:
            break
        start += window["limit"]
    assert seen == sorted(crowd + [site.default_user.account_id])
    assert (
        client.get(f"rest/api/content/{wide.id}/restriction/byOperation/read", params={"limit": 500})["restrictions"][
            "user"
        ]["limit"]
        == 100
    )  # capped silently


def test_restriction_expansions_on_content_and_cql_list_direct_restrictions_only(client, site, perms):
    key = next(k for k, v in perms.policies.items() if v == "open")
    parent, child = perms.cases[f"{key}:restricted_parent"], perms.cases[f"{key}:open_child_of_restricted_parent"]
    page = client.get_page_by_id(parent, expand=RESTRICTION_EXPAND)
    restrictions = page["restrictions"]
    assert set(restrictions) == {"read", "_expandable", "_links"} and restrictions["_expandable"] == {"update": ""}
    assert set(restrictions["read"]["restrictions"]) == {"user", "group"}
    assert restrictions["read"]["restrictions"]["group"]["size"] == len(site.page(parent).restrictions["read"].groups)
    assert "restrictions" not in page["_expandable"]
    inherited = client.get_page_by_id(child, expand=RESTRICTION_EXPAND)["restrictions"]["read"]["restrictions"]
    assert inherited["user"]["size"] == inherited["group"]["size"] == 0  # inherited ones are not listed
    assert not site.can_read(not_in(site, *site.page(parent).restrictions["read"].groups), site.page(child))
    # The same expansion on CQL results (content/search, and search's content.* form).
    found = client.get(
        "rest/api/content/search", params={"cql": f"id in ({parent}, {child})", "expand": RESTRICTION_EXPAND}
    )["results"]
    by_id = {r["id"]: r["restrictions"]["read"]["restrictions"] for r in found}
    assert by_id[parent] == restrictions["read"]["restrictions"] and by_id[child]["group"]["size"] == 0
    prefixed = ",".join(f"content.{e}" for e in RESTRICTION_EXPAND.split(","))
    hits = client.cql(f"id = {parent}", expand=prefixed)["results"]
    assert hits[0]["content"]["restrictions"]["read"]["restrictions"] == restrictions["read"]["restrictions"]
    shallow = client.get_page_by_id(parent, expand="restrictions.read")["restrictions"]["read"]
    assert "restrictions" not in shallow and "restrictions" in shallow["_expandable"]  # level by level


def test_restrictions_of_unreadable_content_are_404_like_missing_content(conf, site, perms):
    account, pid = perms.outsider
    assert site.page(pid).restrictions["read"].groups & {g.id for g in site.groups_of(account)}  # in the group
    assert not site.can_read_space(account, site.page(pid).space_key)  # ... but not in the space
    with login(conf, perms, account) as outsider:
        for path in ("restriction/byOperation/read", "restriction/byOperation", "restriction", ""):
            url = f"rest/api/content/{pid}/{path}".rstrip("/")
            response = outsider.get(url, advanced_mode=True)
            assert response.status_code == 404, path
            missing = outsider.get(f"rest/api/content/999999999/{path}".rstrip("/"), advanced_mode=True)
            assert response.json()["message"].replace(pid, "X") == missing.json()["message"].replace("999999999", "X")


def test_fault_rules_match_the_restriction_endpoint(conf, client, perms):
    pid = next(iter(perms.cases.values()))
    endpoint = "GET /wiki/rest/api/content/{id}/restriction/byOperation/read"
    before = conf.stats[endpoint]
    rule = conf.faults.add(endpoint, status=403)
    try:
        with pytest.raises(HTTPError) as failed:
            client.get(f"rest/api/content/{pid}/restriction/byOperation/read")
        assert failed.value.response.status_code == 403
        assert client.get(f"rest/api/content/{pid}/restriction/byOperation/read")["operation"] == "read"
        assert rule.applied == 1 and conf.stats[endpoint] == before + 2
        assert status(client, f"rest/api/content/{pid}/restriction/byOperation/update") == 200  # its own name
    finally:
        conf.faults.clear()


# ---------------------------------------------------------------------------------------------- ground truth


def test_each_user_sees_exactly_what_can_read_allows(conf, site, perms):
    keys = ", ".join(f'"{k}"' for k in perms.corpus.space_keys)
    checked = 0
    for account in [*perms.users, site.default_user.account_id]:
        expected = {pid for k in perms.corpus.space_keys for pid in site.readable_page_ids(account, k)}
        if account == site.default_user.account_id:
            with Confluence(conf.url, username=conf.email, password=conf.api_token) as me:
                got = cql_ids(me, f"space in ({keys}) and type = page")
            spaces = perms.corpus.space_keys
            every_page = {p.id for p in site.pages.values() if p.space_key in spaces and p.kind == "page"}
            assert got == expected == every_page  # folders are content of their own, not pages
        else:
            with login(conf, perms, account) as user:
                got = cql_ids(user, f"space in ({keys}) and type = page")
        assert got == expected, account
        checked += len(expected)
    assert checked > 0
    sizes = {len(site.readable_page_ids(a)) for a in perms.users}
    assert len(sizes) > 3  # the scheme tells users apart


def test_inheritance_nesting_edit_only_and_groups(conf, site, perms):
    for key in perms.policies:
        parent = site.page(perms.cases[f"{key}:restricted_parent"])
        child = site.page(perms.cases[f"{key}:open_child_of_restricted_parent"])
        assert not child.restrictions and parent.restrictions["read"]
        for account in perms.users:
            assert site.can_read(account, child) == site.can_read(account, parent)  # inherited
        restricted = site.page(perms.cases[f"{key}:restricted_child_of_open_parent"])
        assert not site.page(restricted.parent_id).restrictions
        edit_only = site.page(perms.cases[f"{key}:edit_only"])
        assert set(edit_only.restrictions) == {"update"}
        for account in perms.users:  # edit restrictions do not limit viewing
            assert site.can_read(account, edit_only) == site.can_read_space(account, key)
        if f"{key}:nested_restriction" in perms.cases:
            nested = site.page(perms.cases[f"{key}:nested_restriction"])
            for account in perms.users:
                groups = {g.id for g in site.groups_of(account)}
                both = all(
                    account in r.users or r.groups & groups
                    for r in (parent.restrictions["read"], nested.restrictions["read"])
                )
                assert site.can_read(account, nested) == (site.can_read_space(account, key) and both)
    assert set(perms.policies.values()) == {"open", "groups", "users-and-group", "anonymous", "team"}
    # A membership change flips what a user reads, over HTTP too.
    account, pid = perms.outsider
    page = site.page(pid)
    with login(conf, perms, account) as outsider:
        assert status(outsider, f"rest/api/content/{pid}") == 404
        read_groups = [p.principal.id for p in site.spaces[page.space_key].permissions if p.principal.type == "group"]
        space_group = next(g for g in read_groups if g != perms.sync_group)
        site.add_to_group(space_group, account)
        try:
            assert outsider.get_page_by_id(pid)["id"] == pid and site.can_read(account, page)
        finally:
            site.remove_from_group(space_group, account)
        assert status(outsider, f"rest/api/content/{pid}") == 404


def test_permission_changes_change_no_version(client, site, perms):
    key = perms.corpus.space_keys[0]
    before = {s.id: (s.version, s.last_modified) for s in site.live_pages(key)}
    api_before = client.get_page_by_id(perms.cases[f"{key}:restricted_parent"], expand="version")["version"]
    recent = f'space = "{key}" and lastModified > now("-1d")'
    recent_before = cql_ids(client, recent)
    pid = perms.cases[f"{key}:restricted_child_of_open_parent"]
    group = site.add_group("auditors")
    site.add_to_group(group, *list(perms.users)[:3])
    site.grant_space(key, group)
    site.restrict_page(pid, list(perms.users)[:2], groups=[group, perms.sync_group])
    site.restrict_page(pid, [site.default_user], operation="update")
    site.allow_anonymous(key)
    site.disallow_anonymous(key)
    site.unrestrict_page(pid, "update")
    site.revoke_space(key, group)
    site.remove_from_group(group, list(perms.users)[0])
    assert {s.id: (s.version, s.last_modified) for s in site.live_pages(key)} == before
    assert client.get_page_by_id(perms.cases[f"{key}:restricted_parent"], expand="version")["version"] == api_before
    assert cql_ids(client, recent) == recent_before  # CQL on lastModified cannot see permission changes


def test_generator_is_deterministic_and_realistic():
    def summary(seed: int) -> tuple:
        site = Site()
        made = generate_permissions(site, seed=seed)
        return (
            made.policies,
            made.cases,
            made.outsider,
            sorted((g.name, g.id, tuple(sorted(g.members))) for g in site.groups.values()),
            {k: [(p.principal, p.operation, p.target) for p in s.permissions] for k, s in site.spaces.items()},
            {
                p.id: sorted((op, sorted(r.users), sorted(r.groups)) for op, r in p.restrictions.items())
                for p in site.pages.values()
            },
            len(made.users),
            len(made.groups),
        )

    first = summary(5)
    assert first == summary(5) and first != summary(6)
    assert first[-2] >= 50 and first[-1] >= 10 and len(first[0]) >= 5
    with pytest.raises(ValueError):
        generate_permissions(Site(), seed=1, spaces=3)


def test_rendered_bodies_show_only_what_their_viewer_may_read():
    """Confluence renders include, children and content-by-label as the viewer: a restricted page's text
    and title stay out of body.view / export_view for someone who cannot read it."""
    site = Site(timezone="Asia/Seoul")
    site.add_space("RV", "Rendered views")
    outsider = site.add_user("Out Sider", email="out@example.com", api_token="out-token")
    secret = site.create_page("RV", "Salary bands", "<p>The zeppelin bonus is 42 percent.</p>", labels=["hr"])
    site.create_page("RV", "Open notes", "<p>Lunch is at noon.</p>", labels=["hr"])
    site.restrict_page(secret.id, [site.default_user])
    body = (
        '<ac:structured-macro ac:name="include" ac:macro-id="m1"><ac:parameter ac:name="">'
        f'<ac:link><ri:page ri:content-title="{secret.title}" /></ac:link></ac:parameter></ac:structured-macro>'
        '<ac:structured-macro ac:name="children" ac:macro-id="m2" />'
        '<ac:structured-macro ac:name="contentbylabel" ac:macro-id="m3">'
        '<ac:parameter ac:name="labels">hr</ac:parameter></ac:structured-macro>'
    )
    hub = site.create_page("RV", "Hub", body)
    site.move_page(secret.id, hub.id)
    with ConfluenceServer(site) as conf:
        views = {}
        for who, (email, token) in {
            "owner": (conf.email, conf.api_token),
            "outsider": ("out@example.com", "out-token"),
        }.items():
            with Confluence(conf.url, username=email, password=token) as client:
                page = client.get_page_by_id(hub.id, expand="body.view,body.export_view")
                views[who] = page["body"]["view"]["value"] + page["body"]["export_view"]["value"]
    assert site.can_read(site.default_user, secret) and not site.can_read(outsider, secret)
    assert "zeppelin bonus" in views["owner"] and "Salary bands" in views["owner"]
    # The outsider reads the hub's own storage (which names the included title), never the page itself:
    # not its text, and no link to it in the child list or the label list.
    assert "zeppelin bonus" not in views["outsider"] and f"/pages/{secret.id}" not in views["outsider"]
    assert f"/pages/{secret.id}" in views["owner"]
    assert "Open notes" in views["outsider"]  # what the outsider may read is still listed
