"""Conversion, metadata and chunking on every real sample page (see content_helpers for attribution)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from bs4 import BeautifulSoup

from confluence_assets.content import chunk_markdown, convert_page, own_text, reassemble
from confluence_assets.content.blocks import scan
from confluence_assets.content.links import LinkContext
from confluence_assets_tests.content_helpers import (
    BASE_URL,
    SAMPLE_IDS,
    SAMPLES_DIR,
    column_count,
    fenced_lines,
    fences_balanced,
    load_sample,
    non_ws,
    table_rows,
)

_CODE_MACRO = re.compile(
    r'<ac:structured-macro ac:name="code".*?<ac:plain-text-body><!\[CDATA\[(.*?)\]\]></ac:plain-text-body>', re.S
)


def _storage(page_id: str) -> str:
    return (SAMPLES_DIR / page_id / "page.xhtml").read_text(encoding="utf-8")


def _soup(page_id: str) -> BeautifulSoup:
    # CDATA as comments: an independent parse that keeps code out of the text.
    return BeautifulSoup(_storage(page_id).replace("<![CDATA[", "<!--").replace("]]>", "-->"), "html.parser")


@pytest.fixture(scope="module")
def converted() -> dict:
    return {pid: convert_page(load_sample(pid), BASE_URL) for pid in SAMPLE_IDS}


@pytest.fixture(scope="module")
def chunked(converted) -> dict:
    return {pid: chunk_markdown(c.markdown, c.title) for pid, c in converted.items()}


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_every_code_line_is_verbatim_inside_a_fence(page_id, converted):
    md = converted[page_id].markdown
    inside = fenced_lines(md)
    codes = _CODE_MACRO.findall(_storage(page_id))
    for code in codes:
        for line in code.split("\n"):
            if line.strip():
                assert any(f.endswith(line) and not f[: len(f) - len(line)].strip(" >\t") for f in inside), line
    assert md.count("```") % 2 == 0 and fences_balanced(md)


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_no_chunk_cuts_a_fence_open_and_small_chunks_too(page_id, converted):
    md = converted[page_id].markdown
    for tokens in (800, 120):  # small chunks force code blocks and tables to be split
        chunks = chunk_markdown(md, converted[page_id].title, chunk_tokens=tokens, overlap_tokens=20)
        for chunk in chunks:
            assert fences_balanced(chunk.content), chunk.content
            assert chunk.token_count <= tokens
        assert non_ws(reassemble(chunks)) == non_ws(md)


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_every_page_link_is_a_markdown_link(page_id, converted):
    md = converted[page_id].markdown
    ctx = LinkContext(BASE_URL, page_id, "QM")
    known = {(link["page_title"], link["page_url"]) for link in converted[page_id].metadata["internal_links"]}
    for ri in _soup(page_id).find_all("ri:page"):
        title = ri.get("ri:content-title")
        urls = [url for t, url in known if t == title]  # resolved to an id (a child page) or by title
        assert urls == [urls[0]] and urls[0] in (ctx.page_url_by_title(ri.get("ri:space-key"), title), urls[0])
        if "/display/" not in urls[0]:
            assert re.search(r"/pages/[0-9]+$", urls[0])
        assert re.search(r"\[[^\]]+\]\(" + re.escape(urls[0]) + r"[)#]", md), title


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_every_table_is_a_markdown_table_with_its_columns(page_id, converted):
    soup = _soup(page_id)
    expected = []
    for table in soup.find_all("table"):
        if table.find_parent(["td", "th"]):
            continue
        first = table.find("tr")
        expected.append(sum(int(c.get("colspan", 1)) for c in first.find_all(["td", "th"], recursive=False)))
    tables = table_rows(converted[page_id].markdown)
    assert [column_count(t[0]) for t in tables] == expected
    for rows in tables:
        assert re.fullmatch(r"\|( --- \|)+", rows[1])  # a header separator
        assert {column_count(r) for r in rows} == {column_count(rows[0])}


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_no_confluence_markup_or_parameter_leaks(page_id, converted):
    md = converted[page_id].markdown
    text = re.sub(r"\]\([^)]*\)", "]", md)  # URLs may legitimately contain anything
    assert not re.search(r"\b(?:ac|ri):[a-z]", text)
    soup = _soup(page_id)
    shown = {
        ("expand", "title"),
        ("status", "title"),
        ("jira", "key"),
        *((p, "title") for p in ("info", "note", "warning", "tip", "panel")),
    }
    params = [
        p.get_text().strip()
        for p in soup.find_all("ac:parameter")
        if (p.parent.get("ac:name"), p.get("ac:name")) not in shown  # those are meant to be read
    ]
    for p in soup.find_all("ac:parameter"):
        p.decompose()
    visible = soup.get_text()
    for value in params:
        if len(value) >= 3 and value not in visible:
            assert value not in text, value


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_metadata(page_id, converted):
    page = load_sample(page_id)
    result = converted[page_id]
    meta = json.loads(json.dumps(result.metadata))  # JSON-serialisable
    assert result.path == "/" + "/".join([a["id"] for a in page["ancestors"]] + [page_id])
    assert [a["id"] for a in meta["ancestors"]] == [a["id"] for a in page["ancestors"]]
    assert all(a["url"].startswith(BASE_URL + "/") for a in meta["ancestors"])
    assert result.url == BASE_URL + page["_links"]["webui"]
    assert len(meta["children"]) == len(page["children"]["page"]["results"])
    listed = {a["title"] for a in page["children"]["attachment"]["results"]}
    assert listed <= {a["title"] for a in meta["asset_links"]}
    for asset in meta["asset_links"]:
        assert asset["download_url"].startswith("https://")
    assert meta["word_count"] > 0 and meta["content_length"] == len(result.markdown)
    assert [h["text"] for h in meta["headings"]] == [b.title for b in scan(result.markdown) if b.kind == "heading"]
    links = _soup(page_id).find_all("ri:page")
    assert len(meta["internal_links"]) >= len({ri.get("ri:content-title") for ri in links})


def test_code_languages_and_expand_on_the_kubernetes_page(converted):
    md = converted["544381877"].markdown
    assert "**Expand**" in md or "**" in md
    assert "#!/bin/bash" in fenced_lines(md)


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_chunks_carry_context_and_stable_hashes(page_id, converted, chunked):
    result, chunks = converted[page_id], chunked[page_id]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    again = chunk_markdown(result.markdown, result.title)
    assert [c.content_hash for c in again] == [c.content_hash for c in chunks]
    headings = {b.title for b in scan(result.markdown) if b.kind == "heading"}
    for chunk in chunks:
        assert chunk.breadcrumb[0] == result.title and chunk.section_title == chunk.breadcrumb[-1]
        assert set(chunk.breadcrumb[1:]) <= headings
        assert chunk.embedding_text == " > ".join(chunk.breadcrumb) + "\n\n" + chunk.content
        assert chunk.content_hash == hashlib.sha256(chunk.embedding_text.encode()).hexdigest()
        assert chunk.token_count <= 800


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_editing_one_paragraph_changes_only_its_chunk_and_overlap_neighbour(page_id, converted):
    md = converted[page_id].markdown
    title = converted[page_id].title
    before = chunk_markdown(md, title, chunk_tokens=300, overlap_tokens=30)
    # Paragraphs past their opening 64 characters (which choose cut points, see chunking._level).
    paragraphs = [b for b in scan(md) if b.kind == "text" and b.end - b.start > 160]
    # (pages without such paragraphs have nothing to check)
    for block in paragraphs:
        text = md[block.start : block.end]
        for at in (block.start + len(text) // 2, block.end):  # an edit inside it, one at its end
            edited = md[:at] + " (edited)" + md[at:]
            after = {c.content_hash for c in chunk_markdown(edited, title, chunk_tokens=300, overlap_tokens=30)}
            marks = (text[:24], text[len(text) // 2 - 12 : len(text) // 2 + 12], text[-24:])
            holding = {c.index for c in before if any(m in own_text(c) for m in marks)}
            for chunk in before:
                if chunk.index not in holding and chunk.index - 1 not in holding:
                    assert chunk.content_hash in after, (page_id, block, chunk.index, sorted(holding))


def test_the_edit_check_can_fail(converted):
    md = converted["544112828"].markdown
    before = chunk_markdown(md, "T", chunk_tokens=300)
    after = {c.content_hash for c in chunk_markdown(md.replace("## ", "## X", 1), "T", chunk_tokens=300)}
    assert any(c.content_hash not in after for c in before)
