"""Golden tests on hand-written storage snippets: each Confluence construct and its Markdown."""

from __future__ import annotations

import pytest

from confluence_assets.content import ConversionError, chunk_markdown, convert_page, own_text, reassemble

BASE = "https://x.atlassian.net/wiki"


def page(storage: str | None, **extra) -> dict:
    body = {} if storage is None else {"storage": {"value": storage, "representation": "storage"}}
    return {"id": "42", "title": "Golden", "space": {"key": "SP"}, "body": body, **extra}


def md(storage: str, **kw) -> str:
    return convert_page(page(storage), BASE, **kw).markdown


def meta(storage: str, **kw) -> dict:
    return convert_page(page(storage), BASE, **kw).metadata


def test_code_macro_verbatim_with_language_and_no_parameters():
    storage = (
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">python</ac:parameter>'
        '<ac:parameter ac:name="title">setup.py</ac:parameter><ac:parameter ac:name="linenumbers">true'
        "</ac:parameter><ac:plain-text-body><![CDATA[# comment\ndef f(a, b):\n    if a < b && b > 0:\n"
        "        return '&amp;'\n\n    return ```x```]]></ac:plain-text-body></ac:structured-macro>"
    )
    assert md(storage) == (
        "~~~python\n# comment\ndef f(a, b):\n    if a < b && b > 0:\n        return '&amp;'\n\n    return ```x```\n~~~"
    )
    assert meta(storage)["code_languages"] == ["python"]


def test_user_mentions_known_unknown_and_data_center():
    storage = (
        '<p>Hi <ac:link><ri:user ri:account-id="557058:abc" /></ac:link>, '
        '<ac:link><ri:user ri:account-id="99:zz" /></ac:link> and <ac:link><ri:user ri:userkey="8a7f" /></ac:link></p>'
    )
    assert md(storage, users={"557058:abc": "Ada Lovelace"}) == "Hi @Ada Lovelace, @user:99:zz and @user:8a7f"
    mentions = meta(storage, users={"557058:abc": "Ada Lovelace"})["user_mentions"]
    assert mentions[0] == {
        "account_id": "557058:abc",
        "display_name": "Ada Lovelace",
        "profile_url": f"{BASE}/people/557058%3Aabc",
    }
    assert [m["account_id"] for m in mentions] == ["557058:abc", "99:zz", "8a7f"]


def test_jira_macro_and_url_deduplicated():
    storage = (
        '<p><ac:structured-macro ac:name="jira"><ac:parameter ac:name="server">System JIRA</ac:parameter>'
        '<ac:parameter ac:name="serverId">1234-abcd</ac:parameter><ac:parameter ac:name="key">ABC-123'
        "</ac:parameter></ac:structured-macro> see "
        '<a href="https://jira.example.com/browse/ABC-123">the issue</a> and '
        '<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">XY-9</ac:parameter></ac:structured-macro></p>'
    )
    assert md(storage) == (
        "[ABC-123](https://x.atlassian.net/browse/ABC-123) see [the issue](https://jira.example.com/browse/ABC-123)"
        " and [XY-9](https://x.atlassian.net/browse/XY-9)"
    )
    assert meta(storage)["jira_issue_links"] == [
        {"issue_key": "ABC-123", "issue_url": "https://jira.example.com/browse/ABC-123"},
        {"issue_key": "XY-9", "issue_url": "https://x.atlassian.net/browse/XY-9"},
    ]
    assert meta(storage)["external_links"] == []
    assert "System JIRA" not in md(storage) and "1234-abcd" not in md(storage)


def test_external_links_with_their_titles_and_urls():
    storage = (
        '<p>See <a href="https://example.com/a?b=1&amp;c=2">Example <em>docs</em></a>, '
        '<a href="http://other.org">http://other.org</a>, <a href="mailto:x@y.z">mail</a>, '
        '<a href="#anchor">here</a>, <a href="https://x.atlassian.net/wiki/spaces/SP/pages/77/T">site page</a>, '
        '<a href="https://elsewhere.atlassian.net/wiki/spaces/SP/pages/77">other site</a> and '
        '<ac:link><ri:url ri:value="https://ri.example.net/p" /><ac:plain-text-link-body><![CDATA[ri url]]>'
        "</ac:plain-text-link-body></ac:link>.</p>"
    )
    assert md(storage) == (
        "See [Example *docs*](https://example.com/a?b=1&c=2), <http://other.org>, [mail](mailto:x@y.z), "
        "[here](#anchor), [site page](https://x.atlassian.net/wiki/spaces/SP/pages/77/T), "
        "[other site](https://elsewhere.atlassian.net/wiki/spaces/SP/pages/77) and [ri url](https://ri.example.net/p)."
    )
    m = meta(storage)
    assert m["external_links"] == [
        {"title": "Example docs", "url": "https://example.com/a?b=1&c=2"},
        {"title": "http://other.org", "url": "http://other.org"},
        {"title": "mail", "url": "mailto:x@y.z"},
        {"title": "other site", "url": "https://elsewhere.atlassian.net/wiki/spaces/SP/pages/77"},
        {"title": "ri url", "url": "https://ri.example.net/p"},
    ]
    assert m["internal_links"] == [  # this site's page: internal, by id
        {
            "page_id": "77",
            "page_title": "site page",
            "space_key": None,
            "page_url": "https://x.atlassian.net/wiki/spaces/SP/pages/77/T",
        }
    ]


def test_references_are_listed_once_in_the_order_they_first_appear():
    code = '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">{}</ac:parameter>'
    code += "<ac:plain-text-body><![CDATA[x]]></ac:plain-text-body></ac:structured-macro>"
    storage = (
        '<p><a href="https://a.example/">first A</a> <a href="https://b.example/">B</a> '
        '<a href="https://a.example/">second A</a> '
        '<ac:link><ri:page ri:content-title="P1" /></ac:link> <ac:link><ri:page ri:content-title="P2" /></ac:link> '
        '<ac:link><ri:page ri:content-title="P1" /></ac:link> '
        '<ac:link><ri:user ri:account-id="u1" /></ac:link> <ac:link><ri:user ri:account-id="u2" /></ac:link> '
        '<ac:link><ri:user ri:account-id="u1" /></ac:link> '
        '<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">AA-1</ac:parameter></ac:structured-macro> '
        '<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">BB-2</ac:parameter></ac:structured-macro> '
        '<a href="https://jira.example.org/browse/AA-1">AA-1 on its server</a> '
        '<ac:link><ri:attachment ri:filename="one.pdf" /></ac:link> <ac:link><ri:attachment ri:filename="two.pdf" />'
        '</ac:link> <ac:link><ri:attachment ri:filename="one.pdf" /></ac:link></p>'
        + code.format("python")
        + code.format("yaml")
        + code.format("python")
    )
    m = meta(storage)
    assert m["external_links"] == [
        {"title": "first A", "url": "https://a.example/"},
        {"title": "B", "url": "https://b.example/"},
    ]
    assert [link["page_title"] for link in m["internal_links"]] == ["P1", "P2"]
    assert [u["account_id"] for u in m["user_mentions"]] == ["u1", "u2"]
    # AA-1 keeps its place (first, as the macro) and the URL of the real /browse/ link.
    assert m["jira_issue_links"] == [
        {"issue_key": "AA-1", "issue_url": "https://jira.example.org/browse/AA-1"},
        {"issue_key": "BB-2", "issue_url": "https://x.atlassian.net/browse/BB-2"},
    ]
    assert [a["title"] for a in m["asset_links"]] == ["one.pdf", "two.pdf"]
    assert m["code_languages"] == ["python", "yaml"]


def test_attachment_links_and_images_name_the_file():
    storage = (
        '<p><ac:link><ri:attachment ri:filename="report 2024.pdf" /></ac:link> and '
        '<ac:link><ri:attachment ri:filename="a.txt" /><ac:plain-text-link-body><![CDATA[the text]]>'
        "</ac:plain-text-link-body></ac:link></p>"
        '<ac:image ac:alt="Diagram"><ri:attachment ri:filename="flow.png" /><ac:caption><p>Flow</p></ac:caption>'
        '</ac:image><ac:image><ri:url ri:value="https://img.example.com/x.png" /></ac:image>'
    )
    assert md(storage) == (
        f"[report 2024.pdf]({BASE}/download/attachments/42/report%202024.pdf) and "
        f"[the text]({BASE}/download/attachments/42/a.txt)\n\n"
        "[image: Diagram]\n\nFlow\n\n"
        "[image: x.png]"
    )
    assets = meta(storage)["asset_links"]
    assert [(a["title"], a["media_type"]) for a in assets] == [
        ("report 2024.pdf", "application/pdf"),
        ("a.txt", "text/plain"),
        ("flow.png", "image/png"),
    ]


def test_page_links_by_title_by_id_resolved_and_anchor():
    storage = (
        '<p><ac:link><ri:page ri:content-title="Other Page" /></ac:link> '
        '<ac:link ac:anchor="sec"><ri:page ri:content-title="Far" ri:space-key="FAR" />'
        "<ac:link-body><strong>bold</strong></ac:link-body></ac:link> "
        '<ac:link><ri:page ri:content-title="Known" /></ac:link></p>'
    )
    out = md(storage, resolve_title=lambda space, title: "777" if title == "Known" else None)
    assert out == (
        f"[Other Page]({BASE}/display/SP/Other+Page) [**bold**]({BASE}/display/FAR/Far#sec) "
        f"[Known]({BASE}/spaces/SP/pages/777)"
    )
    links = meta(storage, resolve_title=lambda space, title: "777" if title == "Known" else None)["internal_links"]
    assert links[2] == {
        "page_id": "777",
        "page_title": "Known",
        "space_key": "SP",
        "page_url": f"{BASE}/spaces/SP/pages/777",
    }
    assert links[0]["page_id"] is None and links[1]["space_key"] == "FAR"


def test_panels_expand_status_and_layout_only_macros():
    storage = (
        '<ac:structured-macro ac:name="toc"><ac:parameter ac:name="maxLevel">2</ac:parameter></ac:structured-macro>'
        '<ac:structured-macro ac:name="warning"><ac:parameter ac:name="title">Careful</ac:parameter>'
        "<ac:rich-text-body><p>Hot surface.</p></ac:rich-text-body></ac:structured-macro>"
        '<ac:structured-macro ac:name="panel"><ac:parameter ac:name="bgColor">#fff</ac:parameter>'
        "<ac:rich-text-body><p>Plain panel</p></ac:rich-text-body></ac:structured-macro>"
        '<ac:structured-macro ac:name="expand"><ac:parameter ac:name="title">More details</ac:parameter>'
        "<ac:rich-text-body><p>Hidden body</p></ac:rich-text-body></ac:structured-macro>"
        '<p>State: <ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter>'
        '<ac:parameter ac:name="title">DONE</ac:parameter></ac:structured-macro>'
        '<ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">here</ac:parameter></ac:structured-macro></p>'
        '<ac:structured-macro ac:name="mystery"><ac:parameter ac:name="secret">s3cr3t-param</ac:parameter>'
        "<ac:rich-text-body><p>Mystery body</p></ac:rich-text-body></ac:structured-macro>"
    )
    assert md(storage) == (
        "> **Error:** Careful\n>\n> Hot surface.\n\n> **Panel:**\n>\n> Plain panel\n\n"
        "**More details**\n\nHidden body\n\nState: [DONE]\n\nMystery body"
    )


@pytest.mark.parametrize("macro, label", [("info", "Info"), ("note", "Warning"), ("tip", "Success")])
def test_info_note_and_tip_panels_are_labelled_block_quotes(macro, label):
    titled = (
        f'<ac:structured-macro ac:name="{macro}" ac:schema-version="1"><ac:parameter ac:name="title">Heads up'
        '</ac:parameter><ac:parameter ac:name="icon">false</ac:parameter><ac:rich-text-body><p>First <strong>para'
        "</strong>.</p><ul><li>item</li></ul></ac:rich-text-body></ac:structured-macro><p>after</p>"
    )
    assert md(titled) == f"> **{label}:** Heads up\n>\n> First **para**.\n>\n> - item\n\nafter"
    untitled_with_code = (
        f'<ac:structured-macro ac:name="{macro}"><ac:rich-text-body><p>Only body</p>'
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">sh</ac:parameter>'
        "<ac:plain-text-body><![CDATA[  x  y\n\nz]]></ac:plain-text-body></ac:structured-macro>"
        "</ac:rich-text-body></ac:structured-macro>"
    )
    # The code stays one fenced block inside the quote, indentation kept; the alias sh is named bash.
    assert md(untitled_with_code) == f"> **{label}:**\n>\n> Only body\n>\n> ```bash\n>   x  y\n>\n> z\n> ```"
    assert "false" not in md(titled) and "icon" not in md(titled)


def test_nested_lists_and_tasks():
    storage = (
        "<ol><li><p>one</p><ul><li>a<ul><li>deep</li></ul></li><li>b</li></ul></li><li>two</li></ol>"
        "<ac:task-list><ac:task><ac:task-status>complete</ac:task-status><ac:task-body>done it</ac:task-body>"
        "</ac:task><ac:task><ac:task-status>incomplete</ac:task-status><ac:task-body>todo</ac:task-body></ac:task>"
        "</ac:task-list>"
    )
    assert md(storage) == "1. one\n\n   - a\n     - deep\n   - b\n2. two\n\n- [x] done it\n- [ ] todo"


def test_merged_cells_keep_columns_and_cells_keep_breaks():
    storage = (
        "<table><tbody><tr><th>A</th><th>B</th><th>C</th></tr>"
        '<tr><td rowspan="2">r</td><td colspan="2">wide</td></tr>'
        "<tr><td>x|y</td><td><p>l1</p><p>l2<br/>l3</p></td></tr>"
        "<tr><td><ul><li>i1</li><li>i2</li></ul></td></tr></tbody></table>"
    )
    assert md(storage) == (
        "| A | B | C |\n| --- | --- | --- |\n| r | wide |  |\n| r | x\\|y | l1<br>l2<br>l3 |\n| - i1<br>- i2 |  |  |"
    )


def test_code_inside_a_table_cell_moves_below_the_table():
    storage = (
        '<table><tr><th>k</th></tr><tr><td><ac:structured-macro ac:name="code"><ac:plain-text-body>'
        "<![CDATA[  indented()]]></ac:plain-text-body></ac:structured-macro></td></tr></table>"
    )
    assert md(storage) == "| k |\n| --- |\n| (code block 1 below the table) |\n\n```\n  indented()\n```"


def test_emoji_and_rtl_text():
    storage = (
        '<p><ac:emoticon ac:name="tick" ac:emoji-fallback=":check_mark:" /> ok '
        '<ac:emoticon ac:name="x" ac:emoji-fallback="🚀" /> שלום עולם مرحبا</p>'
    )
    assert md(storage) == "✅ ok 🚀 שלום עולם مرحبا"


def test_empty_body_gives_one_title_chunk():
    result = convert_page(page(""), BASE)
    assert result.markdown == ""
    chunks = chunk_markdown(result.markdown, "Golden")
    assert len(chunks) == 1 and chunks[0].content == "Golden" and chunks[0].breadcrumb == ["Golden"]


def test_missing_body_raises_one_typed_error_naming_the_page():
    with pytest.raises(ConversionError) as err:
        convert_page(page(None), BASE)
    assert err.value.page_id == "42" and "42" in str(err.value)


@pytest.mark.parametrize(
    "storage, visible",
    [
        ("<p>unclosed <b>bold <i>italic", ["unclosed", "bold", "italic"]),
        ("<p>before</p><ac:structured-macro ac:name='code'><ac:plain-text-body><![CDATA[x < y", ["before", "x < y"]),
        ("<p>Read <ac:link><ri:page ri:content-title='A'", ["Read"]),
        ("<p>Read <ac:link><ri:page ri:content-title='Alpha' /></ac:link> now", ["Read", "[Alpha]", "now"]),
        ("<foo:bar x:y='1'>undeclared <ns:thing/>namespace</foo:bar>", ["undeclared", "namespace"]),
        ("</p></div></ac:rich-text-body>stray closers", ["stray closers"]),
        (
            "<ac:parameter ac:name='x'>stray-parameter-value</ac:parameter>"
            "<ac:rich-text-body>stray body</ac:rich-text-body>",
            ["stray body"],
        ),
        ("<table><tr><td rowspan='x' colspan='-1'>odd spans</td></tr><tr></tr></table>", ["odd spans"]),
        ("&bogus; &#xZZ; <<>> <!-- unclosed comment", ["&bogus;", "&#xZZ;", "<<>>"]),
        ("<p>kept &amp; shown &rdquo;q&ldquo;</p><p>second", ["kept & shown ”q“", "second"]),
        (
            '<ac:structured-macro ac:name="info"><ac:rich-text-body><p>inside info'
            '<ac:structured-macro ac:name="expand"><ac:parameter ac:name="title">Exp title</ac:parameter>'
            "<ac:rich-text-body><p>never closed",
            ["**Info:**", "inside info", "**Exp title**", "never closed"],
        ),
        ("<div>" * 5000 + "deep" + "</div>" * 5000, ["deep"]),
        ("<ul><li>" * 3000 + "deep list", ["deep list"]),
    ],
)
def test_malformed_input_converts_without_exception_and_keeps_its_text(storage, visible):
    result = convert_page(page(storage), BASE)
    assert "ac:" not in result.markdown and "ri:" not in result.markdown
    assert "stray-parameter-value" not in result.markdown
    at = 0
    for text in visible:  # every piece a reader sees, in order
        found = result.markdown.find(text, at)
        assert found >= 0, (text, result.markdown[-300:])
        at = found + len(text)
    chunks = chunk_markdown(result.markdown, "Golden")
    assert all(text in reassemble(chunks) for text in visible)


def test_metadata_from_full_expansions():
    full = page(
        "<p>x</p>",
        version={"number": 7, "when": "2026-01-02T03:04:05.000Z", "by": {"accountId": "u2", "displayName": "Bo"}},
        history={
            "createdDate": "2025-01-01T00:00:00.000Z",
            "createdBy": {"accountId": "u1", "displayName": "Al", "email": "al@x.org"},
        },
        metadata={"labels": {"results": [{"prefix": "global", "name": "howto"}]}},
        ancestors=[
            {"id": "1", "title": "Root", "_links": {"webui": "/spaces/SP/overview"}},
            {"id": "5", "title": "Mid"},
        ],
        children={
            "page": {"results": [{"id": "43", "title": "Kid", "_links": {"webui": "/spaces/SP/pages/43/Kid"}}]},
            "attachment": {
                "results": [
                    {
                        "id": "att9",
                        "title": "f.pdf",
                        "metadata": {"mediaType": "application/pdf"},
                        "extensions": {"fileSize": 10},
                        "_links": {"download": "/download/attachments/42/f.pdf?version=1"},
                    }
                ]
            },
        },
        _links={"webui": "/spaces/SP/pages/42/Golden"},
    )
    result = convert_page(full, BASE)
    m = result.metadata
    assert result.path == "/1/5/42" and m["path"] == "/1/5/42"
    assert result.url == f"{BASE}/spaces/SP/pages/42/Golden"
    assert m["ancestors"] == [
        {"id": "1", "title": "Root", "url": f"{BASE}/spaces/SP/overview"},
        {"id": "5", "title": "Mid", "url": f"{BASE}/spaces/SP/pages/5"},
    ]
    assert m["children"] == [{"id": "43", "title": "Kid", "url": f"{BASE}/spaces/SP/pages/43/Kid"}]
    assert m["created_by"] == {
        "account_id": "u1",
        "display_name": "Al",
        "email": "al@x.org",
        "profile_url": f"{BASE}/people/u1",
    }
    assert m["last_modified_by"]["display_name"] == "Bo" and m["version"] == 7
    assert m["labels"] == ["howto"]
    assert m["asset_links"] == [
        {
            "id": "att9",
            "title": "f.pdf",
            "media_type": "application/pdf",
            "size": 10,
            "download_url": f"{BASE}/download/attachments/42/f.pdf?version=1",
        }
    ]
    assert m["word_count"] == 1 and m["content_length"] == 1


@pytest.mark.parametrize(
    "opening, closing",
    [
        ("<div>", "</div>"),
        ("<ul><li>", "</li></ul>"),
        ("<table><tr><td>", "</td></tr></table>"),
        ('<ac:structured-macro ac:name="info"><ac:rich-text-body>', "</ac:rich-text-body></ac:structured-macro>"),
    ],
)
def test_ten_thousand_levels_of_nesting_convert_without_recursion_errors(opening, closing):
    n = 10_000
    storage = opening * n + '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[  deep()]]>'
    storage += "</ac:plain-text-body></ac:structured-macro><p>bottom text</p>" + closing * n
    result = convert_page(page(storage), BASE)
    assert "bottom text" in result.markdown
    assert "  deep()" in result.markdown
    assert chunk_markdown(result.markdown, "Golden")


@pytest.mark.slow
def test_hundred_thousand_row_table():
    rows = "".join(f"<tr><td>r{i}</td><td>v {i}</td></tr>" for i in range(100_000))
    result = convert_page(page(f"<table><tr><th>k</th><th>v</th></tr>{rows}</table>"), BASE)
    chunks = chunk_markdown(result.markdown, "Golden")
    assert all(c.content.startswith("| k | v |\n| --- | --- |\n") for c in chunks)
    rows_seen = [line for c in chunks for line in own_text(c).split("\n") if line.startswith("| r")]
    assert len(rows_seen) == 100_000 and rows_seen[-1] == "| r99999 | v 99999 |"


def test_headings_emphasis_strike_quote_rule_and_noformat():
    storage = (
        "<h1>Title <em>one</em></h1><h3>Sub</h3><p><strong>b</strong> <em>i</em> <s>gone</s> "
        '<span style="text-decoration: line-through;">old</span> <del>del</del> <u>under</u> snake_case</p>'
        "<blockquote><p>quoted</p></blockquote><hr/>"
        '<ac:macro ac:name="noformat"><ac:plain-text-body><![CDATA[raw  text\n  kept]]></ac:plain-text-body></ac:macro>'
    )
    assert md(storage) == (
        "# Title *one*\n\n### Sub\n\n**b** *i* ~~gone~~ ~~old~~ ~~del~~ under snake_case\n\n> quoted\n\n---\n\n"
        "```\nraw  text\n  kept\n```"
    )
    assert meta(storage)["headings"] == [{"level": 1, "text": "Title one"}, {"level": 3, "text": "Sub"}]
