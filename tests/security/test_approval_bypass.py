"""Class 1 and 5: only approved bytes run, and a plan is not read whole before its size
is checked. The attacker holds an ordinary researcher account; the node approved
``ResultPlan`` and ships default plans that every node approves automatically."""

from __future__ import annotations

import ast

import pytest

from fedward.core.messages import TrainReply
from fedward.core.plan_digest import plan_digest
from fedward.learning.plan_source import plan_source
from fedward.node.default_plans import default_plans
from tests.security import attack_plans
from tests.security.conftest import AttackedNode

HONEST = {"attack": "none"}
# Code hidden in a comment: a PEP 263 codec turns "\u000a" or "+AAo-" into a line break.
HIDDEN = "raise SystemExit('hidden code ran')"


def approved_source() -> str:
    return plan_source(attack_plans.ResultPlan)


def with_hidden_code(source: str, codec: str, line_break: str) -> bytes:
    text = f"# -*- coding: {codec} -*-\n{source}\n# {line_break}{HIDDEN}\n"
    return text.encode("utf-8")


@pytest.mark.parametrize(
    ("codec", "line_break"),
    [
        ("raw_unicode_escape", "\\u000a"),
        ("unicode_escape", "\\n"),
        ("utf-7", "+AAo-"),
        ("latin-1", ""),
    ],
)
def test_a_declared_source_encoding_is_refused(
    node: AttackedNode, codec: str, line_break: str
) -> None:
    forged = with_hidden_code(approved_source(), codec, line_break)
    # The forgery parses to the approved tree (the old digest matched: that was the hole).
    assert ast.unparse(ast.parse(forged.decode())) == ast.unparse(ast.parse(approved_source()))
    _, replies = node.researcher.send_source(forged, "ResultPlan", HONEST)
    reply = node.refused(replies.get(timeout=90), "plan")
    assert "encoding" in reply.message


def test_a_shipped_default_plan_with_a_coding_line_is_refused(node: AttackedNode) -> None:
    _name, source, class_name = default_plans()[0]
    forged = with_hidden_code(source, "raw_unicode_escape", "\\u000a")
    _, replies = node.researcher.send_source(forged, class_name, {})
    node.refused(replies.get(timeout=90), "plan")


def test_a_byte_order_mark_is_refused(node: AttackedNode) -> None:
    forged = b"\xef\xbb\xbf" + approved_source().encode()
    _, replies = node.researcher.send_source(forged, "ResultPlan", HONEST)
    assert "byte-order mark" in node.refused(replies.get(timeout=90), "plan").message


def test_bytes_that_are_not_utf8_are_refused(node: AttackedNode) -> None:
    forged = approved_source().encode() + b"\n# caf\xe9\n"
    _, replies = node.researcher.send_source(forged, "ResultPlan", HONEST)
    assert "not UTF-8" in node.refused(replies.get(timeout=90), "plan").message


def test_code_hidden_in_a_comment_never_runs(node: AttackedNode) -> None:
    # Without a coding line the text is accepted (same digest) — and the canonical text,
    # which has no comments, is what runs: the job succeeds.
    text = f"{approved_source()}\n# \\u000a{HIDDEN}\n".encode()
    _, replies = node.researcher.send_source(text, "ResultPlan", HONEST)
    assert isinstance(replies.get(timeout=90), TrainReply)


def test_a_docstring_that_looks_like_a_coding_line_runs_as_approved(node: AttackedNode) -> None:
    source = approved_source().replace(
        '"""Returns a result', '"""\n# -*- coding: utf-7 -*-\nReturns a result', 1
    )
    reply = node.attack_source(source.encode(), "ResultPlan", HONEST)
    assert reply.code == "plan_not_approved"  # a changed docstring is another plan


def test_a_request_claiming_an_approved_digest_for_other_bytes_is_refused(
    node: AttackedNode,
) -> None:
    changed = approved_source().replace("count = 1", "count = 2")
    _, replies = node.researcher.send_source(
        changed.encode(), "ResultPlan", HONEST, plan_digest=plan_digest(approved_source())
    )
    node.refused(replies.get(timeout=90), "plan_not_approved")


def test_a_plan_cannot_rewrite_the_file_it_was_loaded_from(node: AttackedNode) -> None:
    assert node.escaped("tamper_plan") == 0.0
    assert node.escaped("tamper_plan") == 0.0  # the next round loads the approved text


def vm_peak_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):  # noqa: SIM115
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_an_oversized_plan_is_refused_before_it_is_read_whole(node: AttackedNode) -> None:
    before = vm_peak_kib(node.pid)
    huge = approved_source().encode() + b"\n#" + b"x" * (64 << 20)
    _, replies = node.researcher.send_source(huge, "ResultPlan", HONEST)
    assert "larger" in node.refused(replies.get(timeout=120), "plan").message
    assert vm_peak_kib(node.pid) - before < 32 << 10  # far less than the 64 MiB sent
