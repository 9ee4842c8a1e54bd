"""Macros that show other pages never show what not every reader of the page may read: conversion runs
once, as the service account (who reads everything), so an open page including a restricted page, its
child list, a content-by-label or page properties report rendered by Confluence as the service account,
and cross-space includes are checked against the stored permissions (fail closed).

Through the real pipeline: the sandbox Confluence (restrictions, space permissions, renderings as the
service account), real Dagster runs, the embedded PostgreSQL; the assertions read the chunks in
archon_crawled_pages. ``_mirror_permissions`` writes the permission rows the way the permission sync
does (status 'ok', the read restriction's accounts and groups, the space's readers), from the sandbox's
own state, so that the tests do not depend on which step reads them; a first run before the rows exist
shows that nothing unknown is shown.
"""

from __future__ import annotations

import html

import psycopg
import pytest
from atlassian import Confluence
from bs4 import BeautifulSoup

from confluence_assets.confluence.client import PAGE_EXPAND, ConfluenceAPI
from confluence_assets.confluence.cql import space_pages_cql
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.responses import page_version
from confluence_assets.content import ConversionError, convert_page
from confluence_assets.content.macro_scan import WITHHELD, page_reference, withhold
from confluence_assets.sandbox import Site
from confluence_assets.sync import convert_step, dependents, sources, staging
from confluence_assets_tests.pipeline_support import (
    ASSETS,
    PERMISSION_ASSETS,
    asset_metadata,
    db_state,
    generated_site,
    only_space,
    refresh_space_permissions,
    resources_for,
    sandbox_servers,
    sync_space,
)

SECRET = "obsidian heron ledger"
SECRET_TITLE = "Merger war room"
OPEN = "amber lantern protocol"
OPEN_TITLE = "Lantern protocol"
RESTRICTIONS = "restrictions.read.restrictions.user,restrictions.read.restrictions.group"


def _macro(name: str, params: dict[str, str] | None = None, body: str | None = None) -> str:
    inner = "".join(f'<ac:parameter ac:name="{k}">{v}</ac:parameter>' for k, v in (params or {}).items())
    if body is not None:
        inner += f"<ac:rich-text-body>{body}</ac:rich-text-body>"
    return f'<ac:structured-macro ac:name="{name}" ac:schema-version="1">{inner}</ac:structured-macro>'


def _include(title: str, space: str | None = None, macro: str = "include") -> str:
    where = f' ri:space-key="{space}"' if space else ""
    return _macro(macro, {"": f'<ac:link><ri:page ri:content-title="{html.escape(title)}"{where} /></ac:link>'})


def _details(props: dict[str, str]) -> str:
    rows = "".join(f"<tr><th><p>{k}</p></th><td><p>{v}</p></td></tr>" for k, v in props.items())
    return _macro("details", {}, f"<table><tbody>{rows}</tbody></table>")


def _restrict(site: Site, page_id: str) -> None:
    """A read restriction the service account passes (it renders and lists the page), nobody else."""
    team = site.add_group(f"war-room-{page_id}")
    site.restrict_page(page_id, [site.default_user], groups=[team])


def _mirror_permissions(site: Site, db_url: str, keys: list[str]) -> None:
    """The permission rows of the stored pages and of the spaces, as the permission sync writes them."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for key in keys:
            readers = [
                p.principal for p in site.spaces[key].permissions if (p.operation, p.target) == ("read", "space")
            ]
            conn.execute(
                """INSERT INTO confluence_space_permissions
                     (source_id, space_key, status, anonymous_access, reader_account_ids, reader_group_ids,
                      refreshed_at)
                   VALUES (%s, %s, 'ok', %s, %s, %s, now())
                   ON CONFLICT (source_id) DO UPDATE SET status = 'ok', anonymous_access = EXCLUDED.anonymous_access,
                     reader_account_ids = EXCLUDED.reader_account_ids, reader_group_ids = EXCLUDED.reader_group_ids""",
                (
                    source_id_for(key),
                    key,
                    any(p.type == "anonymous" for p in readers),
                    sorted(p.id for p in readers if p.type == "user"),
                    sorted(p.id for p in readers if p.type == "group"),
                ),
            )
        stored = conn.execute(
            "SELECT page_id, source_id FROM confluence_pages WHERE source_id = ANY(%s)",
            ([source_id_for(k) for k in keys],),
        ).fetchall()
        for page_id, source_id in stored:
            read = site.pages[page_id].restrictions.get("read")
            conn.execute(
                """INSERT INTO confluence_page_restrictions
                     (page_id, source_id, status, read_account_ids, read_group_ids, read_at)
                   VALUES (%s, %s, 'ok', %s, %s, now())
                   ON CONFLICT (page_id) DO UPDATE SET status = 'ok', read_account_ids = EXCLUDED.read_account_ids,
                     read_group_ids = EXCLUDED.read_group_ids, error = NULL, read_at = now()""",
                (page_id, source_id, sorted(read.users) if read else [], sorted(read.groups) if read else []),
            )


def _text(state: dict, page_id: str) -> str:
    return "\n".join(c[1] for c in state["chunks"][page_id])


def _touch(site: Site, page_id: str) -> None:
    """A new version of the page, its body unchanged: the next sync converts it again."""
    site.edit_page(page_id, body=site.page(page_id).body)


def _export_view(sb, page_id: str) -> str:
    client = Confluence(sb.conf.url, username=sb.conf.email, password=sb.conf.api_token, cloud=True)
    return client.get_page_by_id(page_id, expand="body.export_view")["body"]["export_view"]["value"]


@pytest.fixture
def site() -> Site:
    return generated_site(31, pages=6)


def test_an_open_page_shows_an_included_page_only_if_every_reader_may_read_it(migrated_db_url, instance, site):
    key = only_space(site)
    secret = site.create_page(key, SECRET_TITLE, f"<p>The {SECRET} is sealed.</p>")
    _restrict(site, secret.id)
    # No restriction of its own, but its parent's applies to it.
    site.create_page(key, "Due diligence notes", "<p>The cobalt escrow figures.</p>", parent_id=secret.id)
    # The open page includes the restricted one too: Confluence shows it to the service account only.
    site.create_page(key, OPEN_TITLE, f"<p>The {OPEN} applies.</p>{_include(SECRET_TITLE)}")
    hub = site.create_page(
        key,
        "Programme hub",
        f"<p>Everything:</p>{_include(OPEN_TITLE)}{_include(SECRET_TITLE)}{_include('Due diligence notes')}",
    )
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        first = _text(db_state(migrated_db_url, key), hub.id)
        _mirror_permissions(site, migrated_db_url, [key])
        _touch(site, hub.id)
        sync_space(instance, resources, key)  # the included pages are stored now: the rendering shows them
        state = db_state(migrated_db_url, key)
        served = _export_view(sb, hub.id)
    assert SECRET not in first and "cobalt escrow" not in first  # restrictions not known yet: nothing of them
    assert SECRET in served and OPEN in served  # what the service account's rendering holds
    text = _text(state, hub.id)
    assert OPEN in text and "Everything:" in text
    assert SECRET not in text and SECRET_TITLE not in text  # neither included here nor through the open page
    assert "cobalt escrow" not in text and "cobalt escrow" in served
    assert text.count(WITHHELD) == 3
    meta = state["metadata"][hub.id]
    assert meta["withheld_references"] == 3
    assert meta["rendered_macros"] == [
        {"macro": "include", "source": "export_view", "withheld": 1},  # its nested include of the secret
        {"macro": "include", "source": "withheld", "withheld": 1},
        {"macro": "include", "source": "withheld", "withheld": 1},
    ]
    # The restricted page itself is indexed with its own text (search hides it from who may not read it).
    assert SECRET in _text(state, secret.id)
    # When its permissions change, the pages showing it are to be converted again (no new version says so).
    opened = site.page_by_title(key, OPEN_TITLE).id
    with psycopg.connect(migrated_db_url) as conn:
        assert dependents.pages_showing(conn, [secret.id]) == sorted([hub.id, opened])
        assert dependents.pages_showing(conn, [hub.id]) == []


def test_a_page_showing_a_page_restricted_later_is_withdrawn_by_the_refresh_and_converted_again(
    migrated_db_url, instance, site
):
    """The restriction gives no page a new version: without the refresh the including page would keep the
    included text until it changed itself."""
    key = only_space(site)
    shown = site.create_page(key, OPEN_TITLE, f"<p>The {OPEN} applies.</p>")
    hub = site.create_page(key, "Programme hub", f"<p>Everything:</p>{_include(OPEN_TITLE)}")
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        refresh_space_permissions(instance, resources, key)
        _touch(site, hub.id)
        sync_space(instance, resources, key)
        assert OPEN in _text(db_state(migrated_db_url, key), hub.id)  # every reader of the hub may read it

        _restrict(site, shown.id)
        refresh = refresh_space_permissions(instance, resources, key, assets=[ASSETS.page_permissions])
        figures = asset_metadata(refresh, "page_permissions")
        withdrawn = db_state(migrated_db_url, key)
        # A crash between the withdrawal and the staging: the next refresh stages what is left withdrawn.
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM confluence_sync_staged_pages WHERE page_id = %s", (hub.id,))
        retried = refresh_space_permissions(instance, resources, key, assets=[ASSETS.page_permissions])
        retry_figures = asset_metadata(retried, "page_permissions")
        rest = refresh_space_permissions(instance, resources, key, assets=PERMISSION_ASSETS[1:])
        state = db_state(migrated_db_url, key)
        again = asset_metadata(refresh_space_permissions(instance, resources, key), "page_permissions")
    assert figures["withdrawn_page_ids"] == [hub.id] and figures["chunks_withdrawn"] >= 1
    assert figures["staged_again_page_ids"] == [hub.id]
    assert hub.id not in withdrawn["chunks"]  # out of the index from the refresh on, before its conversion
    assert retry_figures["withdrawn_page_ids"] == [] and retry_figures["staged_again_page_ids"] == [hub.id]
    assert OPEN in _text(withdrawn, shown.id)
    assert asset_metadata(rest, "page_metadata")["pages_converted"] >= 1
    text = _text(state, hub.id)
    assert OPEN not in text and "Everything:" in text and WITHHELD in text
    assert OPEN in _text(state, shown.id)  # the restricted page keeps its own text (search filters it)
    assert again["withdrawn_page_ids"] == [] and again["staged_again_page_ids"] == []  # nothing left to do


def test_a_child_list_omits_a_restricted_child_and_its_subtree(migrated_db_url, instance, site):
    key = only_space(site)
    hub = site.create_page(key, "Squad directory", "<p>Squads:</p>" + _macro("children", {"all": "true"}))
    open_kid = site.create_page(key, "Heron squad", "<p>open</p>", parent_id=hub.id)
    site.create_page(key, "Heron squad rota", "<p>open too</p>", parent_id=open_kid.id)
    secret_kid = site.create_page(key, SECRET_TITLE, "<p>closed</p>", parent_id=hub.id)
    site.create_page(key, "Acquisition shortlist", "<p>inherits the restriction</p>", parent_id=secret_kid.id)
    _restrict(site, secret_kid.id)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        first = _text(db_state(migrated_db_url, key), hub.id)
        _mirror_permissions(site, migrated_db_url, [key])
        _touch(site, hub.id)
        sync_space(instance, resources, key)
        state = db_state(migrated_db_url, key)
    for text in (first, _text(state, hub.id)):
        assert SECRET_TITLE not in text and "Acquisition shortlist" not in text
    text = _text(state, hub.id)
    assert "Heron squad" in text and "Heron squad rota" in text  # the open child and its child
    meta = state["metadata"][hub.id]
    assert meta["withheld_references"] == 1  # the restricted child (its subtree is not looked at)
    assert meta["rendered_macros"] == [{"macro": "children", "source": "expansion", "withheld": 1}]


def test_a_report_rendered_as_the_service_account_loses_the_entries_of_restricted_pages(
    migrated_db_url, instance, site
):
    key = only_space(site)
    site.create_page(key, OPEN_TITLE, _details({"Owner": "Ilse Brandvold"}), labels=["rollout"])
    secret = site.create_page(key, SECRET_TITLE, _details({"Owner": "Corvin Maltese"}), labels=["rollout"])
    _restrict(site, secret.id)
    board = site.create_page(
        key,
        "Rollout board",
        "<p>Rollouts:</p>"
        + _macro("contentbylabel", {"labels": "rollout"})
        + _macro("detailssummary", {"label": "rollout"})
        + "<p>See the people pages.</p>",
    )
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)
        first = _text(db_state(migrated_db_url, key), board.id)
        _mirror_permissions(site, migrated_db_url, [key])
        _touch(site, board.id)
        result = sync_space(instance, resources, key)
        state = db_state(migrated_db_url, key)
        served = _export_view(sb, board.id)
    assert served.count(SECRET_TITLE) == 2 and "Corvin Maltese" in served  # listed for the service account
    for text in (first, _text(state, board.id)):
        assert SECRET_TITLE not in text and "Corvin Maltese" not in text
    text = _text(state, board.id)
    assert text.count(OPEN_TITLE) >= 2 and "Ilse Brandvold" in text and "See the people pages." in text
    assert asset_metadata(result, "changed_pages")["rendered_pages"] == 1
    meta = state["metadata"][board.id]
    assert meta["withheld_references"] == 2
    with psycopg.connect(migrated_db_url) as conn:  # a report may list any page
        assert dependents.pages_showing(conn, [secret.id]) == [board.id]
    assert meta["rendered_macros"] == [
        {"macro": "contentbylabel", "source": "export_view", "withheld": 1},
        {"macro": "detailssummary", "source": "export_view", "withheld": 1},
    ]


def test_a_cross_space_include_is_shown_only_if_the_other_space_lets_in_every_reader(migrated_db_url, instance):
    site = generated_site(32, spaces=3, pages=4)
    here, same, narrow = sorted(site.spaces)
    site.create_page(same, "Shared glossary", f"<p>The {OPEN} everywhere.</p>")
    closed = site.create_page(same, "Board minutes", f"<p>The {SECRET} minutes.</p>")
    _restrict(site, closed.id)
    site.create_page(narrow, "Payroll bands", "<p>The vermilion salary grid.</p>")
    site.restrict_space(narrow, [site.default_user, site.add_group("payroll")])  # fewer readers than `here`
    page = site.create_page(
        here,
        "Reading list",
        "<p>Read:</p>"
        + _include("Shared glossary", same)
        + _include("Board minutes", same)
        + _include("Payroll bands", narrow),
    )
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        for key in (same, narrow, here):
            sync_space(instance, resources, key)
        first = _text(db_state(migrated_db_url, here), page.id)
        _mirror_permissions(site, migrated_db_url, [here, same, narrow])
        _touch(site, page.id)
        sync_space(instance, resources, here)
        second = _text(db_state(migrated_db_url, here), page.id)
        site.allow_anonymous(narrow)  # now everyone may read it
        _mirror_permissions(site, migrated_db_url, [narrow])
        _touch(site, page.id)
        sync_space(instance, resources, here)
        third = db_state(migrated_db_url, here)
    assert SECRET not in first and "vermilion" not in first  # before the permissions are known
    assert OPEN in second and SECRET not in second and "vermilion" not in second
    assert second.count(WITHHELD) == 2
    text = _text(third, page.id)
    assert OPEN in text and "vermilion salary grid" in text and SECRET not in text
    assert third["metadata"][page.id]["withheld_references"] == 1


def _stage_listing(api: ConfluenceAPI, conn: psycopg.Connection, key: str, expand: str) -> None:
    sources.ensure_source(conn, key, base_url=api.site_base)
    rows = []
    for page in api.search_pages(space_pages_cql(key, None), expand=expand):
        version, when = page_version(page)
        rows.append(staging.staged_row(source_id_for(key), page, version, when, "new", None))
    with conn.transaction():
        staging.upsert_staged_pages(conn, rows)


def test_pages_staged_together_are_judged_by_the_restrictions_in_their_payload(migrated_db_url, site):
    """The first sync of a space: nothing stored, every page staged with its restriction expansion."""
    key = only_space(site)
    secret = site.create_page(key, SECRET_TITLE, f"<p>The {SECRET} is sealed.</p>")
    _restrict(site, secret.id)
    site.create_page(key, OPEN_TITLE, f"<p>The {OPEN} applies.</p>{_include(SECRET_TITLE)}")
    hub = site.create_page(
        key,
        "Programme hub",
        f"{_include(OPEN_TITLE)}{_include(SECRET_TITLE, macro='excerpt-include')}" + _macro("children"),
    )
    site.create_page(key, "Open annex", "<p>annex</p>", parent_id=hub.id)
    _restrict(site, site.create_page(key, "Closed annex", "<p>annex</p>", parent_id=hub.id).id)
    with sandbox_servers(site) as sb, psycopg.connect(migrated_db_url, autocommit=True) as conn:
        api = ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token)
        _stage_listing(api, conn, key, f"{PAGE_EXPAND},{RESTRICTIONS}")
        convert_step.convert_staged(
            conn, key, base_url=api.site_base, convert=convert_page, conversion_error=ConversionError
        )
        markdown = dict(
            conn.execute(
                "SELECT page_id, markdown FROM confluence_sync_staged_pages WHERE source_id = %s", (source_id_for(key),)
            ).fetchall()
        )
        meta = conn.execute("SELECT metadata FROM confluence_pages WHERE page_id = %s", (hub.id,)).fetchone()[0]
    text = markdown[hub.id]
    assert OPEN in text and "Open annex" in text  # from the staged storage and the children expansion
    assert SECRET not in text and "Closed annex" not in text and SECRET_TITLE not in text
    assert text.count(WITHHELD) == 2  # the excerpt-include, and the include inside the included page
    assert meta["withheld_references"] == 3
    assert meta["rendered_macros"] == [
        {"macro": "include", "source": "staged", "withheld": 1},  # the include in the included page
        {"macro": "excerpt-include", "source": "withheld", "withheld": 1},
        {"macro": "children", "source": "expansion", "withheld": 1},
    ]


def test_pages_staged_without_their_restrictions_show_nothing_of_each_other(migrated_db_url, site):
    key = only_space(site)
    site.create_page(key, OPEN_TITLE, f"<p>The {OPEN} applies.</p>")
    hub = site.create_page(key, "Programme hub", _include(OPEN_TITLE) + _macro("children"))
    site.create_page(key, "Open annex", "<p>annex</p>", parent_id=hub.id)
    with sandbox_servers(site) as sb, psycopg.connect(migrated_db_url, autocommit=True) as conn:
        api = ConfluenceAPI(sb.conf.url, email=sb.conf.email, api_token=sb.conf.api_token)
        _stage_listing(api, conn, key, PAGE_EXPAND)  # no restriction expansion, nothing stored: unknown
        convert_step.convert_staged(
            conn, key, base_url=api.site_base, convert=convert_page, conversion_error=ConversionError
        )
        text = conn.execute(
            "SELECT markdown FROM confluence_sync_staged_pages WHERE page_id = %s", (hub.id,)
        ).fetchone()[0]
    assert OPEN not in text and "Open annex" not in text and WITHHELD in text


def test_a_page_converted_without_sources_shows_nothing_of_other_pages():
    """convert_page on its own (no database): an export_view include and child list are not provable."""
    storage = _include("Other") + _macro("children") + _macro("contentbylabel", {"labels": "x"})
    view = (
        f'<div data-macro-name="include" class="conf-macro output-block"><p>{SECRET}</p></div>'
        '<ul data-macro-name="children"><li><a href="https://x.atlassian.net/wiki/spaces/K/pages/7/Kid">Kid</a></li></ul>'
        '<div data-macro-name="contentbylabel"><ul><li><a href="/wiki/spaces/K/pages/8/Labelled">Labelled</a></li>'
        "<li>No page here</li></ul></div>"
    )
    page = {
        "id": "5",
        "title": "P",
        "body": {"storage": {"value": storage}, "export_view": {"value": view}},
        "children": {"page": {"results": [{"id": "7", "title": "Kid"}], "_links": {}}},
    }
    result = convert_page(page, "https://x.atlassian.net/wiki")
    assert SECRET not in result.markdown and "Kid" not in result.markdown and "Labelled" not in result.markdown
    assert WITHHELD in result.markdown and "No page here" in result.markdown
    assert result.metadata["withheld_references"] == 3


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ('<a href="https://x.atlassian.net/wiki/spaces/K/pages/123/Title">t</a>', "123"),
        ('<a href="/wiki/spaces/K/pages/123">t</a>', "123"),
        ('<a href="/wiki/spaces/K/pages/edit-v2/77">t</a>', "77"),
        ('<a href="https://x.atlassian.net/wiki/pages/viewpage.action?pageId=45">t</a>', "45"),
        ('<a href="/wiki/download/attachments/99/file.pdf?api=v2">t</a>', "99"),
        ('<a href="/wiki/spaces/K/blog/2026/01/02/555/News">t</a>', "555"),
        ('<a href="/wiki/display/K/Some+Title">t</a>', ""),  # a page, its id unknown
        ('<a href="https://x.atlassian.net/wiki/x/AbCd">t</a>', ""),
        ('<span data-linked-resource-id="31" data-linked-resource-type="page">t</span>', "31"),
        (
            '<a data-linked-resource-id="att9" data-linked-resource-type="attachment"'
            ' data-linked-resource-container-id="32" href="/wiki/download/attachments/32/a.png">t</a>',
            "32",
        ),
        ('<a href="https://x.atlassian.net/wiki/people/557058:abc">t</a>', None),
        ('<a href="https://x.atlassian.net/browse/ZEP-1">t</a>', None),
        ('<a href="https://x.atlassian.net/wiki/spaces/K/overview">t</a>', None),
        ('<a href="https://elsewhere.example/wiki/spaces/K/pages/123/T">t</a>', None),
        ('<a href="#section">t</a>', None),
    ],
)
def test_page_references_in_a_rendering(markup, expected):
    tag = BeautifulSoup(markup, "html.parser").find(True)
    assert page_reference(tag, "x.atlassian.net") == expected


def test_withholding_drops_whole_entries_and_keeps_the_rest():
    markup = (
        '<div data-macro-name="detailssummary"><table><tr><th>Title</th><th>Owner</th></tr>'
        '<tr><td><a href="/wiki/spaces/K/pages/1/A">A</a></td><td>Ann</td></tr>'
        '<tr><td><a href="/wiki/spaces/K/pages/2/B">B</a></td><td>Bob</td></tr></table>'
        '<ul><li><a href="/wiki/spaces/K/pages/1/A">A</a>'
        '<ul><li><a href="/wiki/spaces/K/pages/3/C">C</a></li></ul></li>'
        '<li><a href="/wiki/display/K/D">D</a></li><li>plain</li></ul>'
        '<p>Ask <a href="/wiki/spaces/K/pages/4/E">E</a> or <a href="/wiki/people/u1">Ursula</a>.</p></div>'
    )
    el = BeautifulSoup(markup, "html.parser").find(True)
    asked: list[set[str]] = []

    def readable(ids):
        asked.append(set(ids))
        return {"1"}

    part, withheld = withhold(el, readable, "x.atlassian.net")
    text = part.get_text(" ")
    assert asked == [{"1", "2", "3", "4"}]
    assert "Ann" in text and "Bob" not in text and "Title" in text  # the header row has no page link
    assert "C" not in text.split() and "D" not in text.split() and "plain" in text
    assert "E" not in text.split() and "Ursula" in text and "Ask" in text  # a link outside entries: itself
    assert withheld == 4  # B's row, C's item, D's item, E's link
    assert "Bob" in el.get_text()  # the rendering itself is left as it was
