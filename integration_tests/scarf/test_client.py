"""The Scarf API client against the local emulator: every endpoint, error mapping, retries and the re-send rule.

Everything here is real HTTP on loopback. Waits are recorded through an injected `sleep`, so no test
depends on how fast the machine is; only the two read-timeout tests wait (0.3 s) for the socket
timeout they are about.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import traceback
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from airbyte_cdk.models import AirbyteMessageSerializer, FailureType

from destination_scarf.config import Target
from destination_scarf.errors import (
    ScarfAuthError,
    ScarfConfigError,
    ScarfError,
    ScarfNotFound,
    ScarfTransientError,
    TooManyActiveImports,
    UncertainImport,
)
from destination_scarf.scarf.client import USER_AGENT, EventImport, ScarfClient
from destination_scarf.scarf.retry import RetryPolicy
from support import (
    FAST_RETRY,
    OTHER_OWNER,
    OTHER_TOKEN,
    OWNER,
    PACKAGE,
    PACKAGE_2,
    PIXEL,
    ROOT,
    TOKEN,
    fast_client,
    now_iso,
    wait_for,
)

MULTI = Target(kind="multi_artifact")
TO_PACKAGE = Target(kind="package", artifact_id=PACKAGE)
TO_PIXEL = Target(kind="tracking_pixel", artifact_id=PIXEL)
UNKNOWN_ID = "99999999-9999-4999-8999-999999999999"
OPENAPI = ROOT / "destination_scarf" / "resources" / "event-import.openapi.json"


# ----- helpers -------------------------------------------------------------------------------------


class Sleeps:
    """An injected `sleep` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_with(emu, *, sleep: Sleeps | None = None, **kwargs: Any) -> ScarfClient:
    """A fast client whose jitter is fixed (rand=1.0: every wait is its ceiling) and whose waits are recorded."""
    kwargs.setdefault("rand", lambda: 1.0)
    return fast_client(emu, sleep=sleep or Sleeps(), **kwargs)


def ndjson_gz(events: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(orjson.dumps(e) + b"\n" for e in events))


def events(n: int, tag: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"$time": now_iso(-i), "$unique_id": f"{tag}-{i}", "source": tag, **extra} for i in range(n)]


def closed_port() -> int:
    """A loopback port nobody listens on: bound, read, closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def requests_of(emu, method: str | None = None, category: str | None = None):
    return [r for r in emu.requests
            if (method is None or r.method == method) and (category is None or r.category == category)]




def wait_final(client: ScarfClient, import_id: str, timeout: float = 10.0) -> EventImport:
    return wait_for(lambda: (lambda i: i if i.is_final else None)(client.get_import(import_id)),
                    timeout=timeout, what=f"import {import_id} to finish")


def _with_discriminators(node: Any) -> Any:
    """OpenAPI's `discriminator` + `oneOf` as plain JSON Schema: pick the sub-schema by the discriminating property.

    (A bare `oneOf` fails whenever an entry fits several sub-schemas, which OpenAPI resolves by the discriminator.)
    """
    if isinstance(node, list):
        return [_with_discriminators(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _with_discriminators(value) for key, value in node.items()}
    discriminator = node.pop("discriminator", None)
    if discriminator and "oneOf" in node and discriminator.get("mapping"):
        name, mapping = discriminator["propertyName"], discriminator["mapping"]
        node.pop("oneOf")
        node["required"] = sorted({*node.get("required", []), name})
        node["properties"] = {**node.get("properties", {}), name: {"enum": sorted(mapping)}}
        node["allOf"] = [{"if": {"properties": {name: {"const": value}}}, "then": {"$ref": ref}}
                         for value, ref in mapping.items()]
    return node


def validate_against_spec(instance: Any, schema_name: str) -> None:
    import jsonschema

    components = _with_discriminators(json.loads(OPENAPI.read_text())["components"])
    jsonschema.validate(instance, {"$ref": f"#/components/schemas/{schema_name}", "components": components})


@pytest.fixture
def logs(caplog):
    """Capture every log record of the connector's 'airbyte' logger and of libraries, at DEBUG."""
    airbyte = logging.getLogger("airbyte")
    airbyte.addHandler(caplog.handler)
    previous = airbyte.level
    airbyte.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    airbyte.removeHandler(caplog.handler)
    airbyte.setLevel(previous)


# ----- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("as_file", [False, True], ids=["bytes", "spool-file"])
@pytest.mark.parametrize(
    "target, extra, artifact",
    [(MULTI, {"$package": PACKAGE_2}, PACKAGE_2), (TO_PACKAGE, {}, PACKAGE), (TO_PIXEL, {}, PIXEL)],
    ids=["multi-artifact", "package", "tracking-pixel"],
)
def test_import_events_to_each_endpoint(emulator, tmp_path, target, extra, artifact, as_file):
    body = ndjson_gz(events(3, f"{target.kind}-{as_file}", **extra))
    payload: bytes | Path = body
    if as_file:
        payload = tmp_path / "batch.ndjson.gz"
        payload.write_bytes(body)
    with client_with(emulator) as client:
        created = client.import_events(target=target, body=payload, safe_to_resend=False)
        assert created.status == "importing"
        assert created.events_total == 3
        validate_against_spec(dict(created.raw), "EventImport")
        final = wait_final(client, created.id)

    assert final.status == "done" and final.is_final
    assert (final.events_successfully_imported, final.events_failed_to_import) == (3, 0)
    stored = emulator.events(OWNER, artifact)
    assert sorted(e["$unique_id"] for e in stored) == [f"{target.kind}-{as_file}-{i}" for i in range(3)]

    [post] = requests_of(emulator, "POST")
    expected_path = {
        "multi_artifact": f"/v2/{OWNER}/import",
        "package": f"/v2/packages/{OWNER}/{PACKAGE}/import",
        "tracking_pixel": f"/v2/tracking-pixels/{OWNER}/{PIXEL}/import",
    }[target.kind]
    assert post.path == expected_path
    assert post.status == 200
    assert post.headers["Content-Encoding"] == "gzip"
    assert post.headers["Content-Type"] == "application/x-ndjson"
    assert post.headers["User-Agent"].startswith("destination-scarf/")
    assert post.auth_present and post.token == TOKEN
    assert post.body_bytes_len == len(body)
    # The spool file is streamed with a known length, not chunked or read as something else.
    assert post.headers.get("Content-Length") == str(len(body))
    assert "Transfer-Encoding" not in post.headers


def test_every_request_carries_user_agent_and_bearer_token(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    with client_with(emulator) as client:
        client.list_imports()
        client.get_import(held)
        list(client.import_log(held))
        client.get_package(PACKAGE)
        client.get_tracking_pixel(PIXEL)
        client.abort_import(held)
    seen = emulator.requests
    assert len(seen) == 6
    for record in seen:
        assert record.headers["User-Agent"] == USER_AGENT
        assert record.headers["User-Agent"].startswith("destination-scarf/")
        assert record.auth_present and record.token == TOKEN
        assert 200 <= record.status < 300


def test_get_import_log_and_list_imports(emulator):
    good = events(2, "log")
    lines = [orjson.dumps({**e, "$package": PACKAGE}) for e in good] + [b"this is not json", orjson.dumps({"x": 1})]
    body = gzip.compress(b"\n".join(lines) + b"\n")
    with client_with(emulator) as client:
        first = client.import_events(target=MULTI, body=body, safe_to_resend=False)
        done = wait_final(client, first.id)
        assert done.id == first.id
        assert (done.events_total, done.events_successfully_imported, done.events_failed_to_import) == (4, 2, 2)
        assert len(done.error_log_sample) == 2
        validate_against_spec(dict(done.raw), "EventImport")

        log = list(client.import_log(first.id))
        assert {entry["type"] for entry in log} >= {"failed-to-decode", "progress"}
        progress = [entry for entry in log if entry["type"] == "progress"]
        assert progress[-1]["events_count"] == 4 and progress[-1]["failed_events_count"] == 2
        for entry in log:
            validate_against_spec(entry, "ImportLog")

        held = emulator.hold_slots(OWNER, 3)
        everything = client.list_imports(statuses=["done", "importing"], per_page=10)
        assert {i.id for i in everything} == {first.id, *held}
        page = client.list_imports(statuses=["importing"], per_page=2)
        assert len(page) == 2 and all(i.status == "importing" for i in page)
        assert {i.id for i in page} <= set(held)
        only_done = client.list_imports(statuses=["done"])
        assert [i.id for i in only_done] == [first.id]

    listing = [r for r in requests_of(emulator, "GET") if r.path == f"/v2/imports/{OWNER}"]
    assert listing[0].query == {"status": ["done", "importing"], "per_page": ["10"]}
    assert listing[1].query == {"status": ["importing"], "per_page": ["2"]}
    assert listing[2].query == {"status": ["done"]}
    assert any(r.path == f"/v2/imports/{OWNER}/{first.id}/log" for r in emulator.requests)


def test_abort_import(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    with client_with(emulator) as client:
        assert client.get_import(held).status == "importing"
        client.abort_import(held)
        after = client.get_import(held)
    assert after.status == "aborted" and after.is_final
    [abort] = requests_of(emulator, "POST")
    assert abort.path == f"/v2/imports/{OWNER}/{held}/abort" and abort.status == 204


def test_get_package_and_tracking_pixel(emulator):
    with client_with(emulator) as client:
        package = client.get_package(PACKAGE)
        pixel = client.get_tracking_pixel(PIXEL)
    assert package["id"] == PACKAGE and package["owner"] == OWNER
    assert pixel["id"] == PIXEL and pixel["owner"] == OWNER
    assert [r.path for r in emulator.requests] == [
        f"/v2/packages/{OWNER}/{PACKAGE}",
        f"/v2/tracking-pixels/{OWNER}/{PIXEL}",
    ]


# ----- error mapping -------------------------------------------------------------------------------


def test_401_empty_token_is_an_auth_error(emulator):
    with client_with(emulator, token="") as client, pytest.raises(ScarfAuthError) as caught:
        client.list_imports()
    assert caught.value.failure_type == FailureType.config_error
    assert "401" in str(caught.value) and "api_token" in str(caught.value)
    assert [r.status for r in emulator.requests] == [401]  # not retried


@pytest.mark.parametrize("token", ["wrong-token-0f3a9e", OTHER_TOKEN], ids=["unknown-token", "no-access-to-owner"])
def test_403_is_an_auth_error_naming_the_owner(emulator, token):
    with client_with(emulator, token=token) as client, pytest.raises(ScarfAuthError) as caught:
        client.list_imports()
    assert caught.value.failure_type == FailureType.config_error
    assert f"'{OWNER}'" in str(caught.value) and "403" in str(caught.value)
    assert [r.status for r in emulator.requests] == [403]  # not retried


def test_403_on_import_post_is_not_retried(emulator):
    with client_with(emulator, token=OTHER_TOKEN) as client, pytest.raises(ScarfAuthError):
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, "x")), safe_to_resend=True)
    assert [r.status for r in requests_of(emulator, "POST")] == [403]
    assert emulator.imports(OWNER) == []


@pytest.mark.parametrize(
    "owner, call, named",
    [
        ("nobody", lambda c: c.list_imports(), "nobody"),
        ("nobody", lambda c: c.import_events(target=MULTI, body=ndjson_gz(events(1, "x")), safe_to_resend=True),
         "nobody"),
        (OWNER, lambda c: c.get_package(UNKNOWN_ID), UNKNOWN_ID),
        (OWNER, lambda c: c.get_tracking_pixel(UNKNOWN_ID), UNKNOWN_ID),
        (OWNER, lambda c: c.import_events(target=Target(kind="package", artifact_id=UNKNOWN_ID),
                                          body=ndjson_gz(events(1, "x")), safe_to_resend=True), UNKNOWN_ID),
        (OWNER, lambda c: c.import_events(target=Target(kind="tracking_pixel", artifact_id=UNKNOWN_ID),
                                          body=ndjson_gz(events(1, "x")), safe_to_resend=True), UNKNOWN_ID),
        (OWNER, lambda c: c.get_import(UNKNOWN_ID), UNKNOWN_ID),
        (OWNER, lambda c: list(c.import_log(UNKNOWN_ID)), UNKNOWN_ID),
        (OWNER, lambda c: c.abort_import(UNKNOWN_ID), UNKNOWN_ID),
    ],
    ids=["owner-list", "owner-import", "package", "pixel", "package-import", "pixel-import", "import", "log",
         "abort"],
)
def test_404_is_not_found_naming_the_missing_thing(emulator, owner, call, named):
    with client_with(emulator, owner=owner) as client, pytest.raises(ScarfNotFound) as caught:
        call(client)
    assert caught.value.failure_type == FailureType.config_error
    assert named in str(caught.value) and "404" in str(caught.value)
    assert [r.status for r in emulator.requests] == [404]  # not retried
    assert emulator.imports(OWNER) == []


def test_422_too_many_active_imports_is_not_retried(emulator):
    emulator.hold_slots(OWNER, 15)
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client, pytest.raises(TooManyActiveImports) as caught:
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(2, "full")), safe_to_resend=True)
    assert caught.value.failure_type == FailureType.transient_error
    assert "422" in str(caught.value) and "15" in str(caught.value)
    posts = requests_of(emulator, "POST")
    assert [r.status for r in posts] == [422]
    assert sleeps.waits == []
    assert len(emulator.imports(OWNER)) == 15


# ----- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_on_get_is_retried_with_backoff(emulator, status):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.fail_next(2, status=status, only="import-get")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client:
        found = client.get_import(held)
    assert found.id == held
    assert [r.status for r in requests_of(emulator, "GET")] == [status, status, 200]
    # FAST_RETRY: 0.01 s doubling; rand=1.0 makes each wait its ceiling.
    assert sleeps.waits == pytest.approx([0.01, 0.02])


def test_retries_exhausted_is_transient_and_names_the_attempts(emulator):
    emulator.fail_next(FAST_RETRY.max_attempts, status=503, only="artifact-get")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client, pytest.raises(ScarfTransientError) as caught:
        client.get_package(PACKAGE)
    error = caught.value
    assert not isinstance(error, UncertainImport)
    assert error.failure_type == FailureType.transient_error
    assert f"after {FAST_RETRY.max_attempts} attempt" in str(error) and "503" in str(error)
    assert len(requests_of(emulator, "GET")) == FAST_RETRY.max_attempts
    assert len(sleeps.waits) == FAST_RETRY.max_attempts - 1
    assert sleeps.waits == sorted(sleeps.waits) and max(sleeps.waits) <= FAST_RETRY.backoff_max_seconds


def test_429_retry_after_is_honoured(emulator):
    policy = RetryPolicy(max_attempts=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
                         max_total_seconds=30, retry_after_max_seconds=5)
    emulator.throttle_next(1, retry_after=2, only="artifact-get")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps, retry=policy) as client:
        assert client.get_tracking_pixel(PIXEL)["id"] == PIXEL
    assert sleeps.waits == [2.0]
    assert [r.status for r in requests_of(emulator, "GET")] == [429, 200]


def test_connection_reset_on_get_is_retried(emulator):
    emulator.reset_next(1, only="import-get")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client:
        assert client.list_imports() == []
    assert [r.status for r in requests_of(emulator, "GET")] == [None, 200]
    assert len(sleeps.waits) == 1


def test_read_timeout_on_get_is_retried(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.delay_next(1, 1.0, only="import-get")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps, read_timeout=0.3) as client:
        assert client.get_import(held).id == held
    assert len(sleeps.waits) == 1
    # The delayed request is recorded once its (unread) answer is ready.
    wait_for(lambda: len(requests_of(emulator, "GET")) == 2, what="both GETs to be recorded")


# ----- the re-send rule for import POSTs ------------------------------------------------------------


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_post_safe_to_resend_is_retried_once_and_creates_one_import(emulator, tmp_path, fault):
    spool = tmp_path / "batch.ndjson.gz"
    spool.write_bytes(ndjson_gz(events(4, "resend")))
    if fault == "503":
        emulator.fail_next(1, status=503, only="import-post")
    else:
        emulator.reset_next(1, only="import-post")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client:
        created = client.import_events(target=TO_PACKAGE, body=spool, safe_to_resend=True)
        wait_final(client, created.id)
    posts = requests_of(emulator, "POST")
    assert [r.status for r in posts] == [503 if fault == "503" else None, 200]
    # The spool file is re-read from its start for the second attempt.
    assert [r.body_bytes_len for r in posts] == [spool.stat().st_size] * 2
    assert [i["id"] for i in emulator.imports(OWNER)] == [created.id]
    assert emulator.event_count(OWNER) == 4
    assert len(sleeps.waits) == 1


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_post_not_safe_to_resend_raises_uncertain_import_after_one_post(emulator, fault):
    if fault == "503":
        emulator.fail_next(1, status=503, only="import-post")
    else:
        emulator.reset_next(1, only="import-post")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps) as client, pytest.raises(UncertainImport) as caught:
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(2, "once")), safe_to_resend=False)
    assert caught.value.failure_type == FailureType.transient_error
    assert "unique_id" in str(caught.value)
    assert len(requests_of(emulator, "POST")) == 1
    assert sleeps.waits == []
    assert emulator.pending_faults() == []


def test_post_read_timeout_not_safe_to_resend_is_uncertain(emulator):
    emulator.delay_next(1, 1.0, only="import-post")
    with client_with(emulator, read_timeout=0.3) as client, pytest.raises(UncertainImport):
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, "slow")), safe_to_resend=False)
    # The one POST that was sent is processed by the server although the client gave up on it.
    wait_for(lambda: len(requests_of(emulator, "POST")) == 1, what="the POST to be recorded")
    assert len(requests_of(emulator, "POST")) == 1


def test_429_on_post_is_retried_even_when_not_safe_to_resend(emulator):
    policy = RetryPolicy(max_attempts=3, backoff_initial_seconds=0.01, max_total_seconds=30,
                         retry_after_max_seconds=5)
    emulator.throttle_next(1, retry_after=2, only="import-post")
    sleeps = Sleeps()
    with client_with(emulator, sleep=sleeps, retry=policy) as client:
        created = client.import_events(target=TO_PIXEL, body=ndjson_gz(events(2, "throttled")), safe_to_resend=False)
    assert [r.status for r in requests_of(emulator, "POST")] == [429, 200]
    assert sleeps.waits == [2.0]
    assert [i["id"] for i in emulator.imports(OWNER)] == [created.id]


def test_connection_refused_on_post_is_retried_then_transient(tmp_path):
    sleeps = Sleeps()
    client = ScarfClient(api_url=f"http://127.0.0.1:{closed_port()}", api_token=TOKEN, owner=OWNER,
                         retry=FAST_RETRY, sleep=sleeps, rand=lambda: 1.0, connect_timeout=5)
    with client, pytest.raises(ScarfTransientError) as caught:
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, "refused")), safe_to_resend=False)
    error = caught.value
    assert type(error) is ScarfTransientError  # not UncertainImport: the request never arrived
    assert error.failure_type == FailureType.transient_error
    assert f"after {FAST_RETRY.max_attempts} attempt" in str(error) and "could not reach" in str(error)
    assert len(sleeps.waits) == FAST_RETRY.max_attempts - 1


# ----- path segments and ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner, call, expected_path, named",
    [
        ("a/b", lambda c: c.list_imports(), "/v2/imports/a%2Fb", "a/b"),
        (f"{OWNER}?status=done", lambda c: c.list_imports(), f"/v2/imports/{OWNER}%3Fstatus%3Ddone", "?status"),
        ("ac%2Fme", lambda c: c.list_imports(), "/v2/imports/ac%252Fme", "ac%2Fme"),
        (f"x/../{OWNER}", lambda c: c.import_events(target=MULTI, body=ndjson_gz(events(1, "p")),
                                                    safe_to_resend=True),
         f"/v2/x%2F..%2F{OWNER}/import", f"x/../{OWNER}"),
        (OWNER, lambda c: c.get_package(f"../../imports/{OWNER}"),
         f"/v2/packages/{OWNER}/..%2F..%2Fimports%2F{OWNER}", f"../../imports/{OWNER}"),
        (OWNER, lambda c: c.get_package(f"{PACKAGE}?x=1"), f"/v2/packages/{OWNER}/{PACKAGE}%3Fx%3D1", "?x=1"),
        (OWNER, lambda c: c.get_tracking_pixel(f"{PIXEL}%2F"), f"/v2/tracking-pixels/{OWNER}/{PIXEL}%252F",
         f"{PIXEL}%2F"),
        (OWNER, lambda c: c.import_events(target=Target(kind="package", artifact_id=f"{PACKAGE}/import"),
                                          body=ndjson_gz(events(1, "p")), safe_to_resend=True),
         f"/v2/packages/{OWNER}/{PACKAGE}%2Fimport/import", f"{PACKAGE}/import"),
    ],
    ids=["owner-slash", "owner-query", "owner-percent", "owner-traversal", "package-traversal", "package-query",
         "pixel-percent", "package-import-slash"],
)
def test_path_segments_are_percent_encoded(emulator, owner, call, expected_path, named):
    with client_with(emulator, owner=owner) as client, pytest.raises(ScarfNotFound) as caught:
        call(client)
    assert named in str(caught.value)
    [only] = emulator.requests
    assert only.path == expected_path
    assert only.query == {}
    assert only.status == 404
    assert emulator.imports(OWNER) == []


@pytest.mark.parametrize("artifact", ["..", "."])
def test_dot_segment_ids_never_reach_another_path(emulator, artifact):
    with client_with(emulator) as client:
        try:
            client.get_package(artifact)
        except ScarfConfigError:
            pass  # refusing such an id before any request would also be correct
    for record in emulator.requests:  # none at all (refused up front) is fine too
        assert record.path.startswith(f"/v2/packages/{OWNER}/")
        assert urllib.parse.unquote(record.path.split("/")[-1]) == artifact


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_import("not-a-uuid"),
        lambda c: c.get_import(f"../{UNKNOWN_ID}"),
        lambda c: list(c.import_log(f"{UNKNOWN_ID}/x")),
        lambda c: c.abort_import(f"{UNKNOWN_ID}?x"),
        lambda c: c.list_imports(after="last"),
        lambda c: c.get_import(UNKNOWN_ID[:-1]),
        lambda c: c.get_import(""),
    ],
    ids=["get", "get-traversal", "log", "abort", "list-after", "too-short", "empty"],
)
def test_import_ids_that_are_not_uuids_are_refused_before_any_request(emulator, call):
    with client_with(emulator) as client, pytest.raises(ScarfConfigError) as caught:
        call(client)
    assert "UUID" in str(caught.value)
    assert emulator.requests == []


# ----- the token never appears ---------------------------------------------------------------------


def _scenario_client(emu, token: str, **kwargs: Any) -> ScarfClient:
    return client_with(emu, token=token, **kwargs)


def _post(client: ScarfClient, *, safe: bool, target: Target = TO_PACKAGE) -> None:
    client.import_events(target=target, body=ndjson_gz(events(1, "t")), safe_to_resend=safe)


SECRET = "sk-scarf-5e1f7a2b9c"

#: (name, token used, setup(emu), call(emu, token) -> raises)
FAILURES: list[tuple[str, str, Callable[[Any], None], Callable[[Any, str], None]]] = [
    ("401-empty", "", lambda e: None, lambda e, t: _scenario_client(e, t).list_imports()),
    ("401-malformed", SECRET + " extra", lambda e: None, lambda e, t: _scenario_client(e, t).list_imports()),
    ("403-unknown", SECRET, lambda e: None, lambda e, t: _scenario_client(e, t).get_package(PACKAGE)),
    ("403-no-access", SECRET, lambda e: e.add_token(SECRET, [OTHER_OWNER]),
     lambda e, t: _post(_scenario_client(e, t), safe=True)),
    ("404-owner", SECRET, lambda e: e.add_token(SECRET, [OWNER]),
     lambda e, t: _scenario_client(e, t, owner="nobody").list_imports()),
    ("404-package", SECRET, lambda e: e.add_token(SECRET, [OWNER]),
     lambda e, t: _scenario_client(e, t).get_package(UNKNOWN_ID)),
    ("404-pixel", SECRET, lambda e: e.add_token(SECRET, [OWNER]),
     lambda e, t: _scenario_client(e, t).get_tracking_pixel(UNKNOWN_ID)),
    ("404-import", SECRET, lambda e: e.add_token(SECRET, [OWNER]),
     lambda e, t: _scenario_client(e, t).abort_import(UNKNOWN_ID)),
    ("422", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.hold_slots(OWNER, 15)),
     lambda e, t: _post(_scenario_client(e, t), safe=True)),
    ("5xx-exhausted", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.fail_next(9, 502)),
     lambda e, t: _scenario_client(e, t).list_imports()),
    ("429-exhausted", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.throttle_next(9, 0)),
     lambda e, t: _scenario_client(e, t).get_tracking_pixel(PIXEL)),
    ("uncertain-503", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.fail_next(1, 503)),
     lambda e, t: _post(_scenario_client(e, t), safe=False)),
    ("uncertain-reset", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.reset_next(1)),
     lambda e, t: _post(_scenario_client(e, t), safe=False, target=MULTI)),
    ("reset-exhausted", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.reset_next(9)),
     lambda e, t: _scenario_client(e, t).get_package(PACKAGE)),
    ("refused", SECRET, lambda e: None,
     lambda e, t: _post(ScarfClient(api_url=f"http://127.0.0.1:{closed_port()}", api_token=t, owner=OWNER,
                                    retry=FAST_RETRY, sleep=Sleeps()), safe=False)),
    ("unexpected-status", SECRET, lambda e: (e.add_token(SECRET, [OWNER]), e.fail_next(1, 418)),
     lambda e, t: _scenario_client(e, t).get_package(PACKAGE)),
]


@pytest.mark.parametrize("name, token, setup, call", FAILURES, ids=[f[0] for f in FAILURES])
def test_token_never_appears_in_errors_or_logs(emulator, logs, name, token, setup, call):
    setup(emulator)
    with pytest.raises(ScarfError) as caught:
        call(emulator, token)
    error = caught.value
    texts = [
        str(error),
        repr(error),
        error.message or "",
        error.internal_message or "",
        "".join(traceback.format_exception(error)),
        json.dumps(AirbyteMessageSerializer.dump(error.as_airbyte_message())),
        logs.text,
        "\n".join(repr(r.__dict__) for r in logs.records),
    ]
    secrets = [s for s in {token, token.strip(), token.split(" ")[0]} if s]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"token leaked in {name}"
    if name.endswith("exhausted") or name == "refused":
        assert "retry" in logs.text  # the retry warnings were captured, so the log check above means something


# ----- EventImport ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["uploading", "queued", None])
def test_unknown_status_is_kept_and_not_final(status):
    data = {"id": UNKNOWN_ID, "status": status, "events_total": 3, "future_field": {"a": 1}}
    parsed = EventImport.from_json(data)
    assert parsed.status == status
    assert parsed.is_final is False
    assert parsed.events_total == 3
    assert parsed.raw["future_field"] == {"a": 1}


@pytest.mark.parametrize("status", ["done", "aborted"])
def test_final_statuses_are_final(status):
    assert EventImport.from_json({"id": UNKNOWN_ID, "status": status}).is_final is True


def test_import_without_id_is_refused():
    with pytest.raises(ScarfTransientError):
        EventImport.from_json({"status": "done"})



@pytest.mark.parametrize("call", [lambda c: c.get_import(UNKNOWN_ID + "\n"),
                                  lambda c: c.abort_import(UNKNOWN_ID + "\n")], ids=["get", "abort"])
def test_import_id_with_trailing_newline_is_refused_before_any_request(emulator, call):
    with client_with(emulator) as client, pytest.raises(ScarfConfigError) as caught:
        call(client)
    assert "UUID" in str(caught.value)
    assert emulator.requests == []
