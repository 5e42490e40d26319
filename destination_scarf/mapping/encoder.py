"""The per-stream encoder: one record's `data` in, one Scarf event's NDJSON line out.

The mapping is compiled once per stream (`compile_mapper`) into an `EventMapper`: every decision that depends only
on the config and the stream (which rule wins for each Scarf field, which record keys are consumed, the unique-id
namespace) is made up front, and each record shape (its key names, in order) is planned once, so the per-record
work is a handful of dict lookups. It is the hot path: no per-record rule lookups, regexes or schema checks, and one
path for every record, whatever its shape.

Every top-level key no Scarf field uses becomes a custom variable (mode "all"): nested objects as dotted keys,
nulls dropped, values as text. `$` keys that are not Scarf fields are dropped and reported in
`EventMapper.ignored_fields`, and Airbyte's own "_airbyte_*" keys are skipped. Each event gets a deterministic
`$unique_id` (see unique_ids.py).

For people, never on the hot path: `describe_plan` (the plan a sync logs at its start) and `sources_for` (for
`preview`: which record key supplied each field of one record's event). Both name keys, never values.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from destination_scarf.mapping.artifacts import ArtifactNames, NameResolver, is_uuid, shown
from destination_scarf.mapping.numbers import canonical_number, canonical_or_same
from destination_scarf.mapping.rules import (
    ARTIFACT_FIELDS,
    STRING_FIELDS,
    MappingConfig,
    Source,
    choose_rules,
    source_for,
    validate_rules,
)
from destination_scarf.mapping.timeparse import NOT_A_TIME, recent_scarf_text, to_scarf_time, window_cutoff
from destination_scarf.mapping.unique_ids import UniqueIds
from destination_scarf.mapping.values import (
    InexactNumber,
    InvalidRecord,
    canonical_json,
    field_text,
    float_text,
    headers_from_text,
    headers_from_value,
    read_exactly,
    read_path,
    read_path_exact,
)
from destination_scarf.mapping.variables import CustomVariables
from destination_scarf.options import SCARF_FIELDS

_dumps = orjson.dumps
_SORTED = orjson.OPT_SORT_KEYS
_NEWLINE = orjson.OPT_APPEND_NEWLINE

#: Record shapes (key tuples) whose plan is remembered per stream. A stream has a handful; one with optional
#: keys may have thousands (12 optional keys: 4,096). Past this many the memory is cleared and shapes are planned
#: again as they come, so a stream of unbounded shapes keeps its memory flat.
SHAPE_CACHE_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class _ShapePlan:
    """For one record shape: the present candidate keys of $time and of each Scarf string field, and the custom
    keys. Keys that the shape lacks cost nothing per record."""

    time: tuple[str, ...] | None  # the present $time keys; None when $time is a dotted path or a constant
    fields: tuple[tuple[str, str], ...]  # (field, key) for the fields with one candidate key in this shape
    first_of: tuple[tuple[str, tuple[str, ...]], ...]  # (field, keys) for fields with several: first non-null
    custom: tuple[str, ...]
    variables: bool  # whether this shape has any custom variable to send (its custom keys, or listed fields)
    headers: bool  # whether $headers may have a value in this shape (a candidate key is there, or a path rule)
    extras: bool  # whether fields from dotted paths, constants or $headers may be added
    unique_source: bool  # likewise for a mapped $unique_id source
    key_id: bool  # whether the id may come from a mapped field or the primary key (else: from the content)
    #: When names are resolved: (field, key, known) for an artifact field with one candidate key in this shape
    #: (instead of `fields`): `known[value]` (artifacts.NameResolver: name or UUID -> id) is one dict lookup for a
    #: value seen before, and resolves any other (or raises InvalidRecord). And (field, known) for an artifact field
    #: filled some other way (several candidate keys, a dotted path, a constant that names nothing), resolved in
    #: the event by `_put_extras` (so `extras` is set).
    named: tuple[tuple[str, str, NameResolver], ...]
    resolve: tuple[tuple[str, NameResolver], ...]
    #: (event key, reader of its record value) for the event's fields that come from a field the schema declares
    #: numeric: in a content id's material their text is the canonical number. Empty unless the schema has one.
    numeric: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = ()


_R_TIME_MISSING = "missing (map a source field to $time, or name a field `time`)"
_R_TIME_FORMAT = NOT_A_TIME
_R_NO_ARTIFACT = (
    "multi-artifact imports need $package or $tracking_pixel on every event; "
    "map one, or choose a single package/pixel target"
)


def _time_format_reason(parser_reason: str) -> str:
    """Why a $time value was refused: the parser's own reason in parentheses, unless it is this very sentence."""
    return _R_TIME_FORMAT if parser_reason == _R_TIME_FORMAT else f"{_R_TIME_FORMAT} ({parser_reason})"


def compile_mapper(
    *,
    config: MappingConfig,
    stream: str,
    namespace: str | None,
    primary_key: list[list[str]] | None,
    now: Callable[[], _dt.datetime],
    numeric_fields: frozenset[tuple[str, ...]] = frozenset(),
    names: ArtifactNames | None = None,
) -> EventMapper:
    """Compile the mapping for one stream. Raises ValueError if `validate_rules(config)` finds problems.

    `numeric_fields` are the key paths the stream's JSON schema declares numeric (`numbers.numeric_paths`): where
    they feed the id, it is built from their canonical number, so `1`, `1.0` and `"1.000000000"` give one id.

    `names`: the owner's packages and tracking pixels, read by the sync; with a multi-artifact target, values of
    $package and $tracking_pixel that are names are then sent as the ids they name, and an unknown or ambiguous
    name makes the record invalid (artifacts.py). Without it (or with a single target) values are sent as given.

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
    return EventMapper(config=config, stream=stream, namespace=namespace, primary_key=primary_key, now=now,
                       numeric_fields=numeric_fields, names=names)


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
    """Maps one stream's records to Scarf events. Build it with `compile_mapper`; `encode` once per record.

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
        numeric_fields: frozenset[tuple[str, ...]] = frozenset(),
        names: ArtifactNames | None = None,
    ) -> None:
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
        self._cutoff_now: object = None
        self._cutoff_text = ""
        rules = choose_rules(config.field_rules, stream, namespace)
        #: Whether a `field_mappings` entry names this stream's $unique_id source (rather than the convention).
        self.unique_id_mapped = "$unique_id" in rules
        sources = {field: source_for(field, rules.get(field)) for field in SCARF_FIELDS}
        self.sources = {field: source.describe() for field, source in sources.items()}
        self._field_sources = sources
        single_target = config.target_type != "multi_artifact"
        self._compile_fields(sources, single_target=single_target)
        #: The artifact fields whose names are resolved to ids (none with a single target, or without names).
        self.names = None if single_target else names
        self._resolvers: tuple[tuple[str, NameResolver], ...] = () if self.names is None else tuple(
            (field, self.names.resolver(field)) for field in ARTIFACT_FIELDS)
        unresolved: set[str] = set()
        if self.names is not None:
            for field in ARTIFACT_FIELDS:
                self.sources[field] += " (a name is sent as the id it stands for)"
                constant = self._constants.get(field)
                if constant is None:
                    continue
                if self.names.problem(field, constant) is None:
                    self._constants[field] = self.names.resolve(field, constant)  # once: records pay nothing
                else:
                    unresolved.add(field)  # each record gets the refusal
            unresolved.update(f for f, _, _ in self._pathed if f in ARTIFACT_FIELDS)
        #: Artifact fields resolved in the event whatever the record's shape: from a dotted path, or a constant
        #: that names nothing.
        self._always_artifacts = frozenset(unresolved)
        self.variables = CustomVariables(
            mode=config.custom_variables, listed=config.custom_variable_fields,
            consumed=(key for source in sources.values() for key in source.consumed))
        self.ignored_fields = self.variables.ignored_fields
        self._put_variables = self.variables.put
        unique = sources["$unique_id"]
        self._unique_keys = unique.keys if unique.constant is None and not unique.path else None
        self._numeric = numeric_fields
        self.ids = UniqueIds(enabled=config.unique_ids, namespace=namespace, stream=stream,
                             read_mapped=_numeric_reader(unique, numeric_fields) or unique.reader(),
                             primary_key=primary_key, as_mapped=config.unique_id_mode == "as_mapped",
                             numeric_fields=numeric_fields)
        if not config.unique_ids:
            self.sources["$unique_id"] = "not sent: unique ids are off"
        self._plans: dict[tuple[Any, ...], _ShapePlan] = {}
        #: Record shapes planned so far (a shape planned again after the cache was cleared counts again).
        self.shapes_planned = 0
        self._fed = self._key_sources(sources, unique_ids=config.unique_ids)
        #: Records whose `meta.changes` marked fields that feed none of $time, $unique_id and the artifact (they
        #: were sent), and how many such fields they had in all: said once per stream in the sync log.
        self.marked_records = 0
        self.marked_fields = 0

    def _compile_fields(self, sources: dict[str, Source], *, single_target: bool) -> None:
        time, headers = sources["$time"], sources["$headers"]
        self._read_time = time.reader()
        self._time_keys = time.keys or None  # None: a path or a constant (read through `_read_time`)
        self._time_constant = None if time.constant is None else to_scarf_time(time.constant)
        self._read_headers_value = headers.reader()
        self._headers_keys = headers.keys if not headers.path else None  # None: a path, look every time
        self._headers_constant = None if headers.constant is None else headers_from_text(headers.constant)
        self._need_artifact = not single_target
        # With a single target the endpoint names the artifact: $package/$tracking_pixel are not sent at all.
        emitted = [f for f in STRING_FIELDS if not (single_target and f in ARTIFACT_FIELDS)]
        self._constants = {f: sources[f].constant for f in emitted if sources[f].constant is not None}
        self._keyed = tuple((f, sources[f].keys) for f in emitted if sources[f].keys)
        self._pathed = tuple((f, ".".join(sources[f].path), sources[f].path) for f in emitted if sources[f].path)
        if single_target:
            for field in ARTIFACT_FIELDS:
                self.sources[field] = "not sent: the import target names the artifact"

    def _key_sources(self, sources: dict[str, Source], *, unique_ids: bool) -> dict[str, str]:
        """The record fields (dotted names) that feed $time, the artifact field (multi-artifact targets) and the
        $unique_id (its mapped source, the primary key): a source or platform change to one makes the record
        invalid. A content id is not fed by any one field."""
        fed: dict[str, str] = {}
        fields = ["$time", *(ARTIFACT_FIELDS if self._need_artifact else ())]
        for field in fields + (["$unique_id"] if unique_ids else []):
            for name in sources[field].consumed:
                fed.setdefault(name, field)
        if unique_ids:
            for path in self.ids.pk_paths:
                fed.setdefault(".".join(path), "$unique_id")
        return fed

    # ----- per record ----------------------------------------------------------------------------

    def encode(self, data: Any, line: bytes | None = None) -> bytes:
        """One record's event as the NDJSON line that is sent, or raise InvalidRecord: the record step of a sync
        (and of `preview`), for the `data` of a RECORD read from input `line`.

        A float that may be an integer the fast JSON parser could not hold (2**64 and up) has `line` read again
        exactly, so ids and custom variables keep every digit (without a line: InexactNumber). When the id is a
        hash of the event, the line is built from the very bytes that were hashed (sorted keys, then the id
        spliced in before the closing brace), so each event is serialized once, not twice. A record whose
        content repeats an earlier one of the same window gets an id numbered by its occurrence (see
        `UniqueIds.content_id`); otherwise the line is JSON equal to `self(data)`.
        """
        if type(data) is not dict:
            raise InvalidRecord("data", "the record's `data` is not an object")
        data, event, plan = self._exact_event(data, line)
        ids = self.ids
        if ids.enabled:
            key_id = ids.key_id(data, may_have_mapped=plan.unique_source) if plan.key_id else None
            if key_id is None:
                # A stream whose schema declares numbers hashes them as canonical numbers (`_material`); the event
                # sent keeps their text. Otherwise the line is spliced from the very bytes that were hashed.
                material = self._material(data, event, plan) if plan.numeric else event
                canonical = _dumps(material, option=_SORTED)  # events hold only text: orjson never refuses them
                content_id = ids.content_id(canonical)
                if material is event:
                    return canonical[:-1] + b',"$unique_id":"' + content_id.encode() + b'"}\n'
                key_id = content_id
            event["$unique_id"] = key_id
        return _dumps(event, option=_NEWLINE)

    def _material(self, data: Mapping[str, Any], event: dict[str, Any], plan: _ShapePlan) -> dict[str, Any]:
        """What a content id hashes: the event, with each field that came from a numeric field holding the
        canonical number instead of the text it is sent with (a copy, only when one differs)."""
        material = event
        for key, read in plan.numeric:
            sent = event.get(key)
            if sent is None:
                continue
            number = canonical_number(read(data))
            if number is not None and number != sent:
                if material is event:
                    material = dict(event)
                material[key] = number
        return material

    def __call__(self, data: dict) -> dict:
        """Map one record's data to a Scarf event, or raise InvalidRecord (or InexactNumber).

        Pure: a content-hash id is the one the first record of that content in its window gets (`encode`
        numbers the repeats).
        """
        event, plan = self._event(data)
        if self.ids.enabled:
            key_id = self.ids.key_id(data, may_have_mapped=plan.unique_source) if plan.key_id else None
            event["$unique_id"] = key_id or self.ids.first_content_id(
                canonical_json(self._material(data, event, plan) if plan.numeric else event))
        return event

    def check_changes(self, changes: list[dict[str, Any]]) -> None:
        """A record whose `meta.changes` say the source or the platform nulled or truncated fields: InvalidRecord
        when one of them feeds $time, $unique_id or the artifact field (the event would be wrong, or its id would
        shift silently), naming the field, the change and its reason; else the other fields are counted. Not the
        hot path: only records that carry changes come here."""
        others = 0
        for change in changes:
            name = change["field"]
            field = self._fed_field(name)
            if field is not None:
                raise InvalidRecord(field, _changed_reason(field, name, change))
            others += 1
        self.marked_records += 1
        self.marked_fields += others

    def _fed_field(self, name: str) -> str | None:
        """The Scarf field that the changed record field `name` feeds (itself, an object holding it, or a part of
        it), or None. Dotted names; a JSON pointer (`/request/ip`) is read as one."""
        if name.startswith("/"):
            name = name[1:].replace("/", ".")
        fed = self._fed
        if name in fed:
            return fed[name]
        for source, field in fed.items():
            if source.startswith(name + ".") or name.startswith(source + "."):
                return field
        return None

    @property
    def repeated(self) -> int:
        """Records whose content repeated an earlier record of their window (see `UniqueIds.content_id`)."""
        return self.ids.repeated

    def new_window(self) -> None:
        self.ids.new_window()

    def _event(self, data: dict) -> tuple[dict[str, Any], _ShapePlan]:
        """The event without its $unique_id, and the record's shape plan. The hot path: loops inlined."""
        shape = tuple(data)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan_for(shape)
        keys = plan.time
        if keys is not None:  # $time from record keys, the common case: canonical recent text is a string compare
            raw = None
            for key in keys:
                raw = data[key]
                if raw is not None:
                    break
            text = recent_scarf_text(raw, self._cutoff) if type(raw) is str else None
            event: dict[str, Any] = {"$time": text if text is not None else self._parsed_time(raw)}
        else:
            event = {"$time": self._constant_or_path_time(data)}
        for field, key in plan.fields:
            value = data[key]
            if value is not None:
                if type(value) is not str:
                    value = field_text(field, value)
                if value:
                    event[field] = value
        for field, key, known in plan.named:  # names to ids: one dict lookup for a value seen before
            value = data[key]
            if value is not None:
                if type(value) is not str:
                    value = field_text(field, value)
                if value:
                    event[field] = known[value]  # a value not seen before: NameResolver.__missing__
        for field, keys in plan.first_of:
            value = next((data[key] for key in keys if data[key] is not None), None)
            if value is not None:
                if type(value) is not str:
                    value = field_text(field, value)
                if value:
                    event[field] = value
        if plan.extras:
            self._put_extras(data, event, plan)
        if self._need_artifact and "$package" not in event and "$tracking_pixel" not in event:
            raise InvalidRecord("$package", _R_NO_ARTIFACT)
        if plan.variables:
            self._put_variables(data, event, plan.custom)
        return event, plan

    def _put_extras(self, data: Mapping[str, Any], event: dict[str, Any], plan: _ShapePlan) -> None:
        """Fields from dotted paths, constants, and $headers; then names resolved in artifact fields filled other
        than from one key (a path, several candidate keys, a constant that names nothing)."""
        for field, dotted, path in self._pathed:
            value = read_path(data, dotted, path)
            if value is not None:
                if type(value) is not str:
                    value = field_text(field, value)
                if value:
                    event[field] = value
        if self._constants:
            event.update(self._constants)
        if self._headers_constant is not None:
            event["$headers"] = [dict(header) for header in self._headers_constant]  # events must not share state
        elif plan.headers:
            value = self._read_headers_value(data)
            headers = [] if value is None else headers_from_value(value)
            if headers:
                event["$headers"] = headers
        for field, known in plan.resolve:
            value = event.get(field)
            if value is not None:
                event[field] = known[value]

    def _constant_or_path_time(self, data: Mapping[str, Any]) -> str:
        if self._time_constant is not None:
            return self._checked_time(*self._time_constant)
        raw = self._read_time(data)
        text = recent_scarf_text(raw, self._cutoff) if type(raw) is str else None
        return text if text is not None else self._parsed_time(raw)

    def _parsed_time(self, raw: Any) -> str:
        """$time parsed from anything but canonical recent text: checked, formatted, and held against the window."""
        if raw is None:
            raise InvalidRecord("$time", _R_TIME_MISSING)
        if type(raw) is float:
            float_text(raw)  # a huge integral float may have lost digits: InexactNumber
        try:
            moment, text = to_scarf_time(raw)
        except ValueError as exc:  # the parser's reasons never contain the value
            raise InvalidRecord("$time", _time_format_reason(str(exc))) from None
        return self._checked_time(moment, text)

    def _checked_time(self, moment: _dt.datetime, text: str) -> str:
        if self._window is not None and moment < self._now() - self._window:
            raise InvalidRecord("$time", self._too_old)
        return text

    @property
    def _cutoff(self) -> str:
        """The time window's cutoff as text (`timeparse.window_cutoff`), for the `now` of this record."""
        now = self._now()
        if now is not self._cutoff_now:
            self._cutoff_now, self._cutoff_text = now, window_cutoff(now, self._window)
        return self._cutoff_text

    def _plan_for(self, shape: tuple[Any, ...]) -> _ShapePlan:
        """Work out, once per record shape (its key names, in order), which keys feed which field."""
        present = set(shape)
        resolvers = dict(self._resolvers)
        fields = [(field, found) for field, keys in self._keyed if (found := tuple(k for k in keys if k in present))]
        custom = self.variables.keys_of(shape)
        unique_source = self._unique_keys is None or any(k in present for k in self._unique_keys)
        headers = self._headers_keys is None or any(k in present for k in self._headers_keys)
        resolve = tuple((field, resolver) for field, resolver in self._resolvers
                        if field in self._always_artifacts or any(f == field and len(k) > 1 for f, k in fields))
        plan = _ShapePlan(
            time=None if self._time_keys is None else tuple(k for k in self._time_keys if k in present),
            fields=tuple((field, keys[0]) for field, keys in fields if len(keys) == 1 and field not in resolvers),
            named=tuple((field, keys[0], resolvers[field])
                        for field, keys in fields if len(keys) == 1 and field in resolvers),
            first_of=tuple((field, keys) for field, keys in fields if len(keys) > 1),
            custom=custom,
            variables=bool(custom) or self.variables.mode == "listed",
            headers=headers,
            extras=headers or bool(self._pathed or self._constants or self._headers_constant is not None or resolve),
            unique_source=unique_source,
            key_id=unique_source or bool(self.ids.pk_paths),
            resolve=resolve,
            numeric=self._numeric_sources(fields, custom, skip=resolvers.keys()) if self._numeric else (),
        )
        if len(self._plans) >= SHAPE_CACHE_LIMIT:
            self._plans.clear()
        self._plans[shape] = plan
        self.shapes_planned += 1
        return plan

    def _numeric_sources(self, fields: list[tuple[str, tuple[str, ...]]], custom: tuple[str, ...], *,
                         skip: Iterable[str] = ()) -> tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...]:
        """For one record shape: the event keys whose value comes from a numeric field, each with a reader of
        that value (None when the value came from a field that is not numeric). Scarf's string fields, then the
        custom variables (a numeric field inside an object becomes the dotted variable `object.field`); not
        $time (read as a time, whatever its form) nor $headers, nor the fields in `skip` (artifact fields whose
        names are resolved: their id is what the content id hashes)."""
        numeric = self._numeric
        skipped = frozenset(skip)
        found: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = []
        for field, keys in fields:
            if field not in skipped and any((key,) in numeric for key in keys):
                found.append((field, _first_present_if_numeric(keys, numeric)))
        for field, _, path in self._pathed:
            if field not in skipped and path in numeric:
                found.append((field, _path_reader(path)))
        roots: list[tuple[str, tuple[str, ...]]] = [(key, (key,)) for key in custom]
        roots += [(name, path or (name,)) for name, path in self.variables.listed]
        for name, root in roots:
            for path in numeric:
                if path[:len(root)] == root:
                    found.append((".".join((name, *path[len(root):])), _path_reader(path)))
        return tuple(found)

    # ----- for people ----------------------------------------------------------------------------

    def describe_plan(self) -> str:
        """Where each Scarf field comes from, for the log at the start of a sync (names only, no values)."""
        parts = [f"{field} <- {where}" for field, where in self.sources.items() if field != "$unique_id"]
        if not self.ids.enabled:
            parts.append("$unique_id: not sent (unique_id_mode off)")
        else:
            material = [self.sources["$unique_id"] + (" as given" if self.ids.as_mapped else "")]
            if self.ids.pk_paths:
                material.append("the primary key " + ", ".join(".".join(p) for p in self.ids.pk_paths))
            material.append("a hash of the event's content, numbered for repeats")
            parts.append("$unique_id <- " + ", else ".join(material))
        parts.append(f"custom variables: {self.variables.describe()}")
        return "; ".join(parts)

    def _exact_event(self, data: dict, line: bytes | None) -> tuple[dict, dict[str, Any], _ShapePlan]:
        """`_event`, with the record's `line` read again exactly when it holds an integer the fast JSON parser
        could not (InexactNumber without a line); the data the event was made from comes back with it."""
        try:
            event, plan = self._event(data)
        except InexactNumber:
            if line is None:
                raise
            data = read_exactly(line)
            event, plan = self._event(data)
        return data, event, plan

    def sources_for(self, data: dict, line: bytes | None = None) -> dict[str, str]:
        """Where each Scarf field of this record's event comes from, for the fields the event has, in Scarf's order.

        A field's source is the record key that supplied its value (the first non-null of a convention's keys:
        `$x`, `x`, then aliases; or the rule's source field), its dotted path, or "constant". `$unique_id`'s is
        its material: "mapped field <key>" (", as given" under unique_id_mode as_mapped), "primary key <path>,
        ...", or "content hash". Custom variables keep their own names, so they are not listed.

        For `preview`, never on the hot path: it maps the record again (raising InvalidRecord or InexactNumber as
        `encode` does; given the record's input `line`, a record with a huge integer is read again exactly, as
        `encode` does) and asks each compiled source which place it read. Pure; names keys, never values.
        """
        data, event, plan = self._exact_event(data, line)
        found: dict[str, str] = {}
        for field, source in self._field_sources.items():
            if field == "$unique_id":
                if self.ids.enabled:
                    found[field] = self._unique_id_material(data, plan)
                continue
            if field in event:
                supplier = source.supplier(data)
                assert supplier is not None, f"{field} has a value but no source"
                found[field] = supplier + self._name_note(field, source, data, event[field])
        return found

    def _name_note(self, field: str, source: Source, data: dict, sent: Any) -> str:
        """" (name 'right-pad')" when the value sent is the id a name in the record (or constant) resolved to."""
        if self.names is None or field not in ARTIFACT_FIELDS:
            return ""
        given = source.reader()(data)
        if given is not None and type(given) is not str:
            given = field_text(field, given)
        if given is None or given == sent or is_uuid(given):
            return ""
        return f" (name {shown(given)})"

    def _unique_id_material(self, data: dict, plan: _ShapePlan) -> str:
        material = self.ids.material(data, may_have_mapped=plan.unique_source)
        if material.startswith("mapped"):
            given = ", as given" if material == "mapped as given" else ""  # as_mapped sends the value itself
            return f"mapped field {self._field_sources['$unique_id'].supplier(data)}{given}"
        if material == "primary key":
            return "primary key " + ", ".join(".".join(path) for path in self.ids.pk_paths)
        return "content hash"


def _path_reader(path: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    if len(path) == 1:
        (key,) = path
        return lambda data: data.get(key)
    return lambda data: read_path_exact(data, path)


def _first_present_if_numeric(keys: tuple[str, ...],
                              numeric: frozenset[tuple[str, ...]]) -> Callable[[Mapping[str, Any]], Any]:
    """The value a Scarf field's convention keys supply (the first that is not null), when that key is numeric."""
    candidates = tuple((key, (key,) in numeric) for key in keys)

    def read(data: Mapping[str, Any]) -> Any:
        for key, is_numeric in candidates:
            value = data.get(key)
            if value is not None:
                return value if is_numeric else None
        return None

    return read


def _numeric_reader(source: Source, numeric: frozenset[tuple[str, ...]]) -> Callable[[Mapping[str, Any]], Any] | None:
    """For a mapped $unique_id: a reader that gives a numeric field's value as its canonical number (other values
    as they are), or None when no place this source reads is numeric."""
    if not numeric or source.constant is not None:
        return None
    if source.path:
        if source.path not in numeric:
            return None
        read_value = source.reader()
        return lambda data: canonical_or_same(read_value(data))
    candidates = tuple((key, (key,) in numeric) for key in source.keys)
    if not any(is_numeric for _, is_numeric in candidates):
        return None

    def read(data: Mapping[str, Any]) -> Any:
        for key, is_numeric in candidates:
            value = data.get(key)
            if value is not None:
                return canonical_or_same(value) if is_numeric else value
        return None

    return read


_WHAT_GOES_WRONG = {"$time": "the event's time would be wrong", "$unique_id": "the event's $unique_id would shift",
                    "$package": "the event could name the wrong package",
                    "$tracking_pixel": "the event could name the wrong tracking pixel"}


def _changed_reason(field: str, name: str, change: Mapping[str, Any]) -> str:
    """Why a record whose key field was changed is invalid: the field, the change and its reason (Airbyte's enum
    words; anything else is not shown), never a value."""
    kind, why = (_enum_word(change.get(key)) for key in ("change", "reason"))
    shown = name if len(name) <= 100 else name[:100] + "..."
    return (f"comes from source field '{shown}', which the record's meta.changes mark {kind} ({why}) by the source "
            f"or the platform: {_WHAT_GOES_WRONG[field]}")


def _enum_word(value: Any) -> str:
    if isinstance(value, str) and 0 < len(value) <= 64 and value.replace("_", "").isalnum() and value.isascii():
        return value
    return "(unnamed)"
