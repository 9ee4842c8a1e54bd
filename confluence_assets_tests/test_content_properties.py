"""Property tests: conversion never raises; chunking loses no text, keeps fences whole and sizes bounded."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confluence_assets.content import chunk_markdown, convert_page, own_text, reassemble
from confluence_assets_tests.content_helpers import fences_balanced, non_ws

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TAGS = [
    "p",
    "div",
    "b",
    "i",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "td",
    "th",
    "h1",
    "h2",
    "pre",
    "code",
    "br",
    "ac:structured-macro",
    "ac:parameter",
    "ac:rich-text-body",
    "ac:plain-text-body",
    "ac:link",
    "ri:page",
    "ri:user",
    "ac:image",
    "ri:attachment",
    "ac:emoticon",
    "ac:link-body",
    "ac:task",
    "x:unknown",
]
_ATTRS = [
    'ac:name="code"',
    'ac:name="info"',
    'ac:name="expand"',
    'ac:name="jira"',
    'ac:name="status"',
    'ri:content-title="T"',
    'ri:account-id="a1"',
    'ri:filename="f.png"',
    'rowspan="2"',
    'colspan="3"',
    "",
]
_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)

_piece = st.one_of(
    st.builds(lambda t, a: f"<{t} {a}>", st.sampled_from(_TAGS), st.sampled_from(_ATTRS)),
    st.builds(lambda t: f"</{t}>", st.sampled_from(_TAGS)),
    st.builds(lambda t: f"<{t} />", st.sampled_from(_TAGS)),
    st.builds(lambda t: f"<![CDATA[{t}]]>", _TEXT),
    _TEXT,
    st.sampled_from(["<", ">", "&", "&amp;", "<![CDATA[", "]]>", "<!--", "-->", '"', "\n", "```", "|", "# "]),
)
xhtmlish = st.lists(_piece, max_size=40).map("".join)


@SETTINGS
@given(xhtmlish)
def test_conversion_never_raises(storage):
    result = convert_page({"id": "1", "title": "P", "body": {"storage": {"value": storage}}}, "https://x/wiki")
    assert isinstance(result.markdown, str)
    chunks = chunk_markdown(result.markdown, "P", chunk_tokens=60, overlap_tokens=10)
    assert non_ws(reassemble(chunks)) == non_ws(result.markdown)


_WORD = st.text(alphabet="abcdefghij éü한글🚀|`#>*-_", min_size=1, max_size=9)
_line = st.lists(_WORD, min_size=1, max_size=25).map(" ".join)
_block = st.one_of(
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 4), _line),
    st.lists(_line, min_size=1, max_size=6).map("\n".join),
    st.builds(
        lambda lang, lines: f"```{lang}\n" + "\n".join(lines) + "\n```",
        st.sampled_from(["", "py"]),
        st.lists(st.builds(lambda i, t: " " * i + t, st.integers(0, 8), _line), max_size=30),
    ),
    st.builds(
        lambda w, rows: (
            "| "
            + " | ".join(["h"] * w)
            + " |\n|"
            + " --- |" * w
            + "\n"
            + "\n".join("| " + " | ".join([r] * w) + " |" for r in rows)
        ),
        st.integers(1, 4),
        st.lists(_WORD, max_size=40),
    ),
    st.lists(_line, min_size=1, max_size=4).map(lambda ls: "\n".join("> " + x for x in ls)),
    st.lists(_line, min_size=1, max_size=8).map(lambda ls: "\n".join("- " + x for x in ls)),
)
markdownish = st.lists(_block, max_size=14).map("\n\n".join)


@SETTINGS
@given(markdownish, st.sampled_from([40, 90, 300]), st.sampled_from([0, 8, 30]))
def test_chunking_loses_nothing_and_keeps_structure(markdown, chunk_tokens, overlap):
    chunks = chunk_markdown(markdown, "Page", chunk_tokens=chunk_tokens, overlap_tokens=overlap, max_tokens=500)
    assert non_ws(reassemble(chunks)) == non_ws(markdown)
    if not non_ws(markdown):
        assert [c.content for c in chunks] == ["Page"]
        return
    previous = None
    for chunk in chunks:
        assert chunk.token_count <= min(chunk_tokens, 500)
        assert fences_balanced(chunk.content)
        context = chunk.content[: chunk.own_start]
        if context:  # overlap from the previous chunk, or a repeated table header / re-opened fence
            repeated = previous is not None and context.strip() in own_text(previous)
            synthetic = all(re.match(r"\s*(\||```|~~~)", line) for line in context.strip().split("\n"))
            assert repeated or synthetic, context
        tail = chunk.content[chunk.own_end :]
        assert tail == "" or re.fullmatch(r"\n\s*(`{3,}|~{3,})", tail)
        previous = chunk


def test_reassembly_check_can_fail():
    markdown = "# A\n\n" + "\n\n".join(f"para {i} " + "word " * 60 for i in range(8))
    chunks = chunk_markdown(markdown, "P", chunk_tokens=120, overlap_tokens=20)
    assert len(chunks) > 2 and non_ws(reassemble(chunks)) == non_ws(markdown)
    assert non_ws(reassemble(chunks[:1] + chunks[2:])) != non_ws(markdown)  # a lost chunk is noticed
    assert non_ws("\n".join(c.content for c in chunks)) != non_ws(markdown)  # overlap is really there


def test_big_code_block_is_split_into_valid_fences_with_language():
    code = "\n".join(f"    line_{i} = call({i})  # keep indentation" for i in range(400))
    markdown = f"## Code\n\nIntro.\n\n```python\n{code}\n```\n\nAfter."
    chunks = chunk_markdown(markdown, "P", chunk_tokens=200)
    code_chunks = [c for c in chunks if "line_" in c.content]
    assert len(code_chunks) > 3
    for chunk in code_chunks:
        assert "```python\n" in chunk.content and fences_balanced(chunk.content)
        assert chunk.breadcrumb == ["P", "Code"]
    lines = [line for c in code_chunks for line in own_text(c).split("\n") if "line_" in line]
    assert lines == code.split("\n")  # every line once, indentation intact


def test_big_table_splits_between_rows_with_header_repeated():
    rows = "\n".join(f"| r{i} | value {i} |" for i in range(300))
    markdown = f"| key | value |\n| --- | --- |\n{rows}"
    chunks = chunk_markdown(markdown, "P", chunk_tokens=150)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.content.startswith("| key | value |\n| --- | --- |\n")
        assert all(line.startswith("| ") and line.endswith(" |") for line in chunk.content.split("\n"))


def test_hash_is_sha256_of_the_embedding_text_and_stable():
    (chunk,) = chunk_markdown("# Intro\n\nHello world.", "My Page")
    assert chunk.embedding_text == "My Page > Intro\n\n# Intro\n\nHello world."
    # A literal: the hash must not depend on the machine, the run or the Python version.
    assert chunk.content_hash == "9b527a26bfbda14cadaf49341ff361c3ae8ce57ee0af25886c3988e98e655611"
