"""A space with many attachments through the whole asset graph: full sync, downloads, peak RSS, extraction
rate per type; then a no-change sync and an edit of pages with attachments (0 downloads expected).

    .venv/bin/python bench/attachments.py [--pages 1000] [--attachments 2000] [--max-mb 5] [--seed 7]

The corpus is bench/full_sync.py's (``--pages`` generated pages, their own small attachments) plus
``--attachments`` real files of the eight extracted types (PDF, DOCX, PPTX, XLSX, CSV, TXT, Markdown, HTML;
sizes log-uniform from 20 KB to ``--max-mb``, made by bench/extract.py's generator and served from disk)
spread over the pages. The sandbox runs in a child process, PostgreSQL is the embedded server under a
throwaway CONFLUENCE_ASSETS_HOME, the graph runs through Dagster's ``materialize`` with attachments and
comments on (the defaults). Targets (issue 15): peak RSS <= 1 GB (the pipeline process and, separately,
each extraction worker), every file downloaded once, none again after page edits.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import multiprocessing as mp
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KB, MB = 1024, 1024 * 1024
DOWNLOAD = "GET /wiki/rest/api/content/{id}/child/attachment/{attachmentId}/download"


def _file_maker():
    """bench/extract.py's ``make_file`` (a script, not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location("bench_extract", HERE / "extract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_file, module.KINDS


def _attach(site, folder: Path, count: int, max_mb: float, seed: int, page_ids: list[str]) -> tuple[int, float]:
    from confluence_assets.sandbox.files import CHUNK, MEDIA_TYPES, Blob

    class FileBlob(Blob):
        """An attachment's bytes streamed from a file: 2 GB of uploads never sit in the sandbox's memory."""

        def __init__(self, path: Path) -> None:
            self.path, self.size = path, path.stat().st_size

        def chunks(self, chunk_size: int = CHUNK):
            with self.path.open("rb") as handle:
                while block := handle.read(chunk_size):
                    yield block

    make_file, kinds = _file_maker()
    rng = random.Random(seed)
    total = 0
    for number in range(count):
        kind = kinds[number % len(kinds)]
        size = int(math.exp(rng.uniform(math.log(20 * KB), math.log(max_mb * MB))))
        path = folder / f"file{number:04d}.{kind}"
        path.write_bytes(make_file(kind, size, rng, f"zebra {number} marmalade"))
        total += path.stat().st_size
        site.add_attachment(rng.choice(page_ids), path.name, data=FileBlob(path), media_type=MEDIA_TYPES[kind])
    return count, total / MB


def _serve(args: argparse.Namespace, folder: Path, conn) -> None:
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=args.seed, spaces=1, pages_per_space=args.pages)
    key = info.space_keys[0]
    started = time.perf_counter()
    files, file_mb = _attach(site, folder, args.attachments, args.max_mb, args.seed, list(info.page_ids[key][1:]))
    generated = time.perf_counter() - started
    listed = sum(len(site.attachments_of(pid)) for pid in info.page_ids[key])
    with ConfluenceServer(site) as conf, EmbeddingsServer() as emb:
        conn.send(
            {
                "space": key,
                "conf": (conf.url, conf.email, conf.api_token),
                "emb": (emb.url, emb.api_key),
                "files": files,
                "file_mb": file_mb,
                "generated_seconds": generated,
                "attachments": listed,
                "with_files": [pid for pid in info.page_ids[key] if site.attachments_of(pid)][:10],
            }
        )
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send({"confluence": conf.stats.total, "downloads": conf.stats[DOWNLOAD]})
            elif isinstance(command, tuple) and command[0] == "edit":
                site.clock.advance(minutes=5)
                for pid in command[1]:
                    site.edit_page(pid, body="<p>Edited for the benchmark: the files stay as they are.</p>")
                conn.send("edited")
            else:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--attachments", type=int, default=2000)
    parser.add_argument("--max-mb", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-bench-"))
    folder = home / "files"
    folder.mkdir()
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)

    parent, child = mp.get_context("fork").Pipe()
    server = mp.get_context("fork").Process(target=_serve, args=(args, folder, child), daemon=True)
    server.start()
    sandbox = parent.recv()

    import dagster as dg

    from confluence_assets import settings
    from confluence_assets.db.embedded import ensure_embedded_server, stop_embedded_server
    from confluence_assets.defs.assets import build_assets
    from confluence_assets.defs.resources import ConfluenceResource, EmbeddingsResource, PostgresResource

    def stats() -> dict:
        parent.send("stats")
        return parent.recv()

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
        assets = [
            built.changed_pages,
            built.page_metadata,
            built.page_attachments,
            built.page_chunks,
            built.chunk_embeddings,
        ]
        print(
            f"corpus: {args.pages} pages, {sandbox['attachments']} attachments ({sandbox['files']} generated "
            f"files, {sandbox['file_mb']:.0f} MB, made in {sandbox['generated_seconds']:.0f} s), space {space}"
        )
        runs = {}
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("confluence_spaces", [space])
            for label in ("full", "no change", "10 pages edited"):
                if label == "10 pages edited":
                    parent.send(("edit", sandbox["with_files"]))
                    parent.recv()
                before = stats()
                started = time.perf_counter()
                result = dg.materialize(assets, partition_key=space, instance=instance, resources=resources)
                seconds = time.perf_counter() - started
                after = stats()
                assert result.success, label
                steps = {
                    e.step_key: e.event_specific_data.duration_ms / 1000
                    for e in result.all_events
                    if e.event_type_value == "STEP_SUCCESS"
                }
                mats = result.asset_materializations_for_node("page_attachments")
                meta = {k: v.value for k, v in mats[-1].metadata.items()} if mats else {}
                runs[label] = (seconds, {k: after[k] - before[k] for k in after}, steps, meta)

        own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB
        child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / KB
        seconds, counts, steps, meta = runs["full"]
        print(f"full sync:        {seconds:7.1f} s  ({args.pages / seconds:.1f} pages/s)")
        for step, step_s in steps.items():
            print(f"  {step:<17} {step_s:7.1f} s")
        print(
            f"  Confluence requests: {counts['confluence']}, of them attachment downloads: {counts['downloads']} "
            f"(each answered by a redirect to the media store, followed)"
        )
        print(
            f"  attachments: {meta.get('attachments_listed')} listed, {meta.get('attachments_downloaded')} downloaded "
            f"({meta.get('attachment_bytes_downloaded', 0) / MB:.0f} MB), {meta.get('attachments_failed')} failed, "
            f"{meta.get('attachments_skipped')} skipped (images); extraction "
            f"{meta.get('attachment_extraction_seconds')} worker-seconds; {meta.get('comments_stored')} comments"
        )
        print("\nextraction per type (workers' own seconds):\n")
        print(meta.get("extraction_by_type", "(no table)"))
        for label in ("no change", "10 pages edited"):
            seconds, counts, steps, meta = runs[label]
            print(
                f"\n{label}: {seconds:.1f} s, {counts['confluence']} Confluence requests, "
                f"{counts['downloads']} downloads, {meta.get('attachments_unchanged', 0)} attachments unchanged "
                f"({', '.join(f'{step} {step_s:.1f} s' for step, step_s in steps.items())})"
            )
        print(
            f"\npeak RSS: pipeline process {own_mb:.0f} MB; largest child process (an extraction worker) "
            f"{child_mb:.0f} MB, the workers' own peak {runs['full'][3].get('attachment_peak_worker_rss_mb')} MB "
            f"(PostgreSQL and the sandbox run separately)"
        )
    finally:
        parent.send("stop")
        server.join(timeout=10)
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
