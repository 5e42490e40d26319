"""`write` under failure: a busy account, a flaky API, outside aborts, bad records, cancellation, crashes.

Every test runs real HTTP against the local emulator. Nothing waits on wall-clock speed: faults are
queued before the sync, or changed from a helper thread once a condition is seen in the emulator
(never after a fixed sleep); retries and polls use FAST_RETRY/FAST_TUNING, so backoffs are
milliseconds. Where it matters what is true when a state is yielded, the writer's generator is driven
by a scripted input that waits for conditions between lines.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pytest
from airbyte_cdk.models import FailureType

from destination_scarf.config import parse_config
from destination_scarf.errors import (
    FailedEvents,
    ImportFailed,
    InvalidInput,
    ScarfTransientError,
    UncertainImport,
)
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer
from support import (
    FAST_TUNING,
    OWNER,
    PACKAGE,
    catalog,
    download,
    fast_client,
    global_state,
    lines,
    make_config,
    make_writer,
    messages_of,
    new_emulator,
    now_iso,
    record,
    run_connector,
    stream_state,
    wait_for,
    write_json,
)
from sync_helpers import (
    SECRET,
    SECRET_IP,
    STREAM,
    UNKNOWN_PACKAGE,
    Background,
    Connector,
    Until,
    assert_everything_once,
    cursors,
    downloads_with_states,
    drain,
    input_states,
    our_imports,
    polled,
    requests_of,
    script,
    state_ids,
    stats,
    stored_ids,
)

WAIT_SECONDS = 20.0


# ----- 1. 422: all of the account's import slots are busy ---------------------------------------------


def test_422_storm_waits_for_slots_and_delivers_everything_once(emulator):
    held = emulator.hold_slots(OWNER, 15)
    messages = downloads_with_states(150, every=50)

    def release_after_the_first_422s():
        wait_for(lambda: sum(1 for r in requests_of(emulator, "import-post") if r.status == 422) >= 3,
                 "the first 422 answers")
        return emulator.release_slots(OWNER)

    releaser = Background(release_after_the_first_422s)
    states = list(make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages)))

    assert sorted(releaser.join()) == sorted(held)
    assert state_ids(states) == state_ids(input_states(messages))
    assert [stats(s) for s in states] == [{"recordCount": 50, "rejectedRecordCount": 0}] * 3
    # a 422 creates nothing: one import per batch, no more
    assert len(our_imports(emulator)) == 3
    assert_everything_once(emulator, range(150))


def test_422_with_slot_wait_zero_fails_at_once_and_echoes_nothing(emulator):
    emulator.hold_slots(OWNER, 15)
    messages = downloads_with_states(60, every=30)
    writer = make_writer(emulator, make_config(emulator, slot_wait_minutes=0), catalog(STREAM))

    states: list = []
    error = drain(states, writer.write(lines(messages)))

    assert isinstance(error, ScarfTransientError), error
    assert error.failure_type == FailureType.transient_error
    assert "422" in error.message and "slots" in error.message
    assert states == []
    assert our_imports(emulator) == []
    assert any(r.status == 422 for r in requests_of(emulator, "import-post"))


# ----- 2. 5xx and dropped connections ------------------------------------------------------------------


def test_5xx_and_connection_resets_during_upload_and_polling_lose_and_double_nothing(emulator):
    emulator.fail_next(1, 503, only="import-post")
    emulator.reset_next(1, only="import-post")
    # Scarf created the import but the answer is lost: the re-sent batch makes a second import
    emulator.reset_next(1, only="import-post", after_processing=True)
    emulator.fail_next(2, 500, only="import-get")
    emulator.reset_next(1, only="import-get")
    messages = downloads_with_states(200, every=40)

    states = list(make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages)))

    assert emulator.pending_faults() == []
    assert state_ids(states) == state_ids(input_states(messages))
    assert cursors(states) == [40, 80, 120, 160, 200]
    seen = [r.status for r in emulator.requests]
    assert seen.count(503) == 1 and seen.count(500) == 2 and seen.count(None) == 3
    assert len(our_imports(emulator)) == 4 + 1  # 4 batches, one of them imported twice
    assert_everything_once(emulator, range(200))


# ----- 3. 429 with Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize("unique_id_mode", ["deterministic", "off"])
def test_429_with_retry_after_is_waited_out_and_completes(emulator, unique_id_mode):
    # A 429 means "not processed", so even an import POST without $unique_id may be re-sent.
    emulator.throttle_next(2, retry_after=1, only="import-post")
    emulator.throttle_next(2, retry_after=1, only="import-get")
    messages = downloads_with_states(100, every=50)

    config = make_config(emulator, unique_id_mode=unique_id_mode)
    states = list(make_writer(emulator, config, catalog(STREAM)).write(lines(messages)))

    assert state_ids(states) == state_ids(input_states(messages))
    throttled = [r for r in emulator.requests if r.status == 429]
    assert len(throttled) == 4
    assert len(our_imports(emulator)) == 2
    assert_everything_once(emulator, range(100))


# ----- 4. an uncertain upload without unique ids --------------------------------------------------------


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_uncertain_upload_without_unique_ids_fails_without_resending(emulator, fault):
    states: list = []

    def break_next_upload():
        if fault == "503":
            emulator.fail_next(1, 503, only="import-post")
        else:
            emulator.reset_next(1, only="import-post")

    first = downloads_with_states(50, every=50)
    second = downloads_with_states(50, every=50, start=50)
    items = [*first,
             Until(lambda: len(states) == 1, "the state after batch 1", then=break_next_upload),
             *second]
    writer = make_writer(emulator, make_config(emulator, unique_id_mode="off"), catalog(STREAM))

    error = drain(states, writer.write(script(items)))

    assert isinstance(error, UncertainImport), error
    assert error.failure_type == FailureType.transient_error
    assert state_ids(states) == state_ids(input_states(first))
    posts = requests_of(emulator, "import-post")
    assert [r.status for r in posts] == [200, 503 if fault == "503" else None]  # exactly one POST for batch 2
    assert emulator.wait_idle(WAIT_SECONDS)
    assert stored_ids(emulator) == list(range(50))


# ----- 5. imports aborted outside the sync ---------------------------------------------------------------


def _abort_nth_import(emulator, n: int) -> str:
    """Wait until the n-th (1-based) import exists, abort it as another user would, return its id."""
    found = wait_for(lambda: our_imports(emulator)[n - 1:n], f"import #{n}")
    assert emulator.abort_import(OWNER, found[0]["id"]), "the import finished before it could be aborted"
    return found[0]["id"]


def test_external_abort_reuploads_the_batch_once_and_completes(emulator, caplog):
    emulator.set_rate(20)  # slow enough that the import is still running when it is aborted

    def abort_first_then_speed_up():
        aborted = _abort_nth_import(emulator, 1)
        emulator.set_rate(None)
        return aborted

    aborter = Background(abort_first_then_speed_up)
    messages = downloads_with_states(100, every=50)
    states = list(make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages)))
    aborted_id = aborter.join()

    assert state_ids(states) == state_ids(input_states(messages))
    imports = our_imports(emulator)
    assert [i["status"] for i in imports].count("aborted") == 1
    assert len(imports) == 3  # 2 batches + 1 re-upload
    aborted = next(i for i in imports if i["id"] == aborted_id)
    reuploads = [i for i in imports if i["id"] != aborted_id and i["events_total"] == aborted["events_total"]]
    assert reuploads and all(i["status"] == "done" for i in reuploads)
    assert any(aborted_id in r.getMessage() and "again" in r.getMessage() for r in caplog.records)
    assert_everything_once(emulator, range(100))


def test_external_abort_twice_fails_naming_the_import(emulator):
    emulator.set_rate(20)

    def abort_twice():
        return _abort_nth_import(emulator, 1), _abort_nth_import(emulator, 2)

    aborter = Background(abort_twice)
    messages = downloads_with_states(30, every=30)
    writer = make_writer(emulator, make_config(emulator), catalog(STREAM))
    states: list = []
    error = drain(states, writer.write(lines(messages)))
    first, second = aborter.join()

    assert isinstance(error, ImportFailed), error
    assert second in error.message and "aborted" in error.message
    assert states == []
    assert [i["id"] for i in our_imports(emulator)] == [first, second]  # no third upload


def test_external_abort_without_unique_ids_fails_at_once(emulator):
    emulator.set_rate(20)
    aborter = Background(lambda: _abort_nth_import(emulator, 1))
    messages = downloads_with_states(30, every=30)
    writer = make_writer(emulator, make_config(emulator, unique_id_mode="off"), catalog(STREAM))
    states: list = []
    error = drain(states, writer.write(lines(messages)))
    aborted_id = aborter.join()

    assert isinstance(error, ImportFailed), error
    assert aborted_id in error.message and "$unique_id" in error.message
    assert states == []
    assert [i["id"] for i in our_imports(emulator)] == [aborted_id]  # not re-sent


# ----- 6. events Scarf could not import -------------------------------------------------------------------

#: Input layout of the partial-failure tests: 10 good records, state A, records 11..20 of which
#: 13, 15 and 17 name an unknown package, state B, 10 good records, state C. One batch per 10 records.
BAD_PACKAGE_RECORDS = (13, 15, 17)


def _partial_failure_input():
    part_a = [record(STREAM, download(n)) for n in range(1, 11)] + [stream_state(STREAM, 10)]
    part_b = [record(STREAM, download(n, package=UNKNOWN_PACKAGE if n in BAD_PACKAGE_RECORDS else PACKAGE))
              for n in range(11, 21)] + [stream_state(STREAM, 20)]
    part_c = [record(STREAM, download(n)) for n in range(21, 31)] + [stream_state(STREAM, 30)]
    return part_a, part_b, part_c


def _input_line_of(messages: list, position: int) -> int:
    """1-based input line of the `position`-th record (all records are of one stream here)."""
    seen = 0
    for line_no, message in enumerate(messages, start=1):
        if isinstance(message, dict) and message.get("type") == "RECORD":
            seen += 1
            if seen == position:
                return line_no
    raise AssertionError(position)


def test_failed_events_fail_the_sync_naming_stream_position_and_line(emulator):
    part_a, part_b, part_c = _partial_failure_input()
    states: list = []
    items = [*part_a, Until(lambda: len(states) == 1, "state A"), *part_b, *part_c]
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10), catalog(STREAM))

    error = drain(states, writer.write(script(items)))

    assert isinstance(error, FailedEvents), error
    assert error.failure_type == FailureType.config_error
    message = error.message
    assert f"could not import {len(BAD_PACKAGE_RECORDS)} of 10 events" in message
    assert f"stream '{STREAM}'" in message
    everything = part_a + part_b + part_c
    for position in BAD_PACKAGE_RECORDS:
        assert f"#{position} (input line {_input_line_of(everything, position)})" in message
    assert "artifact-not-found" in message
    assert "(Package not found)" in message  # Scarf's label, without the value it quotes after the colon
    assert UNKNOWN_PACKAGE not in message
    assert state_ids(states) == state_ids(part_a[-1:])  # nothing past the failed records


def test_failed_events_under_warn_are_counted_in_the_next_state(emulator):
    part_a, part_b, part_c = _partial_failure_input()
    config = make_config(emulator, batch_max_events=10, on_failed_events="warn")

    states = list(make_writer(emulator, config, catalog(STREAM)).write(lines(part_a + part_b + part_c)))

    assert state_ids(states) == state_ids(input_states(part_a + part_b + part_c))
    assert [stats(s) for s in states] == [
        {"recordCount": 10, "rejectedRecordCount": 0},
        {"recordCount": 10, "rejectedRecordCount": len(BAD_PACKAGE_RECORDS)},
        {"recordCount": 10, "rejectedRecordCount": 0},
    ]
    assert emulator.wait_idle(WAIT_SECONDS)
    assert stored_ids(emulator) == [n for n in range(1, 31) if n not in BAD_PACKAGE_RECORDS]


@pytest.mark.parametrize("state_kind", ["stream", "global"])
def test_failed_events_under_warn_are_counted_in_the_state_right_after_each_record(emulator, state_kind):
    # States every 5 records inside batches of 10: each failed event counts towards the first state after
    # its own record, not towards the state that closes its batch.
    bad = {13, 17, 18}
    make_state = (lambda n: stream_state(STREAM, n)) if state_kind == "stream" else global_state
    messages: list = []
    for n in range(1, 31):
        messages.append(record(STREAM, download(n, package=UNKNOWN_PACKAGE if n in bad else PACKAGE)))
        if n % 5 == 0:
            messages.append(make_state(n))
    config = make_config(emulator, batch_max_events=10, on_failed_events="warn")

    states = list(make_writer(emulator, config, catalog(STREAM)).write(lines(messages)))

    assert state_ids(states) == state_ids(input_states(messages))
    assert [stats(s)["rejectedRecordCount"] for s in states] == [0, 0, 1, 2, 0, 0]
    assert [stats(s)["recordCount"] for s in states] == [5] * 6
    assert emulator.wait_idle(WAIT_SECONDS)
    assert stored_ids(emulator) == [n for n in range(1, 31) if n not in bad]


# ----- 7. import timeout ------------------------------------------------------------------------------------


def test_import_timeout_aborts_the_import_and_fails(emulator):
    emulator.set_rate(1)
    config = dataclasses.replace(parse_config(make_config(emulator)), import_timeout_seconds=0.3)
    writer = Writer(config=config, streams=parse_catalog(catalog(STREAM)), client=fast_client(emulator),
                    tuning=FAST_TUNING)
    states: list = []

    error = drain(states, writer.write(lines(downloads_with_states(10, every=10))))

    assert isinstance(error, ImportFailed), error
    [started] = our_imports(emulator)
    assert started["id"] in error.message
    assert "import_timeout_minutes" in error.message and "aborted" in error.message
    assert emulator.get_import(OWNER, started["id"])["status"] == "aborted"
    assert states == []


# ----- 8. bad input lines --------------------------------------------------------------------------------------


def _old_time() -> str:
    return now_iso(-8 * 86400)


def _without_package(n: int) -> dict:
    data = download(n, remote_address=SECRET_IP, note=SECRET)
    del data["package"]
    return data


#: name -> (build the bad input line, the field a record-level error names, or None for a line-level one)
BAD_INPUTS: dict[str, tuple[Callable[[], Any], str | None]] = {
    "not_json": (lambda: b'{"type": "RECORD", "record": {"stream": "downloads", "data": {"remote_address": "'
                 + SECRET_IP.encode() + b'", "note": "' + SECRET.encode() + b'"\n', None),
    "not_an_airbyte_message": (lambda: {"foo": 1, "note": SECRET, "ip": SECRET_IP}, None),
    "data_not_an_object": (lambda: record(STREAM, [SECRET, SECRET_IP]), "data"),  # type: ignore[arg-type]
    "unparseable_time": (lambda: record(STREAM, download(900, time=SECRET, remote_address=SECRET_IP)), "$time"),
    "time_too_old": (lambda: record(STREAM, download(900, time=_old_time(), remote_address=SECRET_IP, note=SECRET)),
                     "$time"),
    "no_package_or_pixel": (lambda: record(STREAM, _without_package(900)), "$package"),
    # shapes that leave the writer's fast path for the general one
    "message_is_an_array": (lambda: [SECRET, SECRET_IP], None),
    "record_is_not_an_object": (lambda: {"type": "RECORD", "record": [STREAM, SECRET]}, None),
    "record_without_data": (lambda: {"type": "RECORD", "record": {"stream": STREAM, "emitted_at": 1}}, "data"),
}

#: Layout: records 1..10, state A, records 11..15, the bad line (input line 17), records 16..20, state B.
BAD_LINE_NUMBER = 17
BAD_RECORD_POSITION = 16


def _bad_input_messages(bad: Any) -> tuple[list, list]:
    before = [record(STREAM, download(n)) for n in range(1, 11)] + [stream_state(STREAM, 10)]
    before += [record(STREAM, download(n)) for n in range(11, 16)]
    after = [record(STREAM, download(n)) for n in range(16, 21)] + [stream_state(STREAM, 20)]
    return before + [bad] + after, before


def _assert_no_values_in(texts: Iterable[str]) -> None:
    for text in texts:
        assert SECRET not in text and SECRET_IP not in text, text


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_under_fail_names_the_line_never_the_values(emulator, caplog, case):
    caplog.set_level(logging.DEBUG)
    build, field = BAD_INPUTS[case]
    messages, before = _bad_input_messages(build())
    writer = make_writer(emulator, make_config(emulator), catalog(STREAM))
    states: list = []

    error = drain(states, writer.write(lines(messages)))

    assert isinstance(error, InvalidInput), error
    assert error.failure_type == FailureType.config_error
    assert f"nput line {BAD_LINE_NUMBER}" in error.message
    if field is not None:
        assert f"Record #{BAD_RECORD_POSITION} of stream '{STREAM}'" in error.message
        assert field in error.message
    _assert_no_values_in([error.message, error.internal_message or "", str(error)])
    _assert_no_values_in(r.getMessage() for r in caplog.records)
    _assert_no_values_in([caplog.text])
    # the records before the bad one were imported first, and the state between them echoed; none after
    assert state_ids(states) == state_ids(input_states(before))
    assert_everything_once(emulator, range(1, 16))


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_under_skip_is_counted_and_kept_aside(emulator, caplog, tmp_path, case):
    caplog.set_level(logging.DEBUG)
    build, field = BAD_INPUTS[case]
    messages, _ = _bad_input_messages(build())
    rejected_path = tmp_path / "rejected.ndjson"
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(rejected_path))

    states = list(make_writer(emulator, config, catalog(STREAM)).write(lines(messages)))

    assert state_ids(states) == state_ids(input_states(messages))
    assert stats(states[0]) == {"recordCount": 10, "rejectedRecordCount": 0}
    kept = [orjson.loads(line) for line in rejected_path.read_bytes().splitlines()]
    assert len(kept) == 1
    if field is not None:
        # a record: counted as rejected in the state after it, listed with where and why
        assert stats(states[1]) == {"recordCount": 11, "rejectedRecordCount": 1}
        assert kept[0]["stream"] == STREAM and kept[0]["record_position"] == BAD_RECORD_POSITION
        assert kept[0]["field"] == field and kept[0]["reason"]
        assert kept[0]["input_line"] == BAD_LINE_NUMBER
    else:
        # an unreadable line belongs to no stream: listed by input line only, not counted as a record
        assert stats(states[1]) == {"recordCount": 10, "rejectedRecordCount": 0}
        assert kept[0]["input_line"] == BAD_LINE_NUMBER and kept[0]["reason"]
    _assert_no_values_in(r.getMessage() for r in caplog.records)
    assert_everything_once(emulator, range(1, 21))


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_records_of_a_stream_not_in_the_catalog_are_ignored_with_one_warning(emulator, caplog, policy):
    caplog.set_level(logging.DEBUG)
    strangers = [record("other", {"time": now_iso(), "package": UNKNOWN_PACKAGE, "note": SECRET,
                                  "remote_address": SECRET_IP}) for _ in range(3)]
    messages = ([record(STREAM, download(n)) for n in range(1, 11)] + [stream_state(STREAM, 10)]
                + [record(STREAM, download(n)) for n in range(11, 16)] + strangers
                + [record(STREAM, download(n)) for n in range(16, 21)] + [stream_state(STREAM, 20)])

    states = list(make_writer(emulator, make_config(emulator, on_invalid_record=policy), catalog(STREAM))
                  .write(lines(messages)))

    assert state_ids(states) == state_ids(input_states(messages))
    assert [stats(s) for s in states] == [{"recordCount": 10, "rejectedRecordCount": 0}] * 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "'other'" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    _assert_no_values_in(r.getMessage() for r in caplog.records)
    assert_everything_once(emulator, range(1, 21))


def test_records_whose_stream_name_is_not_text_are_ignored_like_unknown_streams(emulator, caplog):
    odd = [{"type": "RECORD", "record": {"stream": [STREAM], "data": download(99)}},
           {"type": "RECORD", "record": {"stream": STREAM, "namespace": {"n": 1}, "data": download(98)}}]
    messages = ([record(STREAM, download(n)) for n in range(1, 6)] + odd
                + [record(STREAM, download(n)) for n in range(6, 11)] + [stream_state(STREAM, 10)])

    states = list(make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages)))

    assert [stats(s) for s in states] == [{"recordCount": 10, "rejectedRecordCount": 0}]
    assert len([r for r in caplog.records if "not in the configured catalog" in r.getMessage()]) == 2
    assert_everything_once(emulator, range(1, 11))


# ----- 9. SIGTERM through the real command line ---------------------------------------------------------------


def test_sigterm_aborts_imports_in_flight_and_echoes_no_further_state(emulator, tmp_path):
    config = make_config(emulator, batch_max_events=20, max_concurrent_imports=2)
    connector = Connector(tmp_path, config, catalog(STREAM))
    try:
        first = downloads_with_states(20, every=20)
        connector.send(first)
        assert state_ids([connector.next_state()]) == state_ids(first[-1:])

        emulator.set_rate(1)  # the next imports stay in flight
        rest = downloads_with_states(45, every=20, start=20)
        connector.send(rest)
        in_flight = wait_for(lambda: our_imports(emulator)[1:] if len(our_imports(emulator)) == 3 else None,
                             "two more imports")
        wait_for(lambda: all(polled(emulator, i["id"]) for i in in_flight), "the connector polling them")

        connector.proc.send_signal(signal.SIGTERM)
        code = connector.finish()
    finally:
        connector.kill()

    assert code != 0
    last = connector.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["type"] == "ERROR", connector.messages[-3:]
    assert "cancelled" in last["trace"]["error"]["message"]
    assert last["trace"]["error"]["failure_type"] == "transient_error"
    assert state_ids(connector.states()) == state_ids(first[-1:])
    statuses = {i["id"]: emulator.get_import(OWNER, i["id"])["status"] for i in in_flight}
    assert statuses == {i["id"]: "aborted" for i in in_flight}


def test_sigterm_during_an_upload_aborts_the_import_that_upload_creates(emulator, tmp_path):
    config = make_config(emulator, batch_max_events=20, max_concurrent_imports=2)
    connector = Connector(tmp_path, config, catalog(STREAM))
    try:
        emulator.set_rate(5)  # the import stays `importing` long enough for an abort to matter
        emulator.delay_next(1, 2.0, only="import-post")  # Scarf is slow to answer this upload
        connector.send(downloads_with_states(20, every=20))
        wait_for(lambda: emulator.pending_faults() == [], "the upload to reach the emulator")
        connector.proc.send_signal(signal.SIGTERM)
        code = connector.finish()
    finally:
        connector.kill()

    assert code != 0 and connector.states() == []
    [created] = wait_for(lambda: our_imports(emulator), "the delayed upload's import")
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.get_import(OWNER, created["id"])["status"] == "aborted"


# ----- 10. SIGKILL, then a re-run from the last echoed state ---------------------------------------------------


def test_sigkill_then_rerun_from_the_last_state_delivers_every_event_once(tmp_path):
    emulator = new_emulator(db_path=str(tmp_path / "scarf.db"), events_per_second=100)
    emulator.start()
    try:
        total = 600
        messages = downloads_with_states(total, every=50)
        stdin_path = tmp_path / "input.ndjson"
        stdin_path.write_bytes(b"".join(lines(messages)))
        config = make_config(emulator, batch_max_events=50, max_concurrent_imports=3)

        with open(stdin_path, "rb") as stdin:
            connector = Connector(tmp_path, config, catalog(STREAM), stdin=stdin)
            try:
                connector.next_state()
                emulator.set_rate(1)  # nothing more finishes before the kill lands
                connector.proc.send_signal(signal.SIGKILL)
                assert connector.finish() == -signal.SIGKILL
            finally:
                connector.kill()
        echoed = connector.states()
        assert 1 <= len(echoed) < total // 50
        assert not [m for m in connector.messages if m["type"] == "TRACE"]
        resume_at = cursors(echoed)[-1]
        assert cursors(echoed) == list(range(50, resume_at + 1, 50))

        emulator.set_rate(None)
        # the re-run gets the very input that followed the last echoed state (same data -> same $unique_id)
        last_echoed = next(i for i, m in enumerate(messages) if m["type"] == "STATE"
                           and m["state"]["id"] == echoed[-1]["state"]["id"])
        remaining = messages[last_echoed + 1:]
        assert sum(1 for m in remaining if m["type"] == "RECORD") == total - resume_at
        rerun = run_connector(["write", "--config", write_json(tmp_path / "config.json", config),
                               "--catalog", write_json(tmp_path / "catalog.json", catalog(STREAM))],
                              stdin=b"".join(lines(remaining)))
        assert rerun.returncode == 0, rerun.stdout[-2000:]
        rerun_states = [m for m in messages_of(rerun.stdout) if m["type"] == "STATE"]
        assert cursors(rerun_states) == list(range(resume_at + 50, total + 1, 50))

        assert emulator.wait_idle(WAIT_SECONDS)
        assert emulator.event_count(OWNER) == total
        assert {int(e["id"]) for e in emulator.events(OWNER)} == set(range(total))
    finally:
        emulator.close()


# ----- 11. memory stays flat ---------------------------------------------------------------------------------------


def _lazy_input(count: int) -> Iterator[bytes]:
    """Input lines made one at a time: the test itself must not hold the whole input."""
    dumps = orjson.dumps
    for n in range(count):
        yield dumps(record(STREAM, download(n))) + b"\n"
        if (n + 1) % 2000 == 0:
            yield dumps(stream_state(STREAM, n + 1)) + b"\n"


def _traced_peak(count: int) -> int:
    emulator = new_emulator(store_events=False)
    emulator.start()
    try:
        writer = make_writer(emulator, make_config(emulator, batch_max_events=2000), catalog(STREAM))
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        echoed = sum(1 for _ in writer.write(_lazy_input(count)))
        peak = tracemalloc.get_traced_memory()[1] - base
        assert echoed == count // 2000
        assert emulator.wait_idle(WAIT_SECONDS)
        assert emulator.stats(OWNER)["events_imported"] == count
        return peak
    finally:
        emulator.stop()


def test_memory_stays_flat_as_the_input_grows():
    tracemalloc.start(1)
    try:
        _traced_peak(2_000)  # warm-up: first-use allocations (imports, caches, connection pools)
        small = _traced_peak(20_000)
        large = _traced_peak(80_000)
    finally:
        tracemalloc.stop()
    assert large < 1.5 * small, f"peak {large / 1e6:.1f} MB for 80k records vs {small / 1e6:.1f} MB for 20k"
