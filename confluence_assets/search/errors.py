"""The search's own failure: one a user can fix, whose message says what to change."""

from __future__ import annotations


class SearchError(RuntimeError):
    """A search that cannot run as configured or asked; the message says what to change."""
