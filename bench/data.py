"""Benchmark input: records of three streams (a downloads table and friends), a STATE every 10,000.

Two variants of the same record shape:

- "pessimistic" (the original data, unchanged): every record draws a uniformly random IPv4/IPv6 address,
  a time with microseconds within the last day, a random version and byte count. Close to incompressible,
  and every `$time` text is different.
- "realistic": what a download log looks like. Client addresses come from a pool of `REALISTIC_IPS`
  addresses and user agents from a pool of `REALISTIC_USER_AGENTS`, both drawn Zipf-distributed (exponent
  `ZIPF_S`: a few CI runners, mirrors and proxies make much of the traffic); times have second precision,
  within the last `REALISTIC_DAYS` days (inside Scarf's one-week window); `REALISTIC_PACKAGES` packages
  with skewed popularity, a handful of versions each (newest most downloaded) and one file size per
  version; the country belongs to the address, the installer to the user agent. Times are not sorted.

Two more, for the cost of record shapes: "one-shape" is the pessimistic data plus six optional keys that
every record carries; "4096-shapes" draws, for each record, which of twelve optional keys it carries (on
average six), so records come in 4,096 shapes (their key names, in order).

All are deterministic for a seed (times are relative to `now`). The first N records of a longer input are
exactly the input of N records (one generator, consumed in order), so `write_input` can write several
sizes in one pass.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
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

VARIANTS = ("pessimistic", "realistic")
SHAPE_VARIANTS = ("one-shape", "4096-shapes")
OPTIONAL_KEYS = tuple(f"opt{n:02d}" for n in range(12))
ZIPF_S = 1.2
REALISTIC_IPS = 3000
REALISTIC_USER_AGENTS = 300
REALISTIC_DAYS = 3
REALISTIC_PACKAGES = PACKAGES + ("c4d5e6f7-a8b9-4c0d-8e1f-2a3b4c5d6e7f",)
REALISTIC_PACKAGE_WEIGHTS = (0.55, 0.25, 0.15, 0.05)
#: Every package either variant uses, for the emulator.
ALL_PACKAGES = tuple(dict.fromkeys(PACKAGES + REALISTIC_PACKAGES))
_COUNTRIES = ("US", "DE", "IN", "BR", "NL", "JP", "GB", "FR", "CN", "CA")


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


def _pessimistic(rng: random.Random, now: datetime.datetime):
    """The original data: every value drawn afresh, uniformly."""
    for n in itertools.count(1):
        when = now - datetime.timedelta(seconds=rng.randrange(60, 86_000), microseconds=rng.randrange(10**6))
        yield {
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


def _zipf_cumulative(size: int, s: float = ZIPF_S) -> list[float]:
    """Cumulative weights of ranks 1..size under Zipf's law with exponent s (for bisect on a uniform draw)."""
    return list(itertools.accumulate(rank ** -s for rank in range(1, size + 1)))


def _user_agent_pool(rng: random.Random, size: int) -> list[tuple[str, str]]:
    """`size` distinct (user agent, installer name) pairs, in the shapes package managers send."""
    pool: dict[str, str] = {}
    while len(pool) < size:
        kind = rng.random()
        py = f"3.{rng.randrange(8, 14)}.{rng.randrange(12)}"
        if kind < 0.45:
            ua = (f'pip/{rng.randrange(20, 25)}.{rng.randrange(4)} {{"ci":{rng.choice(("null", "true"))},'
                  f'"cpu":"{rng.choice(("x86_64", "aarch64", "arm64"))}","implementation":{{"name":"CPython",'
                  f'"version":"{py}"}},"installer":{{"name":"pip"}},"system":{{"name":"{rng.choice(("Linux", "Darwin", "Windows"))}"}}}}')
            pool.setdefault(ua, "pip")
        elif kind < 0.6:
            pool.setdefault(f"uv/0.{rng.randrange(1, 10)}.{rng.randrange(30)} (CPython {py})", "uv")
        elif kind < 0.7:
            pool.setdefault(f"poetry/1.{rng.randrange(5, 9)}.{rng.randrange(5)} python/{py}", "poetry")
        elif kind < 0.8:
            pool.setdefault(f"npm/10.{rng.randrange(10)}.{rng.randrange(5)} node/v{rng.randrange(18, 23)}."
                            f"{rng.randrange(12)}.0 {rng.choice(('linux', 'darwin', 'win32'))} x64 workspaces/false", "npm")
        elif kind < 0.9:
            pool.setdefault(f"Docker-Client/{rng.randrange(20, 28)}.0.{rng.randrange(8)} (linux)", "docker")
        elif kind < 0.95:
            pool.setdefault(f"curl/8.{rng.randrange(10)}.{rng.randrange(2)}", "curl")
        else:
            pool.setdefault(f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                            f"Chrome/{rng.randrange(110, 132)}.0 Safari/537.36", "browser")
    return list(pool.items())


def _realistic(rng: random.Random, now: datetime.datetime):
    """Zipf-distributed clients and user agents, second-precision times, a few packages and versions."""
    clients = [(_ip(rng, n), rng.choice(_COUNTRIES), rng.random() < 0.15) for n in range(1, REALISTIC_IPS + 1)]
    agents = _user_agent_pool(rng, REALISTIC_USER_AGENTS)
    client_weights, agent_weights = _zipf_cumulative(len(clients)), _zipf_cumulative(len(agents))
    package_weights = list(itertools.accumulate(REALISTIC_PACKAGE_WEIGHTS))
    versions = {package: [(f"{major}.{minor}.0", rng.randrange(100_000, 20_000_000))
                          for major, minor in ((2, 4), (2, 3), (2, 2), (2, 1), (1, 9), (1, 8))]
                for package in REALISTIC_PACKAGES}
    version_weights = _zipf_cumulative(6, 1.0)
    base = now.replace(microsecond=0)
    window = REALISTIC_DAYS * 86_400
    random_ = rng.random
    for n in itertools.count(1):
        address, country, ci = clients[bisect.bisect(client_weights, random_() * client_weights[-1])]
        agent, installer = agents[bisect.bisect(agent_weights, random_() * agent_weights[-1])]
        package = REALISTIC_PACKAGES[bisect.bisect(package_weights, random_() * package_weights[-1])]
        version, size = versions[package][bisect.bisect(version_weights, random_() * version_weights[-1])]
        when = base - datetime.timedelta(seconds=rng.randrange(60, window))
        yield {
            "id": n,
            "created_at": when.isoformat().replace("+00:00", "Z"),
            "package": package,
            "remote_address": address,
            "user_agent": agent,
            "version": version,
            "type": "download",
            "country": country,
            "installer": {"name": installer, "ci": ci},
            "bytes": size,
        }


def _shaped(rng: random.Random, now: datetime.datetime, *, varied: bool):
    """The pessimistic records plus optional keys: six fixed ones, or a random subset of twelve per record."""
    for data in _pessimistic(rng, now):
        mask = rng.getrandbits(len(OPTIONAL_KEYS)) if varied else (1 << 6) - 1
        data.update({key: f"v{bit}" for bit, key in enumerate(OPTIONAL_KEYS) if mask >> bit & 1})
        yield data


def write_input(path: Path, records: int, *, seed: int = 42, variant: str = "pessimistic",
                also: dict[int, Path] | None = None, now: datetime.datetime | None = None) -> int:
    """Write `records` RECORD lines (and the states) to `path`; returns the number of STATE lines.

    `also` maps smaller sizes to more paths: each gets the first N records (and their states), the very
    input `write_input(that_path, N)` would write, in the same pass.
    """
    generators = {"pessimistic": _pessimistic, "realistic": _realistic,
                  "one-shape": lambda rng, now: _shaped(rng, now, varied=False),
                  "4096-shapes": lambda rng, now: _shaped(rng, now, varied=True)}
    if variant not in generators:
        raise ValueError(f"unknown variant {variant!r}; use one of {', '.join(generators)}")
    rng = random.Random(seed)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    generate = generators[variant]
    # The files are closed together below, so they are opened outside a with block.
    outputs = [(records, open(path, "wb"))] + [(n, open(p, "wb")) for n, p in sorted((also or {}).items())  # noqa: SIM115
                                               if n <= records]
    states = 0
    buffer: list[bytes] = []

    def flush(n: int) -> None:
        chunk = b"\n".join(buffer) + b"\n"
        for limit, out in outputs:
            if n <= limit:
                out.write(chunk)
        buffer.clear()

    try:
        for n, data in zip(range(1, records + 1), generate(rng, now), strict=False):
            buffer.append(orjson.dumps({"type": "RECORD", "record": {"stream": STREAMS[n % 3], "data": data,
                                                                     "emitted_at": 1_764_000_000_000}}))
            if n % STATE_EVERY == 0:
                states += 1
                buffer.append(orjson.dumps({"type": "STATE", "state": {"type": "GLOBAL", "id": states, "global": {
                    "shared_state": {"cursor": n}, "stream_states": []}, "sourceStats": {"recordCount": float(STATE_EVERY)}}}))
            if len(buffer) >= 5000 or any(n == limit for limit, _ in outputs[1:]):
                flush(n)
        if buffer:
            flush(records)
    finally:
        for _, out in outputs:
            out.close()
    return states


def states_for(records: int) -> int:
    """How many STATE lines an input of `records` records has."""
    return records // STATE_EVERY


def config(api_url: str, owner: str, token: str) -> dict:
    return {
        "api_token": token, "owner": owner, "api_url": api_url, "target": {"target_type": "multi_artifact"},
        "field_mappings": [{"scarf_field": "$time", "source_field": "created_at"}],
        "max_concurrent_imports": 4, "batch_max_events": 50_000,
    }


def mappers(now: datetime.datetime | None = None) -> dict:
    """The connector's compiled mapper for each benchmark stream, under the benchmark's config, with the table of
    package names a sync reads from the emulator (whose packages are named by their ids): the records carry
    UUIDs, so each pays the hot path's name lookup, as in a sync."""
    from destination_scarf.config import parse_config
    from destination_scarf.mapping import compile_mapper
    from destination_scarf.mapping.artifacts import Artifact, ArtifactNames
    from destination_scarf.sync.catalog import parse_catalog

    mapping = parse_config(config("http://127.0.0.1:1", "bench", "bench")).mapping
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    names = ArtifactNames(owner="bench", packages=[Artifact(p, p, "file") for p in ALL_PACKAGES])
    return {s.name: compile_mapper(config=mapping, stream=s.name, namespace=None, primary_key=None,
                                   now=lambda: moment, names=names)
            for s in parse_catalog(catalog())}
