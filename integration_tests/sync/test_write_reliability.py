"""`write` keeps every event and the progress made, whatever the input, Scarf or the network do.

Real HTTP against the emulator and its fault knobs. Faults are set before the sync or changed from a
helper thread once a condition is seen (never after a fixed sleep); waits use FAST_TUNING and short
budgets, so nothing here depends on wall-clock speed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from typing import Any

import orjson
import pytest
from airbyte_cdk.models import FailureType

from destination_scarf.config import parse_config
from destination_scarf.errors import (
    ImportFailed,
    ImportIncomplete,
    InvalidInput,
    ScarfAuthError,
    ScarfConfigError,
    ScarfTransientError,
    SyncCancelled,
)
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer
from support import (
    FAST_TUNING,
    OWNER,
    PACKAGE,
    TOKEN,
    catalog,
    download,
    fast_client,
    global_state,
    lines,
    make_config,
    make_writer,
    new_emulator,
    now_iso,
    record,
    stream_state,
    wait_for,
)
from sync_helpers import (
    STREAM,
    WAIT_SECONDS,
    Background,
    Until,
    assert_everything_once,
    downloads_with_states,
    drain,
    input_states,
    our_imports,
    script,
    state_ids,
    stats,
)


def writer_with(emulator, raw_config: dict, raw_catalog: dict | None = None, **config_changes: Any) -> Writer:
    """A writer whose config may carry values below the user options' minimums (short budgets for tests)."""
    config = dataclasses.replace(parse_config(raw_config), **config_changes)
    return Writer(config=config, streams=parse_catalog(raw_catalog or catalog(STREAM)), client=fast_client(emulator),
                  tuning=FAST_TUNING)


def run(writer: Writer, messages) -> tuple[list, BaseException | None]:
    states: list = []
    error = drain(states, writer.write(lines(messages) if isinstance(messages, list) else messages))
    return states, error


# ----- identical rows -------------------------------------------------------------------------------------


def test_identical_rows_without_ids_stay_distinct_events_and_a_rerun_adds_none(emulator, caplog):
    row = {"time": "2026-11-27T11:00:00Z", "package": PACKAGE, "file": "pkg-1.0.tar.gz", "runner": "ci-7"}
    row["time"] = now_iso(-60)[:19] + "Z"  # second precision, as in a warehouse table
    window = [record(STREAM, row)] * 3 + [record(STREAM, {**row, "file": "other"})]
    messages = window + [stream_state(STREAM, 1)] + window + [stream_state(STREAM, 2)]
    config = make_config(emulator)

    states, error = run(make_writer(emulator, config, catalog(STREAM)), messages)
    assert error is None and len(states) == 2
    assert emulator.wait_idle(WAIT_SECONDS)
    # Three copies in a window stay three events; the same copies in the next window share their ids with the
    # first window (that is what keeps a re-run from a state idempotent), so 4 distinct events in all.
    assert emulator.event_count(OWNER) == 4
    assert len([r for r in caplog.records if "same content as an earlier record" in r.getMessage()]) == 1
    assert "4 record(s)" in next(r.getMessage() for r in caplog.records if "same content" in r.getMessage())

    rerun, error = run(make_writer(emulator, config, catalog(STREAM)), messages[5:])  # from the first state
    assert error is None and len(rerun) == 1
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 4


# ----- exact numbers ----------------------------------------------------------------------------------------


def test_huge_integers_keep_every_digit_in_ids_custom_variables_and_states(emulator):
    big = 2**64
    raw_lines = [
        b'{"type":"RECORD","record":{"stream":"downloads","data":{"id":%d,"time":"%s","package":"%s",'
        b'"downloads":123456789012345678901234567890,"ratio":1e20}}}\n' % (n, now_iso().encode(), PACKAGE.encode())
        for n in (big, big + 1)
    ]
    state = b'{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"downloads"},' \
            b'"stream_state":{"cursor":%d}}}}\n' % (big + 1)
    config = make_config(emulator)
    writer = make_writer(emulator, config, catalog(STREAM, sync_mode="append_dedup", primary_key=[["id"]]))

    states, error = run(writer, [*raw_lines, state])

    assert error is None
    assert emulator.wait_idle(WAIT_SECONDS)
    events = emulator.events(OWNER)
    assert sorted(e["id"] for e in events) == [str(big), str(big + 1)]
    assert {e["downloads"] for e in events} == {"123456789012345678901234567890"}
    assert {e["ratio"] for e in events} == {"1e+20"}
    assert len({row["unique_id"] for row in emulator.event_rows(OWNER)}) == 2
    from destination_scarf.sync.reader import dump_message
    assert b'"cursor":18446744073709551617' in dump_message(states[0])


# ----- Scarf's counts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["processed", "total"])
def test_a_done_import_that_counts_fewer_events_fails_the_sync_naming_the_counts(emulator, mode):
    first = downloads_with_states(10, every=10)
    second = downloads_with_states(10, every=10, start=10)
    states: list = []
    items = [*first, Until(lambda: len(states) == 1, "the first state",
                           then=lambda: emulator.short_count_next(1, missing=2, mode=mode)), *second]
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10), catalog(STREAM))

    error = drain(states, writer.write(script(items)))

    assert isinstance(error, ImportIncomplete), error
    assert error.failure_type == FailureType.transient_error
    second_import = our_imports(emulator)[1]["id"]
    assert f"Scarf counted 8 of 10 events of import {second_import}" in error.message
    assert "on_failed_events" in error.message
    assert state_ids(states) == state_ids(input_states(first))


def test_a_short_count_under_warn_is_counted_as_rejected(emulator):
    emulator.short_count_next(1, missing=3)
    messages = downloads_with_states(10, every=10)
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10, on_failed_events="warn"),
                         catalog(STREAM))

    states, error = run(writer, messages)

    assert error is None
    assert [stats(s) for s in states] == [{"recordCount": 10, "rejectedRecordCount": 3}]


# ----- a failing sync keeps its finished work ----------------------------------------------------------------


def test_a_token_revoked_mid_sync_echoes_the_states_whose_imports_were_done(emulator):
    emulator.revoke_token_after(TOKEN, imports=2)
    emulator.set_rate(200)  # imports take a moment, so the third upload meets the revoked token
    messages = downloads_with_states(100, every=20)
    writer = make_writer(emulator, make_config(emulator, batch_max_events=20, max_concurrent_imports=1),
                         catalog(STREAM))

    states, error = run(writer, messages)

    assert isinstance(error, ScarfAuthError), error
    assert error.failure_type == FailureType.config_error
    # The first import was confirmed done; the second was created as the token's last, and its status can no
    # longer be read, so its state stays unsaved (a re-run re-sends those events, which override themselves).
    assert state_ids(states) == state_ids(input_states(messages)[:1])
    assert_everything_once(emulator, range(40))


def test_an_import_scarf_reports_failed_stops_the_sync_after_the_safe_states(emulator):
    first = downloads_with_states(10, every=10)
    states: list = []
    items = [*first, Until(lambda: len(states) == 1, "the first state",
                           then=lambda: emulator.final_status_next(1, "failed")),
             *downloads_with_states(10, every=10, start=10)]
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10), catalog(STREAM))

    error = drain(states, writer.write(script(items)))

    assert isinstance(error, ImportFailed), error
    assert "'failed'" in error.message and our_imports(emulator)[1]["id"] in error.message
    assert state_ids(states) == state_ids(input_states(first))


@pytest.mark.parametrize("a_first", [True, False], ids=["a-done-first", "b-fails-first"])
def test_the_state_of_another_streams_import_is_echoed_when_one_import_fails(emulator, a_first):
    # Stream a's import succeeds, stream b's is reported failed. Whichever ends first, a's state is echoed:
    # a failure stops new uploads but lets the imports in flight end.
    emulator.set_rate(None if a_first else 20)
    part_a = [record("a", download(n)) for n in range(10)] + [stream_state("a", 10)]
    part_b = [record("b", download(n)) for n in range(10, 20)] + [stream_state("b", 20)]
    items = [*part_a, Until(lambda: our_imports(emulator), "stream a's import",
                            then=lambda: emulator.final_status_next(1, "failed")), *part_b,
             Until(lambda: len(our_imports(emulator)) == 2, "stream b's import", then=lambda: emulator.set_rate(None))]
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10, max_concurrent_imports=2),
                         catalog("a", "b"))

    states, error = run(writer, script(items))

    assert isinstance(error, ImportFailed), error
    assert state_ids(states) == state_ids(part_a[-1:])


# ----- outages ---------------------------------------------------------------------------------------------


def _end_outage_after(emulator, failed: int):
    """End the outage once `failed` requests were answered with an error (seen in the emulator's log)."""
    wait_for(lambda: sum(1 for r in emulator.requests if r.status is None or r.status >= 500) >= failed,
             f"{failed} failed requests")
    return emulator.end_outage()


@pytest.mark.parametrize("only", ["import-get", "import-post", "any"])
def test_an_outage_is_ridden_out_and_every_event_arrives_once(emulator, only):
    emulator.start_outage(only=only, status=503)
    helper = Background(lambda: _end_outage_after(emulator, 8))
    messages = downloads_with_states(60, every=20)
    # The client's per-call budget (10 s) would end it; the poll and upload budgets reach further.
    writer = make_writer(emulator, make_config(emulator, batch_max_events=20), catalog(STREAM))

    states, error = run(writer, messages)

    assert helper.join() == 1
    assert error is None, error
    assert state_ids(states) == state_ids(input_states(messages))
    assert_everything_once(emulator, range(60))


def test_half_of_all_answers_failing_is_ridden_out(emulator):
    emulator.flaky(every=2, status=503)
    emulator.flaky(every=3, status="reset")
    messages = downloads_with_states(100, every=20)

    states, error = run(make_writer(emulator, make_config(emulator, batch_max_events=20), catalog(STREAM)),
                        messages)

    assert error is None, error
    assert state_ids(states) == state_ids(input_states(messages))
    assert_everything_once(emulator, range(100))


def test_an_upload_outage_longer_than_the_upload_budget_fails_saying_how_long_it_tried(emulator):
    emulator.start_outage(only="import-post", status=503)
    writer = writer_with(emulator, make_config(emulator), upload_retry_seconds=0.5)

    states, error = run(writer, downloads_with_states(10, every=10))

    assert isinstance(error, ScarfTransientError) and not isinstance(error, SyncCancelled), error
    assert "kept failing while uploading batch 1" in error.message
    assert "HTTP 503" in error.message and " s." in error.message.split("over ")[1][:12]
    assert states == []
    emulator.end_outage()


def test_a_status_outage_past_the_import_deadline_fails_naming_the_import(emulator):
    emulator.start_outage(only="import-get", status=503)
    writer = writer_with(emulator, make_config(emulator), import_timeout_seconds=0.6)

    states, error = run(writer, downloads_with_states(10, every=10))

    emulator.end_outage()
    assert isinstance(error, ImportFailed), error
    [started] = our_imports(emulator)
    assert started["id"] in error.message and "import_timeout_minutes" in error.message
    assert states == []


# ----- statuses ----------------------------------------------------------------------------------------------


def test_an_unknown_status_is_not_final_and_the_sync_completes(emulator):
    emulator.interim_status_next(3, status="queued")
    messages = downloads_with_states(30, every=10)

    states, error = run(make_writer(emulator, make_config(emulator, batch_max_events=10), catalog(STREAM)), messages)

    assert error is None, error
    assert state_ids(states) == state_ids(input_states(messages))
    assert_everything_once(emulator, range(30))


def test_a_404_right_after_creation_is_transient(emulator):
    emulator.fail_next(3, 404, only="import-get")
    messages = downloads_with_states(10, every=10)

    states, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)), messages)

    assert error is None, error
    assert state_ids(states) == state_ids(input_states(messages))
    assert_everything_once(emulator, range(10))


def test_a_404_that_lasts_past_the_grace_fails_naming_the_import(emulator):
    emulator.fail_next(10_000, 404, only="import-get")
    tuning = dataclasses.replace(FAST_TUNING, not_found_grace_seconds=0.3)
    writer = Writer(config=parse_config(make_config(emulator)), streams=parse_catalog(catalog(STREAM)),
                    client=fast_client(emulator), tuning=tuning)

    _, error = run(writer, downloads_with_states(10, every=10))

    emulator.clear_faults()
    assert isinstance(error, ImportFailed), error
    assert our_imports(emulator)[0]["id"] in error.message and "404" in error.message


# ----- servers that do not answer, redirects ----------------------------------------------------------------


def test_a_silent_server_fails_the_upload_within_its_budget_saying_it_did_not_answer(emulator):
    emulator.silence_next(1000, only="import-post")
    client = fast_client(emulator, read_timeout=0.2)
    config = dataclasses.replace(parse_config(make_config(emulator)), upload_retry_seconds=1.0)
    writer = Writer(config=config, streams=parse_catalog(catalog(STREAM)), client=client, tuning=FAST_TUNING)

    states, error = run(writer, downloads_with_states(10, every=10))

    emulator.release_silenced()
    assert isinstance(error, ScarfTransientError), error
    assert "answer within" in error.message and "uploading batch 1" in error.message
    assert states == []


def test_a_redirect_stops_the_sync_naming_the_other_host_and_sends_it_nothing(emulator):
    elsewhere = new_emulator()
    elsewhere.start()
    try:
        emulator.redirect_next(1, only="import-post", status=307, location=elsewhere.url)
        states, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)),
                            downloads_with_states(10, every=10))
    finally:
        elsewhere.stop()
    assert isinstance(error, ScarfConfigError), error
    assert elsewhere.url in error.message and "redirect" in error.message
    assert elsewhere.requests == []
    assert states == []


# ----- cancellation (in-process; the CLI's signals are tested in test_write_signals.py) -----------------------


def test_cancelling_echoes_the_states_of_imports_already_done_then_fails(emulator):
    cancelled = threading.Event()
    first = downloads_with_states(10, every=10)
    writer = Writer(config=parse_config(make_config(emulator, batch_max_events=10)),
                    streams=parse_catalog(catalog(STREAM)), client=fast_client(emulator, cancelled=cancelled),
                    tuning=FAST_TUNING, cancelled=cancelled)

    def first_import_done():
        done = [i for i in our_imports(emulator) if i["status"] == "done"]
        return done

    emulator.set_rate(None)
    items = [*first, Until(first_import_done, "the first import to be done", then=cancelled.set),
             *downloads_with_states(10, every=10, start=10)]
    states: list = []
    error = drain(states, writer.write(script(items)))

    assert isinstance(error, SyncCancelled), error
    assert state_ids(states) == state_ids(input_states(first))


def test_cancelling_aborts_every_import_in_flight_in_parallel_and_reports_them(emulator):
    emulator.set_rate(1)
    cancelled = threading.Event()
    writer = Writer(config=parse_config(make_config(emulator, batch_max_events=10, max_concurrent_imports=3)),
                    streams=parse_catalog(catalog(STREAM)), client=fast_client(emulator, cancelled=cancelled),
                    tuning=FAST_TUNING, cancelled=cancelled)
    items = [*downloads_with_states(30, every=10),
             Until(lambda: len(our_imports(emulator)) == 3, "three imports in flight", then=cancelled.set)]

    states, error = run(writer, script(items))

    assert isinstance(error, SyncCancelled), error
    ids = [i["id"] for i in our_imports(emulator)]
    assert {emulator.get_import(OWNER, i)["status"] for i in ids} == {"aborted"}
    assert all(i in error.message for i in ids) and "Aborted import(s)" in error.message
    assert states == []


def test_a_hanging_abort_does_not_hold_the_exit_and_is_reported(emulator):
    emulator.set_rate(1)
    emulator.silence_next(100, only="abort")
    cancelled = threading.Event()
    tuning = dataclasses.replace(FAST_TUNING, shutdown_seconds=1.0)
    writer = Writer(config=parse_config(make_config(emulator, batch_max_events=10)),
                    streams=parse_catalog(catalog(STREAM)),
                    client=fast_client(emulator, cancelled=cancelled, read_timeout=30), tuning=tuning,
                    cancelled=cancelled)
    items = [*downloads_with_states(10, every=10),
             Until(lambda: our_imports(emulator), "the import", then=cancelled.set)]

    _, error = run(writer, script(items))

    emulator.release_silenced()
    assert isinstance(error, SyncCancelled), error
    [started] = our_imports(emulator)
    assert "Could not abort" in error.message and started["id"] in error.message


# ----- odd input -----------------------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize("depth", [1000, 1500])
def test_a_record_nested_too_deep_is_an_invalid_record_naming_the_limit(emulator, depth):
    deep = b'{"type":"RECORD","record":{"stream":"downloads","data":{"time":"%s","package":"%s","deep":%s}}}\n' % (
        now_iso().encode(), PACKAGE.encode(), b'{"n":' * depth + b'"x"' + b"}" * depth)
    before = downloads_with_states(5, every=5)
    after = downloads_with_states(5, every=5, start=5)

    states, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)), [*before, deep, *after])
    assert isinstance(error, InvalidInput), error
    assert ("64 levels" if depth < 1024 else "1024 levels") in error.message
    assert state_ids(states) == state_ids(input_states(before))

    emulator.clear_requests()
    states, error = run(make_writer(emulator, make_config(emulator, on_invalid_record="skip"), catalog(STREAM)),
                        [*before, deep, *after])
    assert error is None, error
    assert state_ids(states) == state_ids(input_states(before + after))


def test_a_byte_order_mark_at_the_start_of_the_input_is_not_an_error(emulator):
    messages = lines(downloads_with_states(10, every=10))
    messages[0] = b"\xef\xbb\xbf" + messages[0]

    states, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)), messages)

    assert error is None, error
    assert [stats(s) for s in states] == [{"recordCount": 10, "rejectedRecordCount": 0}]


def test_under_skip_a_message_glued_to_a_bad_line_is_still_read(emulator, tmp_path):
    messages = lines([record(STREAM, download(n)) for n in range(3)])
    messages[1] = b'{"type": "RECORD", "record": {"stre' + messages[1]  # a writer lost the line's end and newline
    messages += lines([stream_state(STREAM, 3)])
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(tmp_path / "rejected.ndjson"))

    states, error = run(make_writer(emulator, config, catalog(STREAM)), messages)

    assert error is None, error
    assert [stats(s) for s in states] == [{"recordCount": 3, "rejectedRecordCount": 0}]
    assert_everything_once(emulator, range(3))
    [kept] = [orjson.loads(line) for line in (tmp_path / "rejected.ndjson").read_bytes().splitlines()]
    assert kept["input_line"] == 2 and "glued" in kept["reason"]


def test_a_state_without_a_state_object_is_a_bad_line(emulator):
    messages = [*downloads_with_states(5, every=5), {"type": "STATE"}]
    states, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)), messages)
    assert isinstance(error, InvalidInput) and "without a `state` object" in error.message
    assert state_ids(states) == state_ids(messages[5:6])


def test_rejected_records_are_kept_verbatim_in_a_private_file(emulator, tmp_path):
    path = tmp_path / "rejected.ndjson"
    bad = b'{"type":"RECORD","record":{"stream":"downloads","data":{"time":"yesterday","n":18446744073709551617}}}'
    messages = [*lines(downloads_with_states(3, every=3)), bad + b"\n"]
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(path))

    _, error = run(make_writer(emulator, config, catalog(STREAM)), messages)

    assert error is None
    assert path.stat().st_mode & 0o777 == 0o600
    [kept] = path.read_bytes().splitlines()
    assert kept.endswith(b',"message":' + bad + b"}")
    assert json.loads(kept)["message"]["record"]["data"]["n"] == 18446744073709551617
    assert json.loads(kept)["field"] == "$time"


@pytest.mark.parametrize("case", ["folder", "missing_folder", "symlink"])
def test_an_unusable_rejected_records_path_fails_before_any_input_is_read(emulator, tmp_path, case):
    target = tmp_path / "real.ndjson"
    target.write_bytes(b"")
    path = {"folder": tmp_path, "missing_folder": tmp_path / "nope" / "r.ndjson", "symlink": tmp_path / "link"}[case]
    if case == "symlink":
        path.symlink_to(target)
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(path))
    consumed = []

    def chunks():
        consumed.append(True)
        yield from lines(downloads_with_states(3, every=3))

    states, error = run(make_writer(emulator, config, catalog(STREAM)), chunks())

    assert isinstance(error, ScarfConfigError), error
    assert "rejected_records_path" in error.message
    assert consumed == [] and states == [] and emulator.requests == []


def test_global_states_reset_the_numbering_of_every_stream(emulator):
    row = download(1)
    messages = [record("a", row), record("a", row), global_state(1), record("a", row), record("a", row),
                global_state(2)]
    states, error = run(make_writer(emulator, make_config(emulator), catalog("a")), messages)
    assert error is None and len(states) == 2
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 2


def test_progress_and_errors_never_log_record_values(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    emulator.flaky(every=2, status=503)
    secret = "203.0.113.99"
    messages = [record(STREAM, download(n, remote_address=secret)) for n in range(20)] + [stream_state(STREAM, 20)]
    _, error = run(make_writer(emulator, make_config(emulator), catalog(STREAM)), messages)
    assert error is None
    assert secret not in caplog.text and TOKEN not in caplog.text


def test_no_repr_of_the_client_or_its_parts_shows_the_token(emulator):
    client = fast_client(emulator)
    parts = [client, client._transport, *(v for v in vars(client).values() if v != TOKEN)]
    assert all(TOKEN not in repr(part) for part in parts)


def test_a_stream_status_complete_trace_closes_the_open_batch_at_once(emulator):
    # Batches close only at 10,000 events or 840 s: without the trace the state would wait for that age.
    messages = downloads_with_states(5, every=5)
    complete = {"type": "TRACE", "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0, "stream_status": {
        "stream_descriptor": {"name": STREAM}, "status": "COMPLETE"}}}
    states: list = []
    items = [*messages, complete, Until(lambda: len(states) == 1, "the state after the stream completed")]
    writer = make_writer(emulator, make_config(emulator, batch_max_events=10_000, batch_max_age_seconds=840),
                         catalog(STREAM))

    error = drain(states, writer.write(script(items)))

    assert error is None, error
    assert state_ids(states) == state_ids(input_states(messages))
