"""Test data for search: Confluence pages and chunks written straight into the schema, shaped like the
sync writes them (confluence_pages.metadata per the content module, chunk metadata per chunk_step), and a
deterministic lexical embedding so that vector search means something without a model.

Permissions too, as the permission refresh records them (sql/0.1.0/040): each page's own read restriction
(by default known and unrestricted, so that a search with no principal finds it), and on request space
permissions, groups with their members and users with their e-mails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from psycopg.types.json import Jsonb

from confluence_assets.search.hybrid import vector_literal

MODEL = "test-lexical-hash"
DIMS = 384
_TOKEN = re.compile(r"[a-z0-9]+")


def lexical_embedding(text: str, dims: int = DIMS) -> list[float]:
    """Signed feature hashing of word unigrams and bigrams, L2-normalised: texts sharing words are close."""
    tokens = [t for t in _TOKEN.findall(text.lower()) if len(t) > 2]
    features = tokens + [a + "_" + b for a, b in zip(tokens, tokens[1:], strict=False)]
    vector = [0.0] * dims
    for feature in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dims
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    """POST /v1/embeddings answering with the lexical embedding, base64 little-endian float32 when asked
    (the openai client's default), at the requested ``dimensions``."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/embeddings":
            self.send_error(404)
            return
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or DIMS
        data = []
        for i, text in enumerate(texts):
            vector = lexical_embedding(text, dims)
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            else:
                embedding = vector
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        payload = json.dumps(
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def lexical_embeddings_server() -> Iterator[str]:
    """A minimal OpenAI-compatible embeddings server on a free local port; yields its base URL (.../v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Page:
    page_id: str
    space: str
    title: str
    chunks: list[tuple[str, str]]  # (section title, text)
    parent: str | None = None
    labels: tuple[str, ...] = ()
    author: str = "acc-alice"
    mentions: tuple[str, ...] = ()
    jira: tuple[str, ...] = ()
    links_to: tuple[str, ...] = ()
    attachments: int = 0
    deleted: bool = False
    modified: datetime = field(default_factory=lambda: datetime(2024, 6, 1, tzinfo=UTC))
    read_users: tuple[str, ...] = ()  # the page's own read restriction (empty: none)
    read_groups: tuple[str, ...] = ()
    restriction_status: str = "ok"  # 'unknown': not read yet, the page and its descendants hidden


class Site:
    """Writes pages into a migrated database, keeping paths and ancestors consistent."""

    def __init__(self, conn, *, dims: int = DIMS, model: str = MODEL, embed=lexical_embedding) -> None:
        self.conn = conn
        self.dims = dims
        self.model = model
        self.embed = embed
        self.paths: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        self.spaces: set[str] = set()

    def _source(self, space: str) -> str:
        if space not in self.spaces:
            self.conn.execute(
                "INSERT INTO archon_sources (source_id, title, metadata) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (f"confluence_{space}", space, Jsonb({"source_type": "confluence"})),
            )
            self.spaces.add(space)
        return f"confluence_{space}"

    def add(self, page: Page) -> Page:
        conn = self.conn
        self._source(page.space)
        path = (self.paths[page.parent] if page.parent else "") + "/" + page.page_id
        self.paths[page.page_id] = path
        self.titles[page.page_id] = page.title
        url = f"https://example.atlassian.net/wiki/spaces/{page.space}/pages/{page.page_id}"
        ancestor_ids = path.split("/")[1:-1]
        metadata = {
            "page_id": page.page_id,
            "title": page.title,
            "space_key": page.space,
            "page_url": url,
            "path": path,
            "ancestors": [{"id": a, "title": self.titles[a], "url": ""} for a in ancestor_ids],
            "children": [],
            "created_by": {"account_id": page.author, "display_name": page.author, "email": None, "profile_url": None},
            "last_modified_by": {"account_id": page.author, "display_name": page.author},
            "labels": list(page.labels),
            "jira_issue_links": [
                {"issue_key": k, "issue_url": f"https://example.atlassian.net/browse/{k}"} for k in page.jira
            ],
            "user_mentions": [{"account_id": m, "display_name": m, "profile_url": None} for m in page.mentions],
            "internal_links": [
                {"page_id": t, "page_title": None, "space_key": page.space, "page_url": ""} for t in page.links_to
            ],
            "external_links": [],
            "asset_links": [
                {"id": f"att{page.page_id}-{i}", "title": f"file{i}.png", "media_type": "image/png", "size": 10}
                for i in range(page.attachments)
            ],
            "word_count": sum(len(t.split()) for _, t in page.chunks),
            "content_length": sum(len(t) for _, t in page.chunks),
        }
        conn.execute(
            """INSERT INTO confluence_pages (page_id, source_id, space_key, title, version, last_modified, path,
                                             metadata, is_deleted, deleted_at, indexed_version)
               VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s, %s, 1)""",
            (
                page.page_id,
                f"confluence_{page.space}",
                page.space,
                page.title,
                page.modified,
                path,
                Jsonb(metadata),
                page.deleted,
                page.modified if page.deleted else None,
            ),
        )
        column = f"embedding_{self.dims}"
        with conn.cursor() as cur:
            cur.executemany(
                f"""INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, {column},
                                                     embedding_model, embedding_dimension)
                    VALUES (%s, %s, %s, %s, %s, %s::vector, %s, %s)""",  # noqa: S608 - column is ours
                [
                    (
                        f"confluence://{page.space}/{page.page_id}",
                        n,
                        text,
                        Jsonb(
                            {
                                "source_type": "confluence",
                                "page_id": page.page_id,
                                "page_title": page.title,
                                "page_url": url,
                                "space_key": page.space,
                                "section_title": section,
                                "breadcrumb": [page.title, section] if section != page.title else [page.title],
                                "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                                "chunk_index": n,
                                "token_count": len(text.split()),
                                "version": 1,
                                "last_modified": page.modified.isoformat(),
                            }
                        ),
                        f"confluence_{page.space}",
                        vector_literal(self.embed(f"{page.title} > {section}\n\n{text}", self.dims)),
                        self.model,
                        self.dims,
                    )
                    for n, (section, text) in enumerate(page.chunks)
                ],
            )
        self.restrict(page.page_id, page.read_users, page.read_groups, status=page.restriction_status)
        return page

    # -- permissions, as the permission refresh records them -------------------------------------------

    def restrict(self, page_id: str, users=(), groups=(), *, status: str = "ok") -> None:
        """The page's own read restriction (none when both are empty); ``status`` 'unknown' hides it."""
        updated = self.conn.execute(
            """UPDATE confluence_page_restrictions
               SET status = %s, read_account_ids = %s, read_group_ids = %s, error = NULL, read_at = now()
               WHERE page_id = %s""",
            (status, list(users), list(groups), page_id),
        )
        assert updated.rowcount == 1, f"page {page_id} has no restriction row"

    def space_permissions(
        self, space: str, users=(), groups=(), *, anonymous: bool = False, status: str = "ok"
    ) -> None:
        """Who may view ``space``: users and groups with read/space, anonymous access (opens it to every user)."""
        self.conn.execute(
            """INSERT INTO confluence_space_permissions (source_id, space_key, status, anonymous_access,
                                                         reader_account_ids, reader_group_ids, refreshed_at)
               VALUES (%s, %s, %s, %s, %s, %s, now())
               ON CONFLICT (source_id) DO UPDATE SET status = EXCLUDED.status,
                 anonymous_access = EXCLUDED.anonymous_access, reader_account_ids = EXCLUDED.reader_account_ids,
                 reader_group_ids = EXCLUDED.reader_group_ids, refreshed_at = EXCLUDED.refreshed_at""",
            (self._source(space), space, status, anonymous, list(users), list(groups)),
        )

    def group(self, group_id: str, members=(), *, status: str = "ok", name: str | None = None) -> None:
        """A group and its members; ``status`` 'unknown': its listing failed, it lets nobody in."""
        self.conn.execute(
            """INSERT INTO confluence_groups (group_id, name, members_status, member_count, refreshed_at)
               VALUES (%s, %s, %s, %s, now())
               ON CONFLICT (group_id) DO UPDATE SET name = EXCLUDED.name, members_status = EXCLUDED.members_status,
                 member_count = EXCLUDED.member_count, refreshed_at = EXCLUDED.refreshed_at""",
            (group_id, name or group_id, status, len(members) if status == "ok" else None),
        )
        self.conn.execute("DELETE FROM confluence_group_members WHERE group_id = %s", (group_id,))
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO confluence_group_members (group_id, account_id) VALUES (%s, %s)",
                [(group_id, member) for member in members],
            )

    def user(self, account_id: str, email: str | None = None, display_name: str | None = None) -> None:
        self.conn.execute(
            """INSERT INTO confluence_users (account_id, email, display_name) VALUES (%s, %s, %s)
               ON CONFLICT (account_id) DO UPDATE SET email = EXCLUDED.email, display_name = EXCLUDED.display_name""",
            (account_id, email, display_name or account_id),
        )

    def add_web_chunk(self, source_id: str, url: str, text: str) -> None:
        """A chunk of another Archon source (a web crawl): no page_id, must stay searchable by Archon's API."""
        self.conn.execute(
            "INSERT INTO archon_sources (source_id, title) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (source_id, source_id),
        )
        self.conn.execute(
            f"""INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id,
                                                 embedding_{self.dims}, embedding_model, embedding_dimension)
                VALUES (%s, 0, %s, %s, %s, %s::vector, %s, %s)""",  # noqa: S608 - column is ours
            (
                url,
                text,
                Jsonb({"headers": "h"}),
                source_id,
                vector_literal(self.embed(text, self.dims)),
                self.model,
                self.dims,
            ),
        )


WORDS = (
    "alpha amber anchor apex arbor atlas aurora badge basalt beacon birch bison blaze bolt breeze bronze "
    "cactus canyon cargo cedar chalk cinder cipher citrus cobalt comet coral cosmos crane crest crystal "
    "dagger delta denim dune ember falcon fern fjord flint forge fossil garnet geyser glacier granite "
    "harbor hazel helix heron hollow indigo iris ivory jade jasper juniper kelp kestrel lagoon lantern "
    "lava ledger lichen lotus lunar magnet maple marble meadow meteor mica mint mosaic nectar nebula "
    "nickel nimbus oasis obsidian ocean onyx opal orbit osprey otter palette pebble pepper pine pixel "
    "plasma polar prism pulsar quartz quill radar raven reef ripple rocket ruby saffron sage sapphire "
    "scarlet sequoia shale sierra silica slate solstice sonar spruce summit tango tempest thistle tide "
    "timber topaz tundra umber valley vapor velvet vertex violet vortex walnut willow zenith zephyr"
).split()
COMMON = "the team will deploy review update the service and check the release notes for this quarter".split()


def generated_text(rng, words: int = 60) -> str:
    """Text mixing common words with a vocabulary of rarer ones, like a page would."""
    return " ".join(rng.choice(COMMON) if rng.random() < 0.45 else rng.choice(WORDS) for _ in range(words))
