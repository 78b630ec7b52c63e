"""Highlighted sources, diffs and metric charts are safe HTML/SVG."""

from __future__ import annotations

from fedward.gui.metrics_chart import Series, bar_chart, line_chart
from fedward.gui.preview_text import preview_facts, table_cell
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


def test_long_metric_names_get_room_and_very_long_ones_are_cut_with_their_full_name_kept() -> None:
    name = "validation_balanced_accuracy_macro"
    svg = str(bar_chart({name: 0.8, "loss": 0.2}, "job"))
    assert f">{name}</text>" in svg  # shown whole, not clipped by a fixed label column
    huge = "x" * 120
    cut = str(bar_chart({huge: 1.0}, "job"))
    assert f"<title>{huge}</title>" in cut and "…" in cut
    legend = str(line_chart([Series(name, [(0, 1.0), (1, 0.5)])], "rounds"))
    assert f">{name}</text>" in legend


def test_preview_values_read_as_words_not_python() -> None:
    facts = dict(
        preview_facts(
            {
                "has_header": True,
                "missing_values": {},
                "classes": ["benign", "malignant"],
                "counts_per_class": {"benign": 3, "malignant": 2},
                "rows": [[1]],
            }
        )
    )
    assert facts == {
        "Has header": "yes",
        "Missing values": "none",
        "Classes": "benign, malignant",
        "Counts per class": "benign: 3, malignant: 2",
    }
    assert table_cell(None) == "" and table_cell(True) == "yes" and table_cell(0.5) == "0.5"
