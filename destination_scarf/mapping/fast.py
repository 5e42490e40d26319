"""Encoders specialized per record shape: the common record in straight-line code, anything else elsewhere.

A stream's records nearly always share one shape (their key names, in order). For such a shape the
general encoder still loops over its plan, reads each field through a chain of small calls and parses
the time through a general function. Here the plan is turned, once per shape, into one generated
function with the key names as literals, the fields in the plan's order and the time checked with a
string comparison (`timeparse.recent_scarf_text`).

The generated function does exactly what the general path does, in the same order, calling the same
value helpers, so its line is byte for byte the general path's (a property test compares the two over
generated records). It gives up, returning None, only where the general path would take a turn of its
own: a `$time` that is not already canonical recent UTC text, or an event without an artifact. It
does so before anything is counted, so the general path then starts from the same state. Shapes the
generator does not cover (headers, dotted-path rules, listed custom variables, a constant time) are
not specialized at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from destination_scarf.mapping.timeparse import recent_scarf_text
from destination_scarf.mapping.values import _JSON_SCALARS, _field_text, _flatten_into, _float_text, _variable_text

if TYPE_CHECKING:  # for the annotations only
    from destination_scarf.mapping.encoder import EventMapper, _ShapePlan

FastEncoder = Callable[[dict], "bytes | None"]

_SORTED = orjson.OPT_SORT_KEYS
_NEWLINE = orjson.OPT_APPEND_NEWLINE


def fast_encoder(mapper: EventMapper, plan: _ShapePlan, shape: tuple[Any, ...]) -> FastEncoder | None:
    """The specialized encoder of `shape`, or None when this shape is left to the general path."""
    time_keys = [key for key in mapper._time_keys or () if key in shape]
    if (mapper._time_keys is None or not time_keys or mapper._pathed or plan.headers
            or mapper._headers_constant is not None or mapper.variables.mode == "listed"):
        return None
    lines = ["def encode(data):"]
    lines += _first_present("raw", time_keys)
    lines += ["    if type(raw) is not str:", "        return None",
              "    text = recent_text(raw, mapper._cutoff)", "    if text is None:", "        return None",
              '    event = {"$time": text}']
    for field, keys in plan.fields:
        lines += _first_present("value", list(keys))
        lines += ["    if value is not None:",
                  "        if type(value) is not str:", f"            value = field_text({field!r}, value)",
                  "        if value:", f"            event[{field!r}] = value"]
    for field, constant in mapper._constants.items():
        lines.append(f"    event[{field!r}] = {constant!r}")
    if mapper._need_artifact:
        lines += ['    if "$package" not in event and "$tracking_pixel" not in event:', "        return None"]
    for key in plan.custom:
        lines += _custom_variable(key)
    lines += _unique_id(mapper, plan)
    namespace = {"mapper": mapper, "recent_text": recent_scarf_text, "field_text": _field_text,
                 "float_text": _float_text, "variable_text": _variable_text, "flatten": _flatten_into,
                 "nested": mapper.variables.consumed_nested, "scalars": _JSON_SCALARS, "Mapping": Mapping,
                 "dumps": orjson.dumps, "SORTED": _SORTED, "NEWLINE": _NEWLINE, "ids": mapper.ids}
    exec(compile("\n".join(lines), f"<fast encoder of {mapper.stream}>", "exec"), namespace)
    encode: FastEncoder = namespace["encode"]  # type: ignore[assignment]
    return encode


def _first_present(name: str, keys: list[str]) -> list[str]:
    """`name` = the first non-null value among `keys` (all present in the shape), as the general reader does."""
    lines = [f"    {name} = data[{keys[0]!r}]"]
    for key in keys[1:]:
        lines += [f"    if {name} is None:", f"        {name} = data[{key!r}]"]
    return lines


def _custom_variable(key: str) -> list[str]:
    """One custom variable, as `CustomVariables.put` writes it."""
    k = repr(key)
    return [
        f"    value = data[{k}]",
        "    if value is not None:",
        "        kind = type(value)",
        f"        if kind is str:\n            event[{k}] = value",
        f"        elif kind is int:\n            event[{k}] = str(value)",
        f"        elif kind is float:\n            event[{k}] = float_text(value)",
        f"        elif kind is dict:\n            flatten(event, {k}, value, nested)",
        "        elif kind in scalars or not isinstance(value, Mapping):",
        f"            event[{k}] = variable_text(value)",
        f"        else:\n            flatten(event, {k}, value, nested)",
    ]


def _unique_id(mapper: EventMapper, plan: _ShapePlan) -> list[str]:
    """The id and the line, as `EventMapper.encode` makes them."""
    if not mapper.ids.enabled:
        return ["    return dumps(event, option=NEWLINE)"]
    return [
        f"    key_id = ids.key_id(data, may_have_mapped={plan.unique_source!r})",
        "    if key_id is None:",
        "        canonical = dumps(event, option=SORTED)",
        """        return canonical[:-1] + b',"$unique_id":"' + ids.content_id(canonical).encode() + b'"}\\n'""",
        '    event["$unique_id"] = key_id',
        "    return dumps(event, option=NEWLINE)",
    ]
