"""Where A's CPU goes: each stage of the per-record work timed on its own, in this process.

Every stage runs over the same benchmark records several times and the fastest pass counts (the
least disturbed by other load on the machine). The stages are the ones A cannot skip: parse the
input line, map the record into an encoded event ($time, fields, custom variables, $unique_id,
serialization), and gzip the event lines at the configured level. Their sum is a floor for A's
CPU per record; comparing it with B's total shows how far a CDK-speed target is from reach.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
from isal import isal_zlib

from bench import data
from bench.harness import OWNER, TOKEN

PASSES = 5
_CHUNK = 1 << 20


def _fastest(records: int, work: Callable[[], object]) -> float:
    """Microseconds of CPU per record of the fastest of PASSES runs of `work`."""
    best = float("inf")
    for _ in range(PASSES):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / records * 1e6


def stage_costs(input_path: Path, *, limit: int = 50_000) -> dict[str, float]:
    """CPU µs per record of each stage, on the first `limit` records of `input_path`."""
    from destination_scarf.config import parse_config

    config = parse_config(data.config("http://127.0.0.1:1", OWNER, TOKEN))
    mappers = data.mappers()
    with open(input_path, "rb") as lines:
        raw = [line for _, line in zip(range(limit), lines, strict=False)]
    messages = [orjson.loads(line) for line in raw]
    records = [(mappers[m["record"]["stream"]].encode, m["record"]["data"]) for m in messages if m["type"] == "RECORD"]
    encoded = b"".join(encode(record) for encode, record in records)
    chunks = [encoded[i:i + _CHUNK] for i in range(0, len(encoded), _CHUNK)]
    n = len(records)

    def parse() -> None:
        for line in raw:
            orjson.loads(line)

    def map_and_encode() -> None:
        for mapper in mappers.values():
            mapper.new_window()  # each pass is a fresh sync: no record repeats one of an earlier pass
        for encode, record in records:
            encode(record)

    def gzip() -> None:
        compressor = isal_zlib.compressobj(config.gzip_level, isal_zlib.DEFLATED, 31)
        for chunk in chunks:
            compressor.compress(chunk)
        compressor.flush()

    return {
        "parse": _fastest(len(raw), parse),
        "map_and_encode": _fastest(n, map_and_encode),
        "gzip": _fastest(n, gzip),
        "gzip_level": config.gzip_level,
        "event_bytes": len(encoded) / n,
    }
