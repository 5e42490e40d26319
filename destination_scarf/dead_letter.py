"""The dead-letter store: rejected records written in batches to S3 (or an S3-compatible server).

A local rejected-records file is lost with an Airbyte pod, so rejected records can also go to object
storage, configured the way Airbyte's bulk-CDK destinations configure their dead-letter queue
(`object_storage_config`, with `storage_type` None or S3, and the same S3 property names), so that the
platform and users recognise it.

What goes there is the reject log's business: each `add` is one NDJSON line, already composed. This
module only buffers lines and writes them as batch objects, one folder per sync:

    <bucket_path>/destination-scarf/<sync id>/rejected-00001.jsonl

The sync id starts with the UTC time the sync started, so a listing sorts by sync, and ends with a
random suffix, so that two syncs (or two attempts of one Airbyte job, which share its sync id) never
write to the same keys. The `.jsonl` extension (`.jsonl.gz` with GZIP) is the bulk CDK's.

Objects are uncompressed by default, as in the bulk CDK: rejects are few in a healthy sync, and a
plain object opens in the S3 console and pipes into `jq` as it is. The bulk CDK's hidden `compression`
option turns on gzip for users who reject at volume.

Every failure to write raises: `ScarfConfigError` when the user must change something (no such bucket,
access denied, unknown key, wrong region, no credentials), `ScarfTransientError` otherwise (endpoint
down, timeouts, S3 errors). Messages name the bucket and key, never a credential. Waits are bounded:
botocore's connect and read timeouts and a fixed number of attempts.

boto3 is imported only when a store is created or probed: importing this module does not import it.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import logging
import os
import re
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from destination_scarf.errors import ScarfConfigError, ScarfError, ScarfTransientError

logger = logging.getLogger("airbyte")

#: The folder, under the user's bucket_path, that holds this connector's objects.
CONNECTOR_FOLDER = "destination-scarf"
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
        "description": "Objects are written under <this prefix>/destination-scarf/<sync start time and id>/, "
                       "as rejected-00001.jsonl, rejected-00002.jsonl, ... Empty: the bucket's root.",
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
    def folder(self) -> str:
        """The key prefix of this connector's objects, without a trailing '/'."""
        return "/".join(part for part in (self.bucket_path, CONNECTOR_FOLDER) if part)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.folder}/"

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


def new_sync_id(*, airbyte_sync_id: int | str | None = None, now: datetime.datetime | None = None) -> str:
    """A folder name for one sync: its UTC start time, Airbyte's sync id when known, and a random suffix."""
    moment = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    parts = [moment.strftime("%Y%m%dT%H%M%SZ")]
    if airbyte_sync_id is not None and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(airbyte_sync_id)):
        parts.append(f"sync{airbyte_sync_id}")
    parts.append(secrets.token_hex(4))
    return "-".join(parts)


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
                            f"<bucket_path>/{CONNECTOR_FOLDER}/<sync>/rejected-<part>.jsonl")

    if problems or bucket is None:
        return None, problems
    return S3Settings(
        bucket=bucket, region=region, bucket_path=bucket_path, endpoint=endpoint,
        access_key_id=access_key_id, secret_access_key=secret_access_key, role_arn=role_arn,
        gzip=compression == "GZIP",
    ), problems


# --------------------------------------------------------------------------------------------------
# The S3 client and its errors


def _client(settings: S3Settings, timeouts: S3Timeouts) -> Any:
    """A boto3 S3 client for `settings`, with bounded timeouts and retries. boto3 is imported here only."""
    try:
        import boto3
        import botocore.config
        import botocore.credentials
        import botocore.session
    except ImportError:  # the image carries boto3; a bare `pip install` of the source may not
        raise ScarfConfigError(
            f"{_PREFIX} needs the boto3 package, which this installation lacks: install destination-scarf "
            "with its dependencies, or set storage_type to None."
        ) from None

    config = botocore.config.Config(
        connect_timeout=timeouts.connect_seconds,
        read_timeout=timeouts.read_seconds,
        retries={"mode": "standard", "total_max_attempts": timeouts.max_attempts},
        user_agent_extra=CONNECTOR_FOLDER,
        # S3-compatible servers often reject the CRC checksums that newer SDKs send by default; the store
        # sends Content-MD5 itself, which AWS and every S3-compatible server check.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # An endpoint is an S3-compatible server, which rarely has a DNS name per bucket.
        s3={"addressing_style": "path"} if settings.endpoint else None,
    )
    core = botocore.session.Session()
    if settings.role_arn:
        # As the bulk CDK does: the role is assumed with the environment's credentials (which Airbyte Cloud
        # provides), its external id from AWS_ASSUME_ROLE_EXTERNAL_ID, and refreshed before it expires.
        # The environment's credentials come from a session of their own: a session caches the first
        # credentials it resolves, and S3 must be called with the role's.
        source_session = botocore.session.Session()
        source = source_session.get_credentials()
        if source is None:
            raise ScarfConfigError(
                f"Cannot assume {_PREFIX}.role_arn {settings.role_arn}: no AWS credentials to assume it with "
                "were found in the environment. Give access_key_id and secret_access_key instead."
            )
        extra = {"RoleSessionName": ROLE_SESSION_NAME}
        if os.environ.get(EXTERNAL_ID_ENV):
            extra["ExternalId"] = os.environ[EXTERNAL_ID_ENV]

        def sts_client(service: str, **kwargs: Any) -> Any:
            return source_session.create_client(service, region_name=settings.region, config=config, **kwargs)

        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=sts_client, source_credentials=source, role_arn=settings.role_arn, extra_args=extra)
        role_credentials = botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role")

        class _RoleProvider(botocore.credentials.CredentialProvider):
            METHOD = "assume-role"
            CANONICAL_NAME = "custom-assume-role"

            def load(self) -> Any:
                return role_credentials

        core.register_component("credential_provider", botocore.credentials.CredentialResolver([_RoleProvider()]))
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    return session.client("s3", endpoint_url=settings.endpoint, config=config)


_WRONG_REGION = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "InvalidToken", "ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException",
           "InvalidSecurity", "NotSignedUp", "MissingSecurityHeader", "KMS.DisabledException",
           "KMS.NotFoundException"}


def _scrub(text: str, settings: S3Settings) -> str:
    for secret in settings.credentials():
        text = text.replace(secret, "***")
    return text[:300]


def _denied_hint(code: str, settings: S3Settings, permission: str) -> str:
    if code in ("InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException"):
        return "the access key ID is not known: check access_key_id (or the environment's credentials)"
    if code == "SignatureDoesNotMatch":
        return "the secret does not match the access key ID: check secret_access_key"
    if settings.role_arn:
        return f"the role {settings.role_arn} must allow {permission} under {settings.folder}/"
    return f"the credentials must allow {permission} under {settings.folder}/"


def _endpoint_of(error: BaseException, settings: S3Settings) -> str:
    """The scheme and host that could not be reached (S3's, or STS's while assuming a role)."""
    url = getattr(error, "kwargs", {}).get("endpoint_url") or settings.endpoint or ""
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname}{f':{parsed.port}' if parsed.port else ''}" if parsed.hostname \
        else "S3"


def translate_error(error: BaseException, settings: S3Settings, *, doing: str, key: str,
                    permission: str = "s3:PutObject") -> ScarfError:
    """The connector error for a failed S3 call: config error when the user must act, else transient.

    `doing` says what was attempted ("write rejected records to"); the message names bucket and key and the
    error code, with any credential scrubbed from the server's text.
    """
    import botocore.exceptions  # present whenever an S3 call could fail

    where = f"Could not {doing} s3://{settings.bucket}/{key}"
    if isinstance(error, botocore.exceptions.ClientError):
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(details.get("Code") or status or "")
        server_text = _scrub(str(details.get("Message") or ""), settings)
        said = f" ({code}{': ' + server_text if server_text else ''})"
        if error.operation_name == "AssumeRole":
            return ScarfConfigError(
                f"{where}: assuming {_PREFIX}.role_arn {settings.role_arn} failed{said}. The role's trust "
                "policy must allow this destination's credentials (and external id) to assume it.")
        if code == "NoSuchBucket":
            return ScarfConfigError(f"{where}: the bucket {settings.bucket} does not exist{said}. Create it, or "
                                    f"fix {_PREFIX}.s3_bucket_name.")
        if code == "InvalidBucketName":
            return ScarfConfigError(f"{where}: the bucket name is not valid{said}; fix {_PREFIX}.s3_bucket_name.")
        if code in _WRONG_REGION:
            return ScarfConfigError(f"{where}: the bucket is not in region {settings.region or '(SDK default)'}"
                                    f"{said}; set {_PREFIX}.s3_bucket_region to the bucket's region.")
        if code in _DENIED or status in (401, 403):
            return ScarfConfigError(f"{where}: access denied{said}; {_denied_hint(code, settings, permission)}.")
        return ScarfTransientError(f"{where}: S3 answered with an error{said}.")
    if isinstance(error, (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError)):
        return ScarfConfigError(f"{where}: no AWS credentials were found. Set {_PREFIX}.access_key_id and "
                                "secret_access_key, or role_arn.")
    if isinstance(error, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
        return ScarfTransientError(f"{where}: {_endpoint_of(error, settings)} did not answer in time "
                                   f"({type(error).__name__}), after retries.")
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return ScarfTransientError(f"{where}: cannot connect to {_endpoint_of(error, settings)}, after retries.")
    return ScarfTransientError(f"{where}: {type(error).__name__}: {_scrub(str(error), settings)}.")


def _failures() -> tuple[type[BaseException], ...]:
    """What an S3 call can raise that is the store's failure (and not a bug): botocore's errors, and OSError."""
    try:
        import botocore.exceptions
    except ImportError:  # no boto3: nothing of it could have been raised
        return (OSError,)
    return botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError


def _put(client: Any, settings: S3Settings, key: str, body: bytes, *, doing: str) -> None:
    content_type = "application/gzip" if key.endswith(".gz") else "application/x-ndjson"
    digest = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    try:
        client.put_object(Bucket=settings.bucket, Key=key, Body=body, ContentType=content_type, ContentMD5=digest)
    except _failures() as error:
        raise translate_error(error, settings, doing=doing, key=key) from None


# --------------------------------------------------------------------------------------------------
# The store


class S3DeadLetterStore:
    """Buffers NDJSON lines and writes them as numbered batch objects under one folder per sync.

    `add` is thread-safe. A failed write raises and keeps the buffer and the part number, so a later
    `flush` (or `close`) writes the same object again: nothing is dropped and no part is skipped.
    """

    def __init__(self, settings: S3Settings, sync_id: str, *, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 timeouts: S3Timeouts = S3Timeouts()) -> None:
        if not _SYNC_ID_PATTERN.fullmatch(sync_id):
            raise ValueError(f"sync_id {sync_id!r} must be letters, digits, '.', '_' or '-'")
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be positive")
        self.settings = settings
        self.sync_id = sync_id
        self.batch_bytes = batch_bytes
        #: The key prefix of this sync's objects, ending with '/'.
        self.prefix = f"{settings.folder}/{sync_id}/"
        self.keys_written: list[str] = []
        self.lines_written = 0
        self._buffer = bytearray()
        self._buffered_lines = 0
        self._part = 1
        self._closed = False
        self._lock = threading.Lock()
        try:
            self._client = _client(settings, timeouts)
        except _failures() as error:
            raise translate_error(error, settings, doing="open the rejected-records store at",
                                  key=self.prefix) from None

    @property
    def location(self) -> str:
        """Where this sync's objects go, as an s3:// URL (for logs and the sync's summary)."""
        return f"s3://{self.settings.bucket}/{self.prefix}"

    def _next_key(self) -> str:
        extension = ".jsonl.gz" if self.settings.gzip else ".jsonl"
        return f"{self.prefix}rejected-{self._part:05d}{extension}"

    def add(self, line: bytes) -> None:
        """Buffer one NDJSON line (a trailing newline is added if missing); write a batch when the buffer is full."""
        body = line.rstrip(b"\r\n")
        if b"\n" in body or b"\r" in body:
            raise ValueError("a dead-letter line must be one line of JSON, without inner line breaks")
        with self._lock:
            if self._closed:
                raise ValueError("the dead-letter store is closed")
            self._buffer += body + b"\n"
            self._buffered_lines += 1
            if len(self._buffer) >= self.batch_bytes:
                self._write_batch()

    def flush(self) -> None:
        """Write the buffered lines, if any, as the next batch object."""
        with self._lock:
            self._write_batch()

    def close(self) -> None:
        """Write what is buffered; then the store takes no more lines. Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._write_batch()
            self._closed = True

    def _write_batch(self) -> None:
        if not self._buffer:
            return
        key = self._next_key()
        body = bytes(self._buffer)
        if self.settings.gzip:
            body = gzip.compress(body, mtime=0)
        _put(self._client, self.settings, key, body, doing="write rejected records to")
        self.keys_written.append(key)
        self.lines_written += self._buffered_lines
        self._buffer.clear()
        self._buffered_lines = 0
        self._part += 1

    def __enter__(self) -> S3DeadLetterStore:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
            return
        # The block failed already: still try to keep what is buffered, without hiding the first error.
        try:
            self.close()
        except ScarfError as error:
            logger.warning("%d rejected record(s) could not be written to %s: %s",
                           self._buffered_lines, self.location, error.message)


def probe(settings: S3Settings, *, timeouts: S3Timeouts = PROBE_TIMEOUTS) -> str:
    """Write and delete a small object where a sync would write, raising what a sync would; returns its key.

    For `check`: a wrong bucket, region, endpoint or credential fails here in seconds, with the same
    `ScarfConfigError`/`ScarfTransientError` a sync would raise at its first rejected record.
    """
    key = f"{settings.folder}/_check_test-{secrets.token_hex(4)}.jsonl"
    try:
        client = _client(settings, timeouts)
    except _failures() as error:
        raise translate_error(error, settings, doing="check the rejected-records store at", key=key) from None
    _put(client, settings, key, b'{"check":"destination-scarf"}\n', doing="write a check object to")
    try:
        client.delete_object(Bucket=settings.bucket, Key=key)
    except _failures() as error:
        raise translate_error(error, settings, doing="delete the check object", key=key,
                              permission="s3:DeleteObject (check deletes its probe object)") from None
    return key
