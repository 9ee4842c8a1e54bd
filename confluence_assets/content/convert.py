"""``convert_page``: one REST v1 content object -> Markdown, metadata and materialised path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .links import LinkContext, TitleResolver, space_key_from
from .markdown import storage_to_markdown
from .metadata import build_metadata, known_titles, materialised_path, page_url
from .rendered import MacroRenderer, MacroSources
from .types import ConversionError, ConvertedPage


def convert_page(
    page: Mapping[str, Any],
    base_url: str,
    *,
    resolve_title: TitleResolver | None = None,
    users: Mapping[str, str] | None = None,
    macros: MacroSources | None = None,
) -> ConvertedPage:
    """Convert a page; raises ``ConversionError`` only when it cannot be converted at all.

    Macros whose text exists only when rendered come out from ``macros`` (where the sync finds other
    pages: staged, stored), the page's own expansions and its ``body.export_view`` when it has one
    (see content/rendered.py).

    Malformed storage (unclosed tags, stray ``ac:`` elements, undeclared namespaces) converts as far as
    it can; only a missing body or a failure we could not contain raises, naming the page.
    """
    page_id = str(page.get("id") or "") or None
    storage = page.get("body", {}).get("storage") if isinstance(page.get("body"), Mapping) else None
    xhtml = storage.get("value") if isinstance(storage, Mapping) else None
    if not isinstance(xhtml, str):
        raise ConversionError(page_id, "no body.storage.value (fetch the page with expand=body.storage)")
    links = page.get("_links")
    base = base_url or (links.get("base") if isinstance(links, Mapping) else None) or ""
    space_key = space_key_from(page)
    try:
        renderer = MacroRenderer(page, macros, space_key=space_key)
        ctx = LinkContext(
            base_url=base,
            page_id=page_id or "",
            space_key=space_key,
            resolve_title=resolve_title,
            users=users or {},
            known_titles=known_titles(page, space_key),
            macros=renderer,
        )
        markdown, refs = storage_to_markdown(xhtml, ctx)
        markdown = renderer.fill(markdown)
        path = materialised_path(page)
        metadata = build_metadata(page, ctx, markdown, refs, path)
        metadata.update(renderer.metadata())
    except Exception as exc:  # contain anything the parser or converter throws: one typed error per page
        raise ConversionError(page_id, f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    return ConvertedPage(
        markdown=markdown, metadata=metadata, path=path, url=page_url(page, ctx), title=page.get("title") or ""
    )
