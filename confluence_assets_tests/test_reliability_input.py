"""Issue 8, hostile and bad input: injection attempts, pathological pages and wrong settings, through real
runs. Injections are rejected before any request or stored as inert text; every bad page either lands or
is recorded as failed with its reason while the rest of the space lands; wrong settings fail the run with
one line that names what to fix."""

from __future__ import annotations

import random
import resource
import time

import dagster as dg
import psycopg
import pytest

from confluence_assets.confluence.cql import quote, space_pages_cql
from confluence_assets.confluence.keys import InvalidSpaceKeyError
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME
from confluence_assets.sandbox import Site
from confluence_assets_tests.pipeline_support import (
    SEARCH,
    confluence_spaces,
    db_state,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    step_failure_message,
    sync_space,
)

CQL_INJECTION = 'KEY" OR space != "X'


@pytest.fixture
def site() -> Site:
    return generated_site(17, pages=20)


def _outcomes(db_url: str, space_key: str, page_ids: list[str]) -> dict[str, str]:
    """landed (a live row with chunks) | failed: <reason> (recorded in staging) | missing."""
    out = {}
    with psycopg.connect(db_url) as conn:
        for pid in page_ids:
            chunks = conn.execute(
                "SELECT count(*) FROM archon_crawled_pages WHERE metadata->>'page_id' = %s", (pid,)
            ).fetchone()[0]
            failed = conn.execute(
                "SELECT error FROM confluence_sync_staged_pages WHERE page_id = %s AND stage = 'failed'", (pid,)
            ).fetchone()
            out[pid] = "landed" if chunks else f"failed: {failed[0]}" if failed and failed[0] else "missing"
    return out


def _assert_rest_landed(site: Site, db_url: str, key: str, hostile: set[str]) -> None:
    state = db_state(db_url, key)
    others = {p.id for p in site.live_pages(key)} - hostile
    assert others <= set(state["chunks"]), f"pages that did not land: {sorted(others - set(state['chunks']))[:5]}"
    for pid in others:
        row = state["pages"][pid]
        assert row["indexed_version"] == site.snapshot(pid).version and not row["is_deleted"]


# ---------------------------------------------------------------------------------------------- injection


def test_cql_injection_in_a_space_key_is_rejected_before_any_request(migrated_db_url, instance, site):
    with pytest.raises(InvalidSpaceKeyError):
        space_pages_cql(CQL_INJECTION)
    assert quote('a" OR space != "X') == '"a\\" OR space != \\"X"'  # a value is one literal, always
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        # As a partition key (a hand-added partition, a crafted run request) ...
        result = sync_space(instance, resources, CQL_INJECTION, raise_on_error=False)
        assert not result.success and "invalid Confluence space key" in step_failure_message(result)
        # ... and in the space selection.
        selection = {"include_keys": [CQL_INJECTION, only_space(site)], "exclude_keys": [CQL_INJECTION]}
        spaces = dg.materialize(
            [confluence_spaces],
            instance=instance,
            resources=resources_for(sb, migrated_db_url, space_selection=selection),
            raise_on_error=False,
        )
        searches = sb.conf.stats[SEARCH]
    assert searches == 0  # nothing was sent for the injected key
    if spaces.success:
        assert CQL_INJECTION not in instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME)
    else:
        assert "space key" in step_failure_message(spaces)


def test_a_site_time_zone_with_cql_in_it_is_rejected(migrated_db_url, instance, site):
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url, confluence={"site_timezone": 'Asia/Seoul" OR space != "X'})
        result = sync_space(instance, resources, only_space(site), raise_on_error=False)
        assert sb.conf.stats[SEARCH] == 0
    assert not result.success and "unknown time zone" in step_failure_message(result)


SQL_TEXTS = [
    "Robert'); DROP TABLE confluence_pages; --",
    "x' OR '1'='1",
    "%s %(page_id)s {col} $1 $$ ; DELETE FROM archon_crawled_pages; $$",
    "\\'; TRUNCATE archon_sources CASCADE; --",
]


def test_sql_injection_in_titles_labels_and_bodies_is_stored_as_inert_text(migrated_db_url, instance, site):
    key = only_space(site)
    home = site.live_pages(key)[0].id
    created = []
    for i, text in enumerate(SQL_TEXTS):
        page = site.create_page(key, text, f"<p>{text}</p><p>body {i} of the injection page</p>", parent_id=home)
        site.add_label(page.id, text.replace(" ", "_")[:60])
        created.append((page.id, text))
    with sandbox_servers(site) as sb:
        result = sync_space(instance, resources_for(sb, migrated_db_url), key)
    assert result.success
    state = db_state(migrated_db_url, key)
    assert len(state["pages"]) == len(site.live_pages(key))  # no table dropped, no row lost
    with psycopg.connect(migrated_db_url) as conn:
        for pid, text in created:
            title, labels = conn.execute(
                "SELECT title, metadata->'labels' FROM confluence_pages WHERE page_id = %s", (pid,)
            ).fetchone()
            assert title == text and text.replace(" ", "_")[:60].lower() in labels  # Confluence lowercases labels
            contents = " ".join(c[1] for c in state["chunks"][pid])
            assert text in contents
        assert conn.execute("SELECT count(*) FROM archon_sources").fetchone()[0] == 1


def test_path_traversal_in_attachment_names_is_inert_text(migrated_db_url, instance, site):
    key = only_space(site)
    page = site.live_pages(key)[2]
    names = ["../../../../etc/passwd", "..\\..\\windows\\system32\\config", "%2e%2e%2fsecret.txt"]
    for name in names:
        site.add_attachment(page.id, name)
    body = page.body + "".join(f'<ac:image><ri:attachment ri:filename="{n}"/></ac:image>' for n in names)
    site.edit_page(page.id, body=body)
    with sandbox_servers(site) as sb:
        sync_space(instance, resources_for(sb, migrated_db_url), key)
    with psycopg.connect(migrated_db_url) as conn:
        assets = conn.execute(
            "SELECT metadata->'asset_links' FROM confluence_pages WHERE page_id = %s", (page.id,)
        ).fetchone()
    titles = {a["title"] for a in assets[0]}
    assert set(names) <= titles  # kept verbatim as names
    for asset in assets[0]:
        if asset["title"] in names:
            # A link never climbs out of the page's attachments: the name is one path segment.
            assert "/../" not in asset["download_url"] and not asset["download_url"].endswith("/..")


# ---------------------------------------------------------------------------------------------- bad pages


def _hostile_pages(site: Site, key: str, *, big: bool) -> dict[str, str]:
    """name -> page id of pathological pages added to the space."""
    rng = random.Random(3)
    home = site.live_pages(key)[0].id
    junk = bytes(rng.randrange(256) for _ in range(20_000))
    rows = 100_000 if big else 5_000
    bodies = {
        "binary junk": "<p>" + junk.decode("latin-1") + "</p>",
        "NUL in text": "<p>before\x00after</p><p>tail\x00</p>",
        "invalid UTF-8": (b"<p>valid start \xff\xfe\xc3\x28 broken \xed\xa0\x80 end</p>").decode(
            "utf-8", "surrogateescape"
        ),
        "zero-width and RTL": "<p>zero\u200bwidth\u200d joiner\ufeff bom \u202eevil.exe\u202c "
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u2066isolate\u2069</p>",
        "deep nesting": "<div>" * 10_000 + "<p>deep text</p>" + "</div>" * 10_000,
        "huge table": "<table><tbody>"
        + "".join(f"<tr><td>row {i}</td><td>value {i * 7}</td></tr>" for i in range(rows))
        + "</tbody></table>",
        "huge page": "".join(
            f"<h2>Section {i}</h2><p>{' '.join(f'word{j}' for j in range(200))}</p>"
            for i in range((10_500_000 if big else 1_000_000) // 1_600)
        ),
    }
    titles = {"NUL in text": "Title with a NUL\x00 byte", "zero-width and RTL": "RTL \u202etxt.exe\u202c title"}
    return {
        name: site.create_page(key, titles.get(name, f"Hostile: {name}"), body, parent_id=home).id
        for name, body in bodies.items()
    }


def _sync_hostile(migrated_db_url, instance, site, *, big: bool, time_limit: float):
    key = only_space(site)
    hostile = _hostile_pages(site, key, big=big)
    with sandbox_servers(site) as sb:
        started = time.monotonic()
        result = sync_space(instance, resources_for(sb, migrated_db_url), key, raise_on_error=False)
        elapsed = time.monotonic() - started
    assert result.success, step_failure_message(result)
    assert elapsed < time_limit
    outcomes = _outcomes(migrated_db_url, key, list(hostile.values()))
    report = {name: outcomes[pid] for name, pid in hostile.items()}
    assert all(o == "landed" or o.startswith("failed: ") for o in report.values()), report
    _assert_rest_landed(site, migrated_db_url, key, set(hostile.values()))
    return report, hostile, result


def test_pathological_pages_land_or_are_recorded_and_the_rest_of_the_space_lands(migrated_db_url, instance, site):
    report, hostile, _ = _sync_hostile(migrated_db_url, instance, site, big=False, time_limit=120)
    # Everything here can be indexed: none needs to fail.
    assert set(report.values()) == {"landed"}, report
    with psycopg.connect(migrated_db_url) as conn:
        (title,) = conn.execute(
            "SELECT title FROM confluence_pages WHERE page_id = %s", (hostile["NUL in text"],)
        ).fetchone()
        assert title == "Title with a NUL\ufffd byte"  # NUL cannot be stored in PostgreSQL text
        (rtl,) = conn.execute(
            "SELECT title FROM confluence_pages WHERE page_id = %s", (hostile["zero-width and RTL"],)
        ).fetchone()
        assert rtl == "RTL \u202etxt.exe\u202c title"  # stored as is: it is text, not markup
        content = conn.execute(
            "SELECT string_agg(content, ' ') FROM archon_crawled_pages WHERE metadata->>'page_id' = %s",
            (hostile["invalid UTF-8"],),
        ).fetchone()[0]
        assert "valid start" in content and "end" in content


@pytest.mark.slow
def test_huge_pages_land_or_are_recorded_in_bounded_time_and_memory(migrated_db_url, instance, site):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report, hostile, result = _sync_hostile(migrated_db_url, instance, site, big=True, time_limit=600)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hostile pages: {report}; peak RSS {peak_mb:.0f} MB (was {before / 1024:.0f} MB)")
    assert peak_mb < 3000
    assert report["huge page"] == "landed" and report["huge table"] == "landed"


# ---------------------------------------------------------------------------------------------- settings


def _one_clear_line(message: str, *needles: str) -> None:
    assert message.count("\n") == 0, message
    assert "Traceback" not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"api_token": "wrong-token"}, ["HTTP 401", "CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN"]),
        ({"email": None, "api_token": None, "personal_access_token": "wrong-pat"}, ["HTTP 401", "CONFLUENCE_PAT"]),
        ({"email": None, "api_token": None}, ["no Confluence credentials", "CONFLUENCE_PAT"]),
        ({"url": "http://127.0.0.1:9/wiki"}, ["cannot reach Confluence", "check CONFLUENCE_URL"]),
        ({"url": "not a url"}, ["CONFLUENCE_URL must be an http(s) URL"]),
        ("missing /wiki", ["CONFLUENCE_URL", "/wiki"]),
    ],
    ids=["wrong-token", "wrong-pat", "no-credentials", "unreachable", "not-a-url", "missing-wiki"],
)
def test_wrong_confluence_settings_fail_with_one_line_naming_the_fix(
    migrated_db_url, instance, site, override, needles
):
    with sandbox_servers(site) as sb:
        if override == "missing /wiki":
            override = {"url": sb.conf.url.removesuffix("/wiki")}
        resources = resources_for(sb, migrated_db_url, confluence={**override, "max_retries": 1})
        result = sync_space(instance, resources, only_space(site), raise_on_error=False)
    assert not result.success
    _one_clear_line(step_failure_message(result), *needles)


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ({"api_key": "sk-wrong"}, ["HTTP 401", "OPENAI_API_KEY"]),
        ({"base_url": "http://127.0.0.1:9/v1"}, ["cannot reach the embedding provider", "OPENAI_BASE_URL"]),
        ("missing /v1", ["HTTP 404", "OPENAI_BASE_URL"]),
        ({"model": "no-such-model"}, ["HTTP 404", "EMBEDDING_MODEL"]),
    ],
    ids=["wrong-key", "unreachable", "missing-v1", "unknown-model"],
)
def test_wrong_embedding_settings_fail_with_one_line_naming_the_fix(migrated_db_url, instance, site, override, needles):
    with sandbox_servers(site) as sb:
        if override == "missing /v1":
            override = {"base_url": sb.emb.url.removesuffix("/v1")}
        resources = resources_for(sb, migrated_db_url, embeddings={**override, "max_retries": 0})
        result = sync_space(instance, resources, only_space(site), raise_on_error=False)
    assert not result.success
    _one_clear_line(step_failure_message(result), *needles)
    assert db_state(migrated_db_url, only_space(site))["source"].get("last_sync_timestamp") is None


def test_an_unreachable_database_fails_with_one_line(instance, site, tmp_path):
    with sandbox_servers(site) as sb:
        url = f"postgresql://nobody:Pa55-not-shown@/confluence?host={tmp_path}&connect_timeout=2"
        result = sync_space(instance, resources_for(sb, url), only_space(site), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE")
    error = failure.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    assert error.cls_name == "DatabaseUnavailableError"
    _one_clear_line(error.message.strip(), "cannot use the database", "check DATABASE_URL", "nobody:***@")
    assert "Pa55-not-shown" not in str(result.all_events)
