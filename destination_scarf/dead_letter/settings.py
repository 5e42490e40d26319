"""The dead-letter store's settings: the `object_storage_config` spec (mirroring the bulk CDK's names and
shape) and its validation into `S3Settings`. Imports nothing beyond the standard library and our errors."""

from __future__ import annotations

import datetime
import logging
import re
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("airbyte")

#: The connector's name: in generated job folders, the probe's key and the S3 client's user agent.
CONNECTOR_FOLDER = "destination-scarf"
#: Where Airbyte passes a sync's job id to the connector's container.
JOB_ID_ENV = "WORKER_JOB_ID"
#: A batch object is written once this many (uncompressed) bytes of lines are buffered.
DEFAULT_BATCH_BYTES = 8 * 1024 * 1024
#: The role session name the bulk CDK uses when it assumes `role_arn`.
ROLE_SESSION_NAME = "airbyte-sts-session"
#: Where Airbyte Cloud passes the external id for assuming `role_arn` (the bulk CDK reads the same).
EXTERNAL_ID_ENV = "AWS_ASSUME_ROLE_EXTERNAL_ID"

# The regions the bulk CDK offers (S3BucketRegion); "" lets the AWS SDK choose.
S3_REGIONS = (
    "", "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ca-central-1",
    "ca-west-1", "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1",
    "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1",
    "sa-east-1", "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
)

_PREFIX = "object_storage_config"
# botocore's own check of bucket names (handlers.VALID_BUCKET): legacy names with '_' and capitals pass.
_BUCKET_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
# Region-shaped: AWS codes, and whatever an S3-compatible server calls its region (MinIO: us-east-1).
_REGION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SYNC_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: A job id taken from the catalog or the environment: safe as one path segment.
_JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_S3_PROPERTIES: dict[str, Any] = {
    "storage_type": {"type": "string", "enum": ["S3"], "default": "S3"},
    "access_key_id": {
        "title": "Access Key ID",
        "description": "The access key ID of an AWS user (or S3-compatible account) allowed to write objects "
                       "under the path below (s3:PutObject; check also deletes its probe, s3:DeleteObject). "
                       "Leave empty with role_arn, or to use the credentials of the environment.",
        "type": "string", "examples": ["A012345678910EXAMPLE"], "airbyte_secret": True, "always_show": True,
        "order": 1,
    },
    "secret_access_key": {
        "title": "Secret Access Key",
        "description": "The secret of the access key ID above.",
        "type": "string", "examples": ["a012345678910ABCDEFGH/AbCdEfGhEXAMPLEKEY"], "airbyte_secret": True,
        "always_show": True, "order": 2,
    },
    "role_arn": {
        "title": "Role ARN",
        "description": "An IAM role to assume instead of giving an access key (Airbyte Cloud passes the "
                       "external id); the role needs the same permissions.",
        "type": "string", "examples": ["arn:aws:iam::123456789:role/ExternalIdIsYourWorkspaceId"], "order": 3,
    },
    "s3_bucket_name": {
        "title": "S3 Bucket Name",
        "description": "The bucket that receives the rejected records. It must exist.",
        "type": "string", "examples": ["airbyte_sync"], "order": 4,
    },
    "s3_bucket_region": {
        "title": "S3 Bucket Region",
        "description": "The bucket's AWS region. Empty: the AWS SDK's default.",
        "type": "string", "enum": list(S3_REGIONS), "examples": ["us-east-1"], "default": "", "order": 5,
    },
    "s3_endpoint": {
        "title": "S3 Endpoint",
        "description": "Only for an S3-compatible server such as MinIO: its URL. Empty for AWS S3.",
        "type": "string", "examples": ["http://localhost:9000"], "order": 6,
    },
    "bucket_path": {
        "title": "Prefix Path in the Bucket",
        "description": "Objects are written under <this prefix>/<job id>/, the folder Airbyte links as the sync's "
                       "rejected records, as rejected-<attempt start time and id>-00001.jsonl, -00002.jsonl, ... "
                       "Empty: the bucket's root.",
        "type": "string", "examples": ["prefix/"], "order": 7,
    },
    "format": {
        "title": "Output Format",
        "description": "Rejected records are written as JSON lines, one rejected record per line.",
        "type": "object", "default": {"format_type": "JSONL"}, "airbyte_hidden": True, "order": 8,
        "oneOf": [{
            "title": "JSON Lines: Newline-delimited JSON",
            "type": "object",
            "required": ["format_type"],
            "properties": {"format_type": {"type": "string", "enum": ["JSONL"], "default": "JSONL"}},
        }],
    },
    "compression": {
        "title": "Compression",
        "description": "GZIP: objects are gzip-compressed and named .jsonl.gz.",
        "type": "object", "default": {"compression_type": "No Compression"}, "airbyte_hidden": True, "order": 9,
        "oneOf": [
            {"title": "No Compression", "type": "object", "required": ["compression_type"],
             "properties": {"compression_type": {"type": "string", "enum": ["No Compression"],
                                                 "default": "No Compression"}}},
            {"title": "GZIP", "type": "object", "required": ["compression_type"],
             "properties": {"compression_type": {"type": "string", "enum": ["GZIP"], "default": "GZIP"}}},
        ],
    },
}

#: The JSON schema of the `object_storage_config` property, in the bulk CDK's shape and names.
SPEC_FRAGMENT: dict[str, Any] = {
    "title": "Object Storage Configuration",
    "description": "Where rejected records are also kept, so that they outlive the sync's pod: records refused "
                   "before upload (on_invalid_record=skip) and events Scarf failed (on_failed_events=warn), "
                   "each with its reason and Airbyte message, as JSON lines in batch objects. A failed write "
                   "fails the sync.",
    "type": "object",
    "default": {"storage_type": "None"},
    # Beside the other rejected-records options (rejected_records_path is 21, on_failed_events 22).
    "order": 23,
    "group": "errors",
    "oneOf": [
        {
            "title": "None",
            "type": "object",
            "required": ["storage_type"],
            "properties": {"storage_type": {"type": "string", "enum": ["None"], "default": "None"}},
        },
        {
            "title": "S3",
            "type": "object",
            "required": ["storage_type", "s3_bucket_name", "s3_bucket_region", "bucket_path"],
            "properties": _S3_PROPERTIES,
        },
    ],
}


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """A validated S3 store. The credentials are kept out of `repr`, so they never reach a log."""

    bucket: str
    region: str | None = None
    #: The user's bucket_path without leading or trailing '/': "" for the bucket's root.
    bucket_path: str = ""
    endpoint: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    gzip: bool = False

    @property
    def prefix(self) -> str:
        """The key prefix every object goes under: the bucket_path and '/', or "" for the bucket's root."""
        return f"{self.bucket_path}/" if self.bucket_path else ""

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def credentials(self) -> tuple[str, ...]:
        """The secret values, for scrubbing them out of any text that is shown."""
        return tuple(value for value in (self.access_key_id, self.secret_access_key) if value)


@dataclass(frozen=True, kw_only=True)
class S3Timeouts:
    """Bounds on every S3 call: per-connection timeouts, and attempts in all (botocore's standard retries)."""

    connect_seconds: float = 10.0
    read_seconds: float = 60.0
    max_attempts: int = 5


#: `check` runs while a user waits: a wrong bucket, endpoint or credential fails in seconds.
PROBE_TIMEOUTS = S3Timeouts(connect_seconds=5.0, read_seconds=10.0, max_attempts=2)


def new_attempt_id(*, now: datetime.datetime | None = None) -> str:
    """What names one attempt's objects: its UTC start time, so a listing sorts by attempt, and a random suffix, so
    that two attempts of one job (which share its folder) never write the same key."""
    moment = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def job_folder(*, catalog_sync_id: Any = None, environment_job_id: str | None = None,
               attempt_id: str) -> tuple[str, str]:
    """The folder of a sync's objects under bucket_path, and where its name comes from.

    Airbyte links a sync's rejected records to `s3://<bucket>/<bucket_path>/<job id>/` (its
    S3ObjectStoragePathResolver), so the folder is the job id: the configured catalog's `sync_id` (Airbyte's job
    id), else the environment's WORKER_JOB_ID, else (outside Airbyte) one made from the attempt's id. A value
    that is not safe as one path segment is not used.
    """
    if (type(catalog_sync_id) is int and catalog_sync_id >= 0) or (
            isinstance(catalog_sync_id, str) and _JOB_ID_PATTERN.fullmatch(catalog_sync_id)):
        return str(catalog_sync_id), "the configured catalog's sync_id"
    if environment_job_id and _JOB_ID_PATTERN.fullmatch(environment_job_id):
        return environment_job_id, JOB_ID_ENV
    return f"{CONNECTOR_FOLDER}-{attempt_id}", "generated: no job id in the catalog or WORKER_JOB_ID"


# --------------------------------------------------------------------------------------------------
# Validation


def _text(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    """The field as stripped text, None when absent or empty; a problem when it is not text."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{_PREFIX}.{key} must be text")
        return None
    return value.strip() or None


def _credential(raw: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = _text(raw, key, problems)
    if value is not None and not all("!" <= char <= "~" for char in value):
        # The value is a secret: the problem names the field and what is wrong, never the value.
        problems.append(f"{_PREFIX}.{key} has a space, line break or character outside ASCII inside it: "
                        "copy it again, without anything around it")
        return None
    return value


def _endpoint_problem(url: str) -> str | None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{_PREFIX}.s3_endpoint must be an http(s) URL such as http://localhost:9000"
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        return f"{_PREFIX}.s3_endpoint must not carry credentials, a query or a fragment"
    if parsed.path not in ("", "/"):
        return (f"{_PREFIX}.s3_endpoint must be the server's URL without a path; "
                "put the folder in bucket_path")
    return None


def _variant(raw: Mapping[str, Any], key: str, tag: str, allowed: tuple[str, ...], problems: list[str]) -> str:
    """The tag of a hidden one-variant-per-value option (format, compression); the first allowed when absent."""
    value = raw.get(key)
    if value is None:
        return allowed[0]
    chosen = value.get(tag) if isinstance(value, Mapping) else None
    if chosen is None and isinstance(value, Mapping):
        return allowed[0]
    if chosen not in allowed:
        problems.append(f"{_PREFIX}.{key}.{tag} must be {' or '.join(allowed)}")
        return allowed[0]
    return str(chosen)


def parse_object_storage(raw: Any) -> tuple[S3Settings | None, list[str]]:
    """Validate the raw `object_storage_config` value: (settings, []) or (None, []) for no store, or problems.

    Problems are sentences naming the field (`object_storage_config.s3_bucket_name is required`), in the
    style of config.py, and never contain a credential. Nothing here touches the network; `probe` does.
    """
    problems: list[str] = []
    if raw is None:
        return None, problems
    if not isinstance(raw, Mapping):
        return None, [f"{_PREFIX} must be an object with storage_type None or S3"]
    storage_type = raw.get("storage_type")
    if storage_type is None and not raw:
        return None, problems
    if storage_type == "None":
        return None, problems
    if storage_type != "S3":
        return None, [f"{_PREFIX}.storage_type must be None or S3"]

    bucket = _text(raw, "s3_bucket_name", problems)
    if bucket is None:
        if not any(problem.startswith(f"{_PREFIX}.s3_bucket_name") for problem in problems):
            problems.append(f"{_PREFIX}.s3_bucket_name is required")
    elif bucket.lower().startswith("s3://") or "/" in bucket:
        problems.append(f"{_PREFIX}.s3_bucket_name must be the bucket's name alone, without s3:// or a path: "
                        "put the folder in bucket_path")
        bucket = None
    elif not _BUCKET_PATTERN.fullmatch(bucket):
        problems.append(f"{_PREFIX}.s3_bucket_name must be a bucket name: letters, digits, '.', '_' or '-'")
        bucket = None

    region = _text(raw, "s3_bucket_region", problems)
    if region is not None and not _REGION_PATTERN.fullmatch(region):
        problems.append(f"{_PREFIX}.s3_bucket_region must be a region code such as us-east-1, or empty")
        region = None

    endpoint = _text(raw, "s3_endpoint", problems)
    if endpoint is not None:
        endpoint = endpoint.rstrip("/")
        problem = _endpoint_problem(endpoint)
        if problem:
            problems.append(problem)
            endpoint = None

    bucket_path = ""
    raw_path = raw.get("bucket_path")
    if raw_path is not None and not isinstance(raw_path, str):
        problems.append(f"{_PREFIX}.bucket_path must be text")
    elif raw_path:
        segments = [segment for segment in raw_path.strip().split("/") if segment]
        if any(segment in (".", "..") for segment in segments) or any(
                ord(char) < 32 or ord(char) == 127 for char in raw_path):
            problems.append(f"{_PREFIX}.bucket_path must be a folder path such as rejects/scarf, without '.', "
                            "'..' or control characters")
        elif len("/".join(segments)) > 512:
            problems.append(f"{_PREFIX}.bucket_path must be at most 512 characters")
        else:
            bucket_path = "/".join(segments)

    access_key_id = _credential(raw, "access_key_id", problems)
    secret_access_key = _credential(raw, "secret_access_key", problems)
    if (access_key_id is None) != (secret_access_key is None) and not any(
            p.startswith((f"{_PREFIX}.access_key_id", f"{_PREFIX}.secret_access_key")) for p in problems):
        missing = "secret_access_key" if secret_access_key is None else "access_key_id"
        problems.append(f"{_PREFIX}.{missing} is required with "
                        f"{'access_key_id' if missing == 'secret_access_key' else 'secret_access_key'}")
    role_arn = _text(raw, "role_arn", problems)
    if role_arn is not None and not _ROLE_ARN_PATTERN.fullmatch(role_arn):
        problems.append(f"{_PREFIX}.role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/name")
        role_arn = None
    if role_arn is not None and (access_key_id or secret_access_key):
        problems.append(f"{_PREFIX}: give either access_key_id and secret_access_key, or role_arn, not both")

    _variant(raw, "format", "format_type", ("JSONL",), problems)
    flattening = raw.get("format", {}).get("flattening") if isinstance(raw.get("format"), Mapping) else None
    if flattening not in (None, "No flattening"):
        problems.append(f"{_PREFIX}.format.flattening must be No flattening: rejected records keep their "
                        "Airbyte message as received")
    compression = _variant(raw, "compression", "compression_type", ("No Compression", "GZIP"), problems)
    for key in ("path_format", "file_name_format"):
        if raw.get(key):
            problems.append(f"{_PREFIX}.{key} is not supported: objects are written under "
                            "<bucket_path>/<job id>/rejected-<attempt>-<part>.jsonl")

    if problems or bucket is None:
        return None, problems
    return S3Settings(
        bucket=bucket, region=region, bucket_path=bucket_path, endpoint=endpoint,
        access_key_id=access_key_id, secret_access_key=secret_access_key, role_arn=role_arn,
        gzip=compression == "GZIP",
    ), problems


