"""The state rule, as pure logic: which states may leave, in which order, with which counts."""

from destination_scarf.checkpoints import GLOBAL, UNKNOWN_STREAM, Checkpoints


def state(n, **extra):
    return {"type": "STATE", "state": {"type": "STREAM", "id": n, **extra}}


def ids(messages):
    return [m["state"]["id"] for m in messages]


def test_a_state_waits_for_the_unfinished_batches_of_its_stream_only():
    cp = Checkpoints(stream_count=2)
    cp.batch_started(1, {0})
    cp.batch_started(2, {1})
    cp.add_state(state(1), scope=1, input_line=10)
    assert ids(cp.ready()) == []
    cp.batch_done(2)
    assert ids(cp.ready()) == [1]


def test_states_leave_in_order_even_when_a_later_one_is_ready_first():
    cp = Checkpoints(stream_count=2)
    cp.batch_started(1, {0})
    cp.add_state(state(1), scope=0, input_line=5)
    cp.add_state(state(2), scope=1, input_line=6)  # depends on nothing
    assert ids(cp.ready()) == []
    cp.batch_done(1)
    assert ids(cp.ready()) == [1, 2]


def test_a_global_state_waits_for_every_batch():
    cp = Checkpoints(stream_count=2)
    cp.batch_started(1, {0})
    cp.batch_started(2, {1})
    cp.add_state(state(1), scope=GLOBAL, input_line=5)
    cp.batch_done(1)
    assert ids(cp.ready()) == []
    cp.batch_done(2)
    assert ids(cp.ready()) == [1]


def test_the_open_batch_counts_with_the_streams_it_has_when_the_state_arrives():
    cp = Checkpoints(stream_count=2)
    open_streams: set[int] = set()
    cp.batch_started(1, open_streams)
    cp.add_state(state(1), scope=0, input_line=1)  # the open batch has no records of stream 0 yet
    assert ids(cp.ready()) == [1]
    open_streams.add(0)
    cp.add_state(state(2), scope=0, input_line=2)
    assert ids(cp.ready()) == []
    cp.batch_done(1)
    assert ids(cp.ready()) == [2]


def test_batches_started_after_a_state_do_not_hold_it():
    cp = Checkpoints(stream_count=1)
    cp.add_state(state(1), scope=0, input_line=1)
    cp.batch_started(1, {0})
    assert ids(cp.ready()) == [1]


def test_destination_stats_count_since_the_previous_state_of_the_same_scope():
    cp = Checkpoints(stream_count=2)
    cp.records[0] += 3
    cp.records[1] += 2
    cp.rejected[0] += 1
    cp.add_state(state(1), scope=0, input_line=5)
    cp.records[0] += 4
    cp.add_state(state(2), scope=0, input_line=9)
    cp.add_state(state(3), scope=1, input_line=10)
    out = list(cp.ready())
    assert [m["state"]["destinationStats"] for m in out] == [
        {"recordCount": 3, "rejectedRecordCount": 1},
        {"recordCount": 4, "rejectedRecordCount": 0},
        {"recordCount": 2, "rejectedRecordCount": 0},
    ]


def test_late_rejections_go_to_the_first_state_after_the_record():
    cp = Checkpoints(stream_count=2)
    cp.batch_started(1, {0, 1})
    cp.records[0] += 10
    cp.add_state(state(1), scope=0, input_line=10)
    cp.add_state(state(2), scope=1, input_line=11)
    cp.add_state(state(3), scope=0, input_line=20)
    cp.reject_late(0, 15)  # between states 1 and 3 of stream 0
    cp.reject_late(0, 3)   # before state 1
    cp.reject_late(0, 25)  # after every queued state: counts towards the next one
    cp.batch_done(1)
    out = {m["state"]["id"]: m["state"]["destinationStats"]["rejectedRecordCount"] for m in cp.ready()}
    assert out == {1: 1, 2: 0, 3: 1}
    cp.add_state(state(4), scope=0, input_line=30)
    assert [m["state"]["destinationStats"]["rejectedRecordCount"] for m in cp.ready()] == [1]


def test_a_state_for_a_stream_outside_the_catalog_waits_for_nothing_and_counts_nothing():
    cp = Checkpoints(stream_count=1)
    cp.batch_started(1, {0})
    cp.records[0] += 5
    cp.add_state(state(1), scope=UNKNOWN_STREAM, input_line=6)
    assert [m["state"]["destinationStats"] for m in cp.ready()] == [{"recordCount": 0, "rejectedRecordCount": 0}]


def test_every_key_of_the_state_is_kept():
    cp = Checkpoints(stream_count=1)
    message = {"type": "STATE", "state": {"type": "GLOBAL", "global": {"x": 1}, "id": 7, "future": [1]}, "extra": 1}
    cp.add_state(message, scope=GLOBAL, input_line=1)
    (out,) = cp.ready()
    assert out == {"type": "STATE", "extra": 1, "state": {"type": "GLOBAL", "global": {"x": 1}, "id": 7, "future": [1],
                   "destinationStats": {"recordCount": 0, "rejectedRecordCount": 0}}}
