"""Which Confluence a URL and a credential are: the forms the client supports, told apart before any request.

- **Cloud site**: ``https://<site>.atlassian.net/wiki`` with an e-mail and an API token (Basic).
- **Cloud through the API gateway**: ``https://api.atlassian.com/ex/confluence/<cloudId>`` (``/wiki`` is
  added when missing) with an e-mail and a *scoped* API token, or a service account's e-mail and token,
  also Basic (Atlassian: "Manage API tokens for your Atlassian account", scoped tokens "must be used
  with api.atlassian.com"). Responses' ``_links.base`` is still the site, so links are followed on the
  gateway (responses.rebase) while the URLs stored for readers stay the site's.
- **Data Center**: its base URL with a personal access token (Bearer). Data Center has no v2 API.

Any other host with Basic credentials (Data Center with a password, a Cloud custom domain, the sandbox)
is found out by its first v2 request: a 404 there means Data Center (client.ConfluenceAPI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from confluence_assets import settings
from confluence_assets.confluence import errors

CLOUD_SITE, CLOUD_GATEWAY, DATA_CENTER, UNKNOWN = "Cloud site", "Cloud API gateway", "Data Center", "unknown"
_CLOUD_HOSTS = (".atlassian.net", ".jira.com")
_GATEWAY_PATH = re.compile(r"/ex/confluence/(?P<cloud_id>[0-9A-Za-z][0-9A-Za-z-]*)(?P<wiki>/wiki)?/?")


@dataclass(frozen=True)
class SiteForm:
    """``api_base``: where requests go (``.../wiki`` for Cloud); ``kind``: one of the forms above;
    ``bearer``: a personal access token rather than e-mail + token."""

    api_base: str
    kind: str
    bearer: bool
    cloud_id: str | None = None

    @property
    def has_v2(self) -> bool | None:
        """True on Cloud, False on Data Center, None when only a request can tell."""
        return {CLOUD_SITE: True, CLOUD_GATEWAY: True, DATA_CENTER: False}.get(self.kind)

    def describe(self, email: str | None = None) -> str:
        """The form found, for doctor: ``<url> [as <email>] with <credential>: <kind>`` (no secret)."""
        who = f" as {email}" if email and not self.bearer else ""
        if self.kind == CLOUD_GATEWAY:
            found = f"with a scoped API token (Basic): Cloud through the API gateway, cloudId {self.cloud_id}"
        elif self.bearer:
            found = f"with a personal access token (Bearer): {self.kind}"
        elif self.kind == CLOUD_SITE:
            found = "with an API token (Basic): a Cloud site"
        else:
            found = "with an API token or password (Basic): Cloud or Data Center, told by the first v2 request"
        return f"{self.api_base}{who} {found}"

    def refusal_hint(self, status: int) -> str:
        """What a 401 or 403 means for this form, and what to change."""
        if status == 401:
            if self.kind == CLOUD_GATEWAY:
                return (
                    f"the gateway takes {settings.CONFLUENCE_EMAIL} + a scoped API token (or a service account's): "
                    "a classic (unscoped) token or a wrong e-mail is refused; an expired token too (tokens "
                    "expire within a year)"
                )
            if self.kind == CLOUD_SITE and self.bearer:
                return (
                    f"Cloud does not take a personal access token ({settings.CONFLUENCE_PAT}, Data Center's): set "
                    f"{settings.CONFLUENCE_EMAIL} and {settings.CONFLUENCE_API_TOKEN} instead"
                )
            if self.kind == CLOUD_SITE:
                return (
                    f"check {settings.CONFLUENCE_EMAIL} and {settings.CONFLUENCE_API_TOKEN} (tokens expire within a "
                    "year); a scoped token works only through https://api.atlassian.com/ex/confluence/<cloudId>"
                )
            if self.kind == DATA_CENTER:
                return f"check {settings.CONFLUENCE_PAT} (revoked or expired?); Cloud takes no personal access token"
            return (
                f"check {settings.CONFLUENCE_EMAIL} and {settings.CONFLUENCE_API_TOKEN} (a scoped API token works only "
                "through https://api.atlassian.com/ex/confluence/<cloudId>)"
            )
        if self.kind == CLOUD_GATEWAY:
            return (
                "the token is valid but lacks a scope or the user lacks the permission: a scoped token needs the "
                "read scopes (read:confluence-content.all, read:confluence-space.summary, read:page:confluence, "
                "read:space:confluence, ...) and the user must be allowed to view the spaces"
            )
        return "the credentials are valid but the user may not do this (space or product permissions)"


def site_form(url: str, *, bearer: bool) -> SiteForm:
    """The form of ``url`` (CONFLUENCE_URL) with a PAT (``bearer``) or e-mail + token; a one-line
    ConfluenceConfigError for a URL that cannot work."""
    if not url or not url.startswith(("http://", "https://")):
        raise errors.ConfluenceConfigError(f"{settings.CONFLUENCE_URL} must be an http(s) URL, got {url!r}")
    base = url.rstrip("/")
    parts = urlsplit(base)
    gateway = _GATEWAY_PATH.fullmatch(parts.path)
    if gateway:
        if bearer:
            raise errors.ConfluenceConfigError(
                f"{settings.CONFLUENCE_URL} is the Atlassian API gateway, which takes {settings.CONFLUENCE_EMAIL} and "
                f"a scoped {settings.CONFLUENCE_API_TOKEN} (Basic), not {settings.CONFLUENCE_PAT} (Data Center's)"
            )
        if not gateway.group("wiki"):
            base += "/wiki"  # the gateway serves Confluence's REST API under /wiki, as the site does
        return SiteForm(base, CLOUD_GATEWAY, False, gateway.group("cloud_id"))
    host = (parts.hostname or "").lower()
    if host.endswith(_CLOUD_HOSTS):
        return SiteForm(base, CLOUD_SITE, bearer)  # a PAT here is refused (401): refusal_hint says why
    if bearer:
        return SiteForm(base, DATA_CENTER, True)
    return SiteForm(base, UNKNOWN, False)
