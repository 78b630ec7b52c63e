"""Properties of plan normalisation, the text a node hashes, shows and runs.

The canonical text is a fixed point; comments, blank lines and indentation width never
change a plan's digest; any bytes are a plan or a ``PlanError``.
"""

from __future__ import annotations

import keyword

from hypothesis import given
from hypothesis import strategies as st

from fedward.core.plan_digest import normalise_source, plan_digest
from tests.fuzz.targets import plan_source

names = st.from_regex(r"\A[a-z_][a-z0-9_]{0,8}\Z").filter(lambda n: not keyword.iskeyword(n))
atoms = st.one_of(
    names,
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=8).map(repr),
)
expressions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "==", "and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.tuples(names, st.lists(inner, max_size=2)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
    ),
    max_leaves=6,
)
statements = st.one_of(
    st.tuples(names, expressions).map(lambda t: f"{t[0]} = {t[1]}"),
    expressions.map(lambda e: f"return {e}"),
    names.map(lambda n: f"import {n}"),
)


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, str]:
    """The same plan twice: plainly, and with comments, blank lines and wider indents."""
    body = draw(st.lists(statements, min_size=1, max_size=5))
    plain = "class Plan:\n    def step(self, x):\n" + "".join(f"        {s}\n" for s in body)
    noisy = ["# a comment\n", "\n", "class Plan:  # the plan\n", "\n", "      def step(self, x):\n"]
    for statement in body:
        noisy.append(f"            {statement}  # {draw(st.text(max_size=10))!r}\n")
        if draw(st.booleans()):
            noisy.append("\n")
    return plain, "".join(noisy)


@given(plans())
def test_comments_blank_lines_and_indentation_never_change_the_digest(
    pair: tuple[str, str],
) -> None:
    plain, noisy = pair
    assert plan_digest(plain) == plan_digest(noisy)
    canonical = normalise_source(noisy)
    assert normalise_source(canonical) == canonical


@given(st.binary(max_size=300))
def test_any_bytes_are_a_plan_or_a_plan_error(data: bytes) -> None:
    plan_source(data)


@given(st.text(max_size=200))
def test_any_text_is_a_plan_or_a_plan_error(text: str) -> None:
    plan_source(text.encode("utf-8", "surrogatepass"))
