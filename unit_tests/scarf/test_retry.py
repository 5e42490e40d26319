"""The retry policy computes waits; it never sleeps, so these tests need no clock."""

import email.utils

import pytest

from destination_scarf.scarf.retry import RetryPolicy, parse_retry_after


def test_backoff_grows_exponentially_up_to_the_cap_with_full_jitter():
    policy = RetryPolicy(backoff_initial_seconds=1, backoff_factor=2, backoff_max_seconds=10)
    top = lambda: 1.0  # noqa: E731  (the jitter draw at its maximum shows the ceiling)
    assert [policy.backoff(n, rand=top) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.backoff(3, rand=lambda: 0.25) == 1.0
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0


def test_no_wait_past_the_last_attempt():
    policy = RetryPolicy(max_attempts=3)
    assert policy.next_wait(attempt=2, elapsed=0, rand=lambda: 0.5) is not None
    assert policy.next_wait(attempt=3, elapsed=0, rand=lambda: 0.5) is None


def test_retry_after_is_honoured_instead_of_backoff_and_capped():
    policy = RetryPolicy(retry_after_max_seconds=60)
    assert policy.next_wait(attempt=1, elapsed=0, retry_after=7, rand=lambda: 1.0) == 7
    assert policy.next_wait(attempt=1, elapsed=0, retry_after=3600, rand=lambda: 1.0) == 60


def test_the_total_budget_stops_retries_whose_wait_would_cross_it():
    policy = RetryPolicy(max_attempts=100, max_total_seconds=10)
    assert policy.next_wait(attempt=1, elapsed=9, retry_after=0.5) == 0.5
    assert policy.next_wait(attempt=1, elapsed=9, retry_after=2) is None


def test_invalid_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_initial_seconds=-1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("5", 5.0), (" 0 ", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_uses_the_given_clock():
    header = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(header, now=lambda: 1_000_000) == pytest.approx(30)
    assert parse_retry_after(header, now=lambda: 1_000_100) == 0.0


# --- budgets that ride out outages ---------------------------------------------------------------------


def _tries_through(policy: RetryPolicy, outage_seconds: float, *, attempt_seconds: float = 1.0) -> bool:
    """Simulate calls that fail for `outage_seconds` (each attempt taking `attempt_seconds`): True if a retry
    lands after the outage, that is, the call would succeed."""
    elapsed, attempt = 0.0, 0
    while True:
        attempt += 1
        elapsed += attempt_seconds
        if elapsed > outage_seconds:
            return True
        wait = policy.next_wait(attempt=attempt, elapsed=elapsed, rand=lambda: 1.0)
        if wait is None:
            return False
        elapsed += wait


@pytest.mark.parametrize("outage", [5, 30, 120])
def test_the_default_upload_budget_rides_out_outages_of_minutes(outage):
    # What the import job gives an upload: the client's backoff with upload_retry_minutes (default 15).
    policy = RetryPolicy().with_budget(15 * 60)
    assert policy.max_attempts is None
    assert _tries_through(policy, outage)
    assert not _tries_through(policy, 16 * 60)  # bounded: past the budget it gives up


def test_the_default_per_call_policy_rides_out_half_a_minute():
    assert _tries_through(RetryPolicy(), 30)


def test_a_retry_needs_time_for_its_attempt_within_the_remaining_deadline():
    policy = RetryPolicy(max_attempts=None, max_total_seconds=100, min_attempt_seconds=0.5)
    assert policy.next_wait(attempt=1, elapsed=0, retry_after=1.0, remaining=2.0) == 1.0
    assert policy.next_wait(attempt=1, elapsed=0, retry_after=1.0, remaining=1.2) is None  # no time left to try
    assert policy.next_wait(attempt=1, elapsed=99, retry_after=1.0) is None


def test_backoff_never_overflows_on_very_long_outages():
    assert RetryPolicy(backoff_max_seconds=30).backoff(10_000, rand=lambda: 1.0) == 30


def test_an_infinite_retry_after_is_ignored():
    assert parse_retry_after("inf") is None and parse_retry_after("nan") is None


def test_one_formula_serves_slot_waits_and_retries():
    from destination_scarf.scarf.retry import SlotWaitPolicy, backoff_delay

    assert SlotWaitPolicy(initial_seconds=2).wait(3, rand=lambda: 1.0) == backoff_delay(
        3, initial=2, factor=2, cap=60, rand=lambda: 1.0)
    assert RetryPolicy(backoff_initial_seconds=1).backoff(3, rand=lambda: 0.5) == backoff_delay(
        3, initial=1, factor=2, cap=30, rand=lambda: 0.5)
