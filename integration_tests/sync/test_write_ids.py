"""Ids that survive the user's choices, through `write` against the emulator: the same warehouse rows through two
paths (a JSON number on the direct path, decimal text through PyAirbyte's DuckDB cache) are one set of events."""

from __future__ import annotations

import pytest

from support import OWNER, PACKAGE, make_config, now_iso, record, run_write, stream_state
from sync_helpers import STREAM, WAIT_SECONDS

ROWS = 40


def _catalog(schema: dict, **entry) -> dict:
    return {"streams": [{"stream": {"name": STREAM, "json_schema": schema, "supported_sync_modes": ["incremental"]},
                         "sync_mode": "incremental", "destination_sync_mode": "append", **entry}]}


SCHEMA = {"type": "object", "properties": {
    "id": {"type": ["null", "integer"]}, "bytes": {"type": ["null", "number"]}, "time": {"type": "string"},
    "package": {"type": "string"}, "country": {"type": "string"},
}}


def _rows(form) -> list[dict]:
    """The same warehouse rows, with their numbers written as `form` writes them."""
    time = now_iso(-600)[:19] + "Z"
    return [record(STREAM, {"id": form(n), "bytes": form(n * 1000 + 0.5), "time": time, "package": PACKAGE,
                            "country": "NL"}) for n in range(1, ROWS + 1)] + [stream_state(STREAM, 1)]


def _direct(n):
    return n  # a JSON number, as a source sends it


def _duckdb_cache(n):
    return f"{n:.9f}"  # decimal text with the column's scale, as PyAirbyte's DuckDB cache hands numbers over


@pytest.mark.parametrize("setup", [{}, {"primary_key": [["id"]], "destination_sync_mode": "append_dedup"},
                                   {"field_mappings": [{"scarf_field": "$unique_id", "source_field": "id"}]}],
                         ids=["content ids", "primary key", "mapped id"])
def test_rows_through_the_direct_path_and_the_duckdb_cache_are_one_set_of_events(emulator, setup):
    mappings = setup.get("field_mappings")
    config = make_config(emulator, **({"field_mappings": mappings} if mappings else {}))
    catalog = _catalog(SCHEMA, **{k: v for k, v in setup.items() if k != "field_mappings"})
    assert len(run_write(emulator, config, catalog, _rows(_direct))) == 1
    assert len(run_write(emulator, config, catalog, _rows(_duckdb_cache))) == 1
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == ROWS  # not 2 x ROWS: the second sync overrode the first one's events
    # The events keep the values as they came: the last sync's text.
    assert {event["bytes"] for event in emulator.events(OWNER)} == {f"{n * 1000 + 0.5:.9f}" for n in
                                                                  range(1, ROWS + 1)}


def test_without_a_schema_the_two_paths_stay_two_sets_of_events(emulator):
    """What the schema buys: the same rows in other forms are other content (the behaviour before, documented)."""
    config = make_config(emulator)
    run_write(emulator, config, _catalog({}), _rows(_direct))
    run_write(emulator, config, _catalog({}), _rows(_duckdb_cache))
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 2 * ROWS
