"""The S3 dead-letter store against a real S3-compatible server: moto's server mode, on loopback.

Every S3 call goes over HTTP through boto3 to the server, which this module starts once on an ephemeral
port. Access-denied cases turn on the server's own IAM checks (moto's /moto-api/reset-auth) for the test
that needs them, and turn them off again.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import gzip
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from typing import Any

import boto3
import orjson
import pytest
from airbyte_cdk.models import ConnectorSpecificationSerializer
from airbyte_cdk.test.standard_tests._spec_lint import assert_spec_is_valid
from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets
from moto.server import ThreadedMotoServer

from destination_scarf.dead_letter import (
    PROBE_TIMEOUTS,
    SPEC_FRAGMENT,
    S3DeadLetterStore,
    S3Settings,
    S3Timeouts,
    bounded,
    job_folder,
    new_attempt_id,
    parse_object_storage,
    probe,
)
from destination_scarf.dead_letter.store import LOG_EVERY_SECONDS
from destination_scarf.errors import ScarfConfigError, ScarfError, ScarfTransientError, SyncCancelled
from support import ROOT, run_with_hang_guard, wait_for

KEY_ID = "AKIAFAKEKEYID0123456"
SECRET = "fake/Secret+Access+Key0123456789abcdefXYZ"
#: The attempt id the store tests name their objects with.
ATTEMPT = "20260611T010203Z-ab12cd34"
#: Short bounds, so the failure tests take about a second each.
FAST = S3Timeouts(connect_seconds=0.5, read_seconds=0.5, max_attempts=2)


@pytest.fixture(autouse=True)
def isolated_aws_environment(monkeypatch):
    """No credentials, config files or instance metadata from this machine: only what a test sets."""
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


@pytest.fixture(scope="module")
def server_url():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(server_url):
    """A plain boto3 client for setting up buckets and reading back what the store wrote."""
    return boto3.client("s3", endpoint_url=server_url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


_buckets = iter(range(10_000))


@pytest.fixture
def bucket(s3):
    name = f"rejects-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    return name


def settings_for(server_url: str, bucket: str, **overrides) -> S3Settings:
    values: dict[str, Any] = dict(bucket=bucket, region="us-east-1", bucket_path="team/scarf", endpoint=server_url,
                  access_key_id=KEY_ID, secret_access_key=SECRET)
    values.update(overrides)
    return S3Settings(**values)


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def line(n: int, pad: int = 0) -> bytes:
    return orjson.dumps({"n": n, "reason": "x" * pad, "message": {"type": "RECORD", "record": {"data": {"n": n}}}})


def assert_no_credentials(error: BaseException) -> None:
    texts = [str(error)]
    if isinstance(error, ScarfError):
        texts += [error.message or "", error.internal_message or ""]
    for text in texts:
        assert KEY_ID not in text and SECRET not in text, text


# --- the store ------------------------------------------------------------------------------------


def test_the_module_imports_boto3_only_when_a_store_is_created():
    """boto3 is needed only when a store is configured; importing and parsing work without it.

    (airbyte-cdk's requests-cache imports boto3 on its own whenever it is installed, so the check blocks
    boto3 in a subprocess rather than looking for it in sys.modules of a normal import.)
    """
    modules = sorted((ROOT / "destination_scarf" / "dead_letter").glob("*.py"))
    top_level = [node for path in modules for node in ast.parse(path.read_text()).body
                 if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [alias.name for node in top_level for alias in node.names] + [
        node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not [name for name in names if name.split(".")[0] in ("boto3", "botocore")]
    code = """
import sys
for name in ("boto3", "botocore", "s3transfer"):
    sys.modules[name] = None  # any import of them fails
from destination_scarf.dead_letter import S3DeadLetterStore, S3Settings, parse_object_storage
from destination_scarf.errors import ScarfConfigError
assert parse_object_storage({"storage_type": "None"}) == (None, [])
settings, problems = parse_object_storage({"storage_type": "S3", "s3_bucket_name": "b", "bucket_path": "p"})
assert problems == [] and settings is not None
try:
    S3DeadLetterStore(settings, "sync", "attempt")
except ScarfConfigError as error:
    print(error.message)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "needs the boto3 package" in result.stdout


def test_lines_become_one_ndjson_object_per_batch_in_the_job_folder_named_by_the_attempt(server_url, s3, bucket):
    settings = settings_for(server_url, bucket)
    lines = [line(n) for n in range(5)]
    with S3DeadLetterStore(settings, "4711", ATTEMPT) as store:
        for item in lines:
            store.add(item)
        assert keys(s3, bucket) == []  # buffered until the batch is full, or flushed
    # The folder Airbyte's platform links: s3://<bucket>/<bucket_path>/<job id>/ (S3ObjectStoragePathResolver).
    assert store.location == f"s3://{bucket}/team/scarf/4711/"
    key = f"team/scarf/4711/rejected-{ATTEMPT}-00001.jsonl"
    assert keys(s3, bucket) == [key] == store.keys_written
    assert body(s3, bucket, key) == b"".join(item + b"\n" for item in lines)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/x-ndjson"
    assert store.lines_written == 5


def test_a_batch_is_written_when_the_buffer_reaches_its_size(server_url, s3, bucket):
    lines = [line(n, pad=30) for n in range(10)]  # about 90 bytes each
    store = S3DeadLetterStore(settings_for(server_url, bucket, bucket_path=""), "sync-1", ATTEMPT, batch_bytes=250)
    for item in lines:
        store.add(item)
    written = keys(s3, bucket)
    assert written == [f"sync-1/rejected-{ATTEMPT}-0000{n}.jsonl" for n in (1, 2, 3)]  # bucket_path "": the root
    for key in written:  # whole lines only, and a batch closes as soon as it reaches the size
        content = body(s3, bucket, key)
        assert content.endswith(b"\n") and 250 <= len(content) < 250 + len(lines[0]) + 1
    store.close()
    written = keys(s3, bucket)
    assert written[-1] == f"sync-1/rejected-{ATTEMPT}-00004.jsonl"
    assert b"".join(body(s3, bucket, key) for key in written) == b"".join(item + b"\n" for item in lines)
    assert store.lines_written == 10


def test_flush_writes_what_is_buffered_and_close_is_final(server_url, s3, bucket):
    store = S3DeadLetterStore(settings_for(server_url, bucket), "sync-2", ATTEMPT)
    store.flush()  # nothing buffered: no empty object
    assert keys(s3, bucket) == []
    store.add(line(1) + b"\n")  # a trailing newline is kept single
    store.flush()
    store.add(line(2))
    store.close()
    store.close()
    assert [body(s3, bucket, key) for key in keys(s3, bucket)] == [line(1) + b"\n", line(2) + b"\n"]
    with pytest.raises(ValueError):
        store.add(line(3))
    with pytest.raises(ValueError):
        S3DeadLetterStore(settings_for(server_url, bucket), "sync-3", ATTEMPT).add(b'{"a":1}\n{"b":2}')


def test_gzip_objects_are_named_jsonl_gz(server_url, s3, bucket):
    with S3DeadLetterStore(settings_for(server_url, bucket, gzip=True), "sync-gz", ATTEMPT) as store:
        store.add(line(1))
        store.add(line(2))
    [key] = keys(s3, bucket)
    assert key.endswith(f"/sync-gz/rejected-{ATTEMPT}-00001.jsonl.gz")
    assert gzip.decompress(body(s3, bucket, key)) == line(1) + b"\n" + line(2) + b"\n"


def test_lines_added_from_many_threads_are_all_written(server_url, s3, bucket):
    store = S3DeadLetterStore(settings_for(server_url, bucket), "sync-threads", ATTEMPT, batch_bytes=2000)

    def add_many(start: int) -> None:
        for n in range(start, start + 50):
            store.add(line(n))

    threads = [threading.Thread(target=add_many, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    seen = [orjson.loads(row)["n"] for key in keys(s3, bucket) for row in body(s3, bucket, key).splitlines()]
    assert sorted(seen) == sorted(n for i in range(4) for n in range(i * 1000, i * 1000 + 50))
    assert store.lines_written == 200


def test_a_missing_bucket_is_a_config_error_and_the_lines_are_kept(server_url, s3):
    store = S3DeadLetterStore(settings_for(server_url, "no-such-bucket-here"), "sync-4", ATTEMPT)
    store.add(line(1))
    with pytest.raises(ScarfConfigError) as raised:
        store.flush()
    message = raised.value.message
    assert "no-such-bucket-here" in message and "does not exist" in message and "s3_bucket_name" in message
    assert f"s3://no-such-bucket-here/team/scarf/sync-4/rejected-{ATTEMPT}-00001.jsonl" in message
    assert_no_credentials(raised.value)
    # Nothing was dropped: once the bucket exists, the same part is written with the same line.
    s3.create_bucket(Bucket="no-such-bucket-here")
    store.close()
    assert keys(s3, "no-such-bucket-here") == [f"team/scarf/sync-4/rejected-{ATTEMPT}-00001.jsonl"]
    assert body(s3, "no-such-bucket-here", store.keys_written[0]) == line(1) + b"\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Clients:
    """The S3 clients boto3 made during one test, each with the attempts it sent.

    botocore fires its `before-send` event once per attempt, retries included, so the attempts are counted,
    not timed; and each client's config holds the timeouts and retries the store built it with.
    """

    def __init__(self) -> None:
        self.made: list[tuple[Any, list[str]]] = []

    def only(self) -> tuple[Any, list[str]]:
        """The one client made (and the operation of each attempt it sent)."""
        assert len(self.made) == 1, f"{len(self.made)} S3 clients were made"
        return self.made[0]


@pytest.fixture
def s3_clients(monkeypatch) -> S3Clients:
    clients = S3Clients()
    make = boto3.session.Session.client

    def client(self, *args: Any, **kwargs: Any) -> Any:
        made = make(self, *args, **kwargs)
        attempts: list[str] = []
        made.meta.events.register(
            "before-send", lambda event_name, **_: attempts.append(event_name.rsplit(".", 1)[-1]))
        clients.made.append((made, attempts))
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return clients


def assert_bounded_by(client: Any, timeouts: S3Timeouts) -> None:
    """The client's connect and read timeouts and its attempts in all are `timeouts`' (botocore's config)."""
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (timeouts.connect_seconds, timeouts.read_seconds)
    assert config.retries == {"mode": "standard", "total_max_attempts": timeouts.max_attempts}


class SilentServer:
    """A loopback TCP server that accepts and counts connections, holds them open and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-s3", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._listener.close()


def test_an_endpoint_that_is_down_is_a_transient_error_after_the_stores_bounded_attempts(s3_clients):
    url = f"http://127.0.0.1:{_free_port()}"
    store = S3DeadLetterStore(settings_for(url, "bucket"), "sync-5", ATTEMPT, timeouts=FAST)
    store.add(line(1))
    with pytest.raises(ScarfTransientError) as raised:
        run_with_hang_guard(store.close, "writing to an S3 endpoint that is down")
    assert "cannot connect to " + url in raised.value.message and "s3://bucket/" in raised.value.message
    assert_no_credentials(raised.value)
    # Bounded by the store's own settings, counted rather than timed: its timeouts, and every attempt it
    # had (one upload, retried up to max_attempts in all), then no more.
    client, attempts = s3_clients.only()
    assert_bounded_by(client, FAST)
    assert attempts == ["PutObject"] * FAST.max_attempts


def test_an_endpoint_that_never_answers_times_out_after_the_probes_bounded_attempts(s3_clients):
    silent = SilentServer()
    try:
        with pytest.raises(ScarfTransientError) as raised:
            run_with_hang_guard(lambda: probe(settings_for(silent.url, "bucket"), timeouts=FAST),
                                "a probe of an S3 endpoint that never answers")
        wait_for(lambda: silent.connections >= 1, "the silent server to accept the probe's connection")
    finally:
        silent.close()
    assert "did not answer in time" in raised.value.message
    assert_no_credentials(raised.value)
    # Each attempt waited out the read timeout it was given (FAST's 0.5 s, not botocore's 60 s), and there
    # were max_attempts of them: the silent server accepted no more connections than that.
    client, attempts = s3_clients.only()
    assert_bounded_by(client, FAST)
    assert attempts == ["PutObject"] * FAST.max_attempts
    assert 1 <= silent.connections <= FAST.max_attempts


# --- probe (check) --------------------------------------------------------------------------------


def test_probe_writes_and_deletes_a_check_object(server_url, s3, bucket):
    key = probe(settings_for(server_url, bucket))
    assert key.startswith("team/scarf/_destination-scarf-check-") and key.endswith(".jsonl")
    assert keys(s3, bucket) == []


def test_probe_of_a_missing_bucket_fails_at_its_first_answer_within_checks_bounds(server_url, s3_clients):
    with pytest.raises(ScarfConfigError) as raised:
        run_with_hang_guard(lambda: probe(settings_for(server_url, "missing-bucket")), "a probe of a missing bucket")
    assert "missing-bucket does not exist" in raised.value.message
    assert_no_credentials(raised.value)
    # In seconds, shown without a stopwatch: the probe uses check's short bounds (PROBE_TIMEOUTS, not a
    # sync's), and the first answer settles it, without a retry.
    client, attempts = s3_clients.only()
    assert_bounded_by(client, PROBE_TIMEOUTS)
    assert attempts == ["PutObject"]


@pytest.fixture(scope="module")
def iam(server_url):
    return boto3.client("iam", endpoint_url=server_url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)


def allow(*actions: str) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


def new_user_key(iam, *actions: str) -> tuple[str, str]:
    """A user of the server's IAM allowed only `actions`: its access key ID and secret."""
    user = f"user-{next(_buckets)}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=allow(*actions))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@contextlib.contextmanager
def auth_checks(server_url: str):
    """The server checks every request's signature and IAM policy while inside (moto's reset-auth)."""

    def set_auth(after_requests: str) -> None:
        request = urllib.request.Request(f"{server_url}/moto-api/reset-auth", data=after_requests.encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=5).read()

    set_auth("0")
    try:
        yield
    finally:
        set_auth("inf")


def test_access_denied_and_unknown_or_wrong_keys_are_config_errors_without_the_keys(server_url, bucket, iam):
    reader_key, reader_secret = new_user_key(iam, "s3:GetObject", "s3:ListBucket")
    cases = [
        ((reader_key, reader_secret), "AccessDenied", f"s3:PutObject under s3://{bucket}/team/scarf/"),
        ((KEY_ID, SECRET), "InvalidAccessKeyId", "check access_key_id"),
        ((reader_key, SECRET), "SignatureDoesNotMatch", "check secret_access_key"),
    ]
    with auth_checks(server_url):
        for (key_id, secret), code, hint in cases:
            settings = settings_for(server_url, bucket, access_key_id=key_id, secret_access_key=secret)
            with pytest.raises(ScarfConfigError) as raised:
                probe(settings)
            message = raised.value.message
            assert f"({code}" in message and hint in message and bucket in message, message
            for text in (message, raised.value.internal_message, str(raised.value)):
                assert secret not in text and key_id not in text and reader_secret not in text, text


def test_a_probe_that_may_write_but_not_delete_fails_naming_the_permission(server_url, s3, bucket, iam):
    writer = new_user_key(iam, "s3:PutObject")
    with auth_checks(server_url), pytest.raises(ScarfConfigError) as raised:
        probe(settings_for(server_url, bucket, access_key_id=writer[0], secret_access_key=writer[1]))
    assert "Could not delete the check object" in raised.value.message
    assert "s3:DeleteObject" in raised.value.message


def test_role_arn_is_assumed_with_the_environment_credentials(server_url, s3, bucket, iam, monkeypatch):
    """As in the bulk CDK: the environment's credentials (Airbyte Cloud's) may only assume the role, and
    only the role may write, so the write succeeds only if S3 is called with the role's credentials."""
    boot_key, boot_secret = new_user_key(iam, "sts:AssumeRole")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
    role = iam.create_role(RoleName=f"writer-{next(_buckets)}", AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="write", PolicyDocument=allow("s3:PutObject"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", boot_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", boot_secret)
    monkeypatch.setenv("AWS_ASSUME_ROLE_EXTERNAL_ID", "workspace-1234")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", server_url)  # botocore's own setting, for the role's STS calls
    settings = settings_for(server_url, bucket, access_key_id=None, secret_access_key=None, role_arn=role["Arn"])
    with auth_checks(server_url):
        with S3DeadLetterStore(settings, "sync-role", ATTEMPT) as store:
            store.add(line(1))
        # The environment's credentials alone may not write.
        with pytest.raises(ScarfConfigError, match=r"\(AccessDenied"):
            with S3DeadLetterStore(settings_for(server_url, bucket, access_key_id=boot_key,
                                                secret_access_key=boot_secret), "sync-boot", ATTEMPT) as direct:
                direct.add(line(2))
    assert keys(s3, bucket) == [f"team/scarf/sync-role/rejected-{ATTEMPT}-00001.jsonl"]


def test_role_arn_without_environment_credentials_is_a_config_error(server_url, bucket):
    settings = settings_for(server_url, bucket, access_key_id=None, secret_access_key=None,
                            role_arn="arn:aws:iam::123456789012:role/scarf-rejects")
    with pytest.raises(ScarfConfigError, match="no AWS credentials to assume it with"):
        probe(settings)


def test_no_credentials_at_all_is_a_config_error(server_url, bucket):
    with pytest.raises(ScarfConfigError, match="no AWS credentials were found"):
        probe(settings_for(server_url, bucket, access_key_id=None, secret_access_key=None))


def test_attempt_ids_sort_by_start_time_and_never_repeat():
    import datetime

    moment = datetime.datetime(2026, 6, 11, 1, 2, 3, tzinfo=datetime.timezone.utc)
    ids = {new_attempt_id(now=moment) for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("20260611T010203Z-") for i in ids)


def test_the_job_folder_is_the_catalogs_sync_id_else_worker_job_id_else_generated():
    assert job_folder(catalog_sync_id=4711, environment_job_id="12", attempt_id=ATTEMPT) == (
        "4711", "the configured catalog's sync_id")
    assert job_folder(catalog_sync_id=None, environment_job_id="12", attempt_id=ATTEMPT) == ("12", "WORKER_JOB_ID")
    folder, source = job_folder(attempt_id=ATTEMPT)
    assert folder == f"destination-scarf-{ATTEMPT}" and source.startswith("generated")
    # Values that are not one safe path segment are not used.
    for unsafe in ("../x", "a/b", "", -1, True, 1.5, "x" * 65):
        assert job_folder(catalog_sync_id=unsafe, attempt_id=ATTEMPT)[0] == f"destination-scarf-{ATTEMPT}"
        if isinstance(unsafe, str):
            assert job_folder(environment_job_id=unsafe, attempt_id=ATTEMPT)[0] == f"destination-scarf-{ATTEMPT}"


# --- parse_object_storage and the spec fragment ---------------------------------------------------

S3_MINIMAL = {"storage_type": "S3", "s3_bucket_name": "my-bucket", "s3_bucket_region": "", "bucket_path": ""}


@pytest.mark.parametrize("raw", [None, {}, {"storage_type": "None"}, {"storage_type": "None", "s3_bucket_name": "x"}])
def test_no_store(raw):
    assert parse_object_storage(raw) == (None, [])


def test_a_full_s3_config_is_parsed():
    settings, problems = parse_object_storage({
        "storage_type": "S3", "s3_bucket_name": " my_legacy.Bucket ", "s3_bucket_region": "eu-west-1",
        "bucket_path": "/airbyte//rejects/", "s3_endpoint": "http://127.0.0.1:9000/", "access_key_id": KEY_ID,
        "secret_access_key": SECRET, "format": {"format_type": "JSONL", "flattening": "No flattening"},
        "compression": {"compression_type": "GZIP"},
    })
    assert problems == []
    assert settings == S3Settings(bucket="my_legacy.Bucket", region="eu-west-1", bucket_path="airbyte/rejects",
                                  endpoint="http://127.0.0.1:9000", access_key_id=KEY_ID,
                                  secret_access_key=SECRET, gzip=True)
    assert settings.describe() == "s3://my_legacy.Bucket/airbyte/rejects/"
    assert KEY_ID not in repr(settings) and SECRET not in repr(settings)
    assert parse_object_storage(S3_MINIMAL) == (S3Settings(bucket="my-bucket"), [])


@pytest.mark.parametrize("changes, expected", [
    ({"s3_bucket_name": None}, "object_storage_config.s3_bucket_name is required"),
    ({"s3_bucket_name": "  "}, "object_storage_config.s3_bucket_name is required"),
    ({"s3_bucket_name": 7}, "object_storage_config.s3_bucket_name must be text"),
    ({"s3_bucket_name": "s3://my-bucket/rejects"}, "object_storage_config.s3_bucket_name must be the bucket's name "
                                                   "alone, without s3:// or a path: put the folder in bucket_path"),
    ({"s3_bucket_name": "my bucket"}, "object_storage_config.s3_bucket_name must be a bucket name: letters, digits, "
                                      "'.', '_' or '-'"),
    ({"s3_bucket_region": "Europe (Paris)"}, "object_storage_config.s3_bucket_region must be a region code such as "
                                             "us-east-1, or empty"),
    ({"s3_endpoint": "localhost:9000"}, "object_storage_config.s3_endpoint must be an http(s) URL such as "
                                        "http://localhost:9000"),
    ({"s3_endpoint": "https://user:pw@minio.local"}, "object_storage_config.s3_endpoint must not carry credentials, "
                                                      "a query or a fragment"),
    ({"s3_endpoint": "https://minio.local/bucket"}, "object_storage_config.s3_endpoint must be the server's URL "
                                                     "without a path; put the folder in bucket_path"),
    ({"bucket_path": "a/../b"}, "object_storage_config.bucket_path must be a folder path such as rejects/scarf, "
                                "without '.', '..' or control characters"),
    ({"bucket_path": ["a"]}, "object_storage_config.bucket_path must be text"),
    ({"access_key_id": KEY_ID}, "object_storage_config.secret_access_key is required with access_key_id"),
    ({"secret_access_key": SECRET}, "object_storage_config.access_key_id is required with secret_access_key"),
    ({"access_key_id": KEY_ID, "secret_access_key": SECRET + "\u200b"},
     "object_storage_config.secret_access_key has a space, line break or character outside ASCII inside it: copy "
     "it again, without anything around it"),
    ({"role_arn": "my-role"}, "object_storage_config.role_arn must be an IAM role ARN such as "
                              "arn:aws:iam::123456789012:role/name"),
    ({"role_arn": "arn:aws:iam::123456789012:role/r", "access_key_id": KEY_ID, "secret_access_key": SECRET},
     "object_storage_config: give either access_key_id and secret_access_key, or role_arn, not both"),
    ({"format": {"format_type": "CSV", "flattening": "No flattening"}},
     "object_storage_config.format.format_type must be JSONL"),
    ({"format": {"format_type": "JSONL", "flattening": "Root level flattening"}},
     "object_storage_config.format.flattening must be No flattening: rejected records keep their Airbyte message "
     "as received"),
    ({"compression": {"compression_type": "ZSTD"}},
     "object_storage_config.compression.compression_type must be No Compression or GZIP"),
    ({"path_format": "{sync_id}/{namespace}/{stream_name}/"},
     "object_storage_config.path_format is not supported: objects are written under "
     "<bucket_path>/<job id>/rejected-<attempt>-<part>.jsonl"),
])
def test_each_problem_names_the_field_and_never_the_secret(changes, expected):
    settings, problems = parse_object_storage({**S3_MINIMAL, **changes})
    assert settings is None
    assert problems == [expected]
    assert not any(SECRET in problem or KEY_ID in problem for problem in problems)


@pytest.mark.parametrize("raw, expected", [
    ("S3", "object_storage_config must be an object with storage_type None or S3"),
    ({"storage_type": "GCS"}, "object_storage_config.storage_type must be None or S3"),
    ({"s3_bucket_name": "b"}, "object_storage_config.storage_type must be None or S3"),
])
def test_the_storage_type_must_be_none_or_s3(raw, expected):
    assert parse_object_storage(raw) == (None, [expected])


def test_every_problem_is_reported_at_once():
    _, problems = parse_object_storage({"storage_type": "S3", "s3_bucket_region": "?", "access_key_id": KEY_ID})
    assert len(problems) == 3


def test_the_spec_fragment_has_the_bulk_cdk_names_and_passes_the_cdk_spec_lint():
    none, s3_variant = SPEC_FRAGMENT["oneOf"]
    assert none["properties"]["storage_type"]["enum"] == ["None"]
    assert s3_variant["properties"]["storage_type"]["enum"] == ["S3"]
    assert set(s3_variant["properties"]) == {
        "storage_type", "access_key_id", "secret_access_key", "role_arn", "s3_bucket_name", "s3_bucket_region",
        "s3_endpoint", "bucket_path", "format", "compression",
    }
    spec = orjson.loads((ROOT / "spec.json").read_bytes())
    spec["connectionSpecification"]["properties"]["object_storage_config"] = copy.deepcopy(SPEC_FRAGMENT)
    assert_spec_is_valid(ConnectorSpecificationSerializer.load(spec), connector_name="destination-scarf")
    # The CDK's log filter finds both keys through the oneOf, so they are masked wherever they would be printed.
    config = {"api_token": "t" * 12, "object_storage_config": {**S3_MINIMAL, "access_key_id": KEY_ID,
                                                               "secret_access_key": SECRET}}
    assert {KEY_ID, SECRET} <= set(get_secrets(spec["connectionSpecification"], config))
    # Every config the parser accepts is valid against the fragment's own schema.
    import jsonschema

    jsonschema.validate(S3_MINIMAL, SPEC_FRAGMENT)
    jsonschema.validate({"storage_type": "None"}, SPEC_FRAGMENT)


# --- a sync that keeps its rejected records in S3 --------------------------------------------------------


def _storage_config(server_url: str, bucket: str) -> dict[str, Any]:
    return {"storage_type": "S3", "s3_bucket_name": bucket, "s3_bucket_region": "us-east-1", "bucket_path": "dlq",
            "s3_endpoint": server_url, "access_key_id": KEY_ID, "secret_access_key": SECRET}


def _sync_messages():
    from support import download, now_iso, record, stream_state

    unknown_package = "99999999-9999-4999-8999-999999999999"
    messages = [record("downloads", download(n)) for n in range(1, 4)]
    messages.append(record("downloads", download(4, time=now_iso(-9 * 86400))))  # too old: refused before upload
    messages.append(record("downloads", download(5, package=unknown_package)))  # Scarf fails it
    messages.append(stream_state("downloads", 5))
    return messages


def test_a_sync_stores_refused_records_and_failed_events_before_their_state_leaves(emulator, server_url, s3, bucket):
    from support import catalog, lines, make_config, make_writer

    config = make_config(emulator, on_invalid_record="skip", on_failed_events="warn",
                         object_storage_config=_storage_config(server_url, bucket))
    writer = make_writer(emulator, config, catalog("downloads"))
    stored_when_the_state_left = None
    for state in writer.write(lines(_sync_messages())):
        assert state["state"]["destinationStats"] == {"recordCount": 5, "rejectedRecordCount": 2}
        stored_when_the_state_left = [orjson.loads(entry) for key in keys(s3, bucket, "dlq/")
                                      for entry in body(s3, bucket, key).splitlines()]
    assert stored_when_the_state_left is not None
    by_position = {entry["record_position"]: entry for entry in stored_when_the_state_left}
    assert set(by_position) == {4, 5}
    assert by_position[4]["field"] == "$time" and by_position[4]["message"]["record"]["data"]["id"] == 4
    assert by_position[5]["reason"].startswith("Scarf could not import the event: artifact-not-found")
    assert by_position[5]["event"]["id"] == "5" and "import_id" in by_position[5]
    assert by_position[5]["message"]["record"]["data"]["id"] == 5  # the record's message, as for a refused one
    # Outside Airbyte (no sync_id in the catalog, no WORKER_JOB_ID) the job folder is made up.
    assert all(key.startswith("dlq/destination-scarf-") for key in keys(s3, bucket, "dlq/"))


def _platform_link(storage: dict[str, Any], job_id: int) -> str:
    """Where Airbyte's platform links a job's rejected records (airbyte-platform's S3ObjectStoragePathResolver:
    the bucket_path with its trailing '/' trimmed, then the job id)."""
    path = storage["bucket_path"]
    job_path = f"{job_id}/" if not path else f"{path.rstrip('/')}/{job_id}/"
    return f"s3://{storage['s3_bucket_name']}/{job_path}"


def _rejected_once(emulator, config: dict[str, Any], catalog_: dict[str, Any]) -> None:
    from support import lines, make_writer

    states = list(make_writer(emulator, config, catalog_).write(lines(_sync_messages())))
    assert len(states) == 1


def test_rejected_records_go_where_airbyte_links_them_and_two_attempts_of_a_job_keep_both(
        emulator, server_url, s3, bucket, caplog, monkeypatch):
    from support import catalog, make_config

    monkeypatch.setenv("WORKER_JOB_ID", "999")  # the catalog's sync_id comes first
    storage = {**_storage_config(server_url, bucket), "bucket_path": "airbyte/rejects/"}
    config = make_config(emulator, on_invalid_record="skip", on_failed_events="warn", object_storage_config=storage)
    job = catalog("downloads")
    for stream in job["streams"]:
        stream["sync_id"] = 4711  # Airbyte's job id, in every configured stream
    with caplog.at_level(logging.INFO, logger="airbyte"):
        _rejected_once(emulator, config, job)
        _rejected_once(emulator, config, job)  # a second attempt of the same job
    link = _platform_link(storage, 4711)
    assert link == f"s3://{bucket}/airbyte/rejects/4711/"
    written = keys(s3, bucket)
    assert len(written) == 2 and all(f"s3://{bucket}/{key}".startswith(link) for key in written)
    # Each attempt's objects are its own: named by its start time and a random part, nothing overwritten.
    assert all(re.fullmatch(r"airbyte/rejects/4711/rejected-\d{8}T\d{6}Z-[0-9a-f]{8}-00001\.jsonl", key)
               for key in written)
    for key in written:
        assert {orjson.loads(entry)["record_position"] for entry in body(s3, bucket, key).splitlines()} == {4, 5}
    said = [r.getMessage() for r in caplog.records if "Rejected records of this sync go to" in r.getMessage()]
    assert len(said) == 2 and all(link in text and "the configured catalog's sync_id" in text for text in said)


def test_without_a_sync_id_the_job_folder_is_worker_job_id(emulator, server_url, s3, bucket, monkeypatch):
    from support import catalog, make_config

    monkeypatch.setenv("WORKER_JOB_ID", "815")
    storage = {**_storage_config(server_url, bucket), "bucket_path": ""}  # the bucket's root
    config = make_config(emulator, on_invalid_record="skip", on_failed_events="warn", object_storage_config=storage)
    _rejected_once(emulator, config, catalog("downloads"))
    [key] = keys(s3, bucket)
    assert f"s3://{bucket}/{key}".startswith(_platform_link(storage, 815)) and key.startswith("815/rejected-")


def test_a_store_that_cannot_be_written_fails_the_sync_and_no_state_leaves(emulator, server_url, s3):
    from support import catalog, lines, make_config, make_writer

    config = make_config(emulator, on_invalid_record="skip", on_failed_events="warn",
                         object_storage_config=_storage_config(server_url, "missing-sync-bucket"))
    states: list = []
    with pytest.raises(ScarfConfigError) as caught:
        for state in make_writer(emulator, config, catalog("downloads")).write(lines(_sync_messages())):
            states.append(state)
    assert "missing-sync-bucket" in caught.value.message
    assert states == []
    assert_no_credentials(caught.value)


def test_a_store_that_cannot_be_written_keeps_the_states_before_the_rejected_record(emulator, server_url):
    from support import catalog, download, lines, make_config, make_writer, now_iso, record, stream_state

    # States 1-3 each close a batch of good records; the only rejected record comes after them, before state 4.
    messages: list = []
    for n in range(15):
        messages.append(record("downloads", download(n)))
        if (n + 1) % 5 == 0:
            messages.append(stream_state("downloads", n + 1))
    messages.append(record("downloads", download(99, time=now_iso(-9 * 86400))))  # too old: refused, kept aside
    messages += [record("downloads", download(n)) for n in range(15, 20)] + [stream_state("downloads", 20)]
    config = make_config(emulator, batch_max_events=5, on_invalid_record="skip",
                         object_storage_config=_storage_config(server_url, "missing-progress-bucket"))
    states: list = []
    with pytest.raises(ScarfConfigError) as caught:
        for state in make_writer(emulator, config, catalog("downloads")).write(lines(messages)):
            states.append(state)
    # The states that cover no unstored record left first; the one after it stays back, and the sync fails.
    assert [s["state"]["stream"]["stream_state"]["cursor"] for s in states] == [5, 10, 15]
    assert "the bucket missing-progress-bucket does not exist" in caught.value.message
    assert_no_credentials(caught.value)


def test_write_with_a_missing_bucket_fails_in_its_pre_flight_before_reading_input(emulator, server_url, tmp_path):
    from support import catalog, make_config
    from sync_helpers import Connector

    config = make_config(emulator, on_invalid_record="skip",
                         object_storage_config=_storage_config(server_url, "missing-preflight-bucket"))
    # stdin stays open and nothing is sent: a sync that went on to read its input would wait for it for good.
    connector = Connector(tmp_path, config, catalog("downloads"))
    try:
        code = connector.finish(timeout=60)  # a hang guard only
    finally:
        connector.kill()
    assert code == 1
    last = connector.messages[-1]
    assert last["type"] == "TRACE", connector.messages[-3:]
    error = last["trace"]["error"]
    assert error["failure_type"] == "config_error"
    assert "the bucket missing-preflight-bucket does not exist" in error["message"]
    assert "object_storage_config.s3_bucket_name" in error["message"]
    assert KEY_ID not in str(connector.messages) and SECRET not in str(connector.messages)
    assert connector.states() == []
    assert [r.category for r in emulator.requests] == ["import-get"]  # the token check only: no import created


def test_check_probes_the_store(emulator, server_url, bucket):
    from airbyte_cdk.models import Status

    from destination_scarf.airbyte.check import run_check
    from support import make_config

    good = run_check(make_config(emulator, object_storage_config=_storage_config(server_url, bucket)),
                     logger=logging.getLogger("test"))
    bad = run_check(make_config(emulator, object_storage_config=_storage_config(server_url, "missing-bucket-x")),
                    logger=logging.getLogger("test"))
    assert good.status == Status.SUCCEEDED, good.message
    assert bad.status == Status.FAILED and "missing-bucket-x" in bad.message


# --- bounded: every store call waited for at most its time, and not at all once the sync is cancelled ---------------


def test_bounded_leaves_a_call_that_never_returns_once_a_cancel_comes():
    started, release = threading.Event(), threading.Event()
    cancelled = threading.Event()

    def never_returns() -> None:
        started.set()
        release.wait()  # only the test's clean-up lets it go

    def cancel_once_it_runs() -> None:
        started.wait()
        cancelled.set()  # as the signal watcher would, from a thread of its own

    helper = threading.Thread(target=cancel_once_it_runs, daemon=True)
    helper.start()
    try:
        with pytest.raises(SyncCancelled) as raised:
            # No deadline to end it (a billion seconds): only the cancel can.
            run_with_hang_guard(lambda: bounded(never_returns, doing="writing rejected records to s3://b/k/",
                                                seconds=1e9, cancelled=cancelled), "a store call on a cancel")
        assert "cancelled while it was writing rejected records to s3://b/k/" in raised.value.message
        assert not release.is_set()  # the call was left behind, still running on its own thread
    finally:
        release.set()
        helper.join(5)


def test_bounded_ends_a_call_that_never_returns_at_its_deadline_and_logs_while_it_waits(caplog):
    caplog.set_level(logging.INFO, logger="airbyte")
    release = threading.Event()
    ticks = iter(range(0, 10_000, 5))  # an injected clock: 5 s further at every look

    try:
        with pytest.raises(ScarfTransientError) as raised:
            run_with_hang_guard(lambda: bounded(release.wait, doing="writing rejected records to s3://b/k/",
                                                seconds=35, cancelled=threading.Event(),
                                                clock=lambda: float(next(ticks))), "a store call past its deadline")
    finally:
        release.set()
    assert not isinstance(raised.value, SyncCancelled)
    assert "did not finish writing rejected records to s3://b/k/ within 35 s" in raised.value.message
    assert "object_storage_config" in raised.value.message
    # One line every LOG_EVERY_SECONDS of the injected clock while it waited: at 10, 20 and 30 s.
    waiting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Still writing rejected records")]
    assert waiting == [f"Still writing rejected records to s3://b/k/ (for {n} s so far, at most 35 s)"
                       for n in (10, 20, 30)]
    assert LOG_EVERY_SECONDS == 10


def test_bounded_returns_what_the_call_returns_and_raises_what_it_raises():
    assert bounded(lambda: "key", doing="probing", seconds=5) == "key"
    failure = ScarfConfigError("the bucket does not exist")

    def fails() -> None:
        raise failure

    with pytest.raises(ScarfConfigError) as raised:
        bounded(fails, doing="probing", seconds=5)
    assert raised.value is failure
