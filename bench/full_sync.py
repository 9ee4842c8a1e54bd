"""Full and incremental sync of one generated space through the whole asset graph; prints the numbers.

    .venv/bin/python bench/full_sync.py [--pages 4000] [--seed 7] [--v1-removed]

``--v1-removed``: the sandbox answers the deprecated v1 endpoints 410 Gone (the requests must not change).

The sandbox servers run in a child process (so the pipeline's peak RSS is its own), the embedded
PostgreSQL under a throwaway CONFLUENCE_ASSETS_HOME, and the graph through Dagster's `materialize` on
an ephemeral instance, exactly as the tests do. Targets on a 2-core machine: <= 180 s for 4,000 pages,
<= 1 Confluence request per 25 pages, peak RSS <= 1 GB; a no-change incremental run <= 5 s and <= 2
Confluence requests.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path


def _serve(pages: int, seed: int, conn, v1_removed: bool = False) -> None:
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=seed, spaces=1, pages_per_space=pages)
    with ConfluenceServer(site, v1_removed=v1_removed) as conf, EmbeddingsServer() as emb:
        conn.send(
            {
                "space": info.space_keys[0],
                "conf": (conf.url, conf.email, conf.api_token),
                "emb": (emb.url, emb.api_key),
                "corpus_mb": info.total_bytes / 1e6,
                "corpus_seconds": info.seconds,
            }
        )
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send({"confluence": conf.stats.total, "embeddings": emb.stats.requests})
            else:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--v1-removed", action="store_true", help="deprecated v1 endpoints answer 410 Gone")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-bench-"))
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)

    parent, child = mp.get_context("fork").Pipe()
    server = mp.get_context("fork").Process(
        target=_serve, args=(args.pages, args.seed, child, args.v1_removed), daemon=True
    )
    server.start()
    sandbox = parent.recv()

    import dagster as dg

    from confluence_assets import settings
    from confluence_assets.db.embedded import ensure_embedded_server, stop_embedded_server
    from confluence_assets.defs.assets import build_assets
    from confluence_assets.defs.resources import ConfluenceResource, EmbeddingsResource, PostgresResource

    try:
        db_url = ensure_embedded_server().app_url
        url, email, token = sandbox["conf"]
        emb_url, emb_key = sandbox["emb"]
        resources = {
            "confluence": ConfluenceResource(url=url, email=email, api_token=token, site_timezone="Asia/Seoul"),
            "database": PostgresResource(database_url=db_url),
            "embeddings": EmbeddingsResource(api_key=emb_key, base_url=emb_url, dimensions=1536),
        }
        space = sandbox["space"]
        built = build_assets(settings.load())
        # The graph a sync job runs, page_attachments included (the corpus's own attachments are small real
        # files, its pages have no comments): bench/attachments.py measures a space heavy with files.
        assets = [
            built.changed_pages,
            built.page_metadata,
            built.page_attachments,
            built.page_chunks,
            built.chunk_embeddings,
        ]
        removed = ", deprecated v1 endpoints removed (410)" if args.v1_removed else ""
        print(f"corpus: {args.pages} pages, {sandbox['corpus_mb']:.1f} MB storage XHTML, space {space}{removed}")

        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("confluence_spaces", [space])
            timings = {}
            for label in ("full", "incremental"):
                parent.send("stats")
                before = parent.recv()
                started = time.perf_counter()
                result = dg.materialize(assets, partition_key=space, instance=instance, resources=resources)
                seconds = time.perf_counter() - started
                parent.send("stats")
                after = parent.recv()
                assert result.success
                steps = {
                    e.step_key: e.event_specific_data.duration_ms / 1000
                    for e in result.all_events
                    if e.event_type_value == "STEP_SUCCESS"
                }
                requests = after["confluence"] - before["confluence"]
                mats = result.asset_materializations_for_node("chunk_embeddings")
                embed_meta = {k: v.value for k, v in mats[-1].metadata.items()} if mats else {}
                timings[label] = (seconds, requests, after["embeddings"] - before["embeddings"], steps, embed_meta)

        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        full_s, full_req, full_emb, full_steps, embed_meta = timings["full"]
        inc_s, inc_req, inc_emb, _, _ = timings["incremental"]
        print(f"full sync:        {full_s:7.1f} s  ({args.pages / full_s:.1f} pages/s)")
        for step, step_s in full_steps.items():
            print(f"  {step:<16} {step_s:7.1f} s")
        print(
            f"  chunk_embeddings: {embed_meta.get('chunks_created')} chunks, embedding "
            f"{embed_meta.get('embedding_seconds')} s, swap {embed_meta.get('swap_seconds')} s"
        )
        print(f"  Confluence requests: {full_req} (1 per {args.pages / max(full_req, 1):.0f} pages)")
        print(f"  embedding requests:  {full_emb}")
        print(f"incremental sync: {inc_s:7.2f} s  ({inc_req} Confluence requests, {inc_emb} embedding requests)")
        print(f"peak RSS of the pipeline process: {rss_mb:.0f} MB (PostgreSQL and the sandbox run separately)")
    finally:
        parent.send("stop")
        server.join(timeout=10)
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
