"""Side by side: our pipeline and the LangChain pipeline a user would build instead, on one corpus.

    .venv/bin/python bench/compare_langchain.py [--pages 1000] [--seed 7] [--with-attachments]

Both read the same sandbox Confluence (``--pages`` generated pages, one space) and embed through the same
sandbox embeddings server, over real HTTP, into the same embedded PostgreSQL (separate databases). The
LangChain pipeline (bench/langchain_pipeline.py: ConfluenceLoader -> RecursiveCharacterTextSplitter ->
OpenAIEmbeddings -> PGVector, synced by ``index()`` with an SQLRecordManager) runs in a virtual environment
of its own, created on first use under ~/.cache/confluence-assets (its pins and ours differ); ours runs
the sync job's assets through Dagster's ``materialize``, as bench/full_sync.py does. Three rounds each:
a full sync, a sync with nothing changed, and a sync after 10 pages were edited. Printed per round and
pipeline: seconds, Confluence requests, embedding requests, embedded inputs and tokens, chunks, and the
ratio. LangChain reads pages only, so ours runs with attachments and comments off unless
``--with-attachments`` (then ours also downloads and indexes the corpus's files). Numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LANGCHAIN_REQUIREMENTS = [
    "langchain-community>=0.4.2,<0.5",
    "langchain-openai>=1,<2",
    "langchain-postgres>=0.0.16,<0.1",
    "langchain-classic>=1,<2",
    "atlassian-python-api>=4.0.7,<5",  # 5.x breaks ConfluenceLoader on Cloud as it breaks us
    "psycopg[binary]>=3.2,<4",
    "lxml>=5",  # ConfluenceLoader parses page bodies with BeautifulSoup's lxml builder
    "beautifulsoup4>=4.12",
]
ROUNDS = ("full", "no change", "10 pages edited")


def _langchain_python() -> Path:
    """The LangChain venv's python, created (about a minute) the first time."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "confluence-assets"
    venv = cache / "bench-langchain-venv"
    stamp = venv / ("installed-" + str(abs(hash(tuple(LANGCHAIN_REQUIREMENTS))) % 10**8))
    python = venv / "bin" / "python"
    if not stamp.exists():
        print(f"creating the LangChain venv in {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet", *LANGCHAIN_REQUIREMENTS]
        done = subprocess.run(install, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"installing the LangChain venv failed:\n{done.stderr[-3000:]}")
        for old in venv.glob("installed-*"):
            old.unlink()
        stamp.touch()
    return python


def _serve(pages: int, seed: int, conn) -> None:
    """The sandbox servers, in a child process so that neither pipeline's figures include serving."""
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=seed, spaces=1, pages_per_space=pages)
    space = info.space_keys[0]
    with ConfluenceServer(site) as conf, EmbeddingsServer() as emb:
        conn.send({"space": space, "conf": (conf.url, conf.email, conf.api_token), "emb": (emb.url, emb.api_key)})
        while True:
            command = conn.recv()
            if command == "stats":
                stats = emb.stats
                conn.send(
                    {
                        "confluence": conf.stats.total,
                        "embeddings": stats.requests,
                        "inputs": stats.inputs,
                        "tokens": stats.tokens,
                    }
                )
            elif command == "edit":
                site.clock.advance(minutes=20)
                for page in site.live_pages(space)[5:15]:
                    site.edit_page(page.id, body=f"<h2>Edited</h2><p>Page {page.id} was edited for the benchmark.</p>")
                conn.send(10)
            else:
                return


class Sandbox:
    def __init__(self, pages: int, seed: int) -> None:
        self.parent, child = mp.get_context("fork").Pipe()
        self.process = mp.get_context("fork").Process(target=_serve, args=(pages, seed, child), daemon=True)
        self.process.start()
        self.info = self.parent.recv()

    def ask(self, command: str):
        self.parent.send(command)
        return self.parent.recv()

    def stop(self) -> None:
        self.parent.send("stop")
        self.process.join(timeout=10)


def _delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--with-attachments", action="store_true", help="ours also indexes attachments, comments")
    args = parser.parse_args()

    langchain_python = _langchain_python()
    home = Path(tempfile.mkdtemp(prefix="ca-compare-"))
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    if not args.with_attachments:
        os.environ["CONFLUENCE_ATTACHMENTS"] = "off"
        os.environ["CONFLUENCE_COMMENTS"] = "off"
    sandbox = Sandbox(args.pages, args.seed)

    import dagster as dg
    import psycopg

    from confluence_assets import settings
    from confluence_assets.db.embedded import ensure_embedded_server, stop_embedded_server
    from confluence_assets.db.urls import with_database
    from confluence_assets.defs.assets import build_assets
    from confluence_assets.defs.resources import ConfluenceResource, EmbeddingsResource, PostgresResource

    try:
        server = ensure_embedded_server()
        with psycopg.connect(server.server_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE langchain")
        langchain_db = with_database(server.server_url, "langchain")
        with psycopg.connect(langchain_db, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        url, email, token = sandbox.info["conf"]
        emb_url, emb_key = sandbox.info["emb"]
        space = sandbox.info["space"]
        langchain_config = {
            "url": url,
            "email": email,
            "api_token": token,
            "space": space,
            "max_pages": args.pages * 2,
            "embeddings_url": emb_url,
            "embeddings_key": emb_key,
            "db_url": langchain_db.replace("postgresql://", "postgresql+psycopg://", 1),
        }
        resources = {
            "confluence": ConfluenceResource(url=url, email=email, api_token=token, site_timezone="Asia/Seoul"),
            "database": PostgresResource(database_url=server.app_url),
            "embeddings": EmbeddingsResource(api_key=emb_key, base_url=emb_url, dimensions=1536),
        }
        built = build_assets(settings.load())
        assets = [
            built.changed_pages,
            built.page_metadata,
            built.page_attachments,
            built.page_chunks,
            built.chunk_embeddings,
        ]
        print(
            f"corpus: {args.pages} generated pages (seed {args.seed}), space {space}; "
            f"ours with attachments and comments {'on' if args.with_attachments else 'off'}"
        )

        def run_langchain() -> dict:
            done = subprocess.run(
                [str(langchain_python), str(HERE / "langchain_pipeline.py"), json.dumps(langchain_config)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"the LangChain pipeline failed:\n{done.stderr[-3000:]}")
            return json.loads(done.stdout.strip().splitlines()[-1])

        figures: dict[str, dict[str, dict]] = {"langchain": {}, "ours": {}}
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("confluence_spaces", [space])
            for label in ROUNDS:
                if label == "10 pages edited":
                    sandbox.ask("edit")
                before = sandbox.ask("stats")
                report = run_langchain()
                figures["langchain"][label] = {
                    # Its own clock, after its imports: ours is timed after ours too (materialize, warm imports).
                    "seconds": report["seconds"],
                    "chunks": report["num_added"] + report["num_updated"],
                    "total_chunks": report["chunks"],
                    **_delta(before, sandbox.ask("stats")),
                }
                before = sandbox.ask("stats")
                started = time.perf_counter()
                result = dg.materialize(assets, partition_key=space, instance=instance, resources=resources)
                seconds = time.perf_counter() - started
                assert result.success
                meta = {
                    k: v.value
                    for k, v in result.asset_materializations_for_node("chunk_embeddings")[-1].metadata.items()
                }
                with psycopg.connect(server.app_url) as conn:
                    total = conn.execute(
                        "SELECT count(*) FROM archon_crawled_pages WHERE source_id = %s", (f"confluence_{space}",)
                    ).fetchone()[0]
                if label == "full":
                    steps = [
                        f"{e.step_key} {e.event_specific_data.duration_ms / 1000:.1f} s"
                        for e in result.all_events
                        if e.event_type_value == "STEP_SUCCESS"
                    ]
                    print(
                        f"ours, full sync by step: {', '.join(steps)}; embedding {meta.get('embedding_seconds')} s, "
                        f"swap {meta.get('swap_seconds')} s"
                    )
                figures["ours"][label] = {
                    "seconds": seconds,
                    "chunks": meta.get("chunks_created", 0),
                    "total_chunks": total,
                    **_delta(before, sandbox.ask("stats")),
                }
        _print(figures, args.pages)
    finally:
        sandbox.stop()
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)


def _print(figures: dict[str, dict[str, dict]], pages: int) -> None:
    rows = [
        ("seconds", "{:.1f}"),
        ("Confluence requests", "{:d}"),
        ("embedding requests", "{:d}"),
        ("embedded inputs", "{:d}"),
        ("embedded tokens", "{:,d}"),
        ("chunks written", "{:d}"),
        ("chunks in the store", "{:d}"),
    ]
    keys = {
        "seconds": "seconds",
        "Confluence requests": "confluence",
        "embedding requests": "embeddings",
        "embedded inputs": "inputs",
        "embedded tokens": "tokens",
        "chunks written": "chunks",
        "chunks in the store": "total_chunks",
    }
    print("\n| round | figure | LangChain | ours | ours / LangChain |\n|---|---|---|---|---|")
    for label in ROUNDS:
        for name, fmt in rows:
            lc, us = figures["langchain"][label][keys[name]], figures["ours"][label][keys[name]]
            ratio = f"{us / lc:.2f}x" if lc else "-"
            print(f"| {label} | {name} | {fmt.format(lc)} | {fmt.format(us)} | {ratio} |")
    lc_full, us_full = figures["langchain"]["full"]["seconds"], figures["ours"]["full"]["seconds"]
    print(
        f"\nfull sync: LangChain {pages / lc_full:.1f} pages/s, ours {pages / us_full:.1f} pages/s "
        f"(ours at {lc_full / us_full:.2f}x LangChain's rate; target >= 1.0x)"
    )


if __name__ == "__main__":
    main()
