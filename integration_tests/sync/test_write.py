"""`write` end to end against the emulator: targets, streams, and the state rule.

The state rule: a state is yielded only when every event of the records before it is in an import
that Scarf reports `done`. The tests read the writer's generator one state at a time and check, at
that moment, what the emulator holds.
"""

from __future__ import annotations

import threading

import orjson
import pytest

from destination_scarf.errors import SyncCancelled
from support import (
    OWNER,
    PACKAGE,
    PACKAGE_2,
    PIXEL,
    catalog,
    download,
    global_state,
    lines,
    make_config,
    make_writer,
    messages_of,
    new_plain_emulator,
    now_iso,
    record,
    run_connector,
    run_write,
    stream_state,
    wait_for,
    write_json,
)


def stored_ids(emulator, key: str = "id") -> list[str]:
    return sorted(str(event[key]) for event in emulator.events(OWNER))


def test_multi_artifact_sync_delivers_every_event_once_with_its_artifact(emulator):
    messages = [record("downloads", download(n, package=PACKAGE if n % 2 else PACKAGE_2)) for n in range(120)]
    messages.append(stream_state("downloads", 120))
    states = run_write(emulator, make_config(emulator), catalog("downloads"), messages)

    assert len(states) == 1
    events = emulator.events(OWNER)
    assert len(events) == 120
    assert sorted(int(e["id"]) for e in events) == list(range(120))
    assert {e["$package"] for e in events} == {PACKAGE, PACKAGE_2}
    assert all(e["$time"].endswith("Z") and e["$unique_id"] for e in events)
    # custom variables arrive as text, Scarf fields with their $ names
    assert {e["country"] for e in events} == {"NL"}
    assert all("remote_address" not in e and e["$remote_address"] for e in events)
    assert len(emulator.imports(OWNER)) == 3  # 120 events in batches of 50


@pytest.mark.parametrize(
    ("target", "artifact", "path"),
    [({"target_type": "package", "package_id": PACKAGE}, PACKAGE, f"/v2/packages/{OWNER}/{PACKAGE}/import"),
     ({"target_type": "tracking_pixel", "tracking_pixel_id": PIXEL}, PIXEL,
      f"/v2/tracking-pixels/{OWNER}/{PIXEL}/import")],
)
def test_single_artifact_targets_use_their_endpoint(emulator, target, artifact, path):
    messages = [record("views", {"time": now_iso(), "ip": "192.0.2.1", "n": n}) for n in range(30)]
    messages.append(stream_state("views", 30))
    run_write(emulator, make_config(emulator, target=target), catalog("views"), messages)

    assert emulator.event_count(OWNER) == 30
    assert len(emulator.events(OWNER, artifact=artifact)) == 30
    assert {r.path for r in emulator.requests if r.method == "POST"} == {path}
    assert all("$package" not in e and "$tracking_pixel" not in e for e in emulator.events(OWNER))


def test_each_state_is_yielded_only_after_its_records_are_imported(emulator):
    """Read the generator one state at a time, with slow imports, and check the emulator each time."""
    emulator.set_rate(400)  # events per second per import: imports stay `importing` for a while
    messages = []
    for n in range(200):
        messages.append(record("downloads", download(n)))
        if n % 40 == 39:
            messages.append(stream_state("downloads", n))
    writer = make_writer(emulator, make_config(emulator, batch_max_events=30), catalog("downloads"))

    seen = 0
    for state in writer.write(lines(messages)):
        cursor = state["state"]["stream"]["stream_state"]["cursor"]
        stored = {int(e["id"]) for e in emulator.events(OWNER)}
        assert set(range(cursor + 1)) <= stored, f"state {cursor} echoed before its records were imported"
        seen += 1
    assert seen == 5


def test_states_are_echoed_exactly_as_received_plus_destination_stats(emulator):
    first = stream_state("downloads", "c1", future_key={"nested": [1, 2]})
    first["state"]["stream"]["stream_state"] = {"cursor": "c1", "weird": None, "deep": {"x": 1.5}}
    glob = global_state("g1", sourceStats={"recordCount": 3.0})
    messages = [record("downloads", download(1)), record("downloads", download(2)), first,
                record("downloads", download(3)), glob]
    expected_first = orjson.loads(orjson.dumps(first))
    expected_glob = orjson.loads(orjson.dumps(glob))

    states = run_write(emulator, make_config(emulator), catalog("downloads"), messages)

    expected_first["state"]["destinationStats"] = {"recordCount": 2, "rejectedRecordCount": 0}
    expected_glob["state"]["destinationStats"] = {"recordCount": 3, "rejectedRecordCount": 0}
    assert states == [expected_first, expected_glob]
    assert "id" in states[0]["state"] and states[1]["state"]["global"] == glob["state"]["global"]


def test_interleaved_streams_count_per_stream_and_keep_order(emulator):
    messages = []
    for n in range(90):
        stream = ("downloads", "views", "clones")[n % 3]
        messages.append(record(stream, download(n)))
        if n % 15 == 14:
            messages.append(stream_state(("downloads", "views", "clones")[n // 15 % 3], n))
    messages += [stream_state(name, "end") for name in ("downloads", "views", "clones")]
    states = run_write(emulator, make_config(emulator, batch_max_events=20), catalog("downloads", "views", "clones"),
                       messages)

    assert [s["state"]["id"] for s in states] == [m["state"]["id"] for m in messages if m["type"] == "STATE"]
    by_stream: dict[str, int] = {}
    for state in states:
        name = state["state"]["stream"]["stream_descriptor"]["name"]
        by_stream[name] = by_stream.get(name, 0) + state["state"]["destinationStats"]["recordCount"]
    assert by_stream == {"downloads": 30, "views": 30, "clones": 30}
    assert emulator.event_count(OWNER) == 90


def test_a_stream_state_does_not_wait_for_other_streams_batches(emulator):
    """Stream B's state needs only B's batches: it leaves while A's slow import is still running."""
    emulator.set_rate(None)
    messages = [record("a", download(n)) for n in range(50)]  # fills batch 1 (50 events): uploaded at once
    emulator.set_rate(1)  # batch 1 will take ~50 s at this rate
    writer = make_writer(emulator, make_config(emulator, batch_max_events=50, batch_max_age_seconds=1),
                         catalog("a", "b"))
    gen = writer.write(lines(messages + [record("b", download(100)), stream_state("b", "b1")]) + [b""] * 200)
    # The batch holding b's record closes by age; b's state must come out while a's import runs.
    state = next(gen)
    assert state["state"]["stream"]["stream_descriptor"]["name"] == "b"
    assert any(i["status"] == "importing" for i in emulator.imports(OWNER))
    emulator.set_rate(None)
    gen.close()


def test_global_state_waits_for_every_stream(emulator):
    messages = [record("a", download(1)), record("b", download(2)), global_state("g")]
    states = run_write(emulator, make_config(emulator), catalog("a", "b"), messages)
    assert len(states) == 1 and states[0]["state"]["destinationStats"]["recordCount"] == 2
    assert emulator.event_count(OWNER) == 2


def test_resending_the_same_records_overrides_instead_of_counting_twice(emulator):
    messages = [record("downloads", download(n)) for n in range(40)] + [stream_state("downloads", 40)]
    run_write(emulator, make_config(emulator), catalog("downloads"), messages)
    run_write(emulator, make_config(emulator), catalog("downloads"), messages)
    assert emulator.event_count(OWNER) == 40


def test_append_dedup_uses_the_primary_key_for_unique_ids(emulator):
    raw_catalog = catalog("downloads", sync_mode="append_dedup", primary_key=[["id"]])
    first = [record("downloads", download(n)) for n in range(10)] + [stream_state("downloads", 1)]
    changed = [record("downloads", download(n, version="9.9.9")) for n in range(10)] + [stream_state("downloads", 2)]
    run_write(emulator, make_config(emulator), raw_catalog, first)
    run_write(emulator, make_config(emulator), raw_catalog, changed)
    events = emulator.events(OWNER)
    assert len(events) == 10 and {e["$version"] for e in events} == {"9.9.9"}


def test_cli_write_echoes_states_exactly_and_logs_a_summary(emulator, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator))
    cat = write_json(tmp_path / "catalog.json", catalog("downloads"))
    state = stream_state("downloads", "c", platformKey="kept")
    stdin = b"".join(lines([record("downloads", download(n)) for n in range(60)] + [state]))
    assert emulator.url.startswith("https://")  # the connector trusts the test CA through REQUESTS_CA_BUNDLE
    result = run_connector(["write", "--config", config, "--catalog", cat], stdin=stdin)

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = messages_of(result.stdout)
    states = [m for m in out if m["type"] == "STATE"]
    assert len(states) == 1
    assert states[0]["state"]["platformKey"] == "kept" and states[0]["state"]["id"] == state["state"]["id"]
    assert states[0]["state"]["destinationStats"] == {"recordCount": 60, "rejectedRecordCount": 0}
    summary = [m["log"]["message"] for m in out if m["type"] == "LOG" and "Sync summary" in m["log"]["message"]]
    assert summary and "60 records read" in summary[0]
    assert emulator.event_count(OWNER) == 60
    assert b"test-token" not in result.stdout + result.stderr


def test_cli_write_over_plain_http_to_a_loopback_emulator_still_works(tmp_path):
    """The tests' emulator serves HTTPS, as Scarf does; plain http:// stays allowed towards a loopback host (the
    local emulator of `make demo`), so this one sync runs on plain HTTP on purpose."""
    with new_plain_emulator() as plain:
        assert plain.url.startswith("http://127.0.0.1:")
        config = write_json(tmp_path / "config.json", make_config(plain))
        cat = write_json(tmp_path / "catalog.json", catalog("downloads"))
        stdin = b"".join(lines([record("downloads", download(n)) for n in range(10)] + [stream_state("downloads", 10)]))
        result = run_connector(["write", "--config", config, "--catalog", cat], stdin=stdin)

        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert [m["type"] for m in messages_of(result.stdout) if m["type"] == "STATE"] == ["STATE"]
        assert plain.event_count(OWNER) == 10


def test_the_cdk_programmatic_write_interface_imports_and_returns_states(emulator):
    """DestinationScarf.write (the CDK's interface for parsed messages) runs the same writer."""
    from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer

    from destination_scarf import DestinationScarf

    messages = [record("downloads", download(n)) for n in range(20)] + [stream_state("downloads", 20)]
    parsed = [AirbyteMessageSerializer.load(m) for m in messages]
    configured = ConfiguredAirbyteCatalogSerializer.load(catalog("downloads"))
    out = list(DestinationScarf().write(make_config(emulator), configured, parsed))

    assert [m.type.value for m in out] == ["STATE"]
    assert out[0].state.stream.stream_state.cursor == 20
    assert emulator.event_count(OWNER) == 20


def test_cli_write_with_an_invalid_config_fails_naming_the_field_and_sends_nothing(emulator, tmp_path):
    bad = make_config(emulator, target={"target_type": "package", "package_id": "my-package"})
    config = write_json(tmp_path / "config.json", bad)
    cat = write_json(tmp_path / "catalog.json", catalog("downloads"))
    stdin = b"".join(lines([record("downloads", download(1)), stream_state("downloads", 1)]))
    result = run_connector(["write", "--config", config, "--catalog", cat], stdin=stdin)

    assert result.returncode == 1
    out = messages_of(result.stdout)
    traces = [m for m in out if m["type"] == "TRACE"]
    assert len(traces) == 1 and traces[0]["trace"]["error"]["failure_type"] == "config_error"
    assert "target.package_id" in traces[0]["trace"]["error"]["message"]
    assert not [m for m in out if m["type"] == "STATE"] and emulator.requests == []


def test_cli_write_refuses_overwrite_naming_the_fix_for_airbyte_and_pyairbyte_and_sends_nothing(emulator, tmp_path):
    # What PyAirbyte's default write strategy sends for a stream with no primary key and no cursor.
    config = write_json(tmp_path / "config.json", make_config(emulator))
    cat = write_json(tmp_path / "catalog.json", catalog("access_log", sync_mode="overwrite"))
    stdin = b"".join(lines([record("access_log", download(1)), stream_state("access_log", 1)]))
    result = run_connector(["write", "--config", config, "--catalog", cat], stdin=stdin)

    assert result.returncode == 1
    out = messages_of(result.stdout)
    traces = [m for m in out if m["type"] == "TRACE"]
    assert len(traces) == 1 and traces[0]["trace"]["error"]["failure_type"] == "config_error"
    message = traces[0]["trace"]["error"]["message"]
    assert "'access_log' asks for destination sync mode 'overwrite'" in message
    assert "cannot be deleted or overwritten" in message
    assert "choose the Append or Append + Deduped sync mode" in message
    assert 'write_strategy="append"' in message
    assert not [m for m in out if m["type"] == "STATE"] and emulator.requests == []


# ----- the loop while every import slot is busy ---------------------------------------------------------


class PulledChunks:
    """An input of chunks that counts how many the writer has asked for."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.pulled = chunks, 0

    def __iter__(self):
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def _slots_full(records: int) -> PulledChunks:
    """The input: `records` records with a state after every 10, in one chunk, then one more record. With one slot
    and batches of 10, reading must wait at the third batch: one import runs, the second batch waits for it."""
    messages = []
    for n in range(records):
        messages.append(record("downloads", download(n)))
        if (n + 1) % 10 == 0:
            messages.append(stream_state("downloads", n + 1))
    first = b"".join(lines(messages))
    return PulledChunks([first, b"".join(lines([record("downloads", download(records))]))])


def test_states_are_echoed_while_reading_waits_for_a_free_import_slot(emulator):
    emulator.set_rate(1e-9)  # imports take (nearly) forever until the test lets them go
    writer = make_writer(emulator, make_config(emulator, max_concurrent_imports=1, batch_max_events=10),
                         catalog("downloads"))
    chunks = _slots_full(30)

    def release_when_reading_waits() -> None:
        wait_for(lambda: writer.records_read == 30 and len(emulator.imports(OWNER)) == 1, "reading to wait")
        emulator.set_rate(None)

    helper = threading.Thread(target=release_when_reading_waits, daemon=True)
    helper.start()
    states = writer.write(chunks)
    first = next(states)
    # The first batch's state left while reading still waited at the third batch: the next chunk was not read.
    assert first["state"]["stream"]["stream_state"]["cursor"] == 10
    assert (writer.records_read, chunks.pulled) == (30, 1)
    rest = list(states)
    assert [s["state"]["stream"]["stream_state"]["cursor"] for s in rest] == [20, 30]
    assert chunks.pulled == 2 and emulator.event_count(OWNER) == 31
    helper.join(5)


def test_a_cancel_while_reading_waits_for_a_slot_stops_the_sync(emulator):
    emulator.set_rate(1e-9)
    cancelled = threading.Event()
    writer = make_writer(emulator, make_config(emulator, max_concurrent_imports=1, batch_max_events=10),
                         catalog("downloads"), cancelled=cancelled)
    chunks = _slots_full(30)

    def cancel_when_reading_waits() -> None:
        wait_for(lambda: writer.records_read == 30 and len(emulator.imports(OWNER)) == 1, "reading to wait")
        cancelled.set()

    helper = threading.Thread(target=cancel_when_reading_waits, daemon=True)
    helper.start()
    states: list = []
    with pytest.raises(SyncCancelled) as stopped:
        for state in writer.write(chunks):
            states.append(state)
    assert states == [] and chunks.pulled == 1  # nothing was done, and the rest of the input was never read
    [only] = emulator.imports(OWNER)
    assert only["status"] == "aborted" and only["id"] in stopped.value.message
    emulator.set_rate(None)
    helper.join(5)
