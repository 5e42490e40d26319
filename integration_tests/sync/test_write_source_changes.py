"""Fields the source or the platform nulled or truncated (`record.meta.changes`), through `write` and `preview`.

A change to a field that feeds $time, $unique_id or the artifact field makes the record invalid (on_invalid_record
applies), naming the field, the change and its reason; changes to other fields are counted per stream and said
once in the sync log. No record value ever reaches a log or an error.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from destination_scarf.errors import InvalidInput
from support import OWNER, catalog, download, lines, make_config, make_writer, messages_of, record, run_connector
from support import write_json as write_json_file
from sync_helpers import STREAM, WAIT_SECONDS, drain

SECRET = "SECRET-VALUE-9876"


def changed(n: int, *changes: tuple[str, str, str], **data: Any) -> dict[str, Any]:
    message = record(STREAM, download(n, country=SECRET, **data))
    message["record"]["meta"] = {"changes": [{"field": f, "change": c, "reason": r} for f, c, r in changes]}
    return message


NULLED_TIME = ("time", "NULLED", "SOURCE_FIELD_SIZE_LIMITATION")
TRUNCATED_UA = ("user_agent", "TRUNCATED", "PLATFORM_FIELD_SIZE_LIMITATION")


def test_a_changed_time_field_stops_the_sync_naming_the_field_the_change_and_its_reason(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    messages = [record(STREAM, download(1)), changed(2, NULLED_TIME)]
    states: list = []
    error = drain(states, make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages)))
    assert isinstance(error, InvalidInput)
    assert error.message.startswith("Record #2 of stream 'downloads' (input line 2) cannot become a Scarf event: "
                                    "$time comes from source field 'time', which the record's meta.changes mark "
                                    "NULLED (SOURCE_FIELD_SIZE_LIMITATION) by the source or the platform: the "
                                    "event's time would be wrong.")
    assert SECRET not in error.message and SECRET not in caplog.text
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 1  # the record before it was imported first


@pytest.mark.parametrize("stream_setup, change, field", [
    ({}, ("package", "TRUNCATED", "PLATFORM_FIELD_SIZE_LIMITATION"), "$package"),
    ({"primary_key": [["id"]], "sync_mode": "append_dedup"}, ("id", "NULLED", "SOURCE_SERIALIZATION_ERROR"),
     "$unique_id"),
    ({"field_mappings": [{"scarf_field": "$unique_id", "source_field": "ref.key"}]},
     ("ref", "TRUNCATED", "SOURCE_RECORD_SIZE_LIMITATION"), "$unique_id"),  # an object that holds the id
    ({}, ("/time", "NULLED", "DESTINATION_TYPECAST_ERROR"), "$time"),  # a JSON pointer names the field too
])
def test_under_skip_a_change_to_a_key_field_rejects_the_record_and_keeps_it_with_its_message(
        emulator, tmp_path, caplog, stream_setup, change, field):
    caplog.set_level(logging.DEBUG)
    rejected = tmp_path / "rejected.ndjson"
    mappings = stream_setup.get("field_mappings")
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(rejected),
                         **({"field_mappings": mappings} if mappings else {}))
    raw_catalog = catalog(STREAM, sync_mode=stream_setup.get("sync_mode", "append"),
                          primary_key=stream_setup.get("primary_key"))
    extra = {"ref": {"key": "k-2"}} if mappings else {}
    states = list(make_writer(emulator, config, raw_catalog).write(lines([
        record(STREAM, download(1, ref={"key": "k-1"})), changed(2, change, **extra),
        {"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": STREAM},
                                                                  "stream_state": {"c": 1}}}}])))
    assert [s["state"]["destinationStats"] for s in states] == [{"recordCount": 2, "rejectedRecordCount": 1}]
    [entry] = [orjson.loads(line) for line in rejected.read_bytes().splitlines()]
    assert entry["field"] == field and f"'{change[0]}'" in entry["reason"] and change[1] in entry["reason"]
    assert change[2] in entry["reason"] and entry["message"]["record"]["data"]["id"] == 2
    assert SECRET not in caplog.text


def test_changes_to_other_fields_are_sent_counted_and_said_once_per_stream(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    messages = [changed(n, TRUNCATED_UA, ("country", "NULLED", "SOURCE_FIELD_SIZE_LIMITATION")) for n in range(3)]
    messages.append(changed(3, TRUNCATED_UA))
    states: list = []
    assert drain(states, make_writer(emulator, make_config(emulator), catalog(STREAM)).write(lines(messages))) is None
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 4
    said = [r.getMessage() for r in caplog.records if "record.meta.changes" in r.getMessage()]
    assert said == [said[0]] and said[0].startswith(
        "Stream 'downloads': 4 record(s) arrived with 7 field(s) that the source or the platform nulled or truncated")
    assert SECRET not in caplog.text


def test_preview_says_what_a_sync_would_do_with_changed_records(emulator, tmp_path):
    messages = [changed(1, NULLED_TIME), changed(2, TRUNCATED_UA)]
    result = run_connector(["preview", "--json", "--config", write_json_file(tmp_path / "c.json", make_config(emulator)),
                            "--catalog", write_json_file(tmp_path / "k.json", catalog(STREAM))],
                           stdin=b"".join(lines(messages)))
    assert result.returncode == 0, result.stderr.decode()
    first, second, _ = messages_of(result.stdout)
    assert first["rejected"]["field"] == "$time" and "NULLED (SOURCE_FIELD_SIZE_LIMITATION)" in first["rejected"][
        "reason"]
    assert "event" in second
