"""The state rule, as pure logic: which states may leave, in which order, with which counts.

No threads, no HTTP: Checkpoints is told what happened (records batched or rejected, batches closed
and settled, states received) and decides which states leave.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from destination_scarf.sync.checkpoints import GLOBAL, UNKNOWN_STREAM, Checkpoints

STREAMS = {"a": 0, "b": 1}


def make(stream_count: int = 2) -> Checkpoints:
    return Checkpoints(stream_count=stream_count, find_stream=lambda namespace, name: STREAMS.get(name))


def state(n: int, stream: str | None = "a", **extra: Any) -> dict:
    if stream is None:
        return {"type": "STATE", "state": {"type": "GLOBAL", "global": {}, "id": n, **extra}}
    return {"type": "STATE", "state": {"type": "STREAM", "id": n, **extra,
                                       "stream": {"stream_descriptor": {"name": stream}, "stream_state": {}}}}


def ids(messages: Any) -> list[int]:
    return [m["state"]["id"] for m in messages]


def batch_of(cp: Checkpoints, *streams: int) -> int:
    """Fill the open batch with one record of each stream and close it; returns its id."""
    for stream in streams:
        cp.record_batched(stream)
    return cp.batch_closed()


def test_a_state_waits_for_the_unfinished_batches_of_its_stream_only():
    cp = make()
    batch_of(cp, 0)
    second = batch_of(cp, 1)
    assert cp.state_received(state(1, "b"), input_line=10) == 1
    assert ids(cp.ready()) == []
    cp.batch_settled(second)
    assert ids(cp.ready()) == [1]


def test_states_leave_in_order_even_when_a_later_one_is_ready_first():
    cp = make()
    first = batch_of(cp, 0)
    cp.state_received(state(1, "a"), input_line=5)
    cp.state_received(state(2, "b"), input_line=6)  # depends on nothing
    assert ids(cp.ready()) == []
    cp.batch_settled(first)
    assert ids(cp.ready()) == [1, 2]


def test_a_global_state_waits_for_every_batch():
    cp = make()
    first, second = batch_of(cp, 0), batch_of(cp, 1)
    assert cp.state_received(state(1, None), input_line=5) == GLOBAL
    cp.batch_settled(first)
    assert ids(cp.ready()) == []
    cp.batch_settled(second)
    assert ids(cp.ready()) == [1]


def test_the_open_batch_holds_a_state_only_once_it_has_records_of_its_scope():
    cp = make()
    cp.state_received(state(1, "a"), input_line=1)  # nothing is open yet
    assert ids(cp.ready()) == [1]
    cp.record_batched(1)
    cp.state_received(state(2, "a"), input_line=2)  # the open batch has only stream b
    assert ids(cp.ready()) == [2]
    cp.record_batched(0)
    cp.state_received(state(3, "a"), input_line=3)
    cp.state_received(state(4, None), input_line=4)
    assert ids(cp.ready()) == []
    open_batch = cp.batch_closed()
    assert ids(cp.ready()) == []
    cp.batch_settled(open_batch)
    assert ids(cp.ready()) == [3, 4]


def test_batches_closed_after_a_state_do_not_hold_it():
    cp = make(1)
    cp.state_received(state(1, "a"), input_line=1)
    batch_of(cp, 0)
    assert ids(cp.ready()) == [1]


def test_a_discarded_open_batch_holds_its_states_for_good():
    cp = make(1)
    cp.record_batched(0)
    cp.state_received(state(1, "a"), input_line=2)
    cp.batch_discarded()
    assert ids(cp.ready()) == [] and cp.unfinished_batches == 1


def test_destination_stats_count_since_the_previous_state_of_the_same_scope_in_number_form():
    cp = make()
    for _ in range(2):
        cp.record_batched(0)
    cp.record_rejected(0)
    cp.record_batched(1)
    cp.record_batched(1)
    cp.batch_settled(cp.batch_closed())
    cp.state_received(state(1, "a"), input_line=5)
    for _ in range(4):
        cp.record_batched(0)
    cp.batch_settled(cp.batch_closed())
    cp.state_received(state(2, "a"), input_line=9)
    cp.state_received(state(3, "b"), input_line=10)
    stats = [m["state"]["destinationStats"] for m in cp.ready()]
    assert stats == [
        {"recordCount": 3, "rejectedRecordCount": 1},
        {"recordCount": 4, "rejectedRecordCount": 0},
        {"recordCount": 2, "rejectedRecordCount": 0},
    ]
    assert all(type(value) is float for entry in stats for value in entry.values())  # the protocol's number


def test_record_positions_count_per_stream_batched_or_rejected():
    cp = make()
    assert [cp.record_batched(0), cp.record_rejected(0), cp.record_batched(1), cp.record_batched(0)] == [1, 2, 1, 3]


def test_late_rejections_go_to_the_first_state_of_their_scope_after_the_record():
    cp = make()
    for _ in range(10):
        cp.record_batched(0)
    cp.record_batched(1)
    batch = cp.batch_closed()
    cp.state_received(state(1, "a"), input_line=10)
    cp.state_received(state(2, "b"), input_line=11)
    cp.state_received(state(3, "a"), input_line=20)
    # between states 1 and 3 of stream a; before state 1; after every queued state (counts towards the next)
    cp.batch_settled(batch, late_rejections=[(0, 15), (0, 3), (0, 25)])
    out = {m["state"]["id"]: m["state"]["destinationStats"]["rejectedRecordCount"] for m in cp.ready()}
    assert out == {1: 1, 2: 0, 3: 1}
    cp.state_received(state(4, "a"), input_line=30)
    assert [m["state"]["destinationStats"]["rejectedRecordCount"] for m in cp.ready()] == [1]


def test_a_state_for_a_stream_outside_the_catalog_waits_for_nothing_and_counts_nothing():
    cp = make(1)
    batch_of(cp, 0)
    assert cp.state_received(state(1, "other"), input_line=6) == UNKNOWN_STREAM
    assert [m["state"]["destinationStats"] for m in cp.ready()] == [{"recordCount": 0, "rejectedRecordCount": 0}]


@pytest.mark.parametrize("body", [{"type": "STREAM"}, {"type": "STREAM", "stream": []},
                                  {"type": "STREAM", "stream": {"stream_descriptor": "a"}}])
def test_a_stream_state_without_a_usable_descriptor_belongs_to_no_stream(body):
    assert make().state_received({"type": "STATE", "state": body}, input_line=1) == UNKNOWN_STREAM


def test_every_key_of_the_state_is_kept():
    cp = make(1)
    message = {"type": "STATE", "state": {"type": "GLOBAL", "global": {"x": 1}, "id": 7, "future": [1]}, "extra": 1}
    cp.state_received(message, input_line=1)
    (out,) = cp.ready()
    assert out == {"type": "STATE", "extra": 1, "state": {"type": "GLOBAL", "global": {"x": 1}, "id": 7, "future": [1],
                   "destinationStats": {"recordCount": 0, "rejectedRecordCount": 0}}}


# --- the CDK Writer's style: pull one message at a time, check what is imported when each state appears ----


class _Sync:
    """A thread-free stand-in for the writer: batches of `size` events, imports that settle when told to."""

    def __init__(self, cp: Checkpoints, size: int) -> None:
        self.cp, self.size = cp, size
        self.open: list[tuple[int, int]] = []  # (stream, record number) in the open batch
        self.in_flight: dict[int, list[tuple[int, int]]] = {}
        self.imported: set[tuple[int, int]] = set()

    def run(self, messages: list[tuple[str, int, int]], rng: random.Random) -> Iterator[tuple[dict, set]]:
        """Yields (state, what was imported when it left) as states become safe, settling imports at random."""
        for kind, stream, number in messages:
            if kind == "record":
                self.cp.record_batched(stream)
                self.open.append((stream, number))
                if len(self.open) == self.size:
                    self.in_flight[self.cp.batch_closed()] = self.open
                    self.open = []
            else:
                self.cp.state_received(state(number, None if stream < 0 else "ab"[stream]), input_line=number)
            if self.in_flight and rng.random() < 0.3:
                self._settle(rng.choice(sorted(self.in_flight)))
            for out in self.cp.ready():
                yield out, set(self.imported)
        if self.open:
            self.in_flight[self.cp.batch_closed()] = self.open
        while self.in_flight:
            self._settle(rng.choice(sorted(self.in_flight)))
            for out in self.cp.ready():
                yield out, set(self.imported)

    def _settle(self, batch: int) -> None:
        self.imported.update(self.in_flight.pop(batch))
        self.cp.batch_settled(batch)


@pytest.mark.parametrize("seed", range(20))
def test_pulled_one_at_a_time_each_state_appears_only_after_every_record_before_it_is_imported(seed):
    rng = random.Random(seed)
    messages: list[tuple[str, int, int]] = []
    for number in range(1, 300):
        if rng.random() < 0.15:
            messages.append(("state", rng.choice([0, 1, -1]), number))
        else:
            messages.append(("record", rng.choice([0, 1]), number))
    sync = _Sync(make(), size=rng.choice([1, 3, 7]))
    generator = sync.run(messages, rng)
    seen = []
    while True:
        try:
            out, imported = next(generator)  # one message at a time
        except StopIteration:
            break
        number = out["state"]["id"]
        scope = out["state"].get("stream", {}).get("stream_descriptor", {}).get("name")
        before = {(stream, n) for kind, stream, n in messages
                  if kind == "record" and n < number and (scope is None or "ab"[stream] == scope)}
        assert before <= imported, f"state {number} left before records {sorted(before - imported)[:3]}"
        seen.append(number)
    assert seen == [n for kind, _, n in messages if kind == "state"]  # every state, in order
