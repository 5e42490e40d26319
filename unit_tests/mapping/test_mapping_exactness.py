"""The mapper keeps every event and every digit: numbered ids for repeated content, exact re-reads of huge
integers, and a nesting limit instead of a crash."""

from __future__ import annotations

import hashlib
import json
import uuid

import orjson
import pytest

from destination_scarf.mapping import MAX_DEPTH, ExactFloat, InexactNumber, InvalidRecord
from unit_tests.mapping.test_mapping import make, record


def _ids(mapper, records) -> list[str]:
    return [orjson.loads(mapper.encode(data))["$unique_id"] for data in records]


def _reference_repeat_id(stream: str, occurrence: int, event: dict) -> str:
    """The documented scheme for the n-th copy: SHA-256 over the "r" prefix, the occurrence, NUL, the content."""
    prefix = b"destination-scarf/unique-id/v1\0" + orjson.dumps([None, stream, "r"]) + b"\0"
    material = b"%d\0" % occurrence + orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return str(uuid.UUID(bytes=hashlib.sha256(prefix + material).digest()[:16], version=5))


# --- identical records ----------------------------------------------------------------------------------


def test_identical_records_in_one_window_get_distinct_ids_the_first_keeping_the_plain_hash() -> None:
    mapper = make()
    same = record(plan="pro")
    ids = _ids(mapper, [same, same, record(plan="team"), same])
    assert len(set(ids)) == 4
    assert ids[0] == make()(same)["$unique_id"] == "bee7943a-ff4f-5620-8d66-00fb1cdac134"  # 0.1.0's id
    body = {k: v for k, v in make()(same).items() if k != "$unique_id"}
    assert ids[1] == _reference_repeat_id("downloads", 2, body)
    assert ids[3] == _reference_repeat_id("downloads", 3, body)
    assert mapper.repeated == 2


def test_numbering_restarts_in_each_window_so_a_rerun_from_a_state_gives_the_same_ids() -> None:
    same = record(plan="pro")
    original = make()
    first_window = _ids(original, [same, same])
    original.new_window()
    second_window = _ids(original, [same, same, same])
    rerun = make()  # a re-run from the state between the windows sees only the second window
    assert _ids(rerun, [same, same, same]) == second_window
    assert second_window[:2] == first_window


def test_the_numbering_is_per_stream_and_only_for_content_hash_ids() -> None:
    same = record(plan="pro", id=5, unique_id="u-1")
    for mapper in (make(primary_key=[["id"]]), make()):
        # a primary key or a mapped id (the convention `unique_id`) names the event: copies are one event
        assert len(set(_ids(mapper, [same, same]))) == 1
        assert mapper.repeated == 0
    other_stream = make(stream="other")
    assert _ids(other_stream, [record(plan="pro")]) != _ids(make(), [record(plan="pro")])


def test_calling_the_mapper_is_pure() -> None:
    mapper = make()
    same = record(plan="pro")
    assert mapper(same)["$unique_id"] == mapper(same)["$unique_id"]
    assert mapper.repeated == 0


# --- integers beyond what the fast parser keeps -------------------------------------------------------


@pytest.mark.parametrize("value", [float(2**64), -float(2**63) * 2, 1.2345678901234568e29])
@pytest.mark.parametrize("where", ["custom", "nested", "list", "primary_key", "string_field", "time"])
def test_an_integral_float_beyond_2_53_asks_for_an_exact_re_read(value: float, where: str) -> None:
    data = {
        "custom": record(count=value),
        "nested": record(geo={"n": value}),
        "list": record(tags=[1, [value]]),
        "primary_key": record(id=value),
        "string_field": record(version=value),
        "time": record(time=value),
    }[where]
    mapper = make(primary_key=[["id"]]) if where == "primary_key" else make()
    with pytest.raises(InexactNumber):
        mapper.encode(data)


def test_ordinary_floats_and_exact_parser_values_map_without_a_re_read() -> None:
    event = make()(record(ratio=1.5, small=2.0**52, big=ExactFloat(1e20), exact=2**64 + 1))
    assert event["ratio"] == "1.5" and event["small"] == "4503599627370496.0"
    assert event["big"] == "1e+20"
    assert event["exact"] == "18446744073709551617"


def test_huge_primary_keys_read_exactly_stay_distinct() -> None:
    mapper = make(primary_key=[["id"]])
    exact = [json.loads(b'{"time": "2026-11-27T11:00:00Z", "package": "p", "id": %d}' % n)
             for n in (2**64, 2**64 + 1)]
    assert len(set(_ids(mapper, exact))) == 2
    lossy = [orjson.loads(b'{"time": "2026-11-27T11:00:00Z", "package": "p", "id": %d}' % n)
             for n in (2**64, 2**64 + 1)]
    assert lossy[0]["id"] == lossy[1]["id"]  # what orjson does, and why the re-read exists


# --- nesting ---------------------------------------------------------------------------------------------


def _nested(depth: int, leaf: object = "x") -> object:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("field", ["deep", "items"])
def test_values_nested_beyond_the_limit_are_an_invalid_record_naming_the_limit(field: str) -> None:
    value = _nested(1000) if field == "deep" else [_nested(1000)]
    with pytest.raises(InvalidRecord) as caught:
        make().encode(record(**{field: value}))
    assert str(MAX_DEPTH) in caught.value.reason
    assert caught.value.field.startswith(field) or caught.value.field == "a list"


def test_values_nested_within_the_limit_are_flattened() -> None:
    event = make()(record(deep=_nested(MAX_DEPTH - 2)))
    assert event["deep" + ".a" * (MAX_DEPTH - 2)] == "x"


def test_a_deep_primary_key_value_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidRecord):
        make(primary_key=[["id"]]).encode(record(id=_nested(1000)))


# --- ids sent as given -------------------------------------------------------------------------------------


def test_as_mapped_sends_the_mapped_id_unchanged_and_others_deterministically() -> None:
    mapper = make(unique_id_mode="as_mapped", primary_key=[["id"]])
    assert orjson.loads(mapper.encode(record(unique_id="evt-42", id=1)))["$unique_id"] == "evt-42"
    assert orjson.loads(mapper.encode(record(unique_id=12345, id=1)))["$unique_id"] == "12345"
    by_key = orjson.loads(mapper.encode(record(id=7)))["$unique_id"]  # no mapped id: the primary key's hash
    assert by_key == make(primary_key=[["id"]])(record(id=7))["$unique_id"]
    assert "as given" in mapper.describe_plan()
    assert make(stream="other", unique_id_mode="as_mapped")(record(unique_id="evt-42"))["$unique_id"] == "evt-42"
