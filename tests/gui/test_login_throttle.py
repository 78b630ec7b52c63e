"""Growing sign-in delays per (user, address) and per address, with a fake clock;
attempts reserved before their check; a bounded table."""

from __future__ import annotations

from fedward.gui.login_throttle import INVALID_NAME, LoginThrottle, Permit, ThrottlePolicy


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


def begin(throttle: LoginThrottle, username: str, address: str) -> Permit:
    permit = throttle.try_begin(username, address)
    assert isinstance(permit, Permit), f"refused for {permit} s"
    return permit


def fail(throttle: LoginThrottle, username: str, address: str) -> float:
    return begin(throttle, username, address).failed()


def succeed(throttle: LoginThrottle, username: str, address: str) -> None:
    begin(throttle, username, address).succeeded()


def test_free_failures_then_doubling_delays_up_to_the_cap() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(3, 100, 10, 60, 3600), clock=clock)
    assert [fail(throttle, "alice", "10.0.0.1") for _ in range(3)] == [0, 0, 0]
    waits = []
    for _ in range(4):
        waits.append(fail(throttle, "alice", "10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [10, 20, 40, 60]


def test_a_locked_pair_waits_and_then_may_try_again() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(4):
        fail(throttle, "alice", "10.0.0.1")
    assert throttle.wait_s("alice", "10.0.0.1") == 10
    clock.now += 10
    assert throttle.wait_s("alice", "10.0.0.1") == 0


def test_three_failures_from_one_address_do_not_lock_the_user_out_from_another() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for _ in range(4):
        fail(throttle, "alice", "203.0.113.7")  # someone guessing alice's password
    assert throttle.wait_s("alice", "203.0.113.7") > 0
    assert throttle.wait_s("alice", "10.0.0.1") == 0  # alice at her own desk


def test_many_addresses_cannot_lock_a_user_out_either() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for host in range(50):
        for _ in range(4):
            fail(throttle, "alice", f"198.51.100.{host}")
    assert throttle.wait_s("alice", "10.0.0.1") == 0


def test_one_address_trying_many_names_is_slowed_down() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
        fail(throttle, name, "10.0.0.9")
    assert throttle.wait_s("bob", "10.0.0.9") > 0  # the address guessed too often
    assert throttle.wait_s("bob", "10.0.0.1") == 0


def test_success_clears_its_pair_but_not_the_guessing_address() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for _ in range(3):
        fail(throttle, "bob", "10.0.0.1")
    succeed(throttle, "bob", "10.0.0.1")
    assert [fail(throttle, "bob", "10.0.0.1") for _ in range(2)] == [0, 0]  # pair cleared
    succeed(throttle, "bob", "10.0.0.1")
    assert fail(throttle, "carol", "10.0.0.1") > 0  # the 6th failure from this address


def test_old_failures_are_forgotten() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(3):
        fail(throttle, "alice", "10.0.0.1")
    clock.now += 3601
    assert fail(throttle, "alice", "10.0.0.1") == 0


def test_user_names_are_throttled_case_insensitively() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for name in ("Alice", "ALICE", "alice", "aLiCe"):
        fail(throttle, name, "10.0.0.1")
    assert throttle.wait_s("alice", "10.0.0.1") > 0


def test_parallel_attempts_get_the_checks_of_sequential_ones_and_no_more() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    permits = []
    while isinstance(begun := throttle.try_begin("alice", "10.0.0.1"), Permit):
        permits.append(begun)
    assert len(permits) == 4  # 3 free failures, and the 4th attempt that starts the delay
    assert begun > 0  # the 5th waits while the others are checked
    waits = [permit.failed() for permit in permits]
    assert waits[-1] == 10
    assert throttle.try_begin("alice", "10.0.0.1") == 10


def test_beyond_the_free_failures_attempts_run_one_at_a_time() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(POLICY, clock=clock)
    for _ in range(4):
        fail(throttle, "alice", "10.0.0.1")
    clock.now += 10
    first = begin(throttle, "alice", "10.0.0.1")
    assert not isinstance(throttle.try_begin("alice", "10.0.0.1"), Permit)
    assert first.failed() == 20


def test_an_attempt_ended_without_a_verdict_counts_as_a_failure() -> None:
    throttle = LoginThrottle(ThrottlePolicy(0, 100, 10, 60, 3600), clock=FakeClock())
    try:
        with begin(throttle, "alice", "10.0.0.1"):
            raise RuntimeError("the account database went away")
    except RuntimeError:
        pass
    assert throttle.wait_s("alice", "10.0.0.1") == 10


def test_a_withdrawn_attempt_counts_nothing_and_keeps_nothing() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    with begin(throttle, "alice", "10.0.0.1") as permit:
        permit.withdrawn()
    assert len(throttle) == 0


def test_names_that_cannot_be_accounts_share_one_count() -> None:
    throttle = LoginThrottle(POLICY, clock=FakeClock())
    for n in range(4):
        fail(throttle, f"{n}-" + "a" * 100_000, "10.0.0.1")
    assert len(throttle) == 2  # ("pair", INVALID_NAME, address) and the address
    assert throttle.wait_s(INVALID_NAME, "10.0.0.1") == 10
    assert throttle.wait_s("Not A Name", "10.0.0.1") == 10
    assert throttle.wait_s("alice", "10.0.0.1") == 0


def test_the_table_keeps_at_most_max_counts_evicting_the_oldest_unlocked_first() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottlePolicy(3, 1, 10, 60, 3600, max_counts=100), clock=clock)
    for _ in range(2):  # the first address is locked: its count must outlive newer ones
        fail(throttle, "alice", "10.0.0.1")
    for host in range(500):
        clock.now += 0.001
        fail(throttle, "bob", f"10.1.{host // 256}.{host % 256}")
        assert len(throttle) <= 100
    assert throttle.wait_s("carol", "10.0.0.1") > 0
    assert throttle.wait_s("bob", "10.1.1.243") == 0  # recent, kept, one free failure used
