"""Space keys, CQL building (quoting, time zones) and pagination links: no request is made here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from confluence_assets.confluence.cql import (
    InvalidTimeZoneError,
    format_cql_datetime,
    page_ids_cql,
    quote,
    site_zone,
    space_pages_cql,
)
from confluence_assets.confluence.keys import (
    InvalidSpaceKeyError,
    partition_key_to_space_key,
    source_id_for,
    space_key_to_partition_key,
    validate_space_key,
)
from confluence_assets.confluence.responses import resolve_next
from confluence_assets.sync.changes import classify


@pytest.mark.parametrize("key", ["DOCS", "ds", "TEAM_2", "a-b", "~alice", "~5b1234abcdef0123", "~"])
def test_valid_space_keys_round_trip_through_partition_keys(key):
    partition = space_key_to_partition_key(key)
    assert partition_key_to_space_key(partition) == key
    # Dagster accepts it as a dynamic partition key.
    dg.DynamicPartitionsDefinition(name="p").build_add_request([partition])
    dg.StaticPartitionsDefinition([partition])


@pytest.mark.parametrize(
    "key",
    ['KEY" OR space != "X', "a b", "a/b", "a,b", "a|b", "x...y", "", "DOCS\n", "ünï", 'x"', "a;DROP", None, 42],
)
def test_invalid_space_keys_are_rejected_before_any_request(key):
    with pytest.raises(InvalidSpaceKeyError, match="invalid Confluence space key"):
        validate_space_key(key)
    with pytest.raises(InvalidSpaceKeyError):
        space_pages_cql(key)


def test_source_id_of_a_space():
    assert source_id_for("DOCS") == "confluence_DOCS"


def test_quote_escapes_quotes_and_backslashes():
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def test_space_cql_without_watermark_is_a_full_ordered_listing():
    assert space_pages_cql("DOCS") == 'space = "DOCS" AND type = page ORDER BY lastModified ASC'


def test_space_cql_formats_the_watermark_in_the_site_zone_floored_to_the_minute():
    moment = datetime(2026, 3, 1, 23, 59, 59, 900000, tzinfo=UTC)
    cql = space_pages_cql("DOCS", moment, zone=site_zone("Asia/Seoul"))
    assert cql == 'space = "DOCS" AND type = page AND lastModified >= "2026-03-02 08:59" ORDER BY lastModified ASC'


def test_without_a_known_zone_the_query_reaches_back_far_enough_for_any_zone():
    moment = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    literal = format_cql_datetime(moment, None).strip('"')
    naive = datetime.strptime(literal, "%Y-%m-%d %H:%M")
    # Whatever zone Confluence interprets it in (UTC-12 .. UTC+14), it is at or before the moment.
    for hours in range(-12, 15):
        interpreted = naive.replace(tzinfo=UTC) - timedelta(hours=hours)
        assert interpreted <= moment


def test_unknown_time_zone_is_a_clear_error():
    with pytest.raises(InvalidTimeZoneError, match="unknown time zone 'Mars/Olympus'"):
        site_zone("Mars/Olympus")


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        format_cql_datetime(datetime(2026, 1, 1), None)


def test_page_ids_must_be_digits():
    assert page_ids_cql(["1", "22"]) == "type = page AND id in (1, 22)"
    with pytest.raises(ValueError):
        page_ids_cql(["1) OR (1=1"])


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (
            {"base": "https://x.atlassian.net/wiki", "context": "/wiki", "next": "/rest/api/content/search?cursor=a"},
            "https://x.atlassian.net/wiki/rest/api/content/search?cursor=a",
        ),
        (
            {"base": "https://x.atlassian.net/wiki", "context": "/wiki", "next": "/wiki/rest/api/space?start=25"},
            "https://x.atlassian.net/wiki/rest/api/space?start=25",
        ),
        (
            {"base": "https://dc.example.com", "context": "", "next": "/rest/api/content/search?start=50"},
            "https://dc.example.com/rest/api/content/search?start=50",
        ),
        ({"next": "http://h/wiki/rest/api/x?c=1"}, "http://h/wiki/rest/api/x?c=1"),
        (  # v2: the link carries /wiki, the base too, and there is no context key
            {"base": "https://x.atlassian.net/wiki", "next": "/wiki/api/v2/spaces/9/pages?cursor=b"},
            "https://x.atlassian.net/wiki/api/v2/spaces/9/pages?cursor=b",
        ),
        (
            {"base": "https://dc.example.com/confluence", "next": "/rest/api/content?start=200"},
            "https://dc.example.com/confluence/rest/api/content?start=200",
        ),
        ({"base": "https://x/wiki"}, None),
    ],
)
def test_next_links_are_joined_onto_the_base(links, expected):
    # Requests go to the site itself here (the API gateway: test_confluence_api_forms.py).
    assert resolve_next(links, links.get("base", "http://h/wiki")) == expected


@pytest.mark.parametrize(
    ("version", "indexed", "staged", "expected"),
    [
        (1, None, None, "new"),
        (3, (2, False), None, "updated"),
        (2, (2, False), None, "unchanged"),
        (2, (3, False), None, "unchanged"),
        (4, (4, True), None, "restored"),
        (5, (4, False), 5, "staged"),
        (6, (4, False), 5, "updated"),
        (1, (None, False), None, "new"),
    ],
)
def test_classification_against_indexed_and_staged_versions(version, indexed, staged, expected):
    assert classify(version, indexed, staged) == expected


def test_reprocess_turns_unchanged_into_updated():
    assert classify(2, (2, False), None, reprocess=True) == "updated"
