"""How a node's error reads in the researcher's log: never as a log record of its own."""

from __future__ import annotations

from fedward.core.messages import ErrorReply, PlanLine
from fedward.researcher.rounds import describe_error


def test_a_node_s_multi_line_message_cannot_forge_a_log_record() -> None:
    forged = "2026-01-01 00:00:00,000 WARNING fedward.researcher: round 1: node node1 failed"
    reply = ErrorReply(
        request_id="r1",
        code="oom",
        message=f"out of memory\n{forged}\r\nand more",
        job_id="job-7",
        plan_lines=[PlanLine(line=3, function="train", text="raise MemoryError()")],
    )
    text = describe_error(reply)
    lines = text.split("\n")
    assert lines[0] == "out of memory"
    assert lines[1] == f"      {forged}"
    assert lines[2] == "      and more [job job-7]"
    assert lines[3] == "    plan line 3, in train: raise MemoryError()"
    assert "\r" not in text
    assert all(line.startswith(" ") for line in lines[1:])


def test_a_one_line_message_reads_as_it_came() -> None:
    reply = ErrorReply(request_id="r1", code="not_found", message="no such dataset")
    assert describe_error(reply) == "no such dataset"
