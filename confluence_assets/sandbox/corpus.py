"""A deterministic corpus: N spaces x M pages with real page trees, authors, labels, attachments and
storage bodies (see :mod:`storage`), the same for the same seed and the same site state.

Timestamps are spread over the two years before ``anchor`` (fixed, not the wall clock), so a corpus is
identical on every run. Each page carries a made-up ``codename`` word in its body, which lexical retrieval
tests can query for. The first content page of every space holds one of every storage construct.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from confluence_assets.sandbox.files import corpus_file
from confluence_assets.sandbox.site import Site
from confluence_assets.sandbox.storage import ADJECTIVES, TOPICS, WORDS, PageContext, StorageWriter

DEFAULT_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
SPACE_NAMES = (
    ("ENG", "Engineering"),
    ("OPS", "Operations"),
    ("DOCS", "Documentation"),
    ("SALES", "Sales"),
    ("HR", "People"),
    ("FIN", "Finance"),
    ("SEC", "Security"),
    ("DATA", "Data Platform"),
    ("QA", "Quality"),
    ("MKT", "Marketing"),
    ("LEGAL", "Legal"),
    ("SUP", "Support"),
)
USER_NAMES = (
    "Alice Kim",
    "Bob Martin",
    "김민수",
    "山田 太郎",
    "Zoë Müller",
    "Carlos Pérez",
    "Priya Sharma",
    "Олег Иванов",
    "Fatima Al-Sayed",
    "Li Wei",
    "Ngozi Okafor",
    "Sven Lindqvist",
)
LABELS = (
    "howto",
    "runbook",
    "architecture",
    "faq",
    "release-notes",
    "onboarding",
    "security",
    "api",
    "deprecated",
    "draft",
    "meeting-notes",
    "kb",
    "incident",
    "postmortem",
    "데이터",
)
ATTACHMENTS = (
    "diagram-{n}.png",
    "screenshot-{n}.png",
    "spec-{n}.pdf",
    "export-{n}.csv",
    "photo-{n}.jpg",
    "데이터-{n}.xlsx",
    "notes-{n}.txt",
    "flow-{n}.svg",
)
MAX_DEPTH = 6


@dataclass(frozen=True)
class CorpusInfo:
    """What ``generate_corpus`` made."""

    seed: int
    space_keys: tuple[str, ...]
    page_ids: dict[str, tuple[str, ...]]  # space key -> ids, homepage first
    codenames: dict[str, str]  # page id -> the distinctive word its body repeats
    large_page_ids: tuple[str, ...]
    empty_page_ids: tuple[str, ...]
    kitchen_sink_ids: tuple[str, ...]
    user_ids: tuple[str, ...]
    seconds: float
    total_bytes: int = field(default=0)
    # attachment id -> the distinctive phrase its real file carries (``attachment_files``; ground truth
    # for attachment search tests)
    attachment_phrases: dict[str, str] = field(default_factory=dict)

    @property
    def total_pages(self) -> int:
        return sum(len(ids) for ids in self.page_ids.values())


def _codename(rng: random.Random, used: set[str]) -> str:
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    while True:
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(3)) + rng.choice(consonants)
        if word not in used:
            used.add(word)
            return word


def generate_corpus(
    site: Site,
    seed: int = 7,
    spaces: int = 2,
    pages_per_space: int = 50,
    *,
    large_pages: int | None = None,
    empty_pages: int | None = None,
    anchor: datetime = DEFAULT_ANCHOR,
    attachment_files: int = 0,
) -> CorpusInfo:
    """Add ``spaces`` spaces of ``pages_per_space`` pages each (the homepage included) to ``site``.

    ``large_pages`` (>= 1 MB bodies) and ``empty_pages`` default to about one per 2,000 and per 500
    pages, at least one of each when the corpus has 20 pages or more. ``attachment_files`` real files
    (PDF, DOCX, PPTX, XLSX, CSV, TXT, Markdown, HTML in turn; sandbox/files.py) are attached to content
    pages chosen by the seed, each carrying a distinctive phrase (``CorpusInfo.attachment_phrases``);
    off by default, and drawn from a random stream of their own, so the rest of the corpus is the same
    with or without them.
    """
    began = time.perf_counter()
    rng = random.Random(seed)
    writer = StorageWriter(rng)
    total = spaces * pages_per_space
    if large_pages is None:
        large_pages = max(1, total // 2000) if total >= 20 else 0
    if empty_pages is None:
        empty_pages = max(1, total // 500) if total >= 20 else 0

    with site.lock:
        users = []
        for name in USER_NAMES:
            account = f"712020:{random.Random(f'{seed}:{name}').getrandbits(128):032x}"
            user = site.users.get(account) or site.add_user(name, account_id=account)
            users.append(user.account_id)
        keys: list[str] = []
        candidates = [*SPACE_NAMES, *((f"S{i}", f"Space {i}") for i in range(len(SPACE_NAMES), 10_000))]
        for key, name in candidates:
            if len(keys) == spaces:
                break
            if key not in site.spaces:
                keys.append(key)
                site_name = name
                created = anchor - timedelta(days=800 - len(keys))
                site.add_space(
                    key,
                    site_name,
                    description=f"{site_name} space (generated, seed {seed}).",
                    creator=rng.choice(users),
                    when=created,
                )

        # Plan every page first (ids, titles, parents, times) so bodies can link to any title.
        used_codenames: set[str] = set()
        plans: dict[str, list[dict]] = {}
        for key in keys:
            space = site.spaces[key]
            home = {"id": space.homepage_id, "title": space.name, "depth": 0, "home": True}
            plan = [home]
            titles = {space.name}
            for j in range(1, pages_per_space):
                if j < 8 or rng.random() < 0.12:
                    parent = home
                else:
                    parent = plan[rng.randrange(1, j)]
                    while parent["depth"] >= MAX_DEPTH:
                        parent = plan[rng.randrange(1, j)]
                topic = rng.choice(TOPICS)
                title = f"{rng.choice(ADJECTIVES)} {rng.choice(WORDS).title()} {topic}"
                if title in titles:
                    title = f"{title} {j}"
                titles.add(title)
                created = space.created_at + timedelta(
                    seconds=rng.uniform(86400, (anchor - space.created_at).total_seconds() - 86400)
                )
                created = created.replace(microsecond=created.microsecond // 1000 * 1000)
                versions = 1 if rng.random() < 0.3 else rng.randint(2, 15)
                modified = created if versions == 1 else created + (anchor - created) * rng.random()
                modified = modified.replace(microsecond=modified.microsecond // 1000 * 1000)
                plan.append(
                    {
                        "title": title,
                        "parent": parent,
                        "depth": parent["depth"] + 1,
                        "created": created,
                        "modified": modified,
                        "version": versions,
                        "author": rng.choice(users),
                        "codename": _codename(rng, used_codenames),
                        "topic": title.split(),
                        "labels": rng.sample(LABELS, rng.choice((0, 0, 1, 1, 2, 3))),
                        "attachments": [
                            rng.choice(ATTACHMENTS).format(n=n) for n in range(rng.choice((0, 0, 0, 1, 2, 3)))
                        ],
                    }
                )
                if j == 1:  # the kitchen-sink page shows images and attachment links too
                    plan[-1]["attachments"] = ["diagram-0.png", "spec-1.pdf"]
            plans[key] = plan

        content_pages = [(key, i) for key in keys for i in range(1, pages_per_space)]
        special = rng.sample(content_pages, min(len(content_pages), large_pages + empty_pages))
        large = set(special[:large_pages])
        empty = set(special[large_pages:])
        all_titles = [(key, p["title"]) for key in keys for p in plans[key][1:]]

        page_ids: dict[str, tuple[str, ...]] = {}
        codenames: dict[str, str] = {}
        large_ids, empty_ids, sink_ids = [], [], []
        total_bytes = 0
        for key in keys:
            plan = plans[key]
            space_titles = [p["title"] for p in plan]
            others = [t for t in all_titles if t[0] != key][:500]
            ids = [plan[0]["id"]]
            for i, p in enumerate(plan[1:], start=1):
                ctx = PageContext(p["codename"], p["topic"], key, space_titles, others, users, p["attachments"])
                if (key, i) in empty:
                    body = ""
                elif (key, i) in large:
                    body = writer.large_page(ctx)
                elif i == 1:
                    body = writer.kitchen_sink(ctx)
                else:
                    body = writer.page(ctx)
                page = site.create_page(
                    key,
                    p["title"],
                    body,
                    parent_id=p["parent"]["id"],
                    author=p["author"],
                    when=p["modified"],
                    created_at=p["created"],
                    version=p["version"],
                    labels=p["labels"],
                )
                if p["version"] > 1:
                    page.modified_by = rng.choice(users)
                p["id"] = page.id
                for name in p["attachments"]:
                    size = rng.randint(1_000, 5_000_000)  # drawn for every file: the corpus stays the same
                    data = corpus_file(name, f"{p['title']}: {p['codename']} {' '.join(p['topic'])}")
                    site.add_attachment(page.id, name, data=data, file_size=size, author=p["author"], when=p["created"])
                ids.append(page.id)
                codenames[page.id] = p["codename"]
                total_bytes += len(body)
                if (key, i) in empty:
                    empty_ids.append(page.id)
                elif (key, i) in large:
                    large_ids.append(page.id)
                elif i == 1:
                    sink_ids.append(page.id)
            page_ids[key] = tuple(ids)
        phrases = _attach_files(site, seed, attachment_files, [i for key in keys for i in page_ids[key][1:]])

    return CorpusInfo(
        seed=seed,
        space_keys=tuple(keys),
        page_ids=page_ids,
        codenames=codenames,
        large_page_ids=tuple(large_ids),
        empty_page_ids=tuple(empty_ids),
        kitchen_sink_ids=tuple(sink_ids),
        user_ids=tuple(users),
        seconds=time.perf_counter() - began,
        total_bytes=total_bytes,
        attachment_phrases=phrases,
    )


def _attach_files(site: Site, seed: int, count: int, page_ids: list[str]) -> dict[str, str]:
    from confluence_assets.sandbox.files import GOOD_KINDS, good_file

    rng = random.Random(f"{seed}:attachment-files")
    phrases: dict[str, str] = {}
    used: set[str] = set()
    for i in range(count if page_ids else 0):
        page = site.pages[rng.choice(page_ids)]
        kind = GOOD_KINDS[i % len(GOOD_KINDS)]
        phrase = " ".join(_codename(rng, used) for _ in range(3))
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 200)))
        sample = good_file(kind, f"attached-{i}", phrase, filler)
        att = site.add_attachment(
            page.id, sample.filename, data=sample.blob, media_type=sample.media_type, when=page.created_at
        )
        phrases[att.id] = phrase
    return phrases
