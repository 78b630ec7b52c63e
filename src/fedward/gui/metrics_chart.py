"""Job metrics as inline SVG, drawn on the server (no script, no chart library).

Two pictures: ``bar_chart`` for one job's final metrics, and ``line_chart`` for how each
metric moved across the rounds of the job's experiment on this node. Numbers and names
are escaped into the SVG text; the result is safe to insert into a page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
ROW_HEIGHT = 26
# Labels get the room their text needs (12 px font: about 7 px a character), up to a
# limit past which a name is cut with an ellipsis, its full text in the tooltip.
CHAR_PX = 7.2
MIN_LABEL_PX = 60
MAX_LABEL_PX = 340
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[int, float]]  # (round index, value)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def label_px(names: Sequence[str]) -> int:
    """Room for the longest of ``names``, within ``MIN_LABEL_PX``..``MAX_LABEL_PX``."""
    longest = max((len(name) for name in names), default=0)
    return int(min(MAX_LABEL_PX, max(MIN_LABEL_PX, longest * CHAR_PX + 12)))


def fitted(name: str, room_px: int) -> str:
    """``name`` cut to fit ``room_px``, with an ellipsis when cut."""
    fits = max(4, int(room_px / CHAR_PX))
    return name if len(name) <= fits else name[: fits - 1] + "…"


def _label(name: str, room_px: int, x: float, y: float, anchor: str = "start") -> str:
    shown = fitted(name, room_px)
    tooltip = f"<title>{escape(name)}</title>" if shown != name else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{tooltip}{escape(shown)}</text>'


def bar_chart(metrics: Mapping[str, float], title: str) -> Markup:
    items = [(name, value) for name, value in sorted(metrics.items()) if math.isfinite(value)]
    if not items:
        return Markup("")
    label_width = label_px([name for name, _ in items])
    width = max(WIDTH, label_width + 300)
    height = ROW_HEIGHT * len(items) + 20
    largest = max(abs(value) for _, value in items) or 1.0
    span = width - label_width - 90
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for row, (name, value) in enumerate(items):
        y = 10 + row * ROW_HEIGHT
        length = max(1.0, span * abs(value) / largest)
        color = PALETTE[row % len(PALETTE)]
        parts.append(
            _label(name, label_width - 8, label_width - 8, y + 15, "end")
            + f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{ROW_HEIGHT - 8}"'
            f' fill="{color}"><title>{escape(name)} = {_number(value)}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{_number(value)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from escaped pieces


def line_chart(series: Sequence[Series], title: str) -> Markup:
    points = [(r, v) for s in series for r, v in s.points if math.isfinite(v)]
    if not points:
        return Markup("")
    height, left, top, bottom = 300, 60, 16, 36
    right = label_px([one.name for one in series]) + 30  # the legend: swatch and name
    width = WIDTH + max(0, right - 160)
    rounds = [r for r, _ in points]
    values = [v for _, v in points]
    low_round, high_round = min(rounds), max(rounds)
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    round_span = max(high_round - low_round, 1)

    def x(round_index: int) -> float:
        return left + (width - left - right) * (round_index - low_round) / round_span

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}"'
        ' stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{y(high) + 4:.1f}" text-anchor="end">{_number(high)}</text>',
        f'<text x="{left - 6}" y="{y(low) + 4:.1f}" text-anchor="end">{_number(low)}</text>',
        f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        "round</text>",
    ]
    for round_index in sorted(set(rounds)):
        parts.append(
            f'<text x="{x(round_index):.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{round_index}</text>"
        )
    for number, one in enumerate(series):
        color = PALETTE[number % len(PALETTE)]
        finite = sorted((r, v) for r, v in one.points if math.isfinite(v))
        if not finite:
            continue
        path = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in finite)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for r, v in finite:
            parts.append(
                f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(one.name)} round {r}: {_number(v)}</title></circle>"
            )
        legend_y = top + 14 + 18 * number
        parts.append(
            f'<rect x="{width - right + 12}" y="{legend_y - 9}" width="10" height="10"'
            f' fill="{color}"/>' + _label(one.name, right - 26, width - right + 26, legend_y)
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from escaped pieces
