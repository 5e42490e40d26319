"""Benchmark input: realistic records of three streams (a downloads table and friends), a STATE every 10,000."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import orjson

STREAMS = ("downloads", "docs_views", "container_pulls")
PACKAGES = (
    "0e3b7a52-7d3c-4c4e-9d6c-1f2a3b4c5d6e",
    "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
    "9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f",
)
USER_AGENTS = (
    "pip/24.0 {\"ci\":null,\"cpu\":\"x86_64\",\"implementation\":{\"name\":\"CPython\",\"version\":\"3.12.1\"}}",
    "npm/10.2.4 node/v20.11.0 linux x64 workspaces/false",
    "Docker-Client/24.0.7 (linux)",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
)
STATE_EVERY = 10_000


def catalog() -> dict:
    return {"streams": [
        {"stream": {"name": name, "json_schema": {"type": "object"}, "supported_sync_modes": ["incremental"]},
         "sync_mode": "incremental", "destination_sync_mode": "append"}
        for name in STREAMS
    ]}


def _ip(rng: random.Random, n: int) -> str:
    if n % 5 == 0:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def write_input(path: Path, records: int, *, seed: int = 42) -> int:
    """Write `records` RECORD lines (and the states) to `path`; returns the number of STATE lines."""
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.timezone.utc)
    states = 0
    with open(path, "wb") as out:
        buffer = []
        for n in range(1, records + 1):
            stream = STREAMS[n % 3]
            when = now - datetime.timedelta(seconds=rng.randrange(60, 86_000), microseconds=rng.randrange(10**6))
            data = {
                "id": n,
                "created_at": when.isoformat().replace("+00:00", "Z"),
                "package": PACKAGES[n % 3],
                "remote_address": _ip(rng, n),
                "user_agent": USER_AGENTS[n % len(USER_AGENTS)],
                "version": f"{rng.randrange(1, 4)}.{rng.randrange(20)}.{rng.randrange(10)}",
                "type": "download",
                "country": rng.choice(("US", "DE", "IN", "BR", "NL", "JP")),
                "installer": {"name": rng.choice(("pip", "uv", "poetry")), "ci": n % 7 == 0},
                "bytes": rng.randrange(10_000, 50_000_000),
            }
            buffer.append(orjson.dumps({"type": "RECORD", "record": {"stream": stream, "data": data,
                                                                     "emitted_at": 1_764_000_000_000}}))
            if n % STATE_EVERY == 0:
                states += 1
                buffer.append(orjson.dumps({"type": "STATE", "state": {"type": "GLOBAL", "id": states, "global": {
                    "shared_state": {"cursor": n}, "stream_states": []}, "sourceStats": {"recordCount": float(STATE_EVERY)}}}))
            if len(buffer) >= 5000:
                out.write(b"\n".join(buffer) + b"\n")
                buffer.clear()
        if buffer:
            out.write(b"\n".join(buffer) + b"\n")
    return states


def config(api_url: str, owner: str, token: str) -> dict:
    return {
        "api_token": token, "owner": owner, "api_url": api_url, "target": {"target_type": "multi_artifact"},
        "field_mappings": [{"scarf_field": "$time", "source_field": "created_at"}],
        "max_concurrent_imports": 4, "batch_max_events": 50_000,
    }


def mappers(now: datetime.datetime | None = None) -> dict:
    """The connector's compiled mapper for each benchmark stream, under the benchmark's config."""
    from destination_scarf.catalog import parse_catalog
    from destination_scarf.config import parse_config
    from destination_scarf.mapping import compile_mapper

    mapping = parse_config(config("http://127.0.0.1:1", "bench", "bench")).mapping
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    return {s.name: compile_mapper(config=mapping, stream=s.name, namespace=None, primary_key=None,
                                   now=lambda: moment)
            for s in parse_catalog(catalog())}
