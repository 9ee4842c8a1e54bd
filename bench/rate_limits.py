"""What keeping to Confluence's rate limits costs, against the sandbox over real HTTP.

    DATABASE_URL=postgresql://... .venv/bin/python bench/rate_limits.py [--ceiling 8] [--clients 4]

Prints (1) a paced walk of a search against a token bucket (5/s, burst 5): requests, 429s met, seconds
waited, lowest X-RateLimit-Remaining, against a client ignoring the headers; (2) a forced 429 storm
(Retry-After 1, twice): seconds waited as told; (3) ``--clients`` clients at a shared ceiling of
``--ceiling`` requests/s (the database's token bucket; DATABASE_URL unset: the embedded server): the
busiest second the sandbox counted, with and without the ceiling.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from confluence_assets.confluence.client import ConfluenceAPI, RetryPolicy  # noqa: E402
from confluence_assets.db import migrations  # noqa: E402
from confluence_assets.db.connection import resolve_database  # noqa: E402
from confluence_assets.db.request_budget import SiteRequestBudget  # noqa: E402
from confluence_assets.sandbox import ConfluenceServer, Site, generate_corpus  # noqa: E402
from confluence_assets.sandbox.ratelimits import RateLimit  # noqa: E402

CQL = "type=page order by id"


def paced(site: Site) -> None:
    with ConfluenceServer(site, rate_limit=RateLimit(capacity=5, fill_rate=5)) as conf:
        with requests.Session() as s:
            s.auth = (conf.email, conf.api_token)
            url = f"{conf.url}/rest/api/content/search"
            ignoring = [s.get(url, params={"cql": CQL, "limit": 3}).status_code for _ in range(14)]
        time.sleep(1.2)
        api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token)
        began = time.monotonic()
        pages = sum(1 for _ in api.search_pages(CQL, expand="", limit=3))
        took = time.monotonic() - began
        api.close()
    st = api.stats
    print(f"ignoring the headers: {ignoring.count(429)} of {len(ignoring)} requests answered 429")
    print(
        f"paced client: {st.attempts} requests, {pages} pages, {st.rate_limited} 429s, "
        f"{st.seconds_waited:.2f} s waited, lowest Remaining {st.lowest_remaining}, {took:.2f} s"
    )


def storm(site: Site) -> None:
    with ConfluenceServer(site) as conf:
        conf.faults.add("GET /wiki/rest/api/content/search", status=429, retry_after=1, times=2)
        api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token, retry=RetryPolicy(jitter_seconds=0))
        began = time.monotonic()
        api.first_match(CQL)
        took = time.monotonic() - began
        api.close()
    print(f"429 storm (Retry-After 1, twice): waited {api.stats.seconds_waited:.3f} s, took {took:.3f} s")


def ceiling(site: Site, db_url: str, rate: float, clients: int, each: int = 15) -> None:
    with ConfluenceServer(site) as conf:
        for bounded in (False, True):
            conf.stats.reset()

            def run(bounded: bool = bounded) -> None:
                gate = SiteRequestBudget(db_url, conf.url, rate) if bounded else None
                api = ConfluenceAPI(conf.url, email=conf.email, api_token=conf.api_token, request_gate=gate)
                for _ in range(each):
                    api.get_json("rest/api/user/current")
                api.close()

            began = time.monotonic()
            threads = [threading.Thread(target=run) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - began
            what = f"ceiling {rate:g}/s" if bounded else "no ceiling"
            print(
                f"{clients} clients x {each} requests, {what}: busiest second {conf.stats.busiest_second()} "
                f"requests, {conf.stats.total / took:.1f} requests/s overall"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ceiling", type=float, default=8)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    site = Site(timezone="UTC")
    generate_corpus(site, seed=5, spaces=1, pages_per_space=40, large_pages=0, empty_pages=0)
    paced(site)
    storm(site)
    db_url = resolve_database().url
    migrations.migrate(db_url)
    ceiling(site, db_url, args.ceiling, args.clients)


if __name__ == "__main__":
    main()
