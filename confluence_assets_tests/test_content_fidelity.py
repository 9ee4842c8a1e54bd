"""Golden tests for what a reader sees: Confluence elements as real pages write them, and their Markdown.

Each test pins one construct (several of them worked before these tests; the test keeps them working).
"""

from __future__ import annotations

import pytest

from confluence_assets.content import chunk_markdown, own_text
from confluence_assets.tokens import estimate_tokens
from confluence_assets_tests.test_content_golden import BASE, md, meta

# tasks ---------------------------------------------------------------------------------------------------

CLOUD_TASKS = """<ac:task-list>
<ac:task>
<ac:task-id>1</ac:task-id>
<ac:task-uuid>6c7d1a2e-0001</ac:task-uuid>
<ac:task-status>incomplete</ac:task-status>
<ac:task-body>and a task <ac:link><ri:user ri:account-id="u1" /></ac:link> <time datetime="2026-05-01" />
</ac:task-body>
</ac:task>
<ac:task-list>
<ac:task>
<ac:task-id>2</ac:task-id>
<ac:task-uuid>6c7d1a2e-0002</ac:task-uuid>
<ac:task-status>complete</ac:task-status>
<ac:task-body><span class="placeholder-inline-tasks">done task</span></ac:task-body>
</ac:task>
</ac:task-list>
<ac:task>
<ac:task-id>3</ac:task-id>
<ac:task-uuid>6c7d1a2e-0003</ac:task-uuid>
<ac:task-status>complete</ac:task-status>
<ac:task-body>
<p>a task of paragraphs</p>
</ac:task-body>
</ac:task>
</ac:task-list>"""


def test_cloud_task_list_keeps_checkbox_with_text_nesting_assignee_and_due_date():
    assert md(CLOUD_TASKS, users={"u1": "Ada Lovelace"}) == (
        "- [ ] and a task @Ada Lovelace 2026-05-01\n  - [x] done task\n- [x] a task of paragraphs"
    )
    assert [m["account_id"] for m in meta(CLOUD_TASKS)["user_mentions"]] == ["u1"]


# panels --------------------------------------------------------------------------------------------------


def _macro(name: str, params: dict[str, str], body: str = "<p>Body text.</p>") -> str:
    ps = "".join(f'<ac:parameter ac:name="{k}">{v}</ac:parameter>' for k, v in params.items())
    body = f"<ac:rich-text-body>{body}</ac:rich-text-body>"
    return f'<ac:structured-macro ac:name="{name}">{ps}{body}</ac:structured-macro>'


@pytest.mark.parametrize(
    "macro, label",
    [("info", "Info"), ("note", "Warning"), ("warning", "Error"), ("tip", "Success")],
)
def test_legacy_panels_are_labelled_as_cloud_shows_them(macro, label):
    # Cloud draws the legacy note macro as its yellow Warning panel, warning as the red Error one, tip green.
    assert md(_macro(macro, {"title": "Heads up"})) == f"> **{label}:** Heads up\n>\n> Body text."
    assert md(_macro(macro, {})) == f"> **{label}:**\n>\n> Body text."


@pytest.mark.parametrize(
    "params, head",
    [
        ({"panelType": "info"}, "**Info:**"),
        ({"panelType": "note"}, "**Note:**"),
        ({"panelType": "success"}, "**Success:**"),
        ({"panelType": "warning"}, "**Warning:**"),
        ({"panelType": "error"}, "**Error:**"),
        ({"panelIcon": ":rocket:", "panelIconId": "1f680", "panelIconText": "🚀", "bgColor": "#E3FCEF"}, "🚀"),
        ({"panelType": "custom", "panelIcon": ":rocket:", "bgColor": "#E3FCEF"}, ":rocket:"),
        ({"bgColor": "#E3FCEF"}, "**Panel:**"),
        ({"title": "My own title", "bgColor": "#fff"}, "**My own title**"),
    ],
)
def test_panel_macro_is_labelled_by_its_type_icon_or_title(params, head):
    out = md(_macro("panel", params))
    assert out == f"> {head}\n>\n> Body text."
    assert "E3FCEF" not in out and "1f680" not in out


@pytest.mark.parametrize("panel_type, label", [("note", "Note"), ("warning", "Warning"), ("success", "Success")])
def test_new_editor_adf_panels_are_labelled_by_their_type(panel_type, label):
    storage = (
        f'<ac:adf-extension><ac:adf-node type="panel"><ac:adf-attribute key="panel-type">{panel_type}'
        "</ac:adf-attribute><ac:adf-content><p>Purple text.</p></ac:adf-content></ac:adf-node>"
        '<ac:adf-fallback><div class="panel"><p>Purple text.</p></div></ac:adf-fallback></ac:adf-extension>'
    )
    assert md(storage) == f"> **{label}:**\n>\n> Purple text."


# tables --------------------------------------------------------------------------------------------------


def test_row_spanning_cell_is_repeated_in_every_row_it_covers():
    words = " ".join(f"word{i}" for i in range(40))
    storage = (
        "<table><tr><th>Group</th><th>Item</th></tr>"
        f'<tr><td rowspan="3"><strong>Group A</strong></td><td>one {words}</td></tr>'
        f"<tr><td>two {words}</td></tr><tr><td>three {words}</td></tr>"
        f"<tr><td>Group B</td><td>four</td></tr></table>"
    )
    out = md(storage)
    assert [line.split(" | ")[0] for line in out.split("\n")] == [
        "| Group",
        "| ---",
        "| **Group A**",
        "| **Group A**",
        "| **Group A**",
        "| Group B",
    ]
    # A chunk holding a later row of the group still says which group it is in.
    chunks = chunk_markdown(out, "Golden", chunk_tokens=120, overlap_tokens=0)
    assert len(chunks) >= 3
    rows = [line for c in chunks for line in own_text(c).split("\n") if "word1 " in line]
    assert len(rows) == 3 and all(row.startswith("| **Group A** | ") for row in rows)


def test_column_spanning_cell_stays_one_cell_with_empty_neighbours():
    # colspan is not repeated: the row holds the value once and a chunk never separates it from its row.
    storage = '<table><tr><th>A</th><th>B</th><th>C</th></tr><tr><td colspan="3">wide</td></tr></table>'
    assert md(storage) == "| A | B | C |\n| --- | --- | --- |\n| wide |  |  |"


def test_row_longer_than_three_chunks_is_cut_between_words_with_the_header_repeated():
    urls = [f"https://example.com/docs/section-{i}/page-{i}?ref=chunk-test-{i}&lang=en" for i in range(90)]
    cell = " ".join(f"see {url} then" for url in urls).replace("&", "&amp;")
    storage = f"<table><tr><th>Name</th><th>Links</th></tr><tr><td>many links</td><td>{cell}</td></tr></table>"
    out = md(storage)
    row = out.split("\n")[2]
    assert estimate_tokens(row) > 3 * 800
    chunks = chunk_markdown(out, "Golden")
    assert len(chunks) >= 4
    whole_words = set(out.split())
    seen: set[str] = set()
    for chunk in chunks:
        assert chunk.content.startswith("| Name | Links |\n| --- | --- |\n")
        assert chunk.token_count <= 800
        pieces = own_text(chunk).split()
        assert set(pieces) <= whole_words  # no word or URL cut in two
        seen.update(pieces)
    assert set(urls) <= seen


def test_expand_inside_a_table_cell_keeps_its_title_and_body_in_the_cell():
    storage = (
        '<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td><ac:structured-macro ac:name="expand">'
        '<ac:parameter ac:name="title">Show</ac:parameter><ac:rich-text-body><p>hidden one</p><p>hidden two</p>'
        "</ac:rich-text-body></ac:structured-macro></td></tr></table>"
    )
    assert md(storage) == "| k | v |\n| --- | --- |\n| a | **Show**<br>hidden one<br>hidden two |"


# images --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, text",
    [
        (
            '<ac:image ac:alt="Architecture diagram"><ri:attachment ri:filename="diagram.png" /></ac:image>',
            "[image: Architecture diagram]",
        ),
        # Cloud writes the file name as alt: the caption says more, and is not repeated below the image.
        (
            '<ac:image ac:alt="diagram.png"><ri:attachment ri:filename="diagram.png" /><ac:caption><p>Data flow'
            "</p></ac:caption></ac:image>",
            "[image: Data flow]",
        ),
        (
            '<ac:image ac:title="Login screen"><ri:attachment ri:filename="diagram.png" /></ac:image>',
            "[image: Login screen]",
        ),
        ('<ac:image ac:width="760"><ri:attachment ri:filename="diagram.png" /></ac:image>', "[image: diagram.png]"),
        ('<ac:image><ri:url ri:value="https://img.example.com/a/b%20c.png" /></ac:image>', "[image: b c.png]"),
    ],
)
def test_an_image_is_its_label_and_its_url_is_in_the_metadata_only(image, text):
    assert md(f"<p>Before</p>{image}<p>after</p>") == f"Before\n\n{text}\n\nafter"
    m = meta(image)
    urls = [a["download_url"] for a in m["asset_links"]] + [link["url"] for link in m["external_links"]]
    assert urls in ([f"{BASE}/download/attachments/42/diagram.png"], ["https://img.example.com/a/b%20c.png"])


def test_an_image_inline_in_a_cell_and_a_heading():
    storage = (
        '<h2>Setup <ac:image ac:alt="icon"><ri:attachment ri:filename="i.png" /></ac:image></h2>'
        '<table><tr><th>k</th></tr><tr><td>see <ac:image><ri:attachment ri:filename="a].png" /></ac:image>'
        "</td></tr></table>"
    )
    assert md(storage) == "## Setup icon\n\n| k |\n| --- |\n| see [image: a\\].png] |"


# people --------------------------------------------------------------------------------------------------


def test_mention_with_its_own_link_text_keeps_the_name_shown():
    storage = (
        '<p>Ask <ac:link><ri:user ri:account-id="557058:abc" /><ac:plain-text-link-body><![CDATA[Custom Name]]>'
        '</ac:plain-text-link-body></ac:link> or <ac:link><ri:user ri:account-id="99:zz" /></ac:link></p>'
    )
    assert md(storage) == "Ask @Custom Name or @user:99:zz"
    assert [m["account_id"] for m in meta(storage)["user_mentions"]] == ["557058:abc", "99:zz"]


def test_profile_macro_names_the_user():
    storage = (
        '<p>Owner: <ac:structured-macro ac:name="profile"><ac:parameter ac:name="user"><ri:user ri:account-id="u1" />'
        '</ac:parameter></ac:structured-macro>, deputy: <ac:structured-macro ac:name="profile">'
        '<ac:parameter ac:name="user"><ri:user ri:account-id="u2" /></ac:parameter></ac:structured-macro></p>'
    )
    assert md(storage, users={"u1": "Ada Lovelace"}) == "Owner: @Ada Lovelace, deputy: @user:u2"
    assert [m["account_id"] for m in meta(storage)["user_mentions"]] == ["u1", "u2"]


# layout, status, dates, emoticons, anchors ----------------------------------------------------------------


def test_layout_cells_come_out_in_order_as_paragraphs():
    storage = (
        '<ac:layout><ac:layout-section ac:type="two_equal"><ac:layout-cell><p>left</p></ac:layout-cell>\n'
        "<ac:layout-cell><p>right</p><ul><li>item</li></ul></ac:layout-cell></ac:layout-section>\n"
        '<ac:layout-section ac:type="single"><ac:layout-cell>\nbelow</ac:layout-cell></ac:layout-section></ac:layout>'
    )
    assert md(storage) == "left\n\nright\n\n- item\n\nbelow"


def test_status_macro_is_its_title_in_brackets():
    # The colour is decoration: the title is what the lozenge says.
    storage = (
        '<p>State: <ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter>'
        '<ac:parameter ac:name="title">DONE</ac:parameter></ac:structured-macro></p>'
    )
    assert md(storage) == "State: [DONE]"


def test_date_element_is_its_date():
    assert md('<p>Due <time datetime="2026-05-01" /> or <time datetime="2026-06-01">1 Jun</time></p>') == (
        "Due 2026-05-01 or 1 Jun"
    )


def test_emoticons_legacy_and_cloud_come_out_as_unicode_or_shortname():
    storage = (
        '<p><ac:emoticon ac:name="smile" /> '
        '<ac:emoticon ac:name="blue-star" ac:emoji-shortname=":smile:" ac:emoji-fallback="🙂" /> '
        '<ac:emoticon ac:name="blue-star" ac:emoji-shortname=":rocket:" ac:emoji-id="1f680" '
        'ac:emoji-fallback=":rocket:" /> '
        '<ac:emoticon ac:name="tick" ac:emoji-shortname=":check_mark:" ac:emoji-id="atlassian-check_mark" '
        'ac:emoji-fallback=":check_mark:" /> '
        '<ac:emoticon ac:name="blue-star" ac:emoji-shortname=":partyparrot:" '
        'ac:emoji-id="0f1e2d3c-aaaa-bbbb-cccc-1234567890ab" ac:emoji-fallback=":partyparrot:" /> '
        '<ac:emoticon ac:name="blue-star" /> <ac:emoticon ac:name="mystery" /></p>'
    )
    assert md(storage) == "🙂 🙂 🚀 ✅ :partyparrot: ⭐ :mystery:"


def test_anchor_links_within_the_page_stay_on_the_page():
    storage = (
        '<p><ac:link ac:anchor="section-2"><ac:plain-text-link-body><![CDATA[go to 2]]></ac:plain-text-link-body>'
        '</ac:link> and <ac:link ac:anchor="sec3" /> and <a href="#top">top</a></p>'
    )
    assert md(storage) == "[go to 2](#section-2) and [sec3](#sec3) and [top](#top)"
    m = meta(storage)
    assert m["internal_links"] == [] and m["external_links"] == []
