"""FairInbox: topics served in turn, each with a bounded backlog."""

from __future__ import annotations

import logging
import threading

import pytest

from fedward.transport.fair_inbox import FairInbox


def drain(inbox: FairInbox, count: int) -> list[tuple[str, bytes]]:
    taken = []
    for _ in range(count):
        item = inbox.get()
        assert item is not None
        taken.append(item)
    return taken


def test_topics_take_turns_and_each_keeps_its_order() -> None:
    inbox = FairInbox()
    for index in range(3):
        inbox.put("flood", b"f%d" % index)
    inbox.put("honest", b"h0")
    inbox.put("honest", b"h1")
    assert drain(inbox, 5) == [
        ("flood", b"f0"),
        ("honest", b"h0"),
        ("flood", b"f1"),
        ("honest", b"h1"),
        ("flood", b"f2"),
    ]


def test_messages_that_do_not_wait_come_in_arrival_order() -> None:
    inbox = FairInbox()
    for topic in ("b", "a", "c"):
        inbox.put(topic, topic.encode())
        assert inbox.get() == (topic, topic.encode())


def test_a_full_topic_drops_its_own_messages_only(caplog: pytest.LogCaptureFixture) -> None:
    inbox = FairInbox(max_messages_per_topic=2, max_bytes_per_topic=1 << 20)
    with caplog.at_level(logging.WARNING):
        assert inbox.put("flood", b"1") and inbox.put("flood", b"2")
        assert not inbox.put("flood", b"3")
        assert not inbox.put("flood", b"4")
    assert inbox.put("honest", b"h")
    assert inbox.dropped("flood") == 2 and inbox.dropped("honest") == 0
    assert caplog.text.count("dropping messages on flood") == 1  # not one line per drop
    assert drain(inbox, 3) == [("flood", b"1"), ("honest", b"h"), ("flood", b"2")]
    assert inbox.put("flood", b"5")  # room again once read


def test_the_byte_budget_bounds_a_topic_of_large_messages() -> None:
    inbox = FairInbox(max_messages_per_topic=100, max_bytes_per_topic=10)
    assert inbox.put("big", b"x" * 6)
    assert not inbox.put("big", b"y" * 6)
    assert inbox.put("big", b"z" * 4)
    assert drain(inbox, 2) == [("big", b"x" * 6), ("big", b"z" * 4)]
    assert inbox.put("big", b"w" * 10)


def test_close_hands_out_what_waits_then_none_and_wakes_a_waiting_reader() -> None:
    inbox = FairInbox()
    inbox.put("t", b"last")
    inbox.close()
    assert inbox.get() == ("t", b"last")
    assert inbox.get() is None

    waiting = FairInbox()
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(waiting.get()))
    reader.start()
    waiting.close()
    reader.join(timeout=5)
    assert got == [None]
