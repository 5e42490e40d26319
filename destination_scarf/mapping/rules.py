"""The user's field mappings: the rules, their validation, and which rule or convention wins per stream.

Where each Scarf field F comes from, first match wins (decided at compile time, per stream):
  1. a field rule for this stream (`stream` equal to the stream name or "namespace.name"; the qualified one wins);
  2. a default field rule (`stream` None);
  3. convention: the record key named exactly F ("$time": what Airbyte's field-renaming produces);
  4. the record key named F without "$" ("time"); for $tracking_pixel also "pixel" and "$pixel" (Scarf's guide says
     "$pixel" where its spec says "$tracking_pixel").
A rule is final: if its source field is missing or null in a record, F is absent from that event; there is no
fallback to the convention, because silently reading a different field than the user configured is worse.
With a convention, all of its candidate keys are consumed (none of them becomes a custom variable), whether or not a
given record has them, so a stream's custom variables do not change from record to record. With a rule, only its
source field is consumed: the field's own "$" key is then dropped silently, and a plain "type" key is ordinary data.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from destination_scarf.mapping.timeparse import parse_event_time
from destination_scarf.mapping.values import InvalidRecord, headers_from_text, read_path
from destination_scarf.options import SCARF_FIELDS, CustomVariablesMode, TargetKind, UniqueIdMode

SCARF_FIELD_SET = frozenset(SCARF_FIELDS)

#: Fields sent as plain strings. $time, $headers and $unique_id have their own handling.
STRING_FIELDS = tuple(f for f in SCARF_FIELDS if f not in ("$time", "$unique_id", "$headers"))

ARTIFACT_FIELDS = ("$package", "$tracking_pixel")

#: Extra convention keys, tried after F and F without "$".
ALIASES: dict[str, tuple[str, ...]] = {"$tracking_pixel": ("pixel", "$pixel")}


@dataclass(frozen=True, kw_only=True)
class FieldRule:
    """One entry of the user's `field_mappings`: where one Scarf field comes from."""

    scarf_field: str  # one of SCARF_FIELDS
    source_field: str | None = None  # "ip", or a dotted path "request.ip" into nested objects
    constant: str | None = None  # a fixed value instead (e.g. $type = "download"); exactly one of the two
    stream: str | None = None  # None: default for every stream; else a stream name, or "namespace.name"


@dataclass(frozen=True, kw_only=True)
class MappingConfig:
    """The mapping part of the connector config."""

    field_rules: tuple[FieldRule, ...] = ()
    custom_variables: CustomVariablesMode = "all"
    custom_variable_fields: tuple[str, ...] = ()  # for "listed": top-level names or dotted paths
    #: deterministic: every event gets a $unique_id; as_mapped: the same, but a mapped $unique_id is sent as
    #: given (for ids Scarf already holds); off: no $unique_id.
    unique_id_mode: UniqueIdMode = "deterministic"
    time_window: _dt.timedelta | None = _dt.timedelta(days=7)  # None: no age check
    target_type: TargetKind = "multi_artifact"

    @property
    def unique_ids(self) -> bool:
        """Whether events carry a $unique_id (so a re-sent event overrides itself instead of counting twice)."""
        return self.unique_id_mode != "off"


# --- validation -----------------------------------------------------------------------------------------


def validate_rules(config: MappingConfig) -> list[str]:
    """Human-readable problems with the mapping config (empty when it is fine), so a bad config fails up front.

    Config values (not record values) may appear in these messages.
    """
    problems: list[str] = []
    seen: set[tuple[str | None, str]] = set()
    for rule in config.field_rules:
        problems.extend(_rule_problems(rule))
        key = (rule.stream, rule.scarf_field)
        if key in seen:
            problems.append(f"{_describe_rule(rule)}: more than one entry; keep one")
        seen.add(key)
    if config.custom_variables not in get_args(CustomVariablesMode):
        problems.append(
            f"custom variables mode {config.custom_variables!r} is unknown; "
            f"use one of {', '.join(get_args(CustomVariablesMode))}"
        )
    elif config.custom_variables == "listed":
        for path in config.custom_variable_fields:
            problems.extend(_listed_field_problems(path))
    if config.target_type not in get_args(TargetKind):
        problems.append(f"target type {config.target_type!r} is unknown; use one of {', '.join(get_args(TargetKind))}")
    if config.time_window is not None and config.time_window <= _dt.timedelta(0):
        problems.append("the event time window must be positive (or unset to disable the check)")
    return problems


def _describe_rule(rule: FieldRule) -> str:
    where = f"stream {rule.stream!r}" if rule.stream else "all streams"
    return f"mapping of {rule.scarf_field} for {where}"


def _rule_problems(rule: FieldRule) -> list[str]:
    name = _describe_rule(rule)
    if rule.scarf_field not in SCARF_FIELD_SET:
        return [f"{name}: unknown Scarf field; use one of {', '.join(SCARF_FIELDS)}"]
    has_source, has_constant = rule.source_field is not None, rule.constant is not None
    if has_source == has_constant:
        return [f"{name}: give either a source field or a constant (exactly one)"]
    if has_source:
        return [f"{name}: {p}" for p in _path_problems(rule.source_field or "")]
    return [f"{name}: {p}" for p in _constant_problems(rule.scarf_field, rule.constant or "")]


def _path_problems(path: str) -> list[str]:
    if not path or any(not part for part in path.split(".")):
        return ["the source field is empty or has an empty part in its dotted path"]
    return []


def _constant_problems(field: str, constant: str) -> list[str]:
    if not constant:
        return ["the constant is empty"]
    if field == "$time":
        try:
            parse_event_time(constant)
        except ValueError as exc:
            return [f"the constant is not a valid time ({exc})"]
    elif field == "$headers":
        try:
            headers_from_text(constant)
        except InvalidRecord as exc:
            return [f"the constant is not valid headers ({exc.reason})"]
    elif field == "$unique_id":
        return ["a constant $unique_id would make every event replace the previous one; map a source field instead"]
    return []


def _listed_field_problems(path: str) -> list[str]:
    if _path_problems(path):
        return [f"custom variable field {path!r} is empty or has an empty part in its dotted path"]
    if path.startswith("$"):
        return [f"custom variable field {path!r} starts with $, which Scarf reserves for its own fields"]
    return []


# --- which source feeds each field ----------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a Scarf field's value comes from for one stream: exactly one of the three is set."""

    keys: tuple[str, ...] = ()  # top-level keys, first non-null wins (a plain source field is a 1-tuple)
    path: tuple[str, ...] = ()  # a dotted source field, split
    constant: str | None = None

    @property
    def consumed(self) -> tuple[str, ...]:
        """Record keys (dotted for nested ones) that this source uses, so they are not custom variables."""
        return self.keys + ((".".join(self.path),) if self.path else ())

    def describe(self) -> str:
        if self.constant is not None:
            return "a constant"
        if self.path:
            return f"source field {'.'.join(self.path)!r}"
        if len(self.keys) == 1:
            return f"source field {self.keys[0]!r}"
        return "record key " + " or ".join(repr(k) for k in self.keys)

    def supplier(self, data: Mapping[str, Any]) -> str | None:
        """Which of this source's places `reader()` reads its value from in this record: "constant", the dotted
        path, or the first key whose value is not null (None when there is none). For previews, not the hot path.
        """
        if self.constant is not None:
            return "constant"
        if self.path:
            return ".".join(self.path)  # a top-level key spelled with the dots, or the nested value: the same text
        return next((key for key in self.keys if data.get(key) is not None), None)

    def reader(self) -> Callable[[Mapping[str, Any]], Any]:
        """A function returning this source's value in a record (None when missing or null).

        Specialised closures rather than one generic method: they run for every record.
        """
        constant, path, keys = self.constant, self.path, self.keys
        if constant is not None:
            return lambda data: constant
        if path:
            dotted = ".".join(path)
            return lambda data: read_path(data, dotted, path)
        if len(keys) == 1:
            (only,) = keys
            return lambda data: data.get(only)
        first, rest = keys[0], keys[1:]

        def read_first_present(data: Mapping[str, Any]) -> Any:
            value = data.get(first)
            if value is not None:
                return value
            for key in rest:
                value = data.get(key)
                if value is not None:
                    return value
            return None

        return read_first_present


def choose_rules(rules: Iterable[FieldRule], stream: str, namespace: str | None) -> dict[str, FieldRule]:
    """The winning rule per Scarf field for this stream: "namespace.name" > name > default."""
    qualified = f"{namespace}.{stream}" if namespace else None
    chosen: dict[str, tuple[int, FieldRule]] = {}
    for rule in rules:
        if rule.stream is None:
            rank = 1
        elif rule.stream == qualified:
            rank = 3
        elif rule.stream == stream:
            rank = 2
        else:
            continue
        if rank > chosen.get(rule.scarf_field, (0, rule))[0]:
            chosen[rule.scarf_field] = (rank, rule)
    return {field: rule for field, (_, rule) in chosen.items()}


def source_for(field: str, rule: FieldRule | None) -> Source:
    if rule is None:
        return Source(keys=(field, field[1:]) + ALIASES.get(field, ()))
    if rule.constant is not None:
        return Source(constant=rule.constant)
    parts = tuple((rule.source_field or "").split("."))
    return Source(path=parts) if len(parts) > 1 else Source(keys=parts)
