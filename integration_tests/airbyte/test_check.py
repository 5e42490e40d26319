"""`check` through the real console entry point (a subprocess, as Airbyte runs it), and once in-process.

Each scenario gets its own emulator. The subprocess runs are started together by one module fixture
(a Python start-up with the CDK costs about a second and a half), and each test then asserts on its
scenario's CONNECTION_STATUS, output and the requests its emulator saw.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from airbyte_cdk.models import Status

from destination_scarf import DestinationScarf
from destination_scarf.airbyte.check import CHECK_RETRY
from integration_tests.conftest import (
    OTHER_TOKEN,
    OWNER,
    PACKAGE,
    PIXEL,
    TOKEN,
    make_config,
    messages_of,
    new_emulator,
    new_plain_emulator,
    run_connector,
    stated_attempts,
    write_json,
)
from scarf_emulator import ScarfEmulator

UNKNOWN_ID = "99999999-9999-4999-8999-999999999999"
WRONG_TOKEN = "wrong-token-7d2e91c4"
#: Airbyte expects `check` to answer while the user waits in the UI.
UNREACHABLE_LIMIT_SECONDS = 15


def closed_port() -> int:
    """A loopback port nobody listens on: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class CheckRun:
    emulator: ScarfEmulator
    config: dict[str, Any]
    status: str
    message: str
    output: str  # everything the process printed, stdout and stderr
    returncode: int


def run_check_command(emu: ScarfEmulator, config: dict[str, Any], config_path: Path) -> CheckRun:
    write_json(config_path, config)
    done = run_connector(["check", "--config", str(config_path)], timeout=60)  # the timeout: a hang guard only
    statuses = [m for m in messages_of(done.stdout) if m.get("type") == "CONNECTION_STATUS"]
    assert len(statuses) == 1, done.stdout.decode() + done.stderr.decode()
    status = statuses[0]["connectionStatus"]
    return CheckRun(emu, config, status["status"], status.get("message") or "",
                    (done.stdout + done.stderr).decode("utf-8", "replace"), done.returncode)


def _bad_target(kind: str, key: str) -> Callable[[ScarfEmulator], dict[str, Any]]:
    return lambda emu: make_config(emu, target={"target_type": kind, key: UNKNOWN_ID})


def _without_token(emu: ScarfEmulator) -> dict[str, Any]:
    config = make_config(emu)
    del config["api_token"]
    return config


#: name -> (prepare the emulator, build the config)
SCENARIOS: dict[str, tuple[Callable[[ScarfEmulator], Any], Callable[[ScarfEmulator], dict[str, Any]]]] = {
    "good-multi": (lambda emu: None, lambda emu: make_config(emu)),
    "good-package": (lambda emu: None,
                     lambda emu: make_config(emu, target={"target_type": "package", "package_id": PACKAGE})),
    "good-pixel": (lambda emu: None,
                   lambda emu: make_config(emu, target={"target_type": "tracking_pixel", "tracking_pixel_id": PIXEL})),
    "slots-busy": (lambda emu: emu.hold_slots(OWNER, 15),
                   lambda emu: make_config(emu, target={"target_type": "package", "package_id": PACKAGE})),
    "wrong-token": (lambda emu: None, lambda emu: make_config(emu, api_token=WRONG_TOKEN)),
    "no-access": (lambda emu: None, lambda emu: make_config(emu, api_token=OTHER_TOKEN)),
    "unknown-owner": (lambda emu: None, lambda emu: make_config(emu, owner="nobody-here")),
    "unknown-package": (lambda emu: None, _bad_target("package", "package_id")),
    "unknown-pixel": (lambda emu: None, _bad_target("tracking_pixel", "tracking_pixel_id")),
    "unreachable": (lambda emu: None, lambda emu: make_config(emu, api_url=f"http://127.0.0.1:{closed_port()}")),
    "package-not-uuid": (lambda emu: None,
                         lambda emu: make_config(emu, target={"target_type": "package", "package_id": "my-package"})),
    "missing-token": (lambda emu: None, _without_token),
    # A config saved by another version: a key this one does not know is ignored with a warning. A typo is refused.
    "other-version-key": (lambda emu: None, lambda emu: make_config(emu, status_polling_seconds=5)),
    "typo-key": (lambda emu: None, lambda emu: make_config(emu, field_mapping=[])),
}


@pytest.fixture(scope="module")
def check_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    prepared = []
    for name, (prepare, build) in SCENARIOS.items():
        emu = new_emulator()
        emu.start()
        prepare(emu)
        prepared.append((name, emu, build(emu), folder / f"{name}.json"))
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(run_check_command, emu, config, path) for name, emu, config, path in prepared}
            yield {name: future.result() for name, future in futures.items()}
    finally:
        for _, emu, _, _ in prepared:
            emu.stop()


# ----- success ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario, artifact_path",
    [
        ("good-multi", None),
        ("good-package", f"/v2/packages/{OWNER}/{PACKAGE}"),
        ("good-pixel", f"/v2/tracking-pixels/{OWNER}/{PIXEL}"),
    ],
)
def test_check_succeeds_for_a_good_config(check_runs, scenario, artifact_path):
    run = check_runs[scenario]
    assert run.returncode == 0
    assert run.status == "SUCCEEDED", run.message
    assert "busy" not in run.message
    seen = run.emulator.requests
    # It exercised token and owner (the imports list) and the target, and only read.
    assert any(r.path == f"/v2/imports/{OWNER}" and r.status == 200 for r in seen)
    if artifact_path:
        assert [r.status for r in seen if r.path == artifact_path] == [200]
    assert all(r.method == "GET" for r in seen)
    assert run.emulator.imports(OWNER) == []
    assert TOKEN not in run.output


def test_check_accepts_a_key_of_another_version_and_warns_about_it(check_runs):
    run = check_runs["other-version-key"]
    assert (run.returncode, run.status) == (0, "SUCCEEDED"), run.message
    warnings = [m["log"]["message"] for m in messages_of(run.output.encode()) if m.get("type") == "LOG"
                and m["log"]["level"] == "WARN"]
    assert len(warnings) == 1 and warnings[0].startswith("Ignoring 'status_polling_seconds': it is not an option")


def test_check_succeeds_with_all_slots_busy_and_says_so(check_runs):
    run = check_runs["slots-busy"]
    assert run.status == "SUCCEEDED"
    assert "busy" in run.message and "15" in run.message
    # Still read-only: the 15 held imports are all there is.
    assert len(run.emulator.imports(OWNER)) == 15
    assert all(r.method == "GET" for r in run.emulator.requests)
    assert TOKEN not in run.output


# ----- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario, must_name",
    [
        ("wrong-token", ["token", f"'{OWNER}'"]),
        ("no-access", ["token", f"'{OWNER}'"]),
        ("unknown-owner", ["nobody-here", "owner"]),
        ("unknown-package", [UNKNOWN_ID, "target.package_id"]),
        ("unknown-pixel", [UNKNOWN_ID, "target.tracking_pixel_id"]),
        ("unreachable", ["could not reach Scarf", "http://127.0.0.1:"]),
        ("package-not-uuid", ["target.package_id", "UUID"]),
        ("missing-token", ["api_token"]),
        ("typo-key", ["unknown option 'field_mapping' (did you mean field_mappings?)"]),
    ],
)
def test_check_fails_with_a_message_that_says_what_to_fix(check_runs, scenario, must_name):
    run = check_runs[scenario]
    assert run.returncode == 0  # a failed check is an answer, not a crash
    assert run.status == "FAILED"
    for fragment in must_name:
        assert fragment.lower() in run.message.lower(), run.message
    if scenario == "unreachable":
        assert run.config["api_url"] in run.message
    assert "Traceback" not in run.message
    assert run.emulator.imports(OWNER) == []


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_check_never_prints_the_token(check_runs, scenario):
    run = check_runs[scenario]
    token = run.config.get("api_token")
    for secret in {TOKEN, token} - {None}:
        assert secret not in run.output
        assert secret not in run.message


def test_check_gives_up_on_an_unreachable_api_within_its_own_bounds(check_runs):
    """Not timed: check's answer states how many attempts it made over how long, and both are within
    CHECK_RETRY's bounds, whose time budget fits what the UI waits for."""
    run = check_runs["unreachable"]
    assert run.status == "FAILED"
    attempts, seconds = stated_attempts(run.message)
    assert CHECK_RETRY.max_attempts is not None and 1 <= attempts <= CHECK_RETRY.max_attempts, run.message
    assert seconds <= CHECK_RETRY.max_total_seconds <= UNREACHABLE_LIMIT_SECONDS, run.message
    assert run.emulator.requests == []


@pytest.mark.parametrize("scenario", ["wrong-token", "no-access", "unknown-owner", "unknown-package"])
def test_check_does_not_retry_answers_that_retrying_cannot_fix(check_runs, scenario):
    statuses = [r.status for r in check_runs[scenario].emulator.requests]
    assert len(statuses) == len({r.path for r in check_runs[scenario].emulator.requests})
    assert statuses[-1] in (403, 404)


def test_check_not_uuid_package_id_message_names_the_field(check_runs):
    run = check_runs["package-not-uuid"]
    assert run.status == "FAILED"
    assert "package_id" in run.message


def test_plain_http_to_a_non_loopback_host_fails_on_config_without_any_network_call(tmp_path, monkeypatch):
    """Any HTTP request the connector made would go through the proxy below, i.e. into the emulator's request log.

    The emulator stands in for a plain-HTTP forward proxy here (it logs the absolute-form request an http://
    URL sends through a proxy), so it serves plain HTTP: that is what an http_proxy speaks."""
    with new_plain_emulator() as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        config = make_config(proxy, api_url="http://scarf.example.com")
        run = run_check_command(proxy, config, tmp_path / "config.json")
        assert run.status == "FAILED"
        assert "api_url" in run.message and "https" in run.message
        assert TOKEN not in run.output
        assert proxy.requests == []

        # Control: a request to that host through the same proxy settings does land in the log.
        requests.get("http://scarf.example.com/v2/imports/acme", proxies={"http": proxy.url}, timeout=10)
        assert [r.path for r in proxy.requests] == ["/v2/imports/acme"]
        assert os.environ["HTTP_PROXY"] == proxy.url


# ----- in-process -------------------------------------------------------------------------------------


def test_check_in_process(emulator, caplog):
    logger = logging.getLogger("test-check-in-process")
    destination = DestinationScarf()

    good = destination.check(logger, make_config(emulator, target={"target_type": "package", "package_id": PACKAGE}))
    assert good.status == Status.SUCCEEDED
    assert [r.path for r in emulator.requests] == [f"/v2/imports/{OWNER}", f"/v2/packages/{OWNER}/{PACKAGE}"]

    emulator.hold_slots(OWNER, 15)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        busy = destination.check(logger, make_config(emulator))
    assert busy.status == Status.SUCCEEDED and "busy" in busy.message
    assert any("busy" in r.getMessage() for r in caplog.records if r.name == logger.name)

    emulator.clear_requests()
    bad = destination.check(logger, make_config(emulator, target={"target_type": "package", "package_id": "nope"}))
    assert bad.status == Status.FAILED
    assert "target.package_id" in bad.message and TOKEN not in bad.message
    assert emulator.requests == []  # config problems are found before any request

    missing = destination.check(logger, make_config(emulator, api_token="  "))
    assert missing.status == Status.FAILED and "api_token" in missing.message
    assert emulator.requests == []
