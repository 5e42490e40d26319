"""What the sync log says once per stream at the start: here, that an `append` stream's primary key does not make
its ids."""

from __future__ import annotations

import datetime
import logging

import pytest

from destination_scarf.config import parse_config
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.sync_log import SyncLog
from destination_scarf.sync.writer import compile_mappers

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
KEY_WARNING = "is synced with Append, but it has a primary key"


def _stream(name: str, mode: str, *, configured_key=None, source_key=None) -> dict:
    stream: dict = {"name": name, "json_schema": {}, "supported_sync_modes": ["incremental"]}
    if source_key is not None:
        stream["source_defined_primary_key"] = source_key
    entry: dict = {"stream": stream, "sync_mode": "incremental", "destination_sync_mode": mode}
    if configured_key is not None:
        entry["primary_key"] = configured_key
    return entry


def _plan(caplog, streams: list[dict], **config) -> list[str]:
    raw = {"api_token": "token-12345678", "owner": "acme", "target": {"target_type": "multi_artifact"}, **config}
    parsed = parse_config(raw)
    infos = parse_catalog({"streams": streams})
    log = SyncLog(streams=infos, mappers=compile_mappers(parsed, infos, lambda: NOW), interval=30, clock=lambda: 0.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="airbyte"):
        log.plan()
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and KEY_WARNING in r.getMessage()]


@pytest.mark.parametrize("key", [{"configured_key": [["id"]]}, {"source_key": [["org"], ["request", "id"]]}])
def test_an_append_stream_with_a_primary_key_is_warned_about_once_naming_the_key_and_both_fixes(caplog, key):
    [warning] = _plan(caplog, [_stream("downloads", "append", **key)])
    assert warning.startswith("Stream 'downloads' is synced with Append, but it has a primary key (")
    assert ("(id)" in warning) if "configured_key" in key else ("(org, request.id)" in warning)
    assert "a row whose content changes becomes a new event" in warning  # what goes wrong
    assert "choose Append + Deduped for this stream" in warning  # the first fix
    assert "map $unique_id to the key field in field_mappings" in warning  # the second


def test_only_the_append_streams_with_a_key_are_named(caplog):
    warnings = _plan(caplog, [
        _stream("keyed", "append", configured_key=[["id"]]),
        _stream("deduped", "append_dedup", configured_key=[["id"]]),  # the key makes the ids: nothing to say
        _stream("keyless", "append"),
    ])
    assert [w.split("'")[1] for w in warnings] == ["keyed"]


def test_no_warning_when_the_user_mapped_unique_id_or_turned_ids_off(caplog):
    streams = [_stream("downloads", "append", configured_key=[["id"]])]
    mapped = [{"scarf_field": "$unique_id", "source_field": "id"}]
    assert _plan(caplog, streams, field_mappings=mapped) == []
    assert _plan(caplog, streams, unique_id_mode="off") == []
    # A mapping for another stream does not count.
    other = [{"scarf_field": "$unique_id", "source_field": "id", "stream": "uploads"}]
    assert len(_plan(caplog, streams, field_mappings=other)) == 1


def test_the_catalog_keeps_the_declared_key_whatever_the_mode_but_ids_use_it_only_under_dedup():
    [append, dedup] = parse_catalog({"streams": [_stream("a", "append", source_key=[["id"]]),
                                                 _stream("b", "append_dedup", source_key=[["id"]])]})
    assert (append.primary_key, append.declared_primary_key) == (None, [["id"]])
    assert (dedup.primary_key, dedup.declared_primary_key) == ([["id"]], [["id"]])
