"""Integration tests of the Scarf Event Import API emulator, over real HTTP.

The connector's tests, demo and benchmark trust this emulator to behave like Scarf, so
every answer is validated against Scarf's own OpenAPI schemas, and every fault the
connector must survive is exercised here once.  Waiting is done by polling with a
deadline, never by fixed sleeps (except where a test must show that nothing changes).
"""

from __future__ import annotations

import gzip
import json
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft4Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from scarf_emulator import ABORT_FINISHED_IMPORT_STATUS, ScarfEmulator
from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "destination_scarf" / "resources"

OWNER = "acme"
TOKEN = "test-token"
OTHER_OWNER = "globex"
OTHER_TOKEN = "globex-token"
NDJSON = "application/x-ndjson"
DEADLINE = 10.0


# --------------------------------------------------------------------------------------
# OpenAPI schema validation
# --------------------------------------------------------------------------------------
IMPORT_SPEC = "urn:scarf:event-import"
V2_SPEC = "urn:scarf:v2-public"


def _schema_registry() -> Registry:
    spec = json.loads((RESOURCES / "event-import.openapi.json").read_text())
    v2 = json.loads((RESOURCES / "v2-public.excerpt.json").read_text())
    # The excerpt flattens "components.schemas" into one key; rebuild the nesting its $refs expect.
    v2_doc = {"components": {"schemas": v2["components.schemas"]}}
    return Registry().with_resources(
        [
            (IMPORT_SPEC, Resource.from_contents(spec, default_specification=DRAFT4)),
            (V2_SPEC, Resource.from_contents(v2_doc, default_specification=DRAFT4)),
        ]
    )


_PLAIN_ONE_OF = Draft4Validator.VALIDATORS["oneOf"]


def _discriminated_one_of(validator, one_of, instance, schema):
    """Honour OpenAPI's discriminator: ImportLog's members overlap, so plain oneOf always fails."""
    discriminator = schema.get("discriminator")
    if discriminator is None or not isinstance(instance, dict):
        yield from _PLAIN_ONE_OF(validator, one_of, instance, schema)
        return
    value = instance.get(discriminator["propertyName"])
    target = discriminator.get("mapping", {}).get(value)
    if target is None:
        yield ValidationError(f"{value!r} is not a known {discriminator['propertyName']}")
        return
    yield from validator.descend(instance, {"$ref": target})


OpenApiValidator = validators.extend(Draft4Validator, {"oneOf": _discriminated_one_of})
REGISTRY = _schema_registry()


def assert_valid(instance: Any, schema_name: str, spec: str = IMPORT_SPEC) -> None:
    validator = OpenApiValidator({"$ref": f"{spec}#/components/schemas/{schema_name}"}, registry=REGISTRY)
    validator.validate(instance)


def assert_timestamp(value: str) -> None:
    assert value.endswith("Z"), value
    datetime.fromisoformat(value[:-1] + "+00:00")


def assert_event_import(payload: dict) -> None:
    assert_valid(payload, "EventImport")
    uuid.UUID(payload["id"], version=4)
    assert_timestamp(payload["created_at"])
    assert_timestamp(payload["updated_at"])


def assert_log_entry(entry: dict) -> None:
    assert_valid(entry, "ImportLog")
    member = {
        "progress": "ImportLogProgressReport",
        "failed-to-decode": "ImportLogFailedToDecode",
        "artifact-not-found": "ImportLogArtifactNotFound",
    }[entry["type"]]
    assert_valid(entry, member)


def test_schema_helper_rejects_invalid_documents():
    with pytest.raises(ValidationError):
        assert_valid({"id": "x", "events_total": "many"}, "EventImport")
    with pytest.raises(ValidationError):
        assert_valid({"type": "bogus", "class": "error"}, "ImportLog")
    with pytest.raises(ValidationError):
        assert_valid({"event_imports": [{"id": "x", "status": "uploading"}]}, "EventImports")
    with pytest.raises(ValidationError):
        assert_valid({"id": "p", "name": "p", "owner": "o", "type": "file"}, "PackageBase", V2_SPEC)


# --------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------
def make_emulator(**overrides: Any) -> ScarfEmulator:
    config: dict[str, Any] = dict(
        tokens={TOKEN: {OWNER}, OTHER_TOKEN: {OTHER_OWNER}},
        packages={OWNER: ["pkg-1", "pkg-2"], OTHER_OWNER: ["g-pkg"]},
        tracking_pixels={OWNER: ["px-1"]},
    )
    config.update(overrides)
    return ScarfEmulator(**config)


@pytest.fixture
def emu():
    emulator = make_emulator()
    emulator.start()
    yield emulator
    emulator.close()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat().replace("+00:00", "Z")


def event(**fields: Any) -> dict:
    """An event with a current ``$time``; keyword names map ``_x`` to ``$x``."""
    built = {"$time": iso()}
    built.update({("$" + k[1:] if k.startswith("_") else k): v for k, v in fields.items()})
    return built


def ndjson(items: Iterable[Any]) -> bytes:
    return "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items).encode()


def post_import(
    http: requests.Session,
    emu: ScarfEmulator,
    body: bytes,
    path: str = f"/v2/packages/{OWNER}/pkg-1/import",
    compress: bool = False,
    content_type: str = NDJSON,
    token: str = TOKEN,
) -> requests.Response:
    headers = {**auth(token), "Content-Type": content_type}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return http.post(emu.url + path, data=body, headers=headers, timeout=10)




def get_import(http: requests.Session, emu: ScarfEmulator, import_id: str, owner: str = OWNER) -> dict:
    response = http.get(f"{emu.url}/v2/imports/{owner}/{import_id}", headers=auth(), timeout=10)
    assert response.status_code == 200, response.text
    assert_event_import(response.json())
    return response.json()


def wait_final(http: requests.Session, emu: ScarfEmulator, import_id: str) -> dict:
    return wait_for(lambda: (lambda i: i if i["status"] != "importing" else None)(get_import(http, emu, import_id)))


def get_log(http: requests.Session, emu: ScarfEmulator, import_id: str) -> list[dict]:
    response = http.get(f"{emu.url}/v2/imports/{OWNER}/{import_id}/log", headers=auth(), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == NDJSON
    entries = [json.loads(line) for line in response.text.splitlines()]
    for entry in entries:
        assert_log_entry(entry)
    return entries


# --------------------------------------------------------------------------------------
# Artifacts, routing, auth
# --------------------------------------------------------------------------------------
def test_get_package_and_tracking_pixel_match_v2_schemas(emu, http):
    package = http.get(f"{emu.url}/v2/packages/{OWNER}/pkg-1", headers=auth())
    assert package.status_code == 200
    assert_valid(package.json(), "PackageBase", V2_SPEC)
    assert package.json()["id"] == "pkg-1" and package.json()["owner"] == OWNER

    pixel = http.get(f"{emu.url}/v2/tracking-pixels/{OWNER}/px-1", headers=auth())
    assert pixel.status_code == 200
    assert_valid(pixel.json(), "TrackingPixel", V2_SPEC)

    listed = http.get(f"{emu.url}/v2/packages/{OWNER}", headers=auth()).json()
    assert sorted(p["id"] for p in listed["results"]) == ["pkg-1", "pkg-2"]
    assert [p["id"] for p in http.get(f"{emu.url}/v2/tracking-pixels/{OWNER}", headers=auth()).json()["results"]] == ["px-1"]


def test_path_segments_are_percent_decoded(emu, http):
    emu.add_package(OWNER, "scope/my pkg", name="My package", type="npm")
    response = http.get(f"{emu.url}/v2/packages/{OWNER}/scope%2Fmy%20pkg", headers=auth())
    assert response.status_code == 200
    assert response.json()["id"] == "scope/my pkg" and response.json()["type"] == "npm"
    posted = post_import(http, emu, ndjson([event()]), path=f"/v2/packages/{OWNER}/scope%2Fmy%20pkg/import")
    assert posted.status_code == 200
    assert emu.wait_idle()
    assert len(emu.events(OWNER, artifact="scope/my pkg")) == 1


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"/v2/packages/{OWNER}/nope"),
        ("GET", f"/v2/tracking-pixels/{OWNER}/nope"),
        ("GET", f"/v2/imports/{OWNER}/{uuid.uuid4()}"),
        ("GET", f"/v2/imports/{OWNER}/not-a-uuid"),
        ("GET", f"/v2/imports/{OWNER}/{uuid.uuid4()}/log"),
        ("POST", f"/v2/imports/{OWNER}/{uuid.uuid4()}/abort"),
        ("POST", f"/v2/packages/{OWNER}/nope/import"),
        ("POST", f"/v2/tracking-pixels/{OWNER}/nope/import"),
        ("GET", "/v2/imports/nobody"),
        ("POST", "/v2/nobody/import"),
        ("GET", "/v3/whatever"),
    ],
)
def test_unknown_things_are_404_with_message(emu, http, method, path):
    response = http.request(method, emu.url + path, headers={**auth(), "Content-Type": NDJSON}, data=ndjson([event()]))
    assert response.status_code == 404
    assert isinstance(response.json()["message"], str)
    assert emu.imports(OWNER) == []


def test_an_import_of_another_owner_is_404(emu, http):
    emu.add_token(TOKEN, [OTHER_OWNER])
    theirs = post_import(http, emu, ndjson([event()]), path=f"/v2/packages/{OTHER_OWNER}/g-pkg/import").json()
    assert http.get(f"{emu.url}/v2/imports/{OWNER}/{theirs['id']}", headers=auth()).status_code == 404


def test_wrong_method_is_405(emu, http):
    response = http.delete(f"{emu.url}/v2/imports/{OWNER}", headers=auth())
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer wrong-token"}, 403),
        ({"Authorization": f"Bearer {OTHER_TOKEN}"}, 403),
    ],
)
@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", f"/v2/{OWNER}/import"),
        ("POST", f"/v2/packages/{OWNER}/pkg-1/import"),
        ("GET", f"/v2/imports/{OWNER}"),
        ("GET", f"/v2/packages/{OWNER}/pkg-1"),
    ],
)
def test_auth_failures(emu, http, headers, status, method, path):
    response = http.request(method, emu.url + path, headers={**headers, "Content-Type": NDJSON}, data=ndjson([event()]))
    assert response.status_code == status
    assert "message" in response.json()
    assert emu.imports(OWNER) == []


def test_token_can_serve_several_owners(emu, http):
    emu.add_token("shared", [OWNER, OTHER_OWNER])
    for owner in (OWNER, OTHER_OWNER):
        assert http.get(f"{emu.url}/v2/imports/{owner}", headers=auth("shared")).status_code == 200


# --------------------------------------------------------------------------------------
# Import bodies and lifecycle
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("content_type", [NDJSON, "application/ndjson", "application/json; charset=utf-8"])
def test_import_into_tracking_pixel_plain_and_gzip(emu, http, compress, content_type):
    events = [event(_unique_id=f"e{i}", n=i) for i in range(5)]
    response = post_import(
        http, emu, ndjson(events), path=f"/v2/tracking-pixels/{OWNER}/px-1/import",
        compress=compress, content_type=content_type,
    )
    assert response.status_code == 200
    created = response.json()
    assert_event_import(created)
    assert (created["status"], created["events_total"], created["owner"]) == ("importing", 5, OWNER)
    assert created["events_successfully_imported"] == 0

    final = wait_final(http, emu, created["id"])
    assert (final["status"], final["events_successfully_imported"], final["events_failed_to_import"]) == ("done", 5, 0)
    assert emu.events(OWNER, artifact="px-1") == events
    rows = emu.event_rows(OWNER)
    assert {(r["artifact_type"], r["artifact_id"], r["import_id"]) for r in rows} == {("tracking_pixel", "px-1", created["id"])}
    assert get_log(http, emu, created["id"]) == [
        {"type": "progress", "class": "info", "events_count": 5, "failed_events_count": 0,
         "human_friendly_message": "Processed 5 of 5 events, 0 failed"}
    ]


def test_chunked_request_body_is_accepted(emu, http):
    parts = [ndjson([event(n=1)]), ndjson([event(n=2), event(n=3)])]
    response = http.post(
        f"{emu.url}/v2/packages/{OWNER}/pkg-1/import", data=iter(parts), headers={**auth(), "Content-Type": NDJSON}
    )
    assert response.status_code == 200 and response.json()["events_total"] == 3
    assert emu.requests[-1].headers.get("Transfer-Encoding") == "chunked"
    assert emu.wait_idle()
    assert [e["n"] for e in emu.events(OWNER)] == [1, 2, 3]


def test_body_claiming_gzip_that_is_not_gzip_is_400(emu, http):
    response = http.post(
        f"{emu.url}/v2/{OWNER}/import", data=ndjson([event(_package="pkg-1")]),
        headers={**auth(), "Content-Type": NDJSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400 and "gzip" in response.json()["message"]
    assert emu.imports(OWNER) == []


@pytest.mark.parametrize("headers", [{"Content-Type": "text/csv"}, {"Content-Type": NDJSON, "Content-Encoding": "br"}])
def test_unsupported_body_formats_are_415(emu, http, headers):
    response = http.post(f"{emu.url}/v2/{OWNER}/import", data=b"{}\n", headers={**auth(), **headers})
    assert response.status_code == 415
    assert emu.imports(OWNER) == []


def test_status_moves_from_importing_to_done_while_counts_grow(emu, http):
    emu.set_rate(400)
    created = post_import(http, emu, ndjson(event(n=i) for i in range(120))).json()
    partial = wait_for(lambda: (lambda i: i if 0 < i["events_successfully_imported"] < 120 else None)(
        get_import(http, emu, created["id"])))
    assert partial["status"] == "importing"
    emu.set_rate(None)
    final = wait_final(http, emu, created["id"])
    assert (final["status"], final["events_successfully_imported"]) == ("done", 120)
    assert final["updated_at"] >= final["created_at"]


def test_per_line_results_counts_samples_and_log(emu, http):
    lines = [
        event(_package="pkg-1", _unique_id="ok-1"),                            # 1 ok
        event(_tracking_pixel="px-1", _headers=[{"name": "a", "value": "b"}]),  # 2 ok
        "this is not json",                                                     # 3
        "[1, 2, 3]",                                                            # 4 JSON but not an object
        "   ",                                                                  # 5 blank: ignored
        {"$package": "pkg-1"},                                                  # 6 no $time
        event(_package="pkg-1", _time="yesterday"),                             # 7 bad $time
        event(_package="pkg-1", _time=iso(-timedelta(days=8))),                 # 8 too old
        event(_package="nope"),                                                 # 9 unknown package
        event(_tracking_pixel="px-nope"),                                       # 10 unknown pixel
        event(custom="no artifact"),                                            # 11 no artifact
        event(_package="pkg-1", _version=3),                                    # 12 $-field not a string
        '{"$time": "%s", "$package": "pkg-1", "x": NaN}' % iso(),  # noqa: UP031 - 13 NaN is not JSON
    ]
    created = post_import(http, emu, ndjson(lines), path=f"/v2/{OWNER}/import").json()
    assert created["events_total"] == 12
    final = wait_final(http, emu, created["id"])
    assert (final["status"], final["events_successfully_imported"], final["events_failed_to_import"]) == ("done", 2, 10)

    expected = [
        (3, "failed-to-decode", "Not a valid JSON object"),
        (4, "failed-to-decode", "Not a valid JSON object"),
        (6, "failed-to-decode", "Missing required field $time"),
        (7, "failed-to-decode", "Invalid $time: expected an ISO 8601 date-time string"),
        (8, "failed-to-decode", "$time is more than one week before the import started"),
        (9, "artifact-not-found", "Package not found: nope"),
        (10, "artifact-not-found", "Tracking pixel not found: px-nope"),
        (11, "artifact-not-found", "Event has neither $package nor $tracking_pixel"),
        (12, "failed-to-decode", "Field $version must be a string"),
        (13, "failed-to-decode", "Not a valid JSON object"),
    ]
    sample = final["error_log_sample"]
    assert [(e["line"], e["type"], e["human_friendly_message"]) for e in sample] == expected
    assert all(e["class"] == "error" for e in sample)
    assert sample[5]["package_id"] == "nope" and "tracking_pixel_id" not in sample[5]
    assert sample[6]["tracking_pixel_id"] == "px-nope" and "package_id" not in sample[6]
    assert final["warning_log_sample"] == []

    log = get_log(http, emu, created["id"])
    assert log[:-1] == sample
    assert log[-1]["type"] == "progress" and log[-1]["class"] == "info"
    assert (log[-1]["events_count"], log[-1]["failed_events_count"]) == (12, 10)
    stored = emu.event_rows(OWNER)
    assert [(r["artifact_type"], r["artifact_id"]) for r in stored] == [("package", "pkg-1"), ("tracking_pixel", "px-1")]


@pytest.mark.parametrize(
    "moment", ["2030-01-01T00:00:00Z", "2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00.123456789Z", "2030-01-01 00:00:00"]
)
def test_accepted_time_formats(emu, http, moment):
    created = post_import(http, emu, ndjson([{"$time": moment}])).json()
    assert wait_final(http, emu, created["id"])["events_successfully_imported"] == 1


@pytest.mark.parametrize("moment", ["2030-01-01", 1717459200, None, "2030-13-01T00:00:00Z"])
def test_rejected_time_values(emu, http, moment):
    created = post_import(http, emu, ndjson([{"$time": moment}])).json()
    final = wait_final(http, emu, created["id"])
    assert final["events_failed_to_import"] == 1
    assert final["error_log_sample"][0]["human_friendly_message"].startswith("Invalid $time")


def test_time_window_is_configurable(http):
    with make_emulator(time_window=timedelta(hours=1)) as emu:
        body = ndjson([event(_time=iso(-timedelta(hours=2))), event(_time=iso(-timedelta(minutes=30)))])
        final = wait_final(http, emu, post_import(http, emu, body).json()["id"])
        assert (final["events_successfully_imported"], final["events_failed_to_import"]) == (1, 1)
        assert final["error_log_sample"][0]["line"] == 1


def test_error_log_sample_is_capped_at_ten_but_log_is_complete(emu, http):
    created = post_import(http, emu, ndjson(["bad"] * 25 + [event()])).json()
    final = wait_final(http, emu, created["id"])
    assert len(final["error_log_sample"]) == 10 and final["events_failed_to_import"] == 25
    log = get_log(http, emu, created["id"])
    assert [e["line"] for e in log[:-1]] == list(range(1, 26)) and log[-1]["type"] == "progress"


def test_unique_id_replaces_earlier_event_and_ids_are_per_owner(emu, http):
    emu.add_token(TOKEN, [OTHER_OWNER])
    first = [event(_unique_id="u1", v=1), event(_unique_id="u2", v=1), event(v="anon-1")]
    second = [event(_unique_id="u1", v=2), event(v="anon-2")]
    for body in (first, second):
        wait_final(http, emu, post_import(http, emu, ndjson(body)).json()["id"])
    post_import(http, emu, ndjson([event(_unique_id="u1", v="other owner")]), path=f"/v2/packages/{OTHER_OWNER}/g-pkg/import")
    assert emu.wait_idle()
    assert emu.event_count(OWNER) == 4
    by_id = {e.get("$unique_id"): e["v"] for e in emu.events(OWNER)}
    assert by_id["u1"] == 2 and by_id["u2"] == 1
    assert sorted(e["v"] for e in emu.events(OWNER) if "$unique_id" not in e) == ["anon-1", "anon-2"]
    assert emu.event_count(OTHER_OWNER) == 1


def test_list_imports_filters_and_pages_newest_first(emu, http):
    done_ids = [wait_final(http, emu, post_import(http, emu, ndjson([event()])).json()["id"])["id"] for _ in range(3)]
    held = emu.hold_slots(OWNER, 2)
    url = f"{emu.url}/v2/imports/{OWNER}"

    everything = http.get(url, headers=auth()).json()
    assert_valid(everything, "EventImports")
    assert [i["id"] for i in everything["event_imports"]] == list(reversed(done_ids + held))

    first_page = http.get(url, params={"per_page": 2}, headers=auth()).json()["event_imports"]
    second_page = http.get(url, params={"per_page": 2, "after": first_page[-1]["id"]}, headers=auth()).json()["event_imports"]
    assert [i["id"] for i in first_page + second_page] == list(reversed(done_ids + held))[:4]

    importing = http.get(url, params={"status": "importing"}, headers=auth()).json()["event_imports"]
    assert {i["id"] for i in importing} == set(held)
    final = http.get(url, params=[("status", "done"), ("status", "aborted")], headers=auth()).json()["event_imports"]
    assert {i["id"] for i in final} == set(done_ids)
    assert http.get(url, params={"status": "uploading"}, headers=auth()).status_code == 400
    assert http.get(url, params={"per_page": 0}, headers=auth()).status_code == 400
    assert http.get(url, params={"after": str(uuid.uuid4())}, headers=auth()).json() == {"event_imports": []}


def test_default_page_size_is_ten(emu, http):
    emu.hold_slots(OWNER, 12)
    assert len(http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth()).json()["event_imports"]) == 10


# --------------------------------------------------------------------------------------
# Active-import limit, abort
# --------------------------------------------------------------------------------------
def test_sixteenth_active_import_gets_422_with_held_slots(emu, http):
    held = emu.hold_slots(OWNER, 15)
    assert len(held) == 15
    refused = post_import(http, emu, ndjson([event()]))
    assert refused.status_code == 422 and refused.json() == {"message": "too many active imports"}
    assert len(emu.imports(OWNER)) == 15
    assert post_import(http, emu, ndjson([event()]), path=f"/v2/packages/{OTHER_OWNER}/g-pkg/import",
                       token=OTHER_TOKEN).status_code == 200  # the limit is per owner

    assert sorted(emu.release_slots(OWNER)) == sorted(held)
    assert all(i["status"] == "done" for i in emu.imports(OWNER))
    assert post_import(http, emu, ndjson([event()])).status_code == 200


def test_sixteenth_active_import_gets_422_with_slow_processing(emu, http):
    emu.set_rate(1)
    ids = [post_import(http, emu, ndjson([event()] * 20)).json()["id"] for _ in range(15)]
    assert post_import(http, emu, ndjson([event()]), path=f"/v2/{OWNER}/import").status_code == 422
    emu.set_rate(None)
    assert emu.wait_idle()
    assert {emu.get_import(OWNER, i)["status"] for i in ids} == {"done"}
    assert post_import(http, emu, ndjson([event()])).status_code == 200


def test_abort_own_import_keeps_processed_events_only(emu, http):
    emu.set_rate(300)
    created = post_import(http, emu, ndjson(event(n=i) for i in range(600))).json()
    wait_for(lambda: emu.get_import(OWNER, created["id"])["events_successfully_imported"] > 0)
    response = http.post(f"{emu.url}/v2/imports/{OWNER}/{created['id']}/abort", headers=auth())
    assert response.status_code == 204 and response.content == b""

    aborted = get_import(http, emu, created["id"])
    assert aborted["status"] == "aborted"
    assert 0 < aborted["events_successfully_imported"] < 600
    time.sleep(0.1)  # nothing may be processed after the abort
    assert get_import(http, emu, created["id"]) == aborted
    assert emu.event_count(OWNER) == aborted["events_successfully_imported"]
    assert get_log(http, emu, created["id"])[-1]["events_count"] == aborted["events_successfully_imported"]

    again = http.post(f"{emu.url}/v2/imports/{OWNER}/{created['id']}/abort", headers=auth())
    assert again.status_code == ABORT_FINISHED_IMPORT_STATUS
    assert get_import(http, emu, created["id"]) == aborted


def test_abort_of_a_done_import_answers_204_and_changes_nothing(emu, http):
    done = wait_final(http, emu, post_import(http, emu, ndjson([event()])).json()["id"])
    response = http.post(f"{emu.url}/v2/imports/{OWNER}/{done['id']}/abort", headers=auth())
    assert response.status_code == ABORT_FINISHED_IMPORT_STATUS == 204
    assert get_import(http, emu, done["id"]) == done


def test_external_abort(emu, http):
    emu.set_rate(50)
    created = post_import(http, emu, ndjson([event()] * 100)).json()
    assert emu.abort_import(OWNER, created["id"]) is True
    assert get_import(http, emu, created["id"])["status"] == "aborted"
    assert emu.abort_import(OWNER, created["id"]) is False
    held = emu.hold_slots(OWNER, 1)[0]
    assert emu.abort_import(OWNER, held) is True and emu.get_import(OWNER, held)["status"] == "aborted"
    with pytest.raises(KeyError):
        emu.abort_import(OWNER, str(uuid.uuid4()))


# --------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 503])
def test_fail_next_for_any_request(emu, http, status):
    emu.fail_next(2, status=status)
    url = f"{emu.url}/v2/imports/{OWNER}"
    assert [http.get(url, headers=auth()).status_code for _ in range(3)] == [status, status, 200]


def test_fail_next_only_import_posts(emu, http):
    emu.fail_next(1, status=500, only="import-post")
    assert http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth()).status_code == 200
    failed = post_import(http, emu, ndjson([event()]))
    assert failed.status_code == 500 and "message" in failed.json()
    assert emu.imports(OWNER) == []
    assert post_import(http, emu, ndjson([event()])).status_code == 200


@pytest.mark.parametrize("only, method, suffix", [("import-get", "GET", ""), ("log", "GET", "/log"), ("abort", "POST", "/abort")])
def test_faults_can_target_one_kind_of_request(emu, http, only, method, suffix):
    created = post_import(http, emu, ndjson([event()])).json()
    emu.fail_next(1, status=503, only=only)
    assert post_import(http, emu, ndjson([event()])).status_code == 200
    url = f"{emu.url}/v2/imports/{OWNER}/{created['id']}{suffix}"
    assert http.request(method, url, headers=auth()).status_code == 503
    assert http.request(method, url, headers=auth()).status_code in (200, 204)


def test_fail_after_processing_creates_the_import(emu, http):
    emu.fail_next(1, status=503, only="import-post", after_processing=True)
    assert post_import(http, emu, ndjson([event()])).status_code == 503
    assert len(emu.imports(OWNER)) == 1


def test_reset_next_drops_the_connection(emu, http):
    emu.reset_next(1, only="import-post")
    with pytest.raises(requests.ConnectionError):
        post_import(http, emu, ndjson([event()]))
    assert emu.imports(OWNER) == []
    assert emu.requests[-1].status is None
    assert post_import(http, emu, ndjson([event()])).status_code == 200


def test_reset_after_processing_leaves_an_import_behind(emu, http):
    emu.reset_next(1, only="import-post", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        post_import(http, emu, ndjson([event(_unique_id="x")]))
    assert emu.wait_idle()
    assert len(emu.imports(OWNER)) == 1 and emu.event_count(OWNER) == 1


def test_throttle_next_answers_429_with_retry_after(emu, http):
    emu.throttle_next(2, retry_after=3, only="import-post")
    for _ in range(2):
        response = post_import(http, emu, ndjson([event()]))
        assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert post_import(http, emu, ndjson([event()])).status_code == 200
    assert len(emu.imports(OWNER)) == 1


def test_delay_next_holds_the_answer_back(emu, http):
    """Shown by order and by the emulator's own records, never by a stopwatch on the client."""
    url = f"{emu.url}/v2/imports/{OWNER}"
    # Held back: an answer delayed by an hour has not come, not a byte of it, after a request sent later
    # was answered in full (so that one was not held: the delay was one request's).
    emu.delay_next(1, 3600, only="import-get")
    held = raw_request(emu, "GET", f"/v2/imports/{OWNER}", headers=auth())
    try:
        wait_for(lambda: emu.pending_faults() == [], "the first request to take the delay")
        assert http.get(url, headers=auth(), timeout=DEADLINE).status_code == 200
        readable, _, _ = select.select([held], [], [], 0)
        assert readable == []  # no answer yet, and the connection is still open (a close would be readable)
    finally:
        held.close()
    # Then sent: a delayed answer comes whole once its delay has passed; the emulator received the next
    # request (sent only after that answer) at least the delay after the delayed one.
    emu.delay_next(1, 0.3, only="import-get")
    assert http.get(url, headers=auth(), timeout=DEADLINE).status_code == 200
    assert http.get(url, headers=auth(), timeout=DEADLINE).status_code == 200
    delayed, after = emu.requests[-2:]
    assert (delayed.status, after.status) == (200, 200)
    assert after.received_at - delayed.received_at >= 0.3


def test_a_new_import_can_look_not_yet_visible(emu, http):
    """Eventual consistency needs no knob of its own: a 404 on the first GETs of a new import."""
    created = post_import(http, emu, ndjson([event()])).json()
    emu.fail_next(2, status=404, only="import-get")
    url = f"{emu.url}/v2/imports/{OWNER}/{created['id']}"
    first, second = (http.get(url, headers=auth()) for _ in range(2))
    assert (first.status_code, second.status_code) == (404, 404) and "message" in first.json()
    assert wait_final(http, emu, created["id"])["status"] == "done"
    assert http.get(f"{url}/log", headers=auth()).status_code == 200  # only import-get was faulted


def test_fault_arguments_are_checked(emu):
    with pytest.raises(ValueError):
        emu.fail_next(1, only="everything")
    with pytest.raises(ValueError):
        emu.fail_next(1, status=200)
    with pytest.raises(KeyError):
        emu.hold_slots("nobody", 1)


# --------------------------------------------------------------------------------------
# Fault knobs for the connector's reliability work
# --------------------------------------------------------------------------------------
def control_action(http: requests.Session, emu: ScarfEmulator, action: str, **arguments: Any) -> Any:
    """Call a fault action through POST /_emulator/faults, as the demo and the benchmark do."""
    response = http.post(f"{emu.url}/_emulator/faults", json={"action": action, **arguments}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def list_statuses(http: requests.Session, emu: ScarfEmulator, times: int) -> list[int]:
    return [http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=10).status_code for _ in range(times)]


def raw_request(emu: ScarfEmulator, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> socket.socket:
    """Send one request on a plain socket, to watch exactly which bytes come back and when."""
    host, port = emu.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()) + "\r\n"
    sock.sendall(head.encode() + body)
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes (DEADLINE per read is only a hang guard)."""
    sock.settimeout(DEADLINE)
    parts = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def assert_quiet(sock: socket.socket, seconds: float = 0.2) -> None:
    """Nothing arrives for a moment (the one kind of check that has to wait)."""
    sock.settimeout(seconds)
    with pytest.raises(socket.timeout):
        sock.recv(1)


def stop_with_guard(emu: ScarfEmulator) -> None:
    """stop() in a thread, so a regression fails the test instead of hanging it."""
    stopper = threading.Thread(target=emu.stop, daemon=True)
    stopper.start()
    stopper.join(DEADLINE)
    assert not stopper.is_alive(), "stop() hung"


def summary(emu: ScarfEmulator, key: str) -> int:
    return emu.fault_summary()[key]


def test_outage_answers_matching_requests_until_it_is_ended(emu, http):
    emu.trickle_next(1, only="import-post", bytes_per_second=100_000)
    emu.start_outage(only="import-post", status=502)
    assert [post_import(http, emu, ndjson([event()])).status_code for _ in range(3)] == [502] * 3
    assert list_statuses(http, emu, 1) == [200]
    assert [f["kind"] for f in emu.pending_faults()] == ["trickle", "outage"]  # the outage used nothing up
    assert emu.end_outage() == 1
    assert post_import(http, emu, ndjson([event()])).status_code == 200
    assert len(emu.imports(OWNER)) == 1 and emu.pending_faults() == []


def test_outage_can_drop_connections_and_queued_faults_wait_behind_it(emu, http):
    emu.fail_next(1, status=500)
    emu.start_outage(status="reset")
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=10)
    assert [r.status for r in emu.requests] == [None, None]
    emu.end_outage()
    assert list_statuses(http, emu, 2) == [500, 200]  # the queued fault was not used up by the outage


def test_timed_outage_ends_by_itself(emu, http):
    control_action(http, emu, "start_outage", only="import-get", status=503, seconds=0.2)
    [outage] = emu.pending_faults()
    assert outage["kind"] == "outage" and 0 <= outage["seconds_left"] <= 0.2
    seen: list[int] = []
    wait_for(lambda: seen.append(list_statuses(http, emu, 1)[0]) or seen[-1] == 200, "the outage to end")
    assert set(seen[:-1]) <= {503}  # answers went from 503 to 200 once, never back
    assert list_statuses(http, emu, 2) == [200, 200] and emu.pending_faults() == []


def test_outage_arguments_are_checked(emu, http):
    for bad in ({"status": 404}, {"status": "drop"}, {"only": "everything"}, {"seconds": 0}):
        with pytest.raises(ValueError):
            emu.start_outage(**bad)
    assert http.post(f"{emu.url}/_emulator/faults", json={"action": "start_outage", "status": 200}).status_code == 400
    assert control_action(http, emu, "end_outage") == 0


def test_flaky_fails_every_nth_matching_request_for_count_requests(emu, http):
    emu.flaky(every=2, status=503, count=6)
    assert list_statuses(http, emu, 8) == [200, 503, 200, 503, 200, 503, 200, 200]
    assert emu.pending_faults() == []


def test_flaky_counts_only_matching_requests_and_lasts_until_cleared(emu, http):
    created = post_import(http, emu, ndjson([event()])).json()
    control_action(http, emu, "flaky", every=3, status=500, only="import-get")
    url = f"{emu.url}/v2/imports/{OWNER}/{created['id']}"
    seen = []
    for _ in range(7):
        seen.append(http.get(url, headers=auth()).status_code)
        assert post_import(http, emu, ndjson([event()])).status_code == 200  # not counted, never failed
    assert seen == [200, 200, 500, 200, 200, 500, 200]
    [rule] = emu.pending_faults()
    assert (rule["kind"], rule["seen"], rule["remaining"]) == ("flaky", 7, None)
    emu.clear_faults()
    assert [http.get(url, headers=auth()).status_code for _ in range(3)] == [200] * 3


def test_flaky_combines_with_queued_faults_and_can_reset(emu, http):
    emu.flaky(every=2, status="reset", count=4)
    emu.fail_next(1, status=500)
    statuses = []
    for _ in range(5):
        try:
            statuses.append(http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=10).status_code)
        except requests.ConnectionError:
            statuses.append(None)
    # the queued fault answers first and is not counted by the flaky rule
    assert statuses == [500, 200, None, 200, None]


def test_silence_next_sends_nothing_until_released_and_processes_nothing(emu, http):
    emu.silence_next(1, only="import-post")
    sock = raw_request(emu, "POST", f"/v2/packages/{OWNER}/pkg-1/import", ndjson([event()]),
                       {**auth(), "Content-Type": NDJSON})
    try:
        wait_for(lambda: summary(emu, "silenced_connections") == 1, "the request to be silenced")
        assert_quiet(sock)
        assert emu.requests[-1].status is None and emu.imports(OWNER) == []
        assert emu.release_silenced() == 1
        assert read_to_end(sock) == b""  # closed without a byte
    finally:
        sock.close()
    wait_for(lambda: summary(emu, "silenced_connections") == 0, "the handler to let go")
    assert post_import(http, emu, ndjson([event()])).status_code == 200


def test_a_silenced_connection_is_let_go_when_the_client_gives_up(emu, http):
    control_action(http, emu, "silence_next", n=1, only="import-get")
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=(DEADLINE, 0.2))
    wait_for(lambda: summary(emu, "silenced_connections") == 0, "the hung-up connection to be noticed")
    assert control_action(http, emu, "release_silenced") == 0
    assert list_statuses(http, emu, 1) == [200]


def test_stop_releases_silenced_connections(emu):
    emu.silence_next(2)
    socks = [raw_request(emu, "GET", f"/v2/imports/{OWNER}", headers=auth()) for _ in range(2)]
    try:
        wait_for(lambda: summary(emu, "silenced_connections") == 2, "both requests to be silenced")
        stop_with_guard(emu)
        assert [read_to_end(sock) for sock in socks] == [b"", b""]
        wait_for(lambda: summary(emu, "silenced_connections") == 0, "the handlers to let go")
    finally:
        for sock in socks:
            sock.close()


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read until the blank line after the headers; return (head, body bytes read with it)."""
    sock.settimeout(DEADLINE)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the headers ended: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def head_field(head: bytes, name: str) -> str | None:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def test_trickled_body_comes_after_headers_sent_at_once_and_stop_cuts_it_off(emu):
    emu.trickle_next(1, only="artifact-get", bytes_per_second=1, part="body")
    sock = raw_request(emu, "GET", f"/v2/packages/{OWNER}/pkg-1", headers=auth())
    try:
        head, body = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(head_field(head, "Content-Length"))
        assert len(body) < length  # at 1 byte/s, a second or so per byte
        wait_for(lambda: summary(emu, "trickling_answers") == 1, "the body to trickle")
        stop_with_guard(emu)
        assert len(body + read_to_end(sock)) < length
        wait_for(lambda: summary(emu, "trickling_answers") == 0, "the trickle to stop")
    finally:
        sock.close()


def test_trickled_headers_come_byte_by_byte_and_stop_cuts_them_off(emu, http):
    control_action(http, emu, "trickle_next", n=1, only="import-get", bytes_per_second=1, part="headers")
    sock = raw_request(emu, "GET", f"/v2/imports/{OWNER}", headers=auth())
    try:
        sock.settimeout(DEADLINE)
        first = sock.recv(65536)
        assert first and b"HTTP/1.1 200".startswith(first)
        stop_with_guard(emu)
        assert b"\r\n\r\n" not in first + read_to_end(sock)
        wait_for(lambda: summary(emu, "trickling_answers") == 0, "the trickle to stop")
    finally:
        sock.close()


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_trickled_answer_arrives_whole_and_slowly(emu, http, part):
    url = f"{emu.url}/v2/packages/{OWNER}/pkg-1"
    expected = http.get(url, headers=auth())
    emu.trickle_next(1, only="artifact-get", bytes_per_second=1000, part=part)  # 50 bytes per 0.05 s
    trickled = http.get(url, headers=auth(), timeout=DEADLINE)
    assert (trickled.status_code, trickled.json()) == (200, expected.json())
    assert list_statuses(http, emu, 1) == [200] and emu.pending_faults() == []
    # The pauses really happen, by the emulator's own records (not a stopwatch on the client): the next
    # request, sent once the trickled answer was whole, was received at least all the pauses later.
    size = len(trickled.content) if part == "body" else 100  # the head is well over 100 bytes
    slow, after = emu.requests[-2:]
    assert (slow.category, after.category) == ("artifact-get", "import-get")
    assert after.received_at - slow.received_at >= 0.9 * ((size - 1) // 50) * 0.05


def test_injected_errors_can_trickle_too(emu, http):
    emu.fail_next(1, status=503)
    emu.trickle_next(1, bytes_per_second=10_000)
    response = http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=DEADLINE)
    assert response.status_code == 503 and "message" in response.json()
    assert emu.pending_faults() == []


def test_huge_json_answer_is_one_valid_event_import_of_the_announced_size(emu, http):
    emu.huge_next(1, only="import-post", megabytes=2, shape="json")
    response = post_import(http, emu, ndjson([event()]))
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content) == 2_000_000
    assert response.content.startswith(b'{"id":"')
    payload = response.json()
    assert_event_import(payload)
    assert payload["status"] == "importing" and set(payload["padding"]) == {"x"}
    assert emu.imports(OWNER) == [] and emu.requests[-1].status == 200  # nothing was processed


def test_huge_ndjson_answer_is_many_import_log_lines(emu, http):
    created = post_import(http, emu, ndjson([event()])).json()
    control_action(http, emu, "huge_next", n=1, only="log", megabytes=0.5, shape="ndjson")
    response = http.get(f"{emu.url}/v2/imports/{OWNER}/{created['id']}/log", headers=auth(), timeout=DEADLINE)
    assert response.status_code == 200 and response.headers["Content-Type"] == NDJSON
    assert int(response.headers["Content-Length"]) == len(response.content) == 500_000
    assert response.content.endswith(b"\n")
    entries = [json.loads(line) for line in response.content.splitlines()]
    assert len(entries) > 1000
    for entry in entries[:3] + entries[-1:]:
        assert_log_entry(entry)
    assert [e["line"] for e in entries[:-1]] == list(range(1, len(entries)))
    assert entries[-1]["type"] == "progress" and entries[-1]["events_count"] == len(entries) - 1


def test_huge_line_answer_has_no_newline(emu, http):
    emu.huge_next(1, megabytes=0.5, shape="line")
    response = http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), timeout=DEADLINE)
    assert int(response.headers["Content-Length"]) == len(response.content) == 500_000
    assert b"\n" not in response.content
    assert_log_entry(json.loads(response.content))
    assert list_statuses(http, emu, 1) == [200]


def test_default_huge_answer_is_streamed_not_built(emu, http):
    emu.huge_next(1)
    with http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(), stream=True, timeout=DEADLINE) as response:
        assert response.headers["Content-Length"] == "300000000"
        start = next(response.iter_content(1 << 20))
        assert start.startswith(b'{"id":"') and b'"status":"importing"' in start
    wait_for(lambda: summary(emu, "huge_answers") == 0, "the emulator to notice the client left")
    assert list_statuses(http, emu, 1) == [200]


def test_stop_cuts_a_huge_answer_off(emu):
    emu.huge_next(1, megabytes=300)
    sock = raw_request(emu, "GET", f"/v2/imports/{OWNER}", headers=auth())
    try:
        head, _ = read_head(sock)
        assert head_field(head, "Content-Length") == "300000000"
        wait_for(lambda: summary(emu, "huge_answers") == 1, "the body to stream")
        stop_with_guard(emu)  # the client reads nothing meanwhile: the server is blocked on a full socket
        wait_for(lambda: summary(emu, "huge_answers") == 0, "the stream to stop")
    finally:
        sock.close()


def test_redirect_to_a_base_url_keeps_path_and_query_and_processes_nothing(emu, http):
    emu.redirect_next(1, only="import-post", status=307, location=emu.url)
    path = f"/v2/packages/{OWNER}/pkg-1/import"
    response = http.post(f"{emu.url}{path}?dry=1", data=ndjson([event()] * 20),
                         headers={**auth(), "Content-Type": NDJSON}, allow_redirects=False, timeout=DEADLINE)
    assert response.status_code == 307 and response.headers["Location"] == f"{emu.url}{path}?dry=1"
    assert emu.imports(OWNER) == [] and emu.requests[-1].status == 307
    assert list_statuses(http, emu, 1) == [200]  # the body was read: the connection is still in step


def test_a_followed_redirect_lands_on_the_real_answer(emu, http):
    control_action(http, emu, "redirect_next", n=1, only="import-post", status=308)  # to this emulator itself
    response = post_import(http, emu, ndjson([event(_unique_id="once")]))
    assert response.status_code == 200 and response.history[0].status_code == 308
    assert response.history[0].headers["Location"] == f"{emu.url}/v2/packages/{OWNER}/pkg-1/import"
    assert [r.status for r in emu.requests] == [308, 200]
    assert emu.wait_idle() and len(emu.imports(OWNER)) == 1 and emu.event_count(OWNER) == 1


@pytest.mark.parametrize("status", [301, 302, 303])
def test_redirect_with_a_path_is_sent_as_given(emu, http, status):
    emu.redirect_next(1, status=status, location="http://127.0.0.1:9/elsewhere/")
    response = http.get(f"{emu.url}/v2/imports/{OWNER}?per_page=2", headers=auth(), allow_redirects=False)
    assert response.status_code == status and response.headers["Location"] == "http://127.0.0.1:9/elsewhere/"


def test_redirect_arguments_are_checked(emu, http):
    for bad in ({"status": 200}, {"status": 304}, {"location": "/relative"}, {"only": "elsewhere"}):
        with pytest.raises(ValueError):
            emu.redirect_next(1, **bad)
    refused = http.post(f"{emu.url}/_emulator/faults", json={"action": "redirect_next", "n": 1, "status": 399})
    assert refused.status_code == 400 and emu.pending_faults() == []


@pytest.mark.parametrize("mode, total", [("processed", 5), ("total", 3)])
def test_short_count_leaves_the_last_lines_out_and_ends_done(emu, http, mode, total):
    emu.short_count_next(1, missing=2, mode=mode)
    created = post_import(http, emu, ndjson(event(_unique_id=f"e{i}") for i in range(5))).json()
    assert created["events_total"] == total
    final = wait_final(http, emu, created["id"])
    counts = (final["events_total"], final["events_successfully_imported"], final["events_failed_to_import"])
    assert final["status"] == "done" and counts == (total, 3, 0)
    assert [e["$unique_id"] for e in emu.events(OWNER)] == ["e0", "e1", "e2"]
    assert get_log(http, emu, created["id"])[-1]["events_count"] == 3
    whole = wait_final(http, emu, post_import(http, emu, ndjson([event(), event()])).json()["id"])
    assert (whole["events_total"], whole["events_successfully_imported"]) == (2, 2)


def test_short_count_counts_failed_lines_it_keeps_and_caps_missing(emu, http):
    control_action(http, emu, "short_count_next", n=2, missing=1, mode="processed")
    first = post_import(http, emu, ndjson([event(k=1), "junk", event(k=3)])).json()
    final = wait_final(http, emu, first["id"])
    assert (final["events_total"], final["events_successfully_imported"], final["events_failed_to_import"]) == (3, 1, 1)
    emu.clear_faults()
    emu.short_count_next(1, missing=10, mode="total")
    emptied = wait_final(http, emu, post_import(http, emu, ndjson([event(), event()])).json()["id"])
    assert (emptied["status"], emptied["events_total"], emptied["events_successfully_imported"]) == ("done", 0, 0)
    assert [e["k"] for e in emu.events(OWNER)] == [1]


def get_import_any_status(http: requests.Session, emu: ScarfEmulator, import_id: str) -> dict:
    """GET an import whose status word may be outside the spec's enum (injected on purpose)."""
    response = http.get(f"{emu.url}/v2/imports/{OWNER}/{import_id}", headers=auth(), timeout=DEADLINE)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert_event_import({**payload, "status": "done"})  # everything but the word is as usual
    return payload


def listed(http: requests.Session, emu: ScarfEmulator, *statuses: str) -> list[tuple[str, str]]:
    response = http.get(f"{emu.url}/v2/imports/{OWNER}", params=[("status", s) for s in statuses], headers=auth())
    assert response.status_code == 200, response.text
    return [(i["id"], i["status"]) for i in response.json()["event_imports"]]


def test_final_status_replaces_done_after_normal_processing(emu, http):
    emu.final_status_next(1, status="failed")
    created = post_import(http, emu, ndjson([event(k=1), "junk"])).json()
    assert created["status"] == "importing"
    assert emu.wait_idle()
    failed = get_import_any_status(http, emu, created["id"])
    assert (failed["status"], failed["events_successfully_imported"], failed["events_failed_to_import"]) == ("failed", 1, 1)
    assert emu.event_count(OWNER) == 1  # processed before it "failed": its events are stored
    assert listed(http, emu) == [(created["id"], "failed")]
    assert listed(http, emu, "failed") == [(created["id"], "failed")] and listed(http, emu, "done") == []
    assert emu.stats(OWNER)["active_imports"] == 0
    assert wait_final(http, emu, post_import(http, emu, ndjson([event()])).json()["id"])["status"] == "done"


def test_interim_status_shows_while_processing_and_still_holds_the_slot(http):
    with make_emulator(max_active_imports=1) as emu:
        emu.set_rate(2)  # 20 s for 40 events: it is still processing while the test looks
        control_action(http, emu, "interim_status_next", n=1, status="queued")
        control_action(http, emu, "final_status_next", n=1, status="finished-ish")
        created = post_import(http, emu, ndjson([event()] * 40)).json()
        assert created["status"] == "queued"
        assert get_import_any_status(http, emu, created["id"])["status"] == "queued"
        assert listed(http, emu, "queued") == [(created["id"], "queued")] and listed(http, emu, "importing") == []
        assert post_import(http, emu, ndjson([event()])).status_code == 422  # active, whatever it says
        assert emu.stats(OWNER)["active_imports"] == 1
        emu.set_rate(None)
        assert emu.wait_idle()
        final = get_import_any_status(http, emu, created["id"])
        assert (final["status"], final["events_successfully_imported"]) == ("finished-ish", 40)
        assert post_import(http, emu, ndjson([event()])).status_code == 200


def test_an_aborted_import_says_aborted_whatever_its_injected_final_word(emu, http):
    emu.set_rate(1)
    emu.interim_status_next(1, status="uploading")
    emu.final_status_next(1, status="failed")
    created = post_import(http, emu, ndjson([event()] * 30)).json()
    assert http.post(f"{emu.url}/v2/imports/{OWNER}/{created['id']}/abort", headers=auth()).status_code == 204
    assert get_import(http, emu, created["id"])["status"] == "aborted"


def test_import_fault_arguments_are_checked(emu, http):
    for call in (lambda: emu.short_count_next(1, missing=0), lambda: emu.short_count_next(1, mode="half"),
                 lambda: emu.final_status_next(1, status=""), lambda: emu.interim_status_next(-1)):
        with pytest.raises(ValueError):
            call()
    refused = http.post(f"{emu.url}/_emulator/faults", json={"action": "final_status_next", "n": 1, "status": 7})
    assert refused.status_code == 400 and emu.pending_faults() == []
    emu.hold_slots(OWNER, 1)
    emu.final_status_next(1)
    assert [f["kind"] for f in emu.pending_faults()] == ["final_status"]  # held slots do not consume it
    with make_emulator(max_active_imports=1) as busy:
        busy.hold_slots(OWNER, 1)
        busy.final_status_next(1)
        assert post_import(http, busy, ndjson([event()])).status_code == 422
        assert len(busy.pending_faults()) == 1  # nor do refused uploads


def test_a_token_stops_working_after_its_last_import_which_completes(emu, http):
    emu.set_rate(50)
    emu.revoke_token_after(TOKEN, imports=2)
    ids = [post_import(http, emu, ndjson([event()] * 10)).json()["id"] for _ in range(2)]
    unknown = http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth("no-such-token"))
    for response in (http.get(f"{emu.url}/v2/imports/{OWNER}/{ids[0]}", headers=auth()),
                     http.get(f"{emu.url}/v2/packages/{OWNER}/pkg-1", headers=auth()),
                     post_import(http, emu, ndjson([event()]))):
        assert (response.status_code, response.json()) == (403, unknown.json()) == (403, {"message": "invalid token"})
    emu.set_rate(None)
    assert emu.wait_idle()
    assert [(i["status"], i["events_successfully_imported"]) for i in emu.imports(OWNER)] == [("done", 10)] * 2
    assert http.get(f"{emu.url}/v2/imports/{OTHER_OWNER}", headers=auth(OTHER_TOKEN)).status_code == 200
    [entry] = emu.pending_faults()
    assert entry == {"kind": "revoke_token", "imports": 2, "created": 2, "revoked": True}  # no token shown
    emu.clear_faults()
    assert list_statuses(http, emu, 1) == [200]


def test_concurrent_uploads_never_create_more_imports_than_the_token_may(emu, http):
    control_action(http, emu, "revoke_token_after", token=TOKEN, imports=3)
    start = threading.Barrier(8)
    statuses: list[int] = []

    def upload() -> None:
        with requests.Session() as own:
            start.wait(DEADLINE)
            statuses.append(post_import(own, emu, ndjson([event()])).status_code)

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert sorted(statuses) == [200] * 3 + [403] * 5
    assert len(emu.imports(OWNER)) == 3


def test_revocation_arguments_are_checked(emu, http):
    with pytest.raises(KeyError):
        emu.revoke_token_after("no-such-token", imports=1)
    with pytest.raises(ValueError):
        emu.revoke_token_after(TOKEN, imports=-1)
    assert http.post(f"{emu.url}/_emulator/faults",
                     json={"action": "revoke_token_after", "token": "nope", "imports": 1}).status_code == 400
    emu.revoke_token_after(TOKEN, imports=0)
    assert list_statuses(http, emu, 1) == [403]


def test_clear_faults_clears_every_knob_and_the_summary_counts_them(emu, http):
    emu.fail_next(1)
    emu.start_outage(only="abort")
    emu.flaky(every=1)
    emu.silence_next(1, only="log")
    emu.trickle_next(1)
    emu.huge_next(1, only="log")
    emu.redirect_next(1, only="log")
    emu.short_count_next(1)
    emu.final_status_next(1)
    emu.interim_status_next(1)
    emu.revoke_token_after(TOKEN, imports=0)
    counted = http.get(f"{emu.url}/_emulator/fault_summary").json()
    assert counted == emu.fault_summary()
    assert counted["pending"] == 11 and counted["outages"] == 1
    assert set(counted["pending_by_kind"]) == {
        "fail", "outage", "flaky", "silence", "trickle", "huge", "redirect",
        "short_count", "final_status", "interim_status", "revoke_token"}
    assert control_action(http, emu, "clear_faults") is None
    assert emu.pending_faults() == [] and emu.fault_summary()["pending"] == 0
    created = post_import(http, emu, ndjson([event(), event()])).json()
    assert created["status"] == "importing" and created["events_total"] == 2
    assert wait_final(http, emu, created["id"])["events_successfully_imported"] == 2


# --------------------------------------------------------------------------------------
# Transport, observability, modes
# --------------------------------------------------------------------------------------
def test_keep_alive_survives_error_answers_with_bodies(emu):
    host, port = emu.url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", f"/v2/{OWNER}/import", body=ndjson([event()] * 50), headers={"Content-Type": NDJSON})
        refused = connection.getresponse()
        assert refused.status == 401 and refused.getheader("Content-Length") is not None
        refused.read()
        first_socket = connection.sock
        connection.request("GET", f"/v2/packages/{OWNER}/pkg-1", headers=auth())
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["id"] == "pkg-1"
        assert connection.sock is first_socket is not None
    finally:
        connection.close()


def test_requests_are_recorded_without_showing_the_token(emu, http):
    post_import(http, emu, ndjson([event()]), compress=True)
    http.get(f"{emu.url}/v2/imports/{OWNER}", params=[("status", "done"), ("per_page", "5")])
    post_record, get_record = emu.requests
    assert (post_record.method, post_record.path, post_record.status) == ("POST", f"/v2/packages/{OWNER}/pkg-1/import", 200)
    assert post_record.headers["Content-Encoding"] == "gzip" and post_record.headers["Content-Type"] == NDJSON
    assert post_record.headers["User-Agent"].startswith("python-requests")
    assert post_record.auth_present and post_record.token == TOKEN and TOKEN not in repr(post_record)
    assert post_record.body_bytes_len > 0 and post_record.category == "import-post"
    assert get_record.query == {"status": ["done"], "per_page": ["5"]}
    assert not get_record.auth_present and get_record.status == 401
    emu.clear_requests()
    assert emu.requests == []


def test_no_store_mode_counts_without_storing(http):
    with make_emulator(store_events=False) as emu:
        created = post_import(http, emu, ndjson([event(), event(), "junk"])).json()
        final = wait_final(http, emu, created["id"])
        assert (final["events_successfully_imported"], final["events_failed_to_import"]) == (2, 1)
        assert emu.event_count(OWNER) == 0 and emu.events(OWNER) == []


def test_file_database_survives_a_restart(tmp_path, http):
    db = str(tmp_path / "events.sqlite")
    with make_emulator(db_path=db) as emu:
        wait_final(http, emu, post_import(http, emu, ndjson([event(_unique_id="a")])).json()["id"])
        emu.close()
    again = make_emulator(db_path=db)
    try:
        assert [e["$unique_id"] for e in again.events(OWNER)] == ["a"]
    finally:
        again.close()


def test_stop_closes_idle_keep_alive_connections(http):
    emu = make_emulator()
    emu.start()
    assert http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth()).status_code == 200
    emu.close()
    with pytest.raises(requests.ConnectionError):
        http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth())


def test_control_endpoints(emu, http):
    control = f"{emu.url}/_emulator"
    assert http.get(f"{control}/health").json()["ok"] is True

    wait_final(http, emu, post_import(http, emu, ndjson([event(k=1), "junk"])).json()["id"])
    stats = http.get(f"{control}/stats", params={"owner": OWNER}).json()
    assert {k: stats[k] for k in ("stored_events", "imports", "events_total", "events_failed")} == {
        "stored_events": 1, "imports": 1, "events_total": 2, "events_failed": 1}
    assert [e["k"] for e in http.get(f"{control}/events", params={"owner": OWNER}).json()] == [1]
    assert http.get(f"{control}/events", params={"owner": OWNER, "artifact": "pkg-2"}).json() == []
    assert len(http.get(f"{control}/imports", params={"owner": OWNER}).json()) == 1

    assert http.post(f"{control}/faults", json={"action": "fail_next", "n": 1, "status": 503, "only": "any"}).status_code == 200
    assert http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth()).status_code == 503
    assert http.post(f"{control}/faults", json={"action": "throttle_next", "n": 1, "retry_after": 2}).ok
    assert http.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth()).headers["Retry-After"] == "2"
    held = http.post(f"{control}/faults", json={"action": "hold_slots", "owner": OWNER, "k": 2}).json()["result"]
    assert len(held) == 2 and http.get(f"{control}/stats", params={"owner": OWNER}).json()["active_imports"] == 2
    released = http.post(f"{control}/faults", json={"action": "release_slots", "owner": OWNER}).json()["result"]
    assert sorted(released) == sorted(held)

    assert http.post(f"{control}/rate", json={"events_per_second": 25}).ok
    assert http.get(f"{control}/stats").json()["events_per_second"] == 25
    assert http.post(f"{control}/rate", json={"events_per_second": None}).ok
    assert http.post(f"{control}/wait_idle", json={"timeout": 5}).json() == {"idle": True}
    assert http.post(f"{control}/faults", json={"action": "explode"}).status_code == 400
    assert http.post(f"{control}/faults", json={"action": "fail_next", "n": 1, "bogus": 1}).status_code == 400
    assert http.get(f"{control}/events").status_code == 400
    assert all(not r.path.startswith("/_emulator") for r in emu.requests)
    assert [r["path"] for r in http.get(f"{control}/requests").json()] == [r.path for r in emu.requests]


def _read_line(stream, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError("the CLI printed nothing before the deadline")
        return stream.readline()
    finally:
        selector.close()


def test_cli_prints_url_and_stops_on_sigterm(http):
    process = subprocess.Popen(
        [sys.executable, "-m", "scarf_emulator", "--port", "0", "--host", "127.0.0.1", "--token", TOKEN,
         "--owner", OWNER, "--package", "pkg-1", "--package", "pkg-2", "--tracking-pixel", "px-1", "--max-active", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = _read_line(process.stdout, DEADLINE)
        assert line.startswith("SCARF_EMULATOR_URL=http://127.0.0.1:")
        url = line.strip().split("=", 1)[1]
        assert http.get(f"{url}/v2/packages/{OWNER}/pkg-2", headers=auth()).status_code == 200
        assert http.get(f"{url}/v2/tracking-pixels/{OWNER}/px-1", headers=auth()).status_code == 200
        http.post(f"{url}/_emulator/faults", json={"action": "hold_slots", "owner": OWNER, "k": 3})
        response = http.post(f"{url}/v2/{OWNER}/import", data=ndjson([event()]), headers={**auth(), "Content-Type": NDJSON})
        assert response.status_code == 422
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
        out, err = process.communicate(timeout=DEADLINE)
        assert out == ""
        assert "GET" not in err and "POST" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
