"""One encoder for every record shape: its lines are the events the mapper describes, and shapes cost once.

A seeded property test: many configs (rules, constants, targets, id sources, windows) and many records
in few shapes (so that shapes repeat and their plans are reused), with ordinary values and odd ones
(numbers, booleans, nulls, empty strings, nested objects, lists, huge integers, old, odd and
non-canonical times, missing artifacts, `$` keys). Two mappers of the same config see the same records:
one encodes them as a sync does, the other describes each event as a dict; the line must be that event,
and both must refuse the same records for the same reason. Then: a stream of thousands of shapes plans
each shape once, and a shape seen again is not planned again.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson
import pytest

from destination_scarf.mapping import FieldRule, InexactNumber, InvalidRecord, MappingConfig, compile_mapper

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.timezone.utc)
PACKAGE = "0b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"

TIMES = [
    "2026-11-27T11:00:00Z", "2026-11-26T23:59:59.123456Z", "2026-11-27T11:00:00.000000Z", "2026-11-27 11:00:00Z",
    "2026-11-27T11:00:00.123Z", "2026-11-27T11:00:00+01:00", "2026-11-10T00:00:00Z", "2026-11-20T12:00:00Z",
    "2026-11-20T12:00:00.000001Z", "2026-13-27T11:00:00Z", "yesterday", "", 1764241200, 1764241200.5, None, True,
    "2026-11-27T11:00:00z", "2026-11-27", "2026-11-27T11:00:00.1234567Z",
]
SCALARS = ["x", "", "ünïcode", 0, 7, -3, 2.5, 1e300, float(2**64), 2**70, True, False, None, "a\nb", "\"q\""]


def value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.6 or depth > 2:
        return rng.choice(SCALARS)
    if roll < 0.8:
        return {rng.choice(["a", "b", "c", "x.y"]): value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


KEYS = ["time", "$time", "ts", "package", "$package", "pixel", "tracking_pixel", "version", "type", "$type",
        "remote_address", "user_agent", "referrer", "id", "unique_id", "country", "geo", "tags", "$bogus",
        "_airbyte_meta", "request", "headers", "n"]


def config(rng: random.Random) -> tuple[MappingConfig, list[list[str]] | None]:
    rules = []
    if rng.random() < 0.5:
        rules.append(FieldRule(scarf_field="$time", source_field=rng.choice(["ts", "time", "request.ts"])))
    if rng.random() < 0.3:
        rules.append(FieldRule(scarf_field="$type", constant="download"))
    if rng.random() < 0.3:
        rules.append(FieldRule(scarf_field="$user_agent", source_field=rng.choice(["ua", "request.ua", "n"])))
    if rng.random() < 0.2:
        rules.append(FieldRule(scarf_field="$unique_id", source_field="id"))
    mode = rng.choice(["all", "all", "all", "none", "listed"])
    mapping = MappingConfig(
        field_rules=tuple(rules), custom_variables=mode,
        custom_variable_fields=("country", "geo.a") if mode == "listed" else (),
        unique_id_mode="deterministic" if rng.random() < 0.85 else "off",
        time_window=rng.choice([dt.timedelta(days=7), None, dt.timedelta(hours=1)]),
        target_type=rng.choice(["multi_artifact", "multi_artifact", "package"]))
    primary_key = rng.choice([None, None, [["id"]], [["id"], ["country"]], [["geo", "a"]]])
    return mapping, primary_key


def record(rng: random.Random, shape: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in shape:
        if key in ("time", "$time", "ts"):
            data[key] = rng.choice(TIMES) if rng.random() < 0.4 else TIMES[rng.randint(0, 1)]
        elif key in ("package", "$package"):
            data[key] = rng.choice([PACKAGE, PACKAGE, PACKAGE, None, "", 5])
        elif key == "request":
            data[key] = {"ts": rng.choice(TIMES), "ua": rng.choice(SCALARS)}
        elif key == "headers":
            data[key] = rng.choice([None, {"A": "b"}, []])
        else:
            data[key] = value(rng) if rng.random() < 0.5 else rng.choice(["x", 1, PACKAGE])
    return data


def encoded(mapper, data: dict) -> tuple[str, Any]:
    """What a sync gets for `data`: the event of its line (parsed), or why it was refused."""
    try:
        return "event", orjson.loads(mapper.encode(data))
    except InvalidRecord as invalid:
        return "invalid", (invalid.field, invalid.reason)
    except InexactNumber:
        return "inexact", None


def described(mapper, data: dict) -> tuple[str, Any]:
    """What the mapper says the event is (a dict, the first id of its content), or why it refuses it."""
    try:
        return "event", mapper(data)
    except InvalidRecord as invalid:
        return "invalid", (invalid.field, invalid.reason)
    except InexactNumber:
        return "inexact", None


@pytest.mark.parametrize("seed", range(60))
def test_the_encoded_line_is_the_described_event_under_any_config(seed):
    rng = random.Random(seed)
    mapping, primary_key = config(rng)
    kwargs = dict(config=mapping, stream="s", namespace=rng.choice([None, "ns"]), primary_key=primary_key,
                  now=lambda: NOW)
    encoder, describer = compile_mapper(**kwargs), compile_mapper(**kwargs)
    shapes = [rng.sample(KEYS, rng.randint(2, 9)) for _ in range(3)]
    lines = 0
    for _ in range(120):
        data = record(rng, rng.choice(shapes))
        repeated = encoder.repeated
        got = encoded(encoder, data)
        if encoder.repeated > repeated:  # a repeat of content in this window gets a numbered id, by design
            got[1].pop("$unique_id")
            expected = described(describer, data)
            expected[1].pop("$unique_id")
            assert got == expected, data
            continue
        assert got == described(describer, data), data
        lines += got[0] == "event"
        if rng.random() < 0.05:
            encoder.new_window()
    assert encoder.ignored_fields == describer.ignored_fields


def test_most_configs_encode_their_common_shape():
    sending = 0
    for seed in range(60):
        rng = random.Random(seed)
        mapping, primary_key = config(rng)
        mapper = compile_mapper(config=mapping, stream="s", namespace=None, primary_key=primary_key, now=lambda: NOW)
        shape = ["time", "package", "remote_address", "id", "country"]
        sent = 0
        for _ in range(10):
            try:
                mapper.encode(record(rng, shape))
                sent += 1
            except (InvalidRecord, InexactNumber):
                pass
        sending += sent > 0
    assert sending >= 20  # so the property test above compares lines, not only refusals


def test_a_moving_now_moves_the_window_of_canonical_times():
    clock = {"now": NOW}
    mapper = compile_mapper(config=MappingConfig(), stream="s", namespace=None, primary_key=None,
                            now=lambda: clock["now"])
    data = {"time": "2026-11-21T12:00:01Z", "package": PACKAGE}  # canonical text: the string comparison decides
    assert mapper.encode(data)  # within 7 days of NOW
    clock["now"] = NOW + dt.timedelta(days=2)
    with pytest.raises(InvalidRecord) as caught:
        mapper.encode(data)
    assert caught.value.field == "$time" and "before now" in caught.value.reason


OPTIONAL = [f"opt{n}" for n in range(12)]


def test_thousands_of_shapes_are_each_planned_once():
    """12 optional keys make 4,096 shapes: each is planned once, and records of a shape seen before are not
    planned again (the cost of a shape is paid once per sync, whatever the number of shapes)."""
    mapper = compile_mapper(config=MappingConfig(), stream="s", namespace=None, primary_key=None, now=lambda: NOW)
    shapes = [[key for bit, key in enumerate(OPTIONAL) if mask >> bit & 1] for mask in range(4096)]
    for _ in range(2):
        for shape in shapes:
            mapper.encode({"time": "2026-11-27T11:00:00Z", "package": PACKAGE, **dict.fromkeys(shape, "x")})
    assert mapper.shapes_planned == 4096


def test_a_stream_name_with_a_nul_character_is_mapped():
    mapper = compile_mapper(config=MappingConfig(), stream="down\x00loads", namespace="n\x00s", primary_key=None,
                            now=lambda: NOW)
    event = orjson.loads(mapper.encode({"time": "2026-11-27T11:00:00Z", "package": PACKAGE, "n": 1}))
    assert event["n"] == "1" and len(event["$unique_id"]) == 36
