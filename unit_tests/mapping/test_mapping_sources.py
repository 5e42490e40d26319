"""`EventMapper.sources_for`: for one record, which key supplied each Scarf field of its event.

Checked three ways over many seeded configs and records: against the mapper's actual event (the value at the
key named must be the field's value, the id must be the hash of the material named), against an independent
model of the precedence the README documents (rule for `namespace.stream` > rule for `stream` > default rule >
`$x` > `x` > aliases; first non-null), and for purity (it changes nothing a sync would see).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from typing import Any

import orjson
import pytest

from destination_scarf.mapping import (
    SCARF_FIELDS,
    FieldRule,
    InexactNumber,
    InvalidRecord,
    MappingConfig,
    compile_mapper,
)
from destination_scarf.mapping.timeparse import to_scarf_time
from destination_scarf.mapping.values import canonical_json, field_text, headers_from_text, headers_from_value

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.timezone.utc)
RECENT = "2026-11-27T11:00:00Z"
PACKAGE = "0b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
PIXEL = "5f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"
ALIASES = {"$tracking_pixel": ["pixel", "$pixel"]}


def make(*rules: FieldRule, stream: str = "downloads", namespace: str | None = None,
         primary_key: list[list[str]] | None = None, **config: Any):
    return compile_mapper(config=MappingConfig(field_rules=rules, **config), stream=stream, namespace=namespace,
                          primary_key=primary_key, now=lambda: NOW)


def rule(field: str, source: str | None = None, *, constant: str | None = None, stream: str | None = None) -> FieldRule:
    return FieldRule(scarf_field=field, source_field=source, constant=constant, stream=stream)


def reference_id(namespace: str | None, stream: str, kind: str, material: bytes) -> str:
    """The documented id scheme, rebuilt with the uuid module (as test_mapping does)."""
    prefix = b"destination-scarf/unique-id/v1\0" + orjson.dumps([namespace, stream, kind]) + b"\0"
    return str(uuid.UUID(bytes=hashlib.sha256(prefix + material).digest()[:16], version=5))


def value_at(data: dict[str, Any], name: str) -> Any:
    """What a source field names: a top-level key (also one spelled with dots), else the nested path."""
    if data.get(name) is not None or "." not in name:
        return data.get(name)
    value: Any = data
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --- examples --------------------------------------------------------------------------------------------------


def test_the_key_actually_used_for_this_record() -> None:
    mapper = make(rule("$remote_address", "client.ip"), rule("$type", constant="download"), unique_id_mode="off")
    data = {"$time": None, "time": RECENT, "package": PACKAGE, "$version": "", "version": "2.0",
            "client": {"ip": "192.0.2.1"}, "pixel": PIXEL, "country": "NL"}
    assert mapper.sources_for(data) == {
        "$time": "time",  # `$time` is null: the next candidate supplied it
        "$package": "package", "$tracking_pixel": "pixel", "$type": "constant", "$remote_address": "client.ip",
    }  # `$version` is "": the first non-null candidate wins, so no $version at all (and `version` is not read)
    assert "$version" not in mapper(data)
    assert mapper.sources_for({**data, "$time": RECENT})["$time"] == "$time"


def test_rules_are_final_and_per_stream() -> None:
    rules = (rule("$time", "ts", stream="ns.downloads"), rule("$time", "created", stream="downloads"),
             rule("$time", "at"))
    data = {"ts": RECENT, "created": RECENT, "at": RECENT, "time": RECENT, "package": PACKAGE}
    assert make(*rules, namespace="ns").sources_for(data)["$time"] == "ts"
    assert make(*rules, namespace="other").sources_for(data)["$time"] == "created"
    assert make(*rules, stream="views").sources_for(data)["$time"] == "at"
    mapper = make(rule("$remote_address", "ip"))
    assert "$remote_address" not in mapper.sources_for({"time": RECENT, "package": PACKAGE, "remote_address": "x"})


def test_unique_id_material() -> None:
    data = {"time": RECENT, "package": PACKAGE, "id": 7, "event": {"id": "E1"}, "unique_id": None}
    assert make().sources_for(data)["$unique_id"] == "content hash"
    assert make(primary_key=[["id"], ["event", "id"]]).sources_for(data)["$unique_id"] == "primary key id, event.id"
    assert make(primary_key=[["missing"]]).sources_for(data)["$unique_id"] == "content hash"
    mapped = make(rule("$unique_id", "event.id"), primary_key=[["id"]])
    assert mapped.sources_for(data)["$unique_id"] == "mapped field event.id"
    assert mapped.sources_for({**data, "event": {"id": ""}})["$unique_id"] == "primary key id"  # empty: not an id
    assert make().sources_for({**data, "$unique_id": "u"})["$unique_id"] == "mapped field $unique_id"
    assert "$unique_id" not in make(unique_id_mode="off").sources_for(data)
    as_given = make(rule("$unique_id", "event.id"), unique_id_mode="as_mapped")
    assert as_given.sources_for(data)["$unique_id"] == "mapped field event.id, as given"
    assert as_given(data)["$unique_id"] == "E1"
    assert as_given.sources_for({**data, "event": None})["$unique_id"] == "content hash"  # no mapped id: hashed


def test_fields_not_sent_are_not_listed() -> None:
    data = {"time": RECENT, "package": PACKAGE, "pixel": PIXEL, "headers": [], "ua": None}
    sources = make(rule("$user_agent", "ua"), target_type="package").sources_for(data)
    assert list(sources) == ["$time", "$unique_id"]  # the target names the artifact; empty headers; a null rule
    assert make(rule("$headers", constant='{"A": "b"}')).sources_for(data)["$headers"] == "constant"
    assert make(rule("$time", constant=RECENT)).sources_for({"package": PACKAGE})["$time"] == "constant"


def test_it_rejects_what_the_mapper_rejects() -> None:
    with pytest.raises(InvalidRecord) as caught:
        make().sources_for({"time": "2026-01-01T00:00:00Z", "package": PACKAGE})
    assert caught.value.field == "$time"


# --- the property test -----------------------------------------------------------------------------------------

VALUES = ["x", "", None, None, 7, 2.5, "ünïcode"]
INVALID = [True, {"a": 1}, [1]]  # for a string field: the record is rejected (rarely, or few records would map)


def scalar(rng: random.Random) -> Any:
    return rng.choice(INVALID) if rng.random() < 0.02 else rng.choice(VALUES)


def id_mode(ids: bool, as_mapped: bool) -> str:
    return "off" if not ids else "as_mapped" if as_mapped else "deterministic"


def random_config(rng: random.Random) -> tuple[MappingConfig, list[list[str]] | None, str | None]:
    candidates = [
        rule("$time", "ts"), rule("$time", "request.ts", stream="downloads"), rule("$time", constant=RECENT),
        rule("$time", "created", stream="ns.downloads"), rule("$remote_address", "ip"),
        rule("$remote_address", "client.ip", stream="downloads"), rule("$type", constant="download"),
        rule("$package", "pkg", stream="ns.downloads"), rule("$user_agent", "ua", stream="views"),
        rule("$unique_id", "event_id"), rule("$unique_id", "event.id", stream="downloads"),
        rule("$headers", "request.headers"), rule("$headers", constant='{"A": "b"}', stream="downloads"),
        rule("$referrer", "request.ref"), rule("$version", "a.b"),
    ]
    chosen: dict[tuple[str | None, str], FieldRule] = {}
    for candidate in rng.sample(candidates, rng.randint(0, 6)):
        chosen.setdefault((candidate.stream, candidate.scarf_field), candidate)  # one entry per (stream, field)
    mode = rng.choice(["all", "all", "none", "listed"])
    config = MappingConfig(
        field_rules=tuple(chosen.values()), custom_variables=mode,
        custom_variable_fields=("country", "request.ts") if mode == "listed" else (),
        unique_id_mode=id_mode(rng.random() < 0.8, rng.random() < 0.3), time_window=rng.choice([None, dt.timedelta(days=7)]),
        target_type=rng.choice(["multi_artifact", "multi_artifact", "package"]))
    primary_key = rng.choice([None, [["id"]], [["id"], ["request", "ts"]]])
    return config, primary_key, rng.choice([None, "ns"])


def random_record(rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {}
    keys = ["$time", "time", "ts", "created", "$package", "package", "pkg", "$tracking_pixel", "tracking_pixel",
            "pixel", "$pixel", "$remote_address", "remote_address", "ip", "ua", "$user_agent", "user_agent",
            "$unique_id", "unique_id", "event_id", "id", "$version", "version", "a.b", "$headers", "headers",
            "referrer", "country", "$bogus", "_airbyte_meta"]
    for key in rng.sample(keys, rng.randint(3, len(keys))):
        if key in ("$time", "time", "ts", "created"):
            data[key] = rng.choice([RECENT, "2026-11-27T10:00:00.5+01:00", 1795777200, None, "soon"])
        elif key in ("$package", "package", "pkg"):
            data[key] = rng.choice([PACKAGE, PACKAGE, None, ""])
        elif key.lstrip("$") in ("tracking_pixel", "pixel"):
            data[key] = rng.choice([PIXEL, None, ""])
        elif key in ("$headers", "headers"):
            data[key] = rng.choice([{"A": "b"}, [], None, [{"name": "N", "value": 1}], '{"X": "y"}'])
        elif key == "id":
            data[key] = rng.choice([1, "k", None])
        else:
            data[key] = scalar(rng)
    for parent in ("request", "client", "a", "event"):
        if rng.random() < 0.75:
            data[parent] = None if rng.random() < 0.1 else "flat" if rng.random() < 0.1 else rng.choice([
                {"ts": rng.choice([RECENT, None]), "ip": scalar(rng), "id": rng.choice(["e", None, ""]),
                 "b": scalar(rng), "ref": rng.choice(["https://x", None]),
                 "headers": rng.choice([{"A": "b"}, None, []])}])
    # Most records carry a time and an artifact where some config reads them, or few would map at all.
    for group, good in ((("time", "ts", "created"), RECENT), (("package", "pkg", "pixel"), PACKAGE)):
        for key in group:
            if rng.random() < 0.6:
                data[key] = good
    if isinstance(data.get("request"), dict) and rng.random() < 0.8:
        data["request"]["ts"] = RECENT
    return dict(rng.sample(list(data.items()), len(data)))  # any key order


def expected_supplier(field: str, config: MappingConfig, stream: str, namespace: str | None,
                      data: dict[str, Any]) -> str | None:
    """The documented precedence, rebuilt without the mapping package: the winning rule, else the convention."""
    qualified = f"{namespace}.{stream}" if namespace else None
    ranked = [(1 if r.stream is None else 3 if r.stream == qualified else 2 if r.stream == stream else 0, r)
              for r in config.field_rules if r.scarf_field == field]
    ranked = [(rank, r) for rank, r in ranked if rank]
    if ranked:
        chosen = max(ranked, key=lambda pair: pair[0])[1]
        return "constant" if chosen.constant is not None else chosen.source_field
    candidates = [field, field[1:], *ALIASES.get(field, [])]
    return next((key for key in candidates if data.get(key) is not None), None)


def check_value(field: str, source: str, event: dict[str, Any], data: dict[str, Any], config: MappingConfig) -> None:
    if source == "constant":
        constant = next(r.constant for r in config.field_rules if r.scarf_field == field and r.constant is not None)
        raw: Any = constant
    else:
        raw = value_at(data, source)
        assert raw is not None, (field, source)
    if field == "$time":
        assert to_scarf_time(raw)[1] == event["$time"]
    elif field == "$headers":
        assert (headers_from_text(raw) if source == "constant" else headers_from_value(raw)) == event["$headers"]
    else:
        assert field_text(field, raw) == event[field]


def check_unique_id(source: str, event: dict[str, Any], data: dict[str, Any], stream: str,
                    namespace: str | None, primary_key: list[list[str]] | None) -> None:
    if source.startswith("mapped field ") and source.endswith(", as given"):
        key = source.removeprefix("mapped field ").removesuffix(", as given")
        assert event["$unique_id"] == field_text("$unique_id", value_at(data, key))  # the value itself
        return
    if source.startswith("mapped field "):
        text = field_text("$unique_id", value_at(data, source.removeprefix("mapped field ")))
        material, kind = text.encode(), "i"
    elif source.startswith("primary key "):
        assert primary_key and source == "primary key " + ", ".join(".".join(p) for p in primary_key)
        values = [value_at(data, ".".join(path)) for path in primary_key]
        material, kind = canonical_json(values), "k"
    else:
        assert source == "content hash"
        body = {k: v for k, v in event.items() if k != "$unique_id"}
        material, kind = orjson.dumps(body, option=orjson.OPT_SORT_KEYS), "e"
    assert event["$unique_id"] == reference_id(namespace, stream, kind, material)


def test_sources_name_the_keys_whose_values_the_event_holds() -> None:
    kinds: set[str] = set()
    for seed in range(40):
        rng = random.Random(seed)
        config, primary_key, namespace = random_config(rng)
        stream = "downloads"
        mapper = compile_mapper(config=config, stream=stream, namespace=namespace, primary_key=primary_key,
                                now=lambda: NOW)
        mapped = 0
        for _ in range(150):
            data = random_record(rng)
            try:
                event = mapper(data)
            except (InvalidRecord, InexactNumber):
                with pytest.raises((InvalidRecord, InexactNumber)):
                    mapper.sources_for(data)
                continue
            mapped += 1
            repeated = mapper.repeated
            sources = mapper.sources_for(data)
            assert list(sources) == [f for f in SCARF_FIELDS if f in event]  # exactly the event's fields, in order
            for field, source in sources.items():
                if field == "$unique_id":
                    check_unique_id(source, event, data, stream, namespace, primary_key)
                    kinds.add("as given" if source.endswith(", as given") else source.split(" ")[0])
                    continue
                assert source == expected_supplier(field, config, stream, namespace, data), (seed, field, data)
                check_value(field, source, event, data, config)
                kinds.add("constant" if source == "constant" else "path" if "." in source else
                          "alias" if source in ("pixel", "$pixel") else "$x" if source == field else
                          "x" if source == field[1:] else "rule")
            assert mapper.sources_for(data) == sources and mapper.repeated == repeated  # pure
            assert orjson.loads(mapper.encode(data)).keys() == event.keys()
        assert mapped > 15, (seed, mapped)
    # every kind of source and of id material really occurred
    assert kinds == {"constant", "path", "alias", "$x", "x", "rule", "mapped", "primary", "content", "as given"}, kinds
