"""ConfluenceAPI: the few calls the sync needs, on atlassian-python-api 4.x, with retries we control.

Why not the library's own retry options: with ``retry_with_header`` (on by default) a 429 carrying
``Retry-After`` is retried forever, sleeping whatever the server says; ``backoff_and_retry`` retries only
on status codes. We hand the client a ``requests.Session`` whose urllib3 ``Retry`` covers connection
errors, read timeouts and 429/5xx with capped exponential backoff plus jitter, honours ``Retry-After``
up to a cap, and counts every attempt so runs can report their API calls.

Pagination follows ``_links.next`` on the URL requests go to (the site, or the API gateway: confluence.sites;
Cloud deprecated ``start`` on search) and
never infers the end from a short page (fewer results than ``limit``, or none, can still have a ``next``
link); a listing that cannot be finished raises, never ends silently. Attachments beyond the 25 of the
``children.attachment`` expansion: :meth:`ConfluenceAPI.complete_attachments`; restriction subjects beyond
the expansion's: :meth:`ConfluenceAPI.search_pages` (confluence.permissions)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import requests
from atlassian import Confluence

from confluence_assets import settings
from confluence_assets.confluence import errors
from confluence_assets.confluence import ratelimit as rl
from confluence_assets.confluence.permissions import RESTRICTION_EXPAND, settle_read_restriction
from confluence_assets.confluence.ratelimit import RequestStats, RetryPolicy
from confluence_assets.confluence.responses import (
    clean_text,
    join_url,
    json_body,
    page_from_v2,
    page_url,
    resolve_next,
    with_limit,
    with_link_header,
)
from confluence_assets.confluence.sites import site_form

log = logging.getLogger(__name__)

# The library logs every request as a curl command line, Authorization header included, at DEBUG.
logging.getLogger("atlassian").setLevel(logging.INFO)

PAGE_EXPAND = ",".join(
    [
        "body.storage",
        "version",
        "ancestors",
        "history",
        "space",
        "metadata.labels",
        "children.page",
        "children.attachment",
    ]
)
SYNC_EXPAND = f"{PAGE_EXPAND},{RESTRICTION_EXPAND}"  # and each page's own read restriction, in the same requests
PERMISSIONS_PAGE = 200  # results per listing of restrictions alone (no body: 200 a request; with body 50)
# A listing is finished only when a page has no next link. These bound how long we follow one that
# never finishes before failing the run (never before taking it as complete).
MAX_EMPTY_PAGES = 1000  # consecutive empty pages with a next link (restricted content can fill many)
MAX_SAME_PAGE = 5  # the same next link again and again: "this page again", retried this often
# The rest of an attachment list is asked for this many at a time (the server may cap it lower).
ATTACHMENT_PAGE = 200
MAX_ATTACHMENT_REQUESTS = 100  # per page: beyond that the list is kept as far as it got


# Collections that exist on every Confluence: a 404 there means the URL is not Confluence's REST root.
COLLECTION_PATHS = ("rest/api/content/search", "rest/api/space", "rest/api/search", "rest/api/content")
# The change sensor's probes (one cheap request per space, many spaces per tick, Dagster's 60 s sensor
# timeout) must never wait like a sync does: a short timeout, one retry, a server's Retry-After honoured
# for a few seconds at most. A space still failing is reported in the tick and probed again next tick.
PROBE_TIMEOUT_SECONDS = 10.0
PROBE_RETRY = RetryPolicy(
    max_retries=1, backoff_seconds=0.5, backoff_max_seconds=2.0, jitter_seconds=0.25, retry_after_cap_seconds=3.0
)
# Empty pages with a next link a probe follows (restricted newest matches) before calling the space changed.
MAX_PROBE_FOLLOWS = 5


@dataclass(frozen=True)
class FirstMatch:
    """What a change probe found: the newest readable match (or None), and ``hidden`` when every page
    followed came back empty with a ``next`` link (matches exist that these credentials cannot read)."""

    page: dict | None
    hidden: bool = False
    requests: int = 1


class ConfluenceAPI:
    """The Confluence calls of the sync. Construct with Cloud credentials (email + API token) or a Data
    Center personal access token."""

    def __init__(
        self,
        url: str,
        *,
        email: str | None = None,
        api_token: str | None = None,
        personal_access_token: str | None = None,
        timeout_seconds: float = 30.0,
        retry: RetryPolicy | None = None,
        page_size: int = 50,
        max_concurrent_requests: int | None = None,
        request_gate: Callable[[], float] | None = None,
    ) -> None:
        self.form = site_form(url, bearer=bool(personal_access_token))  # Cloud site, gateway, Data Center
        self.url = self.form.api_base  # where requests go; links in responses point at the site
        self.has_v2 = self.form.has_v2  # None: learnt from the first v2 request (404: Data Center)
        self.page_size = page_size
        self.stats = RequestStats()
        session = requests.Session()
        self._gate = request_gate
        self.retry = retry or RetryPolicy()
        # Rate limits (confluence.ratelimit): paced before the limit, 429s waited as told, in-flight bounded.
        pause_cap = min(self.retry.rate_limit_max_wait_seconds, self.retry.retry_after_cap_seconds)
        budget = rl.RateLimitBudget(self.stats, pause_cap)  # a probe's client pauses no longer than it waits
        adapter = rl.BudgetedAdapter(
            budget,
            rl.site_slots(self.url, max_concurrent_requests) if max_concurrent_requests else None,
            request_gate,  # the site's requests-per-second ceiling across processes (db.request_budget)
            max_retries=rl.make_retry(self.retry, self.stats, budget),
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(self._count)
        kwargs: dict[str, Any] = dict(
            session=session,
            # atlassian-python-api int()s the timeout: 0.5 would become 0, which urllib3 refuses.
            timeout=max(1, math.ceil(timeout_seconds)),
            retry_with_header=False,
            backoff_and_retry=False,
        )
        if personal_access_token:
            kwargs["token"] = personal_access_token
        elif email and api_token:
            kwargs.update(username=email, password=api_token)
        else:
            raise errors.ConfluenceConfigError(
                f"no Confluence credentials: set {settings.CONFLUENCE_EMAIL} and {settings.CONFLUENCE_API_TOKEN} "
                f"(Cloud) or {settings.CONFLUENCE_PAT} (Data Center)"
            )
        self._client = Confluence(self.url, **kwargs)
        self._site_base: str | None = None  # the site's wiki base: _links.base of the responses

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.stats.responses += 1
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1

    @property
    def site_base(self) -> str:
        """The site's wiki base (``_links.base``), what page URLs for readers are made of. Through the API
        gateway it is not the URL requests go to: learnt from the first response, or from one request."""
        if self._site_base is None and self.form.cloud_id:
            self.get_json("api/v2/spaces", {"limit": 1})
        return self._site_base or self.url

    # -- low level ---------------------------------------------------------------------------------------
    def get_json(self, path: str, params: dict[str, Any] | None = None, *, absolute: bool = False) -> dict:
        """GET a REST path (relative to the base URL) or an absolute URL; errors translated. A v2 list's
        ``Link: rel="next"`` header becomes its ``_links.next`` when the body has none."""
        shown = path if absolute else join_url(self.url, path)
        shown = shown.split("?", 1)[0]
        try:
            response = self._client.get(path, params=params, absolute=absolute, advanced_mode=True)
            self._client.raise_for_status(response)
            data = json_body(response)
        except requests.HTTPError as exc:
            raise self._translate(exc, shown) from None
        except requests.exceptions.RetryError as exc:
            raise errors.ConfluenceUnavailableError(f"{shown}: gave up after retries ({_reason(exc)})") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise errors.ConfluenceUnavailableError(
                f"cannot reach Confluence at {self.url} ({_reason(exc)}): check {settings.CONFLUENCE_URL} "
                "and the network"
            ) from None
        if not isinstance(data, dict):
            raise errors.ConfluenceConfigError(
                f"{shown} did not answer with JSON: is {settings.CONFLUENCE_URL} right? "
                "Confluence Cloud URLs end in /wiki (https://your-site.atlassian.net/wiki)"
            )
        data = with_link_header(clean_text(data), response.links)
        base = (data.get("_links") or {}).get("base")
        if base:
            self._site_base = base.rstrip("/")
        return data

    def _translate(self, exc: requests.HTTPError, shown: str) -> errors.ConfluenceError:
        status = exc.response.status_code if exc.response is not None else 0
        message = str(exc)[:300]
        if status == 401:
            return errors.ConfluenceAuthError(
                f"Confluence at {self.url} rejected the credentials (HTTP 401): {self.form.refusal_hint(401)}"
            )
        if status == 403:
            hint = f" ({self.form.refusal_hint(403)})" if self.form.cloud_id else ""
            return errors.ConfluencePermissionError(f"{shown}: permission denied (HTTP 403): {message}{hint}")
        if status == 404:
            if shown.rstrip("/").endswith(COLLECTION_PATHS):
                return errors.ConfluenceConfigError(
                    f"{shown}: not found (HTTP 404): is {settings.CONFLUENCE_URL} right? Confluence Cloud URLs end "
                    "in /wiki (https://your-site.atlassian.net/wiki); Data Center URLs are the site's base URL"
                )
            return errors.ConfluenceNotFoundError(f"{shown}: not found (HTTP 404)")
        if status == 400:
            return errors.ConfluenceRequestError(f"{shown}: Confluence refused the request (HTTP 400): {message}")
        trace = rl.trace_suffix(exc.response)
        if status == 410:
            return rl.gone_error(exc.response)
        if status == 429:
            return rl.rate_limit_error(exc.response, shown, self.retry)
        if status >= 500:
            return errors.ConfluenceUnavailableError(
                f"{shown}: Confluence answered HTTP {status} after every retry: {message}{trace}"
            )
        return errors.ConfluenceError(f"{shown}: HTTP {status}: {message}{trace}")

    def paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        """Every result of a paginated list, following ``_links.next`` to the end.

        A listing ends only where Confluence gives no ``next`` link. Empty pages with a ``next`` link are
        followed (restricted content is cut after the page, so many can come in a row); a ``next`` link
        naming the page just served is that page again (retried, a few times). A listing that cannot be
        finished raises ConfluenceUnavailableError: a listing cut short must never look complete, or
        reconciliation would take the pages after the cut for deleted ones.
        """
        yield from self._follow(self.get_json(path, params), path)

    def _follow(self, data: dict, path: str) -> Iterator[dict]:
        """The results of ``data`` (the first page of ``path``) and of every page after it."""
        shown = join_url(self.url, path)
        current: str | None = None
        followed: set[str] = set()
        empty_in_a_row = same_in_a_row = 0
        while True:
            results = data.get("results") or []
            yield from results
            empty_in_a_row = 0 if results else empty_in_a_row + 1
            nxt = resolve_next(data.get("_links") or {}, self.url, self._site_base)
            if nxt is None:
                return
            if nxt == current:
                same_in_a_row += 1
            elif nxt in followed:
                raise errors.ConfluenceUnavailableError(
                    f"{shown}: the listing's next link went back to a page already read (a pagination loop); "
                    "the listing was not taken as complete"
                )
            else:
                same_in_a_row = 0
            if same_in_a_row > MAX_SAME_PAGE or empty_in_a_row > MAX_EMPTY_PAGES:
                raise errors.ConfluenceUnavailableError(
                    f"{shown}: gave up after {empty_in_a_row} empty pages in a row ({same_in_a_row} times the "
                    "same page); the listing was not taken as complete"
                )
            followed.add(nxt)
            current = nxt
            data = self.get_json(nxt, absolute=True)

    # -- the calls of the sync ---------------------------------------------------------------------------
    def _v2_first(self, path: str, params: dict[str, Any]) -> dict | None:
        """The first answer of a v2 request, or None when the site has no v2 API (Data Center: 404; then
        remembered, and v1 is asked from then on). Cloud's deprecated v1 equivalents may answer 410."""
        if self.has_v2 is False:
            return None
        try:
            data = self.get_json(path, params)
        except errors.ConfluenceNotFoundError:
            if self.has_v2 is None and not path.endswith("/spaces"):  # a missing item, or no v2 at all?
                self._v2_first("api/v2/spaces", {"limit": 1})
            if self.has_v2:  # Cloud: the thing asked for is missing
                raise
            self.has_v2 = False
            return None
        self.has_v2 = True
        return data

    def list_spaces(self) -> Iterator[dict]:
        """Every space the user can see (global and personal, any status): v2 ``/spaces`` (cursor pages of
        250) where there is v2, else v1 ``/space``. Either shape reads as responses.Space.from_api."""
        v2_params = {"limit": 250, "description-format": "plain"}
        first = self._v2_first("api/v2/spaces", v2_params)
        if first is not None:
            yield from self._follow(first, "api/v2/spaces")
            return
        yield from self.paginate("rest/api/space", {"limit": 250, "expand": "description.plain"})

    def search_pages(self, cql: str, *, expand: str = SYNC_EXPAND, limit: int | None = None) -> Iterator[dict]:
        """Pages matching ``cql`` via /rest/api/content/search, with ``expand`` in the same requests; each
        page's read restriction, when expanded, stamped and completed (permissions.settle_read_restriction)."""
        params: dict[str, Any] = {"cql": cql, "limit": limit or self.page_size}
        params.update({"expand": expand} if expand else {})
        read_at = datetime.now(UTC)
        for page in self.paginate("rest/api/content/search", params):
            if RESTRICTION_EXPAND in expand and page.get("id"):
                fetch = partial(self.read_restriction, str(page["id"]))
                self.stats.restriction_requests += settle_read_restriction(page, fetch, read_at)
            yield page

    def read_restriction(self, page_id: str, start: int, limit: int) -> dict:  # a window of its subjects
        path = f"rest/api/content/{quote(page_id, safe='')}/restriction/byOperation/read"
        return self.get_json(path, {"start": start, "limit": limit, "expand": "restrictions.user,restrictions.group"})

    def space_with_permissions(self, space_key: str) -> dict:
        return self.get_json(f"rest/api/space/{quote(space_key, safe='')}", {"expand": "permissions"})

    def space_permissions(self, space_id: str) -> Iterator[dict]:
        yield from self.paginate(f"api/v2/spaces/{quote(space_id, safe='')}/permissions", {"limit": 250})

    def group_members(self, group_id: str) -> Iterator[dict]:
        yield from self.paginate(f"rest/api/group/{quote(group_id, safe='')}/membersByGroupId", {"limit": 200})

    def first_match(self, cql: str, *, max_follows: int = MAX_PROBE_FOLLOWS) -> FirstMatch:
        """The first readable result of ``cql`` (limit 1, version only): a cheap change probe. Confluence
        applies view restrictions after cutting a result page, so a page of one result can be empty with a
        ``next`` link when the match is unreadable to us: followed up to ``max_follows`` times, then the
        result says so (``hidden``) instead of pretending there is no match."""
        data = self.get_json("rest/api/content/search", {"cql": cql, "limit": 1, "expand": "version"})
        requests_made = 1
        while True:
            results = data.get("results") or []
            if results:
                return FirstMatch(results[0], requests=requests_made)
            nxt = resolve_next(data.get("_links") or {}, self.url, self._site_base)
            if nxt is None:
                return FirstMatch(None, requests=requests_made)
            if requests_made > max_follows:
                return FirstMatch(None, hidden=True, requests=requests_made)
            data = self.get_json(nxt, absolute=True)
            requests_made += 1

    def get_page(self, page_id: str, *, expand: str = SYNC_EXPAND) -> dict | None:
        """One page in the v1 shape, or None when it is gone (404). Cloud: v2 ``/pages/{id}`` with its
        storage body and labels (responses.page_from_v2; ``expand`` is v1's, for Data Center)."""
        path = f"api/v2/pages/{quote(page_id, safe='')}"
        try:
            data = self._v2_first(path, {"body-format": "storage", "include-labels": "true"})
            if data is not None:
                return page_from_v2(data)
            return self.get_json(f"rest/api/content/{quote(page_id, safe='')}", {"expand": expand})
        except errors.ConfluenceNotFoundError:
            return None

    def complete_attachments(self, page: dict) -> int:
        """Follow the ``children.attachment`` expansion's ``next`` link to the end, merging the results into
        ``page`` (in place) so that it lists every attachment. Returns the requests made (0 when the expansion
        was complete). A failure is logged and the page keeps the attachments listed so far."""
        listing = (page.get("children") or {}).get("attachment")
        if not isinstance(listing, dict):
            return 0
        links = listing.get("_links") or {}
        nxt = resolve_next(links, self.url, self._site_base)
        results = list(listing.get("results") or [])
        seen = {a.get("id") for a in results if isinstance(a, dict)}
        requests_made = 0
        followed: set[str] = set()
        try:
            while nxt and nxt not in followed and requests_made < MAX_ATTACHMENT_REQUESTS:
                followed.add(nxt)
                data = self.get_json(with_limit(nxt, ATTACHMENT_PAGE), absolute=True)
                requests_made += 1
                for att in data.get("results") or []:
                    if isinstance(att, dict) and att.get("id") not in seen:
                        seen.add(att.get("id"))
                        results.append(att)
                nxt = resolve_next(data.get("_links") or {}, self.url, self._site_base)
        except Exception as exc:  # the attachments a page lists are worth a warning, not the sync
            log.warning("page %s: could not list all its attachments (%s); kept %d", page.get("id"), exc, len(results))
        if requests_made:
            listing["results"] = results
            listing["size"] = len(results)
            listing["_links"] = {k: v for k, v in links.items() if k != "next"}
        return requests_made

    def page_url(self, page: dict) -> str:
        return page_url(self.site_base, page)

    def close(self) -> None:
        self._client.close()
        close_gate = getattr(self._gate, "close", None)
        if close_gate is not None:  # the shared budget's database connection
            close_gate()


def _reason(exc: Exception) -> str:
    text = str(exc)
    # urllib3 messages repeat the whole URL and pool; the tail names the cause.
    if "Caused by" in text:
        text = text.split("Caused by", 1)[1].strip(" ()")
    return text[:200]
