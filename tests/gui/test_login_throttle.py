"""Growing sign-in delays per (user, address) and per address, with a fake clock."""

from __future__ import annotations

from fedward.gui.login_throttle import LoginThrottle, ThrottlePolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


POLICY = ThrottlePolicy(
    free_failures_per_user_and_address=3,
    free_failures_per_address=5,
    base_delay_s=10,
    max_delay_s=60,
    forget_after_s=3600,
)


def test_free_failures_then_doubling_delays_up_to_the_cap() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(3, 100, 10, 60, 3600), clock=clock)
    assert [throttle.failed("alice", "10.0.0.1") for _ in range(3)] == [0, 0, 0]
    waits = []
    for _ in range(4):
        waits.append(throttle.failed("alice", "10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [10, 20, 40, 60]


def test_a_locked_pair_waits_and_then_may_try_again() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait_s("alice", "10.0.0.1") == 10
    clock.now += 10
    assert throttle.wait_s("alice", "10.0.0.1") == 0


def test_three_failures_from_one_address_do_not_lock_the_user_out_from_another() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for _ in range(4):
        throttle.failed("alice", "203.0.113.7")  # someone guessing alice's password
    assert throttle.wait_s("alice", "203.0.113.7") > 0
    assert throttle.wait_s("alice", "10.0.0.1") == 0  # alice at her own desk


def test_many_addresses_cannot_lock_a_user_out_either() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for host in range(50):
        for _ in range(4):
            throttle.failed("alice", f"198.51.100.{host}")
    assert throttle.wait_s("alice", "10.0.0.1") == 0


def test_one_address_trying_many_names_is_slowed_down() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
        throttle.failed(name, "10.0.0.9")
    assert throttle.wait_s("bob", "10.0.0.9") > 0  # the address guessed too often
    assert throttle.wait_s("bob", "10.0.0.1") == 0


def test_success_clears_its_pair_but_not_the_guessing_address() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for _ in range(2):
        throttle.failed("bob", "10.0.0.1")
    throttle.succeeded("bob", "10.0.0.1")
    throttle.failed("bob", "10.0.0.1")
    assert throttle.wait_s("bob", "10.0.0.1") == 0
    for _ in range(3):
        throttle.failed("bob", "10.0.0.1")
    throttle.succeeded("bob", "10.0.0.1")
    assert throttle.wait_s("carol", "10.0.0.1") > 0  # 6 failures from this address


def test_old_failures_are_forgotten() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(3):
        throttle.failed("alice", "10.0.0.1")
    clock.now += 3601
    assert throttle.failed("alice", "10.0.0.1") == 0


def test_user_names_are_throttled_case_insensitively() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for name in ("Alice", "ALICE", "alice", "aLiCe"):
        throttle.failed(name, "10.0.0.1")
    assert throttle.wait_s("alice", "10.0.0.1") > 0
