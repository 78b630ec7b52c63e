"""Highlighted sources, diffs and metric charts are safe HTML/SVG."""

from __future__ import annotations

from fedward.gui.metrics_chart import Series, bar_chart, line_chart
from fedward.gui.source_view import highlighted_python, source_diff, stylesheet


def test_source_is_highlighted_and_escaped() -> None:
    html = str(highlighted_python('x = "<script>alert(1)</script>"\n'))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'class="source' in html
    assert ".source" in stylesheet()


def test_diff_counts_added_and_removed_lines() -> None:
    old = "class P:\n    a = 1\n    b = 2\n"
    new = "class P:\n    a = 1\n    b = 3\n    c = 4\n"
    diff = source_diff(old, new, "v1", "v2")
    assert (diff.added, diff.removed) == (2, 1)
    assert "b = 3" in str(diff.html)
    assert source_diff(old, old, "v1", "v1").identical


def test_charts_escape_metric_names_and_skip_non_finite_values() -> None:
    svg = str(bar_chart({"<b>acc</b>": 0.9, "nan": float("nan")}, "job"))
    assert "<b>" not in svg and "&lt;b&gt;acc&lt;/b&gt;" in svg
    assert svg.count("<rect") == 1
    assert str(bar_chart({}, "empty")) == ""
    lines = str(line_chart([Series("loss", [(0, 1.0), (1, 0.5), (2, 0.25)])], "rounds"))
    assert lines.count("<circle") == 3 and "<polyline" in lines
