"""The emulator's packages and tracking pixels: names and types, and the paged lists
(``GET /v2/packages/{owner}``, ``GET /v2/tracking-pixels/{owner}``) the connector reads to turn
the names in users' data into Scarf's ids.

Over real HTTP with ``requests`` only: these tests import neither ``destination_scarf`` nor
``support`` (which does), so they hold whatever shape the connector's package takes.
"""

from __future__ import annotations

import argparse
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scarf_emulator import ScarfEmulator
from scarf_emulator.__main__ import package_arg, pixel_arg

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 10.0

OWNER = "acme"
TOKEN = "artifacts-token"
OTHER_OWNER = "globex"
OTHER_TOKEN = "globex-token"


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def started(**config: Any) -> ScarfEmulator:
    config.setdefault("tokens", {TOKEN: {OWNER}, OTHER_TOKEN: {OTHER_OWNER}})
    emu = ScarfEmulator(**config)
    emu.start()
    return emu


@pytest.fixture
def emu_factory() -> Iterator[Any]:
    made: list[ScarfEmulator] = []

    def make(**config: Any) -> ScarfEmulator:
        made.append(started(**config))
        return made[-1]

    yield make
    for emu in made:
        emu.close()


def get_json(http: requests.Session, url: str, token: str = TOKEN) -> Any:
    response = http.get(url, headers=auth(token), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------------------
# Names and types
# --------------------------------------------------------------------------------------
def test_packages_and_pixels_take_names_and_types(emu_factory, http):
    emu = emu_factory(
        packages={OWNER: [
            {"id": "p-npm", "name": "right-pad", "type": "npm"},
            {"id": "p-cli", "name": "my-org/cli", "type": "docker"},
            {"id": "p-named", "name": "tarball"},  # type defaults to file
            "p-plain",  # the old form: the id is the name, the type file
        ]},
        tracking_pixels={OWNER: [{"id": "px-docs", "name": "Docs site"}, {"id": "px-plain"}, "px-old"]},
    )
    packages = {pid: get_json(http, f"{emu.url}/v2/packages/{OWNER}/{pid}") for pid in ("p-npm", "p-cli", "p-named", "p-plain")}
    assert {pid: (p["name"], p["type"], p["owner"]) for pid, p in packages.items()} == {
        "p-npm": ("right-pad", "npm", OWNER),
        "p-cli": ("my-org/cli", "docker", OWNER),
        "p-named": ("tarball", "file", OWNER),
        "p-plain": ("p-plain", "file", OWNER),
    }
    pixels = {pid: get_json(http, f"{emu.url}/v2/tracking-pixels/{OWNER}/{pid}")["name"] for pid in ("px-docs", "px-plain", "px-old")}
    assert pixels == {"px-docs": "Docs site", "px-plain": "px-plain", "px-old": "px-old"}


def test_a_name_may_repeat_across_types_but_not_within_one(emu_factory, http):
    emu = emu_factory(packages={OWNER: [
        {"id": "rp-npm", "name": "right-pad", "type": "npm"},
        {"id": "rp-docker", "name": "right-pad", "type": "docker"},
    ]})
    assert get_json(http, f"{emu.url}/v2/packages/{OWNER}/rp-npm")["type"] == "npm"
    assert get_json(http, f"{emu.url}/v2/packages/{OWNER}/rp-docker")["type"] == "docker"

    with pytest.raises(ValueError, match="already has a npm package named 'right-pad'"):
        emu.add_package(OWNER, "rp-npm-2", name="right-pad", type="npm")
    emu.add_package(OWNER, "rp-npm", name="right-pad", type="npm")  # the same id again replaces itself
    emu.add_package(OWNER, "rp-python", name="right-pad", type="python")
    emu.add_tracking_pixel(OWNER, "px-a", name="Docs")
    emu.add_tracking_pixel(OWNER, "px-b", name="Docs")  # pixel names may repeat
    with pytest.raises(ValueError):
        ScarfEmulator(packages={OWNER: [{"id": "a", "name": "x", "type": "npm"}, {"id": "b", "name": "x", "type": "npm"}]})


@pytest.mark.parametrize("packages, pixels, error", [
    ({OWNER: [{"name": "no-id"}]}, {}, ValueError),
    ({OWNER: [{"id": "p", "typ": "npm"}]}, {}, ValueError),  # a typo is refused, not ignored
    ({OWNER: [{"id": "p", "type": "rubygems"}]}, {}, ValueError),
    ({OWNER: [("p", "name")]}, {}, TypeError),
    ({}, {OWNER: [{"id": "px", "type": "npm"}]}, ValueError),  # pixels have no type
    ({OWNER: [""]}, {}, ValueError),
])
def test_bad_artifact_configurations_are_refused(packages, pixels, error):
    with pytest.raises(error):
        ScarfEmulator(packages=packages, tracking_pixels=pixels)


# --------------------------------------------------------------------------------------
# The command line: --package ID[=NAME[:TYPE]], --tracking-pixel ID[=NAME]
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("p-1", {"id": "p-1"}),
    ("p-1=right-pad", {"id": "p-1", "name": "right-pad"}),
    ("p-1=right-pad:npm", {"id": "p-1", "name": "right-pad", "type": "npm"}),
    ("p-1=my-org/cli:docker", {"id": "p-1", "name": "my-org/cli", "type": "docker"}),
    ("p-1=a:b:file", {"id": "p-1", "name": "a:b", "type": "file"}),  # the type is after the last colon
])
def test_package_argument_forms(value, expected):
    assert package_arg(value) == expected


@pytest.mark.parametrize("value", ["", "=name", "p-1=", "p-1=name:gem", "p-1=:npm", "p-1=a:b"])
def test_bad_package_arguments_are_refused(value):
    with pytest.raises(argparse.ArgumentTypeError):
        package_arg(value)


def test_pixel_argument_forms():
    assert pixel_arg("px-1") == {"id": "px-1"}
    assert pixel_arg("px-1=Docs: home=page") == {"id": "px-1", "name": "Docs: home=page"}
    for bad in ("", "=Docs", "px-1="):
        with pytest.raises(argparse.ArgumentTypeError):
            pixel_arg(bad)


def _read_line(stream, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError("the CLI printed nothing before the deadline")
        return stream.readline()
    finally:
        selector.close()


def run_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scarf_emulator", "--port", "0", "--host", "127.0.0.1", "--token", TOKEN,
         "--owner", OWNER, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_cli_names_packages_and_pixels(http):
    process = run_cli("--package", "p-npm=right-pad:npm", "--package", "p-docker=right-pad:docker",
                      "--package", "p-plain", "--tracking-pixel", "px-docs=Docs site", "--tracking-pixel", "px-plain")
    try:
        line = _read_line(process.stdout, DEADLINE)
        assert line.startswith("SCARF_EMULATOR_URL="), line
        url = line.strip().split("=", 1)[1]
        named = {pid: get_json(http, f"{url}/v2/packages/{OWNER}/{pid}") for pid in ("p-npm", "p-docker", "p-plain")}
        assert {pid: (p["name"], p["type"]) for pid, p in named.items()} == {
            "p-npm": ("right-pad", "npm"), "p-docker": ("right-pad", "docker"), "p-plain": ("p-plain", "file"),
        }
        assert get_json(http, f"{url}/v2/tracking-pixels/{OWNER}/px-docs")["name"] == "Docs site"
        assert get_json(http, f"{url}/v2/tracking-pixels/{OWNER}/px-plain")["name"] == "px-plain"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_refuses_one_name_twice_in_one_type():
    process = run_cli("--package", "a=right-pad:npm", "--package", "b=right-pad:npm")
    try:
        _, err = process.communicate(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2
    assert "already has a npm package named 'right-pad'" in err
