"""The code location as a user sees it: one loadable Definitions, the asset graph, resources by EnvVar."""

from __future__ import annotations

import dagster as dg
import pytest

from confluence_assets.sandbox import Site, generate_corpus
from confluence_assets_tests.pipeline_support import (
    assert_matches_site,
    asset_metadata,
    confluence_spaces,
    discover_spaces,
    resources_for,
    sandbox_servers,
    sync_space,
)

GRAPH = ["confluence_spaces", "changed_pages", "page_metadata", "page_attachments", "page_chunks", "chunk_embeddings"]


@pytest.fixture
def defs(monkeypatch):
    monkeypatch.setenv("CONFLUENCE_URL", "https://example.atlassian.net/wiki")
    monkeypatch.setenv("CONFLUENCE_EMAIL", "bot@example.com")
    monkeypatch.setenv("CONFLUENCE_API_TOKEN", "ATATT-sekrit-0099")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sekrit-0099")
    monkeypatch.delenv("CONFLUENCE_PAT", raising=False)
    from confluence_assets.definitions import load_definitions

    with dg.instance_for_test():  # loading the defs folder consults the current instance
        return load_definitions()  # the settings are read as the definitions load


def test_definitions_load_with_the_asset_graph_in_order(defs):
    with dg.instance_for_test():  # loading consults the current instance
        dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(GRAPH) <= keys
    for upstream, downstream in zip(GRAPH, GRAPH[1:], strict=False):
        parents = {p.to_user_string() for p in graph.get(dg.AssetKey(downstream)).parent_keys}
        assert upstream in parents, (upstream, downstream)
    for key in GRAPH:
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == "confluence" and node.description and node.kinds
    for key in GRAPH[1:]:
        assert graph.get(dg.AssetKey(key)).partitions_def.name == "confluence_spaces"
    # The permission refreshes: page_permissions per space beside changed_pages, confluence_groups after it.
    permissions = graph.get(dg.AssetKey("page_permissions"))
    assert permissions.partitions_def.name == "confluence_spaces" and permissions.group_name == "confluence"
    assert {p.to_user_string() for p in permissions.parent_keys} == {"confluence_spaces"}
    # What a refresh stages again (pages withdrawn or moved) page_metadata converts after it.
    assert "page_permissions" in {p.to_user_string() for p in graph.get(dg.AssetKey("page_metadata")).parent_keys}
    groups = graph.get(dg.AssetKey("confluence_groups"))
    assert groups.partitions_def is None and groups.group_name == "confluence" and groups.description
    assert {p.to_user_string() for p in groups.parent_keys} == {"page_permissions"}
    jobs = {j.name: j for j in defs.resolve_all_job_defs()}
    assert {"confluence_sync_job", "confluence_spaces_job", "confluence_permissions_job"} <= set(jobs)
    reconciliation = {k.to_user_string() for k in jobs["confluence_reconciliation_job"].asset_layer.selected_asset_keys}
    assert "page_permissions" in reconciliation  # a reconciliation leaves permissions fresh
    schedules = {s.name for s in defs.schedules}
    assert schedules == {"confluence_reconciliation_schedule", "confluence_permissions_schedule"}
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("chunk_embeddings")}
    assert checks == {
        "every_live_page_has_chunks",
        "every_chunk_embedded",
        "no_orphan_chunks",
        "embedding_model_matches",
        "watermark_current",
    }
    for key in graph.asset_check_keys:  # each check says what it guarantees, in the UI
        assert graph.get_check_spec(key).description, key


def test_runs_execute_their_steps_in_the_run_worker(defs):
    # A step per subprocess cost 3-4 s of imports each before any work; the chain gains nothing from it.
    for job in defs.resolve_all_job_defs():  # the sync jobs and the implicit job behind "Materialize"
        assert job.executor_def.name == "in_process", job.name
    retries = dg.in_process_executor.config_schema.config_type.fields["retries"].default_value
    assert retries == {"enabled": {}}  # step RetryPolicy is honoured in process


def test_secrets_are_wired_as_env_vars_not_values(defs):
    confluence = defs.resources["confluence"]
    embeddings = defs.resources["embeddings"]
    # What the UI shows is the resource's config: variable names, never values.
    shown = repr(confluence._get_non_default_public_field_values()) + repr(  # noqa: SLF001
        embeddings._get_non_default_public_field_values()  # noqa: SLF001
    )
    assert "ATATT-sekrit-0099" not in shown and "sk-sekrit-0099" not in shown
    assert isinstance(confluence.api_token, dg.EnvVar) and confluence.api_token.env_var_name == "CONFLUENCE_API_TOKEN"
    assert isinstance(embeddings.api_key, dg.EnvVar)
    assert confluence.personal_access_token is None  # unset optional variables are not wired


def test_a_personal_space_is_a_partition_and_syncs(migrated_db_url):
    site = Site(timezone="Asia/Seoul")
    generate_corpus(site, seed=4, spaces=1, pages_per_space=5, large_pages=0, empty_pages=0)
    site.add_space("~alice", "Alice Example", homepage_body="<p>Alice's notes on the zeppelin hangar.</p>")
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, migrated_db_url, space_selection={"space_types": ["global", "personal"]})
        discovered = discover_spaces(instance, resources)
        assert "~alice" in instance.get_dynamic_partitions("confluence_spaces")
        assert "~alice" in asset_metadata(discovered, "confluence_spaces")["partitions_added"]
        assert sync_space(instance, resources, "~alice").success
    assert_matches_site(site, migrated_db_url, "~alice")


def test_only_global_spaces_by_default_and_excludes_apply(migrated_db_url):
    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=4, spaces=3, pages_per_space=2, large_pages=0, empty_pages=0)
    site.add_space("~bob", "Bob")
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        excluded = info.space_keys[1]
        resources = resources_for(sb, migrated_db_url, space_selection={"exclude_keys": [excluded]})
        discover_spaces(instance, resources)
        assert sorted(instance.get_dynamic_partitions("confluence_spaces")) == sorted(
            k for k in info.space_keys if k != excluded
        )
        # A space no longer selected loses its partition; its data stays until a user deletes it.
        resources = resources_for(sb, migrated_db_url, space_selection={"include_keys": [info.space_keys[0]]})
        result = discover_spaces(instance, resources)
        assert instance.get_dynamic_partitions("confluence_spaces") == [info.space_keys[0]]
        assert sorted(asset_metadata(result, "confluence_spaces")["partitions_removed"]) == sorted([info.space_keys[2]])


def test_an_invalid_include_key_fails_clearly(migrated_db_url):
    site = Site(timezone="Asia/Seoul")
    generate_corpus(site, seed=4, spaces=1, pages_per_space=2, large_pages=0, empty_pages=0)
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, migrated_db_url, space_selection={"include_keys": ['ENG" OR space != "X']})
        with pytest.raises(Exception, match="invalid Confluence space key"):
            dg.materialize(
                [confluence_spaces],
                instance=instance,
                resources=resources,
            )
        assert sb.conf.stats.total == 0  # rejected before any request
