"""The reader and `record.meta.changes`: a record whose source or platform nulled or truncated fields is marked;
every other record (no meta, an empty or malformed one) is a plain Record, as before."""

from __future__ import annotations

import orjson
import pytest

from destination_scarf.sync.catalog import StreamIndex, parse_catalog
from destination_scarf.sync.reader import InputReader, MarkedRecord, Record

CATALOG = {"streams": [{"stream": {"name": "downloads", "json_schema": {}, "supported_sync_modes": ["incremental"]},
                        "sync_mode": "incremental", "destination_sync_mode": "append"}]}
NULLED = {"field": "time", "change": "NULLED", "reason": "SOURCE_FIELD_SIZE_LIMITATION"}


def _read(*records: dict) -> list:
    reader = InputReader(index=StreamIndex(parse_catalog(CATALOG)))
    chunk = b"".join(orjson.dumps({"type": "RECORD", "record": {"stream": "downloads", "data": {"n": 1}, **r}})
                     + b"\n" for r in records)
    return list(reader.read(chunk)) + list(reader.end())


@pytest.mark.parametrize("extra", [{}, {"meta": None}, {"meta": {}}, {"meta": {"changes": []}},
                                   {"meta": {"changes": None}}, {"meta": "x"}, {"meta": {"changes": [7, {"x": 1}]}},
                                   {"meta": {"changes": [{"field": 3, "change": "NULLED"}]}}])
def test_a_record_without_usable_changes_is_a_plain_record(extra):
    [message] = _read(extra)
    assert type(message) is Record and message.data == {"n": 1}


def test_a_record_with_changes_is_marked_with_the_entries_that_name_a_field():
    truncated = {"field": "ua", "change": "TRUNCATED", "reason": "PLATFORM_FIELD_SIZE_LIMITATION"}
    [message] = _read({"meta": {"changes": [NULLED, "junk", truncated]}})
    assert type(message) is MarkedRecord and isinstance(message, Record)
    assert message.changes == [NULLED, truncated] and message.data == {"n": 1} and message.line_no == 1


def test_the_general_path_marks_records_too():
    """A record read off the fast path (here: after a byte-order mark) is marked the same way."""
    reader = InputReader(index=StreamIndex(parse_catalog(CATALOG)))
    line = b"\xef\xbb\xbf" + orjson.dumps({"type": "RECORD", "record": {"stream": "downloads", "data": {"n": 1},
                                                                        "meta": {"changes": [NULLED]}}})
    [message] = list(reader.read(line + b"\n"))
    assert type(message) is MarkedRecord and message.changes == [NULLED]
