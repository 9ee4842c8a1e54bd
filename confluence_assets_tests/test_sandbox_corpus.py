"""The generated corpus: deterministic, quick to build at 5 x 2,000 pages, real trees, and every storage
construct real pages contain; and the real samples loaded as a space."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from confluence_assets.sandbox import Site, generate_corpus, load_samples
from confluence_assets.sandbox.samples import PACKAGED_SAMPLES_DIR

# The copy shipped with the package (a fresh clone has it); test_sandbox_corpus checks it is the team's copy.
SAMPLES = PACKAGED_SAMPLES_DIR


def fingerprint(site: Site) -> list[tuple]:
    return [
        (p.id, p.space_key, p.title, p.parent_id, p.position, p.version, p.created_at, p.modified_at, p.author_id,
         p.body, tuple(lb.name for lb in p.labels), tuple(site.attachments[a].title for a in p.attachment_ids))
        for p in site.pages.values()
    ]  # fmt: skip


def test_same_seed_same_corpus_other_seed_other_corpus():
    a, b, c = Site(), Site(), Site()
    generate_corpus(a, seed=7, spaces=2, pages_per_space=40)
    generate_corpus(b, seed=7, spaces=2, pages_per_space=40)
    generate_corpus(c, seed=8, spaces=2, pages_per_space=40)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_five_spaces_of_two_thousand_pages_build_in_seconds():
    site = Site()
    began = time.perf_counter()
    info = generate_corpus(site, seed=7, spaces=5, pages_per_space=2000)
    elapsed = time.perf_counter() - began
    print(f"5 x 2,000 pages: {elapsed:.2f} s, {info.total_bytes / 1e6:.1f} MB of storage XHTML")
    # ~2.5 s on the 2-core machine since each page's attachments are real small files about it (about
    # 5,000 PDFs, workbooks, CSVs and notes); generous for a loaded CI runner
    assert elapsed < 10
    assert info.total_pages == 10_000 and len(site.pages) == 10_000
    assert len(info.large_page_ids) == 5 and len(info.empty_page_ids) == 20
    assert all(len(site.pages[i].body.encode()) >= 1_048_576 for i in info.large_page_ids)
    assert all(site.pages[i].body == "" for i in info.empty_page_ids)


def test_trees_titles_and_metadata():
    site = Site()
    info = generate_corpus(site, seed=7, spaces=3, pages_per_space=300)
    for key in info.space_keys:
        pages = site.live_pages(key)
        assert len({p.title for p in pages}) == len(pages)  # unique within a space
        depths = [len(p.ancestors) for p in pages]
        assert depths.count(0) == 1 and max(depths) >= 4  # one root (the homepage), real depth
        assert all(p.ancestors[0] == site.spaces[key].homepage_id for p in pages if p.ancestors)
        for page in pages:  # sibling positions are distinct and children are listed in position order
            kids = [site.pages[c] for c in site.child_ids(page.id)]
            assert [k.position for k in kids] == sorted({k.position for k in kids})
        assert any(p.labels for p in pages) and any(p.attachments for p in pages)
        assert len({site.pages[p.id].author_id for p in pages}) > 5
        assert any(p.version > 1 and p.last_modified > p.created_at for p in pages)
    assert len(set(info.codenames.values())) == len(info.codenames)


def test_storage_holds_every_construct_real_pages_have():
    site = Site()
    info = generate_corpus(site, seed=7, spaces=2, pages_per_space=200)
    sink = site.pages[info.kitchen_sink_ids[0]].body
    everything = "".join(p.body for p in site.pages.values())
    patterns = {
        "heading": r"<h[1-3]>", "paragraph": r"<p>", "list": r"<(ul|ol)><li>", "table": r"<table[^>]*>.*?<th>",
        "code with language and CDATA": r'ac:name="code".*?ac:name="language">\w+<.*?<!\[CDATA\[',
        "info panel": r'ac:name="info"', "note panel": r'ac:name="note"', "warning panel": r'ac:name="warning"',
        "expand": r'ac:name="expand"', "toc": r'ac:name="toc"', "status": r'ac:name="status"',
        "page link": r"<ri:page ri:content-title=", "user mention": r'<ri:user ri:account-id="',
        "jira macro": r'ac:name="jira".*?ac:name="key">[A-Z]+-\d+<', "browse link": r"/browse/[A-Z]+-\d+",
        "external link": r'<a href="https://', "attachment image": r"<ac:image[^>]*><ri:attachment ri:filename=",
        "attachment link": r"<ac:link><ri:attachment", "emoticon": r"<ac:emoticon ", "tasks": r"<ac:task-list>",
        "layout": r"<ac:layout>",
    }  # fmt: skip
    for name, pattern in patterns.items():
        assert re.search(pattern, sink, re.S), f"kitchen sink lacks {name}"
    assert re.search(r"[\uac00-\ud7a3]", everything) and re.search(r"[\u3040-\u30ff]", everything)  # Hangul, kana
    assert re.search(r"[\U0001F300-\U0001FAFF]", everything)  # emoji
    assert "]]]]><![CDATA[>" in everything  # the CDATA split Confluence writes for "]]>"
    assert re.search(r'ri:space-key="[A-Z]+" ri:content-title=', everything)  # cross-space links
    assert 'ri:url ri:value="https://' in everything  # external images


def test_samples_load_as_a_space_with_the_real_tree():
    site = Site()
    info = load_samples(site, "QM", SAMPLES)
    assert len(info.page_ids) == 10 and site.spaces["QM"].homepage_id == "576585864"
    for page_id in info.page_ids:
        real = json.loads((SAMPLES / page_id / "page.v1.json").read_text())
        real_v2 = json.loads((SAMPLES / page_id / "page.v2.json").read_text())
        snap = site.snapshot(page_id)
        assert snap.body == (SAMPLES / page_id / "page.xhtml").read_text()
        assert list(snap.ancestors) == [a["id"] for a in real["ancestors"]]
        assert snap.version == real_v2["version"]["number"] and snap.title == real["title"]
    assert site.child_ids("1454342158") == ["1495433217"]
    assert all(site.pages[s].body == "" for s in info.stub_ids)


TEAM_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "confluence-samples"


@pytest.mark.skipif(not TEAM_SAMPLES.is_dir(), reason="the team's ../shared/confluence-samples is not on this machine")
def test_packaged_samples_are_the_teams_samples_unmodified():
    ours = {p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file() and p.name != "README.md"}
    theirs = {p.relative_to(TEAM_SAMPLES) for p in TEAM_SAMPLES.rglob("*") if p.is_file() and p.name != "README.md"}
    assert ours == theirs and len(ours) == 60
    for rel in sorted(ours):
        assert (SAMPLES / rel).read_bytes() == (TEAM_SAMPLES / rel).read_bytes(), rel
