"""Package and tracking pixel names in $package and $tracking_pixel: the resolution table (exact matches,
suggestions, ambiguity, TYPE:NAME), and the mapper that uses it (ids sent, records refused, the hot path's cache)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from destination_scarf.config import parse_config
from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping import FieldRule, InvalidRecord, MappingConfig, artifacts, compile_mapper
from destination_scarf.mapping.artifacts import Artifact, ArtifactNames, may_send_names, name_constants
from destination_scarf.sync.artifact_names import check_constant_names

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
RECENT = "2026-11-27T11:00:00Z"

NPM_RIGHT_PAD = "0b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
DOCKER_RIGHT_PAD = "1b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
LEFT_PAD = "2b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
CLI = "3b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
GO_TOOL = "4b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
DOCS_PACKAGE = "5b7c1e52-8d9a-4c1e-9a53-5e3f0c2b9d11"
DOCS_PIXEL = "6f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"
HOME_1 = "7f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"
HOME_2 = "8f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"
UNLISTED = "9f0e6a11-3b2c-4d4e-8f70-0a1b2c3d4e5f"


def names(**kwargs: Any) -> ArtifactNames:
    return ArtifactNames(
        owner="acme",
        packages=[Artifact(NPM_RIGHT_PAD, "right-pad", "npm"), Artifact(DOCKER_RIGHT_PAD, "right-pad", "docker"),
                  Artifact(LEFT_PAD, "left-pad", "npm"), Artifact(CLI, "my-org/cli", "docker"),
                  Artifact(GO_TOOL, "tool", "go"), Artifact(DOCS_PACKAGE, "docs", "file")],
        tracking_pixels=[Artifact(DOCS_PIXEL, "docs"), Artifact(HOME_1, "Home page"), Artifact(HOME_2, "Home page")],
        **kwargs)


def refusal(table: ArtifactNames, field: str, value: str) -> str:
    with pytest.raises(InvalidRecord) as caught:
        table.resolve(field, value)
    assert caught.value.field == field
    assert table.problem(field, value) == caught.value.reason
    return caught.value.reason


# ----- the table -----------------------------------------------------------------------------------------------------


def test_a_unique_name_resolves_to_its_id_exactly_and_case_sensitively():
    table = names()
    assert table.resolve("$package", "left-pad") == LEFT_PAD
    assert table.resolve("$package", "my-org/cli") == CLI
    assert table.resolve("$tracking_pixel", "docs") == DOCS_PIXEL
    reason = refusal(table, "$package", "Left-Pad")
    assert reason.startswith("'Left-Pad' is not the name or id of a package of owner 'acme' (6 packages listed; ")
    assert "names are matched exactly; the closest: 'left-pad'" in reason
    assert "closest: 'left-pad'" in refusal(table, "$package", " left-pad ")  # space counts, too


def test_a_uuid_is_sent_as_it_is_listed_or_not():
    table = names()
    assert table.resolve("$package", UNLISTED) == UNLISTED
    assert table.resolve("$package", UNLISTED.upper()) == UNLISTED.upper()
    assert table.resolve("$tracking_pixel", LEFT_PAD) == LEFT_PAD  # not checked against the lists


def test_an_unknown_name_names_the_value_and_the_closest_names():
    table = names()
    reason = refusal(table, "$package", "rigth-pad")
    assert reason.startswith("'rigth-pad' is not the name or id of a package of owner 'acme'")
    # right-pad is shared by two types: suggested in its qualified forms
    assert "the closest: 'docker:right-pad', 'npm:right-pad'" in reason
    assert "none is close to it" in refusal(table, "$package", "zzzzzzzz")


def test_a_name_of_the_other_kind_says_which_field_it_belongs_to():
    table = names()
    assert "'my-org/cli' is the name of a package: map it to $package" in refusal(table, "$tracking_pixel",
                                                                                  "my-org/cli")
    assert "'Home page' is the name of a tracking pixel: map it to $tracking_pixel" in refusal(
        table, "$package", "Home page")


def test_a_name_that_is_both_a_package_and_a_pixel_goes_by_its_field():
    table = names()
    assert table.resolve("$package", "docs") == DOCS_PACKAGE
    assert table.resolve("$tracking_pixel", "docs") == DOCS_PIXEL


def test_a_package_name_two_types_share_is_ambiguous_unless_qualified():
    table = names()
    reason = refusal(table, "$package", "right-pad")
    assert reason == ("'right-pad' is ambiguous: owner 'acme' has packages of that name of the types docker and npm; "
                      "write 'docker:right-pad' or 'npm:right-pad', or give the id")
    assert table.resolve("$package", "npm:right-pad") == NPM_RIGHT_PAD
    assert table.resolve("$package", "docker:right-pad") == DOCKER_RIGHT_PAD
    assert table.resolve("$package", "npm:left-pad") == LEFT_PAD  # a unique name may be qualified too
    assert table.resolve("$package", "go:tool") == GO_TOOL  # a type the list reports, though not one of Scarf's five


def test_a_qualified_name_must_name_a_package_of_that_type():
    table = names()
    reason = refusal(table, "$package", "python:right-pad")
    assert reason.startswith("'python:right-pad' is not the name or id of a package")
    assert "the closest: 'docker:right-pad', 'npm:right-pad'" in reason
    assert "closest: 'npm:right-pad'" in refusal(table, "$package", "npm:rigth-pad")  # its own type first
    assert "gem:right-pad" in refusal(table, "$package", "gem:right-pad")  # not a type: a plain (unknown) name


def test_a_pixel_name_two_pixels_share_is_ambiguous_and_the_message_gives_their_ids():
    reason = refusal(names(), "$tracking_pixel", "Home page")
    assert reason == (f"'Home page' is ambiguous: owner 'acme' has 2 tracking pixels of that name ({HOME_1}, "
                      f"{HOME_2}); give the id")


def test_a_value_in_a_message_is_capped_and_its_control_characters_escaped():
    reason = refusal(names(), "$package", "\x1b[31mred" + "x" * 200)
    assert "\x1b" not in reason and "'\\x1b[31mred" in reason
    assert f"(cut at {artifacts.SHOWN_CHARACTERS} of 208 characters)" in reason
    assert "x" * (artifacts.SHOWN_CHARACTERS + 1) not in reason


def test_an_incomplete_list_says_names_beyond_it_need_their_ids():
    reason = refusal(names(packages_complete=False), "$package", "other")
    assert "6 packages listed, the most it reads: a package beyond them needs its id" in reason
    assert "the most it reads" not in refusal(names(), "$package", "other")


def test_an_empty_catalogue_refuses_every_name():
    table = ArtifactNames(owner="acme")
    assert "0 packages listed" in refusal(table, "$package", "right-pad")
    assert table.resolve("$package", UNLISTED) == UNLISTED
    assert table.describe() == "0 packages and 0 tracking pixels"


def test_the_resolvers_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(artifacts, "CACHE_LIMIT", 3)
    monkeypatch.setattr(artifacts, "REFUSALS_LIMIT", 2)
    table = names()
    resolver = table.resolver("$package")
    base = len(resolver)
    for n in range(10):
        value = f"{n:08d}-0000-4000-8000-000000000000"
        assert table.resolve("$package", value) == value
        assert len(resolver) <= base + 3
    assert resolver["left-pad"] == LEFT_PAD  # the owner's names stay
    for n in range(5):
        refusal(table, "$package", f"unknown-{n}")
        assert len(resolver._refused) <= 2


def test_fuzzy_suggestions_stop_after_many_unknown_values(monkeypatch):
    monkeypatch.setattr(artifacts, "FUZZY_LIMIT", 1)
    table = names()
    assert "closest: 'left-pad'" in refusal(table, "$package", "left-pda")
    assert "none is close to it" in refusal(table, "$package", "lfet-pad")  # fuzzy search no more...
    assert "closest: 'left-pad'" in refusal(table, "$package", "LEFT-PAD")  # ...but case still is


# ----- the mapper --------------------------------------------------------------------------------------------------


def mapper(*rules: FieldRule, table: ArtifactNames | None = None, **config: Any):
    return compile_mapper(config=MappingConfig(field_rules=rules, **config), stream="downloads", namespace=None,
                          primary_key=None, now=lambda: NOW, names=table if table is not None else names())


def event(line: bytes) -> dict[str, Any]:
    return orjson.loads(line)


def test_the_mapper_sends_the_id_a_name_stands_for_and_the_content_id_is_the_ids():
    m = mapper()
    by_name = event(m.encode({"time": RECENT, "package": "left-pad", "version": "1.0"}))
    m.new_window()  # (within one window, the second would be numbered as a repeat of the first: the same content)
    by_id = event(m.encode({"time": RECENT, "package": LEFT_PAD, "version": "1.0"}))
    assert by_name["$package"] == LEFT_PAD
    assert by_name == by_id  # the same download, named either way, is one event
    assert event(m.encode({"time": RECENT, "pixel": "docs"}))["$tracking_pixel"] == DOCS_PIXEL
    assert m({"time": RECENT, "$package": "npm:right-pad"})["$package"] == NPM_RIGHT_PAD


def test_the_mapper_refuses_an_unknown_or_ambiguous_name_on_its_field():
    m = mapper()
    with pytest.raises(InvalidRecord) as caught:
        m.encode({"time": RECENT, "package": "right-pad"})
    assert caught.value.field == "$package" and "is ambiguous" in caught.value.reason
    with pytest.raises(InvalidRecord) as caught:
        m.encode({"time": RECENT, "tracking_pixel": "Docs"})
    assert caught.value.field == "$tracking_pixel" and "the closest: 'docs'" in caught.value.reason


def test_mapped_path_and_constant_names_are_resolved():
    m = mapper(FieldRule(scarf_field="$package", source_field="artifact.name"),
               FieldRule(scarf_field="$tracking_pixel", constant="docs"))
    sent = event(m.encode({"time": RECENT, "artifact": {"name": "my-org/cli"}}))
    assert (sent["$package"], sent["$tracking_pixel"]) == (CLI, DOCS_PIXEL)
    bad = mapper(FieldRule(scarf_field="$package", constant="nope"))
    with pytest.raises(InvalidRecord, match="'nope' is not the name or id of a package"):
        bad.encode({"time": RECENT})


def test_a_value_seen_once_costs_one_lookup_after():
    table = names()
    m = mapper(table=table)
    m.encode({"time": RECENT, "package": UNLISTED})
    assert table.resolver("$package")[UNLISTED] == UNLISTED
    m.encode({"time": RECENT, "package": "npm:right-pad"})
    assert table.resolver("$package")["npm:right-pad"] == NPM_RIGHT_PAD
    [plan] = m._plans.values()  # one record shape
    assert [field for field, _, _ in plan.named] == ["$package"]  # only the artifact fields this shape has
    assert plan.resolve == () and "$package" not in dict(plan.fields)  # looked up as it is read, and only then


def test_without_names_or_with_a_single_target_nothing_is_resolved():
    plain = compile_mapper(config=MappingConfig(), stream="s", namespace=None, primary_key=None, now=lambda: NOW)
    assert event(plain.encode({"time": RECENT, "package": "left-pad"}))["$package"] == "left-pad"
    single = mapper(target_type="package")
    assert "$package" not in event(single.encode({"time": RECENT, "package": "right-pad"}))
    assert all(plan.resolve == plan.named == () for plan in [*plain._plans.values(), *single._plans.values()])


def test_a_constant_name_is_resolved_once_and_a_path_or_several_keys_in_the_event():
    m = mapper(FieldRule(scarf_field="$tracking_pixel", constant="docs"),
               FieldRule(scarf_field="$package", source_field="a.b"))
    assert m._constants["$tracking_pixel"] == DOCS_PIXEL
    m.encode({"time": RECENT, "a": {"b": "left-pad"}})
    [plan] = m._plans.values()
    assert [field for field, _ in plan.resolve] == ["$package"]
    both = mapper()
    sent = event(both.encode({"time": RECENT, "$package": None, "package": "left-pad"}))  # the first non-null
    assert sent["$package"] == LEFT_PAD
    [plan] = both._plans.values()
    assert [field for field, _ in plan.resolve] == ["$package"] and plan.named == ()


def test_sources_for_shows_the_name_an_id_came_from():
    m = mapper(FieldRule(scarf_field="$tracking_pixel", constant="docs"))
    sources = m.sources_for({"time": RECENT, "package": "npm:right-pad"})
    assert sources["$package"] == "package (name 'npm:right-pad')"
    assert sources["$tracking_pixel"] == "constant (name 'docs')"
    assert mapper().sources_for({"time": RECENT, "package": LEFT_PAD})["$package"] == "package"


# ----- when names are read, and constants --------------------------------------------------------------------------


@pytest.mark.parametrize("rules, target, expected", [
    ((), "multi_artifact", True),
    ((), "package", False),
    ((FieldRule(scarf_field="$package", constant=LEFT_PAD),), "multi_artifact", True),  # $tracking_pixel by convention
    ((FieldRule(scarf_field="$package", constant=LEFT_PAD),
      FieldRule(scarf_field="$tracking_pixel", constant=DOCS_PIXEL)), "multi_artifact", False),
    ((FieldRule(scarf_field="$package", constant=LEFT_PAD),
      FieldRule(scarf_field="$tracking_pixel", constant=DOCS_PIXEL),
      FieldRule(scarf_field="$package", source_field="pkg", stream="other")), "multi_artifact", True),
    ((FieldRule(scarf_field="$package", constant="left-pad"),
      FieldRule(scarf_field="$tracking_pixel", constant=DOCS_PIXEL)), "multi_artifact", True),
])
def test_names_are_read_when_a_stream_can_send_one(rules, target, expected):
    config = MappingConfig(field_rules=rules, target_type=target)
    assert may_send_names(config, [("downloads", None), ("other", "ns")]) is expected


def test_constant_names_are_checked_against_the_lists():
    raw = {"api_token": "t", "owner": "acme", "target": {"target_type": "multi_artifact"}, "field_mappings": [
        {"scarf_field": "$package", "constant": "left-pad"},
        {"scarf_field": "$package", "constant": "rigth-pad", "stream": "logs"},
        {"scarf_field": "$tracking_pixel", "constant": DOCS_PIXEL},
    ]}
    mapping = parse_config(raw).mapping
    assert [rule.constant for rule in name_constants(mapping)] == ["left-pad", "rigth-pad"]
    with pytest.raises(ScarfConfigError) as caught:
        check_constant_names(mapping, names())
    assert str(caught.value) == (
        "The destination's configuration is not valid: field_mappings: the constant $package for stream 'logs': "
        "'rigth-pad' is not the name or id of a package of owner 'acme' (6 packages listed; names are matched "
        "exactly; the closest: 'docker:right-pad', 'npm:right-pad').")
    single = parse_config({**raw, "target": {"target_type": "package", "package_id": LEFT_PAD}}).mapping
    assert list(name_constants(single)) == []


def test_a_resolved_name_from_a_numeric_field_hashes_as_the_id_sent():
    table = ArtifactNames(owner="acme", packages=[Artifact(LEFT_PAD, "1", "npm")])
    m = compile_mapper(config=MappingConfig(), stream="downloads", namespace=None, primary_key=None,
                       now=lambda: NOW, names=table, numeric_fields=frozenset({("package",)}))
    as_number = event(m.encode({"time": RECENT, "package": 1}))
    m.new_window()
    as_id = event(m.encode({"time": RECENT, "package": LEFT_PAD}))
    assert as_number["$package"] == LEFT_PAD and as_number == as_id
    assert all(plan.numeric == () for plan in m._plans.values())
