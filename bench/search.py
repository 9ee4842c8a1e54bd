"""Search benchmark: latency of vector, keyword and hybrid search over >= 100,000 chunks, and HNSW recall.

    .venv/bin/python bench/search.py                   # 100,000 chunks, 200 queries per kind
    .venv/bin/python bench/search.py --chunks 20000    # a quicker look
    .venv/bin/python bench/search.py --reload          # regenerate and reload the data
    .venv/bin/python bench/search.py --ann             # only HNSW recall per dimension (12,000 chunks, 384-3072 d)

It generates a synthetic but shaped corpus (seeded, so every run sees the same data):
- text: chunks of ~200 words from a 30,000-word vocabulary, Zipf-distributed general words mixed with the
  words of the chunk's topic (300 topics), so full-text queries match tens to thousands of chunks;
- vectors: 1536-d, clustered: a 96-d latent (topic centre + page offset + chunk noise) mapped through a
  fixed random projection, plus a little isotropic noise, then normalised. Real embeddings have a low
  intrinsic dimension too; uniform noise would make HNSW recall meaningless;
- pages in 8 spaces with hierarchy, labels, authors, mentions and Jira links, for the filtered queries;
- permissions (sql/0.1.0/040), rewritten on every run: 200 groups of 2,000 users, space permissions by
  group (one space with anonymous access), 5% of the pages with a read restriction to 1-3 groups (some
  under another restricted page: nested), and a principal in 100 of the groups.

It loads them with binary COPY into the Archon schema (secondary indexes dropped during the load and built
afterwards, as a bulk load should), then measures through confluence_hybrid_search() what a caller gets:
p50/p95 latency per search mode, recall@10 of the HNSW vector search against exact search (a sequential
scan ordered by the true distance) for several hnsw.ef_search values, a few filtered searches, and the
same searches as a principal in 100 groups and as the service account. Without a principal a search reads
the pages no read restriction limits (what nobody named gets).

The data lives in its own place and never in a user's: without DATABASE_URL, an embedded server under
--home (default /tmp/confluence-assets-bench); with DATABASE_URL, a sibling database
"confluence_search_bench" on that server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

DEFAULT_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / "confluence-assets-bench"
BENCH_DATABASE = "confluence_search_bench"
SPACES = ("ENG", "OPS", "HR", "SALES", "DOCS", "SEC", "DATA", "QA")
STOPWORDS = (
    "the of and to a in is that for it as with was on be by this are or from at an which have not can "
    "will if we you they but all when there more use may also should must how what one each other"
).split()
LATENT = 96
DIM = 1536
N_GROUPS = 200
N_USERS = 2000
PRINCIPAL = "bench-principal"  # a member of PRINCIPAL_GROUPS of the groups
PRINCIPAL_GROUPS = 100
RESTRICTED_SHARE = 0.05
NESTED_SHARE = 0.3  # of the restricted pages with children: one child restricted too


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=100_000, help="chunks to load (default 100,000)")
    p.add_argument("--queries", type=int, default=200, help="timed queries per search mode (default 200)")
    p.add_argument("--recall-queries", type=int, default=100, help="queries for recall@10 (default 100)")
    p.add_argument("--ef-search", default="40,100,150,200", help="hnsw.ef_search values to compare")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--limit", type=int, default=10, help="results per search in the latency table (default 10)")
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="embedded server home for the bench")
    p.add_argument("--reload", action="store_true", help="regenerate and reload even if the data is there")
    p.add_argument(
        "--ann", action="store_true", help="only the ANN recall per dimension (384 ... 3072) on clustered vectors"
    )
    p.add_argument("--ann-chunks", type=int, default=12_000, help="chunks for --ann (default 12,000)")
    p.add_argument("--ann-ef-search", default="40,64,100,150,200,300,400,600", help="ef_search values for --ann")
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------------------
# Synthetic corpus
# --------------------------------------------------------------------------------------------------


class Corpus:
    """Deterministic synthetic corpus; vectors and texts are generated in blocks on demand."""

    def __init__(self, n_chunks: int, seed: int) -> None:
        import numpy as np

        self.np = np
        self.n_chunks = n_chunks
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.vocab = _vocabulary(rng, 30_000)
        self.n_topics = 300
        self.topic_words = rng.integers(len(STOPWORDS), len(self.vocab), size=(self.n_topics, 150))
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        zipf = 1.0 / ranks**1.07
        self.general_cdf = np.cumsum(zipf / zipf.sum())
        self.projection = rng.standard_normal((LATENT, DIM)).astype(np.float32) / np.sqrt(LATENT)
        centres = rng.standard_normal((self.n_topics, LATENT))
        self.topic_centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

        # Pages: 1-15 chunks each, a topic, a space, a parent earlier in the same space.
        sizes = []
        while sum(sizes) < n_chunks:
            sizes.append(int(rng.integers(1, 16)))
        sizes[-1] -= sum(sizes) - n_chunks
        self.page_sizes = sizes
        n_pages = len(sizes)
        self.page_topic = rng.integers(0, self.n_topics, size=n_pages)
        self.page_space = rng.integers(0, len(SPACES), size=n_pages)
        offsets = rng.standard_normal((n_pages, LATENT))
        self.page_offset = 0.5 * offsets / np.linalg.norm(offsets, axis=1, keepdims=True)
        self.chunk_page = np.repeat(np.arange(n_pages), sizes)
        self.chunk_number = np.concatenate([np.arange(s) for s in sizes])
        self.page_rng_seed = int(rng.integers(1 << 31))

    @property
    def n_pages(self) -> int:
        return len(self.page_sizes)

    def page_id(self, page: int) -> str:
        return str(100_000 + page)

    def latents(self, chunks) -> object:
        np = self.np
        pages = self.chunk_page[chunks]
        noise = np.random.default_rng([self.seed, 1, int(chunks[0])]).standard_normal((len(chunks), LATENT))
        noise *= 0.35 / np.sqrt(LATENT)
        return self.topic_centres[self.page_topic[pages]] + self.page_offset[pages] + noise

    def embed_latents(self, latents, rng=None) -> object:
        np = self.np
        vectors = latents.astype(np.float32) @ self.projection
        rng = rng or np.random.default_rng([self.seed, 2, len(latents)])
        vectors += rng.standard_normal(vectors.shape, dtype=np.float32) * 0.005
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors

    def texts(self, chunks) -> list[str]:
        np = self.np
        out = []
        for chunk in chunks:
            rng = np.random.default_rng([self.seed, 3, int(chunk)])
            length = int(rng.integers(120, 280))
            topic = self.page_topic[self.chunk_page[chunk]]
            general = np.minimum(np.searchsorted(self.general_cdf, rng.random(length)), len(self.vocab) - 1)
            topical = self.topic_words[topic][rng.integers(0, 150, size=length)]
            words = np.where(rng.random(length) < 0.3, topical, general)
            out.append(" ".join(self.vocab[w] for w in words))
        return out

    def pages(self):
        """(page_id, space, title, path, metadata) for every page."""
        import random

        rng = random.Random(self.page_rng_seed)
        paths: dict[int, str] = {}
        last_in_space: dict[int, list[int]] = {}
        labels = [f"label-{i}" for i in range(60)]
        for page in range(self.n_pages):
            space = int(self.page_space[page])
            siblings = last_in_space.setdefault(space, [])
            parent = rng.choice(siblings[-200:]) if siblings and rng.random() < 0.9 else None
            pid = self.page_id(page)
            paths[page] = (paths[parent] if parent is not None else "") + "/" + pid
            siblings.append(page)
            topic = int(self.page_topic[page])
            title = " ".join(self.vocab[w].capitalize() for w in self.topic_words[topic][:2]) + f" {page}"
            ancestors = [p for p in paths[page].split("/")[1:-1]]
            metadata = {
                "page_id": pid,
                "title": title,
                "space_key": SPACES[space],
                "page_url": f"https://bench.example/wiki/spaces/{SPACES[space]}/pages/{pid}",
                "ancestors": [{"id": a, "title": f"Page {a}", "url": ""} for a in ancestors],
                "children": [],
                "created_by": {"account_id": f"user-{rng.randrange(200)}", "display_name": "Bench User"},
                "last_modified_by": {"account_id": f"user-{rng.randrange(200)}", "display_name": "Bench User"},
                "labels": rng.sample(labels, rng.randrange(4)),
                "jira_issue_links": [
                    {"issue_key": f"PROJ-{rng.randrange(1, 5000)}", "issue_url": ""} for _ in range(rng.randrange(3))
                ],
                "user_mentions": [
                    {"account_id": f"user-{rng.randrange(200)}", "display_name": None, "profile_url": None}
                    for _ in range(rng.randrange(3))
                ],
                "internal_links": [],
                "external_links": [],
                "asset_links": [{"id": f"att{page}", "title": "a.png"}] if rng.random() < 0.3 else [],
                "word_count": 0,
                "content_length": 0,
            }
            yield pid, SPACES[space], title, paths[page], metadata


def _vocabulary(rng, size: int) -> list[str]:
    onsets = "b c d f g h j k l m n p r s t v w z br cl dr fl gr pl st tr sh ch th".split()
    vowels = "a e i o u ai ea io ou".split()
    codas = ["", "n", "r", "s", "t", "l", "m", "nd", "st", "rk"]
    words: list[str] = list(STOPWORDS)
    seen = set(words)
    while len(words) < size:
        n = int(rng.integers(2, 4))
        word = "".join(
            onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] + codas[rng.integers(len(codas))]
            for _ in range(n)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def database_url(home: Path, database: str = BENCH_DATABASE) -> str:
    from confluence_assets.db.embedded import ensure_database, ensure_embedded_server
    from confluence_assets.db.urls import with_database

    explicit = os.environ.get("DATABASE_URL")
    if explicit:
        ensure_database(explicit, database)
        return with_database(explicit, database)
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    server = ensure_embedded_server(home)
    ensure_database(server.server_url, database)
    return with_database(server.server_url, database)


def loaded_signature(conn) -> str | None:
    exists = conn.execute("SELECT to_regclass('bench_search_meta') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT signature FROM bench_search_meta").fetchone()
    return row[0] if row else None


def load(conn, corpus: Corpus, signature: str) -> dict[str, float]:
    import numpy as np
    from psycopg.types.json import Jsonb

    timings: dict[str, float] = {}
    conn.execute("DROP TABLE IF EXISTS bench_search_meta")
    conn.execute("TRUNCATE archon_crawled_pages, confluence_pages, archon_sources CASCADE")
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    indexdefs = conn.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           WHERE i.tablename = 'archon_crawled_pages' AND i.indexname NOT IN (
             SELECT conname FROM pg_constraint WHERE conrelid = 'archon_crawled_pages'::regclass)"""
    ).fetchall()
    for name, _ in indexdefs:
        conn.execute(f'DROP INDEX "{name}"')

    started = time.perf_counter()
    with conn.cursor() as cur:
        for space in SPACES:
            cur.execute(
                "INSERT INTO archon_sources (source_id, title, metadata) VALUES (%s, %s, %s)",
                (f"confluence_{space}", space, Jsonb({"source_type": "confluence", "confluence_space_key": space})),
            )
        with cur.copy(
            "COPY confluence_pages (page_id, source_id, space_key, title, version, last_modified, path, metadata)"
            " FROM STDIN"
        ) as copy:
            for i, (pid, space, title, path, metadata) in enumerate(corpus.pages()):
                modified = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 12:00:00+00"
                copy.write_row((pid, f"confluence_{space}", space, title, 1, modified, path, Jsonb(metadata)))
    titles = dict(conn.execute("SELECT page_id, title FROM confluence_pages").fetchall())
    timings["pages"] = time.perf_counter() - started

    started = time.perf_counter()
    block = 5_000
    with conn.cursor() as cur:
        with cur.copy(
            "COPY archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_1536,"
            " embedding_model, embedding_dimension) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "int4", "text", "jsonb", "text", "vector", "text", "int4"])
            for start in range(0, corpus.n_chunks, block):
                chunks = np.arange(start, min(start + block, corpus.n_chunks))
                vectors = corpus.embed_latents(corpus.latents(chunks), np.random.default_rng([corpus.seed, 4, start]))
                for chunk, text, vector in zip(chunks, corpus.texts(chunks), vectors, strict=True):
                    page = int(corpus.chunk_page[chunk])
                    pid = corpus.page_id(page)
                    space = SPACES[int(corpus.page_space[page])]
                    number = int(corpus.chunk_number[chunk])
                    metadata = {
                        "source_type": "confluence",
                        "page_id": pid,
                        "page_title": titles[pid],
                        "page_url": f"https://bench.example/wiki/spaces/{space}/pages/{pid}",
                        "space_key": space,
                        "section_title": f"Section {number}",
                        "breadcrumb": [titles[pid], f"Section {number}"],
                        "content_hash": f"{pid}-{number}",
                        "chunk_index": number,
                    }
                    copy.write_row(
                        (
                            f"confluence://{space}/{pid}",
                            number,
                            text,
                            Jsonb(metadata),
                            f"confluence_{space}",
                            vector,
                            "bench-embedding",
                            DIM,
                        )
                    )
                print(f"  loaded {min(start + block, corpus.n_chunks):,} chunks", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    timings["chunks (COPY, tsvector generated)"] = time.perf_counter() - started

    for name, indexdef in indexdefs:
        started = time.perf_counter()
        conn.execute(indexdef)
        timings[f"index {name}"] = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE archon_crawled_pages")
    conn.execute("VACUUM ANALYZE confluence_pages")
    timings["vacuum analyze"] = time.perf_counter() - started
    conn.execute("CREATE TABLE bench_search_meta (signature text)")
    conn.execute("INSERT INTO bench_search_meta VALUES (%s)", (signature,))
    return timings


def load_permissions(conn, corpus: Corpus) -> dict[str, float]:
    """Groups, members, space permissions and page restrictions (status ok), deterministic for the seed."""
    import random

    rng = random.Random(corpus.seed * 7919 + 14)
    started = time.perf_counter()
    groups = [f"g-{n:03d}" for n in range(N_GROUPS)]
    users = [f"user-{n}" for n in range(N_USERS)]
    principal_groups = set(rng.sample(groups, PRINCIPAL_GROUPS))
    members = {g: set(rng.sample(users, rng.randrange(5, 120))) | ({PRINCIPAL} if g in principal_groups else set())
               for g in groups}  # fmt: skip
    others = [g for g in groups if g not in principal_groups]
    conn.execute("TRUNCATE confluence_groups, confluence_group_members, confluence_users, confluence_space_permissions")
    with conn.cursor() as cur:
        with cur.copy("COPY confluence_groups (group_id, name, members_status, member_count) FROM STDIN") as copy:
            for g in groups:
                copy.write_row((g, f"group {g}", "ok", len(members[g])))
        with cur.copy("COPY confluence_group_members (group_id, account_id) FROM STDIN") as copy:
            for g in groups:
                for account in sorted(members[g]):
                    copy.write_row((g, account))
        with cur.copy("COPY confluence_users (account_id, email) FROM STDIN") as copy:
            for account in [*users, PRINCIPAL]:
                copy.write_row((account, f"{account}@bench.example"))
        for n, space in enumerate(SPACES):
            # The principal may read six spaces through their groups, one by anonymous access, not the last.
            readers = set(rng.sample(others, 20))
            if n < 6:
                readers |= set(rng.sample(sorted(principal_groups), 3))
            cur.execute(
                """INSERT INTO confluence_space_permissions (source_id, space_key, status, anonymous_access,
                                                             reader_account_ids, reader_group_ids, refreshed_at)
                   VALUES (%s, %s, 'ok', %s, %s, %s, now())""",
                (f"confluence_{space}", space, n == 6, rng.sample(users, 10), sorted(readers)),
            )
    paths = dict(conn.execute("SELECT page_id, path FROM confluence_pages").fetchall())
    children: dict[str, list[str]] = {}
    for page_id, path in sorted(paths.items()):
        parts = path.split("/")
        if len(parts) > 2:
            children.setdefault(parts[-2], []).append(page_id)
    restricted: dict[str, list[str]] = {}
    for page_id in sorted(paths):
        if rng.random() < RESTRICTED_SHARE:
            restricted[page_id] = rng.sample(groups, rng.randrange(1, 4))
            kids = children.get(page_id)
            if kids and rng.random() < NESTED_SHARE:
                restricted[rng.choice(kids)] = rng.sample(groups, rng.randrange(1, 4))
    conn.execute(
        "UPDATE confluence_page_restrictions SET status = 'ok', read_account_ids = '{}', read_group_ids = '{}',"
        " error = NULL, read_at = now()"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE confluence_page_restrictions SET read_group_ids = %s WHERE page_id = %s",
            [(g, page_id) for page_id, g in restricted.items()],
        )
    for table in ("confluence_page_restrictions", "confluence_group_members", "confluence_groups"):
        conn.execute(f"VACUUM ANALYZE {table}")
    return {"restricted pages": len(restricted), "seconds": time.perf_counter() - started}


def readable_shares(conn) -> dict[str, float]:
    """Share of the chunks each principal may read."""
    out = {}
    for name, viewer, admin in (("nobody named", None, False), (PRINCIPAL, PRINCIPAL, False)):
        out[name] = conn.execute(
            """SELECT avg(CASE WHEN p.page_id IS NULL THEN 0 ELSE 1 END) FROM archon_crawled_pages c
               LEFT JOIN confluence_filtered_pages(viewer_account_id => %s, as_service_account => %s) p
                 ON p.page_id = confluence_chunk_page_id(c.metadata)""",
            (viewer, admin),
        ).fetchone()[0]
    return out


# --------------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------------


def make_queries(corpus: Corpus, n: int, salt: int):
    """(query text, query vector, source chunk) triples: text words and vector both come from one chunk."""
    import numpy as np

    rng = np.random.default_rng([corpus.seed, 5, salt])
    chunks = rng.choice(corpus.n_chunks, size=n, replace=False)
    latents = corpus.latents(np.sort(chunks))  # noise depends on the block start only; fine for queries
    latents = latents + rng.standard_normal(latents.shape) * (0.3 / np.sqrt(LATENT))
    vectors = corpus.embed_latents(latents, rng)
    queries = []
    for chunk, vector in zip(np.sort(chunks), vectors, strict=True):
        text = corpus.texts(np.array([chunk]))[0].split()
        topic = corpus.page_topic[corpus.chunk_page[chunk]]
        topical = {corpus.vocab[w] for w in corpus.topic_words[topic]}
        candidates = [w for w in dict.fromkeys(text) if w in topical]
        general = [w for w in dict.fromkeys(text) if w not in topical and w not in STOPWORDS]
        # One to three words of the chunk's topic, half of the time with one more general word: from a
        # few to a few thousand matching chunks.
        k = int(rng.integers(1, 4))
        words = list(rng.choice(candidates, size=min(k, len(candidates)), replace=False)) if candidates else []
        if general and (rng.random() < 0.5 or not words):
            words.append(general[int(rng.integers(len(general)))])
        queries.append((" ".join(words), vector, int(chunk)))
    return queries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def timed(conn, sql: str, params_list) -> tuple[list[float], list[list]]:
    latencies, results = [], []
    for params in params_list:
        started = time.perf_counter()
        rows = conn.execute(sql, params, prepare=False).fetchall()
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(rows)
    return latencies, results


def exact_top10(conn, vectors, column: str = "embedding_1536") -> list[list[int]]:
    """Each vector's 10 nearest chunk ids by exact search (``+ 0`` keeps the vector index out of it)."""
    conn.execute("SET max_parallel_workers_per_gather = 2")
    query = (
        f"SELECT id FROM archon_crawled_pages WHERE {column} IS NOT NULL"  # noqa: S608 - our own column names
        f" ORDER BY ({column} <=> %s) + 0, id LIMIT 10"
    )
    return [[r[0] for r in conn.execute(query, (v,), prepare=False).fetchall()] for v in vectors]


def recall_at_10(results: list[list], truth: list[list[int]]) -> float:
    return statistics.mean(len({r[0] for r in rows[:10]} & set(t)) / 10 for rows, t in zip(results, truth, strict=True))


BARE_HNSW = "SELECT id FROM archon_crawled_pages ORDER BY embedding_1536 <=> %s LIMIT 10"
SEARCH = (
    "SELECT id, page_id, score FROM confluence_hybrid_search(%(q)s, %(text)s, %(limit)s, search_mode => %(mode)s,"
    " ef_search => %(ef)s, space_keys => %(spaces)s, labels => %(labels)s, under_page_id => %(under)s,"
    " viewer_account_id => %(viewer)s, as_service_account => %(admin)s)"
)


TARGET_HYBRID_P95_MS = 50.0
TARGET_RECALL = 0.95
PRINCIPAL_HYBRID = f"hybrid, principal in {PRINCIPAL_GROUPS} groups"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("bench/search.py needs numpy: ./run --version installs the dev extras", file=sys.stderr)
        return 2
    run = measure_ann if args.ann else measure
    if os.environ.get("DATABASE_URL"):
        return run(args)
    from confluence_assets.db.embedded import stop_embedded_server

    try:
        return run(args)
    finally:  # the loaded data stays under --home for the next run; the server does not keep running
        stop_embedded_server(args.home)


def measure(args: argparse.Namespace) -> int:
    url = database_url(args.home)

    from confluence_assets.db import migrations
    from confluence_assets.db.connection import connect

    migrations.migrate(url)
    conn = connect(url, autocommit=True)
    version = conn.execute(
        "SELECT current_setting('server_version'), extversion FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    print(f"PostgreSQL {version[0]}, pgvector {version[1]}, {os.cpu_count()} CPUs")

    corpus = Corpus(args.chunks, args.seed)
    signature = f"v1 chunks={args.chunks} seed={args.seed}"
    if args.reload or loaded_signature(conn) != signature:
        print(f"generating and loading {args.chunks:,} chunks ({corpus.n_pages:,} pages) ...")
        started = time.perf_counter()
        timings = load(conn, corpus, signature)
        for name, seconds in timings.items():
            print(f"  {name:<55} {seconds:7.1f} s")
        print(f"  {'total load':<55} {time.perf_counter() - started:7.1f} s")
    else:
        print(f"reusing the {args.chunks:,} chunks already loaded (--reload to regenerate)")
    perms = load_permissions(conn, corpus)
    shares = readable_shares(conn)
    print(
        f"permissions: {N_GROUPS} groups of {N_USERS:,} users, {perms['restricted pages']:,} pages with a read "
        f"restriction of their own ({perms['seconds']:.1f} s); readable chunks: nobody named "
        f"{shares['nobody named']:.1%}, {PRINCIPAL} (in {PRINCIPAL_GROUPS} groups) {shares[PRINCIPAL]:.1%}"
    )
    count, size = conn.execute(
        "SELECT count(*), pg_size_pretty(pg_total_relation_size('archon_crawled_pages')) FROM archon_crawled_pages"
    ).fetchone()
    hnsw = conn.execute("SELECT pg_size_pretty(pg_relation_size('idx_archon_crawled_pages_embedding_1536'))").fetchone()
    print(f"{count:,} chunks, table + indexes {size}, HNSW index {hnsw[0]}")
    settings = dict(
        conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'jit')"
        ).fetchall()
    )
    print(
        f"server settings: shared_buffers={int(settings['shared_buffers']) * 8 // 1024}MB "
        f"work_mem={settings['work_mem']}kB jit={settings['jit']}"
    )

    from pgvector import Vector  # noqa: F401  (registered dumpers handle numpy arrays)

    queries = make_queries(corpus, args.queries, salt=1)
    base = {"spaces": None, "labels": None, "under": None, "ef": None, "viewer": None, "admin": False, "limit": 10}

    # Recall@10 of the HNSW index against exact search, per ef_search.
    recall_queries = queries[: args.recall_queries]
    started = time.perf_counter()
    truth = exact_top10(conn, [v for _, v, _ in recall_queries])
    exact_ms = (time.perf_counter() - started) * 1000 / len(recall_queries)
    print(f"\nexact search (sequential scan, true distance): {exact_ms:.0f} ms per query")
    print("\nrecall@10 against exact search (as the service account, which reads every chunk): of")
    print("confluence_hybrid_search (vector mode) as callers get it, and of")
    print("a bare HNSW scan (ORDER BY embedding <=> q LIMIT 10); latencies through confluence_hybrid_search:")
    header = ("ef_search", "recall@10", "bare HNSW", "vector p50", "p95", "hybrid p50", "p95")
    print("{:>9} {:>9} {:>9} {:>10} {:>7} {:>10} {:>7}".format(*header))
    efs = [int(x) for x in args.ef_search.split(",")]
    summary = {}
    for ef in efs:
        params = [
            {**base, "q": v, "text": None, "mode": "vector", "ef": ef, "admin": True} for _, v, _ in recall_queries
        ]
        _, results = timed(conn, SEARCH, params)
        recall = recall_at_10(results, truth)
        conn.execute(f"SET hnsw.ef_search = {ef}")
        _, bare = timed(conn, BARE_HNSW, [(v,) for _, v, _ in recall_queries])
        conn.execute("RESET hnsw.ef_search")
        bare_recall = recall_at_10(bare, truth)
        vec_lat, _ = timed(
            conn, SEARCH, [{**base, "q": v, "text": None, "mode": "vector", "ef": ef} for _, v, _ in queries]
        )
        hyb_lat, _ = timed(
            conn, SEARCH, [{**base, "q": v, "text": t, "mode": "hybrid", "ef": ef} for t, v, _ in queries]
        )
        summary[ef] = (recall, vec_lat, hyb_lat)
        print(
            f"{ef:>9} {recall:>9.3f} {bare_recall:>9.3f} {percentile(vec_lat, 50):>8.1f}ms "
            f"{percentile(vec_lat, 95):>5.1f}ms {percentile(hyb_lat, 50):>8.1f}ms {percentile(hyb_lat, 95):>5.1f}ms"
        )

    # The function's default ef_search (what callers get without the argument).
    default_ef = conn.execute("SELECT confluence_hnsw_ef_search(%s, 50)", (DIM,)).fetchone()[0]
    print(
        f"\nconfluence_hybrid_search defaults to hnsw.ef_search={default_ef}; {args.queries} queries per mode, "
        f"limit {args.limit}:"
    )
    base = {**base, "limit": args.limit}
    print("(no principal unless said: nobody named, pages without read restrictions)")
    print(f"{'mode':<36} {'p50':>8} {'p95':>8} {'mean':>8} {'avg rows':>8}")
    modes = {
        "vector": [{**base, "q": v, "text": None, "mode": "vector"} for t, v, _ in queries],
        "keyword": [{**base, "q": None, "text": t, "mode": "keyword"} for t, v, _ in queries],
        "hybrid": [{**base, "q": v, "text": t, "mode": "hybrid"} for t, v, _ in queries],
        "hybrid, one space": [
            {**base, "q": v, "text": t, "mode": "hybrid", "spaces": [SPACES[i % len(SPACES)]]}
            for i, (t, v, _) in enumerate(queries)
        ],
        "hybrid, one label": [
            {**base, "q": v, "text": t, "mode": "hybrid", "labels": [f"label-{i % 60}"]}
            for i, (t, v, _) in enumerate(queries)
        ],
        "hybrid, under a root page": [
            {**base, "q": v, "text": t, "mode": "hybrid", "under": corpus.page_id(i % len(SPACES))}
            for i, (t, v, _) in enumerate(queries)
        ],
        PRINCIPAL_HYBRID: [{**base, "q": v, "text": t, "mode": "hybrid", "viewer": PRINCIPAL} for t, v, _ in queries],
        "vector, principal": [
            {**base, "q": v, "text": None, "mode": "vector", "viewer": PRINCIPAL} for t, v, _ in queries
        ],
        "keyword, principal": [
            {**base, "q": None, "text": t, "mode": "keyword", "viewer": PRINCIPAL} for t, v, _ in queries
        ],
        "hybrid, principal, one space": [
            {**base, "q": v, "text": t, "mode": "hybrid", "viewer": PRINCIPAL, "spaces": [SPACES[i % 6]]}
            for i, (t, v, _) in enumerate(queries)
        ],
        "hybrid, service account": [
            {**base, "q": v, "text": t, "mode": "hybrid", "admin": True} for t, v, _ in queries
        ],
    }
    timed(conn, SEARCH, modes["hybrid"][:20])  # warm-up
    p95: dict[str, float] = {}
    for mode, params in modes.items():
        latencies, results = timed(conn, SEARCH, params)
        rows = statistics.mean(len(r) for r in results)
        p95[mode] = percentile(latencies, 95)
        print(
            f"{mode:<36} {percentile(latencies, 50):>6.1f}ms {p95[mode]:>6.1f}ms "
            f"{statistics.mean(latencies):>6.1f}ms {rows:>8.1f}"
        )
    recall, *_ = summary.get(default_ef, (None,))
    if recall is not None:
        print(f"\nrecall@10 at the default ef_search={default_ef}: {recall:.3f}")
    conn.close()
    # The targets of issue 7 on the 2-core machine: hybrid p95 <= 50 ms with recall@10 >= 0.95.
    met = p95["hybrid"] <= TARGET_HYBRID_P95_MS and recall is not None and recall >= TARGET_RECALL
    print(
        f"target hybrid p95 <= {TARGET_HYBRID_P95_MS:.0f} ms and recall@10 >= {TARGET_RECALL}: "
        f"{'met' if met else 'MISSED'} (p95 {p95['hybrid']:.1f} ms, recall {recall if recall is not None else 'n/a'})"
    )
    principal_met = p95[PRINCIPAL_HYBRID] <= TARGET_HYBRID_P95_MS
    print(
        f"target {PRINCIPAL_HYBRID} p95 <= {TARGET_HYBRID_P95_MS:.0f} ms: "
        f"{'met' if principal_met else 'MISSED'} (p95 {p95[PRINCIPAL_HYBRID]:.1f} ms)"
    )
    return 0 if met and principal_met else 1


# --------------------------------------------------------------------------------------------------
# ANN recall per dimension (--ann)
# --------------------------------------------------------------------------------------------------

ANN_DATABASE = "confluence_ann_bench"
ANN_DIMS = (384, 768, 1024, 1536, 3072)
ANN_TARGET_RECALL = 0.98


class ClusteredEmbeddings:
    """Vectors shaped like a sentence-embedding model's, not uniform noise: a mixture of 300 overlapping
    Gaussian clusters (topics) in a 256-d latent space with a decaying spectrum (variance ~ i^-0.6), a mean
    direction every vector shares (real embeddings are anisotropic: two unrelated texts still have a
    positive cosine), mapped into each dimension by a fixed random projection, plus isotropic noise,
    normalised. Queries are drawn from the same clusters but are not copies of a chunk,
    and share an offset of their own (questions embed a little apart from the passages answering them),
    which is what makes approximate search miss neighbours."""

    def __init__(self, seed: int, clusters: int = 300, rank: int = 256) -> None:
        import numpy as np

        self.np = np
        rng = np.random.default_rng([seed, 31])
        self.rank = rank
        self.spectrum = (np.arange(1, rank + 1) ** -0.3).astype(np.float64)
        self.centres = rng.standard_normal((clusters, rank)) * self.spectrum
        self.mean = rng.standard_normal(rank) * self.spectrum
        self.query_offset = rng.standard_normal(rank) * self.spectrum * 0.5
        self.projections = {d: rng.standard_normal((rank, d)).astype(np.float32) / np.sqrt(rank) for d in ANN_DIMS}

    def latents(self, n: int, rng, *, queries: bool = False):
        cluster = rng.integers(0, len(self.centres), size=n)
        spread = 1.0 if not queries else 1.1  # clusters overlap, as topics do
        latent = self.mean + self.centres[cluster] + rng.standard_normal((n, self.rank)) * self.spectrum * spread
        if queries:
            latent += self.query_offset
        return latent

    def embed(self, latent, dim: int, rng):
        np = self.np
        vectors = latent.astype(np.float32) @ self.projections[dim]
        vectors += (
            rng.standard_normal(vectors.shape).astype(np.float32)
            * (0.3 / np.sqrt(dim))
            * np.linalg.norm(vectors, axis=1, keepdims=True)
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def load_ann(conn, n_chunks: int, seed: int) -> float:
    import numpy as np
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    model = ClusteredEmbeddings(seed)
    conn.execute("TRUNCATE archon_crawled_pages, confluence_pages, archon_sources CASCADE")
    conn.execute("SET maintenance_work_mem = '1GB'")
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'archon_crawled_pages'"
        " AND indexdef LIKE '%USING hnsw%'"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    per_page = 8
    n_pages = (n_chunks + per_page - 1) // per_page
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO archon_sources (source_id, title, metadata) VALUES ('confluence_ANN', 'ANN', %s)",
            (Jsonb({"source_type": "confluence"}),),
        )
        with cur.copy(
            "COPY confluence_pages (page_id, source_id, space_key, title, version, last_modified, path, metadata)"
            " FROM STDIN"
        ) as copy:
            for page in range(n_pages):
                pid = str(300_000 + page)
                meta = {"page_id": pid, "title": f"Page {page}", "space_key": "ANN", "ancestors": []}
                copy.write_row((pid, "confluence_ANN", "ANN", f"Page {page}", 1, "2025-01-01 00:00:00+00", "/" + pid,
                                Jsonb(meta)))  # fmt: skip
        columns = ", ".join(f"embedding_{d}" for d in ANN_DIMS)
        with cur.copy(
            f"COPY archon_crawled_pages (url, chunk_number, content, metadata, source_id, {columns},"  # noqa: S608
            " embedding_model, embedding_dimension) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "int4", "text", "jsonb", "text", *["vector"] * len(ANN_DIMS), "text", "int4"])
            block = 2_000
            for start in range(0, n_chunks, block):
                size = min(block, n_chunks - start)
                rng = np.random.default_rng([seed, 32, start])
                latent = model.latents(size, rng)
                vectors = [model.embed(latent, d, rng) for d in ANN_DIMS]
                for i in range(size):
                    chunk = start + i
                    pid = str(300_000 + chunk // per_page)
                    meta = {"source_type": "confluence", "page_id": pid, "page_title": f"Page {pid}",
                            "space_key": "ANN", "chunk_index": chunk % per_page}  # fmt: skip
                    copy.write_row(
                        (f"confluence://ANN/{pid}", chunk % per_page, f"chunk {chunk}", Jsonb(meta), "confluence_ANN",
                         *[v[i] for v in vectors], "bench-clustered", 384)
                    )  # fmt: skip
    conn.execute(
        "UPDATE confluence_page_restrictions SET status = 'ok', read_account_ids = '{}', read_group_ids = '{}'"
    )
    for _, indexdef in indexes:
        conn.execute(indexdef)
    conn.execute("VACUUM ANALYZE archon_crawled_pages")
    conn.execute("VACUUM ANALYZE confluence_pages")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_search_meta (signature text)")
    conn.execute("TRUNCATE bench_search_meta")
    return time.perf_counter() - started


ANN_SEARCH = (
    "SELECT id FROM confluence_hybrid_search(%(q)s, NULL, %(limit)s, search_mode => 'vector', ef_search => %(ef)s,"
    " as_service_account => true)"
)


def measure_ann(args: argparse.Namespace) -> int:
    """recall@10 of confluence_hybrid_search (vector mode) against exact search, per dimension and
    ef_search, and at the default the function picks (confluence_hnsw_ef_search)."""
    import numpy as np
    from pgvector import Vector  # noqa: F401  (registered dumpers handle numpy arrays)

    from confluence_assets.db import migrations
    from confluence_assets.db.connection import connect

    url = database_url(args.home, ANN_DATABASE)
    migrations.migrate(url)
    conn = connect(url, autocommit=True)
    signature = f"ann v2 chunks={args.ann_chunks} seed={args.seed}"
    if args.reload or loaded_signature(conn) != signature:
        print(f"generating and loading {args.ann_chunks:,} chunks with {', '.join(map(str, ANN_DIMS))}-d vectors ...")
        seconds = load_ann(conn, args.ann_chunks, args.seed)
        conn.execute("INSERT INTO bench_search_meta VALUES (%s)", (signature,))
        print(f"  loaded and indexed in {seconds:.0f} s")
    else:
        print(f"reusing the {args.ann_chunks:,} chunks already loaded (--reload to regenerate)")
    model = ClusteredEmbeddings(args.seed)
    rng = np.random.default_rng([args.seed, 33])
    latent = model.latents(args.recall_queries, rng, queries=True)
    efs = [int(x) for x in args.ann_ef_search.split(",")]
    print(f"\nrecall@10 of vector search against exact search, {args.recall_queries} queries, "
          f"{args.ann_chunks:,} chunks; latency of confluence_hybrid_search, limit 10:")  # fmt: skip
    print(f"{'dims':>5} {'ef_search':>9} {'recall@10':>9} {'p50':>8} {'p95':>8}")
    summary: dict[int, tuple[float, float, float, int]] = {}
    for dim in ANN_DIMS:
        column = f"embedding_{dim}"
        queries = model.embed(latent, dim, rng)
        started = time.perf_counter()
        truth = exact_top10(conn, queries, column)
        exact_ms = (time.perf_counter() - started) * 1000 / len(queries)
        indexed = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'archon_crawled_pages' AND indexdef LIKE %s",
            (f"%hnsw ({column} %",),
        ).fetchone()[0]
        rows_of = [
            (ef, [{"q": q, "limit": 10, "ef": ef} for q in queries]) for ef in ([*efs, None] if indexed else [None])
        ]
        for ef, params in rows_of:
            timed(conn, ANN_SEARCH, params[:5])  # warm-up
            latencies, results = timed(conn, ANN_SEARCH, params)
            recall = recall_at_10(results, truth)
            label = f"{ef}" if ef is not None else "default"
            if ef is None:
                chosen = conn.execute("SELECT confluence_hnsw_ef_search(%s, 50)", (dim,)).fetchone()[0]
                label = f"{chosen} (def)" if indexed else "exact"
                summary[dim] = (recall, percentile(latencies, 50), percentile(latencies, 95), chosen)
            print(f"{dim:>5} {label:>9} {recall:>9.3f} {percentile(latencies, 50):>6.1f}ms "
                  f"{percentile(latencies, 95):>6.1f}ms")  # fmt: skip
        print(
            f"{dim:>5} {'exact':>9} {1:>9.3f} {exact_ms:>6.1f}ms (sequential scan, mean)"
            + ("" if indexed else "  [no HNSW index for this dimension: searches are exact]")
        )
    conn.close()
    met = all(r >= ANN_TARGET_RECALL for r, *_ in summary.values())
    print(f"\ntarget recall@10 >= {ANN_TARGET_RECALL} at the default ef_search for every dimension: "
          f"{'met' if met else 'MISSED'} ("
          + ", ".join(f"{d}: {r:.3f}" for d, (r, *_) in summary.items()) + ")")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
