"""Config parsing: typed values, defaults, and every problem reported at once in words a user can act on."""

import datetime
import logging
import re
from collections.abc import Iterator

import pytest

from destination_scarf.config import (
    DEFAULT_API_URL,
    parse_config,
    validate_api_url,
)
from destination_scarf.errors import ScarfConfigError
from destination_scarf.options import BY_KEY, RETIRED, RetiredOption

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


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The warnings parse_config logs (on the connector's logger, which may not propagate to pytest's)."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    airbyte = logging.getLogger("airbyte")
    airbyte.addHandler(handler)
    level, airbyte.level = airbyte.level, logging.INFO
    yield messages
    airbyte.removeHandler(handler)
    airbyte.level = level


@pytest.mark.parametrize(("typo", "option"), [
    ("field_mapping", "field_mappings"), ("on_invalid_records", "on_invalid_record"), ("API_TOKEN", "api_token"),
    ("api-url", "api_url"), ("onwer", "owner"), ("max_concurent_imports", "max_concurrent_imports"),
])
def test_a_typo_of_an_option_is_refused_naming_the_option(typo, option, logged):
    with pytest.raises(ScarfConfigError) as caught:
        parse_config({**base(), typo: 1})
    assert f"unknown option {typo!r} (did you mean {option}?)" in caught.value.message


@pytest.mark.parametrize(("key", "closest"), [
    ("status_polling_seconds", "the closest option is status_polling"), ("owner_id", "the closest option is owner"),
    ("zzz", "`destination-scarf spec` lists the options"),
])
def test_a_key_of_another_version_is_accepted_with_a_warning(key, closest, logged):
    """Airbyte's rule: a config saved by a newer or an older version still works. Only its key is ignored."""
    assert parse_config({**base(), key: 5}) == parse_config(base())
    [warning] = logged
    assert warning.startswith(f"Ignoring {key!r}: it is not an option of destination-scarf ") and closest in warning


RENAMED = RetiredOption(key="events_per_import", retired_in="0.3.0", replaced_by="batch_max_events",
                        renamed_to="batch_max_events")
REMOVED = RetiredOption(key="poll_interval_seconds", retired_in="0.2.0",
                        replaced_by="the status poller, which paces itself")


def test_a_renamed_option_is_read_as_the_new_one_with_a_warning(logged):
    config = parse_config({**base(), "events_per_import": 123}, retired=[RENAMED, REMOVED])

    assert config == parse_config(base(batch_max_events=123))
    assert logged == ["Reading 'events_per_import' as 'batch_max_events': destination-scarf 0.3.0 renamed that "
                      "option. Rename it in the config to silence this warning."]


def test_a_renamed_option_set_beside_its_new_name_is_ignored_with_a_warning(logged):
    config = parse_config({**base(), "events_per_import": 123, "batch_max_events": 7}, retired=[RENAMED])

    assert config.batch.max_events == 7
    assert logged == ["Ignoring 'events_per_import': destination-scarf 0.3.0 renamed it to 'batch_max_events', "
                      "which the config sets too. Remove 'events_per_import' from the config."]


def test_a_removed_option_is_ignored_with_a_warning_naming_what_replaced_it(logged):
    assert parse_config({**base(), "poll_interval_seconds": 30}, retired=[REMOVED]) == parse_config(base())
    assert logged == ["Ignoring 'poll_interval_seconds': destination-scarf 0.2.0 retired that option (replaced by "
                      "the status poller, which paces itself). Remove it from the config."]


def test_a_retired_option_is_never_taken_for_a_typo(logged):
    """A retired key may be one edit from a current option (`field_mapping` renamed to `field_mappings`)."""
    renamed = RetiredOption(key="field_mapping", retired_in="0.3.0", replaced_by="field_mappings",
                            renamed_to="field_mappings")
    rule = {"scarf_field": "$type", "constant": "download"}
    assert parse_config({**base(), "field_mapping": [rule]}, retired=[renamed]) == \
        parse_config(base(field_mappings=[rule]))


def test_the_shipped_table_of_retired_options_is_consistent():
    keys = [option.key for option in RETIRED]
    assert len(set(keys)) == len(keys)
    for option in RETIRED:
        assert option.key not in BY_KEY, f"{option.key} is retired, yet still an option"
        assert option.renamed_to is None or option.renamed_to in BY_KEY
        assert re.fullmatch(r"\d+\.\d+\.\d+", option.retired_in) and option.replaced_by


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
