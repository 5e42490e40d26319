"""SIGTERM in every state a sync can be in: the real command line leaves by itself, says it was cancelled, and has
echoed every state that was safe and nothing past it.

The states: reading (no input arriving), uploading (an upload never answered), polling (an import that never
finishes), waiting for a free import slot, the pre-flight call to Scarf, the pre-flight probe of the dead-letter
store, and writing the store during the sync.

No test here looks at a clock. Each one is built so that, without the cancel being honoured, the process would
block far longer than the hang guard (`GUARD_SECONDS`, which only stops a hung test): stdin stays open and
silent, every budget that could end the wait is at its maximum (upload_retry_minutes, import_timeout_minutes,
slot_wait_minutes), and Scarf or the store accepts and never answers. The signal is sent once the state is seen
from outside (the emulator's records, the relay's counters), never after a fixed sleep. What proves that the
wait woke on the cancel is what the process printed: a TRACE that says it was cancelled *in that state* (a
wait that ran out would end with another message: a budget spent, an endpoint that did not answer), the
states that were safe, and nothing past them.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from relay import Relay

from support import OWNER, catalog, download, make_config, now_iso, record, wait_for
from sync_helpers import STREAM, Connector, downloads_with_states, our_imports, polled, requests_of, state_ids

#: Only a hang guard: a cancelled sync leaves within seconds; the waits below would last minutes to days.
GUARD_SECONDS = 60.0

#: Every budget that could end a wait on its own, at its maximum (a day), and batches that never close by age.
PATIENT = {"upload_retry_minutes": 1440, "import_timeout_minutes": 1440, "slot_wait_minutes": 1440,
           "batch_max_age_seconds": 840}

KEY_ID = "AKIAFAKEKEYID0123456"
SECRET = "fake/Secret+Access+Key0123456789abcdefXYZ"


def patient_config(emulator, **overrides: Any) -> dict[str, Any]:
    return make_config(emulator, **{"batch_max_events": 10, "max_concurrent_imports": 2, **PATIENT, **overrides})


def logs(connector: Connector, level: str | None = None) -> list[str]:
    return [m["log"]["message"] for m in connector.messages
            if m["type"] == "LOG" and (level is None or m["log"]["level"] == level)]


def sigterm(connector: Connector) -> int:
    """SIGTERM, then wait for the process to end by itself (the guard only stops a hang)."""
    connector.proc.send_signal(signal.SIGTERM)
    return connector.finish(timeout=GUARD_SECONDS)


def cancelled_trace(connector: Connector, code: int) -> str:
    """The process ended by itself with a TRACE saying it was cancelled (a transient error); its message."""
    assert code == 1, (code, connector.messages[-3:])  # exited by itself, not killed by the signal (-15)
    assert any("Received SIGTERM" in text for text in logs(connector))
    last = connector.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["type"] == "ERROR", connector.messages[-3:]
    error = last["trace"]["error"]
    assert error["failure_type"] == "transient_error"
    assert "cancelled" in error["message"]
    return error["message"]


def assert_cancel_reported_once(connector: Connector) -> None:
    """The imports were cancelled once, and the report logged once (not again when the sync's resources close)."""
    texts = logs(connector, "WARN")
    assert len([t for t in texts if t.startswith("The sync was cancelled.")]) == 1, texts
    assert not [t for t in texts if t.startswith("The sync stopped early.")], texts


def first_state_echoed(connector: Connector) -> list[dict]:
    """Batch 1 and its state, sent and echoed: the sync is past its pre-flight and has a safe state."""
    first = downloads_with_states(10, every=10)
    connector.send(first)
    assert state_ids([connector.next_state()]) == state_ids(first[-1:])
    return first[-1:]


# ----- the sync's own states -------------------------------------------------------------------------------------


def test_sigterm_while_reading_with_no_input_arriving(emulator, tmp_path):
    # stdin stays open and silent, and the open batch closes neither by size nor (in 14 minutes) by age.
    connector = Connector(tmp_path, patient_config(emulator), catalog(STREAM))
    try:
        safe = first_state_echoed(connector)
        connector.send([record(STREAM, download(n)) for n in range(10, 15)])  # an open batch, then nothing
        code = sigterm(connector)
    finally:
        connector.kill()

    message = cancelled_trace(connector, code)
    assert "No import of this sync was in flight" in message
    assert state_ids(connector.states()) == state_ids(safe)
    assert len(our_imports(emulator)) == 1  # the open batch was dropped, not uploaded
    assert_cancel_reported_once(connector)


def test_sigterm_while_an_upload_is_never_answered(emulator, tmp_path):
    # The upload's POST reaches Scarf, which holds the connection without a byte; its retry budget is a day.
    connector = Connector(tmp_path, patient_config(emulator), catalog(STREAM))
    try:
        safe = first_state_echoed(connector)
        emulator.silence_next(1, only="import-post")
        connector.send(downloads_with_states(10, every=10, start=10))
        wait_for(lambda: emulator.fault_summary()["silenced_connections"] == 1, "the upload to be held unanswered")
        code = sigterm(connector)
    finally:
        emulator.release_silenced()
        connector.kill()

    message = cancelled_trace(connector, code)
    assert "1 upload(s) had no answer yet" in message  # the cancel found the upload still on its way
    assert state_ids(connector.states()) == state_ids(safe)
    assert len(our_imports(emulator)) == 1  # the silenced POST created nothing
    assert_cancel_reported_once(connector)


def test_sigterm_while_polling_an_import_that_never_finishes(emulator, tmp_path):
    connector = Connector(tmp_path, patient_config(emulator), catalog(STREAM))
    try:
        safe = first_state_echoed(connector)
        emulator.set_rate(0.01)  # 10 events: 1000 s, within an import timeout of a day
        connector.send(downloads_with_states(10, every=10, start=10))
        [running] = wait_for(lambda: our_imports(emulator)[1:], "the second import")
        wait_for(lambda: polled(emulator, running["id"]), "the connector polling it")
        code = sigterm(connector)
    finally:
        connector.kill()

    message = cancelled_trace(connector, code)
    assert f"Aborted import(s) of this sync: {running['id']}." in message
    assert emulator.get_import(OWNER, running["id"])["status"] == "aborted"
    assert state_ids(connector.states()) == state_ids(safe)
    assert_cancel_reported_once(connector)


def test_sigterm_while_waiting_for_a_free_import_slot(emulator, tmp_path):
    connector = Connector(tmp_path, patient_config(emulator), catalog(STREAM))
    try:
        safe = first_state_echoed(connector)
        emulator.hold_slots(OWNER, 15)  # another tool holds every slot, for good
        connector.send(downloads_with_states(10, every=10, start=10))
        wait_for(lambda: any(r.status == 422 for r in requests_of(emulator, "import-post")), "a 422")
        code = sigterm(connector)
    finally:
        emulator.release_slots(OWNER)
        connector.kill()

    message = cancelled_trace(connector, code)
    assert "No import of this sync was in flight" in message
    assert any("import slots are busy" in text for text in logs(connector))
    assert state_ids(connector.states()) == state_ids(safe)
    assert len(our_imports(emulator)) == 1
    assert_cancel_reported_once(connector)


# ----- before the first input is read ----------------------------------------------------------------------------


def test_sigterm_during_the_pre_flight_call_to_scarf(emulator, tmp_path):
    # The token check before any input is read hangs: Scarf reads the request and never answers.
    emulator.silence_next(1, only="import-get")
    connector = Connector(tmp_path, patient_config(emulator), catalog(STREAM))
    try:
        wait_for(lambda: emulator.fault_summary()["silenced_connections"] == 1, "the pre-flight call to be held")
        code = sigterm(connector)
    finally:
        emulator.release_silenced()
        connector.kill()

    message = cancelled_trace(connector, code)
    # Cut short by the cancel: a call that ran out of its budget would have been logged as a failed check, and
    # the sync would have gone on to read its input.
    assert "while listing imports" in message
    assert not [text for text in logs(connector) if "Could not check the token" in text]
    assert connector.states() == []
    assert [r.category for r in emulator.requests] == ["import-get"]


@pytest.fixture
def isolated_aws_environment(monkeypatch):
    """No credentials, config files or instance metadata from this machine, in this process or the connector's."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


def storage_config(endpoint: str, bucket: str) -> dict[str, Any]:
    return {"storage_type": "S3", "s3_bucket_name": bucket, "s3_bucket_region": "us-east-1", "bucket_path": "dlq",
            "s3_endpoint": endpoint, "access_key_id": KEY_ID, "secret_access_key": SECRET}


def test_sigterm_during_the_pre_flight_probe_of_the_dead_letter_store(emulator, tmp_path, isolated_aws_environment):
    with Relay() as silent:  # an S3 endpoint that accepts connections and never answers
        config = patient_config(emulator, on_invalid_record="skip",
                                object_storage_config=storage_config(silent.url, "rejects"))
        connector = Connector(tmp_path, config, catalog(STREAM))
        try:
            wait_for(lambda: silent.swallowed, "the probe's request to reach the store")
            code = sigterm(connector)
        finally:
            connector.kill()

    message = cancelled_trace(connector, code)
    # Cut short by the cancel: a probe that ran out of its attempts would say the endpoint did not answer in time.
    assert "while it was checking the rejected-records store s3://rejects/dlq/" in message
    assert "did not answer in time" not in message
    assert "no input was read yet" in message and "rejected records not written" not in message  # none could be
    assert connector.states() == []
    assert requests_of(emulator, "import-post") == []


# ----- writing the dead-letter store during the sync ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3_client(url: str):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET)


def test_sigterm_while_writing_the_dead_letter_store(emulator, tmp_path, s3_server, isolated_aws_environment):
    s3 = s3_client(s3_server)
    s3.create_bucket(Bucket="rejects-cancel")
    with Relay(upstream=s3_server) as relay:  # forwards to moto until it turns into a black hole
        config = patient_config(emulator, batch_max_events=5, on_invalid_record="skip",
                                object_storage_config=storage_config(relay.url, "rejects-cancel"))
        connector = Connector(tmp_path, config, catalog(STREAM))
        try:
            part_a = downloads_with_states(5, every=5)
            connector.send(part_a)
            # Echoed: the sync is past its pre-flight, whose probe of the store went through the relay.
            assert state_ids([connector.next_state()]) == state_ids(part_a[-1:])
            assert relay.connections >= 1
            relay.black_hole()
            part_b = downloads_with_states(5, every=5, start=5)
            too_old = record(STREAM, download(99, time=now_iso(-9 * 86400)))  # rejected: must be stored first
            part_c = downloads_with_states(5, every=5, start=10)
            connector.send([*part_b, too_old, *part_c])
            # State B comes before the rejected record, so it leaves without waiting for the store; state C must
            # wait for the write, which goes into the black hole.
            assert state_ids([connector.next_state()]) == state_ids(part_b[-1:])
            wait_for(lambda: relay.swallowed, "the write of the rejected record to reach the store")
            wait_for(lambda: len([i for i in our_imports(emulator) if i["status"] == "done"]) == 3,
                     "batch C's import to be done, so that only the store holds state C back")
            code = sigterm(connector)
        finally:
            connector.kill()

    message = cancelled_trace(connector, code)
    # Cut short by the cancel: a write that ran out of its time would say the store did not finish in time.
    assert "while it was writing rejected records to s3://rejects-cancel/dlq/destination-scarf-" in message
    assert state_ids(connector.states()) == state_ids(part_a[-1:] + part_b[-1:])  # not C: its reject is not stored
    assert s3.list_objects_v2(Bucket="rejects-cancel").get("KeyCount") == 0
    # On the way out, the write the cancel cut short still holds the store (no other write can start before it
    # ends): the last tries to store the record say so at once, instead of each waiting out its time for nothing.
    warnings = logs(connector, "WARN")
    assert not [text for text in warnings if "did not finish" in text], warnings
    assert len([text for text in warnings if "an earlier write is still waiting for" in text]) == 2, warnings
