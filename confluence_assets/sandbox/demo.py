"""``confluence-assets sandbox``: both servers with a generated corpus (and the samples space) for a demo.

Prints the URLs and the environment a user exports to point the pipeline at them, then serves until
Ctrl-C or SIGTERM and stops both servers cleanly. The flags (and their ``SANDBOX_*`` environment twins)
are defined in :mod:`confluence_assets.sandbox.demo_arguments`; the fault syntax is
:func:`confluence_assets.sandbox.faults.parse_rules`'s.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable

from confluence_assets import settings
from confluence_assets.sandbox.confluence_server import ConfluenceServer
from confluence_assets.sandbox.corpus import generate_corpus
from confluence_assets.sandbox.embeddings_server import EmbeddingsServer
from confluence_assets.sandbox.faults import parse_rules
from confluence_assets.sandbox.ratelimits import CLOUD, DATA_CENTER, parse_rate_limit
from confluence_assets.sandbox.samples import default_samples_dir, load_samples
from confluence_assets.sandbox.site import Site


def serve(args: argparse.Namespace, *, out: Callable[[str], None] = print) -> int:
    began = time.perf_counter()
    site = Site(timezone=args.timezone)
    info = generate_corpus(site, seed=args.seed, spaces=args.spaces, pages_per_space=args.pages_per_space)
    spaces = list(info.space_keys)
    if not args.no_samples:
        path = args.samples_dir or default_samples_dir()
        if os.path.isdir(path):
            load_samples(site, args.samples_space, path)
            spaces.append(args.samples_space)
        else:
            out(f"note: no samples at {path}; serving the generated corpus only")
    # A Data Center-style root ("") gets Data Center's token-bucket headers unless the spec names a style.
    style = DATA_CENTER if not args.context_path.strip("/") else CLOUD
    conf = ConfluenceServer(
        site,
        host=args.host,
        port=args.confluence_port,
        context_path=args.context_path,
        rate_limit=parse_rate_limit(getattr(args, "rate_limit", "") or "", style=style),
        v1_removed=bool(getattr(args, "v1_removed", False)),
    )
    emb = EmbeddingsServer(host=args.host, port=args.embeddings_port)
    for rule in parse_rules(args.faults):
        conf.faults.add(**rule)
    if args.latency:
        conf.faults.add("*", delay=args.latency, times=None)
    for rule in parse_rules(args.embeddings_faults):
        emb.faults.add(**rule)

    stop = threading.Event()
    # Both signals set, not inherited: a process started in the background by a non-interactive shell
    # (CI, `cmd &`) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so
    # Ctrl-C / SIGINT would never stop the sandbox (the flaky test_sandbox_servers [SIGINT] case).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    conf.start()
    try:
        emb.start()
        pages = sum(1 for p in site.pages.values() if p.status == "current")
        lines = [
            f"Confluence sandbox  {conf.url}  ({', '.join(spaces)}: {pages} pages; site time zone {args.timezone})",
            f"Embeddings sandbox  {emb.url}  (a lexical stand-in: feature hashing of words and character trigrams,"
            " not a semantic model)",
            f"Ready in {time.perf_counter() - began:.2f} s. Faults: {len(conf.faults)} Confluence rule(s), "
            f"{len(emb.faults)} embeddings rule(s)."
            + (f" Rate limit: {conf.bucket.limit}." if conf.bucket else "")
            + (" Deprecated v1 endpoints answer 410 Gone." if conf.app.v1_removed else ""),
            "",
            "# for the pipeline (paste into your shell):",
            f"export {settings.CONFLUENCE_URL}={shlex.quote(conf.url)}",
            f"export {settings.CONFLUENCE_EMAIL}={shlex.quote(conf.email)}",
            f"export {settings.CONFLUENCE_API_TOKEN}={shlex.quote(conf.api_token or '')}",
            f"# Data Center style instead of e-mail + token: export {settings.CONFLUENCE_PAT}={conf.pat}",
            f"# through the API gateway with a scoped token instead: export {settings.CONFLUENCE_URL}="
            f"{shlex.quote(conf.gateway_url)} {settings.CONFLUENCE_API_TOKEN}={shlex.quote(conf.scoped_token or '')}",
            f"export {settings.CONFLUENCE_SITE_TIMEZONE}={shlex.quote(args.timezone)}",
            f"export {settings.OPENAI_BASE_URL}={shlex.quote(emb.url)}",
            f"export {settings.OPENAI_API_KEY}={shlex.quote(emb.api_key)}",
            "",
            "Serving until Ctrl-C or SIGTERM.",
        ]
        for line in lines:
            out(line)
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emb.stop()
        conf.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out("sandbox stopped")
    return 0
