"""Tables as Markdown can hold them: every row the same width (rowspan/colspan expanded), tables inside
cells flattened to lines, code blocks moved below the table. A part of ``StoragePreprocessor``."""

from __future__ import annotations

import copy
from collections.abc import Callable

from bs4 import BeautifulSoup, NavigableString, Tag

from .xhtml import int_attr, text_of


class TableRewrites:
    """The table passes of the storage rewrite; the class using it provides ``soup`` and ``_new``."""

    soup: BeautifulSoup
    _new: Callable[..., Tag]  # a new element (name, text, attributes) of ``soup``

    def _tables(self) -> None:
        # Innermost first, so an outer table sees its inner tables already flattened.
        for table in reversed(self.soup.find_all("table")):
            if table.parent is None:
                continue
            if any(p.name in ("td", "th") for p in table.parents):
                self._flatten_inner_table(table)
            else:
                self._normalise_table(table)

    def _rows(self, table: Tag) -> list[Tag]:
        rows: list[Tag] = []
        for child in table.children:
            if not isinstance(child, Tag):
                continue
            if child.name == "tr":
                rows.append(child)
            elif child.name in ("thead", "tbody", "tfoot"):
                rows.extend(c for c in child.children if isinstance(c, Tag) and c.name == "tr")
        return rows

    def _flatten_inner_table(self, table: Tag) -> None:
        """A table inside a cell becomes one line per row ("a; b; c"): Markdown has no nested tables."""
        block = self._new("div")
        for row in self._rows(table):
            cells = [c for c in row.children if isinstance(c, Tag) and c.name in ("td", "th")]
            codes = [pre.extract() for c in cells for pre in c.find_all("pre")]  # code stays code
            line = "; ".join(t for t in (text_of(c) for c in cells) if t)
            if line:
                block.append(self._new("p", line))
            for pre in codes:
                block.append(pre)
        table.replace_with(block)

    def _normalise_table(self, table: Tag) -> None:
        """Give every row the same columns: a rowspan cell is repeated in each row it covers, a colspan
        cell is followed by empty cells.

        markdownify handles colspan but not rowspan, which shifts every later cell of the spanned rows.
        A row-spanning cell is usually a group label: repeated, it stays with every row it labels, also
        in a chunk that holds only later rows. A column-spanning cell is not repeated: it never leaves
        its row, and copies of it would read as several values. Code blocks cannot live in a Markdown
        table cell, so they move below the table, with a pointer.
        """
        rows = self._rows(table)
        # column -> (rows still covered by a rowspan from above, the cell to repeat there; None: empty)
        pending: dict[int, tuple[int, Tag | None]] = {}
        widths: list[int] = []
        for row in rows:
            cells = [c for c in row.children if isinstance(c, Tag) and c.name in ("td", "th")]
            col = 0
            out: list[Tag] = []
            for cell in cells:
                while pending.get(col, (0, None))[0] > 0:
                    out.append(self._covered(pending, col))
                    col += 1
                span = int_attr(cell, "colspan")
                down = int_attr(cell, "rowspan")
                if "colspan" in cell.attrs:
                    del cell["colspan"]
                if "rowspan" in cell.attrs:
                    del cell["rowspan"]
                out.append(cell)
                for extra in range(span):
                    if down > 1:
                        pending[col + extra] = (down - 1, None if extra else cell)
                    if extra:
                        out.append(self._new(cell.name))
                col += span
            while any(left > 0 for c, (left, _) in pending.items() if c >= col):
                out.append(self._covered(pending, col) if pending.get(col, (0, None))[0] > 0 else self._new("td"))
                col += 1
            if len(out) != len(cells):  # cells were added: equal lengths mean the same cells
                for cell in cells:
                    cell.extract()
                for cell in out:
                    row.append(cell)
            widths.append(len(out))
        if rows:
            rows[0]["data-first-row"] = "1"  # the Markdown header row (see markdown.convert_tr)
        width = max(widths, default=0)
        for row, w in zip(rows, widths, strict=True):
            for _ in range(width - w):
                row.append(self._new("td"))
        codes = table.find_all("pre")
        for n, pre in enumerate(codes, 1):
            pre.replace_with(NavigableString(f"(code block {n} below the table)"))
        anchor: Tag = table
        for pre in codes:
            anchor.insert_after(pre)
            anchor = pre

    def _covered(self, pending: dict[int, tuple[int, Tag | None]], col: int) -> Tag:
        """The cell for a column a rowspan from above covers: a copy of the spanning cell (its code
        blocks left out: they appear once, below the table), or an empty cell under a colspan."""
        left, source = pending[col]
        pending[col] = (left - 1, source)
        if source is None:
            return self._new("td")
        repeated = copy.copy(source)  # a deep copy
        for pre in repeated.find_all("pre"):
            pre.decompose()
        return repeated
