"""The mass-deletion guard: a reconciliation that would delete a large part of a space deletes nothing
until a user confirms it.

Reconciliation deletes every stored page it no longer finds in the space's listing. At scale the usual
reason for many pages to vanish at once is not that people deleted them: the service account lost access
(a space permission or a restriction on a parent page changed), or the site answered a listing
differently. So when more than the limit of the space's live pages would go (``MassDeletionSettings``:
a share, 20 % by default, or a number of pages) the deletions are held back and the reasons shown
(counts and a sample of the pages); the user confirms them (``confirm_mass_deletion``) or fixes the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from confluence_assets.settings import MassDeletionSettings

SAMPLE_SIZE = 20  # pages named in the check's result


@dataclass(frozen=True)
class HeldBackDeletion:
    """Deletions a reconciliation did not carry out: how many, of how many live pages, why, a sample."""

    would_delete: int
    live_pages: int
    limit: str
    sample: list[tuple[str, str]]  # (page id, title)

    @property
    def percent(self) -> float:
        return 100.0 * self.would_delete / self.live_pages if self.live_pages else 100.0

    def describe(self) -> str:
        return (
            f"would delete {self.would_delete} of {self.live_pages} live pages ({self.percent:.0f} %, limit "
            f"{self.limit}): nothing deleted. If the pages are really gone, run again with "
            "confirm_mass_deletion: true; if the service account lost access to them, restore it"
        )


def limit_text(limit: MassDeletionSettings) -> str:
    return f"{limit.pages} pages" if limit.pages is not None else f"{limit.percent:g} %"


def exceeds(limit: MassDeletionSettings, would_delete: int, live_pages: int) -> bool:
    """Whether deleting ``would_delete`` of ``live_pages`` stored live pages needs a confirmation."""
    if limit.pages is not None:
        return would_delete > limit.pages
    if limit.percent is None or would_delete <= limit.min_pages:
        return False
    return would_delete > live_pages * limit.percent / 100.0


def hold_back(
    conn: psycopg.Connection,
    source_id: str,
    gone: Sequence[str],
    live_pages: int,
    limit: MassDeletionSettings | None,
    confirmed: bool,
) -> HeldBackDeletion | None:
    """The deletions held back (None: go ahead): ``gone`` of the space's ``live_pages`` exceed ``limit``
    and the user has not confirmed them."""
    if limit is None or confirmed or not exceeds(limit, len(gone), live_pages):
        return None
    sample = conn.execute(
        "SELECT page_id, title FROM confluence_pages WHERE source_id = %s AND page_id = ANY(%s) "
        "ORDER BY page_id LIMIT %s",
        (source_id, list(gone), SAMPLE_SIZE),
    ).fetchall()
    return HeldBackDeletion(len(gone), live_pages, limit_text(limit), [(str(p), str(t)) for p, t in sample])
