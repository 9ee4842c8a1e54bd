"""The cost of permissions: a page_permissions refresh of one generated space, and what restrictions add to
an incremental sync; prints the numbers.

    .venv/bin/python bench/permissions.py [--pages 4000] [--seed 7] [--changed 10]

A generated space (sandbox generate_corpus) gets read restrictions the way a real one has them: about one
page in ten restricted to a few users and a group (12 groups, every generated user in one to three), five
pages restricted to more than 100 users (the expansion shows 100: each costs one completion request), and
its space readers a group plus the default group. The sandbox runs in a child process, the embedded
PostgreSQL under a throwaway CONFLUENCE_ASSETS_HOME, the assets through Dagster's `materialize` as the
tests do. The space is first synced through the whole graph (the watermark advances only when its chunks
are embedded, so the incremental sync lists only what changed). Targets: a refresh of 4,000 pages <= 160
requests (1 per 25 pages); an incremental sync of 10 changed pages 0 extra requests for their restrictions.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

BY_OPERATION = "GET /wiki/rest/api/content/{id}/restriction/byOperation/read"


def _restrict(site, space: str, seed: int) -> dict:
    rng = random.Random(f"bench-permissions:{seed}")
    pages = [p.id for p in site.live_pages(space)][1:]  # the homepage stays open
    users = [site.add_user(f"Bench user {i}", email=f"bench{i}@example.com").account_id for i in range(300)]
    groups = [site.add_group(f"bench-group-{i}") for i in range(12)]
    for account in users:
        for group in rng.sample(groups, rng.choice((1, 2, 3))):
            site.add_to_group(group, account)
    service = site.default_user.account_id
    site.restrict_space(space, [groups[0], site.default_group, service])
    restricted = rng.sample(pages, len(pages) // 10)
    for pid in restricted:
        site.restrict_page(pid, [*rng.sample(users, rng.randint(1, 4)), service], groups=[rng.choice(groups)])
    crowded = rng.sample([p for p in pages if p not in restricted], 5)
    for pid in crowded:
        site.restrict_page(pid, [*rng.sample(users, 150), service])
    return {"restricted": len(restricted) + len(crowded), "crowded": len(crowded)}


def _serve(pages: int, seed: int, changed: int, conn) -> None:
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    info = generate_corpus(site, seed=seed, spaces=1, pages_per_space=pages)
    space = info.space_keys[0]
    made = _restrict(site, space, seed)
    with ConfluenceServer(site) as conf, EmbeddingsServer() as emb:
        conn.send(
            {"space": space, "conf": (conf.url, conf.email, conf.api_token), "emb": (emb.url, emb.api_key), **made}
        )
        while True:
            command = conn.recv()
            if command == "stats":
                conn.send({"total": conf.stats.total, "completions": conf.stats[BY_OPERATION]})
            elif command == "edit":  # pages with short restriction lists (or none), as most are
                short = [
                    p
                    for p in site.live_pages(space)
                    if len(getattr(site.page(p.id).restrictions.get("read"), "users", ())) < 100
                ]
                for page in short[-changed:]:
                    site.edit_page(page.id, body=f"<p>Edited for the benchmark: {page.title}</p>")
                conn.send(len(short[-changed:]))
            else:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ca-bench-"))
    os.environ["CONFLUENCE_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    parent, child = mp.get_context("fork").Pipe()
    server = mp.get_context("fork").Process(
        target=_serve, args=(args.pages, args.seed, args.changed, child), daemon=True
    )
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
        resources = {
            "confluence": ConfluenceResource(url=url, email=email, api_token=token, site_timezone="Asia/Seoul"),
            "database": PostgresResource(database_url=db_url),
            "embeddings": EmbeddingsResource(api_key=sandbox["emb"][1], base_url=sandbox["emb"][0], dimensions=1536),
        }
        space = sandbox["space"]
        built = build_assets(settings.load())
        store = [built.changed_pages, built.page_metadata, built.page_chunks, built.chunk_embeddings]
        print(
            f"space {space}: {args.pages} pages, {sandbox['restricted']} with a read restriction "
            f"({sandbox['crowded']} naming more than 100 users)"
        )
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("confluence_spaces", [space])

            def run(assets: list, label: str) -> tuple[float, dict, dg.ExecuteInJobResult]:
                before = stats()
                started = time.perf_counter()
                result = dg.materialize(assets, partition_key=space, instance=instance, resources=resources)
                seconds = time.perf_counter() - started
                after = stats()
                assert result.success, label
                return seconds, {k: after[k] - before[k] for k in after}, result

            seconds, made, _ = run(store, "full")
            print(
                f"first sync (whole graph):  {seconds:6.1f} s, {made['total']} requests, "
                f"{made['completions']} restriction completions"
            )
            seconds, made, result = run([built.page_permissions], "refresh")
            meta = {
                k: v.value for k, v in result.asset_materializations_for_node("page_permissions")[-1].metadata.items()
            }
            print(
                f"page_permissions refresh:  {seconds:6.1f} s, {made['total']} requests "
                f"(1 per {args.pages / max(made['total'], 1):.0f} pages; target <= {args.pages // 25}), "
                f"{made['completions']} completions, {meta['groups_listed']} groups listed; "
                f"{meta['restricted_pages']} restricted, {meta['inherited_restriction_pages']} hidden by an "
                f"ancestor, {meta['unknown_restriction_pages']} unknown"
            )
            parent.send("edit")
            edited = parent.recv()
            seconds, made, result = run(store, "incremental")
            changed = {
                k: v.value for k, v in result.asset_materializations_for_node("changed_pages")[-1].metadata.items()
            }
            print(
                f"incremental sync of {edited} changed pages: {seconds:5.1f} s, {made['total']} requests, "
                f"{changed['restriction_requests']} extra for restrictions (target 0), "
                f"{changed['pages_restriction_unknown']} unknown"
            )
    finally:
        parent.send("stop")
        server.join(timeout=10)
        stop_embedded_server()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
