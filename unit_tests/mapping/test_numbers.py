"""Canonical numbers: every form of the same number gives one text, and so one id, where the schema says "number".

A seeded property test draws decimal numbers, writes each in every form a source or a cache may use (integer,
float, decimal text with trailing zeros as PyAirbyte's DuckDB cache writes it, leading zeros, a sign, an
exponent), and checks that all give one canonical text, equal to the exact decimal's value, in the documented
form. Then the mappers: which ids change, which do not, and that a stream without numeric fields is untouched.
"""

from __future__ import annotations

import datetime
import random
from decimal import Context, Decimal

import orjson
import pytest

from destination_scarf.mapping import ExactFloat, FieldRule, MappingConfig, compile_mapper
from destination_scarf.mapping.encoder import EventMapper
from destination_scarf.mapping.numbers import MAX_DIGITS, canonical_number, is_numeric_schema, numeric_paths

NOW = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.timezone.utc)
PACKAGE = "11111111-1111-4111-8111-111111111111"
TIME = "2026-06-01T11:00:00Z"
_EXACT = Context(prec=MAX_DIGITS + 50)


def _reference(text: str) -> str:
    """The canonical text by another road: Python's Decimal, exactly, written without exponent."""
    number = Decimal(text)
    if number.is_zero():
        return "0"
    plain = format(number.normalize(_EXACT), "f")
    return plain.rstrip("0").rstrip(".") if "." in plain else plain


def _forms(rng: random.Random, sign: str, whole: str, fraction: str) -> list[object]:
    """The number sign whole.fraction written in many ways, as sources and caches do."""
    digits = whole + fraction
    plain = f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    forms: list[object] = [
        plain,
        f"{sign}{whole}.{fraction}{'0' * rng.randrange(1, 12)}",  # trailing zeros: "1.000000000"
        f"{sign}{'0' * rng.randrange(1, 4)}{whole}.{fraction}0",  # leading zeros
        f"{sign or '+'}{whole}.{fraction}",  # an explicit plus
    ]
    shift = rng.randrange(-5, 6)  # the same number with its point moved and an exponent to make up for it
    shifted = Decimal(plain).scaleb(-shift, _EXACT)
    forms.append(f"{format(shifted, 'f')}{rng.choice('eE')}{shift:+d}" if rng.random() < 0.5 else
                 f"{format(shifted, 'f')}e{shift}")
    value = Decimal(plain)
    if value == value.to_integral_value():
        forms.append(int(value))
        if len(digits.lstrip("0")) <= 15:
            forms.append(float(value))  # 1.0
    elif len(digits.lstrip("0")) <= 15:  # a double names it exactly enough: its shortest text is this number
        forms.append(float(value))
        forms.append(ExactFloat(float(value)))  # the exact parser's float
    return forms


@pytest.mark.parametrize("seed", range(40))
def test_every_form_of_a_number_has_one_canonical_text_equal_to_its_exact_value(seed):
    rng = random.Random(seed)
    for _ in range(200):
        sign = rng.choice(("", "", "-"))
        whole = str(rng.choice((0, rng.randrange(10), rng.randrange(10**6), rng.randrange(10**30))))
        fraction = rng.choice(("", "", "5", str(rng.randrange(10**9)).rjust(9, "0").rstrip("0")))
        forms = _forms(rng, sign, whole, fraction)
        texts = {canonical_number(form) for form in forms}
        assert len(texts) == 1, (forms, texts)
        [text] = texts
        assert text is not None and text == _reference(forms[0])  # the exact value, nothing lost
        assert Decimal(text) == Decimal(forms[0])
        # The documented form: no exponent, no sign on zero, no leading or trailing zeros.
        assert "e" not in text.lower() and text != "-0" and not text.startswith("+")
        unsigned = text.lstrip("-")
        assert unsigned == "0" or not unsigned.startswith("0") or unsigned.startswith("0.")
        assert "." not in text or not text.endswith(("0", "."))
        assert canonical_number(text) == text  # a fixed point


@pytest.mark.parametrize("value, expected", [
    (1, "1"), (1.0, "1"), ("1", "1"), ("1.000000000", "1"), ("01", "1"), ("+1", "1"), ("1e0", "1"),
    (-0.0, "0"), ("-0.000", "0"), ("0e5", "0"), (1.5, "1.5"), ("1.500", "1.5"), (1e-05, "0.00001"),
    (1e16, "10000000000000000"), ("1E+2", "100"), (".5", "0.5"), ("5.", "5"), ("-00012.500", "-12.5"),
    (2**70, "1180591620717411303424"), ("120.0e-3", "0.12"),
])
def test_canonical_text_examples(value, expected):
    assert canonical_number(value) == expected


@pytest.mark.parametrize("value", [
    True, False, None, [], {}, float("nan"), float("inf"), "", " 1", "1 ", "1 000", "1_000", "0x10", "1,5",
    "\u0663", "１", "NaN", "Infinity", "-", ".", "e5", "1e", "abc", "1e99999999", "1e-99999999", "9" * (MAX_DIGITS + 1),
])
def test_what_is_not_a_number_stays_as_it_is(value):
    assert canonical_number(value) is None


def test_the_schema_says_which_fields_are_numbers():
    schema = {"type": "object", "properties": {
        "id": {"type": "integer"},
        "amount": {"type": ["null", "number"]},
        "legacy": {"type": "number", "airbyte_type": "integer"},
        "big": {"type": "string", "airbyte_type": "big_integer"},
        "v1": {"$ref": "WellKnownTypes.json#/definitions/Number"},
        "zip": {"type": "string"},
        "either": {"type": ["string", "number"]},  # text may be anything: not a number
        "only_null": {"type": "null"},
        "request": {"type": "object", "properties": {"bytes": {"type": "integer"}, "path": {"type": "string"}}},
    }}
    assert numeric_paths(schema) == {("id",), ("amount",), ("legacy",), ("big",), ("v1",), ("request", "bytes")}
    assert numeric_paths({}) == frozenset() == numeric_paths(None) == numeric_paths({"properties": []})
    assert not is_numeric_schema({"type": ["null"]}) and not is_numeric_schema("number")


# ----- ids ------------------------------------------------------------------------------------------

SCHEMA_NUMBERS = frozenset({("id",), ("bytes",), ("request", "size")})


def _mapper(*, numeric=SCHEMA_NUMBERS, primary_key=None, rules=(), **config) -> EventMapper:
    mapping = MappingConfig(field_rules=tuple(FieldRule(**rule) for rule in rules), **config)
    return compile_mapper(config=mapping, stream="downloads", namespace=None, primary_key=primary_key,
                          now=lambda: NOW, numeric_fields=numeric)


def _id(mapper: EventMapper, data: dict) -> str:
    mapper.new_window()  # each record on its own: no numbering of repeats
    return orjson.loads(mapper.encode(data))["$unique_id"]


def _row(**values) -> dict:
    return {"time": TIME, "package": PACKAGE, **values}


FORMS = (1, 1.0, "1", "1.000000000")


@pytest.mark.parametrize("how", ["mapped", "primary key", "content"])
def test_one_number_in_any_form_gives_one_id_and_the_plain_numbers_id_is_unchanged(how):
    setup = {"mapped": {"rules": [{"scarf_field": "$unique_id", "source_field": "id"}]},
             "primary key": {"primary_key": [["id"]]}, "content": {}}[how]
    mapper, before = _mapper(**setup), _mapper(numeric=frozenset(), **setup)
    ids = {_id(mapper, _row(id=form, country="NL")) for form in FORMS}
    assert ids == {_id(before, _row(id=1, country="NL"))}  # the id a plain 1 always had
    assert _id(mapper, _row(id=2, country="NL")) not in ids  # another number is another id


def test_the_event_keeps_its_values_only_the_id_material_changes():
    mapper = _mapper()
    event = orjson.loads(mapper.encode(_row(id="1.000000000", bytes=2.50, request={"size": "7.0", "path": "/a"})))
    assert (event["id"], event["bytes"], event["request.size"]) == ("1.000000000", "2.5", "7.0")
    mapper.new_window()  # (in one window, the same content again would be numbered as a repeat)
    plain = orjson.loads(mapper.encode(_row(id=1, bytes="2.500", request={"size": 7, "path": "/a"})))
    assert plain["$unique_id"] == event["$unique_id"]  # nested numbers too (request.size)
    assert mapper(_row(id=1.0, bytes=2.5, request={"size": 7, "path": "/a"}))["$unique_id"] == event["$unique_id"]


def test_fields_the_schema_does_not_call_numbers_keep_their_text_in_the_id():
    mapper = _mapper()
    assert _id(mapper, _row(id=1, zip="01")) != _id(mapper, _row(id=1, zip="1"))
    # A numeric field holding text that is no number is hashed as it is.
    assert _id(mapper, _row(id="n/a")) != _id(mapper, _row(id="n/a "))


def test_a_mapped_numeric_id_under_as_mapped_is_sent_as_its_canonical_number():
    mapper = _mapper(rules=[{"scarf_field": "$unique_id", "source_field": "id"}], unique_id_mode="as_mapped")
    assert {_id(mapper, _row(id=form)) for form in FORMS} == {"1"}
    assert _id(mapper, _row(id="abc-1")) == "abc-1"


def test_numeric_scarf_fields_and_listed_variables_count_in_content_ids():
    mapper = _mapper(numeric=frozenset({("version",), ("n",)}), custom_variables="listed",
                     custom_variable_fields=("n",))
    assert _id(mapper, _row(version=2, n=3)) == _id(mapper, _row(version="2.0", n=3.0))


def test_a_stream_without_numeric_fields_encodes_exactly_as_before():
    """Its content ids hash the event as sent (as 0.1.0 did: the schema says nothing), where a stream whose
    schema declares the field numeric hashes the canonical number."""
    mapper = _mapper(numeric=frozenset())
    assert _id(mapper, _row(id=1)) != _id(mapper, _row(id=1.0))
    assert _id(_mapper(), _row(id=1)) == _id(_mapper(), _row(id=1.0))


def test_repeats_of_one_number_in_other_forms_are_numbered_as_repeats():
    mapper = _mapper()
    mapper.new_window()
    first, second = (orjson.loads(mapper.encode(_row(id=form)))["$unique_id"] for form in (1, "1.0"))
    assert first != second and mapper.repeated == 1  # the same content twice in a window: two events
