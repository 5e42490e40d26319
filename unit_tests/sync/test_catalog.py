"""The configured catalog: which destination sync modes are accepted, and what a refusal tells the user."""

import pytest

from destination_scarf.errors import ScarfConfigError
from destination_scarf.sync.catalog import parse_catalog


def configured(name="access_log", **entry):
    return {"streams": [{"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                         "sync_mode": "full_refresh", **entry}]}


@pytest.mark.parametrize("mode, expected", [("append", "append"), ("append_dedup", "append_dedup"), (None, "append")])
def test_append_modes_are_accepted_and_a_missing_mode_means_append(mode, expected):
    entry = {"destination_sync_mode": mode} if mode else {}
    [stream] = parse_catalog(configured(**entry))
    assert stream.sync_mode == expected


# PyAirbyte's default write strategy sends `overwrite` for a stream with neither a primary key nor a
# cursor; the data-activation modes (`update`, `soft_delete`) are refused the same way.
@pytest.mark.parametrize("mode", ["overwrite", "update", "soft_delete"])
def test_a_mode_that_would_replace_or_delete_events_is_refused_naming_why_and_both_fixes(mode):
    with pytest.raises(ScarfConfigError) as caught:
        parse_catalog(configured(destination_sync_mode=mode))
    message = caught.value.message
    assert f"Stream 'access_log' asks for destination sync mode '{mode}'" in message
    assert "cannot be deleted or overwritten" in message  # why
    assert "Airbyte UI, choose the Append or Append + Deduped sync mode" in message  # the fix in Airbyte
    assert 'destination.write(source, write_strategy="append")' in message  # the fix under PyAirbyte
    assert caught.value.failure_type.value == "config_error"
