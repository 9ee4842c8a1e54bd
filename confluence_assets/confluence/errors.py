"""Errors a user can act on. Messages name what to fix and never contain a credential."""

from __future__ import annotations


class ConfluenceError(RuntimeError):
    """Base class: something about talking to Confluence failed."""


class ConfluenceAuthError(ConfluenceError):
    """401: the credentials were rejected. Retrying will not help."""


class ConfluencePermissionError(ConfluenceError):
    """403: the user may not read this space or page."""


class ConfluenceNotFoundError(ConfluenceError):
    """404: missing, trashed, or invisible to this user."""


class ConfluenceRequestError(ConfluenceError):
    """400: Confluence refused the request (e.g. CQL it cannot parse)."""


class ConfluenceUnavailableError(ConfluenceError):
    """Unreachable, timed out, rate-limited or failing (5xx) after every retry."""


class ConfluenceConfigError(ConfluenceError):
    """The settings cannot work (missing URL or credentials, a URL that does not serve the REST API)."""


class ConfluenceRateLimitError(ConfluenceUnavailableError):
    """429 beyond what is worth waiting for (an exhausted hourly quota): the message names the reset time.
    Final for a step: retrying before the reset only spends requests."""


class ConfluenceGoneError(ConfluenceError):
    """410 Gone: Confluence removed the endpoint (deprecated v1, CHANGE-864); only an upgrade helps."""
