"""Keyword ranking on natural-language questions: recall@10 of the keyword side against a plain Okapi BM25.

    .venv/bin/python bench/keyword_ranking.py                    # 3,000 pages (~16,000 chunks), 300 questions
    .venv/bin/python bench/keyword_ranking.py --pages 1000       # a quicker look

It generates a runbook-like corpus (seeded): every page is about one (system, procedure, subject) triple,
e.g. "rollback of brastoun when the canary fails", and many pages share two of the three, so a question is
answered by one page only when its terms are weighed together. Pages are 3-8 chunks of ~120 words: the
first chunk states the triple in a sentence, the others mention the system and one of the other two terms
among common English words. Some pages carry an identifier (an error code like ERR_QUOTA_EXCEEDED_17, a
Jira key like OPS-1234, a setting like max_replica_lag) that their question asks about. The questions are
written the way people ask ("What is the rollback procedure for brastoun when the canary fails?"), with
stop words and words no page has, so requiring every word (websearch_to_tsquery, the keyword side before
sql/0.1.0/070) finds almost nothing.

Printed, page recall@10 (the question's page among the first ten distinct pages) and MRR@10 of:
- confluence_hybrid_search(search_mode => 'keyword'), the first 10 distinct pages of its first 100 chunks
  and of its first 10 chunks;
- the same words all required (websearch_to_tsquery, ts_rank_cd): what the keyword side did before 070;
- Okapi BM25 (k1 1.2, b 0.75) over whole pages in pure Python: lowercase words, English stop words out,
  no stemming; the baseline the issue sets (target: keyword recall@10 >= BM25's).
plus keyword search latency p50/p95. The data goes into a database "confluence_keyword_bench" of an
embedded server under --home (default /tmp/confluence-assets-bench), or next to DATABASE_URL.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

DEFAULT_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / "confluence-assets-bench"
BENCH_DATABASE = "confluence_keyword_bench"
SPACES = ("OPS", "ENG", "DATA", "SEC")

COMMON = (
    "the team service system data user process time change update release test check review issue support "
    "access report work need make run new first step also before after each other should must can will may "
    "please note see page owner request ticket approval window status config environment production staging "
    "cluster node server client job queue log metric alert dashboard team lead engineer manager customer "
    "impact risk plan schedule weekly daily usually always never only about because when then this that "
    "with from into over under while during until"
).split()
PROCEDURES = (
    "rollback failover rotation upgrade migration backup restore onboarding offboarding deployment scaling "
    "patching audit decommission provisioning reindexing compaction replication rebalancing hotfix "
    "snapshot cutover throttling quarantine escalation"
).split()
SUBJECTS = (
    "canary certificate quota disk latency outage replica cache token password license firewall kernel "
    "schema partition index webhook cron vault secret bucket dns loadbalancer ingress sidecar heartbeat "
    "watchdog checksum tombstone lease shard"
).split()
EVENTS = ("fails", "expires", "breaches", "fills", "spikes", "drifts", "stalls", "leaks", "corrupts", "times out")
QUESTION_TEMPLATES = (
    "What is the {procedure} procedure for {system} when the {subject} {event}?",
    "How do I do a {procedure} of {system} if its {subject} {event}?",
    "{system} {subject} {event}: what are the {procedure} steps?",
    "Who approves a {procedure} on {system} after the {subject} {event}, and how long does it take?",
    "Is there a runbook for the {procedure} of {system} when a {subject} {event}?",
)
IDENTIFIER_TEMPLATES = (
    "What does {identifier} mean on {system} and how do I fix it?",
    "I keep getting {identifier} from {system}, what should I do?",
)
STOP = set(
    "a an and are as at be by do does for from how i if in is it its of on or the to what when who with "
    "should there this that these those after long take what's get keep mean".split()
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=3000, help="pages to generate (default 3,000)")
    p.add_argument("--questions", type=int, default=300, help="questions (default 300)")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help="embedded server home for the bench")
    return p.parse_args(argv)


def _system_names(rng: random.Random, count: int) -> list[str]:
    onsets = "b c d f g h k l m n p r s t v z br cl dr fl gr pl st tr".split()
    vowels = "a e i o u ai ea ou".split()
    codas = ["", "n", "r", "s", "t", "l", "x", "nd", "st"]
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(3)))
    return sorted(names)


class Corpus:
    def __init__(self, n_pages: int, seed: int) -> None:
        rng = random.Random(seed)
        self.systems = _system_names(rng, max(20, n_pages // 40))  # ~40 pages about each system
        triples: set[tuple[str, str, str]] = set()
        while len(triples) < n_pages:
            triples.add((rng.choice(self.systems), rng.choice(PROCEDURES), rng.choice(SUBJECTS)))
        self.pages: list[dict] = []
        for n, (system, procedure, subject) in enumerate(sorted(triples)):
            event = rng.choice(EVENTS)
            identifier = None
            if rng.random() < 0.15:
                identifier = rng.choice(
                    (
                        f"ERR_{subject.upper()}_{rng.choice(('EXCEEDED', 'INVALID', 'MISSING'))}_{rng.randrange(100)}",
                        f"{rng.choice(SPACES)}-{rng.randrange(100, 10_000)}",
                        f"max_{subject}_{rng.choice(('lag', 'age', 'size', 'count'))}",
                    )
                )
            chunks = self._chunks(rng, system, procedure, subject, event, identifier)
            title = f"{system.capitalize()} {procedure} runbook"  # the subject only in the text
            self.pages.append(
                {
                    "page_id": str(200_000 + n),
                    "space": SPACES[n % len(SPACES)],
                    "title": title,
                    "chunks": chunks,
                    "triple": (system, procedure, subject, event),
                    "identifier": identifier,
                }
            )

    @staticmethod
    def _filler(rng: random.Random, words: int) -> list[str]:
        # Zipf-like: the first common words far more often than the last.
        return [COMMON[min(int(rng.paretovariate(0.9)) - 1, len(COMMON) - 1)] for _ in range(words)]

    def _chunks(self, rng, system, procedure, subject, event, identifier) -> list[str]:
        # The triple is spread over the page: the first chunk names the system and the procedure, a later
        # one the subject and the event; every chunk mentions other systems, procedures and subjects too
        # (cross references, "see also"), so no single word singles the page out.
        out = []
        n_chunks = rng.randint(3, 8)
        subject_chunk = rng.randrange(1, n_chunks)
        for i in range(n_chunks):
            words = self._filler(rng, rng.randint(90, 150))
            if i == 0:
                words = f"This runbook covers the {procedure} of {system}.".split() + words
            extra = [rng.choice((system, procedure)), rng.choice(self.systems), rng.choice(PROCEDURES),
                     rng.choice(SUBJECTS), rng.choice(SUBJECTS), rng.choice(EVENTS)]  # fmt: skip
            if i == subject_chunk:
                extra += f"when the {subject} {event}".split()
            for word in extra:
                words.insert(rng.randrange(len(words)), word)
            if identifier and i == min(1, len(out)):
                words.insert(rng.randrange(len(words)), identifier)
            out.append(" ".join(words))
        return out

    def questions(self, count: int, seed: int) -> list[tuple[str, str]]:
        rng = random.Random(seed + 1)
        out = []
        for page in rng.sample(self.pages, min(count, len(self.pages))):
            system, procedure, subject, event = page["triple"]
            if page["identifier"] and rng.random() < 0.7:
                template = rng.choice(IDENTIFIER_TEMPLATES)
                text = template.format(identifier=page["identifier"], system=system)
            else:
                template = rng.choice(QUESTION_TEMPLATES)
                text = template.format(procedure=procedure, system=system, subject=subject, event=event)
            out.append((text, page["page_id"]))
        return out


# --------------------------------------------------------------------------------------------------
# The baseline: Okapi BM25 over whole pages
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9_]+(?:-[a-z0-9_]+)*")


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOP]


class PageBM25:
    def __init__(self, pages: list[dict], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.ids = [p["page_id"] for p in pages]
        self.tfs = [Counter(tokens(" ".join([p["title"], *p["chunks"]]))) for p in pages]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avgdl = statistics.mean(self.lengths)
        df: Counter = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(pages)
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.postings: dict[str, list[int]] = {}
        for i, tf in enumerate(self.tfs):
            for t in tf:
                self.postings.setdefault(t, []).append(i)

    def top(self, query: str, k: int = 10) -> list[str]:
        scores: Counter = Counter()
        for t in set(tokens(query)):
            for i in self.postings.get(t, ()):
                tf = self.tfs[i][t]
                norm = tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avgdl)
                scores[i] += self.idf[t] * tf * (self.k1 + 1) / norm
        return [self.ids[i] for i, _ in scores.most_common(k)]


# --------------------------------------------------------------------------------------------------
# Loading and measuring
# --------------------------------------------------------------------------------------------------


def database_url(home: Path) -> str:
    from confluence_assets.db.embedded import ensure_database, ensure_embedded_server
    from confluence_assets.db.urls import with_database

    explicit = os.environ.get("DATABASE_URL")
    if explicit:
        ensure_database(explicit, BENCH_DATABASE)
        return with_database(explicit, BENCH_DATABASE)
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    server = ensure_embedded_server(home)
    ensure_database(server.server_url, BENCH_DATABASE)
    return with_database(server.server_url, BENCH_DATABASE)


def load(conn, corpus: Corpus) -> None:
    from psycopg.types.json import Jsonb

    conn.execute("TRUNCATE archon_crawled_pages, confluence_pages, archon_sources CASCADE")
    with conn.cursor() as cur:
        for space in SPACES:
            cur.execute(
                "INSERT INTO archon_sources (source_id, title, metadata) VALUES (%s, %s, %s)",
                (f"confluence_{space}", space, Jsonb({"source_type": "confluence"})),
            )
        with cur.copy(
            "COPY confluence_pages (page_id, source_id, space_key, title, version, last_modified, path, metadata)"
            " FROM STDIN"
        ) as copy:
            for p in corpus.pages:
                meta = {"page_id": p["page_id"], "title": p["title"], "space_key": p["space"], "ancestors": []}
                copy.write_row(
                    (p["page_id"], f"confluence_{p['space']}", p["space"], p["title"], 1,
                     "2025-01-01 00:00:00+00", "/" + p["page_id"], Jsonb(meta))
                )  # fmt: skip
        with cur.copy("COPY archon_crawled_pages (url, chunk_number, content, metadata, source_id) FROM STDIN") as copy:
            for p in corpus.pages:
                for n, text in enumerate(p["chunks"]):
                    meta = {"source_type": "confluence", "page_id": p["page_id"], "page_title": p["title"],
                            "space_key": p["space"], "breadcrumb": [p["title"]], "chunk_index": n}  # fmt: skip
                    copy.write_row(
                        (f"confluence://{p['space']}/{p['page_id']}", n, text, Jsonb(meta), f"confluence_{p['space']}")
                    )
    # Known and unrestricted, every space open: the bench measures ranking, not permissions.
    conn.execute(
        "UPDATE confluence_page_restrictions SET status = 'ok', read_account_ids = '{}', read_group_ids = '{}'"
    )
    for space in SPACES:
        conn.execute(
            """INSERT INTO confluence_space_permissions (source_id, space_key, status, anonymous_access,
                                                         reader_account_ids, reader_group_ids, refreshed_at)
               VALUES (%s, %s, 'ok', true, '{}', '{}', now()) ON CONFLICT (source_id) DO NOTHING""",
            (f"confluence_{space}", space),
        )
    conn.execute("VACUUM ANALYZE archon_crawled_pages")
    conn.execute("VACUUM ANALYZE confluence_pages")


KEYWORD = (
    "SELECT page_id FROM confluence_hybrid_search(NULL::vector, %s, %s, search_mode => 'keyword',"
    " viewer_account_id => NULL)"
)
ALL_WORDS = """SELECT confluence_chunk_page_id(c.metadata) FROM archon_crawled_pages c
               WHERE c.content_search_vector @@ websearch_to_tsquery('english', %(q)s)
               ORDER BY ts_rank_cd(c.content_search_vector, websearch_to_tsquery('english', %(q)s)) DESC, c.id
               LIMIT %(limit)s"""


def first_pages(page_ids, k: int = 10) -> list[str]:
    return list(dict.fromkeys(page_ids))[:k]


def scores(ranked: list[list[str]], answers: list[str], k: int = 10) -> tuple[float, float]:
    recall = statistics.mean(a in r[:k] for r, a in zip(ranked, answers, strict=True))
    mrr = statistics.mean((1 / (r.index(a) + 1)) if a in r[:k] else 0.0 for r, a in zip(ranked, answers, strict=True))
    return recall, mrr


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from confluence_assets.db import migrations
    from confluence_assets.db.connection import connect

    url = database_url(args.home)
    migrations.migrate(url)
    corpus = Corpus(args.pages, args.seed)
    questions = corpus.questions(args.questions, args.seed)
    answers = [a for _, a in questions]
    with connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        load(conn, corpus)
        chunks = conn.execute("SELECT count(*) FROM archon_crawled_pages").fetchone()[0]
        print(f"{len(corpus.pages):,} pages, {chunks:,} chunks, {len(questions)} questions "
              f"(loaded in {time.perf_counter() - started:.1f} s)")  # fmt: skip
        print("examples:", *(f"  {q!r} -> page {a}" for q, a in questions[:3]), sep="\n")

        results: dict[str, list[list[str]]] = {"keyword, 100 chunks": [], "keyword, 10 chunks": []}
        latencies = []
        for text, _ in questions:
            started = time.perf_counter()
            rows = conn.execute(KEYWORD, (text, 100), prepare=False).fetchall()
            latencies.append((time.perf_counter() - started) * 1000)
            results["keyword, 100 chunks"].append(first_pages(r[0] for r in rows))
            rows = conn.execute(KEYWORD, (text, 10), prepare=False).fetchall()
            results["keyword, 10 chunks"].append(first_pages(r[0] for r in rows))
        results["every word required (before 070), 100 chunks"] = [
            first_pages(r[0] for r in conn.execute(ALL_WORDS, {"q": text, "limit": 100}).fetchall())
            for text, _ in questions
        ]
        no_match = sum(not r for r in results["every word required (before 070), 100 chunks"])
    bm25 = PageBM25(corpus.pages)
    results["Okapi BM25 over whole pages (baseline)"] = [bm25.top(text) for text, _ in questions]

    print(f"\n{'ranking':<48} {'recall@10':>9} {'MRR@10':>7}")
    table = {name: scores(ranked, answers) for name, ranked in results.items()}
    for name, (recall, mrr) in table.items():
        print(f"{name:<48} {recall:>9.3f} {mrr:>7.3f}")
    print(f"\nquestions matching no chunk with every word required: {no_match} of {len(questions)}")
    print(f"keyword search latency (limit 100): p50 {percentile(latencies, 50):.1f} ms, "
          f"p95 {percentile(latencies, 95):.1f} ms")  # fmt: skip
    keyword_recall = table["keyword, 100 chunks"][0]
    baseline = table["Okapi BM25 over whole pages (baseline)"][0]
    met = keyword_recall >= baseline
    print(f"target keyword recall@10 >= BM25 baseline: {'met' if met else 'MISSED'} "
          f"({keyword_recall:.3f} vs {baseline:.3f})")  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
