"""Every search path returns exactly what its principal may read in Confluence.

A small permission scenario is written straight into the schema (as the permission refresh records it):
spaces with different readers, one with anonymous access, one whose permissions are unknown and one with
no permission row; a restricted parent with an open child, a restricted child of an open parent, nested
restrictions, a user in a group a page allows but not in the space, a restriction read as unknown, and a
group whose members could not be listed. Each principal's readable set is written out below (the spec)
and checked against an independent reading of Confluence's rule; then hybrid, vector and keyword search
(SearchService and the SQL function), the page filter, every metadata query, the known-item queries, the
CLI and Archon's search functions must return exactly that set.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from confluence_assets import cli
from confluence_assets.db.connection import connect
from confluence_assets.embeddings import Embedder
from confluence_assets.search import (
    PrincipalError,
    SearchError,
    SearchService,
    generate_known_item_queries,
    search,
)
from confluence_assets.search import metadata_queries as mq
from confluence_assets.search.hybrid import vector_literal
from confluence_assets_tests.search_data import MODEL, WORDS, Page, Site, lexical_embedding, lexical_embeddings_server

DIMS = 1536  # Archon's non-_multi functions search embedding_1536 only
WIDE = 100  # more than every chunk: an answer holds every match
QUERY = "zephyr quartz"

ALICE, BOB, CAROL, DAVE, ERIN, SOLO, FRANK = (
    "acc-alice", "acc-bob", "acc-carol", "acc-dave", "acc-erin", "acc-solo", "acc-frank",
)  # fmt: skip
USERS = (ALICE, BOB, CAROL, DAVE, ERIN, SOLO, FRANK)
EMAILS = {ALICE: "Alice.Admin@Example.com", BOB: "bob@example.com", CAROL: "carol@example.com"}

GROUPS = {  # group: (members_status, members)
    "g-eng": ("ok", {ALICE, BOB}),
    "g-hr": ("ok", {CAROL}),
    "g-secret": ("ok", {ALICE}),
    "g-fin": ("ok", {ERIN}),
    "g-unk": ("unknown", {DAVE, ALICE}),  # its listing failed: lets nobody in
}
SPACES = {  # space: (status, reader users, reader groups, anonymous access); NOP has no permission row
    "ENG": ("ok", {SOLO}, {"g-eng", "g-unk"}, False),
    "HR": ("ok", set(), {"g-hr"}, False),
    "PUB": ("ok", set(), set(), True),
    "UNK": ("unknown", set(), {"g-eng"}, False),
}


@dataclass(frozen=True)
class P:
    id: str
    space: str
    parent: str | None = None
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    status: str = "ok"
    deleted: bool = False


PAGES = [
    P("10", "ENG"),
    P("11", "ENG", "10", groups=("g-secret",)),  # restricted parent ...
    P("12", "ENG", "11"),  # ... with an open child
    P("13", "ENG", "11", users=(ALICE, BOB)),  # nested: alice passes both, bob not the parent
    P("14", "ENG", "11", users=(BOB,)),  # nested: nobody passes both
    P("15", "ENG"),
    P("16", "ENG", "15", users=(BOB,), groups=("g-fin",)),  # restricted child of an open parent; erin: no space
    P("17", "ENG", "16"),
    P("18", "ENG", status="unknown"),  # restriction not read: hidden with its descendants
    P("19", "ENG", "18"),
    P("20", "ENG", groups=("g-unk",)),  # a group whose members are unknown lets nobody in
    P("21", "ENG", "10", deleted=True),
    P("30", "HR"),
    P("31", "HR", users=(ALICE,)),  # alice is named, but may not view the space
    P("40", "PUB"),
    P("41", "PUB", groups=("g-hr",)),
    P("42", "PUB", "41", users=(CAROL, FRANK)),
    P("43", "PUB", "30"),  # stored under a page of another space (a move half-synced): a foreign ancestor
    P("50", "UNK"),
    P("60", "NOP"),
]
BY_ID = {p.id: p for p in PAGES}

# The spec: what each principal may read (None: nobody named; "admin": the service account).
READABLE = {
    None: {"10", "15", "30", "40", "43", "50", "60"},
    ALICE: {"10", "11", "12", "13", "15", "40", "43"},
    BOB: {"10", "15", "16", "17", "40", "43"},
    CAROL: {"30", "40", "41", "42", "43"},
    DAVE: {"40", "43"},
    ERIN: {"40", "43"},
    SOLO: {"10", "15", "40", "43"},
    FRANK: {"40", "43"},
    "admin": {p.id for p in PAGES if not p.deleted},
}
PRINCIPALS = [None, *USERS]


def confluence_can_read(user: str | None, page_id: str) -> bool:
    """Confluence's rule, read independently of the SQL: the space lets the user in (a read permission of
    theirs or of a group they are known to be in, or anonymous access), and the page and each ancestor
    either has no read restriction or names them or such a group. Nobody named: no restriction on the
    chain (any space). Unknown statuses let nobody in."""
    page = BY_ID[page_id]
    if page.deleted:
        return False
    groups = {g for g, (status, members) in GROUPS.items() if status == "ok" and user in members}
    if user is not None:
        status, readers, reader_groups, anonymous = SPACES.get(page.space, ("unknown", set(), set(), False))
        if status != "ok" or not (anonymous or user in readers or groups & reader_groups):
            return False
    node: P | None = page
    while node is not None:
        if node.status != "ok":
            return False
        if node.users or node.groups:
            if user is None or not (user in node.users or groups & set(node.groups)):
                return False
        node = BY_ID[node.parent] if node.parent else None
    return True


def build(conn) -> Site:
    site = Site(conn, dims=DIMS)
    for n, p in enumerate(PAGES):
        title = f"Page {p.id}"
        site.add(
            Page(
                p.id,
                p.space,
                title,
                [(title, f"zephyr quartz notes {' '.join(WORDS[n * 6 : n * 6 + 6])}")],
                parent=p.parent,
                labels=("perm",),
                mentions=(BOB,),
                jira=("PERM-1",),
                author=ALICE,
                attachments=1,
                links_to=("99",),
                deleted=p.deleted,
                read_users=p.users,
                read_groups=p.groups,
                restriction_status=p.status,
            )
        )
    for group, (status, members) in GROUPS.items():
        site.group(group, sorted(members), status=status)
    for space, (status, users, groups, anonymous) in SPACES.items():
        site.space_permissions(space, sorted(users), sorted(groups), anonymous=anonymous, status=status)
    for user in USERS:
        site.user(user, EMAILS.get(user))
    site.add_web_chunk("web1", "https://example.com/zephyr", "zephyr quartz from the web")
    conn.execute("ANALYZE")
    return site


@pytest.fixture(scope="module")
def db_url(server_url, _migrated_template):
    from confluence_assets_tests.conftest import _create_database, _drop_database

    name = "t_permissions_search"
    url = _create_database(server_url, name, template=_migrated_template)
    try:
        with connect(url, autocommit=True) as conn:
            build(conn)
        yield url
    finally:
        _drop_database(server_url, name)


@pytest.fixture
def conn(db_url):
    with connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def embeddings_url():
    with lexical_embeddings_server() as url:
        yield url


@pytest.fixture
def service(conn, embeddings_url):
    embedder = Embedder(model=MODEL, dimensions=DIMS, api_key="sk-test", base_url=embeddings_url, max_retries=0)
    with SearchService(conn, embedder) as s:
        yield s


def pages(rows) -> set[str]:
    return {r.page_id for r in rows}


def test_the_spec_is_confluences_rule():
    for principal in PRINCIPALS:
        assert READABLE[principal] == {p.id for p in PAGES if confluence_can_read(principal, p.id)}, principal
    # The scenario tells principals apart.
    assert len({frozenset(READABLE[p]) for p in PRINCIPALS}) == 6


# -- hybrid search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_service_returns_exactly_the_readable_pages(service, mode):
    for principal in PRINCIPALS:
        results = service.search(QUERY, limit=WIDE, mode=mode, as_user=principal)
        assert pages(results) == READABLE[principal], (principal, mode)
        assert results.principal.account_id == principal
        if principal is not None:
            assert results.withheld is None  # a named principal is never told what is hidden
    admin = service.search(QUERY, limit=WIDE, mode=mode, as_service_account=True)
    assert pages(admin) == READABLE["admin"] and admin.withheld is None
    assert admin.principal.kind == "service_account"
    nobody = service.search(QUERY, limit=WIDE, mode=mode)
    assert nobody.withheld == len(READABLE["admin"] - READABLE[None]) == 12  # one chunk per page
    # withheld counts the service account's first `limit` matches that nobody may read.
    top = service.search(QUERY, limit=5, mode=mode, as_service_account=True)
    assert service.search(QUERY, limit=5, mode=mode).withheld == sum(r.page_id not in READABLE[None] for r in top)


def test_users_are_found_by_email_case_insensitively_and_unknown_emails_fail_closed(service):
    results = service.search(QUERY, limit=WIDE, mode="keyword", as_user="alice.admin@EXAMPLE.com")
    assert pages(results) == READABLE[ALICE] and results.principal.account_id == ALICE
    with pytest.raises(SearchError) as excinfo:
        service.search(QUERY, mode="keyword", as_user="mallory@example.com")
    message = str(excinfo.value)
    assert "\n" not in message and "mallory" not in message
    assert not any(u in message for u in USERS) and not any(e.lower() in message.lower() for e in EMAILS.values())
    with pytest.raises(PrincipalError, match="exclude each other"):
        service.search(QUERY, mode="keyword", as_user=ALICE, as_service_account=True)
    with pytest.raises(PrincipalError):
        service.search(QUERY, mode="keyword", as_user="  ")


def test_the_service_account_is_logged_at_warning(service, caplog):
    with caplog.at_level(logging.WARNING, logger="confluence_assets.search"):
        service.search(QUERY, mode="keyword", as_service_account=True)
        service.search(QUERY, mode="keyword", as_user=ALICE)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "searching as the service account: Confluence permissions not applied"
    ]


@pytest.mark.parametrize("exact_chunk_limit", ["5000", "0"], ids=["exact", "hnsw"])
def test_the_sql_function_and_the_page_filter_apply_the_viewer(conn, exact_chunk_limit):
    conn.execute("SELECT set_config('confluence_search.exact_chunk_limit', %s, false)", (exact_chunk_limit,))
    vector = vector_literal(lexical_embedding(QUERY, DIMS))
    for principal in PRINCIPALS:
        for mode in ("hybrid", "vector", "keyword"):
            rows = conn.execute(
                """SELECT DISTINCT page_id FROM confluence_hybrid_search(%s::vector, %s, %s, search_mode => %s,
                                                                         viewer_account_id => %s)""",
                (vector, QUERY, WIDE, mode, principal),
            ).fetchall()
            assert {r[0] for r in rows} == READABLE[principal], (principal, mode)
        # hybrid.search, the Python face of the function
        found = search(conn, QUERY, lexical_embedding(QUERY, DIMS), limit=WIDE, viewer_account_id=principal)
        assert pages(found) == READABLE[principal]
        for call in (
            "SELECT page_id FROM confluence_filtered_pages(viewer_account_id => %(v)s)",
            "SELECT page_id FROM confluence_filtered_pages(access => (SELECT confluence_viewer_access(%(v)s)))",
            "SELECT page_id FROM confluence_pages p WHERE NOT is_deleted"
            " AND confluence_can_view(confluence_viewer_access(%(v)s), p.path, p.page_id, p.space_key)",
        ):
            assert {r[0] for r in conn.execute(call, {"v": principal})} == READABLE[principal], (principal, call)
    admin = conn.execute("SELECT page_id FROM confluence_filtered_pages(as_service_account => true)").fetchall()
    assert {r[0] for r in admin} == READABLE["admin"]


# -- metadata queries and the known-item queries --------------------------------------------------------

QUESTIONS = {
    "mentioning": lambda conn, **who: mq.pages_mentioning_user(conn, BOB, **who),
    "jira": lambda conn, **who: mq.pages_with_jira_key(conn, "PERM-1", **who),
    "label": lambda conn, **who: mq.pages_with_label(conn, "perm", **who),
    "author": lambda conn, **who: mq.pages_by_author(conn, ALICE, **who),
    "attachments": lambda conn, **who: mq.pages_with_attachments(conn, **who),
    "linking-to": lambda conn, **who: mq.pages_linking_to(conn, "99", **who),
}


def test_every_metadata_query_returns_exactly_the_readable_pages(conn):
    for name, question in QUESTIONS.items():
        for principal in PRINCIPALS:
            assert pages(question(conn, as_user=principal)) == READABLE[principal], (name, principal)
        assert pages(question(conn, as_service_account=True)) == READABLE["admin"], name
        assert pages(question(conn, as_user=EMAILS[CAROL].upper())) == READABLE[CAROL], name
    assert pages(mq.pages_with_label(conn, "perm", spaces=("ENG",), as_user=BOB)) == {"10", "15", "16", "17"}


def test_children_descendants_and_breadcrumbs_of_pages_the_viewer_cannot_read_are_empty(conn):
    def under(page_id: str, principal) -> tuple[set[str], set[str]]:
        who = {"as_service_account": True} if principal == "admin" else {"as_user": principal}
        return pages(mq.children(conn, page_id, **who)), pages(mq.descendants(conn, page_id, **who))

    everything = {p.id: {c.id for c in PAGES if c.parent == p.id and not c.deleted} for p in PAGES}
    for page in PAGES:
        for principal in [*PRINCIPALS, "admin"]:
            children, descendants = under(page.id, principal)
            readable = READABLE[principal]
            if page.id in readable:
                assert children == everything[page.id] & readable, (page.id, principal)
                assert children <= descendants <= readable, (page.id, principal)
            else:
                assert children == set() and descendants == set(), (page.id, principal)
    assert under("11", ALICE) == ({"12", "13"}, {"12", "13"})
    assert under("15", BOB) == ({"16"}, {"16", "17"})
    assert under("11", "admin") == ({"12", "13", "14"}, {"12", "13", "14"})
    assert under("18", "admin") == ({"19"}, {"19"}) and under("18", ALICE) == (set(), set())
    assert under("30", CAROL) == ({"43"}, {"43"}) and under("30", FRANK) == (set(), set())  # 43 readable by both

    def crumbs(page_id: str, principal) -> list[tuple[str, str]]:
        return [(c.page_id, c.title) for c in mq.breadcrumbs(conn, page_id, as_user=principal)]

    assert crumbs("12", ALICE) == [("10", "Page 10"), ("11", "Page 11"), ("12", "Page 12")]
    for principal in PRINCIPALS:
        if "12" not in READABLE[principal]:
            assert crumbs("12", principal) == [], principal
        assert crumbs("19", principal) == []  # under a page whose restriction is unknown
    # A stored ancestor the viewer may not read shows its id, never its title; a reader of it sees the title.
    assert crumbs("43", FRANK) == [("30", "30"), ("43", "Page 43")]
    assert crumbs("43", CAROL) == [("30", "Page 30"), ("43", "Page 43")]
    assert [c.page_id for c in mq.breadcrumbs(conn, "14", as_service_account=True)] == ["10", "11", "14"]


def test_metadata_queries_resolve_the_viewer_once(conn):
    """Resolved before the query, the viewer's access is a constant of the inlined page filter (no call
    per row; test_search_metadata checks the indexes at a realistic size)."""
    built = mq.pages_with_label_query("perm", principal=mq.resolve_principal(conn, ALICE))
    plan = mq.explain(conn, built)
    assert "confluence_viewer_access" not in plan and "confluence_can_view" not in plan, plan
    assert '"14": true' in plan and "{ENG,PUB}" in plan, plan  # what alice may not read, and her spaces
    # Run as given (access not resolved yet), the query resolves it itself, once: the same answer.
    assert built.params["access"] is None
    rows = conn.execute(built.text, built.params).fetchall()
    assert {r[0] for r in rows} == READABLE[ALICE]
    fallback = "\n".join(r[0] for r in conn.execute(psycopg.sql.SQL("EXPLAIN ") + built.text, built.params))
    assert [line.strip() for line in fallback.splitlines() if line.strip().startswith("InitPlan")] == ["InitPlan 1"], (
        fallback
    )


def test_known_item_queries_quote_only_pages_their_reader_may_open(conn):
    for principal in (None, ALICE, CAROL):
        items = generate_known_item_queries(conn, 30, seed=1, words=4, as_user=principal)
        assert items and {i.page_id for i in items} <= READABLE[principal], principal
    admin = generate_known_item_queries(conn, 60, seed=1, words=4, as_service_account=True)
    assert {i.page_id for i in admin} - READABLE[None]  # the service account quotes restricted pages too


# -- nobody named, narrowed by the database setting -----------------------------------------------------


def archon_rows(conn) -> dict[str, set[str]]:
    """The URLs each Archon search function returns for the query."""
    v = vector_literal(lexical_embedding(QUERY, DIMS))
    calls = {
        "match_multi": ("SELECT url FROM match_archon_crawled_pages_multi(%s::vector, %s, %s)", (v, DIMS, WIDE)),
        "match": ("SELECT url FROM match_archon_crawled_pages(%s::vector, %s)", (v, WIDE)),
        "hybrid_multi": (
            "SELECT url FROM hybrid_search_archon_crawled_pages_multi(%s::vector, %s, %s, %s)",
            (v, DIMS, QUERY, WIDE),
        ),
        "hybrid": ("SELECT url FROM hybrid_search_archon_crawled_pages(%s::vector, %s, %s)", (v, QUERY, WIDE)),
    }
    return {name: {r[0] for r in conn.execute(text, params)} for name, (text, params) in calls.items()}


def confluence_urls(page_ids) -> set[str]:
    return {f"confluence://{BY_ID[p].space}/{p}" for p in page_ids}


def test_archons_functions_return_only_unrestricted_confluence_chunks(conn):
    expected = confluence_urls(READABLE[None]) | {"https://example.com/zephyr"}
    for name, urls in archon_rows(conn).items():
        assert urls == expected, name


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("none", set()), ("anonymous", {"40", "43"}), ("unrestricted", READABLE[None])],
)
def test_unidentified_access_setting_narrows_what_nobody_named_gets(service, conn, setting, expected):
    conn.execute("SELECT set_config('confluence_search.unidentified_access', %s, false)", (setting,))
    for mode in ("hybrid", "vector", "keyword"):
        assert pages(service.search(QUERY, limit=WIDE, mode=mode)) == expected, mode
    assert pages(mq.pages_with_label(conn, "perm")) == expected
    assert pages(service.search(QUERY, limit=WIDE, mode="keyword", as_user=CAROL)) == READABLE[CAROL]  # unaffected
    archon = confluence_urls(expected if setting == "unrestricted" else ()) | {"https://example.com/zephyr"}
    assert all(urls == archon for urls in archon_rows(conn).values())  # Archon's: unrestricted or nothing
    conn.execute("SET confluence_search.unidentified_access = 'everyone'")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="unrestricted, anonymous or none"):
        service.search(QUERY, mode="keyword")


# -- the command line -----------------------------------------------------------------------------------


def run_cli(monkeypatch, capsys, db_url: str, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("DATABASE_URL", db_url)
    code = cli.main(["search", QUERY, "--mode", "keyword", "--limit", str(WIDE), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_searches_as_a_user_nobody_or_the_service_account(db_url, monkeypatch, capsys, caplog):
    for principal in (ALICE, EMAILS[BOB], CAROL, FRANK):
        code, out, err = run_cli(monkeypatch, capsys, db_url, "--json", "--as-user", principal)
        assert code == 0, err
        document = json.loads(out)
        account = {EMAILS[BOB]: BOB}.get(principal, principal)
        assert {r["page_id"] for r in document["results"]} == READABLE[account]
        assert document["principal"] == {"kind": "user", "account_id": account} and document["withheld"] is None
    code, out, err = run_cli(monkeypatch, capsys, db_url, "--json")
    document = json.loads(out)
    assert code == 0 and {r["page_id"] for r in document["results"]} == READABLE[None]
    assert document["withheld"] == 12 and document["principal"]["kind"] == "nobody"
    code, out, err = run_cli(monkeypatch, capsys, db_url)  # text: the withheld line on stderr
    assert code == 0 and "12 matches withheld: restricted pages need --as-user" in err
    assert out.count("[ENG]") == 2 and "Page 11" not in out
    code, out, err = run_cli(monkeypatch, capsys, db_url, "--as-user", ALICE)
    assert code == 0 and "withheld" not in err + out and "Page 11" in out
    with caplog.at_level(logging.WARNING):
        code, out, err = run_cli(monkeypatch, capsys, db_url, "--json", "--as-service-account")
    document = json.loads(out)
    assert code == 0 and {r["page_id"] for r in document["results"]} == READABLE["admin"]
    assert document["principal"]["kind"] == "service_account"
    assert "Confluence permissions not applied" in caplog.text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--as-user", "mallory@example.com"), "no Confluence user with that e-mail is known"),
        (("--as-user", ALICE, "--as-service-account"), "exclude each other"),
        (("--as-user", ""), "--as-user needs a Confluence account id"),
    ],
    ids=["unknown-email", "both", "empty"],
)
def test_cli_principal_errors_are_one_line(db_url, monkeypatch, capsys, args, expected):
    code, out, err = run_cli(monkeypatch, capsys, db_url, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1
    assert "mallory" not in err and not any(u in err for u in USERS if u != ALICE)


def test_cli_service_account_warns_on_stderr_in_one_line(db_url):
    env = {"DATABASE_URL": db_url, "CONFLUENCE_ASSETS_HOME": os.environ["CONFLUENCE_ASSETS_HOME"], "PATH": "/usr/bin"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "confluence-assets"), "search", QUERY, "--mode", "keyword",
         "--as-service-account", "--limit", str(WIDE)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "searching as the service account: Confluence permissions not applied" in lines[0]
    assert "Page 14" in done.stdout and "withheld" not in done.stderr
