"""Conversion, metadata and chunking on every real sample page (see content_helpers for attribution)."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from bs4 import BeautifulSoup

from confluence_assets.content import chunk_markdown, convert_page, own_text, reassemble
from confluence_assets.content.blocks import scan
from confluence_assets_tests.content_helpers import (
    BASE_URL,
    SAMPLE_IDS,
    SAMPLES_DIR,
    column_count,
    fenced_blocks,
    fenced_lines,
    fences_balanced,
    load_sample,
    non_ws,
    read_json,
    sample_author_name,
    table_rows,
)

SPACE = "QM"
# Code and noformat macros, read from the raw storage (not through any parser the converter uses).
_CODE_MACRO = re.compile(r'<ac:(structured-macro|macro)\b[^>]*?\bac:name="(code|noformat)"[^>]*>(.*?)</ac:\1>', re.S)
_LANGUAGE = re.compile(r'<ac:parameter ac:name="language">([^<]*)</ac:parameter>')
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_ATX = re.compile(r"^((?:> ?)*)(#{1,6})[ \t]+(.*?)[ \t]*$")
_INLINE_MARKUP = re.compile(r"\*\*|__|~~|[*`]")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _storage(page_id: str) -> str:
    return (SAMPLES_DIR / page_id / "page.xhtml").read_text(encoding="utf-8")


def _soup(page_id: str) -> BeautifulSoup:
    # CDATA as comments: an independent parse that keeps code out of the text.
    return BeautifulSoup(_storage(page_id).replace("<![CDATA[", "<!--").replace("]]>", "-->"), "html.parser")


def code_macros(storage: str) -> list[tuple[str, str]]:
    """(language, code) of every code and noformat macro in document order."""
    found = []
    for _, name, inner in _CODE_MACRO.findall(storage):
        head, _, body = inner.partition("<ac:plain-text-body>")
        language = _LANGUAGE.search(head) if name == "code" else None
        code = "".join(_CDATA.findall(body.partition("</ac:plain-text-body>")[0]))
        found.append((language.group(1).strip().lower() if language else "", code))
    return found


def _first_occurrences(items: list[dict], key) -> list[dict]:
    seen: dict = {}
    for item in items:
        seen.setdefault(key(item), item)
    return list(seen.values())


def _known_titles(page_id: str) -> dict[str, str]:
    """Titles whose ids the page itself lists: its ancestors, its children and itself."""
    v1 = read_json(page_id, "page.v1.json")
    children = read_json(page_id, "children.v2.json")["results"]
    return {p["title"]: p["id"] for p in [*v1["ancestors"], *children, v1]}


def _expected_page_links(page_id: str) -> list[dict]:
    """Every ri:page link as the metadata should list it, with the URL Confluence would link to."""
    known = _known_titles(page_id)
    links = []
    for ri in _soup(page_id).find_all("ri:page"):
        title = ri["ri:content-title"].strip()
        space = ri.get("ri:space-key") or SPACE
        if space == SPACE and title in known:
            target_id, url = known[title], f"{BASE_URL}/spaces/{SPACE}/pages/{known[title]}"
        else:
            target_id, url = None, f"{BASE_URL}/display/{space}/{quote_plus(title)}"
        links.append({"page_id": target_id, "page_title": title, "space_key": space, "page_url": url})
    return links


def _expected_external_links(page_id: str) -> list[dict]:
    """<a href> links that leave the site (anchors, this site's pages and Jira issues excluded)."""
    links = []
    for a in _soup(page_id).find_all("a"):
        href = a.get("href", "").strip()
        if not href or href.startswith("#") or re.search(r"/browse/[A-Z][A-Z0-9_]*-[0-9]+", href):
            continue
        if urlsplit(href).netloc == urlsplit(BASE_URL).netloc and re.search(r"/pages/[0-9]+", href):
            continue
        links.append({"title": " ".join(a.get_text().split()) or href, "url": href})
    return _first_occurrences(links, lambda link: link["url"])


def _xhtml_headings(page_id: str) -> list[tuple[int, str]]:
    soup = _soup(page_id)
    found = [(int(h.name[1]), " ".join(h.get_text().split())) for h in soup.find_all(re.compile(r"^h[1-6]$"))]
    return [(level, text) for level, text in found if text]


def _markdown_headings(markdown: str) -> list[tuple[int, str]]:
    """ATX heading lines outside code, their text without inline markup."""
    code = set(fenced_lines(markdown))
    found = []
    for line in markdown.split("\n"):
        m = _ATX.match(line)
        if m and line not in code:
            text = _INLINE_MARKUP.sub("", _MD_LINK.sub(r"\1", m.group(3)))
            found.append((len(m.group(2)), " ".join(text.split())))
    return found


@pytest.fixture(scope="module")
def converted() -> dict:
    return {pid: convert_page(load_sample(pid), BASE_URL) for pid in SAMPLE_IDS}


@pytest.fixture(scope="module")
def chunked(converted) -> dict:
    return {pid: chunk_markdown(c.markdown, c.title) for pid, c in converted.items()}


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_every_code_macro_is_one_fenced_block_with_its_language_and_lines(page_id, converted):
    md = converted[page_id].markdown
    macros = code_macros(_storage(page_id))
    assert "<pre" not in _storage(page_id)  # so every fenced block comes from a macro
    # One block per macro, in order: the macro's language, every line verbatim (indentation kept), the
    # quote/list prefix of the block removed. Only the code's leading and trailing empty lines may go.
    assert [(b.info, list(b.lines)) for b in fenced_blocks(md)] == [
        (language, code.strip("\n").split("\n")) for language, code in macros
    ]
    assert md.count("```") % 2 == 0 and fences_balanced(md)
    assert converted[page_id].metadata["code_languages"] == list(dict.fromkeys(lang for lang, _ in macros if lang))


def _with_languages_and_noformat(page_id: str, languages: list[str]) -> tuple[dict, list[tuple[str, str]]]:
    """The sample with a language on each code macro (cycling through ``languages``) and its last code
    macro turned into a noformat macro; returns the page and the macros as now written."""
    storage = _storage(page_id)
    count = len(code_macros(storage))
    n = 0

    def rewrite(m: re.Match) -> str:
        nonlocal n
        n += 1
        if n == count:
            return m.group(0).replace('ac:name="code"', 'ac:name="noformat"', 1)
        return m.group(0) + f'<ac:parameter ac:name="language">{languages[(n - 1) % len(languages)]}</ac:parameter>'

    storage = re.sub(r'<ac:structured-macro ac:name="code"[^>]*>', rewrite, storage)
    page = load_sample(page_id)
    page["body"]["storage"]["value"] = storage
    return page, code_macros(storage)


@pytest.mark.parametrize("page_id", [pid for pid in SAMPLE_IDS if len(code_macros(_storage(pid))) >= 2])
def test_real_code_macros_with_languages_and_a_noformat(page_id):
    page, macros = _with_languages_and_noformat(page_id, ["yaml", "bash", "json"])
    assert macros[-1][0] == "" and {lang for lang, _ in macros[:-1]} <= {"yaml", "bash", "json"}
    result = convert_page(page, BASE_URL)
    blocks = fenced_blocks(result.markdown)
    assert [(b.info, list(b.lines)) for b in blocks] == [
        (language, code.strip("\n").split("\n")) for language, code in macros
    ]
    # Every language present, once, in the order the page first uses them.
    assert result.metadata["code_languages"] == list(dict.fromkeys(lang for lang, _ in macros if lang))
    assert "noformat" not in result.markdown and "language" not in result.markdown


def test_the_code_block_check_can_fail(converted):
    md = converted["544381877"].markdown
    macros = code_macros(_storage("544381877"))
    expected = [(language, code.strip("\n").split("\n")) for language, code in macros]
    split = md.replace("\nset -o nounset", "\n```\n\n```\nset -o nounset", 1)  # one macro, two blocks
    dedented = md.replace("\n    BASE64_DECODE_FLAG", "\nBASE64_DECODE_FLAG", 1)
    for broken in (split, dedented, md.replace("```\n#!/bin/bash", "```sh\n#!/bin/bash", 1)):
        assert [(b.info, list(b.lines)) for b in fenced_blocks(broken)] != expected


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
    expected = _expected_page_links(page_id)
    links_in_md = [
        (_INLINE_MARKUP.sub("", text).strip(), url) for text, url in re.findall(r"\[([^\]]*)\]\(([^)\s]+)\)", md)
    ]
    for ri, link in zip(_soup(page_id).find_all("ri:page"), expected, strict=True):
        # A title the page knows the id of (an ancestor, a child) links by id, any other by title.
        assert link["page_url"].startswith(
            f"{BASE_URL}/spaces/{SPACE}/pages/" if link["page_id"] else f"{BASE_URL}/display/"
        )
        anchor = ri.parent.get("ac:anchor")
        href = link["page_url"] + (f"#{quote(anchor)}" if anchor else "")
        text = " ".join(ri.parent.get_text().split()) or link["page_title"]
        assert (text, href) in links_in_md, (text, href)
    key = lambda link: (link["page_id"],) if link["page_id"] else (link["space_key"], link["page_title"])  # noqa: E731
    assert converted[page_id].metadata["internal_links"] == _first_occurrences(expected, key)


def test_title_links_found_by_a_lookup_link_by_id():
    # 544178405 links 25 titles it does not know itself; a lookup (the sync's) finds their ids.
    titles = [link["page_title"] for link in _expected_page_links("544178405")]
    ids = {title: str(900 + n) for n, title in enumerate(titles)}
    result = convert_page(load_sample("544178405"), BASE_URL, resolve_title=lambda space, title: ids.get(title))
    expected = [
        {"page_id": ids[t], "page_title": t, "space_key": SPACE, "page_url": f"{BASE_URL}/spaces/QM/pages/{ids[t]}"}
        for t in titles
    ]
    assert result.metadata["internal_links"] == _first_occurrences(expected, lambda link: link["page_id"])
    targets = re.findall(r"\]\(([^)\s]+)\)", result.markdown)
    assert all(link["page_url"] in targets for link in expected)
    assert "/display/" not in result.markdown


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


def _person(account_id: str) -> dict:
    return {
        "account_id": account_id,
        "display_name": sample_author_name(account_id),
        "email": None,  # Cloud's "" is no address
        "profile_url": f"{BASE_URL}/people/{quote(account_id, safe='')}",
    }


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_metadata(page_id, converted):
    page = load_sample(page_id)
    v1, v2 = read_json(page_id, "page.v1.json"), read_json(page_id, "page.v2.json")
    soup = _soup(page_id)
    result = converted[page_id]
    meta = json.loads(json.dumps(result.metadata))  # JSON-serialisable
    assert result.path == "/" + "/".join([a["id"] for a in v1["ancestors"]] + [page_id])
    assert [a["id"] for a in meta["ancestors"]] == [a["id"] for a in v1["ancestors"]]
    assert all(a["url"].startswith(BASE_URL + "/") for a in meta["ancestors"])
    assert result.url == BASE_URL + v1["_links"]["webui"]
    children = read_json(page_id, "children.v2.json")["results"]
    assert [(c["id"], c["title"]) for c in meta["children"]] == [(c["id"], c["title"]) for c in children]
    listed = {a["title"] for a in page["children"]["attachment"]["results"]}
    assert listed <= {a["title"] for a in meta["asset_links"]}
    for asset in meta["asset_links"]:
        assert asset["download_url"].startswith("https://")
    assert meta["word_count"] > 0 and meta["content_length"] == len(result.markdown)
    # Who and when: page.v2.json holds the ids and times the v1 version/history expansions carry.
    assert meta["created_by"] == _person(v2["authorId"])
    assert meta["last_modified_by"] == _person(v2["version"]["authorId"])
    assert meta["version"] == v2["version"]["number"] and meta["updated_at"] == v2["version"]["createdAt"]
    assert meta["created_at"] == v2["createdAt"]
    # What the page points at, read from the storage by BeautifulSoup.
    assert meta["labels"] == [lab["name"] for lab in (v1.get("metadata") or {}).get("labels", {}).get("results", [])]
    macros = soup.find_all("ac:structured-macro", attrs={"ac:name": "jira"})
    jira = [p.get_text().strip() for m in macros for p in m.find_all("ac:parameter", attrs={"ac:name": "key"})]
    jira += re.findall(r"/browse/([A-Z][A-Z0-9_]*-[0-9]+)", " ".join(a.get("href", "") for a in soup.find_all("a")))
    assert [j["issue_key"] for j in meta["jira_issue_links"]] == list(dict.fromkeys(jira))
    mentioned = [u.get("ri:account-id") or u.get("ri:userkey") for u in soup.find_all("ri:user")]
    assert [m["account_id"] for m in meta["user_mentions"]] == list(dict.fromkeys(mentioned))
    assert meta["external_links"] == _expected_external_links(page_id)
    languages = [lang for lang, _ in code_macros(_storage(page_id)) if lang]
    assert meta["code_languages"] == list(dict.fromkeys(languages))
    assert [(h["level"], h["text"]) for h in meta["headings"]] == _xhtml_headings(page_id)


def test_metadata_of_a_bare_v1_page_leaves_what_it_lacks_empty():
    # page.v1.json as fetched (expand=body.storage,ancestors): no version, history, labels or children.
    result = convert_page(read_json("544381877", "page.v1.json"), BASE_URL)
    meta = result.metadata
    assert meta["created_by"] is None and meta["last_modified_by"] is None and meta["version"] is None
    assert meta["labels"] == [] and meta["children"] == [] and meta["created_at"] is None
    assert [a["id"] for a in meta["ancestors"]] == [
        a["id"] for a in read_json("544381877", "ancestors.v1.json")["results"]
    ]
    assert result.markdown == convert_page(load_sample("544381877"), BASE_URL).markdown


@pytest.mark.parametrize("page_id", SAMPLE_IDS)
def test_headings_are_the_storage_headings(page_id, converted):
    # BeautifulSoup over the storage's h1..h6 against the Markdown's ATX heading lines.
    expected = _xhtml_headings(page_id)
    assert expected, "every sample has headings"
    assert _markdown_headings(converted[page_id].markdown) == expected


def test_code_languages_and_expand_on_the_kubernetes_page(converted):
    result = converted["544381877"]
    md = result.markdown
    expand = _soup("544381877").find("ac:structured-macro", attrs={"ac:name": "expand"})
    title = expand.find("ac:parameter", attrs={"ac:name": "title"}).get_text().strip()
    (language, code), _ = code_macros(_storage("544381877"))
    # The expand keeps its title, bold on its own line, right above its body: the script, one block.
    assert f"\n\n**{title}**\n\n```\n" + code.strip("\n") + "\n```\n" in md
    assert language == "" and result.metadata["code_languages"] == []  # the page's macros name none
    page, _ = _with_languages_and_noformat("544381877", ["bash"])
    assert convert_page(page, BASE_URL).metadata["code_languages"] == ["bash"]
    assert f"**{title}**\n\n```bash\n#!/bin/bash\n" in convert_page(page, BASE_URL).markdown


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
