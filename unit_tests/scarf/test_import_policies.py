"""Polling and slot-wait policies compute waits; the pipeline does the sleeping."""

import pytest

from destination_scarf.scarf.polling import PollPolicy
from destination_scarf.scarf.retry import SlotWaitPolicy


def test_polls_start_quick_grow_with_the_imports_age_and_stop_at_the_cap():
    policy = PollPolicy(initial_seconds=0.1, age_fraction=0.08, max_seconds=10)
    assert policy.interval(0) == 0.1
    assert policy.interval(50) == pytest.approx(4.0)
    assert policy.interval(3600) == 10


def test_reported_progress_brings_the_next_poll_forward_to_the_expected_end():
    policy = PollPolicy(initial_seconds=0.1, age_fraction=0.08, max_seconds=10)
    # 90% done after 90 s: about 10 s to go, later than the age-based 7.2 s, which stays.
    assert policy.interval(90, done_fraction=0.9) == pytest.approx(7.2)
    # 99% done after 99 s: about 1 s to go, so poll then instead of in 7.9 s.
    assert policy.interval(99, done_fraction=0.99) == pytest.approx(1.0)
    # never sooner than the initial interval, and unknown or complete progress changes nothing
    assert policy.interval(10, done_fraction=0.9999) == 0.1
    assert policy.interval(50, done_fraction=None) == policy.interval(50, done_fraction=0.0) == pytest.approx(4.0)
    assert policy.interval(50, done_fraction=1.0) == pytest.approx(4.0)


def test_slot_waits_grow_with_jitter_between_half_and_all_of_the_ceiling():
    policy = SlotWaitPolicy(initial_seconds=2, factor=2, max_seconds=60)
    assert policy.wait(1, rand=lambda: 0.0) == 1.0
    assert policy.wait(1, rand=lambda: 1.0) == 2.0
    assert policy.wait(3, rand=lambda: 1.0) == 8.0
    assert policy.wait(10, rand=lambda: 1.0) == 60.0
