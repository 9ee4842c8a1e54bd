"""HNSW recall at 384 d on embeddings from a real model (all-MiniLM-L6-v2), not synthetic vectors.

    .venv/bin/python bench/ann_real_model.py                  # 12,000 passages; needs the local-embeddings extra
    .venv/bin/python bench/ann_real_model.py --passages 20000

bench/search.py --ann measures every dimension on clustered synthetic vectors; this measures the one
dimension a real model is available for offline. Passages are 2-4 sentences drawn (seeded) from the
handbook and service pages of bench/retrieval_corpus.py, the lines of the ten real sample pages (Korean)
and the sandbox corpus's sentence pool, embedded through the local embeddings server (cached under --home,
so a rerun does not embed again); the queries are the 212 questions of bench/retrieval_questions.json.
It loads them into the Archon table (384-d column, its HNSW index) of a database "confluence_ann_real" on
the bench's embedded server, and prints recall@10 of confluence_hybrid_search (vector mode) against exact
search per hnsw.ef_search, at the default the function picks, and the latency of each. The embedded server
is stopped at the end (the vectors stay cached under --home).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_corpus import HANDBOOK, SERVICES, service_pages  # noqa: E402
from search import ANN_SEARCH, DEFAULT_HOME, database_url, exact_top10, percentile, recall_at_10, timed  # noqa: E402

DATABASE = "confluence_ann_real"
DIM = 384
QUESTIONS = Path(__file__).resolve().parent / "retrieval_questions.json"


def sentences() -> list[str]:
    from confluence_assets.sandbox import default_samples_dir
    from confluence_assets.sandbox.storage import StorageWriter

    out = [text for sections in HANDBOOK.values() for text in sections.values()]
    out += [text for s in SERVICES for sections in service_pages(s).values() for text in sections.values()]
    for page in sorted(Path(default_samples_dir()).glob("*/page.xhtml")):
        text = html.unescape(re.sub(r"<[^>]+>", "\n", page.read_text(encoding="utf-8")))
        out += [line.strip() for line in text.splitlines() if len(line.strip()) > 30]
    out += StorageWriter(random.Random(7)).sentences
    return out


def passages(n: int, seed: int) -> list[str]:
    pool = sentences()
    rng = random.Random(seed)
    out: dict[str, None] = {}  # distinct passages: a duplicate would make the exact top 10 ambiguous
    while len(out) < n:
        out[" ".join(rng.sample(pool, rng.randint(2, 4)))] = None
    return list(out)


def embed_all(texts: list[str], home: Path, cache: Path):
    import numpy as np
    import openai

    from confluence_assets.embeddings.local_model import LOCAL_MODEL, local_embeddings_server

    if cache.is_file():
        vectors = np.load(cache)
        if len(vectors) == len(texts):
            return vectors
    with local_embeddings_server(home / "models") as server:
        client = openai.OpenAI(api_key="bench", base_url=server.url)
        out = []
        began = time.perf_counter()
        for start in range(0, len(texts), 64):
            response = client.embeddings.create(model=LOCAL_MODEL, input=texts[start : start + 64])
            out += [d.embedding for d in response.data]
            if start and start % 2048 == 0:
                print(f"  {start} embedded ({start / (time.perf_counter() - began):.0f}/s)", flush=True)
        print(f"  {len(texts)} embedded in {time.perf_counter() - began:.0f} s, {server.stats.truncated} truncated")
    vectors = np.asarray(out, dtype=np.float32)
    np.save(cache, vectors)
    return vectors


def load(conn, texts: list[str], vectors) -> float:
    from psycopg.types.json import Jsonb

    began = time.perf_counter()
    conn.execute("TRUNCATE archon_crawled_pages, confluence_pages, archon_sources CASCADE")
    conn.execute("SET maintenance_work_mem = '512MB'")
    index = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'archon_crawled_pages' AND indexdef LIKE %s",
        (f"%hnsw (embedding_{DIM} %",),
    ).fetchone()
    conn.execute(f'DROP INDEX "{index[0]}"')
    per_page = 8
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO archon_sources (source_id, title, metadata) VALUES ('confluence_ANN', 'ANN', %s)",
            (Jsonb({"source_type": "confluence"}),),
        )
        with cur.copy(
            "COPY confluence_pages (page_id, source_id, space_key, title, version, last_modified, path, metadata)"
            " FROM STDIN"
        ) as copy:
            for page in range((len(texts) + per_page - 1) // per_page):
                pid = str(400_000 + page)
                meta = {"page_id": pid, "title": f"Page {page}", "space_key": "ANN", "ancestors": []}
                copy.write_row((pid, "confluence_ANN", "ANN", f"Page {page}", 1, "2025-01-01 00:00:00+00", "/" + pid,
                                Jsonb(meta)))  # fmt: skip
        with cur.copy(
            f"COPY archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_{DIM},"  # noqa: S608
            " embedding_model, embedding_dimension) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "int4", "text", "jsonb", "text", "vector", "text", "int4"])
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
                pid = str(400_000 + i // per_page)
                meta = {"source_type": "confluence", "page_id": pid, "page_title": f"Page {pid}", "space_key": "ANN",
                        "chunk_index": i % per_page}  # fmt: skip
                copy.write_row((f"confluence://ANN/{pid}", i % per_page, text, Jsonb(meta), "confluence_ANN", vector,
                                "all-MiniLM-L6-v2", DIM))  # fmt: skip
    conn.execute(
        "UPDATE confluence_page_restrictions SET status = 'ok', read_account_ids = '{}', read_group_ids = '{}'"
    )
    conn.execute(index[1])
    conn.execute("VACUUM ANALYZE archon_crawled_pages")
    conn.execute("VACUUM ANALYZE confluence_pages")
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passages", type=int, default=12_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--home", type=Path, default=DEFAULT_HOME)
    p.add_argument("--ef-search", default="40,100,200,400,1000")
    args = p.parse_args(argv)

    from confluence_assets.db import migrations
    from confluence_assets.db.connection import connect

    texts = passages(args.passages, args.seed)
    questions = [q["question"] for q in json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]]
    args.home.mkdir(parents=True, exist_ok=True)
    print(f"embedding {len(texts):,} passages and {len(questions)} questions with all-MiniLM-L6-v2 ...")
    vectors = embed_all(texts, args.home, args.home / f"ann-real-{args.passages}-{args.seed}.npy")
    queries = embed_all(questions, args.home, args.home / f"ann-real-questions-{len(questions)}.npy")
    url = database_url(args.home, DATABASE)
    migrations.migrate(url)
    conn = connect(url, autocommit=True)
    print(f"loaded and indexed in {load(conn, texts, vectors):.0f} s")
    began = time.perf_counter()
    truth = exact_top10(conn, queries, f"embedding_{DIM}")
    exact_ms = (time.perf_counter() - began) * 1000 / len(queries)
    print(f"\nrecall@10 against exact search, {len(queries)} queries, {len(texts):,} passages, {DIM} d:")
    print(f"{'ef_search':>12} {'recall@10':>9} {'p50':>8} {'p95':>8}")
    for ef in [*(int(x) for x in args.ef_search.split(",")), None]:
        params = [{"q": q, "limit": 10, "ef": ef} for q in queries]
        timed(conn, ANN_SEARCH, params[:5])
        latencies, results = timed(conn, ANN_SEARCH, params)
        label = str(ef)
        if ef is None:
            label = f"{conn.execute('SELECT confluence_hnsw_ef_search(%s, 50)', (DIM,)).fetchone()[0]} (default)"
        print(f"{label:>12} {recall_at_10(results, truth):>9.3f} {percentile(latencies, 50):>6.1f}ms "
              f"{percentile(latencies, 95):>6.1f}ms")  # fmt: skip
    print(f"{'exact':>12} {1:>9.3f} {exact_ms:>6.1f}ms (sequential scan, mean)")
    conn.close()
    if not os.environ.get("DATABASE_URL"):  # the data is loaded again on every run: nothing to keep serving
        from confluence_assets.db.embedded import stop_embedded_server

        stop_embedded_server(args.home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
