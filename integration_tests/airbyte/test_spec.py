"""`spec`: the top-level spec.json is exactly what the connector prints, and it passes Airbyte's lint."""

from __future__ import annotations

import functools

import orjson
from airbyte_cdk.models import ConnectorSpecificationSerializer
from airbyte_cdk.test.standard_tests._spec_lint import assert_spec_is_valid

from destination_scarf.config import parse_config
from destination_scarf.options import OPTIONS, spec_json
from support import ROOT, messages_of, run_connector


@functools.cache
def printed_spec() -> dict:
    result = run_connector(["spec"])
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    specs = [m for m in messages_of(result.stdout) if m["type"] == "SPEC"]
    assert len(specs) == 1
    return specs[0]["spec"]


def test_top_level_spec_json_is_what_spec_prints():
    assert printed_spec() == orjson.loads((ROOT / "spec.json").read_bytes())


def test_spec_passes_the_cdk_spec_lint_and_marks_the_token_secret():
    spec = printed_spec()
    assert_spec_is_valid(ConnectorSpecificationSerializer.load(spec), connector_name="destination-scarf")
    properties = spec["connectionSpecification"]["properties"]
    assert properties["api_token"]["airbyte_secret"] is True
    assert spec["supported_destination_sync_modes"] == ["append", "append_dedup"]


def test_spec_json_is_what_the_options_table_generates():
    assert (ROOT / "destination_scarf" / "spec.json").read_text() == spec_json(), "run make spec"


def test_spec_declares_every_option_the_config_parser_reads():
    properties = set(orjson.loads((ROOT / "spec.json").read_bytes())["connectionSpecification"]["properties"])
    assert properties == {
        "api_token", "owner", "api_url", "target", "field_mappings", "custom_variables", "unique_id_mode",
        "event_time_window_days", "on_invalid_record", "rejected_records_path", "on_failed_events",
        "max_concurrent_imports", "batch_max_events", "batch_max_megabytes", "batch_max_age_seconds",
        "import_timeout_minutes", "slot_wait_minutes", "upload_retry_minutes", "object_storage_config",
        "status_polling",
    }
    assert properties == {option.key for option in OPTIONS}


def test_every_option_is_read_by_the_parser():
    """Each option, set to a value other than its default, changes what parse_config returns."""
    base = {"api_token": "t", "owner": "o"}
    changed = {
        "api_url": "http://127.0.0.1:9", "target": {"target_type": "package",
                                                    "package_id": "11111111-1111-4111-8111-111111111111"},
        "field_mappings": [{"scarf_field": "$type", "constant": "download"}],
        "custom_variables": {"mode": "none"}, "unique_id_mode": "off", "event_time_window_days": 3,
        "on_invalid_record": "skip", "rejected_records_path": "/tmp/r.ndjson", "on_failed_events": "warn",
        "object_storage_config": {"storage_type": "S3", "s3_bucket_name": "b", "s3_bucket_region": "us-east-1",
                                  "bucket_path": "p"},
        "max_concurrent_imports": 2, "batch_max_events": 10, "batch_max_megabytes": 2, "batch_max_age_seconds": 9,
        "import_timeout_minutes": 3, "slot_wait_minutes": 4, "upload_retry_minutes": 5, "status_polling": "by_id",
    }
    assert set(changed) | set(base) == {option.key for option in OPTIONS}
    default = parse_config(base)
    for key, value in changed.items():
        assert parse_config({**base, key: value}) != default, f"{key} is declared but parse_config ignores it"


def test_hidden_options_are_the_pipeline_ones():
    """Hidden in the UI: the pipeline options, and the polling escape hatch for an account whose list misbehaves."""
    properties = printed_spec()["connectionSpecification"]["properties"]
    assert {key for key, schema in properties.items() if schema.get("airbyte_hidden")} == {
        "api_url", "rejected_records_path", "status_polling"}
