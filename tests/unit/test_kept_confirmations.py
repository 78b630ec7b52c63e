"""``KeptConfirmations``: confirmations go out in order, off the caller's thread."""

from __future__ import annotations

import threading

import pytest

from fedward.transport.kept_confirmations import KeptConfirmations


def test_confirmations_go_out_in_order_on_another_thread_and_close_waits_for_them() -> None:
    sent: list[tuple[str, str]] = []
    confirmations = KeptConfirmations(
        lambda blob: sent.append((blob, threading.current_thread().name))
    )
    for blob in ("a", "b", "c"):
        confirmations.send(blob)
    confirmations.close(wait_s=5)
    assert [blob for blob, _ in sent] == ["a", "b", "c"]
    assert {name for _, name in sent} == {"fedward-kept"}


def test_a_failed_confirmation_is_logged_and_the_next_ones_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[str] = []

    def deliver(blob: str) -> None:
        if blob == "bad":
            raise RuntimeError("server said no")
        sent.append(blob)

    confirmations = KeptConfirmations(deliver)
    for blob in ("bad", "good"):
        confirmations.send(blob)
    confirmations.close(wait_s=5)
    assert sent == ["good"]
    assert "confirming blob bad failed" in caplog.text


def test_close_gives_up_on_a_stuck_server_and_a_later_send_starts_again() -> None:
    release = threading.Event()
    sent: list[str] = []

    def deliver(blob: str) -> None:
        if blob == "stuck":
            release.wait(10)
        sent.append(blob)

    confirmations = KeptConfirmations(deliver)
    confirmations.send("stuck")
    confirmations.close(wait_s=0.05)  # returns although the first one hangs
    assert sent == []
    confirmations.send("later")
    release.set()
    confirmations.close(wait_s=5)
    assert "later" in sent
