"""The MCP server (``confluence-assets mcp``) driven by the mcp SDK's own client, over stdio (a subprocess of
this worktree's CLI) and over streamable HTTP (a server on a free port of 127.0.0.1), against a space synced
by the real pipeline (sandbox Confluence and embeddings over HTTP, Dagster runs, the embedded PostgreSQL).

Each tool is called and its answer checked against the sandbox's ground truth; a bad argument is a one-line
tool error; over HTTP a missing or unknown bearer token is refused with 401; and a page restricted to one
reader is, for everybody else, exactly as absent as a page that does not exist (search, read_page,
list_children), while that reader gets it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

import confluence_assets
from confluence_assets import cli
from confluence_assets.content.chunking import chunk_markdown, reassemble
from confluence_assets.content.metadata import word_count
from confluence_assets.db.connection import connect
from confluence_assets.mcp_auth import TokenFileError, TokenTable, bearer_token, hash_token, parse_tokens
from confluence_assets.mcp_server import build_server, fixed_principal
from confluence_assets.search import SearchService
from confluence_assets.search.pages import markdown_from_chunks
from confluence_assets.search.principal import Principal
from confluence_assets_tests.pipeline_support import (
    discover_spaces,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
    sync_space,
)

CLI = str(Path(sys.executable).parent / "confluence-assets")
PHRASE = "quokka bergamot ledger"  # only on the restricted page
SECRET_LABEL, SECRET_ISSUE = "vault", "VLT-7"  # likewise
TOOLS = {
    "search",
    "read_page",
    "list_spaces",
    "list_children",
    "pages_linking_to",
    "pages_with_jira_key",
    "pages_with_label",
    "pages_mentioning",
    "pages_by_author",
}
READER_TOKEN = "reader-token-7f3a9c2e51d84b06"
NOBODY_TOKEN = "nobody-token-0c6e2d9a44b71f58"
JIRA_IN_BODY = re.compile(r'ac:name="key">([A-Z][A-Z0-9_]*-\d+)<')
MENTION_IN_BODY = re.compile(r'ri:user ri:account-id="([^"]+)"')
LINK_IN_BODY = re.compile(r'<ri:page ri:content-title="([^"]+)"')


@pytest.fixture(scope="module")
def synced(server_url, _migrated_template, tmp_path_factory):
    """One generated space with a page (and its subtree) restricted to one reader, synced once."""
    from confluence_assets_tests.conftest import _create_database, _drop_database

    db_url = _create_database(server_url, "t_mcp_server", template=_migrated_template)
    site = generated_site(23, pages=16)
    key = only_space(site)
    reader = site.add_user("Rita Reader", email="rita@example.com")
    live = site.live_pages(key)
    secret = next(p for p in live if p.parent_id and site.child_ids(p.id))  # a page with children
    linked = next(p for p in live if p.id != secret.id and secret.id not in p.ancestors and p.parent_id)
    site.jira.add_issue(SECRET_ISSUE, "Audit the vault")
    site.edit_page(
        secret.id,
        body=f"<h1>Vault</h1><p>The {PHRASE} is kept here, see "
        f'<ac:link><ri:page ri:content-title="{linked.title}"/></ac:link>, ask '
        f'<ac:link><ri:user ri:account-id="{reader.account_id}"/></ac:link>.</p>'
        f'<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">{SECRET_ISSUE}</ac:parameter>'
        "</ac:structured-macro>",
    )
    site.add_label(secret.id, SECRET_LABEL)
    site.restrict_page(secret.id, [reader, site.default_user])
    tokens = tmp_path_factory.mktemp("mcp") / "tokens"
    tokens.touch(mode=0o600)
    tokens.write_text(
        f"# token principal\n{READER_TOKEN} {reader.account_id}\n{hash_token(NOBODY_TOKEN)} @nobody\n",
        encoding="utf-8",
    )
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, db_url)
        discover_spaces(instance, resources)
        assert sync_space(instance, resources, key).success
        env = {
            "DATABASE_URL": db_url,
            "OPENAI_API_KEY": sb.emb.api_key,
            "OPENAI_BASE_URL": sb.emb.url,
            "CONFLUENCE_ASSETS_HOME": os.environ["CONFLUENCE_ASSETS_HOME"],
        }
        yield {
            "site": site,
            "key": key,
            "reader": reader.account_id,
            "secret": secret.id,
            "linked": linked.id,
            "env": env,
            "tokens": tokens,
        }
    _drop_database(server_url, "t_mcp_server")


def unrestricted(site, key: str) -> set[str]:
    return {
        p.id
        for p in site.live_pages(key)
        if not any("read" in site.page(x).restrictions for x in [*site.ancestor_ids(p.id), p.id])
    }


def stdio(synced, *args: str) -> Client:
    return Client(StdioServerParameters(command=CLI, args=["mcp", *args], env=synced["env"]))


async def call(client: Client, tool: str, **arguments):
    """(is_error, the JSON answer or the error's text)."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text
    return (True, text) if result.is_error else (False, json.loads(text))


async def answer(client: Client, tool: str, **arguments):
    failed, value = await call(client, tool, **arguments)
    assert not failed, value
    return value


def page_ids(value) -> set[str]:
    return {p["page_id"] for p in value["pages"]}


def questions_the_secret_page_answers(synced) -> list[tuple[str, dict]]:
    """Every metadata tool, asked a question whose answer (for a reader) includes the restricted page."""
    return [
        ("pages_with_label", {"label": SECRET_LABEL}),
        ("pages_with_jira_key", {"issue_key": SECRET_ISSUE}),
        ("pages_mentioning", {"account_id": synced["reader"]}),
        ("pages_by_author", {"account_id": synced["site"].page(synced["secret"]).author_id}),
        ("pages_linking_to", {"page_id": synced["linked"]}),
        ("search", {"query": PHRASE, "labels": [SECRET_LABEL], "jira_keys": [SECRET_ISSUE]}),
    ]


def test_stdio_serves_every_tool_as_nobody_named(synced):
    site, key, secret = synced["site"], synced["key"], synced["secret"]
    open_pages = unrestricted(site, key)
    live = {p.id: p for p in site.live_pages(key)}
    bodies = {p.id: site.page(p.id).body for p in live.values() if p.id in open_pages}
    labelled = next(p for p in live.values() if p.labels and p.id in open_pages)
    label = labelled.labels[0]
    jira_page, jira_key = next((pid, m.group(1)) for pid, b in bodies.items() for m in [JIRA_IN_BODY.search(b)] if m)
    mention_page, mentioned = next(
        (pid, m.group(1)) for pid, b in bodies.items() for m in [MENTION_IN_BODY.search(b)] if m
    )
    by_title = {p.title: p.id for p in live.values()}
    linker, target = next(
        (pid, by_title[m.group(1)])
        for pid, b in bodies.items()
        for m in LINK_IN_BODY.finditer(b)
        if by_title.get(m.group(1)) in open_pages
    )
    parent = next(p for p in live.values() if p.id in open_pages and site.child_ids(p.id) and p.id != secret)

    async def scenario():
        async with stdio(synced) as client:
            listed = await client.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            assert all(t.description and t.annotations.read_only_hint for t in listed.tools)

            found = await answer(client, "search", query=labelled.title, spaces=[key], limit=5, chunks_per_page=2)
            assert found["principal"] == "nobody" and found["mode"] == "hybrid"
            first = found["pages"][0]
            assert first["page_id"] == labelled.id
            assert first["url"].startswith("http://127.0.0.1") and first["title"] in first["breadcrumb"]
            assert 1 <= len(first["chunks"]) <= 2
            assert all(c["citation"]["url"] == first["url"] and c["citation"]["breadcrumb"] for c in first["chunks"])
            assert len({p["page_id"] for p in found["pages"]}) == len(found["pages"]) <= 5
            by_label = await answer(client, "search", query=labelled.title, labels=[label], mode="keyword")
            assert page_ids(by_label) and page_ids(by_label) <= {p.id for p in live.values() if label in p.labels}
            under = await answer(
                client, "search", query=parent.title, under_page_id=parent.id, modified_since="2000-01-01"
            )
            below = {parent.id} | {p.id for p in live.values() if parent.id in p.ancestors}
            assert page_ids(under) and page_ids(under) <= below

            page = await answer(client, "read_page", page_id=labelled.id)
            assert page["title"] == labelled.title and page["url"] == first["url"]
            assert label in page["metadata"]["labels"] and page["breadcrumb"][-1]["page_id"] == labelled.id
            assert "children" not in page["metadata"] and "ancestors" not in page["metadata"]
            text = " ".join(re.sub(r"<[^>]+>", " ", site.page(labelled.id).body).split()[:6])
            assert text.split()[0] in page["markdown"], (text, page["markdown"][:200])

            # Every open page reads back whole: as many words as its Markdown had when converted (the overlap
            # between chunks is not repeated, nothing is lost).
            documents = [await answer(client, "read_page", page_id=pid) for pid in sorted(open_pages)]
            assert max(d["chunks"] for d in documents) >= 3
            for d in documents:
                assert word_count(d["markdown"]) == d["metadata"]["word_count"], d["page_id"]

            spaces = await answer(client, "list_spaces")
            assert [s["space_key"] for s in spaces["spaces"]] == [key]
            assert spaces["spaces"][0]["readable_pages"] == len(open_pages)

            children = await answer(client, "list_children", page_id=parent.id)
            assert page_ids(children) == set(site.child_ids(parent.id)) & open_pages

            assert page_ids(await answer(client, "pages_with_label", label=label)) == {
                p.id for p in live.values() if label in p.labels and p.id in open_pages
            }
            jira = await answer(client, "pages_with_jira_key", issue_key=jira_key.lower(), spaces=[key])
            assert jira_page in page_ids(jira) and page_ids(jira) <= open_pages
            assert mention_page in page_ids(await answer(client, "pages_mentioning", account_id=mentioned))
            author = site.page(labelled.id).author_id
            authored = await answer(client, "pages_by_author", account_id=author)
            assert page_ids(authored) == {p for p in open_pages if site.page(p).author_id == author}
            assert linker in page_ids(await answer(client, "pages_linking_to", page_id=target))

            # Bad arguments: one line each, naming what is wrong.
            for tool, arguments, expected in [
                ("search", {"query": "x", "limit": "many"}, "limit"),
                ("search", {"query": "x", "limit": 0}, "limit"),
                ("search", {"query": "x", "mode": "psychic"}, "mode"),
                ("search", {"query": "x", "jira_keys": ["not a key"]}, "Jira"),
                ("search", {"query": "x", "modified_since": "yesterday"}, "date"),
                ("search", {}, "query"),
                ("read_page", {"page_id": "../etc/passwd"}, "page id"),
                ("pages_with_jira_key", {"issue_key": "nope"}, "Jira"),
                ("list_children", {"page_id": parent.id, "limit": 10**6}, "limit"),
            ]:
                failed, message = await call(client, tool, **arguments)
                assert failed and "\n" not in message and expected in message, (tool, arguments, message)
                assert "Traceback" not in message

            # The restricted page: absent, word for word like a page that does not exist.
            hidden = await answer(client, "search", query=PHRASE, limit=20, mode="keyword")
            assert secret not in page_ids(hidden)
            assert secret not in page_ids(await answer(client, "search", query=PHRASE, limit=50))
            missing = "987654321"
            for tool in ("read_page", "list_children", "pages_linking_to"):
                failed, for_secret = await call(client, tool, page_id=secret)
                failed_too, for_missing = await call(client, tool, page_id=missing)
                assert failed and failed_too and "not found" in for_secret
                assert for_secret.replace(secret, "ID") == for_missing.replace(missing, "ID")
            assert not page_ids(await answer(client, "search", query=PHRASE, under_page_id=secret))
            for tool, arguments in questions_the_secret_page_answers(synced):
                assert secret not in page_ids(await answer(client, tool, **arguments)), tool

    asyncio.run(scenario())


def test_stdio_as_the_reader_gets_the_restricted_page(synced):
    secret, site = synced["secret"], synced["site"]

    async def scenario():
        async with stdio(synced, "--as-user", synced["reader"]) as client:
            found = await answer(client, "search", query=PHRASE, limit=3, mode="keyword")
            assert found["principal"] == "user" and found["pages"][0]["page_id"] == secret
            assert PHRASE in found["pages"][0]["chunks"][0]["content"]
            page = await answer(client, "read_page", page_id=secret)
            assert PHRASE in page["markdown"] and page["markdown"].count(PHRASE) == 1
            children = await answer(client, "list_children", page_id=secret)
            assert page_ids(children) == set(site.child_ids(secret))
            for tool, arguments in questions_the_secret_page_answers(synced):
                assert secret in page_ids(await answer(client, tool, **arguments)), tool

    asyncio.run(scenario())


def test_an_unknown_email_as_principal_is_refused_in_one_line(synced, capsys, monkeypatch):
    for name, value in synced["env"].items():
        monkeypatch.setenv(name, value)
    assert cli.main(["mcp", "--as-user", "nobody-known@example.com"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Confluence user" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(synced, tmp_path_factory):
    port = free_port()
    env = {**os.environ, **synced["env"], "CONFLUENCE_MCP_TOKENS_FILE": str(synced["tokens"])}
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads: the server never blocks on its output
        proc = subprocess.Popen([CLI, "-v", "mcp", "--http", f"127.0.0.1:{port}"], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/mcp", proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def over_http(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=30)))


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}


def test_http_refuses_a_missing_or_unknown_token(http_server):
    url, _, _ = http_server
    headers = {"Accept": "application/json, text/event-stream"}
    refused = ({}, {"Authorization": "Bearer not-a-configured-token-123"}, {"Authorization": f"Basic {READER_TOKEN}"})
    for extra in refused:
        response = httpx2.post(url, json=INITIALIZE, headers={**headers, **extra}, timeout=10)
        assert response.status_code == 401, (extra, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert READER_TOKEN not in response.text
    known = httpx2.post(url, json=INITIALIZE, headers={**headers, "Authorization": f"Bearer {READER_TOKEN}"})
    assert known.status_code == 200, known.text

    async def refused_by_client(token):
        with pytest.raises(Exception):  # noqa: B017 - the SDK's client fails the connection on 401
            async with over_http(url, token) as client:
                await client.list_tools()

    asyncio.run(refused_by_client(None))
    asyncio.run(refused_by_client("an-unknown-token-of-some-length"))


def test_http_searches_as_each_tokens_principal(http_server, synced):
    url, proc, log = http_server
    secret = synced["secret"]

    async def scenario():
        async with over_http(url, READER_TOKEN) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            found = await answer(client, "search", query=PHRASE, limit=3)
            assert found["principal"] == "user" and found["pages"][0]["page_id"] == secret
            assert PHRASE in (await answer(client, "read_page", page_id=secret))["markdown"]
            assert [s["space_key"] for s in (await answer(client, "list_spaces"))["spaces"]] == [synced["key"]]
            failed, message = await call(client, "search", query="x", limit="many")
            assert failed and "\n" not in message and "limit" in message
        async with over_http(url, NOBODY_TOKEN) as client:
            found = await answer(client, "search", query=PHRASE, limit=20, mode="keyword")
            assert found["principal"] == "nobody" and secret not in page_ids(found)
            failed, for_secret = await call(client, "read_page", page_id=secret)
            failed_too, for_missing = await call(client, "read_page", page_id="987654321")
            assert failed and failed_too and for_secret.replace(secret, "ID") == for_missing.replace("987654321", "ID")

    asyncio.run(scenario())
    assert proc.poll() is None
    logged = log.read_text()
    assert "MCP over streamable HTTP" in logged and "2 from" in logged  # -v: the tokens file was read
    assert READER_TOKEN not in logged and NOBODY_TOKEN not in logged  # tokens are never logged


def test_http_needs_a_tokens_file_and_an_address(capsys, monkeypatch):
    monkeypatch.delenv("CONFLUENCE_MCP_TOKENS_FILE", raising=False)
    for argv, expected in [
        (["mcp", "--http", "127.0.0.1:1"], "CONFLUENCE_MCP_TOKENS_FILE"),
        (["mcp", "--http", "nowhere"], "HOST:PORT"),
        (["mcp", "--http", "127.0.0.1:1", "--as-user", "acc-x"], "bearer token's principal"),
        (["mcp", "--tokens-file", "t"], "--tokens-file is for --http"),
    ]:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)


BAD_TOKEN_FILES = [
    ("", "lists no token"),
    ("# only a comment\n", "lists no token"),
    ("short @nobody\n", "line 1: a token needs at least 16"),
    ("a-long-enough-token-1\n", "line 1: expected '<token> <principal>'"),
    ("a-long-enough-token-1 @nobody\n\na-long-enough-token-1 someone\n", "line 3: the same token"),
    (f"{hash_token('a-long-enough-token-1')} @nobody\na-long-enough-token-1 x\n", "line 2: the same token"),
    ("sha256:abc @nobody\n", "line 1: sha256: needs the 64 hex digits"),
]


def test_a_bad_tokens_file_names_its_line_never_a_token():
    for text, problem in BAD_TOKEN_FILES:
        with pytest.raises(TokenFileError, match=re.escape(problem)) as raised:
            parse_tokens(text, "tokens.txt")
        assert "a-long-enough-token-1" not in str(raised.value) and "short" not in str(raised.value)


def test_a_token_maps_to_its_principal_and_nothing_else_does():
    alice, nobody = Principal(account_id="acc-alice"), Principal()
    parsed = parse_tokens(f"alice-token-0123456789 acc-alice\n{hash_token('nobody-token-0123456789')} @nobody", "t")
    table = TokenTable(tuple((digest, alice if spec == "acc-alice" else nobody) for digest, spec in parsed))
    assert table.principal_for("alice-token-0123456789") == alice
    assert table.principal_for("nobody-token-0123456789") == nobody
    for wrong in (None, "", "alice-token-012345678", "alice-token-0123456789 ", "ALICE-TOKEN-0123456789"):
        assert table.principal_for(wrong) is None, wrong
    assert bearer_token([(b"authorization", b"Bearer abc")]) == "abc"
    assert bearer_token([(b"Authorization", b"bearer  abc ")]) == "abc"
    for headers in ([], [(b"authorization", b"Basic abc")], [(b"authorization", b"Bearer")]):
        assert bearer_token(headers) is None
    assert bearer_token([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]) is None


def test_a_page_reads_back_from_its_chunks_without_the_overlap():
    sentences = " ".join(f"Sentence {n} tells the kiln story of batch {n * 7}." for n in range(120))
    markdown = f"# Kiln\n\n{sentences}\n\n## Glaze\n\n{sentences}\n"
    chunks = chunk_markdown(markdown, "Kiln log", chunk_tokens=120, overlap_tokens=30)
    assert sum(c.own_start > 0 for c in chunks) >= 3  # chunks that start with the previous one's tail
    stored = [(c.content, c.own_start, c.own_end) for c in chunks]
    assert markdown_from_chunks(stored) == reassemble(chunks)
    assert word_count(markdown_from_chunks(stored)) == word_count(markdown)
    # Chunks synced before the bounds were stored: read whole, the overlap repeated rather than lost.
    assert word_count(markdown_from_chunks([(c.content, None, None) for c in chunks])) > word_count(markdown)


def test_the_sync_stores_each_chunks_own_bounds(synced):
    with psycopg.connect(synced["env"]["DATABASE_URL"]) as conn:
        total, bounded = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE metadata ? 'own_start' AND metadata ? 'own_end')"
            " FROM archon_crawled_pages"
        ).fetchone()
    assert total > 16 and bounded == total


def test_a_lost_database_connection_is_opened_again(synced):
    """In process (the SDK's client on the server object): the server's session is terminated between two
    calls, as a database restart would; the next call connects again and answers."""
    url = synced["env"]["DATABASE_URL"]
    service = SearchService(connect(url, autocommit=True))
    server = build_server(service, fixed_principal(Principal()), lambda: connect(url, autocommit=True))

    async def scenario():
        async with Client(server) as client:
            before = await answer(client, "list_spaces")
            with psycopg.connect(url, autocommit=True) as admin:
                pid = service.conn.info.backend_pid
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            assert await answer(client, "list_spaces") == before
            assert service.conn.info.backend_pid != pid

    try:
        asyncio.run(scenario())
    finally:
        service.close()


def test_without_the_extra_the_command_says_what_to_install(monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing mcp now fails as when it is not installed
    monkeypatch.delitem(sys.modules, "confluence_assets.mcp_server")
    monkeypatch.delattr(confluence_assets, "mcp_server")  # else `from confluence_assets import` finds it
    assert cli.main(["mcp"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'confluence-assets[mcp]'" in err
    # The other commands never import the SDK: the default install needs no extra.
    probe = "import sys, confluence_assets.cli as c; c.build_parser(); print('mcp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
