"""Talking to S3 (or an S3-compatible server): the boto3 client, bounded in time, and the one place where
boto3's failures become our errors. boto3 is imported inside `_client` only, never at module level."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import urllib.parse
from typing import Any

from destination_scarf.dead_letter.settings import (
    _PREFIX,
    CONNECTOR_FOLDER,
    EXTERNAL_ID_ENV,
    ROLE_SESSION_NAME,
    S3Settings,
    S3Timeouts,
)
from destination_scarf.errors import ScarfConfigError, ScarfError, ScarfTransientError

logger = logging.getLogger("airbyte")

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
        return f"the role {settings.role_arn} must allow {permission} under {settings.describe()}"
    return f"the credentials must allow {permission} under {settings.describe()}"


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


