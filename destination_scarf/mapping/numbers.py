"""One text for every form of the same number, for building ids: `1`, `1.0`, `"1"` and `"1.000000000"` are one.

Warehouses hand the same number over in several forms: a JSON integer on the direct path, a float after a CSV
or Parquet round trip, decimal text with the column's scale through PyAirbyte's DuckDB cache (`"1.000000000"`).
Where the stream's JSON schema says a field is a number, its value's *canonical text* goes into the id
material instead of the form it came in, so the same row gets the same `$unique_id` on every path. Events are
sent with their values as they came; only the id material changes.

The canonical text of a value (`canonical_number`):

- an integer (not a boolean): its decimal digits, `-` for a negative one;
- a finite float: the number its shortest round-trip text names (Python's `repr`: what the JSON text said, up
  to the 17 significant digits a double keeps);
- a string that is a decimal number, ASCII only, nothing around it: `[+-]?(digits[.digits] | .digits)`
  with an optional exponent `[eE][+-]?digits`;

taken as an exact decimal and written without exponent, without leading zeros before the point, without
trailing zeros after it (and without the point when nothing follows it), `-` only before a non-zero value
(`-0` and `-0.0` are `0`). So `1`, `1.0`, `"1"`, `"01"`, `"+1"`, `"1e0"` and `"1.000000000"` are all `1`;
`1.5` and `"1.500"` are `1.5`; `1e-05` is `0.00001`. Anything else is not a number and stays as it is:
booleans, nulls, objects and lists, NaN and infinities, text such as `"1 000"`, `" 1"`, `"0x10"`, `"1_000"`,
`"٣"` (non-ASCII digits), and numbers whose plain text would be longer than `MAX_DIGITS` characters.

`numeric_paths` reads which fields a stream's JSON schema declares numeric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: The longest plain text a canonical number may have (Python's own limit for integer text): past it, a value
#: such as "1e999999999" is not taken for a number, so its text never has to be written out.
MAX_DIGITS = 4300

_NUMBER_TEXT = re.compile(r"([+-]?)(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))(?:[eE]([+-]?[0-9]+))?")
#: JSON schema types that name a number.
_NUMBER_TYPES = frozenset({"number", "integer"})
#: Airbyte's narrower types for numbers (`airbyte_type`), the big ones carried as strings in older protocols.
_AIRBYTE_NUMBER_TYPES = frozenset({"integer", "big_integer", "big_number"})
#: Protocol v1's well-known types, as `$ref`s.
_WELL_KNOWN_NUMBERS = ("WellKnownTypes.json#/definitions/Integer", "WellKnownTypes.json#/definitions/Number")
#: How deeply object properties are followed for nested numeric fields.
_MAX_SCHEMA_DEPTH = 16


def canonical_number(value: Any) -> str | None:
    """The canonical text of a number (see the module's doc), or None when `value` is not a number."""
    value_type = type(value)
    if value_type is int:
        text = str(value)  # already canonical ("-0" cannot be an int's text)
        return text if len(text) <= MAX_DIGITS else None
    if value_type is str:
        if value.isascii() and value.isdigit():  # the common case: plain digits
            return (value.lstrip("0") or "0") if len(value) <= MAX_DIGITS else None
        text = value
    elif isinstance(value, float):  # a float, or the exact parser's ExactFloat
        if value != value or value in (float("inf"), float("-inf")):
            return None
        text = float.__repr__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = int.__repr__(value)
    else:
        return None
    match = _NUMBER_TEXT.fullmatch(text) if len(text) <= MAX_DIGITS + 8 else None
    if match is None:
        return None
    sign, whole, fraction, bare_fraction, exponent = match.groups()
    whole, fraction = whole or "", fraction or bare_fraction or ""
    digits = whole + fraction
    significant = digits.lstrip("0")
    if not significant.rstrip("0"):
        return "0"  # every zero, whatever its sign or exponent
    # The decimal point's place, counted from the first significant digit.
    point = len(whole) - (len(digits) - len(significant))
    if exponent:
        shift = exponent.lstrip("+-").lstrip("0")
        if len(shift) > 6:  # the plain text would be millions of characters long
            return None
        point += -int(shift or "0") if exponent.startswith("-") else int(shift or "0")
    significant = significant.rstrip("0")
    size = len(significant) + (1 - point if point <= 0 else max(0, point - len(significant)))
    if size > MAX_DIGITS:
        return None
    if point <= 0:
        plain = "0." + "0" * -point + significant
    elif point >= len(significant):
        plain = significant + "0" * (point - len(significant))
    else:
        plain = significant[:point] + "." + significant[point:]
    return "-" + plain if sign == "-" else plain


def canonical_or_same(value: Any) -> Any:
    """`value`'s canonical text when it is a number, else `value` itself."""
    text = canonical_number(value)
    return value if text is None else text


def is_numeric_schema(schema: Any) -> bool:
    """Whether a property's schema declares a number: `type` number or integer (alone, or with null:
    `["null", "number"]`), an Airbyte `airbyte_type` integer (big_integer, big_number), or a well-known Integer
    or Number `$ref`. A union with another type (`["string", "number"]`) is not: its text may be anything."""
    if not isinstance(schema, Mapping):
        return False
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.endswith(_WELL_KNOWN_NUMBERS):
        return True
    if schema.get("airbyte_type") in _AIRBYTE_NUMBER_TYPES:
        return True
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return kinds in _NUMBER_TYPES
    if isinstance(kinds, list):
        named = [kind for kind in kinds if kind != "null"]
        return bool(named) and all(isinstance(kind, str) and kind in _NUMBER_TYPES for kind in named)
    return False


def numeric_paths(json_schema: Any) -> frozenset[tuple[str, ...]]:
    """The fields a stream's JSON schema declares numeric, as key paths: `("id",)`, `("request", "size")` for a
    number in an object property."""
    found: set[tuple[str, ...]] = set()
    _collect(json_schema, (), found)
    return frozenset(found)


def _collect(schema: Any, prefix: tuple[str, ...], found: set[tuple[str, ...]]) -> None:
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping) or len(prefix) >= _MAX_SCHEMA_DEPTH:
        return
    for name, sub in properties.items():
        if not isinstance(name, str):
            continue
        path = (*prefix, name)
        if is_numeric_schema(sub):
            found.add(path)
        else:
            _collect(sub, path, found)
