"""Labelled retrieval evaluation: recall@1/5/10 and MRR@10 per search mode and per embedder, and a BM25 baseline.

    .venv/bin/python bench/retrieval_eval.py                       # every embedder installed
    .venv/bin/python bench/retrieval_eval.py --embedders lexical    # the default install's stand-in only
    .venv/bin/python bench/retrieval_eval.py --misses 10            # also print 10 misses per row

The corpus is bench/retrieval_corpus.py's (an employee handbook, two pages per service for 20 services,
the ten real sample pages, and the sandbox's generated word salad as distractors: 300 pages in 5 spaces),
served by the sandbox Confluence and synced through the whole asset graph (changed_pages ... chunk_embeddings,
with the chunking settings of a real run) into a database per embedder on an embedded server under --home.
The questions (bench/retrieval_questions.json, 212) are what people ask, in their words, each with its
answer page; a question counts as found at k when its page is among the first k distinct pages of the
search's first 50 chunks (as the service account: retrieval, not permissions, is measured here).

Embedders: ``lexical``, the sandbox's feature-hashing stand-in (1536 d; no meaning, shared words only),
and ``local``, all-MiniLM-L6-v2 through ``confluence-assets embeddings-server`` (384 d; needs the
local-embeddings extra). BM25 is a plain Okapi BM25 (k1 1.2, b 0.75) over whole pages (title and chunk
text), Unicode words, no stemming: the baseline the keyword side must at least match.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_corpus import build_site  # noqa: E402

DEFAULT_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / "confluence-assets-eval"
QUESTIONS = Path(__file__).resolve().parent / "retrieval_questions.json"
MODES = ("keyword", "vector", "hybrid")
CHUNKS_PER_QUERY = 50
KS = (1, 5, 10)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
_WORD = re.compile(r"\w+", re.UNICODE)
STOP = set(
    "a an and are as at be by can do does for from how i if in is it its of on or the to what when where which "
    "who why with my our we me should there this that".split()
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="embedded server and model files")
    p.add_argument("--embedders", default=None, help="lexical,local (default: lexical, and local when installed)")
    p.add_argument("--misses", type=int, default=0, help="print this many missed questions per row")
    p.add_argument("--reuse", action="store_true", help="keep a database synced by an earlier run")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------ scoring


def tokens(text: str) -> list[str]:
    return [t for t in _WORD.findall(text.lower()) if t not in STOP]


class PageBM25:
    def __init__(self, pages: dict[str, str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.ids = list(pages)
        self.tfs = [Counter(tokens(text)) for text in pages.values()]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avgdl = statistics.mean(self.lengths)
        df: Counter = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(pages)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def top(self, query: str, k: int = 10) -> list[str]:
        scores: Counter = Counter()
        terms = set(tokens(query))
        for i, tf in enumerate(self.tfs):
            for t in terms & tf.keys():
                norm = tf[t] + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avgdl)
                scores[i] += self.idf[t] * tf[t] * (self.k1 + 1) / norm
        return [self.ids[i] for i, _ in scores.most_common(k)]


def figures(ranked: list[list[str]], answers: list[set[str]]) -> dict[str, float]:
    out = {f"R@{k}": statistics.mean(bool(set(r[:k]) & a) for r, a in zip(ranked, answers, strict=True)) for k in KS}
    out["MRR@10"] = statistics.mean(
        next((1 / (i + 1) for i, p in enumerate(r[:10]) if p in a), 0.0) for r, a in zip(ranked, answers, strict=True)
    )
    return out


# ------------------------------------------------------------------------------------------ syncing


def fresh_database(home: Path, name: str, reuse: bool) -> tuple[str, bool]:
    """The URL of database ``name`` on the embedded server under ``home``, and whether it was kept."""
    import psycopg
    from psycopg import sql

    from confluence_assets.db import migrations
    from confluence_assets.db.embedded import ensure_database, ensure_embedded_server
    from confluence_assets.db.urls import with_database

    server = ensure_embedded_server(home)
    with psycopg.connect(server.server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not reuse:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    ensure_database(server.server_url, name)
    url = with_database(server.server_url, name)
    migrations.migrate(url)
    return url, bool(exists and reuse)


def sync(site, conf, emb_url: str, emb_key: str, model: str, dimensions: int, db_url: str) -> dict[str, float]:
    import dagster as dg

    from confluence_assets import settings
    from confluence_assets.defs.assets import build_assets
    from confluence_assets.defs.resources import ConfluenceResource, EmbeddingsResource, PostgresResource

    resources = {
        "confluence": ConfluenceResource(
            url=conf.url, email=conf.email, api_token=conf.api_token, site_timezone="Asia/Seoul"
        ),
        "database": PostgresResource(database_url=db_url),
        "embeddings": EmbeddingsResource(api_key=emb_key, base_url=emb_url, model=model, dimensions=dimensions),
    }
    built = build_assets(settings.load())
    assets = [built.changed_pages, built.page_metadata, built.page_attachments, built.page_chunks]
    assets.append(built.chunk_embeddings)
    totals: Counter = Counter()
    with dg.DagsterInstance.ephemeral() as instance:
        for space in sorted(site.spaces):
            instance.add_dynamic_partitions("confluence_spaces", [space])
            result = dg.materialize(
                assets, partition_key=space, instance=instance, resources=resources, run_config=QUIET
            )
            assert result.success, f"sync of {space} failed"
            events = result.asset_materializations_for_node("chunk_embeddings")
            for key, item in events[-1].metadata.items():
                value = item.value
                if isinstance(value, int | float) and not isinstance(value, bool):
                    totals[key] += value
    return dict(totals)


# ------------------------------------------------------------------------------------------ measuring


def answer_ids(conn, questions: list[dict]) -> list[set[str]]:
    rows = conn.execute("SELECT page_id, space_key, title FROM confluence_pages WHERE NOT is_deleted").fetchall()
    by_title = {f"{space}/{title}": pid for pid, space, title in rows}
    by_id = {f"{space}/{pid}": pid for pid, space, _ in rows}
    out = []
    for q in questions:
        ids = {by_title.get(a) or by_id.get(a) for a in q["answers"]}
        if None in ids:
            raise SystemExit(f"answer page not synced: {q['answers']} (question {q['question']!r})")
        out.append(ids)
    return out


def page_texts(conn) -> dict[str, str]:
    rows = conn.execute(
        "SELECT p.page_id, p.title, string_agg(c.content, ' ' ORDER BY c.chunk_number) FROM confluence_pages p "
        "JOIN archon_crawled_pages c ON c.metadata->>'page_id' = p.page_id WHERE NOT p.is_deleted "
        "GROUP BY p.page_id, p.title"
    ).fetchall()
    return {pid: f"{title} {text}" for pid, title, text in rows}


def ranked_pages(conn, questions: list[str], vectors, mode: str) -> tuple[list[list[str]], list[float]]:
    from confluence_assets.search import search

    ranked, seconds = [], []
    for question, vector in zip(questions, vectors, strict=True):
        began = time.perf_counter()
        results = search(
            conn, question, None if mode == "keyword" else vector, limit=CHUNKS_PER_QUERY, mode=mode,
            as_service_account=True,
        )  # fmt: skip
        seconds.append(time.perf_counter() - began)
        ranked.append(list(dict.fromkeys(r.page_id for r in results))[:10])
    return ranked, seconds


def embedders(choice: str | None, home: Path):
    """(name, model, dimensions, server factory) of each embedder to measure."""
    from confluence_assets.sandbox import EmbeddingsServer

    wanted = choice.split(",") if choice else ["lexical", "local"]
    installed = importlib.util.find_spec("sentence_transformers") and importlib.util.find_spec("all_minilm_l6_v2")
    for name in wanted:
        if name == "lexical":
            yield name, "text-embedding-3-small", 1536, EmbeddingsServer
        elif name == "local" and installed:
            from confluence_assets.embeddings.local_model import LOCAL_DIMENSIONS, LOCAL_MODEL, local_embeddings_server

            yield name, LOCAL_MODEL, LOCAL_DIMENSIONS, lambda: local_embeddings_server(home / "models", api_key="eval")
        elif name == "local":
            print("local: skipped (pip install 'confluence-assets[local-embeddings]' to measure it)")
        else:
            raise SystemExit(f"unknown embedder {name!r}: lexical or local")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(args.home)
    os.environ.pop("DATABASE_URL", None)
    import psycopg

    from confluence_assets.embeddings import Embedder
    from confluence_assets.sandbox import ConfluenceServer

    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    texts = [q["question"] for q in data]
    parts = sorted({q["part"] for q in data})
    site = build_site()
    print(f"corpus: {len(site.spaces)} spaces, {sum(1 for _ in site.iter_pages())} pages; {len(data)} questions")
    rows: list[tuple[str, str, dict[str, float], list[list[str]]]] = []
    bm25_done = False
    with ConfluenceServer(site) as conf:
        for name, model, dims, factory in embedders(args.embedders, args.home):
            with factory() as emb:
                db_url, kept = fresh_database(args.home, f"confluence_eval_{name}", args.reuse)
                began = time.perf_counter()
                if not kept:
                    totals = sync(site, conf, emb.url, emb.api_key or "eval", model, dims, db_url)
                    took = time.perf_counter() - began
                    print(
                        f"{name}: synced in {took:.0f} s: {int(totals.get('chunks_created', 0))} chunks, "
                        f"{emb.stats.inputs} inputs embedded in {totals.get('embedding_seconds', 0):.0f} s, "
                        f"{emb.stats.truncated} truncated by the model, "
                        f"{int(totals.get('embedding_inputs_over_model_limit', 0))} over its limit by the estimate"
                    )
                embedder = Embedder(model=model, dimensions=dims, api_key=emb.api_key or "eval", base_url=emb.url)
                vectors = embedder.embed(texts).vectors
                with psycopg.connect(db_url) as conn:
                    answers = answer_ids(conn, data)
                    if not bm25_done:
                        bm25 = PageBM25(page_texts(conn))
                        rows.append(("BM25 pages", "-", figures([bm25.top(t) for t in texts], answers), []))
                        rows[-1] = (*rows[-1][:3], [bm25.top(t) for t in texts])
                        bm25_done = True
                    for mode in MODES:
                        if mode == "keyword" and any(r[0] == "keyword" for r in rows):
                            continue  # the keyword side does not depend on the embedder
                        ranked, seconds = ranked_pages(conn, texts, vectors, mode)
                        label = name if mode != "keyword" else "-"
                        rows.append((mode, label, figures(ranked, answers), ranked))
                        p50 = statistics.median(seconds) * 1000
                        print(f"  {mode:<7} {label:<8} p50 {p50:.1f} ms")
    print()
    header = f"{'mode':<11} {'embedder':<8} " + " ".join(f"{k:>7}" for k in ("R@1", "R@5", "R@10", "MRR@10"))
    print(header + "   R@10 per part: " + ", ".join(parts))
    for mode, label, fig, ranked in rows:
        by_part = []
        for part in parts:
            idx = [i for i, q in enumerate(data) if q["part"] == part]
            sub = figures([ranked[i] for i in idx], [answers[i] for i in idx])
            by_part.append(f"{sub['R@10']:.3f}")
        cells = " ".join(f"{fig[k]:>7.3f}" for k in ("R@1", "R@5", "R@10", "MRR@10"))
        print(f"{mode:<11} {label:<8} {cells}   {' / '.join(by_part)}")
        if args.misses:
            missed = [i for i, r in enumerate(ranked) if not set(r[:10]) & answers[i]][: args.misses]
            for i in missed:
                print(f"    miss: {texts[i]}  (answer {data[i]['answers'][0]})")
    if not args.reuse:
        from confluence_assets.db.embedded import stop_embedded_server

        stop_embedded_server(args.home)
        shutil.rmtree(args.home / "pgdata", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
