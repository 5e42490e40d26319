"""`spec`: the top-level spec.json is exactly what the connector prints, and it passes Airbyte's lint."""

from __future__ import annotations

import functools

import orjson
from airbyte_cdk.models import ConnectorSpecificationSerializer
from airbyte_cdk.test.standard_tests._spec_lint import assert_spec_is_valid

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


def test_spec_declares_every_option_the_config_parser_reads():
    properties = set(orjson.loads((ROOT / "spec.json").read_bytes())["connectionSpecification"]["properties"])
    assert properties == {
        "api_token", "owner", "api_url", "target", "field_mappings", "custom_variables", "unique_id_mode",
        "event_time_window_days", "on_invalid_record", "rejected_records_path", "on_failed_events",
        "max_concurrent_imports", "batch_max_events", "batch_max_megabytes", "batch_max_age_seconds",
        "import_timeout_minutes", "slot_wait_minutes", "upload_retry_minutes",
    }
    source = (ROOT / "destination_scarf" / "config.py").read_text()
    for key in properties:
        assert f'"{key}"' in source, f"{key} is declared in the spec but never read by config.py"
