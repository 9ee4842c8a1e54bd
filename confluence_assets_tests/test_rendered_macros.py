"""Macros whose text exists only when rendered (Jira issue tables, excerpts included from other pages,
child lists, page properties reports), through the real pipeline: sandbox Confluence rendering them
into ``body.export_view`` / ``body.view``, real Dagster runs, the embedded PostgreSQL, and search."""

from __future__ import annotations

import html
from contextlib import contextmanager

import dagster as dg
import pytest
from atlassian import Confluence

from confluence_assets import settings
from confluence_assets.content import convert_page
from confluence_assets.content.macro_scan import INCLUDES, VIEW_ONLY
from confluence_assets.db.connection import connect
from confluence_assets.defs.resources import build_resources
from confluence_assets.embeddings import Embedder
from confluence_assets.sandbox import Site
from confluence_assets.search import SearchService
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    asset_metadata,
    db_state,
    generated_site,
    only_space,
    page_reconciliation,
    resources_for,
    sandbox_servers,
    sync_space,
)

JIRA_PHRASE = "quokka turbine manifold"
EXCERPT_PHRASE = "zorbulent widget hums"
CHILD_TITLE = "Marmoset platform squad"
OWNER = "Vasquerel Ondine"


def _macro(name: str, params: dict[str, str] | None = None, body: str | None = None, mid: str = "") -> str:
    inner = "".join(f'<ac:parameter ac:name="{k}">{v}</ac:parameter>' for k, v in (params or {}).items())
    if body is not None:
        inner += f"<ac:rich-text-body>{body}</ac:rich-text-body>"
    macro_id = f' ac:macro-id="{mid}"' if mid else ""
    return f'<ac:structured-macro ac:name="{name}" ac:schema-version="1"{macro_id}>{inner}</ac:structured-macro>'


def _page_link(title: str) -> str:
    return f'<ac:link><ri:page ri:content-title="{html.escape(title)}" /></ac:link>'


def _details(props: dict[str, str]) -> str:
    rows = "".join(f"<tr><th><p>{k}</p></th><td><p>{v}</p></td></tr>" for k, v in props.items())
    return _macro("details", {}, f"<table><tbody>{rows}</tbody></table>")


def _populate(site: Site) -> dict[str, str]:
    key = only_space(site)
    site.jira.add_issue("ZEP-1", f"Recalibrate the {JIRA_PHRASE}", status="In Progress")
    site.jira.add_issue("ZEP-2", "Retire the heliograph relay")
    site.jira.add_issue("OTH-9", "Another project's issue")
    jql = _macro(
        "jira", {"server": "System JIRA", "jqlQuery": "project = ZEP ORDER BY key", "columns": "key,summary,status"}
    )
    ids = {}
    ids["dashboard"] = site.create_page(key, "Release dashboard", f"<p>Open work this release:</p>{jql}").id
    ids["glossary"] = site.create_page(
        key,
        "Glossary of terms",
        "<p>Terms we use.</p>" + _macro("excerpt", {}, f"<p>A {EXCERPT_PHRASE} at 40 hertz.</p>"),
    ).id
    ids["handbook"] = site.create_page(
        key,
        "Widget handbook",
        "<p>What a widget is:</p>" + _macro("excerpt-include", {"": _page_link("Glossary of terms")}),
    ).id
    hub = site.create_page(key, "Team hub", "<p>Our teams:</p>" + _macro("children", {"all": "true"}))
    ids["hub"] = hub.id
    site.create_page(key, CHILD_TITLE, "<p>The squad page.</p>", parent_id=hub.id)
    site.create_page(key, "Ocelot data squad", "<p>Another squad.</p>", parent_id=hub.id)
    site.create_page(
        key, "Adopt the kestrel queue", _details({"Owner": OWNER, "Status": "Accepted"}), labels=["decision"]
    )
    site.create_page(
        key, "Drop the legacy cron", _details({"Owner": "Pim Larsson", "Status": "Proposed"}), labels=["decision"]
    )
    ids["report"] = site.create_page(
        key, "Decision log", "<p>All decisions:</p>" + _macro("detailssummary", {"label": "decision"})
    ).id
    return ids


@pytest.fixture
def site() -> Site:
    return generated_site(23, pages=12)


@contextmanager
def _synced_once(site: Site, db_url: str, instance: dg.DagsterInstance):
    """The sandbox servers over the populated site, synced once: (page ids, space key, servers, resources)."""
    ids = _populate(site)
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, db_url)
        sync_space(instance, resources, key)
        yield ids, key, sb, resources


def _top3(db_url: str, sb, query: str) -> list[str]:
    embedder = Embedder(model="text-embedding-3-small", dimensions=1536, api_key=sb.emb.api_key, base_url=sb.emb.url)
    with SearchService(connect(db_url, autocommit=True), embedder) as service:
        return [r.page_id for r in service.search(query, limit=3)]


def _text(state: dict, page_id: str) -> str:
    return "\n".join(c[1] for c in state["chunks"][page_id])


def test_rendered_parts_are_searchable_and_cost_one_request(migrated_db_url, instance, site):
    ids = _populate(site)
    key = only_space(site)
    with sandbox_servers(site) as sb:
        result = sync_space(instance, resources_for(sb, migrated_db_url), key)
        state = db_state(migrated_db_url, key)
        for query, page in (
            (JIRA_PHRASE, "dashboard"),
            (EXCERPT_PHRASE, "handbook"),
            (CHILD_TITLE, "hub"),
            (OWNER, "report"),
        ):
            assert ids[page] in _top3(migrated_db_url, sb, query), (query, page)
        searches = sb.conf.stats[SEARCH]
        jira_root = sb.conf.url.removesuffix("/wiki")
    assert "ZEP-1" in _text(state, ids["dashboard"]) and "OTH-9" not in _text(state, ids["dashboard"])
    assert EXCERPT_PHRASE in _text(state, ids["handbook"])
    assert OWNER in _text(state, ids["report"]) and "Pim Larsson" in _text(state, ids["report"])
    meta = asset_metadata(result, "changed_pages")
    # The dashboard and the report need Confluence's rendering: one `id in (...)` request for both. The
    # excerpt and the child list resolve from the staged pages and the children expansion.
    assert (meta["rendered_pages"], meta["rendering_requests"]) == (2, 1)
    comments = asset_metadata(result, "page_attachments")["comment_requests"]  # page_attachments' own search
    assert searches - comments == 2 and comments == 1  # the listing and the rendering
    assert state["source"]["sync_metrics"]["rendering_requests"] == 1
    dashboard = state["metadata"][ids["dashboard"]]
    assert {"issue_key": "ZEP-1", "issue_url": f"{jira_root}/browse/ZEP-1"} in dashboard["jira_issue_links"]
    assert dashboard["rendered_macros"] == [{"macro": "jira", "source": "export_view"}]
    assert state["metadata"][ids["handbook"]]["includes"][0]["title"] == "Glossary of terms"
    assert state["metadata"][ids["glossary"]]["excerpts"] == {"": f"A {EXCERPT_PHRASE} at 40 hertz."}


def test_a_no_change_resync_costs_one_request(migrated_db_url, instance, site):
    with _synced_once(site, migrated_db_url, instance) as (_, key, sb, resources):
        before = sb.conf.stats.total
        result = sync_space(instance, resources, key)
        assert sb.conf.stats.total - before == 1
    meta = asset_metadata(result, "changed_pages")
    assert (meta["rendering_requests"], meta["dependent_requests"]) == (0, 0)


def test_changing_the_included_page_updates_the_including_page_in_the_same_run(migrated_db_url, instance, site):
    with _synced_once(site, migrated_db_url, instance) as (ids, key, sb, resources):
        new_body = "<p>Terms we use.</p>" + _macro("excerpt", {}, "<p>A gribbly sprocket whistles softly.</p>")
        site.edit_page(ids["glossary"], body=new_body)
        site.create_page(key, "Quetzal research squad", "<p>New squad.</p>", parent_id=ids["hub"])
        before = sb.conf.stats.total
        result = sync_space(instance, resources, key)
        spent = sb.conf.stats.total - before
        state = db_state(migrated_db_url, key)
        assert ids["handbook"] in _top3(migrated_db_url, sb, "gribbly sprocket whistles")
    handbook, hub = _text(state, ids["handbook"]), _text(state, ids["hub"])
    assert "gribbly sprocket" in handbook and EXCERPT_PHRASE not in handbook
    assert "Quetzal research squad" in hub and CHILD_TITLE in hub
    meta = asset_metadata(result, "changed_pages")
    # The listing, then one request for both dependents (the including page and the new child's parent).
    assert (meta["dependent_pages_requeued"], meta["dependent_requests"], meta["rendering_requests"]) == (2, 1, 0)
    assert spent - asset_metadata(result, "page_attachments")["comment_requests"] == 2
    assert state["pages"][ids["handbook"]]["indexed_version"] == site.page(ids["handbook"]).version
    assert state["staged"] == 0


def test_an_excerpt_include_resolves_from_the_stored_excerpt(migrated_db_url, instance, site):
    with _synced_once(site, migrated_db_url, instance) as (ids, key, sb, resources):
        body = "<p>What a widget is, again:</p>" + _macro("excerpt-include", {"": _page_link("Glossary of terms")})
        site.edit_page(ids["handbook"], body=body)
        result = sync_space(instance, resources, key)
        state = db_state(migrated_db_url, key)
    assert "again" in _text(state, ids["handbook"]) and EXCERPT_PHRASE in _text(state, ids["handbook"])
    assert asset_metadata(result, "changed_pages")["rendering_requests"] == 0
    assert state["metadata"][ids["handbook"]]["rendered_macros"] == [{"macro": "excerpt-include", "source": "stored"}]


def test_rendering_is_configurable_per_macro_kind(migrated_db_url, instance, site):
    ids = _populate(site)
    key = only_space(site)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, confluence={"rendered_macros": ["detailssummary"]})
        result = sync_space(instance, resources, key)
        state = db_state(migrated_db_url, key)
    assert JIRA_PHRASE not in _text(state, ids["dashboard"]) and OWNER in _text(state, ids["report"])
    meta = asset_metadata(result, "changed_pages")
    assert (meta["rendered_pages"], meta["rendering_requests"]) == (1, 1)
    assert state["metadata"][ids["dashboard"]]["rendered_macros"] == [{"macro": "jira", "source": "unresolved"}]


def test_the_sandbox_renders_export_view_and_view_for_atlassian_python_api(site):
    ids = _populate(site)
    with sandbox_servers(site) as sb:
        client = Confluence(sb.conf.url, username=sb.conf.email, password=sb.conf.api_token, cloud=True)
        page = client.get_page_by_id(ids["dashboard"], expand="body.export_view,body.view,body.storage")
        export, view = page["body"]["export_view"], page["body"]["view"]
        root = sb.conf.url.removesuffix("/wiki")
        assert export["representation"] == "export_view" and view["representation"] == "view"
        assert 'data-macro-name="jira"' in export["value"] and JIRA_PHRASE in export["value"]
        assert f'href="{root}/browse/ZEP-1"' in export["value"] and f'href="{root}/browse/ZEP-1"' in view["value"]
        assert "ac:structured-macro" in page["body"]["storage"]["value"]
        handbook = client.get_page_by_id(ids["handbook"], expand="body.export_view")["body"]["export_view"]["value"]
        assert 'data-macro-name="excerpt-include"' in handbook and EXCERPT_PHRASE in handbook
        assert "Glossary of terms" in handbook  # the panel's title
        hub = client.get_page_by_id(ids["hub"], expand="body.export_view")["body"]["export_view"]["value"]
        assert 'class="childpages-macro conf-macro output-block"' in hub and CHILD_TITLE in hub
        report = client.get_page_by_id(ids["report"], expand="body.view")["body"]["view"]["value"]
        assert 'data-macro-name="detailssummary"' in report and OWNER in report and "Pim Larsson" in report
        assert 'href="/wiki/spaces/' in report and sb.conf.url not in report  # view: relative page links
        # What LangChain's ConfluenceLoader (ContentFormat.EXPORT_VIEW) and LlamaIndex's reader ask for.
        listed = client.get_all_pages_from_space(only_space(site), start=0, limit=100, expand="body.export_view")
        by_id = {p["id"]: p["body"]["export_view"]["value"] for p in listed}
        assert JIRA_PHRASE in by_id[ids["dashboard"]] and OWNER in by_id[ids["report"]]
        plain = site.page_by_title(only_space(site), "Ocelot data squad")
        assert by_id[plain.id] == plain.body  # nothing to render: the markup as stored


def test_a_converted_page_takes_the_rendered_part_by_macro_id_and_keeps_table_cells_whole():
    storage = (
        "<table><tbody><tr><td><p>Issues:</p></td><td>"
        + _macro("jira", {"jqlQuery": "project = A"}, mid="m-2")
        + "</td></tr></tbody></table>"
        + _macro("jira", {"jqlQuery": "project = B"}, mid="m-1")
    )
    view = (
        '<div class="conf-macro output-block" data-macro-id="m-1" data-macro-name="jira">'
        "<table><tbody><tr><th>Key</th><th>Summary</th></tr>"
        '<tr><td><a href="https://x.atlassian.net/browse/B-1">B-1</a></td><td>Bee work</td></tr></tbody></table></div>'
        '<span class="conf-macro output-inline" data-macro-id="m-2" data-macro-name="jira">'
        '<a href="https://x.atlassian.net/browse/A-7">A-7</a> Ant work</span>'
    )
    page = {"id": "5", "title": "P", "body": {"storage": {"value": storage}, "export_view": {"value": view}}}
    result = convert_page(page, "https://x.atlassian.net/wiki")
    assert "| Issues: | [A-7](https://x.atlassian.net/browse/A-7) Ant work |" in result.markdown
    assert "| [B-1](https://x.atlassian.net/browse/B-1) | Bee work |" in result.markdown
    assert [j["issue_key"] for j in result.metadata["jira_issue_links"]] == ["A-7", "B-1"]
    # Without the rendering, a JQL table is dropped as before.
    bare = convert_page(
        {"id": "5", "title": "P", "body": {"storage": {"value": storage}}}, "https://x.atlassian.net/wiki"
    )
    assert "B-1" not in bare.markdown and "rendered_macros" in bare.metadata


def test_the_setting_names_the_macro_kinds():
    assert settings.load({}).confluence.rendered_macros == settings.DEFAULT_RENDERED_MACROS
    assert set(settings.RENDERABLE_MACROS) == set(VIEW_ONLY) | set(INCLUDES)
    chosen = settings.load({settings.CONFLUENCE_RENDERED_MACROS: "Jira, detailssummary"})
    assert chosen.confluence.rendered_macros == ("jira", "detailssummary")
    assert settings.load({settings.CONFLUENCE_RENDERED_MACROS: "none"}).confluence.rendered_macros == ()
    with pytest.raises(settings.SettingsError, match="CONFLUENCE_RENDERED_MACROS names unknown values"):
        settings.load({settings.CONFLUENCE_RENDERED_MACROS: "jira,toc"})
    resources = build_resources(chosen)
    assert resources["confluence"].rendered_macros == ["jira", "detailssummary"]


def test_a_child_list_of_another_page_comes_from_the_staged_and_stored_tree(migrated_db_url, instance, site):
    key = only_space(site)
    parent = site.create_page(key, "Guild directory", "<p>Guilds.</p>")
    site.create_page(key, "Lapwing guild", "<p>one</p>", parent_id=parent.id)
    index = site.create_page(
        key, "Guild index", "<p>See:</p>" + _macro("children", {"page": _page_link("Guild directory")})
    )
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        sync_space(instance, resources, key)  # the children are staged with it: the staged tree
        first = _text(db_state(migrated_db_url, key), index.id)
        site.create_page(key, "Plover guild", "<p>two</p>", parent_id=parent.id)
        site.edit_page(index.id, body="<p>See all:</p>" + _macro("children", {"page": _page_link("Guild directory")}))
        sync_space(instance, resources, key)  # Lapwing stored, Plover staged
        state = db_state(migrated_db_url, key)
    assert "Lapwing guild" in first
    second = _text(state, index.id)
    assert "Lapwing guild" in second and "Plover guild" in second and second.index("Lapwing") < second.index("Plover")
    assert state["metadata"][index.id]["rendered_macros"] == [{"macro": "children", "source": "tree"}]


def test_a_move_found_by_reconciliation_updates_the_old_parents_child_list(migrated_db_url, instance, site):
    with _synced_once(site, migrated_db_url, instance) as (ids, key, sb, resources):
        squad = site.page_by_title(key, "Ocelot data squad")
        assert "Ocelot data squad" in _text(db_state(migrated_db_url, key), ids["hub"])
        site.move_page(squad.id, ids["glossary"])  # no new version: only reconciliation sees it
        result = dg.materialize([page_reconciliation], partition_key=key, instance=instance, resources=resources)
        sync_space(instance, resources, key)
        state = db_state(migrated_db_url, key)
    meta = asset_metadata(result, "page_reconciliation")
    assert (meta["requeued"], meta["dependent_pages_requeued"]) == (1, 1)
    assert "Ocelot data squad" not in _text(state, ids["hub"]) and CHILD_TITLE in _text(state, ids["hub"])
    assert state["staged"] == 0
