"""Training-plan source as HTML: highlighted Python, and a diff between two versions.

Pygments escapes everything it is given, so the HTML it returns is safe to insert into a
page as it is (the templates mark it ``Markup``); nothing else in the GUI bypasses
autoescaping.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

CSS_CLASS = "source"


def _formatter(*, line_numbers: bool) -> HtmlFormatter:
    return HtmlFormatter(cssclass=CSS_CLASS, linenos="table" if line_numbers else False)


def highlighted_python(source: str) -> Markup:
    return Markup(highlight(source, PythonLexer(), _formatter(line_numbers=True)))  # noqa: S704


@dataclass(frozen=True)
class SourceDiff:
    html: Markup
    added: int
    removed: int

    @property
    def identical(self) -> bool:
        return self.added == 0 and self.removed == 0


def source_diff(old: str, new: str, old_label: str, new_label: str) -> SourceDiff:
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
            n=3,
        )
    )
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    html = Markup(highlight(text, DiffLexer(), _formatter(line_numbers=False)))  # noqa: S704
    return SourceDiff(html, added, removed)


def stylesheet() -> str:
    """The CSS for highlighted code, served as ``/static/source.css``."""
    return str(_formatter(line_numbers=False).get_style_defs(f".{CSS_CLASS}"))
