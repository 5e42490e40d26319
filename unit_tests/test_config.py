"""Config parsing: typed values, defaults, and every problem reported at once in words a user can act on."""

import datetime

import pytest

from destination_scarf.config import (
    DEFAULT_API_URL,
    parse_config,
    validate_api_url,
)
from destination_scarf.errors import ScarfConfigError

PKG = "abc01234-0000-0000-0000-000000000000"
TOKEN = "tok-Secret-123"


def base(**extra):
    return {"api_token": TOKEN, "owner": "my-org", "target": {"target_type": "multi_artifact"}, **extra}


def test_minimal_config_gets_the_documented_defaults():
    config = parse_config(base())
    assert config.api_url == DEFAULT_API_URL
    assert config.target.kind == "multi_artifact"
    assert config.max_concurrent_imports == 4
    assert config.on_invalid_record == "fail" and config.on_failed_events == "fail"
    assert config.mapping.unique_ids is True
    assert config.mapping.time_window == datetime.timedelta(days=7)
    assert config.batch.max_events == 20_000 and config.batch.max_age_seconds == 300


def test_the_token_never_appears_in_repr():
    assert TOKEN not in repr(parse_config(base()))


@pytest.mark.parametrize(
    ("target", "kind"),
    [({"target_type": "package", "package_id": PKG.upper()}, "package"),
     ({"target_type": "tracking_pixel", "tracking_pixel_id": PKG}, "tracking_pixel")],
)
def test_single_artifact_targets_carry_a_normalised_id(target, kind):
    config = parse_config(base(target=target))
    assert config.target.kind == kind
    assert config.target.artifact_id == PKG
    assert config.mapping.target_type == kind


def test_all_problems_are_listed_in_one_error():
    raw = {"api_token": "", "owner": "bad owner!", "target": {"target_type": "package", "package_id": "my-pkg"},
           "max_concurrent_imports": 16, "on_invalid_record": "ignore"}
    with pytest.raises(ScarfConfigError) as caught:
        parse_config(raw)
    text = str(caught.value)
    for expected in ("api_token is required", "owner must be", "target.package_id must be", "UUID",
                     "max_concurrent_imports must be between 1 and 15", "on_invalid_record must be one of fail, skip"):
        assert expected in text
    assert caught.value.failure_type.value == "config_error"


@pytest.mark.parametrize(
    ("url", "ok"),
    [("https://api.scarf.sh", True), ("http://127.0.0.1:8080", True), ("http://localhost:1", True),
     ("http://[::1]:9", True), ("http://api.scarf.sh", False), ("http://10.0.0.5", False),
     ("ftp://api.scarf.sh", False), ("https://user:pw@api.scarf.sh", False), ("api.scarf.sh", False)],
)
def test_api_url_must_be_https_unless_loopback(url, ok):
    assert (validate_api_url(url) == []) is ok


def test_plain_http_to_a_remote_host_is_a_config_error_that_says_why():
    with pytest.raises(ScarfConfigError, match="must use https"):
        parse_config(base(api_url="http://scarf.example.com"))


def test_trailing_slash_is_dropped_from_the_api_url():
    assert parse_config(base(api_url="http://127.0.0.1:9000/")).api_url == "http://127.0.0.1:9000"


def test_write_options_are_parsed():
    config = parse_config(base(
        field_mappings=[{"scarf_field": "$time", "source_field": "created_at"},
                        {"scarf_field": "$type", "constant": "download", "stream": "downloads"}],
        custom_variables={"mode": "listed", "fields": ["country", "geo.city"]},
        unique_id_mode="off", event_time_window_days=0, batch_max_events=10, batch_max_megabytes=2,
        batch_max_age_seconds=30, on_invalid_record="skip", on_failed_events="warn", max_concurrent_imports=15,
        rejected_records_path="/tmp/rejected.ndjson", import_timeout_minutes=5, slot_wait_minutes=0,
    ))
    rules = config.mapping.field_rules
    assert [(r.scarf_field, r.source_field, r.constant, r.stream) for r in rules] == [
        ("$time", "created_at", None, None), ("$type", None, "download", "downloads")]
    assert config.mapping.custom_variables == "listed"
    assert config.mapping.custom_variable_fields == ("country", "geo.city")
    assert config.mapping.unique_ids is False and config.mapping.time_window is None
    assert (config.batch.max_events, config.batch.max_bytes, config.batch.max_age_seconds) == (10, 2 * 1024 * 1024, 30)
    assert config.on_invalid_record == "skip" and config.on_failed_events == "warn"
    assert config.rejected_records_path == "/tmp/rejected.ndjson"
    assert config.import_timeout_seconds == 300 and config.slot_wait_seconds == 0


def test_bad_field_mappings_are_reported():
    with pytest.raises(ScarfConfigError, match=r"field_mappings\[1\].scarf_field must be one of"):
        parse_config(base(field_mappings=[{"scarf_field": "$when", "source_field": "t"}]))
    with pytest.raises(ScarfConfigError, match="field_mappings"):
        parse_config(base(field_mappings=[{"scarf_field": "$type"}]))


def test_listed_custom_variables_need_field_names():
    with pytest.raises(ScarfConfigError, match=r"custom_variables\.fields"):
        parse_config(base(custom_variables={"mode": "listed", "fields": [""]}))


def test_unknown_keys_are_refused_naming_the_closest_option():
    with pytest.raises(ScarfConfigError) as caught:
        parse_config({**base(), "field_mapping": [], "zzz": 1})
    assert "unknown option 'field_mapping' (did you mean field_mappings?)" in caught.value.message
    assert "unknown option 'zzz' (see `destination-scarf spec` for the options)" in caught.value.message


@pytest.mark.parametrize(("entry", "valid"), [
    ({"scarf_field": "$time", "source_field": "ts"}, True),
    ({"scarf_field": "$type", "constant": "download"}, True),
    ({"scarf_field": "$type"}, False),
    ({"scarf_field": "$type", "source_field": "t", "constant": "download"}, False),
    ({"scarf_field": "$type", "source_field": ""}, False),
    ({"scarf_field": "$nope", "source_field": "t"}, False),
])
def test_the_spec_refuses_a_field_mapping_without_exactly_one_source(entry, valid):
    import jsonschema

    from destination_scarf.options import spec

    schema = spec()["connectionSpecification"]["properties"]["field_mappings"]["items"]
    assert jsonschema.Draft7Validator(schema).is_valid(entry) is valid
    config_error = None
    try:
        parse_config({**base(), "field_mappings": [entry]})
    except ScarfConfigError as error:
        config_error = error
    assert (config_error is None) is valid  # the parser agrees with the schema


def test_policies_are_typed_literals_from_the_options_table():
    from typing import get_args

    from destination_scarf.options import BY_KEY, OnFailedEvents, OnInvalidRecord

    assert BY_KEY["on_invalid_record"].choices == get_args(OnInvalidRecord) == ("fail", "skip")
    assert BY_KEY["on_failed_events"].choices == get_args(OnFailedEvents) == ("fail", "warn")
