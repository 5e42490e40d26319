"""`discover` (Airbyte data activation) and its counterpart at `write`: `destination_object_name`.

`discover` prints one DESTINATION_CATALOG message describing the configured target's single object
in two operations (append, append_dedup on `$unique_id`), with Scarf's `Event` schema as its JSON
schema. A configured stream mapped (through the data-activation UI) to an object the target does not
offer is refused at `write`; records already renamed to Scarf's `$` names go through unchanged.

Most runs are in-process (`DestinationScarf().run([...])` with the file descriptors captured); the
command-line wiring is checked by a few subprocesses, started together by one module fixture.
"""

from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import jsonschema
import orjson
import pytest
from airbyte_cdk.models import (
    AirbyteMessageSerializer,
    ConfiguredAirbyteCatalogSerializer,
    DestinationSyncMode,
    Type,
)
from airbyte_protocol_dataclasses.models import DestinationCatalog, DestinationOperation
from serpyco_rs import Serializer

from destination_scarf.airbyte.destination import DestinationScarf
from destination_scarf.airbyte.discover import check_object_names
from destination_scarf.config import parse_config
from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping.timeparse import to_scarf_time
from destination_scarf.sync.catalog import parse_catalog
from support import (
    OWNER,
    PACKAGE,
    PIXEL,
    ROOT,
    TOKEN,
    catalog,
    make_config,
    messages_of,
    new_emulator,
    now_iso,
    record,
    run_connector,
    run_write,
    stream_state,
    write_json,
)

# --------------------------------------------------------------------------------------------------
# The Airbyte protocol's definitions that a DESTINATION_CATALOG message uses, transcribed to a JSON
# schema (draft 7) from `airbyte_protocol.yaml` as published in airbyte-protocol-models 0.18.0
# (definitions AirbyteMessage, DestinationCatalog, DestinationOperation, DestinationSyncMode).
# The pydantic package itself cannot be installed next to the CDK (it pins pydantic<2), hence the
# transcription; `test_transcription_agrees_with_the_installed_protocol_dataclasses` keeps it honest
# against the dataclass models the CDK installs, which are generated from the same file.
# --------------------------------------------------------------------------------------------------
PROTOCOL_MESSAGE_TYPES = [
    "RECORD", "STATE", "LOG", "SPEC", "CONNECTION_STATUS", "CATALOG", "TRACE", "CONTROL", "DESTINATION_CATALOG",
]
PROTOCOL_DESTINATION_SYNC_MODES = ["append", "overwrite", "append_dedup", "update", "soft_delete"]
PROTOCOL_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "allOf": [{"$ref": "#/definitions/AirbyteMessage"}],
    "definitions": {
        "AirbyteMessage": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": PROTOCOL_MESSAGE_TYPES},
                "destination_catalog": {"$ref": "#/definitions/DestinationCatalog"},
            },
        },
        "DestinationCatalog": {
            "type": "object",
            "required": ["operations"],
            "properties": {
                "operations": {"type": "array", "items": {"$ref": "#/definitions/DestinationOperation"}},
            },
        },
        "DestinationOperation": {
            "type": "object",
            "required": ["object_name", "sync_mode", "json_schema"],
            "properties": {
                "object_name": {"type": "string"},
                "sync_mode": {"$ref": "#/definitions/DestinationSyncMode"},
                "json_schema": {"type": "object"},
                "matching_keys": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
            },
        },
        "DestinationSyncMode": {"type": "string", "enum": PROTOCOL_DESTINATION_SYNC_MODES},
    },
}
PROTOCOL_VALIDATOR = jsonschema.Draft7Validator(PROTOCOL_SCHEMA)

#: target name -> (config `target`, the object discover must name)
TARGETS: dict[str, tuple[dict[str, Any], str]] = {
    "multi_artifact": ({"target_type": "multi_artifact"}, "events"),
    "package": ({"target_type": "package", "package_id": PACKAGE}, "package_events"),
    "tracking_pixel": ({"target_type": "tracking_pixel", "tracking_pixel_id": PIXEL}, "tracking_pixel_events"),
}
ARTIFACT_FIELDS = ("$package", "$tracking_pixel")
#: Never contacted: discover does not need the network, and a bad config never gets that far.
OFFLINE_URL = "http://127.0.0.1:9"


def scarf_event_schema() -> dict[str, Any]:
    """Scarf's `Event` from the OpenAPI spec shipped with the connector (a copy of Scarf's own)."""
    spec = orjson.loads((ROOT / "destination_scarf" / "resources" / "event-import.openapi.json").read_bytes())
    return spec["components"]["schemas"]["Event"]


def discover_config(target_name: str, **overrides: Any) -> dict[str, Any]:
    config = {"api_token": TOKEN, "owner": OWNER, "api_url": OFFLINE_URL, "target": TARGETS[target_name][0]}
    config.update(overrides)
    return config


def discover_in_process(tmp_path: Path, capfd, config: dict[str, Any]) -> tuple[int, list[dict], str]:
    """Run `discover` through DestinationScarf.run; return (exit code, stdout messages, all output)."""
    path = write_json(tmp_path / "discover-config.json", config)
    code = 0
    try:
        DestinationScarf().run(["discover", "--config", path])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capfd.readouterr()
    return code, messages_of(out.encode()), out + err


def only_catalog(messages: list[dict]) -> dict[str, Any]:
    assert len(messages) == 1, f"discover must print exactly one message, got {[m.get('type') for m in messages]}"
    assert messages[0]["type"] == "DESTINATION_CATALOG"
    return messages[0]


# --- the catalog, in-process, for each target -------------------------------------------------------


@pytest.mark.parametrize("target", list(TARGETS))
def test_discover_prints_one_catalog_with_append_and_dedup_operations(tmp_path, capfd, target):
    code, messages, _ = discover_in_process(tmp_path, capfd, discover_config(target))

    assert code == 0
    message = only_catalog(messages)
    operations = message["destination_catalog"]["operations"]
    assert [op["sync_mode"] for op in operations] == ["append", "append_dedup"]
    assert {op["object_name"] for op in operations} == {TARGETS[target][1]}
    append, dedup = operations
    assert append.get("matching_keys") is None
    assert dedup["matching_keys"] == [["$unique_id"]]
    assert append["json_schema"] == dedup["json_schema"]


@pytest.mark.parametrize("target", list(TARGETS))
def test_object_schema_is_scarfs_event_plus_custom_variables(tmp_path, capfd, target):
    _, messages, _ = discover_in_process(tmp_path, capfd, discover_config(target))
    schema = only_catalog(messages)["destination_catalog"]["operations"][0]["json_schema"]
    event = scarf_event_schema()

    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["required"] == ["$time"] == event["required"]
    assert schema["additionalProperties"] is True
    expected_fields = [name for name in event["properties"]
                       if target == "multi_artifact" or name not in ARTIFACT_FIELDS]
    assert sorted(schema["properties"]) == sorted(expected_fields)
    for name in expected_fields:
        published = {k: v for k, v in event["properties"][name].items() if not k.startswith("x-")}
        if name == "$time":  # widened to what the writer accepts (see below)
            assert {"type": "string", "format": "date-time"} in schema["properties"][name]["anyOf"]
            continue
        assert schema["properties"][name] == published, f"{name} differs from Scarf's Event schema"
    if target != "multi_artifact":
        assert not set(ARTIFACT_FIELDS) & set(schema["properties"])

    # What the schema accepts and refuses, as Airbyte's mapper would check it.
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    good = {"$time": now_iso(), "$remote_address": "192.0.2.1", "$headers": [{"name": "Accept", "value": "*/*"}],
            "campaign": "spring", "nested": {"any": ["json"]}}
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({"$remote_address": "192.0.2.1"})), "$time must be required"
    # $time: what the writer accepts (date-times, dates, epoch numbers and numeric text), and nothing else
    for accepted in (1_700_000_000, 1_700_000_000_123, 1.7e9, "1700000000", "2026-11-27", now_iso()):
        assert not list(validator.iter_errors({"$time": accepted})), accepted
        to_scarf_time(accepted)  # and the writer does accept it
    for refused in (True, "yesterday", None, [now_iso()]):
        assert list(validator.iter_errors({"$time": refused})), refused
    assert list(validator.iter_errors({"$time": now_iso(), "$headers": "Accept: */*"}))


@pytest.mark.parametrize("target", list(TARGETS))
def test_discover_message_is_valid_under_the_airbyte_protocol(tmp_path, capfd, target):
    _, messages, _ = discover_in_process(tmp_path, capfd, discover_config(target))
    message = only_catalog(messages)

    errors = [f"{list(e.absolute_path)}: {e.message}" for e in PROTOCOL_VALIDATOR.iter_errors(message)]
    assert not errors
    assert "destination_catalog" in message  # the protocol makes it optional; a DESTINATION_CATALOG needs it
    for operation in message["destination_catalog"]["operations"]:
        assert DestinationSyncMode(operation["sync_mode"]).value == operation["sync_mode"]
    # The dataclass models the CDK installs (strict loader: required fields, enum values) take it too, and
    # give back exactly what was printed.
    serializer = Serializer(DestinationCatalog, omit_none=True)
    assert serializer.dump(serializer.load(message["destination_catalog"])) == message["destination_catalog"]


def test_transcription_agrees_with_the_installed_protocol_dataclasses():
    definitions = PROTOCOL_SCHEMA["definitions"]
    operation_fields = dataclasses.fields(DestinationOperation)
    assert set(definitions["DestinationOperation"]["properties"]) == {f.name for f in operation_fields}
    assert set(definitions["DestinationOperation"]["required"]) == {
        f.name for f in operation_fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert set(definitions["DestinationCatalog"]["properties"]) == {f.name for f in dataclasses.fields(DestinationCatalog)}
    assert [mode.value for mode in DestinationSyncMode] == PROTOCOL_DESTINATION_SYNC_MODES
    assert set(PROTOCOL_MESSAGE_TYPES) <= {t.value for t in Type}

    # And the transcription can fail: it is not a schema that accepts anything.
    operation = {"object_name": "events", "sync_mode": "append", "json_schema": {"type": "object"}}
    bad_messages = [
        {"type": "DESTINATION_CATALOG", "destination_catalog": {}},
        {"type": "DESTINATION_CATALOG", "destination_catalog": {"operations": [{**operation, "sync_mode": "upsert"}]}},
        {"type": "DESTINATION_CATALOG", "destination_catalog": {"operations": [{"object_name": "events",
                                                                                  "sync_mode": "append"}]}},
        {"type": "DESTINATION_CATALOG",
         "destination_catalog": {"operations": [{**operation, "matching_keys": ["$unique_id"]}]}},
        {"type": "DESTINATION_CATALOGUE", "destination_catalog": {"operations": [operation]}},
    ]
    for bad in bad_messages:
        assert list(PROTOCOL_VALIDATOR.iter_errors(bad)), f"the transcribed protocol accepted {bad}"


def test_discovered_sync_modes_are_the_specs_supported_modes(tmp_path, capfd):
    _, messages, _ = discover_in_process(tmp_path, capfd, discover_config("multi_artifact"))
    spec = orjson.loads((ROOT / "spec.json").read_bytes())

    modes = [op["sync_mode"] for op in only_catalog(messages)["destination_catalog"]["operations"]]
    assert sorted(modes) == sorted(spec["supported_destination_sync_modes"])


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"target": {"target_type": "package", "package_id": "my-package"}}, "target.package_id"),
        ({"target": {"target_type": "tracking_pixel", "tracking_pixel_id": "12345"}}, "target.tracking_pixel_id"),
        ({"target": {"target_type": "everything"}}, "target.target_type"),
        ({"owner": "not an owner!"}, "owner"),
    ],
    ids=["package-id", "pixel-id", "target-type", "owner"],
)
def test_discover_with_a_bad_config_prints_a_config_error_trace(tmp_path, capfd, overrides, named):
    code, messages, output = discover_in_process(tmp_path, capfd, discover_config("multi_artifact", **overrides))

    assert code == 1
    assert [m["type"] for m in messages] == ["TRACE"]
    error = messages[0]["trace"]["error"]
    assert error["failure_type"] == "config_error"
    assert named in error["message"]
    assert TOKEN not in output


# --- the command line (subprocesses, started together) ----------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Runs the real entry point for: a good discover, a bad one, an unreadable config, and a write whose
    stream is mapped to an object the target does not offer (against an emulator that should see nothing)."""
    tmp = tmp_path_factory.mktemp("discover-cli")
    emu = new_emulator()
    emu.start()
    good = write_json(tmp / "good.json", discover_config("multi_artifact"))
    bad = write_json(tmp / "bad.json", discover_config("package", target={"target_type": "package",
                                                                          "package_id": "not-a-uuid"}))
    unreadable = tmp / "unreadable.json"
    unreadable.write_text('{"api_token": "' + TOKEN + '", "owner": ')  # cut short: not JSON
    mapped = catalog("downloads")
    mapped["streams"][0]["destination_object_name"] = "package_events"
    write_config = write_json(tmp / "write.json", make_config(emu))
    write_catalog = write_json(tmp / "catalog.json", mapped)
    stdin = b"".join(orjson.dumps(m) + b"\n" for m in [
        record("downloads", {"$time": now_iso(), "$package": PACKAGE, "campaign": "spring"}),
        stream_state("downloads", 1),
    ])
    runs = {
        "good": (["discover", "--config", good], b""),
        "bad": (["discover", "--config", bad], b""),
        "unreadable": (["discover", "--config", str(unreadable)], b""),
        "write_mismatch": (["write", "--config", write_config, "--catalog", write_catalog], stdin),
    }
    try:
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(run_connector, args, stdin=data) for name, (args, data) in runs.items()}
            results: dict[str, CompletedProcess] = {name: f.result() for name, f in futures.items()}
        results["requests_seen"] = list(emu.requests)  # type: ignore[assignment]
        yield results
    finally:
        emu.stop()


def test_discover_command_prints_exactly_one_message(cli):
    result = cli["good"]
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    message = only_catalog(messages_of(result.stdout))
    assert {op["object_name"] for op in message["destination_catalog"]["operations"]} == {"events"}
    assert not list(PROTOCOL_VALIDATOR.iter_errors(message))


def test_discover_command_with_a_bad_config_exits_1_with_a_trace_and_no_token(cli):
    result = cli["bad"]
    assert result.returncode == 1
    messages = messages_of(result.stdout)
    assert [m["type"] for m in messages] == ["TRACE"]
    assert messages[0]["trace"]["error"]["failure_type"] == "config_error"
    assert "target.package_id" in messages[0]["trace"]["error"]["message"]
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_discover_command_with_an_unreadable_config_file_prints_a_trace(cli):
    result = cli["unreadable"]
    assert result.returncode == 1
    messages = [m for m in messages_of(result.stdout) if m["type"] != "LOG"]  # the CDK logs the error too
    assert [m["type"] for m in messages] == ["TRACE"]
    assert messages[0]["trace"]["error"]["failure_type"] == "config_error"
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_write_refuses_a_stream_mapped_to_an_object_the_target_does_not_offer(cli):
    result = cli["write_mismatch"]
    assert result.returncode == 1
    messages = messages_of(result.stdout)
    traces = [m for m in messages if m["type"] == "TRACE"]
    assert len(traces) == 1
    error = traces[0]["trace"]["error"]
    assert error["failure_type"] == "config_error"
    for name in ("'downloads'", "'package_events'", "'events'"):
        assert name in error["message"]
    assert not [m for m in messages if m["type"] == "STATE"]
    assert cli["requests_seen"] == [], "nothing may be sent to Scarf before the catalog is accepted"
    assert TOKEN.encode() not in result.stdout + result.stderr


# --- object names at write, in-process --------------------------------------------------------------


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("mapped_to", [None, "events", "package_events", "tracking_pixel_events", "downloads"])
def test_check_object_names_accepts_only_the_targets_object(target, mapped_to):
    configured = catalog("downloads", ("web", "views"))
    configured["streams"][1]["destination_object_name"] = mapped_to
    config = parse_config(discover_config(target))
    streams = parse_catalog(configured)

    if mapped_to in (None, TARGETS[target][1]):
        check_object_names(streams, config.target)
    else:
        with pytest.raises(ScarfConfigError) as refused:
            check_object_names(streams, config.target)
        message = refused.value.message
        assert "'web.views'" in message and f"'{mapped_to}'" in message and f"'{TARGETS[target][1]}'" in message
        assert "downloads" not in message.replace(f"'{mapped_to}'", "")  # names the offending stream only


def test_programmatic_write_refuses_a_stream_mapped_to_another_object(emulator):
    configured = catalog("downloads")
    configured["streams"][0]["destination_object_name"] = "package_events"
    parsed_catalog = ConfiguredAirbyteCatalogSerializer.load(configured)
    assert parsed_catalog.streams[0].destination_object_name == "package_events"
    messages = [AirbyteMessageSerializer.load(m) for m in [
        record("downloads", {"$time": now_iso(), "$package": PACKAGE}), stream_state("downloads", 1)]]

    with pytest.raises(ScarfConfigError):
        list(DestinationScarf().write(make_config(emulator), parsed_catalog, messages))
    assert emulator.event_count(OWNER) == 0


# --- data activation end to end: `$` names pass through ---------------------------------------------


@pytest.mark.parametrize("target", ["multi_artifact", "package"])
def test_records_mapped_to_scarf_names_arrive_unchanged(emulator, tmp_path, capfd, target):
    target_config, object_name = TARGETS[target]
    _, messages, _ = discover_in_process(tmp_path, capfd, discover_config(target))
    schema = only_catalog(messages)["destination_catalog"]["operations"][0]["json_schema"]
    configured = catalog("downloads")
    configured["streams"][0]["destination_object_name"] = object_name
    rows = []
    for n in range(5):
        row = {"$time": now_iso(-60 * n), "$remote_address": f"192.0.2.{n + 1}", "$user_agent": "pip/24.0",
               "$version": f"1.{n}.0", "$type": "download", "$domain": "example.com",
               "$referrer": "https://example.org/", "$headers": [{"name": "Accept", "value": "*/*"}],
               "campaign": f"spring-{n}"}
        if target == "multi_artifact":
            row["$package"] = PACKAGE
        rows.append(row)
    # Every field the object offers, except the one the connector derives and the other artifact kind.
    assert set(schema["properties"]) - set(rows[0]) == (
        {"$unique_id", "$tracking_pixel"} if target == "multi_artifact" else {"$unique_id"})
    validator = jsonschema.Draft7Validator(schema)
    for row in rows:
        assert not list(validator.iter_errors(row)), "the test's records must fit the discovered schema"

    states = run_write(emulator, make_config(emulator, target=target_config), configured,
                       [record("downloads", row) for row in rows] + [stream_state("downloads", 5)])

    assert len(states) == 1
    stored = emulator.events(OWNER, artifact=PACKAGE)
    assert len(stored) == emulator.event_count(OWNER) == 5
    for event in stored:
        uuid.UUID(event.pop("$unique_id"))  # the one field the connector adds (deterministic ids)
    assert sorted(stored, key=lambda e: e["campaign"]) == rows
