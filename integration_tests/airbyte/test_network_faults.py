"""Every command against every TLS and network fault, as subprocesses through the real console entry point.

Each command ends cleanly and names the cause: `check` with a FAILED CONNECTION_STATUS, `write` with a TRACE as
its last line (failure_type config_error for what the user must fix), the operator commands (`imports`,
`import-log`, `abort`) with one `error:` line on stderr and exit code 1; `spec`, `discover` and `preview`
make no call, so no fault reaches them. Never "Something went wrong", never a traceback.

The servers are real and started here: the HTTPS emulator with the session's bad certificates, the plain
emulator (https:// to a plain port), a closed port, an `.invalid` host name, the emulator's reset, handshake and
silence faults, and the CONNECT proxy. The runs are started together by one module fixture (each is a Python
start-up; those that retry an outage wait out the command's own backoff), and each test reads its own run.
Nothing is timed: the retry budgets are the commands' own, and the subprocess timeout is a hang guard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from destination_scarf.airbyte.protocol import UNEXPECTED, trace_message
from destination_scarf.config import parse_config
from destination_scarf.errors import ScarfError
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer
from scarf_emulator import ScarfEmulator
from support import (
    FAST_RETRY,
    FAST_TUNING,
    OWNER,
    PACKAGE,
    TOKEN,
    catalog,
    download,
    lines,
    make_config,
    messages_of,
    new_emulator,
    new_plain_emulator,
    record,
    run_connector,
    run_with_hang_guard,
    stream_state,
    wait_for,
    write_json,
)
from sync_helpers import Connector
from tls_support import Pki

UNKNOWN_ID = "99999999-9999-4999-8999-999999999999"
UNRESOLVABLE = "scarf-api.destination-scarf.invalid"
TRACEBACK = "Traceback (most recent call last)"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
#: What every run removes from the environment it inherits: each scenario sets the proxy it means.
NO_PROXY_ENV: dict[str, str | None] = {name: None for base in PROXY_VARIABLES for name in (base, base.lower())}
#: How many records a `write` run sends (it should never get to read them when the fault is the user's).
RECORDS = 5


# ----- the faults -------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a run's config points, and what the run may change in its environment."""

    api_url: str
    emulator: ScarfEmulator | None = None
    env: dict[str, str | None] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.api_url.split("://", 1)[1]


def closed_port() -> int:
    """A loopback port nobody listens on: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _started(stack: contextlib.ExitStack, emu: ScarfEmulator) -> ScarfEmulator:
    emu.start()
    stack.callback(emu.stop)
    return emu


def _https(certificate: str) -> Callable[[contextlib.ExitStack, Pki, Path], Target]:
    def make(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
        emu = _started(stack, new_emulator(tls=getattr(pki, certificate)()))
        return Target(emu.url, emu)
    return make


def _plain_port(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
    emu = _started(stack, new_plain_emulator())  # plain HTTP on purpose: the fault is https:// to a plain port
    return Target(emu.url.replace("http://", "https://"), emu)


def _missing_ca_bundle(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
    emu = _started(stack, new_emulator())
    return Target(emu.url, emu, env={"REQUESTS_CA_BUNDLE": str(folder / "no-such-ca-bundle.pem")})


def _refused(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
    return Target(f"https://127.0.0.1:{closed_port()}")


def _dns(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
    return Target(f"https://{UNRESOLVABLE}")


def _with_fault(knob: str) -> Callable[[contextlib.ExitStack, Pki, Path], Target]:
    def make(stack: contextlib.ExitStack, pki: Pki, folder: Path) -> Target:
        emu = _started(stack, new_emulator())
        getattr(emu, knob)(10_000)  # every connection, for the whole run
        stack.callback(emu.release_silenced)
        return Target(emu.url, emu)
    return make


@dataclass(frozen=True)
class Fault:
    make: Callable[[contextlib.ExitStack, Pki, Path], Target]
    #: What the message must say (formatted with the target's host), and whether it is the user's to fix.
    names: tuple[str, ...]
    users_to_fix: bool


TRUST_FIX = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "api_url")
FAULTS: dict[str, Fault] = {
    "untrusted CA": Fault(_https("untrusted"), ("TLS certificate of {host} was not accepted",
                                                "unable to get local issuer certificate", *TRUST_FIX), True),
    "wrong host": Fault(_https("wrong_host"), ("TLS certificate of {host} was not accepted", "IP address mismatch",
                                               *TRUST_FIX), True),
    "expired": Fault(_https("expired"), ("TLS certificate of {host} was not accepted", "certificate has expired",
                                         *TRUST_FIX), True),
    "https to a plain port": Fault(_plain_port, ("{host} does not speak TLS", "api_url"), True),
    "missing CA bundle": Fault(_missing_ca_bundle, ("REQUESTS_CA_BUNDLE names", "which does not exist"), True),
    "refused": Fault(_refused, ("the connection to {host} was refused",), False),
    "DNS": Fault(_dns, ("the host name {host} could not be resolved (DNS)",), False),
    "reset": Fault(_with_fault("tls_reset_next"), ("the connection to {host} was reset",), False),
    "TLS cut off": Fault(_with_fault("tls_eof_next"), ("the TLS connection to {host} failed",), False),
    "no answer": Fault(_with_fault("silence_next"), ("answer within",), False),
}
USERS_TO_FIX = [name for name, fault in FAULTS.items() if fault.users_to_fix]
OPERATOR_COMMANDS = ("imports", "import-log", "abort")
#: Outages an operator command retries with its default policy (seconds of backoff): one per command, since their
#: handling is the same; a silent server is left to the client's tests (an operator command waits 60 s for it).
OPERATOR_OUTAGES = {"imports": "refused", "import-log": "DNS", "abort": "reset"}


# ----- the runs ---------------------------------------------------------------------------------------


@dataclass
class Run:
    command: str
    fault: str
    target: Target
    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The Airbyte messages on stdout (spec, check, discover, write); preview and the operator commands print
        text, so none."""
        if self.command not in ("spec", "check", "discover", "write"):
            return []
        return messages_of(self.stdout.encode())

    @property
    def logs(self) -> list[str]:
        return [m["log"]["message"] for m in self.messages if m["type"] == "LOG"]

    def names(self) -> list[str]:
        return [part.format(host=self.target.host) for part in FAULTS[self.fault].names]

    def assert_clean(self) -> None:
        """No traceback, no "Something went wrong", no token, anywhere in what the process printed."""
        everything = self.stdout + self.stderr
        assert TRACEBACK not in self.stderr and TRACEBACK not in "\n".join(self.logs), everything[-3000:]
        assert UNEXPECTED not in everything, everything[-3000:]
        assert TOKEN not in everything


def config_for(target: Target) -> dict[str, Any]:
    return {"api_token": TOKEN, "owner": OWNER, "api_url": target.api_url,
            "target": {"target_type": "package", "package_id": PACKAGE}}


def argv(command: str, config: str, raw_catalog: str) -> list[str]:
    if command in ("check", "discover", "imports"):
        return [command, "--config", config]
    if command in ("write", "preview"):
        return [command, "--config", config, "--catalog", raw_catalog]
    if command == "spec":
        return ["spec"]
    return [command, "--config", config, UNKNOWN_ID]


def records_input() -> bytes:
    return b"".join(lines([record("downloads", download(n)) for n in range(RECORDS)] + [stream_state("downloads", 1)]))


def run(command: str, fault: str, target: Target, folder: Path, env: dict[str, str | None] | None = None) -> Run:
    name = re.sub(r"\W+", "-", f"{command}-{fault}")
    config = write_json(folder / f"{name}.json", config_for(target))
    raw_catalog = write_json(folder / f"{name}-catalog.json", catalog("downloads"))
    done = run_connector(argv(command, config, raw_catalog), stdin=records_input(), timeout=120,  # a hang guard
                         env={**NO_PROXY_ENV, **target.env, **(env or {})})
    return Run(command, fault, target, done.returncode, done.stdout.decode("utf-8", "replace"),
               done.stderr.decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def runs(pki, tmp_path_factory) -> Iterator[dict[tuple[str, str], Run]]:
    folder = tmp_path_factory.mktemp("network-faults")
    planned = list(OPERATOR_OUTAGES.items())  # the longest first
    planned += [("check", fault) for fault in FAULTS]
    planned += [(command, fault) for command in ("write", *OPERATOR_COMMANDS) for fault in USERS_TO_FIX]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=6) as pool:
        futures = {(command, fault): pool.submit(run, command, fault, FAULTS[fault].make(stack, pki, folder), folder)
                   for command, fault in planned}
        yield {key: future.result() for key, future in futures.items()}


# ----- check ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(FAULTS))
def test_check_fails_naming_the_cause(runs, fault):
    result = runs["check", fault]
    statuses = [m for m in result.messages if m["type"] == "CONNECTION_STATUS"]
    assert result.returncode == 0 and len(statuses) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    status = statuses[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    for part in result.names():
        assert part in status["message"], status["message"]
    retries = [text for text in result.logs if re.search(r"; retry \d+ in ", text)]
    if FAULTS[fault].users_to_fix:
        assert retries == [], "retrying cannot fix it"
    else:  # retried while check's budget lasted (a silent server's one attempt can use all of it)
        assert re.search(r"after \d+ attempt\(s\)", status["message"]), status["message"]
        assert all(result.names()[0] in text for text in retries), retries
        assert retries or fault == "no answer", status["message"]
    result.assert_clean()
    if result.target.emulator is not None and fault != "no answer":
        assert result.target.emulator.requests == []


# ----- write ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", USERS_TO_FIX)
def test_write_ends_with_a_config_error_trace_naming_the_cause(runs, fault):
    result = runs["write", fault]
    assert result.returncode == 1
    last = result.messages[-1]
    assert last["type"] == "TRACE", result.stdout[-3000:]
    error = last["trace"]["error"]
    assert error["failure_type"] == "config_error"
    for part in result.names():
        assert part in error["message"], error["message"]
    assert [m for m in result.messages if m["type"] == "STATE"] == []
    assert not any(re.search(r"; retry \d+ in ", text) for text in result.logs)
    result.assert_clean()
    if result.target.emulator is not None:
        assert result.target.emulator.requests == []


def test_write_goes_through_an_https_proxy_and_delivers_every_event(emulator, connect_proxy, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator, batch_max_events=20))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    messages = [record("downloads", download(n)) for n in range(100)] + [stream_state("downloads", 100)]
    done = run_connector(["write", "--config", config, "--catalog", raw_catalog], stdin=b"".join(lines(messages)),
                         env={**NO_PROXY_ENV, "HTTPS_PROXY": connect_proxy.url})

    assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]
    assert [m["type"] for m in messages_of(done.stdout) if m["type"] == "STATE"] == ["STATE"]
    assert emulator.event_count(OWNER) == 100 and len(emulator.imports(OWNER)) == 5
    host = emulator.url.split("://", 1)[1]
    assert connect_proxy.tunnels >= 1 and set(connect_proxy.targets) == {f"CONNECT {host}"}
    assert len(emulator.requests) >= 1 + 5 + 5  # the pre-flight read, the uploads and their polls, at the least
    wait_for(lambda: connect_proxy.open_connections == 0, "the tunnels to end with the connector")


def test_write_rides_out_handshakes_cut_off_and_names_them_in_its_logs(emulator, tmp_path):
    emulator.tls_reset_next(1)
    emulator.tls_eof_next(1)
    config = write_json(tmp_path / "config.json", make_config(emulator))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    done = run_connector(["write", "--config", config, "--catalog", raw_catalog], stdin=records_input())

    assert done.returncode == 0, done.stdout.decode()[-3000:]
    assert emulator.pending_faults() == [] and emulator.event_count(OWNER) == RECORDS
    logs = [m["log"]["message"] for m in messages_of(done.stdout) if m["type"] == "LOG"]
    retries = [text for text in logs if re.search(r"; retry \d+ in ", text)]
    assert len(retries) == 2 and "was reset" in retries[0] and "TLS connection" in retries[1], retries


def test_write_against_a_refused_port_names_the_cause_and_leaves_on_sigterm_with_a_trace(tmp_path, monkeypatch):
    """Its outage budget is minutes (the sync rides an outage out), so the run is ended by the platform's signal
    once the connector has said why it retries; it leaves by itself, with a TRACE and no traceback."""
    for name in NO_PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    target = Target(f"https://127.0.0.1:{closed_port()}")
    connector = Connector(tmp_path, config_for(target), catalog("downloads"))
    try:
        connector.send([record("downloads", download(n)) for n in range(RECORDS)])
        wait_for(lambda: any(f"the connection to {target.host} was refused" in (m.get("log") or {}).get("message", "")
                             for m in connector.messages), "a retry naming the refused connection")
        connector.proc.send_signal(signal.SIGTERM)
        code = run_with_hang_guard(connector.finish, "the connector's exit after SIGTERM")
    finally:
        connector.kill()
    assert code == 1
    last = connector.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["error"]["failure_type"] == "transient_error"
    assert "cancelled" in last["trace"]["error"]["message"]
    assert TRACEBACK not in connector.stderr.decode() and UNEXPECTED.encode() not in connector.stderr


@pytest.mark.parametrize("fault", ["refused", "reset", "untrusted CA", "https to a plain port"])
def test_a_write_whose_uploads_fail_ends_with_a_trace_naming_the_cause(fault, tmp_path, pki):
    """The writer itself (no pre-flight call), to its end, in-process with fast retries and a short upload budget:
    its final error as its TRACE shows it. What the user must fix stops it at the first upload."""
    with contextlib.ExitStack() as stack:
        target = FAULTS[fault].make(stack, pki, tmp_path)
        config = dataclasses.replace(parse_config({**config_for(target), "batch_max_events": 50}),
                                     upload_retry_seconds=0.5)
        sleeps: list[float] = []
        client = ScarfClient(api_url=target.api_url, api_token=TOKEN, owner=OWNER, retry=FAST_RETRY,
                             sleep=sleeps.append)
        writer = Writer(config=config, streams=parse_catalog(catalog("downloads")), client=client, tuning=FAST_TUNING)
        messages = [record("downloads", download(n)) for n in range(RECORDS)] + [stream_state("downloads", 1)]
        with client, pytest.raises(ScarfError) as caught:
            run_with_hang_guard(lambda: list(writer.write(lines(messages))), "a write to a server that fails")
    trace = trace_message(caught.value)["trace"]["error"]
    assert trace["failure_type"] == ("config_error" if FAULTS[fault].users_to_fix else "transient_error")
    for part in FAULTS[fault].names:
        assert part.format(host=target.host) in trace["message"], trace["message"]
    if FAULTS[fault].users_to_fix:
        assert sleeps == []


# ----- the operator commands --------------------------------------------------------------------------


@pytest.mark.parametrize("fault", USERS_TO_FIX)
@pytest.mark.parametrize("command", OPERATOR_COMMANDS)
def test_an_operator_command_prints_one_error_line_naming_the_cause(runs, command, fault):
    result = runs[command, fault]
    assert_one_error_line(result)
    assert not any(re.search(r"; retry \d+ in ", line) for line in result.stderr.splitlines())


@pytest.mark.parametrize(("command", "fault"), list(OPERATOR_OUTAGES.items()))
def test_an_operator_command_retries_an_outage_then_prints_one_error_line_naming_it(runs, command, fault):
    result = runs[command, fault]
    assert_one_error_line(result)
    assert re.search(r"after \d+ attempt\(s\)", result.stderr)
    retries = [line for line in result.stderr.splitlines() if re.search(r"; retry \d+ in ", line)]
    assert retries and all(result.names()[0] in line for line in retries), retries


def assert_one_error_line(result: Run) -> None:
    assert result.returncode == 1 and result.stdout == "", result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr[-3000:]
    for part in result.names():
        assert part in errors[0], errors[0]
    result.assert_clean()
    if result.target.emulator is not None and result.fault != "reset":
        assert result.target.emulator.requests == []


# ----- the commands that make no call -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["spec", "discover", "preview"])
def test_commands_that_make_no_call_are_untouched_by_any_fault(command, start_https_emulator, pki, connect_proxy,
                                                               tmp_path):
    """api_url at a server with an untrusted certificate, HTTPS_PROXY at a proxy that counts its tunnels, and a CA
    bundle variable naming a file that does not exist: none of it matters to a command that calls nobody."""
    emu = start_https_emulator(pki.untrusted())
    target = Target(emu.url, emu, env={"HTTPS_PROXY": connect_proxy.url,
                                       "REQUESTS_CA_BUNDLE": str(tmp_path / "no-such-ca-bundle.pem")})
    result = run(command, "untrusted CA", target, tmp_path)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    if command == "preview":
        assert f"Previewed {RECORDS} records" in result.stdout and "Nothing was sent to Scarf" in result.stdout
    else:
        expected = {"spec": "SPEC", "discover": "DESTINATION_CATALOG"}[command]
        assert [m["type"] for m in result.messages] == [expected]
    assert result.stderr == ""
    assert (connect_proxy.tunnels, connect_proxy.forwarded, emu.requests) == (0, 0, [])
    result.assert_clean()
