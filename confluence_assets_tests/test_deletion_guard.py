"""Guardrails at scale: a reconciliation that would delete most of a space waits for a confirmation (the
service account losing access looks exactly like deletions), and chunk_embeddings has a freshness policy.

The guard is shown end to end: a synced sandbox space, the service account then restricted out of most of
it (read restrictions on pages, inherited by their subtrees, as Confluence does), page_reconciliation
through the real assets and the embedded PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import psycopg
import pytest

from confluence_assets import settings
from confluence_assets.confluence.keys import source_id_for
from confluence_assets.defs.assets import build_assets
from confluence_assets.defs.checks import MASS_DELETION_CHECK
from confluence_assets.settings import MassDeletionSettings
from confluence_assets.sync import sources
from confluence_assets.sync.deletion_guard import exceeds
from confluence_assets_tests.pipeline_support import (
    ASSETS,
    asset_metadata,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

CONFIRM = {"ops": {"page_reconciliation": {"config": {"confirm_mass_deletion": True}}}}


def _stored(db_url: str, key: str) -> tuple[set[str], set[str], set[str]]:
    """(live page ids, deleted page ids, ids of pages with chunks) of the space."""
    with psycopg.connect(db_url) as conn:
        pages = conn.execute("SELECT page_id, is_deleted FROM confluence_pages WHERE space_key = %s", (key,)).fetchall()
        chunked = {
            pid
            for (pid,) in conn.execute(
                "SELECT DISTINCT metadata->>'page_id' FROM archon_crawled_pages WHERE metadata->>'space_key' = %s",
                (key,),
            )
        }
    return {p for p, deleted in pages if not deleted}, {p for p, deleted in pages if deleted}, chunked


def _mass_deletion_check(result: dg.ExecuteInJobResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == MASS_DELETION_CHECK]
    return evaluation


def _hide_most_of_the_space(site, key: str) -> set[str]:
    """Read-restrict pages to someone else until the service account sees under a third of the space."""
    service = site.default_user.account_id
    other = site.add_user("Someone Else", email="else@example.com").account_id
    live = [p.id for p in site.live_pages(key)]
    for pid in live[1:]:  # not the first: the space keeps a page the service account reads
        if len(site.readable_page_ids(service, key)) < len(live) / 3:
            break
        site.restrict_page(pid, [other])
    return set(live) - site.readable_page_ids(service, key)


def test_losing_access_to_most_of_a_space_deletes_nothing_until_confirmed(migrated_db_url):
    site = generated_site(47, pages=30)
    key = only_space(site)
    with dg.DagsterInstance.ephemeral() as instance, sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        live_before, _, chunked_before = _stored(migrated_db_url, key)
        hidden = _hide_most_of_the_space(site, key)
        assert len(hidden) > max(10, 0.2 * len(live_before))  # beyond the default limit: 20 %, more than 10

        # page_metadata after it, as in the reconciliation job: the failed blocking check stops the run there.
        held = dg.materialize(
            [ASSETS.page_reconciliation, ASSETS.page_metadata],
            partition_key=key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
            selection=[ASSETS.page_reconciliation.key, ASSETS.page_metadata.key],
        )
        assert not held.success
        check = _mass_deletion_check(held)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        shown = {k: v.value for k, v in check.metadata.items()}
        assert (shown["would_delete"], shown["live_pages"]) == (len(hidden), len(live_before))
        assert shown["limit"] == "20 %" and f"would delete {len(hidden)} of {len(live_before)}" in check.description
        sample = shown["sample"]
        assert sample and {s["page_id"] for s in sample} <= hidden and all(s["title"] for s in sample)
        assert not held.asset_materializations_for_node("page_metadata")  # downstream did not run
        assert asset_metadata(held, "page_reconciliation")["deletions_held_back"] == len(hidden)
        live, deleted, chunked = _stored(migrated_db_url, key)
        assert (live, deleted, chunked) == (live_before, set(), chunked_before)  # nothing deleted, no chunk removed

        confirmed = dg.materialize(
            [ASSETS.page_reconciliation], partition_key=key, instance=instance, resources=resources, run_config=CONFIRM
        )
    assert confirmed.success
    check = _mass_deletion_check(confirmed)
    assert check.passed and check.metadata["deleted"].value == len(hidden)
    assert asset_metadata(confirmed, "page_reconciliation")["deleted"] == len(hidden)
    live, deleted, chunked = _stored(migrated_db_url, key)
    assert deleted == hidden and live == live_before - hidden and not chunked & hidden


def test_a_sync_that_reconciles_every_time_holds_its_deletions_back_too(migrated_db_url):
    site = generated_site(48, pages=30)
    key = only_space(site)
    with dg.DagsterInstance.ephemeral() as instance, sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            sources.set_deletion_strategy(conn, source_id_for(key), sources.EVERY_SYNC)
        live_before, _, _ = _stored(migrated_db_url, key)
        hidden = _hide_most_of_the_space(site, key)
        held = sync_space(instance, resources, key, raise_on_error=False)
        assert not held.success and not held.asset_materializations_for_node("page_metadata")
        check = _mass_deletion_check(held)
        assert not check.passed and check.metadata["would_delete"].value == len(hidden)
        assert _stored(migrated_db_url, key)[:2] == (live_before, set())
        confirm = {"ops": {"changed_pages": {"config": {"confirm_mass_deletion": True}}}}
        assert sync_space(instance, resources, key, run_config=confirm).success
    assert _stored(migrated_db_url, key)[1] == hidden


def test_the_limit_is_a_share_above_a_floor_or_a_number_of_pages():
    share = MassDeletionSettings()  # 20 %, never at 10 deletions or fewer
    assert not exceeds(share, 10, 12) and exceeds(share, 11, 50) and not exceeds(share, 11, 60)
    assert not exceeds(share, 0, 0)
    pages = MassDeletionSettings(percent=None, pages=100)
    assert not exceeds(pages, 100, 100) and exceeds(pages, 101, 10_000)
    assert settings.load({settings.CONFLUENCE_MASS_DELETION_LIMIT: "500"}).mass_deletion.pages == 500
    assert settings.load({settings.CONFLUENCE_MASS_DELETION_LIMIT: "5%"}).mass_deletion.percent == 5
    with pytest.raises(
        settings.SettingsError, match="CONFLUENCE_MASS_DELETION_LIMIT must be a share of a space.s live pages"
    ):
        settings.load({settings.CONFLUENCE_MASS_DELETION_LIMIT: "most"})


def test_chunk_embeddings_is_fresh_for_the_sensor_interval_plus_a_margin():
    loaded = settings.load(
        {
            settings.CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS: "900",
            settings.CONFLUENCE_FRESHNESS_MARGIN_SECONDS: "1800",
        }
    )
    spec = build_assets(loaded).chunk_embeddings.specs_by_key[dg.AssetKey("chunk_embeddings")]
    policy = spec.freshness_policy
    assert isinstance(policy, dg.FreshnessPolicy)
    assert policy.fail_window.to_timedelta() == timedelta(minutes=45)  # the interval plus the margin
    assert policy.warn_window.to_timedelta() == timedelta(minutes=15)  # one interval without a sync
    default = ASSETS.chunk_embeddings.specs_by_key[dg.AssetKey("chunk_embeddings")].freshness_policy
    assert default.fail_window.to_timedelta() == timedelta(hours=2)
