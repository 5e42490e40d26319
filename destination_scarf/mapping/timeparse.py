"""Event times: parse what records carry into aware UTC datetimes, and format them the way Scarf expects.

Scarf's `Event.$time` is an RFC 3339 date-time; we always send UTC with a "Z" suffix
("2026-11-27T03:04:05Z", or "2026-11-27T03:04:05.123456Z" when there are microseconds).

Records carry times in many shapes, so `parse_event_time` accepts:

* ISO 8601 / RFC 3339 text: "YYYY-MM-DD" then "T", "t" or a space, then "HH:MM", optionally ":SS" and a fraction
  of 1 to 9 digits ("." or ","; digits past the sixth are truncated, since datetime holds microseconds), then
  optionally "Z"/"z" or an offset "+HH:MM", "+HHMM" or "+HH" (one space before it is tolerated: Postgres and
  log formats write "03:04:05 +0000"). No offset means UTC. Offsets are converted to UTC.
  A date alone ("YYYY-MM-DD") means midnight UTC. Surrounding whitespace is ignored.
* Epoch numbers (int or float, never bool) and numeric text ("1764212645", "1764212645123", "1764212645.5",
  "1.7642e9"), in seconds, milliseconds or microseconds, chosen by magnitude (see `SECONDS_BELOW` and friends).

This module is on the hot path (one call per record, millions of records), so the common shapes have fast paths:
ISO text shaped "YYYY-MM-DD(T| )HH:MM:SS[.fff|.ffffff][Z|+HH:MM|-HH:MM]" goes through the C `fromisoformat` after a
few positional checks, and integers go straight to `fromtimestamp`/`timedelta`. Everything else takes the general
regex path. Python 3.10's `fromisoformat` accepts far less than 3.11's (no "Z", fractions of 3 or 6 digits only),
and both are lenient in places ("+05:60" reads as +06:00), so we only hand it text whose shape both versions parse
identically and the same way the general path would; whenever it refuses, the general path parses the text again
and gives the reason. A fuzz test checks that the two paths never disagree.

Error messages are short fixed reasons and never contain the value: records carry personal data, and these messages
end up in logs. (Python's own datetime errors can echo the input, so they are never passed through.)
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import ROUND_FLOOR, Context, Decimal, InvalidOperation

__all__ = [
    "MICROSECONDS_BELOW",
    "MILLISECONDS_BELOW",
    "NOT_A_TIME",
    "SECONDS_BELOW",
    "format_scarf_time",
    "parse_event_time",
    "to_scarf_time",
]

UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = _dt.datetime.fromisoformat
_fromtimestamp = _dt.datetime.fromtimestamp
_timedelta = _dt.timedelta

# Epoch unit by magnitude. |v| < 1e11 is read as seconds (1e11 s is the year 5138, so every plausible
# seconds value fits); below 1e14 as milliseconds (1e11 ms is only March 1973, so real millisecond
# timestamps land here); below 1e17 as microseconds. Anything larger (nanoseconds, garbage) is rejected
# rather than guessed: a wrong guess would silently produce a date centuries off.
SECONDS_BELOW = 10**11
MILLISECONDS_BELOW = 10**14
MICROSECONDS_BELOW = 10**17

# Below 2**33 s (the year 2242) a double holds seconds to within 2**-21 s (< 0.5 µs), so an integer number of ms or
# µs divided into float seconds is off by less than half a microsecond, and fromtimestamp's rounding to the nearest
# microsecond gives the exact value back. Larger integers take exact timedelta arithmetic instead.
_FLOAT_EXACT_SECONDS = 2**33
_FLOAT_EXACT_MILLISECONDS = _FLOAT_EXACT_SECONDS * 1000
_FLOAT_EXACT_MICROSECONDS = _FLOAT_EXACT_SECONDS * 1_000_000

# Fixed reasons (no values in them, ever).
_R_TYPE = "expected an ISO 8601 string or an epoch number"
_R_BOOL = "a boolean is not a timestamp"
_R_EMPTY = "empty string"
#: The reason for text that is no time at all; callers that say this themselves need not repeat it.
NOT_A_TIME = "not an ISO 8601 date-time or epoch timestamp"
_R_FORMAT = NOT_A_TIME
_R_FIELDS = "date or time field out of range"
_R_OFFSET = "UTC offset out of range"
_R_NOT_FINITE = "not a finite number"
_R_TOO_LARGE = "epoch number too large for seconds, milliseconds or microseconds"
_R_RANGE = "epoch timestamp outside the supported date range"

# The fast path's body: "YYYY-MM-DD?HH:MM:SS" (19), with ".fff" (23) or ".ffffff" (26), "?" being "T" or " ".
# Both 3.10's and 3.11's fromisoformat parse exactly these the same way (with any separator character), so after a
# positional check we can hand them over. Value: what to append to the body for the canonical Scarf text.
_FAST_BODY_SUFFIX = {19: "Z", 23: "000Z", 26: "Z"}
# Characters at positions 4, 7, 10, 13 and 16 (one extended slice): the separators.
_FAST_SEPARATORS = frozenset({"--T::", "-- ::"})
# Zones after which the body is already UTC.
_UTC_ZONES = frozenset({"", "Z", "+00:00"})

# "+HH:MM" zones of the fast path, validated, and their offsets.
_ZONE_RE = re.compile(r"[+-]\d{2}:[0-5]\d", re.ASCII)
_ZONE_OFFSETS: dict[str, _dt.timedelta] = {}

_ISO_RE = re.compile(
    r"""
    (\d{4})-(\d{2})-(\d{2})                                  # date
    (?:
        [Tt\ ](\d{2}):(\d{2})                                # hours, minutes
        (?: :(\d{2}) (?:[.,](\d{1,9}))? )?                   # optional seconds and fraction
        \ ?(?: ([Zz]) | ([+-])(\d{2})(?::?(\d{2}))? )?       # optional zone
    )?
    """,
    re.VERBOSE | re.ASCII,
)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?\d+", re.ASCII)
# Longest numeric text we look at; real timestamps are under 30 characters.
_MAX_NUMBER_TEXT = 64
# Decimal arithmetic for numeric text: enough precision that scaling never rounds the integer part.
_DECIMAL_CONTEXT = Context(prec=60)


def parse_event_time(value: object) -> _dt.datetime:
    """Return `value` as an aware UTC datetime, or raise ValueError with a short reason (never the value)."""
    kind = type(value)
    if kind is str:
        return _parse_text(value)  # type: ignore[arg-type]
    if kind is int:
        return _from_epoch_int(value)  # type: ignore[arg-type]
    if kind is float:
        return _from_epoch_float(value)  # type: ignore[arg-type]
    return _parse_other(value)


def format_scarf_time(dt: _dt.datetime) -> str:
    """Format `dt` as Scarf wants it: ISO 8601 in UTC with "Z"; microseconds only when non-zero.

    A naive datetime is taken as UTC, matching `parse_event_time`.
    """
    tz = dt.tzinfo
    if tz is None:
        return dt.isoformat() + "Z"
    if tz is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat()[:-6] + "Z"  # isoformat ends with "+00:00" for UTC


def to_scarf_time(value: object) -> tuple[_dt.datetime, str]:
    """Parse `value` and format it; equal to `(d, format_scarf_time(d))` with `d = parse_event_time(value)`.

    This exists for speed: when the text is already (almost) in Scarf's shape it is reused instead of formatted,
    which saves the ~1 µs `isoformat` costs on every record.
    """
    if type(value) is str:
        split = _fast_split(value)
        if split is not None:
            body, zone = split
            if zone in _UTC_ZONES:
                try:
                    dt = _fromisoformat(body + "+00:00")  # as in _fast_parse, inlined: this is the hot path
                except ValueError:
                    pass  # a non-digit where a digit belongs: the general path gives the reason
                else:
                    if body[10] != "T":
                        body = body[:10] + "T" + body[11:]
                    if dt.microsecond == 0:
                        return dt, body[:19] + "Z"  # "...:05.000Z" is formatted without a fraction
                    return dt, body + _FAST_BODY_SUFFIX[len(body)]
    dt = parse_event_time(value)
    return dt, format_scarf_time(dt)


def window_cutoff(now: _dt.datetime, window: _dt.timedelta | None) -> str:
    """The first 19 characters of `now - window` in Scarf's text ("YYYY-MM-DDTHH:MM:SS"), for
    `recent_scarf_text`; "" (older than any time) when there is no window."""
    return "" if window is None else format_scarf_time(now - window)[:19]


def recent_scarf_text(value: str, cutoff: str) -> str | None:
    """`value` itself when it already is Scarf's canonical text and later than `cutoff`'s second, else None.

    Canonical: "YYYY-MM-DDTHH:MM:SSZ", or with six fraction digits that are not all zero, exactly what
    `to_scarf_time` would return for it. For such text the one-week window is a string comparison of its
    first 19 characters with the cutoff (same layout, so the order is the time order), computed once per
    input chunk instead of a datetime subtraction per record. None never means invalid: the caller takes
    the general path, which decides (a time at the cutoff's own second is left to it too).
    """
    size = len(value)
    if size == 20:
        body = value[:19]
    elif size == 27 and value[19] == ".":
        body = value[:26]
    else:
        return None
    if value[19 if size == 20 else 26] != "Z" or value[4:17:3] != "--T::" or value[:19] <= cutoff:
        return None
    try:
        moment = _fromisoformat(body)  # validates every digit (3.10 and 3.11 read this shape alike)
    except ValueError:
        return None
    if size == 27 and moment.microsecond == 0:
        return None  # ".000000Z" is written without a fraction: the general path formats it
    return value


# --- text ---------------------------------------------------------------------------------------------------


def _fast_split(text: str) -> tuple[str, str] | None:
    """(body, zone) if `text` has a fast-path shape, else None. The zone is "", "Z", "+00:00" or another "+HH:MM".

    Only a shape check: `fromisoformat` still validates every digit, and on any failure the general path parses
    the text again and gives the reason.
    """
    size = len(text)
    if size in _FAST_BODY_SUFFIX:
        body, zone = text, ""
    elif text[-1:] == "Z":
        body, zone = text[:-1], "Z"
    elif text[-3:-2] == ":" and text[-6:-5] in ("+", "-") and size - 6 in _FAST_BODY_SUFFIX:
        body, zone = text[:-6], text[-6:]
    else:
        return None
    if body[4:17:3] not in _FAST_SEPARATORS or len(body) not in _FAST_BODY_SUFFIX:
        return None
    if len(body) != 19 and body[19] != ".":
        return None
    return body, zone


def _fast_parse(body: str, zone: str) -> _dt.datetime | None:
    """Parse what `_fast_split` accepted; None if a digit position or the zone holds something else."""
    try:
        # Appending "+00:00" makes fromisoformat return the timezone.utc singleton directly;
        # datetime.replace(tzinfo=...) would cost ~1 µs more, astimezone() about as much.
        moment = _fromisoformat(body + "+00:00")
        if zone in _UTC_ZONES:
            return moment
        offset = _zone_offset(zone)
        return None if offset is None else moment - offset
    except (ValueError, OverflowError):  # OverflowError: an offset pushing the time past year 1 or 9999
        return None


def _zone_offset(zone: str) -> _dt.timedelta | None:
    """The offset of a "+HH:MM" zone, or None if it is not a valid one. We check zones ourselves rather than
    through fromisoformat, which reads "+05:60" as +06:00. Cached: a data set uses few distinct zones."""
    offset = _ZONE_OFFSETS.get(zone)
    if offset is None:
        if not _ZONE_RE.fullmatch(zone) or zone[1:3] > "23":
            return None
        offset = _timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if zone[0] == "-":
            offset = -offset
        _ZONE_OFFSETS[zone] = offset  # at most 2 * 24 * 60 valid zones, so the cache stays small
    return offset


def _parse_text(text: str) -> _dt.datetime:
    split = _fast_split(text)
    if split is not None:
        dt = _fast_parse(*split)
        if dt is not None:
            return dt
    return _parse_text_slow(text)


def _parse_text_slow(text: str) -> _dt.datetime:
    text = text.strip()
    if not text:
        raise ValueError(_R_EMPTY)
    match = _ISO_RE.fullmatch(text)
    if match is not None:
        return _from_iso_match(match)
    if len(text) > _MAX_NUMBER_TEXT:  # also keeps int() clear of its 4300-digit limit and its error text
        raise ValueError(_R_FORMAT)
    if _INTEGER_RE.fullmatch(text):
        return _from_epoch_int(int(text))
    if _NUMBER_RE.fullmatch(text):
        return _from_epoch_decimal(Decimal(text))
    raise ValueError(_R_FORMAT)


def _from_iso_match(match: re.Match[str]) -> _dt.datetime:
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    if fraction:
        # Truncate to microseconds: pad or cut to exactly six digits.
        microsecond = int((fraction + "00000")[:6])
    else:
        microsecond = 0
    try:
        dt = _dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            microsecond,
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError(_R_FIELDS) from None
    if sign is None:  # "Z" or no zone at all: already UTC
        return dt
    return _shift_to_utc(dt, sign, off_h, off_m)


def _shift_to_utc(local: _dt.datetime, sign: str, hours: str, minutes: str | None) -> _dt.datetime:
    """`local` carries the wall-clock fields (labelled UTC); subtract the offset to get the real UTC instant."""
    off_h, off_m = int(hours), int(minutes or 0)
    if off_h > 23 or off_m > 59:
        raise ValueError(_R_OFFSET)
    offset = _timedelta(hours=off_h, minutes=off_m)
    try:
        return local - offset if sign == "+" else local + offset
    except OverflowError:
        raise ValueError(_R_FIELDS) from None


# --- numbers ------------------------------------------------------------------------------------------------


def _from_epoch_int(value: int) -> _dt.datetime:
    magnitude = -value if value < 0 else value
    try:
        if magnitude < SECONDS_BELOW:
            return _fromtimestamp(value, UTC)  # exact for ints, and the cheapest conversion there is
        if magnitude < MILLISECONDS_BELOW:
            if magnitude < _FLOAT_EXACT_MILLISECONDS:
                return _fromtimestamp(value / 1000, UTC)  # exact here (see _FLOAT_EXACT_SECONDS), and 2x faster
            return _EPOCH + _timedelta(milliseconds=value)  # integer timedelta arithmetic: exact everywhere
        if magnitude < MICROSECONDS_BELOW:
            if magnitude < _FLOAT_EXACT_MICROSECONDS:
                return _fromtimestamp(value / 1_000_000, UTC)
            return _EPOCH + _timedelta(microseconds=value)
    except (OverflowError, OSError, ValueError):
        raise ValueError(_R_RANGE) from None
    raise ValueError(_R_TOO_LARGE)


def _from_epoch_float(value: float) -> _dt.datetime:
    """Floats are rounded to the nearest microsecond (by timedelta): a binary float rarely holds a decimal fraction
    exactly (1.123 is 1.12299999...), so truncating would turn ".123" into ".122999"."""
    if not math.isfinite(value):
        raise ValueError(_R_NOT_FINITE)
    magnitude = abs(value)
    if magnitude < SECONDS_BELOW:
        delta_args = {"seconds": value}
    elif magnitude < MILLISECONDS_BELOW:
        delta_args = {"milliseconds": value}
    elif magnitude < MICROSECONDS_BELOW:
        delta_args = {"microseconds": value}
    else:
        raise ValueError(_R_TOO_LARGE)
    try:
        return _EPOCH + _timedelta(**delta_args)
    except (OverflowError, ValueError):
        raise ValueError(_R_RANGE) from None


def _from_epoch_decimal(value: Decimal) -> _dt.datetime:
    """Numeric text with a fraction or exponent: exact decimal arithmetic, fraction truncated towards the past
    like ISO fractions (only floats are rounded, because only they are inexact)."""
    magnitude = abs(value)
    if magnitude < SECONDS_BELOW:
        scale = 1_000_000
    elif magnitude < MILLISECONDS_BELOW:
        scale = 1_000
    elif magnitude < MICROSECONDS_BELOW:
        scale = 1
    else:
        raise ValueError(_R_TOO_LARGE)
    try:
        micros = int(_DECIMAL_CONTEXT.multiply(value, scale).to_integral_value(rounding=ROUND_FLOOR))
        return _EPOCH + _timedelta(microseconds=micros)
    except (OverflowError, ValueError, InvalidOperation):
        raise ValueError(_R_RANGE) from None


# --- everything else ----------------------------------------------------------------------------------------


def _parse_other(value: object) -> _dt.datetime:
    """Subclasses of str/int/float (rare: JSON parsers produce exact types) and the rejected types."""
    if isinstance(value, bool):  # before int: bool is an int subclass, and True is not 1970-01-01T00:00:01Z
        raise ValueError(_R_BOOL)
    if isinstance(value, str):
        return _parse_text(str(value))
    if isinstance(value, int):
        return _from_epoch_int(int(value))
    if isinstance(value, float):
        return _from_epoch_float(float(value))
    raise ValueError(_R_TYPE)
