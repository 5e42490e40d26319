"""Test support: a real Scarf emulator on loopback (HTTPS, as production Scarf), configs pointing at it, and Airbyte
message builders."""

from __future__ import annotations

import datetime
import itertools
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from packaging.utils import canonicalize_name

from destination_scarf.config import parse_config
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.polling import Cadence, PollPolicy
from destination_scarf.scarf.retry import RetryPolicy, SlotWaitPolicy
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer, WriterTuning
from scarf_emulator import ScarfEmulator

TOKEN = "test-token-5b7c0d"
OTHER_TOKEN = "someone-elses-token"
OWNER = "acme"
OTHER_OWNER = "globex"
PACKAGE = "11111111-1111-4111-8111-111111111111"
PACKAGE_2 = "22222222-2222-4222-8222-222222222222"
PIXEL = "33333333-3333-4333-8333-333333333333"
ROOT = Path(__file__).resolve().parent.parent

#: Retries that take milliseconds, so failure tests never wait on wall-clock backoff.
FAST_RETRY = RetryPolicy(max_attempts=5, backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
                         max_total_seconds=10, retry_after_max_seconds=0.2)
FAST_TUNING = WriterTuning(
    progress_interval_seconds=0.5,
    idle_tick_seconds=0.05,
    poll=PollPolicy(initial_seconds=0.01, age_fraction=0.1, max_seconds=0.1),
    cadence=Cadence(first_seconds=0.01, factor=2, floor_seconds=0.005, cap_seconds=0.1, late_fraction=0.05,
                    gather_seconds=0.005),
    slot_wait=SlotWaitPolicy(initial_seconds=0.02, factor=2, max_seconds=0.1),
)


#: The server context of the session's HTTPS emulators (a good certificate from the test CA), set once per
#: session by conftest.py's `https_by_default` fixture, which also makes the connector trust the test CA.
_session_tls: ssl.SSLContext | None = None


def serve_https_with(context: ssl.SSLContext | None) -> None:
    """Make `new_emulator()` serve HTTPS with `context` (conftest.py does this for the whole session)."""
    global _session_tls
    _session_tls = context


def new_emulator(**kwargs: Any) -> ScarfEmulator:
    """An emulator with the tests' accounts, serving HTTPS like production Scarf: with a certificate from the
    session's test CA, which the connector trusts through REQUESTS_CA_BUNDLE (set for the whole session, so a
    connector run as a subprocess trusts it too). `tls=` gives another server context (pki.expired(), say)."""
    if kwargs.get("tls") is None:
        if _session_tls is None:
            raise RuntimeError("the session's test CA is not set up: new_emulator() runs under the integration "
                               "tests' conftest.py (its https_by_default fixture)")
        kwargs["tls"] = _session_tls
    return _emulator(**kwargs)


def new_plain_emulator(**kwargs: Any) -> ScarfEmulator:
    """The same emulator on plain HTTP. Only for a test whose subject is plain HTTP: say why where it is used."""
    return _emulator(**kwargs)


def _emulator(**kwargs: Any) -> ScarfEmulator:
    return ScarfEmulator(
        tokens={TOKEN: {OWNER}, OTHER_TOKEN: {OTHER_OWNER}},
        packages={OWNER: [PACKAGE, PACKAGE_2], OTHER_OWNER: []},
        tracking_pixels={OWNER: [PIXEL]},
        **kwargs,
    )


def make_config(emu: ScarfEmulator, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "api_token": TOKEN,
        "owner": OWNER,
        "api_url": emu.url,
        "target": {"target_type": "multi_artifact"},
        "max_concurrent_imports": 3,
        "batch_max_events": 50,
    }
    config.update(overrides)
    return config


#: The package id of the CDK standard suite's "unknown package" scenario: no owner has it.
UNKNOWN_PACKAGE = "99999999-9999-4999-8999-999999999999"


def write_scenario_configs(secrets: Path, emu: ScarfEmulator) -> None:
    """The configs of the scenarios in acceptance-test-config.yml (the CDK's standard tests), pointing at `emu`,
    in `secrets/` (where `airbyte-cdk secrets fetch` would put real ones)."""
    secrets.mkdir(exist_ok=True)
    good = {"api_token": TOKEN, "owner": OWNER, "api_url": emu.url, "target": {"target_type": "multi_artifact"}}
    write_json(secrets / "config.json", good)
    write_json(secrets / "config_package.json", {**good, "target": {"target_type": "package", "package_id": PACKAGE}})
    write_json(secrets / "invalid_token_config.json", {**good, "api_token": "wrong-token"})
    write_json(secrets / "unknown_package_config.json",
               {**good, "target": {"target_type": "package", "package_id": UNKNOWN_PACKAGE}})


def now_iso(offset_seconds: float = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def catalog(*streams: str | tuple[str, str], sync_mode: str = "append", primary_key=None) -> dict[str, Any]:
    entries = []
    for stream in streams:
        namespace, name = stream if isinstance(stream, tuple) else (None, stream)
        entry: dict[str, Any] = {
            "stream": {"name": name, "json_schema": {"type": "object"}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": "incremental",
            "destination_sync_mode": sync_mode,
        }
        if namespace:
            entry["stream"]["namespace"] = namespace
        if primary_key:
            entry["primary_key"] = primary_key
        entries.append(entry)
    return {"streams": entries}


def record(stream: str, data: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"stream": stream, "data": data, "emitted_at": 1_700_000_000_000}
    if namespace:
        body["namespace"] = namespace
    return {"type": "RECORD", "record": body}


_state_ids = itertools.count(1)


def stream_state(stream: str, cursor: Any, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": stream}
    if namespace:
        descriptor["namespace"] = namespace
    return {"type": "STATE", "state": {
        "type": "STREAM",
        "stream": {"stream_descriptor": descriptor, "stream_state": {"cursor": cursor}},
        "sourceStats": {"recordCount": 1.0},
        "id": next(_state_ids),
        **extra,
    }}


def global_state(cursor: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "STATE", "state": {
        "type": "GLOBAL",
        "global": {"shared_state": {"cursor": cursor}, "stream_states": []},
        "id": next(_state_ids),
        **extra,
    }}


def download(n: int, *, package: str = PACKAGE, **extra: Any) -> dict[str, Any]:
    """A realistic downloads-table row; `n` makes it unique."""
    data = {
        "id": n,
        "time": now_iso(-n % 3600),
        "package": package,
        "remote_address": f"10.{n % 250}.{n // 250 % 250}.{n % 7 + 1}",
        "user_agent": "pip/24.0 CPython/3.12",
        "version": f"1.{n % 10}.0",
        "country": "NL",
    }
    data.update(extra)
    return data


def wait_for(predicate: Callable[[], Any], what: str = "condition", *, timeout: float = 20.0) -> Any:
    """Poll `predicate` until it returns something truthy (and return that); fail, never hang, after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


#: How long `run_with_hang_guard` lets a call run before the test calls it a hang. It is far above the duration
#: of anything guarded (seconds at most), so no slow or loaded machine reaches it.
HANG_GUARD_SECONDS = 60.0

T = TypeVar("T")


def run_with_hang_guard(call: Callable[[], T], what: str = "the call", *,
                        seconds: float = HANG_GUARD_SECONDS) -> T:
    """Run `call` in a daemon thread; return what it returns, or raise what it raises.

    A hang guard, not a speed assertion: no test here asserts how fast anything is. It is for a call whose
    point is that it ends by a bound of its own (a timeout, a deadline, a budget, a cancellation): if that
    bound were not enforced, the call would run for minutes or forever, and the test fails instead with
    "did not end: the bound was not enforced" after `seconds`, long after the bound the code states.
    How long the call did take is never looked at. (A call that hangs is left behind in its daemon thread.)
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as error:  # handed to the caller's thread as it was raised
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="hang-guarded call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"{what} did not end within {seconds:g} s: the bound was not enforced "
                             "(a hang guard, far above the expected duration)")
    returned, value = outcome[0]
    if not returned:
        raise value
    return value


def stated_attempts(message: str) -> tuple[int, float]:
    """The N and X of the client's "... after N attempt(s) over X s": what the code counted and measured."""
    match = re.search(r"after (\d+) attempt\(s\) over (\d+(?:\.\d+)?) s\b", message)
    assert match, f"the message does not say how many attempts were made over how long: {message}"
    return int(match.group(1)), float(match.group(2))


def lines(messages: Iterable[dict[str, Any] | bytes]) -> list[bytes]:
    return [m if isinstance(m, bytes) else orjson.dumps(m) + b"\n" for m in messages]


def fast_client(emu: ScarfEmulator, *, token: str = TOKEN, owner: str = OWNER, **kwargs: Any) -> ScarfClient:
    return ScarfClient(api_url=emu.url, api_token=token, owner=owner, retry=kwargs.pop("retry", FAST_RETRY), **kwargs)


def make_writer(emu: ScarfEmulator, raw_config: dict[str, Any], raw_catalog: dict[str, Any], **kwargs: Any) -> Writer:
    config = parse_config(raw_config)
    client = kwargs.pop("client", None) or fast_client(emu)
    return Writer(config=config, streams=parse_catalog(raw_catalog), client=client,
                  tuning=kwargs.pop("tuning", FAST_TUNING), **kwargs)


def run_write(emu: ScarfEmulator, raw_config: dict[str, Any], raw_catalog: dict[str, Any],
              messages: Iterable[dict[str, Any] | bytes], **kwargs: Any) -> list[dict[str, Any]]:
    """Run a whole write in-process; returns the echoed states."""
    writer = make_writer(emu, raw_config, raw_catalog, **kwargs)
    return list(writer.write(lines(messages)))


def connector_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from destination_scarf.airbyte.cli import run; run()", *args]


def run_connector(args: list[str], *, stdin: bytes = b"", timeout: float = 60,
                  env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point in a subprocess (as Airbyte or `docker run` would). `env` changes the
    environment it inherits (None removes a variable), for runs started side by side from threads."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env = {name: value for name, value in env.items() if value is not None}
    return subprocess.run(connector_command(*args), input=stdin, capture_output=True, timeout=timeout, env=env,
                          cwd=ROOT)


def messages_of(stdout: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.strip()]


def write_json(path: Path, data: Any) -> str:
    path.write_bytes(orjson.dumps(data))
    return str(path)


@dataclass(frozen=True)
class LockedPackage:
    version: str
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Lock:
    packages: dict[str, LockedPackage]  # by canonical name
    python_version: str  # the --python-version the lock was resolved for (from uv's header)


def parse_lock(path: Path) -> Lock:
    """A requirements lock as `make lock` writes it: `name==version \\` lines, each followed by hashes."""
    text = path.read_text()
    header = re.search(r"--python-version (\S+)", text)
    assert header, f"{path.name} does not say which Python it was resolved for"
    packages: dict[str, LockedPackage] = {}
    logical = re.sub(r"\\\n", " ", text)  # join the continuation lines
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):  # uv's header and its "# via" annotations
            continue
        spec, *options = line.split(" --")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", spec.strip())
        assert match, f"{path.name}: not an exact pin: {line[:120]}"
        hashes = tuple(option.removeprefix("hash=").strip() for option in options if option.startswith("hash="))
        assert len(hashes) == len(options), f"{path.name}: an option other than --hash: {line[:120]}"
        name = canonicalize_name(match.group(1))
        assert name not in packages, f"{path.name} pins {name} twice"
        packages[name] = LockedPackage(match.group(2), hashes)
    return Lock(packages, header.group(1))
