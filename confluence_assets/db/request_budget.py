"""A requests-per-second ceiling per Confluence site, shared by every process using the database.

The bucket is one row of ``confluence_request_budget`` (sql/0.1.0/080). A request reserves a token with a
single upsert under the row's lock: refill by the time since the last reservation (at most ``burst``
tokens), take one. Tokens below zero are slots in the future: the caller sleeps ``-tokens / rate`` seconds,
so reservations from any number of processes come out spaced ``1 / rate`` apart, and the site sees at most
``rate`` requests in a second plus the burst. The database is the one place every run and sensor shares.

If the database cannot be used the request goes ahead (logged once): Confluence's own rate limit, which
the client also keeps to, still applies; a budget that stopped every sync would be worse.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import psycopg

from confluence_assets.db.connection import connect

log = logging.getLogger(__name__)

_RESERVE = """
INSERT INTO confluence_request_budget AS b (site, tokens, refilled_at)
VALUES (%(site)s, %(burst)s - 1, clock_timestamp())
ON CONFLICT (site) DO UPDATE SET
  tokens = LEAST(
      %(burst)s,
      b.tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at)::float8) * %(rate)s
  ) - 1,
  refilled_at = GREATEST(b.refilled_at, clock_timestamp())
RETURNING tokens
"""


def site_key(url: str) -> str:
    """``https://example.atlassian.net``: one budget per site, whatever path the client was given."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SiteRequestBudget:
    """Call it before each request: it reserves a slot and sleeps until it; returns the seconds slept.
    Thread-safe (one connection per thread)."""

    def __init__(self, database_url: str, site_url: str, requests_per_second: float, *, burst: float = 1.0) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second}")
        self.database_url = database_url
        self.site = site_key(site_url)
        self.rate = float(requests_per_second)
        self.burst = max(1.0, float(burst))
        self._local = threading.local()
        self._warned = False

    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.database_url, autocommit=True, vector=False)
            self._local.conn = conn
        return conn

    def reserve(self) -> float:
        """Seconds until this request's slot (0: now)."""
        params = {"site": self.site, "burst": self.burst, "rate": self.rate}
        try:
            tokens = self._conn().execute(_RESERVE, params).fetchone()[0]
        except psycopg.Error as exc:
            if not self._warned:
                self._warned = True
                log.warning("the per-site request budget is unavailable (%s); requests go ahead without it", exc)
            self._local.conn = None
            return 0.0
        return max(0.0, -tokens / self.rate)

    def __call__(self) -> float:
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)
        return wait

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
