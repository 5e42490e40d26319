"""The Scarf Event Import API client: HTTP, retries, and the one place where HTTP errors become our error types.

Design points:
- One `requests.Session` (connection reuse) with Bearer auth, connect/read timeouts and a User-Agent.
- Idempotent calls (GETs, abort) are retried on connection errors, timeouts, 429 and 5xx under one
  `RetryPolicy`. An import POST is only re-sent when that cannot double-count: when the request
  provably never reached Scarf (connection refused, 429), or when every event carries a
  `$unique_id` (a re-sent event then overrides itself). Otherwise it raises `UncertainImport`.
- 422 is never retried here: it means "all 15 import slots are busy" and the import pipeline waits
  for a slot with its own patience.
- The token is only ever placed in the Authorization header; no message built here contains it,
  and error excerpts of response bodies are short and stripped of it just in case.
"""

from __future__ import annotations

import logging
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import orjson
import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from destination_scarf import __version__
from destination_scarf.config import (
    TARGET_PACKAGE,
    TARGET_TRACKING_PIXEL,
    UUID_PATTERN,
    Target,
)
from destination_scarf.errors import (
    ScarfAuthError,
    ScarfConfigError,
    ScarfError,
    ScarfNotFound,
    ScarfTransientError,
    TooManyActiveImports,
    UncertainImport,
)
from destination_scarf.retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("airbyte")

USER_AGENT = f"destination-scarf/{__version__} (Airbyte destination; python-requests/{requests.__version__})"
#: Statuses that mean "not processed, try again later" for every request, POSTs included.
_THROTTLED = {429}
#: Import statuses after which an import changes no more.
FINAL_STATUSES = frozenset({"done", "aborted"})


@dataclass(frozen=True, kw_only=True)
class EventImport:
    """An import as Scarf reports it. Unknown status values are kept and treated as not final."""

    id: str
    status: str | None
    events_total: int = 0
    events_successfully_imported: int = 0
    events_failed_to_import: int = 0
    error_log_sample: tuple[Mapping[str, Any], ...] = ()
    warning_log_sample: tuple[Mapping[str, Any], ...] = ()
    created_at: str | None = None
    updated_at: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, data: Any) -> "EventImport":
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ScarfTransientError("Scarf answered with an import that has no id; the API may have changed.")
        return cls(
            id=data["id"],
            status=data.get("status"),
            events_total=_int(data.get("events_total")),
            events_successfully_imported=_int(data.get("events_successfully_imported")),
            events_failed_to_import=_int(data.get("events_failed_to_import")),
            error_log_sample=tuple(data.get("error_log_sample") or ()),
            warning_log_sample=tuple(data.get("warning_log_sample") or ()),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            raw=data,
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _segment(value: str) -> str:
    """One percent-encoded path segment: '/' and every reserved character are escaped.

    Empty, "." and ".." are refused: HTTP clients remove dot segments, so they would silently
    address another resource.
    """
    if value in ("", ".", ".."):
        raise ScarfConfigError(f"'{value}' cannot be used as an owner or id in a Scarf API path.")
    return urllib.parse.quote(value, safe="")


def _is_connect_failure(error: requests.RequestException) -> bool:
    """True when the request never reached the server (so re-sending cannot duplicate anything)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason: BaseException | None = error
    seen = 0
    while reason is not None and seen < 8:
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return True
        reason = getattr(reason, "reason", None) or reason.__cause__ or reason.__context__
        seen += 1
    return False


class ScarfClient:
    """Talks to one Scarf owner's import API. Thread-safe for the pipeline's concurrent uploads and polls."""

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str,
        owner: str,
        retry: RetryPolicy = RetryPolicy(),
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._owner = owner
        self._retry = retry
        self._timeout = (connect_timeout, read_timeout)
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._session = requests.Session()
        # Pool size above Scarf's 15-slot limit so concurrent polls and uploads never queue for a socket.
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"Authorization": f"Bearer {api_token}", "User-Agent": USER_AGENT})
        self._token = api_token

    @property
    def owner(self) -> str:
        return self._owner

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "ScarfClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- endpoints -----------------------------------------------------------------------------

    def import_path(self, target: Target) -> str:
        """The import endpoint of a target: multi-artifact, one package, or one tracking pixel."""
        owner = _segment(self._owner)
        if target.kind == TARGET_PACKAGE:
            return f"/v2/packages/{owner}/{_segment(target.artifact_id or '')}/import"
        if target.kind == TARGET_TRACKING_PIXEL:
            return f"/v2/tracking-pixels/{owner}/{_segment(target.artifact_id or '')}/import"
        return f"/v2/{owner}/import"

    def import_events(
        self,
        *,
        target: Target,
        body: bytes | Path,
        gzipped: bool = True,
        safe_to_resend: bool,
        what: str = "batch",
    ) -> EventImport:
        """POST one NDJSON body (gzip by default) as a new import and return it (status `importing`).

        `body` may be a spool file path: it is reopened for each attempt, so memory stays flat.
        `safe_to_resend` must only be True when every event carries a `$unique_id`.
        """
        headers = {"Content-Type": "application/x-ndjson"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        response = self._request(
            "POST",
            self.import_path(target),
            headers=headers,
            body=body,
            idempotent=safe_to_resend,
            context=f"uploading {what} to the {target.describe()} endpoint",
            not_found=self._describe_target_not_found(target),
        )
        return EventImport.from_json(self._json(response))

    def get_import(self, import_id: str) -> EventImport:
        self._check_import_id(import_id)
        response = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}",
            context=f"reading import {import_id}",
            not_found=f"import {import_id} was not found under owner '{self._owner}'",
        )
        return EventImport.from_json(self._json(response))

    def list_imports(
        self,
        *,
        statuses: Sequence[str] = (),
        per_page: int | None = None,
        after: str | None = None,
    ) -> list[EventImport]:
        """One page of the owner's imports (Scarf lists newest first; its paging is not documented well)."""
        params: list[tuple[str, str]] = [("status", s) for s in statuses]
        if per_page is not None:
            params.append(("per_page", str(per_page)))
        if after is not None:
            self._check_import_id(after)
            params.append(("after", after))
        response = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}",
            params=params,
            context="listing imports",
            not_found=f"owner '{self._owner}' was not found at Scarf: check the owner name",
        )
        data = self._json(response)
        items = data.get("event_imports") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise ScarfTransientError("Scarf's imports list had no event_imports array; the API may have changed.")
        return [EventImport.from_json(item) for item in items]

    def import_log(self, import_id: str) -> Iterator[Mapping[str, Any]]:
        """The import's full log (errors, warnings, progress), read as NDJSON; unreadable lines are skipped."""
        self._check_import_id(import_id)
        response = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/log",
            context=f"reading the log of import {import_id}",
            not_found=f"the log of import {import_id} was not found under owner '{self._owner}'",
        )
        for line in response.content.splitlines():
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, Mapping):
                yield entry

    def abort_import(self, import_id: str) -> None:
        self._check_import_id(import_id)
        self._request(
            "POST",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/abort",
            idempotent=True,
            context=f"aborting import {import_id}",
            not_found=f"import {import_id} was not found under owner '{self._owner}'",
        )

    def get_package(self, package_id: str) -> Mapping[str, Any]:
        response = self._request(
            "GET",
            f"/v2/packages/{_segment(self._owner)}/{_segment(package_id)}",
            context=f"reading package {package_id}",
            not_found=f"package {package_id} was not found under owner '{self._owner}': check target.package_id",
        )
        return self._json(response)

    def get_tracking_pixel(self, tracking_pixel_id: str) -> Mapping[str, Any]:
        response = self._request(
            "GET",
            f"/v2/tracking-pixels/{_segment(self._owner)}/{_segment(tracking_pixel_id)}",
            context=f"reading tracking pixel {tracking_pixel_id}",
            not_found=(
                f"tracking pixel {tracking_pixel_id} was not found under owner '{self._owner}': "
                "check target.tracking_pixel_id"
            ),
        )
        return self._json(response)

    # ----- machinery -----------------------------------------------------------------------------

    def _describe_target_not_found(self, target: Target) -> str:
        if target.kind == TARGET_PACKAGE:
            return f"owner '{self._owner}' or package {target.artifact_id} was not found at Scarf: check both"
        if target.kind == TARGET_TRACKING_PIXEL:
            return f"owner '{self._owner}' or tracking pixel {target.artifact_id} was not found at Scarf: check both"
        return f"owner '{self._owner}' was not found at Scarf: check the owner name"

    @staticmethod
    def _check_import_id(import_id: str) -> None:
        if not isinstance(import_id, str) or not UUID_PATTERN.fullmatch(import_id):
            raise ScarfConfigError("An import id must be a UUID such as 0c4f966c-b715-497a-83e2-467254c95e40.")

    def _json(self, response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as error:
            raise ScarfTransientError(
                f"Scarf answered {response.request.method} {urllib.parse.urlsplit(response.url).path} "
                f"with a body that is not JSON (HTTP {response.status_code})."
            ) from error

    def _excerpt(self, response: requests.Response) -> str:
        """A short, token-free excerpt of an error body: Scarf's error bodies are undocumented."""
        text = response.text[:200].replace("\n", " ").strip()
        if self._token and self._token in text:
            text = text.replace(self._token, "****")
        return f": {text}" if text else ""

    def _request(
        self,
        method: str,
        path: str,
        *,
        context: str,
        not_found: str,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | Path | None = None,
        idempotent: bool | None = None,
    ) -> requests.Response:
        """Send with retries; return a 2xx response or raise one of our error types."""
        if idempotent is None:
            idempotent = method == "GET"
        url = self._base + path
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                response = self._send(method, url, params=params, headers=headers, body=body)
            except requests.RequestException as error:
                never_arrived = _is_connect_failure(error)
                if not (idempotent or never_arrived):
                    raise UncertainImport(
                        f"Scarf's API did not answer while {context} ({type(error).__name__}), so it is unknown "
                        "whether the import was created. The events carry no $unique_id, so re-sending could "
                        "count them twice: the sync stops here. Check `imports` in Scarf, then re-run the sync "
                        "(set unique_id_mode to deterministic to make such retries safe).",
                        internal=f"{method} {path}: {error!r}",
                        cause=error,
                    ) from error
                problem = f"could not reach Scarf at {self._base} ({type(error).__name__})"
            else:
                if response.status_code < 300:
                    return response
                problem = f"HTTP {response.status_code}"
                self._raise_if_final(response, context=context, not_found=not_found, idempotent=idempotent)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = self._retry.next_wait(
                attempt=attempt, elapsed=self._clock() - started, retry_after=retry_after, rand=self._rand
            )
            if wait is None:
                raise ScarfTransientError(
                    f"Scarf's API kept failing while {context}: {problem} after {attempt} attempt(s). "
                    "Check api_url and the network; if Scarf is having an outage, try again later "
                    "(a sync resumes from its last saved state).",
                    internal=f"{method} {path}: {problem}",
                )
            logger.warning(
                "Scarf API %s %s: %s; retry %d/%d in %.1f s",
                method, path, problem, attempt, self._retry.max_attempts - 1, wait,
            )
            self._sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None,
        headers: Mapping[str, str] | None,
        body: bytes | Path | None,
    ) -> requests.Response:
        if isinstance(body, Path):
            with body.open("rb") as stream:
                # A file object with a known size is streamed with a Content-Length, not read into memory.
                return self._session.request(
                    method, url, params=params, headers=headers, data=stream, timeout=self._timeout
                )
        return self._session.request(method, url, params=params, headers=headers, data=body, timeout=self._timeout)

    def _raise_if_final(
        self, response: requests.Response, *, context: str, not_found: str, idempotent: bool
    ) -> None:
        """Raise for statuses that retrying cannot fix; return for retriable ones."""
        status = response.status_code
        if status == 401:
            raise ScarfAuthError(
                f"Scarf rejected the API token while {context} (HTTP 401): check api_token; "
                "create a new token in Scarf if it was revoked."
            )
        if status == 403:
            raise ScarfAuthError(
                f"Scarf refused the API token for owner '{self._owner}' (HTTP 403 while {context}): the token is "
                "unknown or revoked, or it belongs to an account without access to that owner. Check api_token "
                "and owner."
            )
        if status == 404:
            raise ScarfNotFound(f"{not_found[0].upper()}{not_found[1:]} (HTTP 404 while {context}).")
        if status == 422:
            raise TooManyActiveImports(
                f"Scarf refused a new import: too many active imports (HTTP 422 while {context}). "
                "The account allows 15 at once, shared with other tools.",
                internal=f"422{self._excerpt(response)}",
            )
        if status in _THROTTLED:
            return
        if status >= 500:
            if idempotent:
                return
            raise UncertainImport(
                f"Scarf answered HTTP {status} while {context}; it is unknown whether the import was created. "
                "The events carry no $unique_id, so re-sending could count them twice: the sync stops here. "
                "Check `imports` in Scarf, then re-run the sync (set unique_id_mode to deterministic to make "
                "such retries safe).",
                internal=f"HTTP {status}{self._excerpt(response)}",
            )
        raise ScarfError(
            f"Scarf answered HTTP {status} while {context}{self._excerpt(response)}. "
            "This is unexpected; please report it with this message.",
        )
