"""Permissions synced into the tables through the real pipeline (Dagster assets, the sandbox over HTTP, the
embedded PostgreSQL): restrictions with the changed-pages listing at no extra request, page_permissions
for unchanged pages, group membership site-wide, space permissions, and failing closed on every fault.
Asserted against the permission tables and what ``confluence_filtered_pages`` lets a viewer see."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import psycopg
import pytest

from confluence_assets import settings
from confluence_assets.confluence.client import PAGE_EXPAND, ConfluenceAPI
from confluence_assets.confluence.cql import space_pages_cql
from confluence_assets.confluence.permissions import (
    RESTRICTION_EXPAND,
    GroupRef,
    SpaceReaders,
    page_restriction,
    space_readers,
)
from confluence_assets.defs.schedules import build_schedules
from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site
from confluence_assets.sandbox.confluence_server import Limits
from confluence_assets.sync import staging
from confluence_assets_tests.pipeline_support import (
    ASSETS,
    SEARCH,
    Sandbox,
    asset_metadata,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

BY_OPERATION = "GET /wiki/rest/api/content/{id}/restriction/byOperation/read"
MEMBERS = "GET /wiki/rest/api/group/{groupId}/membersByGroupId"
V2_PERMISSIONS = "GET /wiki/api/v2/spaces/{id}/permissions"


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def refresh_space(instance, resources, key: str, **kwargs) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [ASSETS.page_permissions], partition_key=key, instance=instance, resources=resources, **kwargs
    )


def refresh_groups(instance, resources) -> dg.ExecuteInJobResult:
    return dg.materialize([ASSETS.confluence_groups], instance=instance, resources=resources)


def restrictions(db_url: str, key: str) -> dict[str, tuple[str, set[str], set[str], str | None]]:
    """page id -> (status, read account ids, read group ids, error) of the space's live pages."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT p.page_id, r.status, r.read_account_ids, r.read_group_ids, r.error
               FROM confluence_pages p JOIN confluence_page_restrictions r ON r.page_id = p.page_id
               WHERE p.space_key = %s AND NOT p.is_deleted""",
            (key,),
        ).fetchall()
    return {pid: (status, set(users), set(groups), error) for pid, status, users, groups, error in rows}


def visible(db_url: str, viewer: str | None) -> set[str]:
    """What confluence_filtered_pages lets ``viewer`` (an account id, None: nobody named) see."""
    with psycopg.connect(db_url) as conn:
        return {
            pid
            for (pid,) in conn.execute(
                "SELECT page_id FROM confluence_filtered_pages(viewer_account_id => %s)", (viewer,)
            )
        }


def expected_restrictions(site: Site, key: str) -> dict[str, tuple[str, set[str], set[str], None]]:
    out = {}
    for snap in site.live_pages(key):
        read = site.page(snap.id).restrictions.get("read")
        out[snap.id] = ("ok", set(read.users) if read else set(), set(read.groups) if read else set(), None)
    return out


def readable(site: Site, user: str, key: str) -> set[str]:
    return site.readable_page_ids(user, key)


def unrestricted(site: Site, key: str) -> set[str]:
    """Pages with no read restriction on them or any ancestor: what a search naming nobody may show."""
    return {
        p.id
        for p in site.live_pages(key)
        if not any("read" in site.page(x).restrictions for x in [*site.ancestor_ids(p.id), p.id])
    }


def under(site: Site, key: str, page_ids) -> set[str]:
    """The pages and their live descendants: what hiding ``page_ids`` hides."""
    wanted = set(page_ids)
    return {p.id for p in site.live_pages(key) if wanted & {p.id, *site.ancestor_ids(p.id)}}


def people(site: Site, n: int, prefix: str = "Reader") -> list[str]:
    return [site.add_user(f"{prefix} {i}", email=f"{prefix.lower()}{i}@example.com").account_id for i in range(n)]


@pytest.fixture
def site() -> Site:
    site = generated_site(31, pages=24)
    key = only_space(site)
    pages = [p.id for p in site.live_pages(key)]
    alice, bob, carol = people(site, 3)
    team = site.add_group("team")
    site.add_to_group(team, alice)
    service = site.default_user.account_id
    site.restrict_page(pages[3], [bob, service])  # bob only (and the sync account)
    site.restrict_page(pages[5], [service], groups=[team])  # the team
    site.restrict_page(pages[7], [carol], operation="update")  # edit-only: nobody loses sight of it
    return site


def accounts(site: Site) -> dict[str, str]:
    by_name = {u.display_name: u.account_id for u in site.users.values()}
    return {name: by_name[f"Reader {i}"] for i, name in enumerate(("alice", "bob", "carol"))}


# -- changed pages ---------------------------------------------------------------------------------------


def test_restrictions_land_with_changed_pages_at_no_extra_request(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    crowd = people(site, 150, "Crowd")
    wide = site.live_pages(key)[9].id
    site.restrict_page(wide, [*crowd, site.default_user.account_id])  # 151 users: beyond the expansion's 100
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        result = sync_space(instance, resources, key)
        assert result.success
        assert sb.conf.stats[BY_OPERATION] == 1  # the one page with a long list; the others cost nothing
        changed = asset_metadata(result, "changed_pages")
        assert changed["restriction_requests"] == 1 and changed["pages_restriction_unknown"] == 0
        assert asset_metadata(result, "page_metadata")["pages_restriction_unknown"] == 0
        stored = restrictions(migrated_db_url, key)
        assert stored == expected_restrictions(site, key)
        assert len(stored[wide][1]) == 151
        # The space's first sync reads who may read it (once: later syncs do not ask again), so each
        # viewer finds what they may read from that sync on; nobody-named the unrestricted pages.
        assert changed["space_permission_requests"] >= 2
        for name, account in who.items():
            assert visible(migrated_db_url, account) == readable(site, account, key), name
        assert visible(migrated_db_url, None) == unrestricted(site, key) != set()
        again = sync_space(instance, resources, key)
        assert asset_metadata(again, "changed_pages")["space_permission_requests"] == 0

        before = sb.conf.stats.snapshot()
        refreshed = refresh_space(instance, resources, key)
        assert refreshed.success
        shown = asset_metadata(refreshed, "page_permissions")
        assert shown["restricted_pages"] == 3 and shown["unknown_restriction_pages"] == 0
        assert shown["permission_pages_listed"] == len(site.live_pages(key))
        made = {e: n - before.get(e, 0) for e, n in sb.conf.stats.snapshot().items() if n != before.get(e, 0)}
        assert made[SEARCH] == 1 and made[BY_OPERATION] == 1  # one listing page (200 a request), one completion
        assert shown["requests"] == sum(made.values())
    for name, account in who.items():
        assert visible(migrated_db_url, account) == readable(site, account, key), name


def test_pages_staged_without_the_expansion_become_unknown_never_open(migrated_db_url, instance, site):
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        open_page = sorted(unrestricted(site, key))[1]
        assert open_page in visible(migrated_db_url, None)
        # A payload as the sync staged it before restrictions were expanded (what a pre-upgrade run left).
        site.edit_page(open_page, body="<p>edited before the upgrade</p>")
        api = ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token)
        page = next(iter(api.search_pages(f"id = {open_page}", expand=PAGE_EXPAND)))  # no restrictions
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            when = datetime.fromisoformat(page["version"]["when"].replace("Z", "+00:00"))
            row = staging.staged_row(f"confluence_{key}", page, page["version"]["number"], when, "updated", None)
            staging.upsert_staged_pages(conn, [row])
        result = dg.materialize([ASSETS.page_metadata], partition_key=key, instance=instance, resources=resources)
        assert result.success
        assert asset_metadata(result, "page_metadata")["restriction_unknown_page_ids"] == [open_page]
        status, _, _, error = restrictions(migrated_db_url, key)[open_page]
        assert status == "unknown" and "not expanded" in error
        assert open_page not in visible(migrated_db_url, None)
        assert open_page not in visible(migrated_db_url, accounts(site)["alice"])
        assert refresh_space(instance, resources, key).success  # the next refresh reads it: visible again
        assert open_page in visible(migrated_db_url, None)


def test_a_staged_payload_never_overwrites_a_later_refresh(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    target = site.live_pages(key)[11].id
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        site.edit_page(target, body="<p>a new version, staged while open</p>")
        changed = dg.materialize([ASSETS.changed_pages], partition_key=key, instance=instance, resources=resources)
        assert changed.success
        site.restrict_page(target, [who["bob"], site.default_user.account_id])  # after the listing
        assert refresh_space(instance, resources, key).success
        assert restrictions(migrated_db_url, key)[target][1] == {who["bob"], site.default_user.account_id}
        rest = dg.materialize(
            [ASSETS.page_metadata, ASSETS.page_chunks, ASSETS.chunk_embeddings],
            partition_key=key,
            instance=instance,
            resources=resources,
        )
        assert rest.success
    status, users, _, _ = restrictions(migrated_db_url, key)[target]
    assert status == "ok" and users == {who["bob"], site.default_user.account_id}  # not the staged "open"
    assert target not in visible(migrated_db_url, who["alice"]) and target not in visible(migrated_db_url, None)


# -- page_permissions and confluence_groups --------------------------------------------------------------


def test_permission_changes_of_unchanged_pages_take_effect_after_the_refresh(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    pages = [p.id for p in site.live_pages(key)]
    service = site.default_user.account_id
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        assert pages[5] in visible(migrated_db_url, who["alice"])  # in the team
        # A restriction added to an untouched page, one removed, and a user leaving the team.
        site.restrict_page(pages[13], [who["carol"], service])
        site.unrestrict_page(pages[3])
        site.remove_from_group("team", who["alice"])
        assert pages[13] in visible(migrated_db_url, who["alice"])  # not yet: no page changed
        refreshed = refresh_space(instance, resources, key)
        assert refreshed.success
        assert restrictions(migrated_db_url, key) == expected_restrictions(site, key)
        assert pages[13] not in visible(migrated_db_url, who["alice"]) and pages[3] in visible(migrated_db_url, None)
        assert pages[5] in visible(migrated_db_url, who["alice"])  # membership is the group refresh's
        groups = refresh_groups(instance, resources)
        assert groups.success
        assert asset_metadata(groups, "confluence_groups")["groups_unknown"] == 0
        for name, account in who.items():
            assert visible(migrated_db_url, account) == readable(site, account, key), name
        # The space's summary in the UI: restricted pages and when permissions were refreshed.
        spaces = dg.materialize([ASSETS.confluence_spaces], instance=instance, resources=resources)
        table = asset_metadata(spaces, "confluence_spaces")["spaces"]
        assert "restricted pages" in table and "permissions refreshed at" in table
        row = next(line for line in table.splitlines() if line.startswith(f"| {key} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[4] == "2" and cells[5] == "0" and cells[6].startswith(str(datetime.now(UTC).year))
        with psycopg.connect(migrated_db_url) as conn:
            summary = conn.execute(
                "SELECT metadata->'permissions' FROM archon_sources WHERE source_id = %s", (f"confluence_{key}",)
            ).fetchone()[0]
        assert summary["restricted_pages"] == 2 and summary["space_permissions"] == "ok"


def test_a_revoked_space_permission_takes_effect_after_the_refresh(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    readers = site.add_group("space-readers")
    site.add_to_group(readers, who["alice"], who["bob"])
    site.restrict_space(key, [readers, site.default_user, who["carol"]])
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        for account in who.values():
            assert visible(migrated_db_url, account) == readable(site, account, key) != set()
        site.revoke_space(key, readers)
        site.revoke_space(key, who["carol"])
        assert refresh_space(instance, resources, key).success
        for name, account in who.items():
            assert visible(migrated_db_url, account) == set() == readable(site, account, key), name
        site.allow_anonymous(key)  # anonymous access opens the space to every user
        assert refresh_space(instance, resources, key).success
        for account in who.values():
            assert visible(migrated_db_url, account) == readable(site, account, key) != set()


# -- faults: fail closed -------------------------------------------------------------------------------


def test_restriction_reads_that_fail_leave_those_pages_unknown_and_named(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    service = site.default_user.account_id
    crowd = people(site, 101, "Crowd")
    long_lists: list[str] = []  # four pages, none under another or under a restricted page
    for page in site.live_pages(key)[12:]:
        chain = set(site.ancestor_ids(page.id))
        if len(long_lists) < 4 and not chain & set(long_lists) and page.id in unrestricted(site, key):
            long_lists.append(page.id)
    assert len(long_lists) == 4
    for pid in long_lists:
        site.restrict_page(pid, [*crowd, who["alice"], service])  # 103 users: each needs a completion
    failing = dict(zip(long_lists[:3], (403, 429, 500), strict=True))
    with sandbox_servers(site) as sb:
        for pid, status in failing.items():
            sb.conf.faults.add(
                f"GET /wiki/rest/api/content/{pid}/restriction/byOperation/read", status=status, times=None
            )
        resources = resources_for(sb, migrated_db_url)
        result = sync_space(instance, resources, key)
        assert result.success
        assert sorted(asset_metadata(result, "changed_pages")["restriction_unknown_page_ids"]) == sorted(failing)
        assert sorted(asset_metadata(result, "page_metadata")["restriction_unknown_page_ids"]) == sorted(failing)
        refreshed = refresh_space(instance, resources, key)
        assert refreshed.success
        shown = asset_metadata(refreshed, "page_permissions")
        assert shown["unknown_restriction_pages"] == 3 and sorted(shown["unknown_page_ids"]) == sorted(failing)
        assert all(pid in shown["failed_restriction_reads"] for pid in failing)
        stored = restrictions(migrated_db_url, key)
        expected = expected_restrictions(site, key)
        for pid, (status, _, _, error) in stored.items():
            if pid in failing:
                assert status == "unknown" and f"HTTP {failing[pid]}" in error, (pid, error)
            else:
                assert stored[pid] == expected[pid], pid
        assert groups_ok(instance, resources)
        for pid in failing:  # hidden from everyone, even alice whom the restriction names
            assert pid not in visible(migrated_db_url, who["alice"]) and pid not in visible(migrated_db_url, None)
        assert long_lists[3] in visible(migrated_db_url, who["alice"])
        assert visible(migrated_db_url, who["alice"]) == readable(site, who["alice"], key) - under(site, key, failing)
        sb.conf.faults.clear()
        assert refresh_space(instance, resources, key).success
        assert restrictions(migrated_db_url, key) == expected
        assert visible(migrated_db_url, who["alice"]) == readable(site, who["alice"], key)


def groups_ok(instance, resources) -> bool:
    result = refresh_groups(instance, resources)
    return result.success and asset_metadata(result, "confluence_groups")["groups_unknown"] == 0


def test_a_listing_that_fails_part_way_opens_nothing(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    service = site.default_user.account_id
    conf, emb = ConfluenceServer(site, limits=Limits(search_expand_max=5)), EmbeddingsServer()
    with conf, emb:
        sb = Sandbox(site, conf, emb)
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token)
        first = [p["id"] for p in api.search_pages(space_pages_cql(key), expand=RESTRICTION_EXPAND, limit=5)][:5]
        stored = restrictions(migrated_db_url, key)
        open_ones = [p for p in first if stored[p][:3] == ("ok", set(), set())]
        assert len(open_ones) >= 3, stored
        opened, narrowed, unknown = open_ones[:3]
        site.restrict_page(opened, [who["bob"], service])
        assert refresh_space(instance, resources, key).success
        site.unrestrict_page(opened)  # would open it to everyone
        site.restrict_page(narrowed, [who["carol"], service])  # narrows: written even so
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            conn.execute("UPDATE confluence_page_restrictions SET status = 'unknown' WHERE page_id = %s", (unknown,))
        conf.faults.add(SEARCH, status=500, skip=1, times=None)  # the first window only, then 500s
        failed = refresh_space(instance, resources, key, raise_on_error=False)
        assert not failed.success
    stored = restrictions(migrated_db_url, key)
    assert stored[opened][:3] == ("ok", {who["bob"], service}, set())  # still restricted, not opened
    assert stored[narrowed][:3] == ("ok", {who["carol"], service}, set())
    assert stored[unknown][0] == "unknown"
    for page in (opened, unknown):
        assert page not in visible(migrated_db_url, None)


def test_a_group_that_cannot_be_listed_loses_its_members(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    team = site.group("team")
    team_page = site.live_pages(key)[5].id
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        assert team_page in visible(migrated_db_url, who["alice"])
        sb.conf.faults.add(f"GET /wiki/rest/api/group/{team.id}/membersByGroupId", status=500, times=None)
        result = refresh_groups(instance, resources)
        assert result.success
        shown = asset_metadata(result, "confluence_groups")
        assert shown["groups_unknown"] == 1 and shown["unknown_groups"] == ["team"]
        assert shown["groups_listed"] >= 1  # the default group still lists
    with psycopg.connect(migrated_db_url) as conn:
        status, count = conn.execute(
            "SELECT members_status, member_count FROM confluence_groups WHERE group_id = %s", (team.id,)
        ).fetchone()
        members = conn.execute("SELECT count(*) FROM confluence_group_members WHERE group_id = %s", (team.id,))
        assert (status, count, members.fetchone()[0]) == ("unknown", None, 0)
    assert team_page not in visible(migrated_db_url, who["alice"])  # stale membership no longer lets her in
    assert visible(migrated_db_url, who["alice"]) == readable(site, who["alice"], key) - under(site, key, [team_page])


@pytest.mark.parametrize("endpoint", [V2_PERMISSIONS, "GET /wiki/rest/api/space/{key}"])
def test_a_space_whose_permissions_cannot_be_read_is_unknown(migrated_db_url, instance, site, endpoint):
    key = only_space(site)
    who = accounts(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert refresh_space(instance, resources, key).success
        assert visible(migrated_db_url, who["alice"]) == readable(site, who["alice"], key) != set()
        sb.conf.faults.add(endpoint, status=500, times=None)
        result = refresh_space(instance, resources, key)
        assert result.success  # the pages' restrictions are still refreshed
        shown = asset_metadata(result, "page_permissions")
        assert shown["space_permissions"] == "unknown" and "HTTP 500" in shown["space_permissions_error"]
        assert shown["unknown_restriction_pages"] == 0
    with psycopg.connect(migrated_db_url) as conn:
        status, error = conn.execute(
            "SELECT status, error FROM confluence_space_permissions WHERE space_key = %s", (key,)
        ).fetchone()
    assert status == "unknown" and "HTTP 500" in error
    for account in who.values():
        assert visible(migrated_db_url, account) == set()  # nobody is let into the space


def test_data_center_without_v2_reads_space_permissions_from_v1(migrated_db_url, instance, site):
    key = only_space(site)
    who = accounts(site)
    with sandbox_servers(site) as sb:
        sb.conf.faults.add(V2_PERMISSIONS, status=404, times=None)  # no v2 API, as on Data Center
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        result = refresh_space(instance, resources, key)
        assert result.success and asset_metadata(result, "page_permissions")["space_permissions"] == "ok"
    for account in who.values():
        assert visible(migrated_db_url, account) == readable(site, account, key) != set()


# -- automation ----------------------------------------------------------------------------------------


def test_the_daily_schedule_refreshes_every_space_and_the_groups():
    schedules = {s.name: s for s in build_schedules(settings.load().automation)}
    schedule = schedules["confluence_permissions_schedule"]
    automation = settings.load().automation
    assert schedule.cron_schedule == automation.permissions_cron == "30 2 * * *"
    assert schedule.execution_timezone == automation.reconciliation_timezone
    assert schedule.job_name == "confluence_permissions_job"
    when = datetime(2026, 6, 2, 2, 30, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        assert isinstance(schedule(context), dg.SkipReason)  # no spaces yet
        instance.add_dynamic_partitions("confluence_spaces", ["ENG", "OPS"])
        requests = schedule(context)
    stamp = when.isoformat()
    # A space's run also converts what its refresh staged again (pages withdrawn or moved).
    space_run = [
        dg.AssetKey(k)
        for k in ("page_permissions", "page_metadata", "page_attachments", "page_chunks", "chunk_embeddings")
    ]
    assert [(r.run_key, r.partition_key, r.asset_selection) for r in requests] == [
        (f"ENG:permissions:{stamp}", "ENG", space_run),
        (f"OPS:permissions:{stamp}", "OPS", space_run),
        (f"groups:{stamp}", None, [dg.AssetKey("confluence_groups")]),
    ]
    assert set(schedules) == {"confluence_permissions_schedule", "confluence_reconciliation_schedule"}


# -- what the REST shapes mean, and the sandbox's caps -----------------------------------------------------


def _payload(users: list[dict], groups: list[dict], limit: int = 100, **sync) -> dict:
    read = {
        "operation": "read",
        "restrictions": {
            "user": {"results": users, "start": 0, "limit": limit, "size": len(users)},
            "group": {"results": groups, "start": 0, "limit": limit, "size": len(groups)},
        },
    }
    if sync:
        read["_sync"] = sync
    return {"id": "42", "restrictions": {"read": read}}


def test_restriction_shapes_fail_closed():
    when = "2026-06-01T00:00:00+00:00"
    cloud = page_restriction(_payload([{"accountId": "a1"}], [{"id": "g1", "name": "team"}], read_at=when))
    assert (cloud.status, cloud.users, cloud.groups) == ("ok", ("a1",), (GroupRef("g1", "team"),))
    assert cloud.read_at == datetime.fromisoformat(when)
    data_center = page_restriction(_payload([{"userKey": "k1", "username": "jo"}], [{"name": "staff"}]))
    assert (data_center.users, data_center.groups) == (("k1",), (GroupRef("staff", "staff"),))
    assert page_restriction(_payload([], [])).restricted is False
    # Fail closed: no expansion, a list that may go on, a subject without an id, a recorded failure.
    assert page_restriction({"id": "42"}).status == "unknown"
    assert page_restriction({"id": "42", "restrictions": {"read": {"restrictions": {"user": {}}}}}).status == "unknown"
    full = [{"accountId": f"a{i}"} for i in range(3)]
    assert page_restriction(_payload(full, [], limit=3)).status == "unknown"
    assert page_restriction(_payload(full, [], limit=3, completed=True)).status == "ok"
    assert page_restriction(_payload([{"displayName": "no id"}], [])).status == "unknown"
    failed = page_restriction(_payload([], [], error="could not read the rest: HTTP 403"))
    assert failed.status == "unknown" and "HTTP 403" in failed.error


def test_space_readers_take_read_space_only_and_anonymous_access_from_v1():
    v1 = {
        "id": 7,
        "permissions": [
            {"anonymousAccess": True, "operation": {"operation": "read", "targetType": "space"}},
            {
                "subjects": {"group": {"results": [{"id": "g1", "name": "team"}]}},
                "operation": {"operation": "read", "targetType": "space"},
                "anonymousAccess": False,
            },
        ],
    }
    v2 = [
        {"principal": {"type": "group", "id": "g1"}, "operation": {"key": "read", "targetType": "space"}},
        {"principal": {"type": "user", "id": "u1"}, "operation": {"key": "read", "targetType": "space"}},
        {"principal": {"type": "user", "id": "u2"}, "operation": {"key": "administer", "targetType": "space"}},
        {"principal": {"type": "role", "id": "r1"}, "operation": {"key": "read", "targetType": "space"}},
    ]
    readers = space_readers(v1, v2)
    assert readers == SpaceReaders(True, ("u1",), (GroupRef("g1", "team"),))
    assert space_readers({"permissions": []}, None) == SpaceReaders(False, (), ())


def test_the_sandbox_caps_search_limits_by_expansion(site):
    key = only_space(site)
    with ConfluenceServer(site) as conf:
        api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token)
        caps = {}
        for expand in (PAGE_EXPAND, RESTRICTION_EXPAND, "version", None):
            params = {"cql": space_pages_cql(key), "limit": 5000, **({"expand": expand} if expand else {})}
            caps[expand] = api.get_json("rest/api/content/search", params)["limit"]
    assert caps == {PAGE_EXPAND: 50, RESTRICTION_EXPAND: 200, "version": 200, None: 1000}
