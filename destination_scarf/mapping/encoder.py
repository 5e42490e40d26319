"""The per-stream encoder: one record's `data` in, one Scarf event's NDJSON line out.

The mapping is compiled once per stream (`compile_mapper`) into an `EventMapper`: every decision that depends only
on the config and the stream (which rule wins for each Scarf field, which record keys are consumed, the unique-id
namespace) is made up front, and each record shape (its key names, in order) is planned once, so the per-record
call is a handful of dict lookups. It is the hot path: no per-record rule lookups, regexes or schema checks.

Every top-level key no Scarf field uses becomes a custom variable (mode "all"): nested objects as dotted keys,
nulls dropped, values as text. `$` keys that are not Scarf fields are dropped and reported in
`EventMapper.ignored_fields`, and Airbyte's own "_airbyte_*" keys are skipped. Each event gets a deterministic
`$unique_id` (see unique_ids.py).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from destination_scarf.mapping import explain
from destination_scarf.mapping.fast import FastEncoder, fast_encoder
from destination_scarf.mapping.rules import (
    _ARTIFACT_FIELDS,
    _STRING_FIELDS,
    SCARF_FIELDS,
    MappingConfig,
    _choose_rules,
    _Source,
    _source_for,
    validate_rules,
)
from destination_scarf.mapping.timeparse import to_scarf_time, window_cutoff
from destination_scarf.mapping.unique_ids import UniqueIds
from destination_scarf.mapping.values import (
    InvalidRecord,
    _canonical_json,
    _field_text,
    _float_text,
    _headers_from_text,
    _headers_from_value,
    _read_path,
)
from destination_scarf.mapping.variables import CustomVariables

_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_NEWLINE = orjson.OPT_APPEND_NEWLINE

_SHAPE_CACHE_LIMIT = 256  # record shapes (key tuples) remembered per stream; more are planned each time
_UNSEEN: Any = object()


@dataclass(frozen=True)
class _ShapePlan:
    """For one record shape: the present candidate keys of each Scarf string field, and the custom keys."""

    fields: tuple[tuple[str, tuple[str, ...]], ...]
    custom: tuple[str, ...]
    variables: bool  # whether this shape has any custom variable to send (its custom keys, or listed fields)
    headers: bool  # whether $headers may have a value in this shape (a candidate key is there, or a path rule)
    unique_source: bool  # likewise for a mapped $unique_id source


_R_TIME_MISSING = "missing (map a source field to $time, or name a field `time`)"
_R_TIME_FORMAT = "not an ISO 8601 date-time or epoch timestamp"
_R_NO_ARTIFACT = (
    "multi-artifact imports need $package or $tracking_pixel on every event; "
    "map one, or choose a single package/pixel target"
)


def compile_mapper(
    *,
    config: MappingConfig,
    stream: str,
    namespace: str | None,
    primary_key: list[list[str]] | None,
    now: Callable[[], _dt.datetime],
) -> EventMapper:
    """Compile the mapping for one stream. Raises ValueError if `validate_rules(config)` finds problems.

    `now` must return an aware datetime; it is called once per record when a time window is set, so the window is
    measured against the time of mapping (the import itself is triggered a little later: keep the window a bit
    shorter than Scarf's limit if events close to it matter).
    """
    problems = validate_rules(config)
    if problems:
        raise ValueError("invalid mapping config: " + "; ".join(problems))
    if config.time_window is not None and now().tzinfo is None:
        # Caught here rather than as a TypeError on the first record.
        raise ValueError("now() must return an aware datetime")
    return EventMapper(config=config, stream=stream, namespace=namespace, primary_key=primary_key, now=now)


def _window_text(window: _dt.timedelta) -> str:
    """"7 days", "36 hours", ...: the largest unit that divides the window evenly."""
    seconds = int(window.total_seconds())
    if window.microseconds or not seconds:
        return f"{window.total_seconds():g} seconds"  # sub-second windows: not useful, but say something true
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):  # noqa: B007 - used after
        if seconds % size == 0:
            break
    count = seconds // size
    return f"{count} {unit}{'' if count == 1 else 's'}"


class EventMapper:
    """Maps one stream's records to Scarf events. Build it with `compile_mapper`; call it once per record.

    `ignored_fields` collects `$`-prefixed record keys that are not Scarf fields (typos such as "$referer", or
    "$pixel" when a rule maps $tracking_pixel) and were dropped; the caller warns about them once.
    `sources` says where each Scarf field comes from, for logging the plan (no record values); `sources_for(data)`
    says it for one record (which key supplied each field), for `preview`.
    """

    def __init__(
        self,
        *,
        config: MappingConfig,
        stream: str,
        namespace: str | None,
        primary_key: list[list[str]] | None,
        now: Callable[[], _dt.datetime],
    ) -> None:
        self.ignored_fields: set[str] = set()
        self.stream = stream
        self.namespace = namespace
        self._now = now
        self._window = config.time_window
        self._too_old = (
            f"more than {_window_text(config.time_window)} before now; "
            "Scarf no longer imports events older than one week"
            if config.time_window is not None
            else ""
        )
        rules = _choose_rules(config.field_rules, stream, namespace)
        sources = {field: _source_for(field, rules.get(field)) for field in SCARF_FIELDS}
        self.sources = {field: source.describe() for field, source in sources.items()}
        self._field_sources = sources  # for `sources_for`
        self._compile_fields(sources, config.target_type)
        self._compile_custom_variables(sources, config)
        unique = sources["$unique_id"]
        self._unique_keys = unique.keys if unique.constant is None and not unique.path else None
        self.ids = UniqueIds(enabled=config.unique_ids, namespace=namespace, stream=stream,
                             read_mapped=unique.reader(), primary_key=primary_key,
                             as_mapped=config.unique_ids_as_mapped)
        if not config.unique_ids:
            self.sources["$unique_id"] = "not sent: unique ids are off"

    # compile steps

    def _compile_fields(self, sources: dict[str, _Source], target_type: str) -> None:
        time, headers = sources["$time"], sources["$headers"]
        self._read_time = time.reader()
        self._time_keys = time.keys if time.keys else None  # None: a path or a constant (not specialized)
        self._time_constant = None if time.constant is None else to_scarf_time(time.constant)
        self._read_headers_value = headers.reader()
        self._headers_keys = headers.keys if not headers.path else None  # None: a path, look every time
        self._headers_constant = None if headers.constant is None else _headers_from_text(headers.constant)
        single_target = target_type != "multi_artifact"
        self._need_artifact = not single_target
        # With a single target the endpoint names the artifact: $package/$tracking_pixel are not sent at all.
        emitted = [f for f in _STRING_FIELDS if not (single_target and f in _ARTIFACT_FIELDS)]
        self._constants = {f: sources[f].constant for f in emitted if sources[f].constant is not None}
        self._keyed = tuple((f, sources[f].keys) for f in emitted if sources[f].keys)
        self._pathed = tuple((f, ".".join(sources[f].path), sources[f].path) for f in emitted if sources[f].path)
        if single_target:
            for field in _ARTIFACT_FIELDS:
                self.sources[field] = "not sent: the import target names the artifact"

    def _compile_custom_variables(self, sources: dict[str, _Source], config: MappingConfig) -> None:
        self.variables = CustomVariables(
            mode=config.custom_variables, listed=config.custom_variable_fields,
            consumed=(key for source in sources.values() for key in source.consumed))
        self.ignored_fields = self.variables.ignored_fields
        self._plans: dict[tuple[Any, ...], _ShapePlan] = {}
        self._fast: dict[tuple[Any, ...], FastEncoder | None] = {}
        #: Whether record shapes get specialized encoders (off only to compare them with the general path).
        self.specialize = True
        self._cutoff_now: object = None
        self._cutoff_text = ""

    # per record

    def __call__(self, data: dict) -> dict:
        """Map one record's data to a Scarf event, or raise InvalidRecord (or InexactNumber).

        Pure: a content-hash id is the one the first record of that content in its window gets (`encode`
        numbers the repeats).
        """
        event, plan = self._event(data)
        if self.ids.enabled:
            event["$unique_id"] = self.ids.key_id(data, may_have_mapped=plan.unique_source) or \
                self.ids.first_content_id(_canonical_json(event))
        return event

    def encode(self, data: dict) -> bytes:
        """One record's event as the NDJSON line that is sent, or raise InvalidRecord (or InexactNumber).

        When the id is a hash of the event, the line is built from the very bytes that were hashed (sorted keys,
        then the id spliced in before the closing brace), so the hot path serializes each event once, not twice.
        A record whose content repeats an earlier one of the same window gets an id numbered by its occurrence
        (see `UniqueIds.content_id`); otherwise the line is JSON equal to `self(data)`.

        Each record shape gets a specialized encoder (fast.py) that writes the same line in straight-line
        code; it hands back to the general path for anything unusual.
        """
        shape = tuple(data)
        fast = self._fast.get(shape, _UNSEEN)
        if fast is _UNSEEN:
            fast = self._specialize(shape)
        if fast is not None:
            line = fast(data)
            if line is not None:
                return line
        return self.encode_general(data, shape)

    def encode_general(self, data: dict, shape: tuple[Any, ...] | None = None) -> bytes:
        """`encode` without the specialized encoders (what they are checked against)."""
        event, plan = self._event(data, shape)
        ids = self.ids
        if ids.enabled:
            key_id = ids.key_id(data, may_have_mapped=plan.unique_source)
            if key_id is None:
                canonical = _dumps(event, option=_SORTED)  # events hold only text: orjson never refuses them
                return canonical[:-1] + b',"$unique_id":"' + ids.content_id(canonical).encode() + b'"}\n'
            event["$unique_id"] = key_id
        return _dumps(event, option=_NEWLINE)

    @property
    def repeated(self) -> int:
        """Records whose content repeated an earlier record of their window (see `UniqueIds.content_id`)."""
        return self.ids.repeated

    def new_window(self) -> None:
        self.ids.new_window()

    def describe_plan(self) -> str:
        """Where each Scarf field comes from, for the log at the start of a sync (names only, no values)."""
        return explain.describe_plan(self)

    def sources_for(self, data: dict) -> dict[str, str]:
        """Where each Scarf field of this record's event came from (for `preview`; see explain.py)."""
        return explain.sources_for(self, data)

    def _specialize(self, shape: tuple[Any, ...]) -> FastEncoder | None:
        plan = self._plans.get(shape) or self._plan_for(shape)
        fast = fast_encoder(self, plan, shape) if self.specialize else None
        if len(self._fast) < _SHAPE_CACHE_LIMIT:
            self._fast[shape] = fast
        return fast

    @property
    def _cutoff(self) -> str:
        """The time window's cutoff as text (`timeparse.window_cutoff`), for the `now` of this record."""
        now = self._now()
        if now is not self._cutoff_now:
            self._cutoff_now, self._cutoff_text = now, window_cutoff(now, self._window)
        return self._cutoff_text

    def _event(self, data: dict, shape: tuple[Any, ...] | None = None) -> tuple[dict[str, Any], _ShapePlan]:
        """The event without its $unique_id, and the record's shape plan."""
        event: dict[str, Any] = {"$time": self._event_time(data)}
        if shape is None:
            shape = tuple(data)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan_for(shape)
        self._put_string_fields(data, event, plan)
        headers: list[dict[str, str]] | None
        if self._headers_constant is not None:
            headers = [dict(header) for header in self._headers_constant]  # a copy: events must not share state
        else:
            headers = self._read_headers(data) if plan.headers else None
        if headers:
            event["$headers"] = headers
        if self._need_artifact and "$package" not in event and "$tracking_pixel" not in event:
            raise InvalidRecord("$package", _R_NO_ARTIFACT)
        if plan.variables:
            self.variables.put(data, event, plan.custom)
        return event, plan

    def _event_time(self, data: Mapping[str, Any]) -> str:
        if self._time_constant is not None:
            moment, text = self._time_constant
        else:
            raw = self._read_time(data)
            if raw is None:
                raise InvalidRecord("$time", _R_TIME_MISSING)
            if type(raw) is float:
                _float_text(raw)  # a huge integral float may have lost digits: InexactNumber
            try:
                moment, text = to_scarf_time(raw)
            except ValueError as exc:  # the parser's reasons never contain the value
                raise InvalidRecord("$time", f"{_R_TIME_FORMAT} ({exc})") from None
        if self._window is not None and moment < self._now() - self._window:
            raise InvalidRecord("$time", self._too_old)
        return text

    def _put_string_fields(self, data: Mapping[str, Any], event: dict[str, Any], plan: _ShapePlan) -> None:
        # Inlined loops rather than one reader call per field: this runs for every record. The plan lists,
        # per field, only the candidate keys this record shape has, so absent keys cost nothing.
        for field, keys in plan.fields:
            for key in keys:
                value = data[key]
                if value is not None:
                    break
            else:
                continue
            if type(value) is not str:
                value = _field_text(field, value)
            if value:
                event[field] = value
        for field, dotted, path in self._pathed:
            value = _read_path(data, dotted, path)
            if value is not None:
                if type(value) is not str:
                    value = _field_text(field, value)
                if value:
                    event[field] = value
        if self._constants:
            event.update(self._constants)

    def _read_headers(self, data: Mapping[str, Any]) -> list[dict[str, str]]:
        value = self._read_headers_value(data)
        return [] if value is None else _headers_from_value(value)

    def _plan_for(self, shape: tuple[Any, ...]) -> _ShapePlan:
        """Work out, once per record shape (its key names, in order), which keys feed which field.

        A stream's records nearly always share one shape, so this runs a handful of times per sync;
        the per-record work is then only the lookups of keys that are there.
        """
        present = set(shape)
        fields = tuple(
            (field, found) for field, keys in self._keyed if (found := tuple(k for k in keys if k in present))
        )
        custom = self.variables.keys_of(shape)
        plan = _ShapePlan(
            fields=fields,
            custom=custom,
            variables=bool(custom) or self.variables.mode == "listed",
            headers=self._headers_keys is None or any(k in present for k in self._headers_keys),
            unique_source=self._unique_keys is None or any(k in present for k in self._unique_keys),
        )
        if len(self._plans) < _SHAPE_CACHE_LIMIT:
            self._plans[shape] = plan
        return plan
