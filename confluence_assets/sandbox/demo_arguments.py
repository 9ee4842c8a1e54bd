"""The flags of ``confluence-assets sandbox`` (served by :mod:`confluence_assets.sandbox.demo`).

A module of its own, importing only the settings, so that building the command line parser does not
import the sandbox servers.
"""

from __future__ import annotations

import argparse

from confluence_assets import settings

# The flags whose default is a setting (their SANDBOX_* environment twins, so that a demo can be configured
# without flags: SANDBOX_LATENCY=0.05 ./run sandbox): flag destination -> SandboxSettings field.
SETTING_DEFAULTS = {
    "host": "host",
    "confluence_port": "confluence_port",
    "embeddings_port": "embeddings_port",
    "timezone": "timezone",
    "latency": "latency_seconds",
    "faults": "confluence_faults",
    "embeddings_faults": "embeddings_faults",
    "rate_limit": "rate_limit",
    "v1_removed": "v1_removed",
}


def apply_setting_defaults(args: argparse.Namespace) -> None:
    """Fill the flags left unset from ``settings.load().sandbox``.

    Loaded when the sandbox command runs, not when the parser is built, so that a bad value of some
    setting never breaks the other commands (``doctor`` above all), and reaches the user as one line.
    """
    defaults = settings.load().sandbox
    for dest, field in SETTING_DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, getattr(defaults, field))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # default=None: filled from the settings (SANDBOX_*) by apply_setting_defaults.
    parser.add_argument("--host", default=None, help=f"address to bind (default ${settings.SANDBOX_HOST} or 127.0.0.1)")
    parser.add_argument(
        "--confluence-port",
        type=int,
        default=None,
        help=f"Confluence port (0: any free port; default ${settings.SANDBOX_CONFLUENCE_PORT} or 8090)",
    )
    parser.add_argument(
        "--embeddings-port",
        type=int,
        default=None,
        help=f"embeddings port (0: any free port; default ${settings.SANDBOX_EMBEDDINGS_PORT} or 8091)",
    )
    parser.add_argument("--seed", type=int, default=7, help="corpus seed (same seed, same corpus)")
    parser.add_argument("--spaces", type=int, default=3, help="generated spaces (default 3)")
    parser.add_argument("--pages-per-space", type=int, default=200, help="pages per generated space (default 200)")
    parser.add_argument("--samples-space", default="QM", help="space key of the real sample pages (default QM)")
    parser.add_argument("--no-samples", action="store_true", help="do not load the real sample pages")
    parser.add_argument("--samples-dir", default=None, help="sample pages (default: the packaged confluence_samples/)")
    parser.add_argument(
        "--timezone",
        default=None,
        help=f"site time zone CQL dates are read in (default ${settings.SANDBOX_TIMEZONE} or Asia/Seoul)",
    )
    parser.add_argument("--context-path", default="/wiki", help='"/wiki" (Cloud, default) or "" (Data Center)')
    parser.add_argument(
        "--latency",
        type=float,
        default=None,
        help=f"seconds added to every Confluence request (default ${settings.SANDBOX_LATENCY} or 0)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        help=f"Confluence fault rules (default ${settings.SANDBOX_CONFLUENCE_FAULTS}), e.g. "
        '"endpoint=GET /wiki/rest/api/search,status=429,every=5"',
    )
    parser.add_argument(
        "--embeddings-faults",
        default=None,
        help=f"embeddings fault rules (default ${settings.SANDBOX_EMBEDDINGS_FAULTS}), e.g. "
        '"status=429,retry_after=1,every=10"',
    )
    parser.add_argument(
        "--rate-limit",
        default=None,
        help=f"a token bucket with rate-limit headers on every response (default ${settings.SANDBOX_RATE_LIMIT} "
        'or none): requests per second, e.g. "20", or "capacity=20,fill_rate=10,hourly_quota=5000"',
    )
    parser.add_argument(
        "--v1-removed",
        action="store_const",
        const=True,
        default=None,
        help=f"deprecated v1 endpoints answer 410 Gone (default ${settings.SANDBOX_V1_REMOVED} or off)",
    )
