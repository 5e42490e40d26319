"""Tests for destination_scarf.mapping.timeparse: every accepted shape, every unit, every rejection, and no values in errors."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from typing import Any

import pytest

from destination_scarf.mapping.timeparse import (  # _parse_text_slow: the reference the fast path must agree with
    MICROSECONDS_BELOW,
    MILLISECONDS_BELOW,
    SECONDS_BELOW,
    _parse_text_slow,
    format_scarf_time,
    parse_event_time,
    to_scarf_time,
)

UTC = dt.timezone.utc
SCARF_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


# --- ISO 8601 text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the fast-path shapes
        ("2026-11-27T03:04:05Z", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27T03:04:05.123Z", utc(2026, 11, 27, 3, 4, 5, 123000)),
        ("2026-11-27T03:04:05.123456Z", utc(2026, 11, 27, 3, 4, 5, 123456)),
        ("2026-11-27T03:04:05+00:00", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27T03:04:05.123456+00:00", utc(2026, 11, 27, 3, 4, 5, 123456)),
        # separators and case
        ("2026-11-27 03:04:05Z", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27t03:04:05z", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27T03:04:05,5Z", utc(2026, 11, 27, 3, 4, 5, 500000)),
        # naive means UTC
        ("2026-11-27T03:04:05", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27 03:04:05.25", utc(2026, 11, 27, 3, 4, 5, 250000)),
        ("2026-11-27T03:04", utc(2026, 11, 27, 3, 4)),
        # date only: midnight UTC
        ("2026-11-27", utc(2026, 11, 27)),
        # offsets are converted to UTC
        ("2026-11-27T03:04:05+02:00", utc(2026, 11, 27, 1, 4, 5)),
        ("2026-11-27T03:04:05-05:30", utc(2026, 11, 27, 8, 34, 5)),
        ("2026-11-27T03:04:05+0530", utc(2026, 11, 26, 21, 34, 5)),
        ("2026-11-27T03:04:05+01", utc(2026, 11, 27, 2, 4, 5)),
        ("2026-11-27T03:04:05-00:00", utc(2026, 11, 27, 3, 4, 5)),
        ("2026-11-27 03:04:05.123+00", utc(2026, 11, 27, 3, 4, 5, 123000)),  # Postgres text output
        ("2026-11-27 03:04:05 +0000", utc(2026, 11, 27, 3, 4, 5)),  # log style, space before the offset
        ("2026-01-01T00:30:00+01:00", utc(2025, 12, 31, 23, 30)),  # across a year boundary
        # whitespace around the value
        ("  2026-11-27T03:04:05Z\n", utc(2026, 11, 27, 3, 4, 5)),
    ],
)
def test_iso_text(text: str, expected: dt.datetime) -> None:
    parsed = parse_event_time(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("digits", range(1, 10))
def test_fractions_of_any_length_are_truncated_to_microseconds(digits: int) -> None:
    fraction = "987654321"[:digits]
    expected_micros = int((fraction + "000000")[:6])
    for suffix in ("Z", "+00:00", ""):
        assert parse_event_time(f"2026-11-27T03:04:05.{fraction}{suffix}").microsecond == expected_micros


def test_truncation_not_rounding() -> None:
    assert parse_event_time("2026-11-27T23:59:59.9999999Z") == utc(2026, 11, 27, 23, 59, 59, 999999)


def test_fast_and_general_paths_agree_on_random_times() -> None:
    """The fast path must give exactly what the general parser gives for every spelling of the same moment."""
    rng = random.Random(20261127)
    for _ in range(500):
        moment = utc(2000, 1, 1) + dt.timedelta(microseconds=rng.randrange(10**9 * 10**6))
        base = moment.strftime("%Y-%m-%dT%H:%M:%S")
        millis = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        micros = f"{moment.microsecond:06d}"
        spellings = {
            f"{base}Z": moment.replace(microsecond=0),
            f"{base}+00:00": moment.replace(microsecond=0),
            f"{base}.{micros}Z": moment,
            f"{base}.{micros}+00:00": moment,
            f"{base}.{micros[:3]}Z": millis,
            f"{base}.{micros}": moment,
            f"{base.replace('T', ' ')}.{micros}Z": moment,
            f"{base}.{micros}000Z": moment,
            f"{base}-00:00": moment.replace(microsecond=0),
            f"{(moment + dt.timedelta(hours=5, minutes=30)).strftime('%Y-%m-%dT%H:%M:%S')}.{micros}+05:30": moment,
            f"{(moment - dt.timedelta(hours=8)).strftime('%Y-%m-%d %H:%M:%S')}.{micros[:3]}-08:00": millis,
        }
        for text, expected in spellings.items():
            assert parse_event_time(text) == expected, text
            assert to_scarf_time(text) == (expected, format_scarf_time(expected)), text


def outcome(parse: Any, text: str) -> object:
    try:
        return parse(text)
    except ValueError as exc:
        return ("error", str(exc))


def test_fast_path_never_disagrees_with_the_general_parser_on_mutated_text() -> None:
    """Fuzz: take fast-path shapes, change one or two characters, and require the same result or the same reason
    from the full parser (fast path first) and from the general parser alone. This is what guards against
    `fromisoformat` leniencies (it reads "+05:60" as +06:00, and 3.11 accepts more than 3.10)."""
    rng = random.Random(11)
    alphabet = "0123456789-:T tZz+.,W\u0663"
    shapes = [
        "2026-11-27T03:04:05Z",
        "2026-11-27T03:04:05.123Z",
        "2026-11-27 03:04:05.123456",
        "2026-11-27T03:04:05+00:00",
        "2026-11-27T03:04:05.123456-05:30",
        "2026-11-27 03:04:05.123+14:00",
        "0001-01-01T00:30:00+23:59",
        "9999-12-31T23:59:59.999999-00:01",
    ]
    for _ in range(3000):
        chars = list(rng.choice(shapes))
        for _ in range(rng.randrange(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        text = "".join(chars)
        assert outcome(parse_event_time, text) == outcome(_parse_text_slow, text), text


# --- epoch numbers ------------------------------------------------------------------------------------------

MOMENT = utc(2026, 11, 27, 3, 4, 5)
SECONDS = int(MOMENT.timestamp())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (SECONDS, MOMENT),
        (SECONDS * 1000 + 123, MOMENT.replace(microsecond=123000)),
        (SECONDS * 1_000_000 + 123456, MOMENT.replace(microsecond=123456)),
        (SECONDS + 0.5, MOMENT.replace(microsecond=500000)),
        (SECONDS * 1000 + 123.5, MOMENT.replace(microsecond=123500)),
        (float(SECONDS * 1_000_000 + 7), MOMENT.replace(microsecond=7)),
        (0, utc(1970, 1, 1)),
        (-1, utc(1969, 12, 31, 23, 59, 59)),
        (-1.5, utc(1969, 12, 31, 23, 59, 58, 500000)),
        # numeric text
        (str(SECONDS), MOMENT),
        (f"{SECONDS * 1000 + 123}", MOMENT.replace(microsecond=123000)),
        (f"{SECONDS * 1_000_000 + 123456}", MOMENT.replace(microsecond=123456)),
        (f"{SECONDS}.123456789", MOMENT.replace(microsecond=123456)),  # decimal text: exact, truncated
        (f"{SECONDS * 1000}.5", MOMENT.replace(microsecond=500)),
        (f"+{SECONDS}", MOMENT),
        (" 1764212645 ", utc(2025, 11, 27, 3, 4, 5)),
        ("1.7642126455e9", utc(2025, 11, 27, 3, 4, 5, 500000)),
        ("-1.5", utc(1969, 12, 31, 23, 59, 58, 500000)),
    ],
)
def test_epoch_numbers(value: object, expected: dt.datetime) -> None:
    parsed = parse_event_time(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_float_seconds_round_to_the_nearest_microsecond() -> None:
    # 1764212645.123 is 1764212645.1229999... as a binary float: rounding gives back the .123 that was meant.
    assert parse_event_time(1764212645.123).microsecond == 123000


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (SECONDS_BELOW - 1, dt.timedelta(seconds=1)),
        (SECONDS_BELOW, dt.timedelta(milliseconds=1)),
        (MILLISECONDS_BELOW - 1, dt.timedelta(milliseconds=1)),
        (MILLISECONDS_BELOW, dt.timedelta(microseconds=1)),
        (MICROSECONDS_BELOW - 1, dt.timedelta(microseconds=1)),
        (-(SECONDS_BELOW - 1) // 10, dt.timedelta(seconds=1)),
        (-SECONDS_BELOW, dt.timedelta(milliseconds=1)),
    ],
)
def test_epoch_unit_thresholds(value: int, unit: dt.timedelta) -> None:
    expected = utc(1970, 1, 1) + value * unit
    assert parse_event_time(value) == expected
    assert parse_event_time(str(value)) == expected
    if int(float(value)) == value:  # 10**17 - 1 is not a float: it rounds up to 1e17, which is too large
        assert parse_event_time(float(value)) == expected


def test_integer_milliseconds_and_microseconds_are_exact() -> None:
    """The float shortcut for ms/µs integers must agree with exact integer arithmetic, up to and past its limit."""
    rng = random.Random(3)
    epoch = utc(1970, 1, 1)
    limit_ms, limit_us = 2**33 * 1000, 2**33 * 1_000_000
    values_ms = [rng.randrange(-limit_ms + 1, limit_ms) for _ in range(20000)]
    values_ms += [limit_ms - 1, limit_ms, limit_ms + 1, -limit_ms + 1, -limit_ms, MILLISECONDS_BELOW - 1]
    for value in values_ms:
        if abs(value) >= SECONDS_BELOW:
            assert parse_event_time(value) == epoch + dt.timedelta(milliseconds=value), value
    values_us = [rng.randrange(-limit_us + 1, limit_us) for _ in range(20000)]
    values_us += [limit_us - 1, limit_us, limit_us + 1, -limit_us + 1, MICROSECONDS_BELOW - 1, MILLISECONDS_BELOW + 1]
    for value in values_us:
        if abs(value) >= MILLISECONDS_BELOW:
            assert parse_event_time(value) == epoch + dt.timedelta(microseconds=value), value


def test_documented_thresholds() -> None:
    assert (SECONDS_BELOW, MILLISECONDS_BELOW, MICROSECONDS_BELOW) == (10**11, 10**14, 10**17)


# --- rejections ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty string"),
        ("   ", "empty string"),
        (None, "expected an ISO 8601 string or an epoch number"),
        ([1764212645], "expected an ISO 8601 string or an epoch number"),
        ({"t": 1764212645}, "expected an ISO 8601 string or an epoch number"),
        (b"2026-11-27", "expected an ISO 8601 string or an epoch number"),
        (dt.date(2026, 11, 27), "expected an ISO 8601 string or an epoch number"),
        (True, "a boolean is not a timestamp"),
        (False, "a boolean is not a timestamp"),
        (math.nan, "not a finite number"),
        (math.inf, "not a finite number"),
        (-math.inf, "not a finite number"),
        ("nan", "not an ISO 8601 date-time or epoch timestamp"),
        ("inf", "not an ISO 8601 date-time or epoch timestamp"),
        (MICROSECONDS_BELOW, "epoch number too large for seconds, milliseconds or microseconds"),
        (-MICROSECONDS_BELOW, "epoch number too large for seconds, milliseconds or microseconds"),
        (1e20, "epoch number too large for seconds, milliseconds or microseconds"),
        ("1e20", "epoch number too large for seconds, milliseconds or microseconds"),
        (str(10**40), "epoch number too large for seconds, milliseconds or microseconds"),
        ("9" * 100, "not an ISO 8601 date-time or epoch timestamp"),
        (-(SECONDS_BELOW - 1), "epoch timestamp outside the supported date range"),
        ("2026-13-01", "date or time field out of range"),
        ("2026-02-30T00:00:00Z", "date or time field out of range"),
        ("2026-11-27T24:00:00Z", "date or time field out of range"),
        ("2026-11-27T23:59:60Z", "date or time field out of range"),
        ("0000-01-01T00:00:00Z", "date or time field out of range"),
        ("0001-01-01T00:30:00+01:00", "date or time field out of range"),
        ("9999-12-31T23:30:00-01:00", "date or time field out of range"),
        ("2026-11-27T03:04:05+24:00", "UTC offset out of range"),
        ("2026-11-27T03:04:05+05:60", "UTC offset out of range"),
        ("2026-11-27T03:04:05.1234567890Z", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-11-27T03:04:05.Z", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-11-27T", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-11-27T3:04:05Z", "not an ISO 8601 date-time or epoch timestamp"),
        ("27/11/2026", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-W48-5", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-11-27T03:04:05 UTC", "not an ISO 8601 date-time or epoch timestamp"),
        ("2026-11-27T03:04:0\u0663Z", "not an ISO 8601 date-time or epoch timestamp"),  # Arabic-Indic digit
        ("2026-11-27T03:04:0\ud800Z", "not an ISO 8601 date-time or epoch timestamp"),  # lone surrogate
        ("2026-11-27T03:04:+5Z", "not an ISO 8601 date-time or epoch timestamp"),  # fast-path shape, bad digit
        ("1_764_212_645", "not an ISO 8601 date-time or epoch timestamp"),
        ("0x1234", "not an ISO 8601 date-time or epoch timestamp"),
        ("yesterday", "not an ISO 8601 date-time or epoch timestamp"),
    ],
)
def test_rejections_have_fixed_reasons(value: object, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_event_time(value)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "value",
    [
        "PRIVATE-203.0.113.77",
        "2026-11-27T03:04:05+31:41",
        "2026-19-27T03:04:05Z",
        "7777-77-77",
        "2026-11-27T03:04:0\u0663Z",
        "31415926535897932384626",
        "0000-01-01T00:00:00Z",  # Python's own error would say "year 0 is out of range"
        "2026-11-27T99:04:05",  # ...and fromisoformat's would quote the string
    ],
)
def test_errors_never_contain_the_value(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_event_time(value)
    message = str(caught.value)
    assert value not in message
    for fragment in re.findall(r"\d{2,}|[A-Za-z]{4,}", value):
        if fragment not in ("PRIVATE",):
            assert fragment not in message
    assert "PRIVATE" not in message


# --- formatting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (utc(2026, 11, 27, 3, 4, 5), "2026-11-27T03:04:05Z"),
        (utc(2026, 11, 27, 3, 4, 5, 123456), "2026-11-27T03:04:05.123456Z"),
        (utc(2026, 11, 27, 3, 4, 5, 1), "2026-11-27T03:04:05.000001Z"),
        (dt.datetime(2026, 11, 27, 3, 4, 5), "2026-11-27T03:04:05Z"),  # naive: taken as UTC
        (dt.datetime(2026, 11, 27, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-11-27T03:04:05Z"),
        (utc(999, 1, 2, 3, 4, 5), "0999-01-02T03:04:05Z"),
    ],
)
def test_format_scarf_time(moment: dt.datetime, text: str) -> None:
    assert format_scarf_time(moment) == text
    assert SCARF_TIME.fullmatch(text)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-27T03:04:05Z",
        "2026-11-27T03:04:05.000Z",
        "2026-11-27T03:04:05.000000Z",
        "2026-11-27T03:04:05.120Z",
        "2026-11-27T03:04:05.123456+00:00",
        "2026-11-27T03:04:05+00:00",
        "2026-11-27T03:04:05.000+00:00",
        "2026-11-27T03:04:05-04:00",
        "2026-11-27",
        SECONDS,
        SECONDS * 1000 + 1,
        SECONDS + 0.25,
        str(SECONDS),
    ],
)
def test_to_scarf_time_equals_parse_then_format(value: object) -> None:
    parsed = parse_event_time(value)
    assert to_scarf_time(value) == (parsed, format_scarf_time(parsed))


def test_to_scarf_time_rejects_like_parse() -> None:
    for value in ("", "2026-11-27T03:04:+5Z", True, None, math.nan):
        with pytest.raises(ValueError):
            to_scarf_time(value)


def test_round_trip_through_format() -> None:
    rng = random.Random(7)
    for _ in range(200):
        moment = utc(1971, 1, 1) + dt.timedelta(microseconds=rng.randrange(2 * 10**15))
        text = format_scarf_time(moment)
        assert SCARF_TIME.fullmatch(text)
        assert parse_event_time(text) == moment
