"""The emulator's packages and tracking pixels: names and types, and the paged lists
(``GET /v2/packages/{owner}``, ``GET /v2/tracking-pixels/{owner}``) the connector reads to turn
the names in users' data into Scarf's ids.

Over real HTTP with ``requests`` only: these tests import neither ``destination_scarf`` nor
``support`` (which does), so they hold whatever shape the connector's package takes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import selectors
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
from jsonschema import Draft4Validator, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from scarf_emulator import ScarfEmulator
from scarf_emulator.__main__ import package_arg, pixel_arg

ROOT = Path(__file__).resolve().parents[2]
#: Scarf's v2 spec excerpt (the same file as shared/scarf-api/v2-public.excerpt.json; test_emulator.py reads it here too).
V2_EXCERPT = ROOT / "destination_scarf" / "resources" / "v2-public.excerpt.json"
DEADLINE = 10.0
PACKAGE_TYPES = ("file", "docker", "python", "npm", "hackage")

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
# The v2 excerpt's schemas
# --------------------------------------------------------------------------------------
V2_URN = "urn:scarf:v2-public-artifacts"
LIST_OPERATIONS = {"getPackages": "/v2/packages/{owner}", "getTrackingPixels": "/v2/tracking-pixels/{owner}"}


def _v2_document() -> dict[str, Any]:
    """The excerpt as one OpenAPI-shaped document its $refs resolve in.

    The excerpt flattens "components.schemas" into one key, keeps each list's page schema inline
    under its path, and leaves out what some $refs point at: Package's five members (FilePackage,
    DockerPackage, ...) and PackageLinks.  The pages become schemas named after their operations, and
    each missing member becomes what the excerpt does say of it: a PackageBase (the part the members
    share, by the spec's naming) whose ``type`` is the member's discriminator value.  Only missing
    names get a stand-in, so a fuller excerpt is used as it is.
    """
    v2 = json.loads(V2_EXCERPT.read_text())
    schemas = dict(v2["components.schemas"])
    for operation, path in LIST_OPERATIONS.items():
        get = v2["paths"][path]["get"]
        assert get["operationId"] == operation
        schemas[operation] = get["responses"]["200"]["content"]["application/json"]["schema"]
    for package_type, ref in schemas["Package"]["discriminator"]["mapping"].items():
        schemas.setdefault(ref.rsplit("/", 1)[-1], {"allOf": [
            {"$ref": "#/components/schemas/PackageBase"},
            {"properties": {"type": {"enum": [package_type]}}},
        ]})
    schemas.setdefault("PackageLinks", {"type": "object"})
    return {"components": {"schemas": schemas}}


REGISTRY = Registry().with_resource(V2_URN, Resource.from_contents(_v2_document(), default_specification=DRAFT4))


def assert_valid(instance: Any, schema_name: str) -> None:
    Draft4Validator({"$ref": f"{V2_URN}#/components/schemas/{schema_name}"}, registry=REGISTRY).validate(instance)


def assert_timestamp(value: str) -> None:
    assert value.endswith("Z"), value
    datetime.fromisoformat(value[:-1] + "+00:00")


def test_schema_helper_rejects_invalid_documents():
    package = {"id": "p", "name": "p", "owner": "o", "type": "npm", "created_at": "2026-01-01T00:00:00Z",
               "updated_at": "2026-01-01T00:00:00Z"}
    assert_valid({"results": [package]}, "getPackages")
    for bad in ({"type": "rubygems"}, {"name": None}, {"created_at": None}):
        with pytest.raises(ValidationError):
            assert_valid({"results": [{**package, **bad}]}, "getPackages")
    with pytest.raises(ValidationError):
        assert_valid({"_links": {}}, "getPackages")  # results is required
    with pytest.raises(ValidationError):
        assert_valid({"results": [], "_links": {"next": None}}, "getTrackingPixels")  # no next is no key, not null
    with pytest.raises(ValidationError):
        assert_valid({"results": [{"id": "px", "owner": "o"}]}, "getTrackingPixels")


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
# Paging: per_page, after, _links.next
# --------------------------------------------------------------------------------------
def ids(n: int, seed: str) -> list[str]:
    """``n`` realistic, distinct ids, in no particular order."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{i}")) for i in range(n)]


def walk(http: requests.Session, emu: ScarfEmulator, first: str, operation: str) -> list[dict]:
    """Every page from ``first`` on, following ``_links.next`` as a client would (resolved against
    the base URL), each page checked against the spec."""
    pages: list[dict] = []
    url = urljoin(f"{emu.url}/", first)
    while True:
        page = get_json(http, url)
        assert_valid(page, operation)
        pages.append(page)
        if "next" not in page["_links"]:
            return pages
        assert len(pages) < 50, "the next links go round in circles"
        url = urljoin(url, page["_links"]["next"])


def test_25_packages_in_pages_of_10(emu_factory, http):
    configured = [{"id": pid, "name": f"package-{i}", "type": PACKAGE_TYPES[i % 5]} for i, pid in enumerate(ids(25, "p"))]
    emu = emu_factory(packages={OWNER: configured})
    pages = walk(http, emu, f"/v2/packages/{OWNER}?per_page=10", "getPackages")

    assert [len(page["results"]) for page in pages] == [10, 10, 5]
    listed = [item for page in pages for item in page["results"]]
    assert [p["id"] for p in listed] == sorted(c["id"] for c in configured)  # each once, in id order
    for page, follows in itertools.pairwise(pages):
        assert page["_links"]["next"] == f"/v2/packages/{OWNER}?after={page['results'][-1]['id']}&per_page=10"
        assert follows["_links"]["self"] == page["_links"]["next"]
    assert "next" not in pages[-1]["_links"]
    assert pages[0]["_links"]["self"] == f"/v2/packages/{OWNER}?per_page=10"

    by_id = {c["id"]: c for c in configured}
    for package in listed:
        assert (package["name"], package["type"], package["owner"]) == (by_id[package["id"]]["name"], by_id[package["id"]]["type"], OWNER)
        assert_timestamp(package["created_at"])
        assert_timestamp(package["updated_at"])
        assert package == get_json(http, f"{emu.url}/v2/packages/{OWNER}/{package['id']}")  # the list shows what getPackageById does


def test_25_tracking_pixels_in_pages_of_10(emu_factory, http):
    configured = [{"id": pid, "name": f"Pixel {i}"} for i, pid in enumerate(ids(25, "px"))]
    emu = emu_factory(tracking_pixels={OWNER: configured})
    pages = walk(http, emu, f"/v2/tracking-pixels/{OWNER}?per_page=10", "getTrackingPixels")

    assert [len(page["results"]) for page in pages] == [10, 10, 5]
    listed = [item for page in pages for item in page["results"]]
    assert [p["id"] for p in listed] == sorted(c["id"] for c in configured)
    assert {p["id"]: p["name"] for p in listed} == {c["id"]: c["name"] for c in configured}
    for page in pages[:-1]:
        assert page["_links"]["next"] == f"/v2/tracking-pixels/{OWNER}?after={page['results'][-1]['id']}&per_page=10"
    assert "next" not in pages[-1]["_links"]
    for pixel in listed:
        assert pixel["owner"] == OWNER
        assert pixel == get_json(http, f"{emu.url}/v2/tracking-pixels/{OWNER}/{pixel['id']}")


@pytest.mark.parametrize("route, config_key, operation", [
    ("packages", "packages", "getPackages"),
    ("tracking-pixels", "tracking_pixels", "getTrackingPixels"),
])
def test_default_page_is_10_and_next_says_so(emu_factory, http, route, config_key, operation):
    emu = emu_factory(**{config_key: {OWNER: ids(25, route)}})
    first = get_json(http, f"{emu.url}/v2/{route}/{OWNER}")
    assert_valid(first, operation)
    assert len(first["results"]) == 10
    assert first["_links"] == {
        "self": f"/v2/{route}/{OWNER}?per_page=10",
        "next": f"/v2/{route}/{OWNER}?after={first['results'][-1]['id']}&per_page=10",
    }
    pages = walk(http, emu, f"/v2/{route}/{OWNER}", operation)
    assert [len(page["results"]) for page in pages] == [10, 10, 5]

    everything = get_json(http, f"{emu.url}/v2/{route}/{OWNER}?per_page=1000")
    assert len(everything["results"]) == 25 and "next" not in everything["_links"]


@pytest.mark.parametrize("route, config_key", [("packages", "packages"), ("tracking-pixels", "tracking_pixels")])
def test_an_exact_multiple_ends_without_an_empty_page(emu_factory, http, route, config_key):
    emu = emu_factory(**{config_key: {OWNER: ids(20, route), OTHER_OWNER: []}})
    pages = walk(http, emu, f"/v2/{route}/{OWNER}?per_page=10", "getPackages" if route == "packages" else "getTrackingPixels")
    assert [len(page["results"]) for page in pages] == [10, 10]
    empty = get_json(http, f"{emu.url}/v2/{route}/{OTHER_OWNER}", token=OTHER_TOKEN)
    assert empty == {"results": [], "_links": {"self": f"/v2/{route}/{OTHER_OWNER}?per_page=10"}}


def test_the_same_name_under_two_types_is_listed_twice_and_filtered_by_type(emu_factory, http):
    emu = emu_factory(packages={OWNER: [
        {"id": "a-npm", "name": "right-pad", "type": "npm"},
        {"id": "b-docker", "name": "right-pad", "type": "docker"},
        {"id": "c-docker", "name": "my-org/cli", "type": "docker"},
    ]})
    both = get_json(http, f"{emu.url}/v2/packages/{OWNER}?per_page=1")  # the two right-pads on two pages
    assert [(p["id"], p["name"], p["type"]) for p in both["results"]] == [("a-npm", "right-pad", "npm")]
    second = get_json(http, emu.url + both["_links"]["next"])
    assert [(p["id"], p["name"], p["type"]) for p in second["results"]] == [("b-docker", "right-pad", "docker")]

    # getPackages' `type` filter (repeatable, explode=true); the next link keeps it
    dockers = walk(http, emu, f"/v2/packages/{OWNER}?type=docker&per_page=1", "getPackages")
    assert [p["id"] for page in dockers for p in page["results"]] == ["b-docker", "c-docker"]
    assert dockers[0]["_links"]["next"] == f"/v2/packages/{OWNER}?after=b-docker&per_page=1&type=docker"
    some = get_json(http, f"{emu.url}/v2/packages/{OWNER}?type=npm&type=docker")
    assert [p["id"] for p in some["results"]] == ["a-npm", "b-docker", "c-docker"]
    assert get_json(http, f"{emu.url}/v2/packages/{OWNER}?type=python")["results"] == []


def test_after_is_a_bound_so_changes_between_pages_neither_repeat_nor_skip(emu_factory, http):
    emu = emu_factory(packages={OWNER: ["b", "d", "f", "h"]})
    first = get_json(http, f"{emu.url}/v2/packages/{OWNER}?per_page=2")
    assert [p["id"] for p in first["results"]] == ["b", "d"]
    emu.add_package(OWNER, "a")  # before the cursor: this walk does not see it (the next one will)
    emu.add_package(OWNER, "e")  # after it: this walk sees it, once
    rest = walk(http, emu, first["_links"]["next"], "getPackages")
    assert [p["id"] for page in rest for p in page["results"]] == ["e", "f", "h"]
    # an id that is not (or no longer) there is still a valid bound
    assert [p["id"] for p in get_json(http, f"{emu.url}/v2/packages/{OWNER}?after=c")["results"]] == ["d", "e", "f", "h"]
    assert get_json(http, f"{emu.url}/v2/packages/{OWNER}?after=z")["results"] == []


def test_next_links_encode_ids_that_are_not_url_safe(emu_factory, http):
    awkward = ["scope/my pkg", "a&b=c", "plus+sign", "percent%2F", "ünïcode"]
    emu = emu_factory(packages={OWNER: awkward}, tracking_pixels={OWNER: awkward})
    for route, operation in (("packages", "getPackages"), ("tracking-pixels", "getTrackingPixels")):
        pages = walk(http, emu, f"/v2/{route}/{OWNER}?per_page=1", operation)
        assert [p["id"] for page in pages for p in page["results"]] == sorted(awkward)
    assert get_json(http, f"{emu.url}/v2/packages/{OWNER}?per_page=1")["_links"]["next"] == f"/v2/packages/{OWNER}?after=a%26b%3Dc&per_page=1"


@pytest.mark.parametrize("route", ["packages", "tracking-pixels"])
@pytest.mark.parametrize("query", ["per_page=0", "per_page=-1", "per_page=ten", "per_page=", "per_page=2.5", "after="])
def test_bad_paging_parameters_are_400(emu_factory, http, route, query):
    emu = emu_factory(packages={OWNER: ["p"]}, tracking_pixels={OWNER: ["px"]})
    response = http.get(f"{emu.url}/v2/{route}/{OWNER}?{query}", headers=auth(), timeout=10)
    assert response.status_code == 400
    assert isinstance(response.json()["message"], str)


@pytest.mark.parametrize("query", ["type=rubygems", "type=", "type=npm,docker", "type=npm&type=gem"])
def test_bad_package_types_are_400(emu_factory, http, query):
    emu = emu_factory(packages={OWNER: ["p"]})
    response = http.get(f"{emu.url}/v2/packages/{OWNER}?{query}", headers=auth(), timeout=10)
    assert response.status_code == 400
    assert "type" in response.json()["message"]


@pytest.mark.parametrize("route", ["packages", "tracking-pixels"])
@pytest.mark.parametrize("owner, headers, status", [
    (OWNER, {}, 401),
    (OWNER, {"Authorization": "Basic dXNlcjpwdw=="}, 401),
    (OWNER, auth("wrong-token"), 403),
    (OWNER, auth(OTHER_TOKEN), 403),  # a real token without access to this owner
    ("nobody", auth(), 404),
])
def test_list_auth_and_unknown_owner(emu_factory, http, route, owner, headers, status):
    emu = emu_factory(packages={OWNER: ["p"], OTHER_OWNER: []}, tracking_pixels={OWNER: ["px"]})
    response = http.get(f"{emu.url}/v2/{route}/{owner}", headers=headers, timeout=10)
    assert response.status_code == status
    assert isinstance(response.json()["message"], str)
    assert "results" not in response.json()


@pytest.mark.parametrize("route, config_key, operation", [
    ("packages", "packages", "getPackages"),
    ("tracking-pixels", "tracking_pixels", "getTrackingPixels"),
])
def test_one_page_can_fail_on_its_own(emu_factory, http, route, config_key, operation):
    """fail_next with only="artifact-get", queued after the first page, fails the second page alone;
    asking for it again gets exactly the page it would have been."""
    emu = emu_factory(**{config_key: {OWNER: ids(25, route)}})
    expected = walk(http, emu, f"/v2/{route}/{OWNER}?per_page=10", operation)
    emu.clear_requests()

    first = get_json(http, f"{emu.url}/v2/{route}/{OWNER}?per_page=10")
    emu.fail_next(1, status=503, only="artifact-get")
    second_url = emu.url + first["_links"]["next"]
    failed = http.get(second_url, headers=auth(), timeout=10)
    assert failed.status_code == 503
    second = get_json(http, second_url)
    third = get_json(http, emu.url + second["_links"]["next"])
    assert [first, second, third] == expected
    assert [(r.category, r.status) for r in emu.requests] == [("artifact-get", 200), ("artifact-get", 503),
                                                             ("artifact-get", 200), ("artifact-get", 200)]
    assert emu.pending_faults() == []


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
        npm = get_json(http, f"{url}/v2/packages/{OWNER}?type=npm")["results"]
        assert [(p["id"], p["name"]) for p in npm] == [("p-npm", "right-pad")]
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
