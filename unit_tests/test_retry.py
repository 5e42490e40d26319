"""The retry policy computes waits; it never sleeps, so these tests need no clock."""

import email.utils

import pytest

from destination_scarf.retry import RetryPolicy, parse_retry_after


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
