"""Record values as Scarf wants them: text, flattened objects, headers, and the exactness and depth checks.

Nothing here puts a record value into an error message: records carry personal data (IP addresses, user
agents) and errors end up in logs. `InvalidRecord` names the field and a reason only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

#: How deeply a value may nest objects and lists before the record is refused (as invalid, naming the limit).
MAX_DEPTH = 64

#: Above this magnitude a float may be an integer the JSON parser could not hold exactly (orjson reads
#: integers of 2**64 and more as floats): such a record is read again with an exact parser.
_EXACT_FLOAT_LIMIT = float(2**53)

_R_TOO_DEEP = f"nests objects or lists more than {MAX_DEPTH} levels deep (the most the connector maps)"
_R_HEADERS_SHAPE = "expected a list of {name, value} objects, an object of name: value, or JSON text of either"


class InvalidRecord(Exception):
    """A record that cannot become a valid Scarf event.

    Carries the Scarf field (or source field) and a reason, never a value: records hold personal data.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidRecord], tuple[str, str]]:
        # Exceptions pickle as cls(*args); ours takes two arguments, not the message.
        return (type(self), (self.field, self.reason))


class InexactNumber(Exception):
    """A record holds a float that may be an integer the fast JSON parser could not keep exactly.

    Not an error: the caller parses the record's line again with an exact parser (integers of any size,
    floats marked as such, see `ExactFloat`) and maps it again, so ids and custom variables keep every digit.
    """


class ExactFloat(float):
    """A float that was written as a float in the JSON text (from the exact parser): never re-read."""


def read_exactly(line: bytes) -> dict:
    """A RECORD line's `data` read again exactly: integers keep every digit, floats are marked as such."""
    try:
        message = json.loads(line, parse_float=ExactFloat)
    except RecursionError:
        raise InvalidRecord("data", "nests objects or lists too deeply to be read exactly") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise InvalidRecord("data", "holds a number too long to be read exactly") from None
    return message["record"]["data"]


# --- reading ---------------------------------------------------------------------------------------------


def read_path(data: Mapping[str, Any], dotted: str, path: tuple[str, ...]) -> Any:
    """Read a dotted path (`dotted` is `path` joined, precomputed). A top-level key spelled with the dots wins:
    some sources do have "a.b" keys."""
    value = data.get(dotted)
    if value is not None:
        return value
    return read_path_exact(data, path)


def read_path_exact(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Walk a path of keys through nested objects (primary keys come as such lists; dotted names are split)."""
    value: Any = data
    for part in path:
        if type(value) is not dict and not isinstance(value, Mapping):  # the type check first: ABC checks are slow
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


# --- text -----------------------------------------------------------------------------------------------


#: The non-string scalar types orjson produces: checked by identity before any (slow) ABC isinstance.
JSON_SCALARS = frozenset({int, float, bool})


def _type_name(value: object) -> str:
    """JSON's names for JSON types (what Airbyte users see in their schemas), Python's otherwise."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def float_text(value: float) -> str:
    """A float as text, unless it may be an integer the parser could not hold exactly (then InexactNumber)."""
    if not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT and value.is_integer():
        raise InexactNumber()
    return str(value)


def check_exact(value: object, where: str, depth: int) -> None:
    """Walk a container: InvalidRecord past MAX_DEPTH levels, InexactNumber for a float that may have lost digits."""
    if depth > MAX_DEPTH:
        raise InvalidRecord(where, _R_TOO_DEEP)
    value_type = type(value)
    if value_type is float:
        float_text(value)  # type: ignore[arg-type]
    elif value_type is list or value_type is tuple:
        for item in value:  # type: ignore[attr-defined]
            check_exact(item, where, depth + 1)
    elif value_type is dict or isinstance(value, Mapping):
        for item in value.values():  # type: ignore[attr-defined]
            check_exact(item, where, depth + 1)


def field_text(field: str, value: object) -> str:
    """A Scarf string field's value: numbers become str(v) (so 2.0 stays "2.0"); booleans and containers are
    errors, since they almost always mean the wrong source field was mapped."""
    if isinstance(value, str):
        return str(value)
    if type(value) is float:
        return float_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InvalidRecord(field, f"expected a string, got {_type_name(value)}")


def variable_text(value: object) -> str:
    """A custom variable's value as text.

    Scarf stores custom variables as text; sending strings ourselves keeps the value exactly as the source had it
    (no float reformatting or bool spelling left to the server). Booleans use JSON's spelling, lists JSON text.
    """
    value_type = type(value)
    if value_type is int or value_type is str:
        return str(value)
    if value_type is float:
        return float_text(value)  # type: ignore[arg-type]
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        check_exact(value, "a list", 1)
        return canonical_json(value).decode("utf-8", "surrogatepass")
    return str(value)


def flatten_into(out: dict[str, Any], prefix: str, obj: Mapping[Any, Any], skip: frozenset[str],
                  depth: int = 1) -> None:
    """Nested objects become dotted keys ("geo.country"); nulls are dropped at every level; `skip` holds dotted
    paths a Scarf field consumed (e.g. "request.ip" while "request.path" stays a custom variable). Should a record
    also have a top-level key spelled "geo.country", the later of the two in record order wins. Past MAX_DEPTH
    levels the record is invalid (a limit, not a crash on Python's recursion limit)."""
    if depth >= MAX_DEPTH:
        raise InvalidRecord(prefix, _R_TOO_DEEP)
    for key, value in obj.items():
        if value is None:
            continue
        name = f"{prefix}.{key}"
        if skip and name in skip:
            continue
        value_type = type(value)
        if value_type is str:
            out[name] = value
        elif value_type is bool:  # as variable_text spells them, without the call: nested flags are common
            out[name] = "true" if value else "false"
        elif value_type is int:
            out[name] = str(value)
        elif value_type is dict:
            flatten_into(out, name, value, skip, depth + 1)
        elif value_type in JSON_SCALARS or not isinstance(value, Mapping):  # ABC checks are slow
            out[name] = variable_text(value)
        else:
            flatten_into(out, name, value, skip, depth + 1)


# --- headers --------------------------------------------------------------------------------------------


def headers_from_value(value: object) -> list[dict[str, str]]:
    """Normalize $headers: a list of {name, value}, an object {name: value or [values]}, or JSON text of either."""
    if isinstance(value, str):
        return headers_from_text(value)
    if isinstance(value, (list, tuple)):
        return headers_from_list(value)
    if isinstance(value, Mapping):
        return headers_from_object(value)
    raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got {_type_name(value)}")


def headers_from_text(text: str) -> list[dict[str, str]]:
    if not text.strip():
        return []
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got text that is not JSON") from None
    if not isinstance(parsed, (list, dict)):
        raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got JSON text of {_type_name(parsed)}")
    return headers_from_value(parsed)


def headers_from_list(items: Iterable[object]) -> list[dict[str, str]]:
    headers = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got a list item that is {_type_name(item)}")
        name = _header_name(item.get("name"))
        value = item.get("value")
        if value is not None:
            headers.append({"name": name, "value": _header_text(value)})
    return headers


def headers_from_object(obj: Mapping[Any, Any]) -> list[dict[str, str]]:
    headers = []
    for raw_name, value in obj.items():
        name = _header_name(raw_name)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item is not None:
                headers.append({"name": name, "value": _header_text(item)})
    return headers


def _header_name(name: object) -> str:
    text = _header_text(name) if name is not None else ""
    if not text:
        raise InvalidRecord("$headers", "a header without a name")
    return text


def _header_text(value: object) -> str:
    if isinstance(value, (Mapping, list, tuple)):
        raise InvalidRecord("$headers", f"header names and values must be text or numbers, got {_type_name(value)}")
    return variable_text(value)


def canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes (sorted keys). orjson first; the stdlib fallback covers what orjson refuses
    (integers beyond 64 bits, lone surrogates), so hashing never fails on odd but valid records."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return canonical_json_fallback(value)


def canonical_json_fallback(value: object) -> bytes:
    """What `canonical_json` writes when orjson refuses a value: the standard library's JSON, the same layout."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8", "surrogatepass")
