"""Tests for destination_scarf.mapping: field precedence, values, time window, headers, target modes, custom
variables, unique ids, config validation, and a seeded property test against Scarf's own Event schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
import random
import re
import uuid
from importlib import resources
from typing import Any

import jsonschema
import orjson
import pytest

from destination_scarf.mapping import (
    SCARF_FIELDS,
    EventMapper,
    FieldRule,
    InvalidRecord,
    MappingConfig,
    compile_mapper,
    validate_rules,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
RECENT = "2026-11-27T11:00:00Z"
PACKAGE = "0b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
PIXEL = "5f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"
SCARF_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")


def make(
    *rules: FieldRule,
    stream: str = "downloads",
    namespace: str | None = None,
    primary_key: list[list[str]] | None = None,
    now: dt.datetime = NOW,
    **config: Any,
) -> EventMapper:
    return compile_mapper(
        config=MappingConfig(field_rules=rules, **config),
        stream=stream,
        namespace=namespace,
        primary_key=primary_key,
        now=lambda: now,
    )


def record(**fields: Any) -> dict[str, Any]:
    """A minimal valid record plus `fields` (a None value removes a base field)."""
    data: dict[str, Any] = {"time": RECENT, "package": PACKAGE}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def rejected(mapper: EventMapper, data: dict[str, Any]) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        mapper(data)
    return caught.value


def scarf_fields(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k.startswith("$") and k != "$unique_id"}


def custom_variables(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("$")}


def rule(field: str, source: str | None = None, *, constant: str | None = None, stream: str | None = None) -> FieldRule:
    return FieldRule(scarf_field=field, source_field=source, constant=constant, stream=stream)


# --- where a field comes from -------------------------------------------------------------------------------


def test_minimal_record() -> None:
    event = make(unique_id_mode="off")(record())
    assert event == {"$time": RECENT, "$package": PACKAGE}


def test_precedence_stream_rule_default_rule_dollar_key_plain_key() -> None:
    data = record(**{"$remote_address": "dollar", "remote_address": "plain", "client": "default", "peer": "stream"})
    by_stream = rule("$remote_address", "peer", stream="downloads")
    default = rule("$remote_address", "client")
    assert make(by_stream, default)(data)["$remote_address"] == "stream"
    assert make(default, by_stream)(data)["$remote_address"] == "stream"  # order of entries does not matter
    assert make(default)(data)["$remote_address"] == "default"
    assert make()(data)["$remote_address"] == "dollar"
    del data["$remote_address"]
    assert make()(data)["$remote_address"] == "plain"


def test_tracking_pixel_aliases_in_order() -> None:
    keys = ["$tracking_pixel", "tracking_pixel", "pixel", "$pixel"]
    mapper = make()
    for index, key in enumerate(keys):
        data = record(package=None, **{k: f"pixel-{k}" for k in keys[index:]})
        event = mapper(data)
        assert event["$tracking_pixel"] == f"pixel-{key}"
        assert custom_variables(event) == {}  # every alias is consumed, used or not
    assert mapper.ignored_fields == set()  # "$pixel" is an alias, not an ignored key


def test_qualified_stream_rule_beats_plain_stream_rule() -> None:
    rules = (
        rule("$type", constant="plain", stream="downloads"),
        rule("$type", constant="qualified", stream="pypi.downloads"),
    )
    assert make(*rules, namespace="pypi")(record())["$type"] == "qualified"
    assert make(*rules, namespace="npm")(record())["$type"] == "plain"
    assert make(*rules, namespace=None)(record())["$type"] == "plain"


def test_rules_for_other_streams_do_not_apply() -> None:
    mapper = make(
        rule("$type", constant="other", stream="pageviews"), rule("$type", constant="x", stream="npm.downloads")
    )
    assert "$type" not in make()(record())
    assert "$type" not in mapper(record())


def test_constants() -> None:
    mapper = make(rule("$type", constant="download"), rule("$domain", constant="example.org"))
    event = mapper(record(**{"$type": "dropped", "type": "plain data"}))
    assert event["$type"] == "download"
    assert event["$domain"] == "example.org"
    # A rule took over $type: its "$type" key is dropped (never a custom variable), while "type" is ordinary data.
    assert event["type"] == "plain data"


def test_rule_with_missing_source_does_not_fall_back_to_the_convention() -> None:
    mapper = make(rule("$version", "release"))
    event = mapper(record(version="9.9.9"))
    assert "$version" not in event
    assert event["version"] == "9.9.9"  # not consumed: the rule names another field
    assert "$version" not in mapper(record(version="9.9.9", release=None))
    assert mapper(record(release="1.0"))["$version"] == "1.0"


def test_dotted_source_paths() -> None:
    mapper = make(rule("$remote_address", "request.client.ip"), rule("$user_agent", "request.ua"))
    data = record(request={"client": {"ip": "198.51.100.4", "port": 443}, "ua": "curl/8", "path": "/x"})
    event = mapper(data)
    assert event["$remote_address"] == "198.51.100.4"
    assert event["$user_agent"] == "curl/8"
    # the consumed leaves are not custom variables; their siblings are
    assert custom_variables(event) == {"request.client.port": "443", "request.path": "/x"}


def test_dotted_path_missing_or_through_a_non_object() -> None:
    mapper = make(rule("$remote_address", "request.ip"))
    assert "$remote_address" not in mapper(record(request="flat text"))
    assert "$remote_address" not in mapper(record(request={"ip": None}))
    assert "$remote_address" not in mapper(record())


def test_a_literal_dotted_key_wins_over_the_nested_path() -> None:
    mapper = make(rule("$remote_address", "request.ip"))
    event = mapper(record(**{"request.ip": "literal"}, request={"ip": "nested"}))
    assert event["$remote_address"] == "literal"
    assert "request.ip" not in event


def test_sources_describe_the_plan() -> None:
    mapper = make(rule("$remote_address", "ip"), rule("$type", constant="download"), target_type="package")
    assert mapper.sources["$remote_address"] == "source field 'ip'"
    assert mapper.sources["$type"] == "a constant"
    assert mapper.sources["$time"] == "record key '$time' or 'time'"
    assert mapper.sources["$package"].startswith("not sent")
    assert set(mapper.sources) == set(SCARF_FIELDS)


# --- string values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "sent"),
    [("1.2.3", "1.2.3"), (3, "3"), (2.5, "2.5"), (2.0, "2.0"), (-7, "-7"), (10**30, str(10**30))],
)
def test_string_fields_accept_strings_and_numbers(value: object, sent: str) -> None:
    assert make()(record(version=value))["$version"] == sent


def test_empty_and_null_string_fields_are_dropped() -> None:
    event = make()(record(version="", domain=None, referrer="", **{"$type": ""}))
    assert set(event) == {"$time", "$package", "$unique_id"}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(True, "boolean"), (False, "boolean"), (["SECRET-a", "SECRET-b"], "array"), ({"SECRET": "x"}, "object")],
)
def test_string_fields_reject_other_types(value: object, type_name: str) -> None:
    error = rejected(make(), record(user_agent=value))
    assert (error.field, error.reason) == ("$user_agent", f"expected a string, got {type_name}")
    assert str(error) == f"$user_agent: expected a string, got {type_name}"
    assert "SECRET" not in str(error)


def test_invalid_record_pickles() -> None:
    error = pickle.loads(pickle.dumps(InvalidRecord("$version", "expected a string, got boolean")))
    assert (error.field, error.reason) == ("$version", "expected a string, got boolean")
    assert str(error) == "$version: expected a string, got boolean"


# --- $time --------------------------------------------------------------------------------------------------


def test_time_missing_or_null() -> None:
    for data in (record(time=None), {**record(), "time": None}, {"$time": None, "package": PACKAGE}):
        error = rejected(make(), data)
        assert (error.field, error.reason) == ("$time", "missing (map a source field to $time, or name a field `time`)")


def test_time_missing_when_the_mapped_source_is_missing() -> None:
    error = rejected(make(rule("$time", "created_at")), record())  # "time" exists but the rule wins
    assert error.field == "$time"
    assert error.reason.startswith("missing")


@pytest.mark.parametrize(
    "value", ["SECRET-not-a-time", "2026-11-27T99:99:99Z", True, [1, 2], {"SECRET": 1}, float("nan")]
)
def test_time_unparseable(value: object) -> None:
    error = rejected(make(), record(time=value))
    assert error.field == "$time"
    assert error.reason.startswith("not an ISO 8601 date-time or epoch timestamp")
    assert "SECRET" not in str(error)
    assert "99:99" not in str(error)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "not an ISO 8601 date-time or epoch timestamp"),
        ("", "not an ISO 8601 date-time or epoch timestamp (empty string)"),
        (True, "not an ISO 8601 date-time or epoch timestamp (a boolean is not a timestamp)"),
        ("2026-11-27T99:99:99Z", "not an ISO 8601 date-time or epoch timestamp (date or time field out of range)"),
    ],
)
def test_time_unparseable_says_each_reason_once(value: object, reason: str) -> None:
    """The parser's reason is added in parentheses only when it says something the sentence before it does not."""
    assert rejected(make(), record(time=value)).reason == reason


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("2026-11-27T11:00:00Z", "2026-11-27T11:00:00Z"),
        ("2026-11-27T11:00:00.5Z", "2026-11-27T11:00:00.500000Z"),
        ("2026-11-27 11:00:00", "2026-11-27T11:00:00Z"),
        ("2026-11-27T13:00:00+02:00", "2026-11-27T11:00:00Z"),
        ("2026-11-27", "2026-11-27T00:00:00Z"),
        (int(dt.datetime(2026, 11, 27, 11, tzinfo=UTC).timestamp()), "2026-11-27T11:00:00Z"),
        (int(dt.datetime(2026, 11, 27, 11, tzinfo=UTC).timestamp()) * 1000 + 1, "2026-11-27T11:00:00.001000Z"),
        (str(int(dt.datetime(2026, 11, 27, 11, tzinfo=UTC).timestamp())), "2026-11-27T11:00:00Z"),
    ],
)
def test_time_formats(value: object, sent: str) -> None:
    assert make()(record(time=value))["$time"] == sent


def test_time_from_dollar_key_and_rule() -> None:
    assert make()(record(time="2026-11-27T10:00:00Z", **{"$time": RECENT}))["$time"] == RECENT
    assert make(rule("$time", "meta.at"))(record(time=None, meta={"at": RECENT}))["$time"] == RECENT


def test_time_window_boundary() -> None:
    cutoff = NOW - dt.timedelta(days=7)
    mapper = make()
    assert mapper(record(time=cutoff.isoformat()))["$time"] == "2026-11-20T12:00:00Z"  # exactly at the cutoff
    assert mapper(record(time=(cutoff + dt.timedelta(microseconds=1)).isoformat()))
    error = rejected(mapper, record(time=(cutoff - dt.timedelta(microseconds=1)).isoformat()))
    assert (error.field, error.reason) == (
        "$time",
        "more than 7 days before now; Scarf no longer imports events older than one week",
    )


@pytest.mark.parametrize(
    ("window", "text"),
    [
        (dt.timedelta(days=1), "1 day"),
        (dt.timedelta(days=2), "2 days"),
        (dt.timedelta(hours=36), "36 hours"),
        (dt.timedelta(minutes=90), "90 minutes"),
    ],
)
def test_time_window_text_names_the_configured_window(window: dt.timedelta, text: str) -> None:
    error = rejected(make(time_window=window), record(time=(NOW - window - dt.timedelta(seconds=1)).isoformat()))
    assert error.reason.startswith(f"more than {text} before now;")


def test_time_window_uses_now_per_record() -> None:
    clock = [NOW]
    mapper = compile_mapper(
        config=MappingConfig(), stream="s", namespace=None, primary_key=None, now=lambda: clock[0]
    )
    data = record(time="2026-11-21T00:00:00Z")
    assert mapper(data)
    clock[0] = NOW + dt.timedelta(days=1)
    assert rejected(mapper, data).field == "$time"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        compile_mapper(
            config=MappingConfig(), stream="s", namespace=None, primary_key=None, now=lambda: dt.datetime(2026, 11, 27)
        )


def test_no_window_and_future_times() -> None:
    assert make(time_window=None)(record(time="2001-01-01T00:00:00Z"))["$time"] == "2001-01-01T00:00:00Z"
    assert make()(record(time="2027-01-01T00:00:00Z"))["$time"] == "2027-01-01T00:00:00Z"


def test_time_constant() -> None:
    mapper = make(rule("$time", constant="2026-11-27T08:00:00+01:00"))
    assert mapper(record(time=None))["$time"] == "2026-11-27T07:00:00Z"
    later = make(rule("$time", constant="2026-11-27T08:00:00+01:00"), now=NOW + dt.timedelta(days=8))
    assert rejected(later, record()).field == "$time"


# --- $headers -----------------------------------------------------------------------------------------------

EXPECTED_HEADERS = [{"name": "Accept", "value": "*/*"}, {"name": "X-Count", "value": "2"}]


@pytest.mark.parametrize(
    "value",
    [
        [{"name": "Accept", "value": "*/*"}, {"name": "X-Count", "value": 2}],
        [{"name": "Accept", "value": "*/*"}, {"name": "X-Count", "value": 2}, {"name": "Dropped", "value": None}],
        {"Accept": "*/*", "X-Count": 2, "Dropped": None},
        {"Accept": ["*/*"], "X-Count": [2, None]},
        json.dumps([{"name": "Accept", "value": "*/*"}, {"name": "X-Count", "value": "2"}]),
        json.dumps({"Accept": "*/*", "X-Count": 2}),
    ],
)
def test_headers_shapes(value: object) -> None:
    assert make()(record(headers=value))["$headers"] == EXPECTED_HEADERS


def test_headers_multiple_values_and_types() -> None:
    event = make()(record(headers={"Via": ["a", "b"], "DNT": True, "X-Ratio": 0.5}))
    assert event["$headers"] == [
        {"name": "Via", "value": "a"},
        {"name": "Via", "value": "b"},
        {"name": "DNT", "value": "true"},
        {"name": "X-Ratio", "value": "0.5"},
    ]


@pytest.mark.parametrize("value", [[], {}, "", "  ", "[]", "{}", {"A": None}, [{"name": "A", "value": None}]])
def test_empty_headers_are_dropped(value: object) -> None:
    assert "$headers" not in make()(record(headers=value))


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (42, "got int"),
        (True, "got boolean"),
        ("SECRET not json", "not JSON"),
        ('"SECRET json string"', "JSON text of str"),
        (["SECRET"], "a list item that is str"),
        ([{"value": "SECRET"}], "a header without a name"),
        ([{"name": "", "value": "SECRET"}], "a header without a name"),
        ([{"name": "A", "value": {"SECRET": 1}}], "got object"),
        ({"A": {"SECRET": 1}}, "got object"),
        ({"A": [["SECRET"]]}, "got array"),
    ],
)
def test_invalid_headers(value: object, reason_part: str) -> None:
    error = rejected(make(), record(headers=value))
    assert error.field == "$headers"
    assert reason_part in error.reason
    assert "SECRET" not in str(error)


def test_headers_from_rule_and_constant() -> None:
    assert make(rule("$headers", "req.h"))(record(req={"h": {"A": "1"}}))["$headers"] == [{"name": "A", "value": "1"}]
    constant = make(rule("$headers", constant='{"X-Source": "airbyte"}'))
    first = constant(record(headers={"ignored": "x"}))
    assert first["$headers"] == [{"name": "X-Source", "value": "airbyte"}]
    first["$headers"][0]["value"] = "changed by a caller"
    assert constant(record())["$headers"] == [{"name": "X-Source", "value": "airbyte"}]  # events share nothing


# --- target modes -------------------------------------------------------------------------------------------


def test_multi_artifact_needs_package_or_pixel() -> None:
    error = rejected(make(), record(package=None))
    assert (error.field, error.reason) == (
        "$package",
        "multi-artifact imports need $package or $tracking_pixel on every event; "
        "map one, or choose a single package/pixel target",
    )
    assert make()(record(package=None, pixel=PIXEL))["$tracking_pixel"] == PIXEL
    assert rejected(make(), record(package="")).field == "$package"  # empty is dropped, then missing


@pytest.mark.parametrize("target_type", ["package", "tracking_pixel"])
def test_single_target_drops_artifact_fields(target_type: str) -> None:
    mapper = make(rule("$package", "pkg_id"), target_type=target_type)
    event = mapper(record(package=None, pkg_id="x", tracking_pixel=PIXEL, **{"$package": "y"}))
    assert "$package" not in event and "$tracking_pixel" not in event
    assert custom_variables(event) == {}  # their source fields are not custom variables either
    assert make(target_type=target_type)(record(package=None))["$time"] == RECENT  # nothing required


# --- custom variables ---------------------------------------------------------------------------------------


def test_all_custom_variables() -> None:
    data = record(
        plan="pro",
        seats=3,
        ratio=0.25,
        trial=False,
        tags=["a", None, {"b": 1}],
        gone=None,
        geo={"country": "DE", "city": None, "loc": {"lat": 52.5, "lon": None, "deep": {}}},
        **{"_airbyte_raw_id": "r1", "_airbyte_meta": {"changes": []}, "_airbytes": "kept"},
    )
    event = make()(data)
    assert custom_variables(event) == {
        "plan": "pro",
        "seats": "3",
        "ratio": "0.25",
        "trial": "false",
        "tags": '["a",null,{"b":1}]',
        "geo.country": "DE",
        "geo.loc.lat": "52.5",
        "_airbytes": "kept",
    }
    assert all(isinstance(v, str) for v in custom_variables(event).values())


def test_convention_keys_are_consumed_even_when_another_key_wins() -> None:
    event = make()(record(**{"$time": RECENT, "$package": PACKAGE, "$version": "1", "version": "2"}))
    assert event["$version"] == "1"
    assert custom_variables(event) == {}


def test_dollar_keys_that_are_not_scarf_fields_are_ignored_and_reported() -> None:
    mapper = make()
    event = mapper(record(**{"$referer": "typo", "$campaign": "c", "$": "bare"}))
    assert not any(k in event for k in ("$referer", "$campaign", "$"))
    assert mapper.ignored_fields == {"$referer", "$campaign", "$"}


def test_overridden_scarf_keys_are_dropped_silently() -> None:
    mapper = make(rule("$remote_address", "ip"))
    event = mapper(record(ip="192.0.2.1", **{"$remote_address": "other"}))
    assert event["$remote_address"] == "192.0.2.1"
    assert mapper.ignored_fields == set()


def test_a_rule_pixel_makes_dollar_pixel_an_ignored_key() -> None:
    mapper = make(rule("$tracking_pixel", "px"))
    mapper(record(px=PIXEL, **{"$pixel": "other"}))
    assert mapper.ignored_fields == {"$pixel"}


def test_listed_custom_variables() -> None:
    mapper = make(custom_variables="listed", custom_variable_fields=("plan", "geo", "meta.source", "absent", "version"))
    event = mapper(
        record(plan="pro", other="no", geo={"country": "DE", "city": None}, meta={"source": "ads", "x": 1}, version=5)
    )
    assert event["$version"] == "5"
    assert custom_variables(event) == {"plan": "pro", "geo.country": "DE", "meta.source": "ads", "version": "5"}


def test_no_custom_variables_but_ignored_keys_are_still_reported() -> None:
    mapper = make(custom_variables="none")
    event = mapper(record(plan="pro", geo={"a": "b"}, **{"$campaign": "c"}))
    assert custom_variables(event) == {}
    assert mapper.ignored_fields == {"$campaign"}


def test_unique_id_keys_are_consumed_even_with_ids_off() -> None:
    event = make(unique_id_mode="off")(record(unique_id="u-1"))
    assert "$unique_id" not in event and "unique_id" not in event


# --- unique ids ---------------------------------------------------------------------------------------------


def is_uuid5(text: str) -> bool:
    parsed = uuid.UUID(text)
    return str(parsed) == text and parsed.version == 5 and parsed.variant == uuid.RFC_4122


def test_unique_id_is_deterministic_and_uuid_shaped() -> None:
    first = make()(record(plan="pro"))["$unique_id"]
    assert is_uuid5(first)
    assert make()(record(plan="pro"))["$unique_id"] == first  # a fresh mapper, same input
    assert make()(record(plan="team"))["$unique_id"] != first  # content hash: content matters
    reordered = dict(reversed(list(record(plan="pro").items())))
    assert make()(reordered)["$unique_id"] == first  # key order does not


def test_unique_id_golden_values() -> None:
    """Pinned ids: changing the scheme would make re-synced events count twice in Scarf. Change only deliberately."""
    assert make()(record(plan="pro"))["$unique_id"] == "bee7943a-ff4f-5620-8d66-00fb1cdac134"
    assert make(primary_key=[["id"]])(record(id=7))["$unique_id"] == "a9d8c1f7-d3fb-5717-a1e9-6423f9127cae"
    assert make(namespace="ns")(record(unique_id="evt-1"))["$unique_id"] == "08c39f1e-8869-585f-b3e8-ccb6fd7f0486"


def reference_id(namespace: str | None, stream: str, kind: str, material: bytes) -> str:
    """The documented scheme, rebuilt with the uuid module: SHA-256 over a prefix naming (namespace, stream, kind)."""
    prefix = b"destination-scarf/unique-id/v1\0" + orjson.dumps([namespace, stream, kind]) + b"\0"
    return str(uuid.UUID(bytes=hashlib.sha256(prefix + material).digest()[:16], version=5))


def test_unique_id_scheme_matches_its_description() -> None:
    event = make(stream="s", namespace="n")(record(plan="pro"))
    body = {k: v for k, v in event.items() if k != "$unique_id"}
    assert event["$unique_id"] == reference_id("n", "s", "e", orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    assert make(stream="s", primary_key=[["a"], ["b"]])(record(a=1, b="x"))["$unique_id"] == reference_id(
        None, "s", "k", b'[1,"x"]'
    )
    assert make(stream="s")(record(unique_id="u-\u00e9"))["$unique_id"] == reference_id(
        None, "s", "i", "u-\u00e9".encode()
    )


def test_unique_ids_differ_by_stream_and_namespace() -> None:
    ids = {
        make(stream=stream, namespace=namespace, primary_key=primary_key)(data)["$unique_id"]
        for stream in ("a", "b")
        for namespace in (None, "x", "y")
        for primary_key, data in ((None, record(unique_id="u")), ([["id"]], record(id=1)), (None, record()))
    }
    assert len(ids) == 18


def test_mapped_unique_id() -> None:
    mapper = make(rule("$unique_id", "event.id"), primary_key=[["pk"]])
    a = mapper(record(event={"id": "E1"}, pk=1, plan="pro"))["$unique_id"]
    b = mapper(record(event={"id": "E1"}, pk=2, plan="team", time="2026-11-27T11:30:00Z"))["$unique_id"]
    assert a == b  # only the mapped id counts
    assert mapper(record(event={"id": "E2"}, pk=1))["$unique_id"] != a
    assert make()(record(unique_id=12))["$unique_id"] == make()(record(unique_id="12"))["$unique_id"]
    event = make()(record(**{"$unique_id": "raw"}))
    assert event["$unique_id"] != "raw" and is_uuid5(event["$unique_id"])  # always namespaced, never raw


def test_primary_key_unique_id() -> None:
    mapper = make(primary_key=[["id"], ["meta", "region"]])
    a = mapper(record(id=1, meta={"region": "eu"}, plan="pro"))["$unique_id"]
    assert mapper(record(id=1, meta={"region": "eu"}, plan="team"))["$unique_id"] == a
    assert mapper(record(id=1, meta={"region": "us"}))["$unique_id"] != a
    # a missing part falls back to the content hash
    incomplete = record(id=1, meta={"region": None})
    assert mapper(incomplete)["$unique_id"] == make()(incomplete)["$unique_id"]


def test_kinds_of_material_do_not_collide() -> None:
    # pk material is JSON of the values: '["abc"]'; the same text as a mapped id must still give another id
    by_pk = make(primary_key=[["id"]])(record(id="abc"))["$unique_id"]
    by_mapped = make()(record(unique_id='["abc"]'))["$unique_id"]
    assert by_pk != by_mapped


def test_unique_ids_off() -> None:
    event = make(rule("$unique_id", "eid"), unique_id_mode="off", primary_key=[["id"]])(record(eid="e", id=1))
    assert "$unique_id" not in event


def test_unique_id_survives_values_orjson_refuses() -> None:
    event = make(primary_key=[["id"]])(record(id=2**70))
    assert is_uuid5(event["$unique_id"])
    assert make()(record(big=2**70))["big"] == str(2**70)


def test_invalid_mapped_unique_id_type() -> None:
    error = rejected(make(), record(unique_id={"SECRET": 1}))
    assert (error.field, error.reason) == ("$unique_id", "expected a string, got object")


# --- config validation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (MappingConfig(field_rules=(rule("$pixel", "p"),)), "unknown Scarf field"),
        (MappingConfig(field_rules=(rule("$type", "t", constant="c"),)), "exactly one"),
        (MappingConfig(field_rules=(rule("$type"),)), "exactly one"),
        (MappingConfig(field_rules=(rule("$type", ""),)), "empty"),
        (MappingConfig(field_rules=(rule("$type", "a..b"),)), "empty part"),
        (MappingConfig(field_rules=(rule("$type", constant=""),)), "constant is empty"),
        (MappingConfig(field_rules=(rule("$time", constant="last tuesday"),)), "not a valid time"),
        (MappingConfig(field_rules=(rule("$headers", constant="[1]"),)), "not valid headers"),
        (MappingConfig(field_rules=(rule("$unique_id", constant="x"),)), "replace the previous one"),
        (MappingConfig(field_rules=(rule("$type", "a"), rule("$type", "b"))), "more than one entry"),
        (
            MappingConfig(field_rules=(rule("$type", "a", stream="s"), rule("$type", constant="b", stream="s"))),
            "more than one entry",
        ),
        (MappingConfig(custom_variables="some"), "custom variables mode 'some' is unknown"),
        (MappingConfig(custom_variables="listed", custom_variable_fields=("$x",)), "starts with $"),
        (MappingConfig(custom_variables="listed", custom_variable_fields=("",)), "empty"),
        (MappingConfig(target_type="bucket"), "target type 'bucket' is unknown"),
        (MappingConfig(time_window=dt.timedelta(0)), "must be positive"),
    ],
)
def test_validate_rules_problems(config: MappingConfig, fragment: str) -> None:
    problems = validate_rules(config)
    assert len(problems) == 1
    assert fragment in problems[0]
    with pytest.raises(ValueError, match="invalid mapping config"):
        compile_mapper(config=config, stream="s", namespace=None, primary_key=None, now=lambda: NOW)


def test_validate_rules_accepts_good_configs() -> None:
    config = MappingConfig(
        field_rules=(
            rule("$time", constant="2026-11-27T00:00:00Z", stream="backfill"),
            rule("$time", "created_at"),
            rule("$type", constant="download"),
            rule("$type", constant="view", stream="pageviews"),
            rule("$remote_address", "request.ip"),
            rule("$headers", constant='[{"name": "A", "value": "b"}]'),
        ),
        custom_variables="listed",
        custom_variable_fields=("plan", "geo.country"),
        time_window=None,
        target_type="package",
    )
    assert validate_rules(config) == []
    assert validate_rules(MappingConfig()) == []


# --- property test against Scarf's Event schema -------------------------------------------------------------


def load_event_schema() -> dict[str, Any]:
    spec_text = resources.files("destination_scarf").joinpath("resources/event-import.openapi.json").read_text()
    return json.loads(spec_text)["components"]["schemas"]["Event"]


def event_validator() -> jsonschema.protocols.Validator:
    schema = load_event_schema()
    checker = jsonschema.FormatChecker()
    if "date-time" not in checker.checkers:  # the optional rfc3339 dependency is absent: check it ourselves
        checker.checks("date-time")(lambda value: not isinstance(value, str) or bool(SCARF_TIME.fullmatch(value)))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=checker)


def test_event_schema_is_the_shared_one() -> None:
    schema = load_event_schema()
    assert schema["required"] == ["$time"]
    assert set(schema["properties"]) == set(SCARF_FIELDS)


def test_the_validator_really_checks() -> None:
    """Guards the property test below against a validator that accepts everything."""
    validator = event_validator()
    assert validator.is_valid({"$time": "2026-11-27T03:04:05Z", "plan": "pro"})
    assert not validator.is_valid({"$time": "not a time"})
    assert not validator.is_valid({"$package": PACKAGE})
    assert not validator.is_valid({"$time": "2026-11-27T03:04:05Z", "$version": 3})
    assert not validator.is_valid({"$time": "2026-11-27T03:04:05Z", "$headers": {"A": "b"}})


class Generated:
    """A random record plus the rules it breaks (as Scarf fields), known from how it was built."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.data: dict[str, Any] = {}
        self.violations: set[str] = set()

    def build(self) -> Generated:
        self._time()
        self._artifact()
        for name in ("version", "type", "remote_address", "user_agent", "domain", "referrer", "unique_id"):
            if self.rng.random() < 0.5:
                self._string_field(name)
        if self.rng.random() < 0.3:
            self._headers()
        for index in range(self.rng.randrange(5)):
            self.data[f"var{index}"] = self._any_value(depth=0)
        if self.rng.random() < 0.2:
            self.data["$mystery"] = "x"
        if self.rng.random() < 0.2:
            self.data["_airbyte_raw_id"] = "id"
        return self

    def _time(self) -> None:
        rng, moment = self.rng, NOW - dt.timedelta(seconds=self.rng.randrange(-86400, 8 * 86400))
        choice = rng.randrange(10)
        if choice == 0:
            self.data["time"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif choice == 1:
            self.data["$time"] = moment.astimezone(dt.timezone(dt.timedelta(hours=-3))).isoformat()
        elif choice == 2:
            self.data["time"] = int(moment.timestamp() * 1000)
        elif choice == 3:
            self.data["time"] = moment.timestamp()
        elif choice == 4:
            self.data["time"] = moment.strftime("%Y-%m-%d %H:%M:%S")
        elif choice == 5:
            self.violations.add("$time")  # missing
            return
        elif choice == 6:
            self.data["time"] = rng.choice(["SECRET-soon", "", True, ["SECRET"], "2026-11-31T00:00:00Z"])
            self.violations.add("$time")
            return
        elif choice == 7:
            self.data["time"] = str(int(moment.timestamp()))
        else:
            self.data["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if moment < NOW - dt.timedelta(days=7):
            self.violations.add("$time")

    def _artifact(self) -> None:
        choice = self.rng.randrange(7)
        if choice in (0, 4, 5):
            self.data["package"] = PACKAGE
        elif choice == 1:
            self.data["pixel"] = PIXEL
        elif choice == 2:
            self.data["$package"], self.data["$tracking_pixel"] = PACKAGE, PIXEL
        elif choice == 3:
            self.violations.add("$package")
        else:
            self.data["tracking_pixel"] = PIXEL

    def _string_field(self, name: str) -> None:
        if self.rng.random() < 0.9:
            value = self.rng.choice(["SECRET-text", "", None, 12, 1.5])
        else:
            value = self.rng.choice([True, ["SECRET-a"], {"SECRET-k": "SECRET-v"}])
        self.data[self.rng.choice([name, "$" + name])] = value
        if isinstance(value, (bool, list, dict)):
            self.violations.add("$" + name)

    def _headers(self) -> None:
        valid = [[{"name": "A", "value": "b"}], {"A": ["b", "c"], "N": 1}, '{"A": "b"}', [], None]
        invalid = [3, "SECRET not json", [{"value": "SECRET-v"}], {"A": {"SECRET-b": 1}}]
        if self.rng.random() < 0.7:
            self.data["headers"] = self.rng.choice(valid)
        else:
            self.data["headers"] = self.rng.choice(invalid)
            self.violations.add("$headers")

    def _any_value(self, depth: int) -> Any:
        makers = [
            lambda: None,
            lambda: "SECRET-text",
            lambda: self.rng.randrange(-1000, 1000),
            lambda: self.rng.random(),
            lambda: self.rng.random() < 0.5,
            lambda: [1, "two", None],
            lambda: {"inner": self._any_value(depth + 1), "none": None},
            lambda: {"a": {"b": self._any_value(depth + 1)}},
        ]
        return makers[self.rng.randrange(len(makers) if depth < 2 else 6)]()


def test_generated_records_give_schema_valid_events_or_real_violations() -> None:
    rng = random.Random(1127)
    validator = event_validator()
    mapper = make(primary_key=[["var0"]])
    accepted = rejected_count = 0
    for _ in range(500):
        generated = Generated(rng).build()
        try:
            event = mapper(generated.data)
        except InvalidRecord as error:
            rejected_count += 1
            assert error.field in generated.violations, (error, generated.data)
            assert "SECRET" not in str(error)
            continue
        accepted += 1
        assert not generated.violations, (generated.violations, generated.data)
        errors = list(validator.iter_errors(event))
        assert not errors, [e.message for e in errors]
        assert SCARF_TIME.fullmatch(event["$time"])
        assert is_uuid5(event["$unique_id"])
        assert all(isinstance(v, str) for k, v in event.items() if k != "$headers")
        assert not any(k.startswith("$") and k not in SCARF_FIELDS for k in event)
    assert accepted > 150 and rejected_count > 150, (accepted, rejected_count)  # both branches really exercised
    assert mapper.ignored_fields == {"$mystery"}


@pytest.mark.parametrize("settings", [
    {},  # content-hash ids: the line is built from the hashed bytes
    {"primary_key": [["var0"]]},  # key ids where var0 is there, content ids where it is not
    {"unique_id_mode": "off"},
], ids=["content-ids", "key-ids", "no-ids"])
def test_encode_gives_the_same_event_as_the_mapper_as_one_ndjson_line(settings: dict[str, Any]) -> None:
    rng = random.Random(2711)
    mapper = make(rule("$unique_id", "unique_id"), **settings)
    encoded = 0
    for _ in range(300):
        data = Generated(rng).build().data
        try:
            expected = mapper(data)
        except InvalidRecord as error:
            with pytest.raises(InvalidRecord) as caught:
                mapper.encode(data)
            assert (caught.value.field, caught.value.reason) == (error.field, error.reason)
            continue
        line = mapper.encode(data)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert orjson.loads(line) == expected
        encoded += 1
    assert encoded > 100
