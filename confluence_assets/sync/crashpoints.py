"""Test-only crash points for the crash matrix (confluence_assets_tests/test_reliability_crash.py and
bench/reliability.py). Inert unless ``CONFLUENCE_ASSETS_TEST_CRASH_AT`` is set.

``CONFLUENCE_ASSETS_TEST_CRASH_AT=<point>:<n>`` makes the process SIGKILL itself the n-th time it reaches
``<point>`` (n defaults to 1): no exception handler, ``finally`` block or transaction commit runs, exactly
as when the machine or the OOM killer ends a run worker. The points, in the order a sync reaches them:

- ``stage_batch``: after a batch of listed pages was committed to staging (mid-pagination)
- ``convert_batch``: after a batch of converted pages was committed (confluence_pages upserted)
- ``chunk_batch``: after a batch of chunked pages was committed
- ``embed_batch``: after a batch of embeddings was committed to staging
- ``swap_inside``: inside a page's swap transaction, its old chunks deleted and new ones inserted,
  before the commit
- ``swap_done``: after a page's swap transaction committed
- ``complete``: after every swap, before the watermark moves
"""

from __future__ import annotations

import os
import signal
import threading

from confluence_assets import settings

ENV = settings.CONFLUENCE_ASSETS_TEST_CRASH_AT  # alias of the name in settings
POINTS = (
    "stage_batch",
    "convert_batch",
    "attachment_batch",
    "chunk_batch",
    "embed_batch",
    "swap_inside",
    "swap_done",
    "complete",
)
_reached: dict[str, int] = {}
_lock = threading.Lock()  # the chunk swap reaches its points from several threads


def reached(point: str) -> None:
    """Count one pass through ``point``; SIGKILL this process when the configured pass is reached."""
    spec = settings.env(ENV)  # per call: the crash matrix sets it in each worker's environment
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    with _lock:
        _reached[point] = _reached.get(point, 0) + 1
        if _reached[point] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
