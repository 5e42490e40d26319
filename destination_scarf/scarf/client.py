"""The Scarf Event Import API client: one method per endpoint, and what Scarf's answers mean.

How a call is retried, and how an HTTP outcome becomes one of our errors, is in `calls.py`; how an
exchange is bounded in time and size, and why redirects are never followed, in `transport.py`.
The token is only ever placed in the Authorization header.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests

from destination_scarf import __version__
from destination_scarf.config import (
    TARGET_PACKAGE,
    TARGET_TRACKING_PIXEL,
    UUID_PATTERN,
    ScarfConfig,
    Target,
)
from destination_scarf.errors import ScarfConfigError, ScarfTransientError
from destination_scarf.scarf.calls import ApiCaller
from destination_scarf.scarf.retry import RetryPolicy
from destination_scarf.scarf.transport import Answer, Transport, iter_lines_bounded

USER_AGENT = f"destination-scarf/{__version__} (Airbyte destination; python-requests/{requests.__version__})"
#: Import statuses after which an import changes no more, and what each means for the sync.
DONE = "done"
ABORTED_STATUSES = frozenset({"aborted", "cancelled", "canceled"})
#: Words for an import that Scarf gave up on. (Scarf documents only importing, done and aborted; these are
#: what an API says when processing fails, so they are final failures rather than "not final yet".)
FAILED_STATUSES = frozenset({"failed", "failure", "error", "errored", "rejected"})
FINAL_STATUSES = frozenset({DONE}) | ABORTED_STATUSES | FAILED_STATUSES
#: A line of an import's log longer than this is skipped (log entries are a few hundred bytes).
_MAX_LOG_LINE = 64 * 1024


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
        return self.outcome != "running"

    @property
    def outcome(self) -> str:
        """What the status means for the sync: "done", "aborted", "failed", or "running" (importing, and any
        word Scarf has not documented: an unknown status is never taken for a final one)."""
        word = (self.status or "").strip().lower()
        if word == DONE:
            return "done"
        if word in ABORTED_STATUSES:
            return "aborted"
        if word in FAILED_STATUSES:
            return "failed"
        return "running"

    @classmethod
    def from_json(cls, data: Any) -> EventImport:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ScarfTransientError("Scarf answered with an import that has no id; the API may have changed.")
        status = data.get("status")
        return cls(
            id=data["id"],
            status=status if status is None or isinstance(status, str) else str(status),
            events_total=_int(data.get("events_total")),
            events_successfully_imported=_int(data.get("events_successfully_imported")),
            events_failed_to_import=_int(data.get("events_failed_to_import")),
            error_log_sample=_entries(data.get("error_log_sample")),
            warning_log_sample=_entries(data.get("warning_log_sample")),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            raw=data,
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _entries(value: Any) -> tuple[Mapping[str, Any], ...]:
    return tuple(item for item in value if isinstance(item, Mapping)) if isinstance(value, list) else ()


def _segment(value: str) -> str:
    """One percent-encoded path segment: '/' and every reserved character are escaped.

    Empty, "." and ".." are refused: HTTP clients remove dot segments, so they would silently
    address another resource.
    """
    if value in ("", ".", ".."):
        raise ScarfConfigError(f"'{value}' cannot be used as an owner or id in a Scarf API path.")
    return urllib.parse.quote(value, safe="")


class ScarfClient:
    """Talks to one Scarf owner's import API. Thread-safe for the import pool's concurrent uploads and polls."""

    def __init__(
        self,
        *,
        api_url: str,
        api_token: str,
        owner: str,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - a frozen value: sharing it is safe
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        exchange_timeout: float = 300.0,
        sleep: Callable[[float], None] | None = None,
        cancelled: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._owner = owner
        cancelled = cancelled if cancelled is not None else threading.Event()
        self._transport = Transport(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            exchange_timeout=exchange_timeout,
            headers={"Authorization": f"Bearer {api_token}", "User-Agent": USER_AGENT},
            clock=clock,
        )
        self._calls = ApiCaller(base=api_url.rstrip("/"), owner=owner, token=api_token, retry=retry,
                                transport=self._transport, sleep=sleep if sleep is not None else cancelled.wait,
                                steady_sleep=sleep if sleep is not None else time.sleep,
                                cancelled=cancelled, clock=clock, rand=rand)

    @classmethod
    def from_config(cls, config: ScarfConfig, **kwargs: Any) -> ScarfClient:
        """The client a sync (or an operator command) uses for `config`; keyword arguments tune it."""
        return cls(api_url=config.api_url, api_token=config.api_token, owner=config.owner, **kwargs)

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def retry(self) -> RetryPolicy:
        return self._calls.retry

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> ScarfClient:
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
        budget_seconds: float | None = None,
    ) -> EventImport:
        """POST one NDJSON body (gzip by default) as a new import and return it (status `importing`).

        `body` may be a spool file path: it is reopened for each attempt, so memory stays flat.
        `safe_to_resend` must only be True when every event carries a `$unique_id`. `budget_seconds`
        bounds the whole upload, retries included (default: the client's retry policy).
        """
        headers = {"Content-Type": "application/x-ndjson"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        answer = self._calls.request(
            "POST",
            self.import_path(target),
            headers=headers,
            body=body,
            idempotent=safe_to_resend,
            context=f"uploading {what} to the {target.describe()} endpoint",
            not_found=self._describe_target_not_found(target),
            budget=budget_seconds,
        )
        return EventImport.from_json(self._json(answer))

    def get_import(self, import_id: str, *, deadline: float | None = None, cancellable: bool = True) -> EventImport:
        """One import by id. With `deadline` (a clock time), transient failures are retried until then.

        `cancellable=False` is for a cancelled sync's last look at its imports (see `ImportJob`).
        """
        self._check_import_id(import_id)
        answer = self._calls.request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}",
            context=f"reading import {import_id}",
            not_found=f"import {import_id} was not found under owner '{self._owner}'",
            deadline=deadline,
            cancellable=cancellable,
        )
        return EventImport.from_json(self._json(answer))

    def list_imports(
        self,
        *,
        statuses: Sequence[str] = (),
        per_page: int | None = None,
        after: str | None = None,
        budget_seconds: float | None = None,
    ) -> list[EventImport]:
        """One page of the owner's imports (Scarf lists newest first; its paging is not documented well)."""
        params: list[tuple[str, str]] = [("status", s) for s in statuses]
        if per_page is not None:
            params.append(("per_page", str(per_page)))
        if after is not None:
            self._check_import_id(after)
            params.append(("after", after))
        answer = self._calls.request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}",
            params=params,
            context="listing imports",
            not_found=f"owner '{self._owner}' was not found at Scarf: check the owner name",
            budget=budget_seconds,
        )
        data = self._json(answer)
        items = data.get("event_imports") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise ScarfTransientError("Scarf's imports list had no event_imports array; the API may have changed.")
        return [EventImport.from_json(item) for item in items]

    def import_log(self, import_id: str, *, max_entries: int | None = None,
                   deadline: float | None = None) -> list[Mapping[str, Any]]:
        """The import's log (errors, warnings, progress), streamed as NDJSON.

        Unreadable and overlong lines are skipped, and at most `max_entries` entries are kept, so a
        huge or hostile log cannot fill memory. Transient failures are retried (until `deadline`).
        """
        self._check_import_id(import_id)

        def consume(response: requests.Response) -> list[Mapping[str, Any]]:
            entries: list[Mapping[str, Any]] = []
            for line in iter_lines_bounded(response, max_line=_MAX_LOG_LINE):
                if line is None or not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, Mapping):
                    entries.append(entry)
                    if max_entries is not None and len(entries) >= max_entries:
                        break
            return entries

        answer = self._calls.request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/log",
            context=f"reading the log of import {import_id}",
            not_found=f"the log of import {import_id} was not found under owner '{self._owner}'",
            consume=consume,
            deadline=deadline,
        )
        return answer.body

    def abort_import(self, import_id: str, *, budget_seconds: float | None = None) -> None:
        """Abort one import. Never cancellable: it is what a cancelled sync does on its way out."""
        self._check_import_id(import_id)
        self._calls.request(
            "POST",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/abort",
            idempotent=True,
            context=f"aborting import {import_id}",
            not_found=f"import {import_id} was not found under owner '{self._owner}'",
            budget=budget_seconds,
            cancellable=False,
        )

    def get_package(self, package_id: str) -> Mapping[str, Any]:
        answer = self._calls.request(
            "GET",
            f"/v2/packages/{_segment(self._owner)}/{_segment(package_id)}",
            context=f"reading package {package_id}",
            not_found=f"package {package_id} was not found under owner '{self._owner}': check target.package_id",
        )
        return self._json(answer)

    def get_tracking_pixel(self, tracking_pixel_id: str) -> Mapping[str, Any]:
        answer = self._calls.request(
            "GET",
            f"/v2/tracking-pixels/{_segment(self._owner)}/{_segment(tracking_pixel_id)}",
            context=f"reading tracking pixel {tracking_pixel_id}",
            not_found=(
                f"tracking pixel {tracking_pixel_id} was not found under owner '{self._owner}': "
                "check target.tracking_pixel_id"
            ),
        )
        return self._json(answer)

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

    @staticmethod
    def _json(answer: Answer) -> Any:
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError as error:
            raise ScarfTransientError(
                f"Scarf answered {answer.method} {answer.path} with a body that is not JSON (HTTP {answer.status})."
            ) from error

