"""Turn one Airbyte record's `data` into one Scarf event.

The mapping is compiled once per stream (`compile_mapper`) into an `EventMapper`: every decision that depends only
on the config and the stream (which rule wins for each Scarf field, which record keys are consumed, the unique-id
namespace) is made up front, so the per-record call is a handful of dict lookups. It is on the hot path: the
connector should move 100k+ records/s per core, so there are no per-record rule lookups, regexes or schema checks.

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

Every other top-level key becomes a custom variable (mode "all"): nested objects as dotted keys, nulls dropped, values
as text. `$` keys that are not Scarf fields are dropped and reported in `EventMapper.ignored_fields`, and Airbyte's
own "_airbyte_*" keys are skipped. Each event gets a deterministic `$unique_id` (see `EventMapper._unique_id`).

Nothing here puts a record value into an error message: records carry personal data (IP addresses, user agents)
and errors end up in logs. `InvalidRecord` names the field and a reason only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import orjson

from destination_scarf.timeparse import parse_event_time, to_scarf_time

__all__ = [
    "MAX_DEPTH",
    "SCARF_FIELDS",
    "EventMapper",
    "FieldRule",
    "InexactNumber",
    "InvalidRecord",
    "MappingConfig",
    "compile_mapper",
    "validate_rules",
]

SCARF_FIELDS = (
    "$time",
    "$unique_id",
    "$package",
    "$tracking_pixel",
    "$version",
    "$type",
    "$remote_address",
    "$user_agent",
    "$domain",
    "$referrer",
    "$headers",
)
_SCARF_FIELD_SET = frozenset(SCARF_FIELDS)
# Fields sent as plain strings. $time, $headers and $unique_id have their own handling.
_STRING_FIELDS = tuple(f for f in SCARF_FIELDS if f not in ("$time", "$unique_id", "$headers"))
_ARTIFACT_FIELDS = ("$package", "$tracking_pixel")
# Extra convention keys, tried after F and F without "$".
_ALIASES: dict[str, tuple[str, ...]] = {"$tracking_pixel": ("pixel", "$pixel")}

CUSTOM_VARIABLE_MODES = ("all", "listed", "none")
TARGET_TYPES = ("multi_artifact", "package", "tracking_pixel")

_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_NEWLINE = orjson.OPT_APPEND_NEWLINE

# Key classes for custom-variable handling, cached per key name (record key sets repeat across a stream).
_CUSTOM, _SKIP, _IGNORED = 0, 1, 2
#: How deeply a value may nest objects and lists before the record is refused (as invalid, naming the limit).
MAX_DEPTH = 64
#: Above this magnitude a float may be an integer the JSON parser could not hold exactly (orjson reads
#: integers of 2**64 and more as floats): such a record is read again with an exact parser.
_EXACT_FLOAT_LIMIT = float(2**53)
_KEY_CACHE_LIMIT = 10_000  # streams with unbounded key names must not grow the cache forever
_SHAPE_CACHE_LIMIT = 256  # record shapes (key tuples) remembered per stream; more are planned each time


@dataclass(frozen=True)
class _ShapePlan:
    """For one record shape: the present candidate keys of each Scarf string field, and the custom keys."""

    fields: tuple[tuple[str, tuple[str, ...]], ...]
    custom: tuple[str, ...]
    headers: bool  # whether $headers may have a value in this shape (a candidate key is there, or a path rule)
    unique_source: bool  # likewise for a mapped $unique_id source

_R_TIME_MISSING = "missing (map a source field to $time, or name a field `time`)"
_R_TIME_FORMAT = "not an ISO 8601 date-time or epoch timestamp"
_R_NO_ARTIFACT = (
    "multi-artifact imports need $package or $tracking_pixel on every event; "
    "map one, or choose a single package/pixel target"
)
_R_TOO_DEEP = f"nests objects or lists more than {MAX_DEPTH} levels deep (the most the connector maps)"
_R_HEADERS_SHAPE = "expected a list of {name, value} objects, an object of name: value, or JSON text of either"


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
    custom_variables: str = "all"  # "all" | "listed" | "none"
    custom_variable_fields: tuple[str, ...] = ()  # for "listed": top-level names or dotted paths
    unique_ids: bool = True  # deterministic $unique_id; False: send none
    time_window: _dt.timedelta | None = _dt.timedelta(days=7)  # None: no age check
    target_type: str = "multi_artifact"  # "multi_artifact" | "package" | "tracking_pixel"


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


# --- config validation --------------------------------------------------------------------------------------


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
    if config.custom_variables not in CUSTOM_VARIABLE_MODES:
        problems.append(
            f"custom variables mode {config.custom_variables!r} is unknown; "
            f"use one of {', '.join(CUSTOM_VARIABLE_MODES)}"
        )
    elif config.custom_variables == "listed":
        for path in config.custom_variable_fields:
            problems.extend(_listed_field_problems(path))
    if config.target_type not in TARGET_TYPES:
        problems.append(f"target type {config.target_type!r} is unknown; use one of {', '.join(TARGET_TYPES)}")
    if config.time_window is not None and config.time_window <= _dt.timedelta(0):
        problems.append("the event time window must be positive (or unset to disable the check)")
    return problems


def _describe_rule(rule: FieldRule) -> str:
    where = f"stream {rule.stream!r}" if rule.stream else "all streams"
    return f"mapping of {rule.scarf_field} for {where}"


def _rule_problems(rule: FieldRule) -> list[str]:
    name = _describe_rule(rule)
    if rule.scarf_field not in _SCARF_FIELD_SET:
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
            _headers_from_text(constant)
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


# --- compiling ----------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Source:
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

    def reader(self) -> Callable[[Mapping[str, Any]], Any]:
        """A function returning this source's value in a record (None when missing or null).

        Specialised closures rather than one generic method: they run for every record.
        """
        constant, path, keys = self.constant, self.path, self.keys
        if constant is not None:
            return lambda data: constant
        if path:
            dotted = ".".join(path)
            return lambda data: _read_path(data, dotted, path)
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


def _read_path(data: Mapping[str, Any], dotted: str, path: tuple[str, ...]) -> Any:
    """Read a dotted path (`dotted` is `path` joined, precomputed). A top-level key spelled with the dots wins:
    some sources do have "a.b" keys."""
    value = data.get(dotted)
    if value is not None:
        return value
    return _read_path_exact(data, path)


def _choose_rules(rules: Iterable[FieldRule], stream: str, namespace: str | None) -> dict[str, FieldRule]:
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


def _source_for(field: str, rule: FieldRule | None) -> _Source:
    if rule is None:
        return _Source(keys=(field, field[1:]) + _ALIASES.get(field, ()))
    if rule.constant is not None:
        return _Source(constant=rule.constant)
    parts = tuple((rule.source_field or "").split("."))
    return _Source(path=parts) if len(parts) > 1 else _Source(keys=parts)


def _window_text(window: _dt.timedelta) -> str:
    """"7 days", "36 hours", ...: the largest unit that divides the window evenly."""
    seconds = int(window.total_seconds())
    if window.microseconds or not seconds:
        return f"{window.total_seconds():g} seconds"  # sub-second windows: not useful, but say something true
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            break
    count = seconds // size
    return f"{count} {unit}{'' if count == 1 else 's'}"


# --- the mapper ---------------------------------------------------------------------------------------------


class EventMapper:
    """Maps one stream's records to Scarf events. Build it with `compile_mapper`; call it once per record.

    `ignored_fields` collects `$`-prefixed record keys that are not Scarf fields (typos such as "$referer", or
    "$pixel" when a rule maps $tracking_pixel) and were dropped; the caller warns about them once.
    `sources` says where each Scarf field comes from, for logging the plan (no record values).
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
        self._compile_fields(sources, config.target_type)
        self._compile_custom_variables(sources, config)
        self._compile_unique_ids(config.unique_ids, sources["$unique_id"], primary_key)

    # compile steps

    def _compile_fields(self, sources: dict[str, _Source], target_type: str) -> None:
        time, headers = sources["$time"], sources["$headers"]
        self._read_time = time.reader()
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
        self._custom_mode = config.custom_variables
        # Every key a Scarf field uses, including unused convention keys and the artifact fields' sources in
        # single-target mode: none of them is a custom variable.
        self._consumed = frozenset(key for source in sources.values() for key in source.consumed)
        # Only dotted paths matter inside nested objects; usually there are none, which skips the check entirely.
        self._consumed_nested = frozenset(key for key in self._consumed if "." in key)
        self._key_class: dict[str, int] = {}
        self._plans: dict[tuple[Any, ...], _ShapePlan] = {}
        self._listed = tuple(
            (path, tuple(path.split(".")) if "." in path else ()) for path in config.custom_variable_fields
        )

    def _compile_unique_ids(self, enabled: bool, source: _Source, primary_key: list[list[str]] | None) -> None:
        self._unique_ids = enabled
        self._read_unique_source = source.reader()
        self._unique_keys = source.keys if source.constant is None and not source.path else None
        if not enabled:
            self.sources["$unique_id"] = "not sent: unique ids are off"
        self._pk_paths = tuple(tuple(path) for path in (primary_key or ()) if path)
        # One hasher per kind of material, pre-fed with a prefix naming the stream: the same material in another
        # stream, or a mapped id equal to some event's hash input, can never give the same id.
        self._hashers = {kind: hashlib.sha256(_uid_prefix(self.namespace, self.stream, kind)) for kind in "iker"}
        self._seen: set[int] = set()
        self._repeats: dict[int, int] = {}
        #: Records whose content repeated an earlier record of their window (they got numbered ids).
        self.repeated = 0

    # per record

    def __call__(self, data: dict) -> dict:
        """Map one record's data to a Scarf event, or raise InvalidRecord (or InexactNumber).

        Pure: a content-hash id is the one the first record of that content in its window gets (`encode`
        numbers the repeats).
        """
        event, plan = self._event(data)
        if self._unique_ids:
            event["$unique_id"] = self._key_id(data, plan) or _uuid_text(
                _digest_hex(self._hashers["e"], _canonical_json(event)))
        return event

    def encode(self, data: dict) -> bytes:
        """One record's event as the NDJSON line that is sent, or raise InvalidRecord (or InexactNumber).

        When the id is a hash of the event, the line is built from the very bytes that were hashed (sorted keys,
        then the id spliced in before the closing brace), so the hot path serializes each event once, not twice.
        A record whose content repeats an earlier one of the same window gets an id numbered by its occurrence
        (see `_content_id`); otherwise the line is JSON equal to `self(data)`.
        """
        event, plan = self._event(data)
        if self._unique_ids:
            key_id = self._key_id(data, plan)
            if key_id is None:
                canonical = _dumps(event, option=_SORTED)  # events hold only text: orjson never refuses them
                return canonical[:-1] + b',"$unique_id":"' + self._content_id(canonical).encode() + b'"}\n'
            event["$unique_id"] = key_id
        return _dumps(event, option=_NEWLINE)

    def describe_plan(self) -> str:
        """Where each Scarf field comes from, for the log at the start of a sync (names only, no values)."""
        parts = [f"{field} <- {where}" for field, where in self.sources.items() if field != "$unique_id"]
        if not self._unique_ids:
            parts.append("$unique_id: not sent (unique_id_mode off)")
        else:
            material = [self.sources["$unique_id"]]
            if self._pk_paths:
                material.append("the primary key " + ", ".join(".".join(p) for p in self._pk_paths))
            material.append("a hash of the event's content, numbered for repeats")
            parts.append("$unique_id <- " + ", else ".join(material))
        variables = {"all": "every other field", "listed": ", ".join(p for p, _ in self._listed) or "none listed",
                     "none": "none"}[self._custom_mode]
        parts.append(f"custom variables: {variables}")
        return "; ".join(parts)

    def _content_id(self, canonical: bytes) -> str:
        """The id of an event without key or mapped id: a hash of its content, numbered by occurrence.

        Two distinct records with the same content (two downloads of one file by one CI runner in the same
        second) must stay two events, yet a re-run must reproduce the very same ids. So repeats are counted
        per window, the records between two states of the stream's scope (`new_window`): a re-run from a state
        sees the same records in the same windows and numbers them the same way. The first occurrence keeps
        the plain content hash, the id 0.1.0 gave every copy.
        """
        hexdigest = _digest_hex(self._hashers["e"], canonical)
        key = int(hexdigest[:16], 16)  # 64 bits of the hash: a smaller set entry than the text
        if key not in self._seen:
            self._seen.add(key)
            return _uuid_text(hexdigest)
        occurrence = self._repeats.get(key, 1) + 1
        self._repeats[key] = occurrence
        self.repeated += 1
        return _uuid_text(_digest_hex(self._hashers["r"], b"%d\0" % occurrence + canonical))

    def new_window(self) -> None:
        """A state of this stream's scope arrived: occurrences are counted afresh from here."""
        if self._seen:
            self._seen.clear()
            self._repeats.clear()

    def _event(self, data: dict) -> tuple[dict[str, Any], _ShapePlan]:
        """The event without its $unique_id, and the record's shape plan."""
        event: dict[str, Any] = {"$time": self._event_time(data)}
        shape = tuple(data)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan_for(shape)
        self._put_string_fields(data, event, plan)
        if self._headers_constant is not None:
            headers = [dict(header) for header in self._headers_constant]  # a copy: events must not share state
        else:
            headers = self._read_headers(data) if plan.headers else None
        if headers:
            event["$headers"] = headers
        if self._need_artifact and "$package" not in event and "$tracking_pixel" not in event:
            raise InvalidRecord("$package", _R_NO_ARTIFACT)
        if plan.custom:
            self._put_custom_variables(data, event, plan)
        elif self._custom_mode == "listed":
            self._put_listed_variables(data, event)
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

    def _put_custom_variables(self, data: Mapping[str, Any], event: dict[str, Any], plan: _ShapePlan) -> None:
        if self._custom_mode == "listed":
            self._put_listed_variables(data, event)
        for key in plan.custom:
            value = data[key]
            if value is None:
                continue
            value_type = type(value)
            if value_type is str:
                event[key] = value
            elif value_type is int:  # bool is not: it is spelled the JSON way below
                event[key] = str(value)
            elif value_type is float:
                event[key] = _float_text(value)
            elif value_type is dict:
                _flatten_into(event, key, value, self._consumed_nested)
            elif value_type in _JSON_SCALARS or not isinstance(value, Mapping):  # ABC checks are slow
                event[key] = _variable_text(value)
            else:
                _flatten_into(event, key, value, self._consumed_nested)

    def _plan_for(self, shape: tuple[Any, ...]) -> _ShapePlan:
        """Work out, once per record shape (its key names, in order), which keys feed which field.

        A stream's records nearly always share one shape, so this runs a handful of times per sync;
        the per-record work is then only the lookups of keys that are there.
        """
        present = set(shape)
        fields = tuple(
            (field, found) for field, keys in self._keyed if (found := tuple(k for k in keys if k in present))
        )
        kinds = [(key, self._key_class.get(key)) for key in shape]
        kinds = [(key, kind if kind is not None else self._classify_key(key)) for key, kind in kinds]
        self.ignored_fields.update(key for key, kind in kinds if kind == _IGNORED)
        custom = tuple(key for key, kind in kinds if kind == _CUSTOM) if self._custom_mode == "all" else ()
        plan = _ShapePlan(
            fields=fields,
            custom=custom,
            headers=self._headers_keys is None or any(k in present for k in self._headers_keys),
            unique_source=self._unique_keys is None or any(k in present for k in self._unique_keys),
        )
        if len(self._plans) < _SHAPE_CACHE_LIMIT:
            self._plans[shape] = plan
        return plan

    def _put_listed_variables(self, data: Mapping[str, Any], event: dict[str, Any]) -> None:
        """Listed fields are sent as listed, even if a Scarf field also uses them: the user asked for them."""
        for name, path in self._listed:
            value = _read_path(data, name, path) if path else data.get(name)
            if value is None:
                continue
            if type(value) is str:
                event[name] = value
            elif isinstance(value, Mapping):
                _flatten_into(event, name, value, frozenset())
            else:
                event[name] = _variable_text(value)

    def _classify_key(self, key: Any) -> int:
        """Custom variable, skipped, or an ignored `$` key; cached, since a stream repeats its key names."""
        if not isinstance(key, str) or key in self._consumed or key.startswith("_airbyte_"):
            kind = _SKIP
        elif key.startswith("$"):
            # A Scarf field's own key that a rule overrides is dropped silently: the user chose another source.
            kind = _SKIP if key in _SCARF_FIELD_SET else _IGNORED
        else:
            kind = _CUSTOM
        if len(self._key_class) < _KEY_CACHE_LIMIT:
            self._key_class[key] = kind
        return kind

    def _key_id(self, data: Mapping[str, Any], plan: _ShapePlan) -> str | None:
        """The $unique_id from the record's key, or None when the id must be a hash of the whole event.

        Every id is a UUID (version 5 layout) from SHA-256 over (namespace, stream, material kind) + material.
        Material, first available: the mapped $unique_id; the primary-key values; the whole event (canonical JSON,
        without the id). The same input always gives the same id (no Python hash(), which is salted per process),
        so a re-sent event replaces its earlier copy in Scarf instead of counting twice.
        """
        mapped = self._unique_source_value(data) if plan.unique_source else None
        if mapped is not None:
            return _uuid_from(self._hashers["i"], mapped.encode("utf-8", "surrogatepass"))
        if self._pk_paths:
            values = self._primary_key_values(data)
            if values is not None:
                return _uuid_from(self._hashers["k"], _canonical_json(values))
        return None

    def _unique_source_value(self, data: Mapping[str, Any]) -> str | None:
        value = self._read_unique_source(data)
        if value is None:
            return None
        text = value if type(value) is str else _field_text("$unique_id", value)
        return text or None

    def _primary_key_values(self, data: Mapping[str, Any]) -> tuple[Any, ...] | None:
        values = []
        for path in self._pk_paths:
            value = data.get(path[0]) if len(path) == 1 else _read_path_exact(data, path)
            if value is None:
                return None
            if type(value) is not str and type(value) is not int:
                _check_exact(value, ".".join(path), 1)
            values.append(value)
        return tuple(values)


def _read_path_exact(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Walk a path of keys through nested objects (primary keys come as such lists; dotted names are split)."""
    value: Any = data
    for part in path:
        if type(value) is not dict and not isinstance(value, Mapping):  # the type check first: ABC checks are slow
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


# --- values -------------------------------------------------------------------------------------------------


#: The non-string scalar types orjson produces: checked by identity before any (slow) ABC isinstance.
_JSON_SCALARS = frozenset({int, float, bool})


def _type_name(value: object) -> str:
    """JSON's names for JSON types (what Airbyte users see in their schemas), Python's otherwise."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _float_text(value: float) -> str:
    """A float as text, unless it may be an integer the parser could not hold exactly (then InexactNumber)."""
    if not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT and value.is_integer():
        raise InexactNumber()
    return str(value)


def _check_exact(value: object, where: str, depth: int) -> None:
    """Walk a container: InvalidRecord past MAX_DEPTH levels, InexactNumber for a float that may have lost digits."""
    if depth > MAX_DEPTH:
        raise InvalidRecord(where, _R_TOO_DEEP)
    value_type = type(value)
    if value_type is float:
        _float_text(value)  # type: ignore[arg-type]
    elif value_type is list or value_type is tuple:
        for item in value:  # type: ignore[attr-defined]
            _check_exact(item, where, depth + 1)
    elif value_type is dict or isinstance(value, Mapping):
        for item in value.values():  # type: ignore[attr-defined]
            _check_exact(item, where, depth + 1)


def _field_text(field: str, value: object) -> str:
    """A Scarf string field's value: numbers become str(v) (so 2.0 stays "2.0"); booleans and containers are
    errors, since they almost always mean the wrong source field was mapped."""
    if isinstance(value, str):
        return str(value)
    if type(value) is float:
        return _float_text(value)  # type: ignore[arg-type]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InvalidRecord(field, f"expected a string, got {_type_name(value)}")


def _variable_text(value: object) -> str:
    """A custom variable's value as text.

    Scarf stores custom variables as text; sending strings ourselves keeps the value exactly as the source had it
    (no float reformatting or bool spelling left to the server). Booleans use JSON's spelling, lists JSON text.
    """
    value_type = type(value)
    if value_type is int or value_type is str:
        return str(value)
    if value_type is float:
        return _float_text(value)  # type: ignore[arg-type]
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        _check_exact(value, "a list", 1)
        return _canonical_json(value).decode("utf-8", "surrogatepass")
    return str(value)


def _flatten_into(out: dict[str, Any], prefix: str, obj: Mapping[Any, Any], skip: frozenset[str],
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
        elif value_type is dict:
            _flatten_into(out, name, value, skip, depth + 1)
        elif value_type in _JSON_SCALARS or not isinstance(value, Mapping):  # ABC checks are slow
            out[name] = _variable_text(value)
        else:
            _flatten_into(out, name, value, skip, depth + 1)


def _headers_from_value(value: object) -> list[dict[str, str]]:
    """Normalize $headers: a list of {name, value}, an object {name: value or [values]}, or JSON text of either."""
    if isinstance(value, str):
        return _headers_from_text(value)
    if isinstance(value, (list, tuple)):
        return _headers_from_list(value)
    if isinstance(value, Mapping):
        return _headers_from_object(value)
    raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got {_type_name(value)}")


def _headers_from_text(text: str) -> list[dict[str, str]]:
    if not text.strip():
        return []
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got text that is not JSON") from None
    if not isinstance(parsed, (list, dict)):
        raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got JSON text of {_type_name(parsed)}")
    return _headers_from_value(parsed)


def _headers_from_list(items: Iterable[object]) -> list[dict[str, str]]:
    headers = []
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidRecord("$headers", f"{_R_HEADERS_SHAPE}; got a list item that is {_type_name(item)}")
        name = _header_name(item.get("name"))
        value = item.get("value")
        if value is not None:
            headers.append({"name": name, "value": _header_text(value)})
    return headers


def _headers_from_object(obj: Mapping[Any, Any]) -> list[dict[str, str]]:
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
    return _variable_text(value)


# --- unique ids ---------------------------------------------------------------------------------------------

# Hex digit of the variant nibble: keep its low two bits, set the top two to 10 (RFC 4122 variant).
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uid_prefix(namespace: str | None, stream: str, kind: str) -> bytes:
    """Prefix naming what the id belongs to. JSON never contains a raw NUL, so prefix and material cannot blur."""
    return b"destination-scarf/unique-id/v1\0" + orjson.dumps([namespace, stream, kind]) + b"\0"


def _uuid_from(prefixed: Any, material: bytes) -> str:
    """Finish a pre-fed SHA-256 with `material` and lay out the first 128 bits as a version-5-style UUID string."""
    return _uuid_text(_digest_hex(prefixed, material))


def _digest_hex(prefixed: Any, material: bytes) -> str:
    hasher = prefixed.copy()
    hasher.update(material)
    return hasher.hexdigest()


def _uuid_text(x: str) -> str:
    # String surgery on the hex is cheaper than uuid.UUID(bytes=..., version=5) (~2 µs) and gives the same text.
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT_DIGIT[x[16]]}{x[17:20]}-{x[20:32]}"


def _canonical_json(value: object) -> bytes:
    """Deterministic JSON bytes (sorted keys). orjson first; the stdlib fallback covers what orjson refuses
    (integers beyond 64 bits, lone surrogates), so hashing never fails on odd but valid records."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return text.encode("utf-8", "surrogatepass")
