"""Plain-text tables for the command lines (``fedward node``, ``fedward vpn``)."""

from __future__ import annotations

from collections.abc import Sequence


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, rule: bool = False
) -> str:
    """Columns two spaces apart, padded to their widest cell, trailing spaces trimmed.

    Whitespace inside a cell (newlines included) becomes one space, so that a row stays
    one line. ``rule`` draws a dashed line under the header (the seed's
    ``configure_peer list`` layout).
    """
    cells = [[" ".join(str(v).split()) for v in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    header, *body = cells
    ruled = [line(["-" * w for w in widths])] if rule else []
    return "\n".join([line(header), *ruled, *map(line, body)])
