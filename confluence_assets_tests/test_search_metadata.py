"""Metadata queries: right answers on a small hierarchy, and index use (EXPLAIN) at a realistic size."""

from __future__ import annotations

import pytest

from confluence_assets.db.connection import connect
from confluence_assets.search import NOBODY, Principal
from confluence_assets.search import metadata_queries as mq
from confluence_assets_tests.search_data import Page, Site


@pytest.fixture
def conn(migrated_db_url):
    with connect(migrated_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def tree(conn):
    """ENG: 1 > 2 > (3, 4 > 5); 6 deleted under 2; OPS: 7. 3 links to 5, 7 links to 5, 6 (deleted) too."""
    site = Site(conn)
    for page in [
        Page("1", "ENG", "Engineering", [("Engineering", "home")]),
        Page("2", "ENG", "Platform", [("Platform", "platform")], parent="1", mentions=("acc-bob",)),
        Page("3", "ENG", "Databases", [("Databases", "db")], parent="2", links_to=("5",), jira=("DB-7",),
             labels=("database",), attachments=2, author="acc-bob"),
        Page("4", "ENG", "Networking", [("Networking", "net")], parent="2", jira=("DB-77",)),
        Page("5", "ENG", "DNS", [("DNS", "dns")], parent="4", mentions=("acc-bob", "acc-carol")),
        Page("6", "ENG", "Old platform", [("Old", "old")], parent="2", deleted=True, links_to=("5",),
             jira=("DB-7",), mentions=("acc-bob",), attachments=1, author="acc-bob", labels=("database",)),
        Page("7", "OPS", "On call", [("On call", "pager")], links_to=("5",), attachments=1, author="acc-bob"),
    ]:  # fmt: skip
        site.add(page)
    return site


def ids(pages) -> list[str]:
    return sorted(p.page_id for p in pages)


def test_metadata_queries_answer_and_skip_deleted_pages(conn, tree):
    assert ids(mq.pages_mentioning_user(conn, "acc-bob")) == ["2", "5"]
    assert ids(mq.pages_mentioning_user(conn, "acc-carol")) == ["5"]
    assert ids(mq.pages_with_jira_key(conn, "db-7")) == ["3"]  # exact: DB-77 is another issue
    assert ids(mq.pages_with_label(conn, "database")) == ["3"]
    assert ids(mq.pages_by_author(conn, "acc-bob")) == ["3", "7"]
    assert ids(mq.pages_by_author(conn, "acc-bob", spaces=("OPS",))) == ["7"]
    assert ids(mq.pages_with_attachments(conn)) == ["3", "7"]
    assert ids(mq.pages_linking_to(conn, "5")) == ["3", "7"]
    assert ids(mq.children(conn, "2")) == ["3", "4"]
    assert ids(mq.children(conn, "4")) == ["5"]
    assert ids(mq.descendants(conn, "1")) == ["2", "3", "4", "5"]
    assert ids(mq.descendants(conn, "5")) == []
    assert ids(mq.children(conn, "404")) == []
    (page,) = mq.pages_with_label(conn, "database")
    assert page.to_dict() == {
        "page_id": "3",
        "title": "Databases",
        "space_key": "ENG",
        "url": "https://example.atlassian.net/wiki/spaces/ENG/pages/3",
        "path": "/1/2/3",
        "last_modified": "2024-06-01T00:00:00+00:00",
    }


def test_breadcrumbs_follow_the_path_and_fall_back_to_the_pages_own_ancestors(conn, tree):
    crumbs = mq.breadcrumbs(conn, "5")
    assert [(c.page_id, c.title) for c in crumbs] == [
        ("1", "Engineering"),
        ("2", "Platform"),
        ("4", "Networking"),
        ("5", "DNS"),
    ]
    assert crumbs[-1].url.endswith("/pages/5")
    # An ancestor that is not stored (restricted, or not synced yet) keeps the title the page knows for it.
    conn.execute("DELETE FROM confluence_pages WHERE page_id = '2'")
    assert [c.title for c in mq.breadcrumbs(conn, "5")] == ["Engineering", "Platform", "Networking", "DNS"]
    assert mq.breadcrumbs(conn, "6") == []  # a deleted page has none


MANY_PAGES = """INSERT INTO archon_sources (source_id) SELECT 'confluence_S' || s FROM generate_series(0, 4) s;
   INSERT INTO confluence_pages (page_id, source_id, space_key, title, version, last_modified, path,
                                 metadata, is_deleted)
   SELECT (100000 + g)::text, 'confluence_S' || (g % 5), 'S' || (g % 5), 'Page ' || g, 1,
          timestamptz '2023-01-01' + g * interval '1 hour',
          '/' || (100000 + g % 50) || CASE WHEN g >= 50 THEN '/' || (100000 + g) ELSE '' END,
          jsonb_build_object(
            'page_url', 'https://example.atlassian.net/wiki/pages/' || (100000 + g),
            'labels', jsonb_build_array('label-' || (g % 300)),
            'jira_issue_links', jsonb_build_array(jsonb_build_object('issue_key', 'PROJ-' || g)),
            'user_mentions', jsonb_build_array(jsonb_build_object('account_id', 'acc-' || (g % 500))),
            'created_by', jsonb_build_object('account_id', 'acc-' || (g % 400)),
            'internal_links', jsonb_build_array(jsonb_build_object('page_id', (100000 + (g * 7) % 5000)::text)),
            'asset_links', CASE WHEN g % 41 = 7 THEN '[{"id": "att"}]'::jsonb ELSE '[]'::jsonb END,
            'ancestors', '[]'::jsonb),
          g % 97 = 0
   FROM generate_series(0, 4999) g;
   UPDATE confluence_page_restrictions SET status = 'ok', read_at = now();
   INSERT INTO confluence_space_permissions (source_id, space_key, status, reader_account_ids)
   SELECT 'confluence_S' || s, 'S' || s, 'ok', ARRAY['acc-viewer'] FROM generate_series(0, 4) s;
   ANALYZE confluence_pages;
   ANALYZE confluence_page_restrictions;"""


@pytest.fixture(scope="module")
def many_pages(server_url, _migrated_template):
    """5,000 pages in 5 spaces (50 roots with ~100 children each), 1 in 97 deleted, restrictions known
    and none restricted, every space readable by acc-viewer, then ANALYZE. The expected row counts below
    are those of live pages."""
    from confluence_assets_tests.conftest import _create_database, _drop_database

    name = "t_search_metadata_many"
    url = _create_database(server_url, name, template=_migrated_template)
    try:
        with connect(url, autocommit=True) as conn:
            conn.execute(MANY_PAGES)
        with connect(url, autocommit=True) as conn:  # read only: the tests share it
            yield conn
    finally:
        _drop_database(server_url, name)


@pytest.mark.parametrize(
    ("query", "index", "rows"),
    [
        (lambda who: mq.pages_mentioning_user_query("acc-7", principal=who), "idx_confluence_pages_mentions", 9),
        (lambda who: mq.pages_with_jira_key_query("PROJ-123", principal=who), "idx_confluence_pages_jira", 1),
        (lambda who: mq.pages_with_label_query("label-17", principal=who), "idx_confluence_pages_labels", 17),
        (lambda who: mq.pages_by_author_query("acc-3", principal=who), "idx_confluence_pages_created_by", 13),
        (lambda who: mq.pages_with_attachments_query(principal=who), "idx_confluence_pages_with_attachments", 121),
        (
            lambda who: mq.pages_with_attachments_query(spaces=("S2",), principal=who),
            "idx_confluence_pages_with_attachments",
            24,
        ),
        (lambda who: mq.pages_linking_to_query("100007", principal=who), "idx_confluence_pages_internal_links", 1),
        (lambda who: mq.descendants_query("100003", principal=who), "idx_confluence_pages_path", 98),
        (lambda who: mq.children_query("100003", principal=who), "idx_confluence_pages_path", 98),
        (lambda who: mq.breadcrumbs_query("100053", principal=who), "confluence_pages_pkey", 2),
    ],
    ids=[
        "mentions",
        "jira",
        "label",
        "author",
        "attachments",
        "attachments-in-space",
        "linking-to",
        "descendants",
        "children",
        "breadcrumbs",
    ],
)
@pytest.mark.parametrize("who", [NOBODY, Principal(account_id="acc-viewer")], ids=["nobody", "user"])
def test_metadata_queries_use_their_index(many_pages, query, index, rows, who):
    conn = many_pages
    built = query(who)
    plan = mq.explain(conn, built)
    assert index in plan, plan
    assert "Seq Scan on confluence_pages" not in plan, plan
    # The viewer is resolved once (before the query, or in one CTE), and the page test is inlined.
    assert plan.count("confluence_viewer_access") <= 1 and "confluence_can_view" not in plan, plan
    found = conn.execute(built.text, built.params).fetchall()
    assert len(found) == rows


def test_search_filters_use_the_same_indexes(many_pages):
    """The page filter of every search is the same function: each filter meets its index there too."""
    conn = many_pages
    from confluence_assets.search import SearchFilters

    cases = {
        "idx_confluence_pages_labels": SearchFilters(labels=("label-5",)),
        "idx_confluence_pages_jira": SearchFilters(jira_keys=("PROJ-9",)),
        "idx_confluence_pages_mentions": SearchFilters(mentions=("acc-9",)),
        "idx_confluence_pages_created_by": SearchFilters(authors=("acc-9",)),
        "idx_confluence_pages_path": SearchFilters(under_page_id="100011"),
    }
    for index, filters in cases.items():
        plan = mq.explain(conn, mq.pages_query(filters))
        assert index in plan, (index, plan)
