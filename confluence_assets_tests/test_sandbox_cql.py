"""CQL in the sandbox: a real parser (syntax and errors), and Confluence's date semantics: minute
precision, in the site's time zone, through atlassian-python-api's ``cql()``."""

from __future__ import annotations

import pytest
from atlassian import Confluence

from confluence_assets.sandbox import ConfluenceServer, CQLError, Site
from confluence_assets.sandbox.cql import And, Clause, Not, Or, parse


def test_parser_builds_a_tree():
    query = parse('space in (ENG, "OPS") AND (lastModified >= "2026-03-01 10:05" OR id = 12) ORDER BY title DESC')
    assert query.where == And(
        (
            Clause("space", "in", ("ENG", "OPS")),
            Or((Clause("lastmodified", ">=", ("2026-03-01 10:05",)), Clause("id", "=", ("12",)))),
        )
    )
    assert query.order == (("title", True),)
    assert parse("TYPE = page and NOT label = draft").where == And(
        (Clause("type", "=", ("page",)), Not(Clause("label", "=", ("draft",))))
    )
    assert parse("space = A not label = b").where == And(
        (Clause("space", "=", ("A",)), Not(Clause("label", "=", ("b",))))
    )
    assert parse('title ~ "say \\"hi\\""').where == Clause("title", "~", ('say "hi"',))
    assert parse("title = 'single'").where == Clause("title", "=", ("single",))


def test_keywords_inside_values_are_values():
    # A whole-string regex would see "and"/"order" here; a tokenizer does not.
    assert parse('title = "fish and chips order by"').where == Clause("title", "=", ("fish and chips order by",))


@pytest.mark.parametrize(
    "cql",
    [
        "",
        "space =",
        "space = ENG and",
        "foo = bar",
        "space ~ ENG",
        "text = hello",
        "(space = ENG",
        'space = "ENG',
        "space = ENG order title",
        "space = ENG order by colour",
        'lastModified > "2026-03-01 10:05:30"',
        'lastModified > "yesterday"',
        'lastModified > "2026-02-30"',
        "id = abc",
        "space = ENG )",
    ],
)
def test_invalid_cql_raises(cql):
    with pytest.raises(CQLError) as info:
        parse(cql).run(Site(), [])
    assert info.value.message == f"Could not parse cql : {cql}"


@pytest.fixture
def site() -> Site:
    site = Site(timezone="Asia/Seoul")
    site.clock.set("2026-02-01T00:00:00Z")
    site.add_space("ENG", "Engineering")
    site.add_space("OPS", "Operations")
    return site


@pytest.fixture
def client(site):
    with ConfluenceServer(site) as conf, Confluence(conf.url, username=conf.email, password=conf.api_token) as c:
        yield c


def ids(client: Confluence, cql: str) -> list[str]:
    return [r["content"]["id"] for r in client.cql(cql, limit=100)["results"]]


def test_dates_are_minutes_in_the_site_time_zone(site, client):
    # 01:05:30 UTC is 10:05:30 in Seoul.
    page = site.create_page("ENG", "Watermark straddler", "<p>x</p>", when="2026-03-01T01:05:30.250Z")
    pid = page.id
    assert ids(client, 'type = page and lastModified >= "2026-03-01 10:05"') == [pid]
    assert ids(client, 'type = page and lastModified = "2026-03-01 10:05"') == [pid]
    assert pid in ids(client, 'type = page and lastModified <= "2026-03-01 10:05"')
    # The minute named by the literal is whole: "> 10:05" starts at 10:06, "< 10:05" ends at 10:04:59.999.
    assert pid not in ids(client, 'type = page and lastModified > "2026-03-01 10:05"')
    assert pid not in ids(client, 'type = page and lastModified < "2026-03-01 10:05"')
    assert pid in ids(client, 'type = page and lastModified != "2026-03-01 10:04"')
    # A day literal names the whole day.
    assert pid in ids(client, 'type = page and lastModified = "2026/03/01"')
    assert pid not in ids(client, 'type = page and lastModified > "2026-03-01"')


def test_a_utc_watermark_misses_pages_on_a_site_behind_utc(site, client):
    page = site.create_page("ENG", "Late edit", "<p>x</p>", when="2026-03-01T01:05:30Z")
    site.set_timezone("America/Los_Angeles")  # 2026-02-28 17:05:30 local
    assert page.id not in ids(client, 'lastModified >= "2026-03-01 01:05"')  # UTC wall time: wrong
    assert page.id in ids(client, 'lastModified >= "2026-02-28 17:05"')  # site time: right
    site.set_timezone("UTC")
    assert page.id in ids(client, 'lastModified >= "2026-03-01 01:05"')


def test_boolean_logic_ids_labels_and_order(site, client):
    a = site.create_page("ENG", "Alpha", "<p>kafka broker</p>", when="2026-03-01T00:00:00Z", labels=["howto"])
    b = site.create_page("ENG", "Beta", "<p>redis cache</p>", when="2026-03-02T00:00:00Z")
    c = site.create_page("OPS", "Gamma", "<p>kafka consumer</p>", when="2026-03-03T00:00:00Z", parent_id=None)
    assert ids(client, f"id in ({a.id}, {c.id}) ORDER BY lastModified DESC") == [c.id, a.id]
    assert ids(client, f"id in ({a.id}, {b.id}, {c.id}) ORDER BY title DESC") == [c.id, b.id, a.id]
    ops_home = site.spaces["OPS"].homepage_id
    assert ids(client, 'type = page AND (space = OPS OR label = "howto") ORDER BY created') == [ops_home, a.id, c.id]
    assert ids(client, 'text ~ "kafka" AND NOT space = OPS') == [a.id]
    assert ids(client, 'space = ENG and title ~ "beta"') == [b.id]
    assert ids(client, f"parent = {site.spaces['OPS'].homepage_id}") == [c.id]
    assert ids(client, f"ancestor = {site.spaces['ENG'].homepage_id} order by id") == [a.id, b.id]
    assert ids(client, f"space = ENG and type = page and id not in ({a.id}) order by id") == [
        site.spaces["ENG"].homepage_id,
        b.id,
    ]


def test_now_function_uses_the_site_clock(site, client):
    page = site.create_page("ENG", "Fresh", when="2026-03-01T00:00:00Z")
    site.clock.set("2026-03-01T12:00:00Z")
    assert page.id in ids(client, 'lastModified > now("-1d")')
    site.clock.set("2026-03-05T12:00:00Z")
    assert page.id not in ids(client, 'lastModified > now("-1d")')
    assert page.id in ids(client, 'lastModified > now("-1w")')


def test_cql_never_returns_trashed_pages(site, client):
    page = site.create_page("ENG", "Doomed", "<p>x</p>")
    assert ids(client, f"id = {page.id}") == [page.id]
    site.trash_page(page.id)
    assert ids(client, f"id = {page.id}") == []
    assert site.search(f"id = {page.id}") == []
