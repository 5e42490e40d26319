"""The Scarf Event Import API client: one method per endpoint, what Scarf's answers mean, and how calls are retried.

- Idempotent calls (GETs, abort) are retried on connection errors, timeouts, 429 and 5xx under one
  `RetryPolicy`, whose time budget includes the attempt in flight. A caller may pass its own deadline
  (an import's poll retries until that import's own deadline). An import POST is only re-sent when
  that cannot double-count: when the request provably never reached Scarf (connection refused, 429),
  or when every event carries a `$unique_id` (a re-sent event then overrides itself). Otherwise it
  raises `UncertainImport`.
- 422 is never retried here: it means "all the account's import slots are busy" and the import job waits for a
  slot with its own patience. A redirect is a configuration error naming the other host.
- Waits between attempts wake up on cancellation (`cancelled`), which then raises `SyncCancelled`;
  aborts are never cancellable, since they run while a cancelled sync stops (so their waits are plain
  sleeps: a wait on the cancelled event would return at once and leave no backoff between retries).
- `_raise_if_final` is the one place where an HTTP status becomes one of the connector's error types.
  No message built here contains the token; error excerpts of response bodies are short and stripped
  of it just in case. The token is only ever placed in the Authorization header.

How an exchange is bounded in time and size, and why redirects are never followed, is in `transport.py`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
import requests

from destination_scarf.config import UUID_PATTERN, ScarfConfig, Target
from destination_scarf.errors import (
    ScarfAuthError,
    ScarfConfigError,
    ScarfError,
    ScarfNotFound,
    ScarfTransientError,
    SyncCancelled,
    TooManyActiveImports,
    UncertainImport,
)
from destination_scarf.options import SCARF_MAX_ACTIVE_IMPORTS, VERSION
from destination_scarf.scarf.retry import RetryPolicy, duration_text, parse_retry_after
from destination_scarf.scarf.transport import Answer, Consume, Transport, Unanswered, iter_lines_bounded, read_bounded

logger = logging.getLogger("airbyte")

USER_AGENT = f"destination-scarf/{VERSION} (Airbyte destination; python-requests/{requests.__version__})"
#: What a call to Scarf's API is for, as the sync counts them (Scarf bills every call, retries included).
CallKind = Literal["pre-flight", "upload", "status", "status list", "log", "abort", "artifact", "artifact list",
                   "list"]
CALL_KINDS: tuple[CallKind, ...] = get_args(CallKind)

#: What an import's status means for the sync: it is still running (importing, or any word Scarf has not
#: documented), or it ended done, aborted or failed.
ImportOutcome = Literal["running", "done", "aborted", "failed"]
#: Import statuses after which an import changes no more, and what each means for the sync.
DONE = "done"
ABORTED_STATUSES = frozenset({"aborted", "cancelled", "canceled"})
#: Words for an import that Scarf gave up on. (Scarf documents only importing, done and aborted; these are
#: what an API says when processing fails, so they are final failures rather than "not final yet".)
FAILED_STATUSES = frozenset({"failed", "failure", "error", "errored", "rejected"})
FINAL_STATUSES = frozenset({DONE}) | ABORTED_STATUSES | FAILED_STATUSES
#: A line of an import's log longer than this is skipped (log entries are a few hundred bytes).
_MAX_LOG_LINE = 64 * 1024

#: The owner's artifact lists (getPackages, getTrackingPixels): their path under /v2, and what one item is.
ArtifactKind = Literal["packages", "tracking-pixels"]
_ARTIFACT_WORDS: dict[ArtifactKind, str] = {"packages": "packages", "tracking-pixels": "tracking pixels"}
#: Page size asked of the artifact lists (the spec's example is 30 and gives no maximum), and the most pages read
#: of one list: 100 pages of 100 are 10,000 packages, far beyond any catalogue seen. Past it, reading stops and
#: the listing says it is incomplete.
ARTIFACT_PAGE_SIZE = 100
ARTIFACT_MAX_PAGES = 100


@dataclass(frozen=True)
class ArtifactListing:
    """An owner's packages or tracking pixels, as read page by page: each item has a string `id` (items without
    one are left out). `complete` is False when reading stopped at the page limit (or at a next link that
    repeated an earlier one) although Scarf said more followed."""

    items: tuple[Mapping[str, Any], ...]
    pages: int
    complete: bool


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
    def outcome(self) -> ImportOutcome:
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
        self._base = api_url.rstrip("/")
        self._token = api_token  # only to strip it from error excerpts; never in a repr or a message
        self._retry = retry
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._cancelled.wait
        self._steady_sleep: Callable[[float], object] = sleep if sleep is not None else time.sleep
        self._clock = clock
        self._rand = rand
        #: Every call sent (each attempt of a retried one), by what it was for.
        self.calls: Counter[CallKind] = Counter()
        self._calls_lock = threading.Lock()
        self._transport = Transport(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            exchange_timeout=exchange_timeout,
            headers={"Authorization": f"Bearer {api_token}", "User-Agent": USER_AGENT},
            clock=clock,
            cancelled=self._cancelled,
        )

    def __repr__(self) -> str:
        return f"ScarfClient(api_url={self._base!r}, owner={self._owner!r})"

    @classmethod
    def from_config(cls, config: ScarfConfig, **kwargs: Any) -> ScarfClient:
        """The client a sync (or an operator command) uses for `config`; keyword arguments tune it."""
        return cls(api_url=config.api_url, api_token=config.api_token, owner=config.owner, **kwargs)

    @property
    def owner(self) -> str:
        return self._owner

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

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
        if target.kind == "package":
            return f"/v2/packages/{owner}/{_segment(target.artifact_id or '')}/import"
        if target.kind == "tracking_pixel":
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
        answer = self._request(
            "POST",
            self.import_path(target),
            headers=headers,
            body=body,
            idempotent=safe_to_resend,
            context=f"uploading {what} to the {target.describe()} endpoint",
            kind="upload",
            not_found=self._describe_target_not_found(target),
            budget=budget_seconds,
            interrupt_in_flight=False,  # a cancel leaves it its answer: the import it creates is then aborted
        )
        return EventImport.from_json(self._json(answer))

    def get_import(self, import_id: str, *, deadline: float | None = None, cancellable: bool = True) -> EventImport:
        """One import by id. With `deadline` (a clock time), transient failures are retried until then.

        `cancellable=False` is for a cancelled sync's last look at its imports (see `ImportJob`).
        """
        self._check_import_id(import_id)
        answer = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}",
            context=f"reading import {import_id}",
            kind="status",
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
        attempts: int | None = None,
        kind: CallKind = "list",
    ) -> list[EventImport]:
        """One page of the owner's imports (Scarf lists newest first; its paging is not documented well). `kind`
        says what the call is for, in the count of calls; `attempts` bounds the tries (default: the budget's)."""
        params: list[tuple[str, str]] = [("status", s) for s in statuses]
        if per_page is not None:
            params.append(("per_page", str(per_page)))
        if after is not None:
            self._check_import_id(after)
            params.append(("after", after))
        answer = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}",
            params=params,
            context="listing imports",
            not_found=f"owner '{self._owner}' was not found at Scarf: check the owner name",
            budget=budget_seconds,
            attempts=attempts,
            kind=kind,
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

        answer = self._request(
            "GET",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/log",
            context=f"reading the log of import {import_id}",
            kind="log",
            not_found=f"the log of import {import_id} was not found under owner '{self._owner}'",
            consume=consume,
            deadline=deadline,
        )
        return answer.body

    def abort_import(self, import_id: str, *, budget_seconds: float | None = None) -> None:
        """Abort one import. Never cancellable: it is what a cancelled sync does on its way out."""
        self._check_import_id(import_id)
        self._request(
            "POST",
            f"/v2/imports/{_segment(self._owner)}/{_segment(import_id)}/abort",
            idempotent=True,
            context=f"aborting import {import_id}",
            kind="abort",
            not_found=f"import {import_id} was not found under owner '{self._owner}'",
            budget=budget_seconds,
            cancellable=False,
        )

    def list_artifacts(self, kind: ArtifactKind, *, per_page: int = ARTIFACT_PAGE_SIZE,
                       max_pages: int = ARTIFACT_MAX_PAGES, budget_seconds: float | None = None,
                       attempts: int | None = None, cancellable: bool = True) -> ArtifactListing:
        """Every page of the owner's packages or tracking pixels (getPackages, getTrackingPixels).

        A page's `_links.next`, resolved against the API URL, gives the next page; it must stay on the API's
        host (the token goes with it). An answer without `_links` is continued with `after` (the last id) and
        `per_page` while its pages come full. Each page is one call (kind "artifact list"), retried like any
        read; `budget_seconds` bounds the whole listing, every page and retry included, and `attempts` (when
        given) the attempts at each page.
        """
        words = _ARTIFACT_WORDS[kind]
        path = f"/v2/{kind}/{_segment(self._owner)}"
        end = self._clock() + (budget_seconds if budget_seconds is not None else self._retry.max_total_seconds)
        items: list[Mapping[str, Any]] = []
        params: list[tuple[str, str]] | None = [("per_page", str(per_page))]
        url: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            pages += 1
            answer = self._request(
                "GET", path, url=url, params=params, context=f"listing the owner's {words} (page {pages})",
                not_found=f"owner '{self._owner}' was not found at Scarf: check the owner name",
                deadline=end, attempts=attempts, kind="artifact list", cancellable=cancellable)
            data = self._json(answer)
            results = data.get("results") if isinstance(data, Mapping) else None
            if not isinstance(results, list):
                raise ScarfTransientError(f"Scarf's list of {words} had no results array; the API may have changed.")
            page = [item for item in results if isinstance(item, Mapping) and isinstance(item.get("id"), str)]
            items.extend(page)
            links = data.get("_links")
            if isinstance(links, Mapping):
                following = links.get("next")
                if not isinstance(following, str) or not following or not results:
                    return ArtifactListing(tuple(items), pages, complete=True)
                url = self._same_origin(following, words)
                path, params = urllib.parse.urlsplit(url).path, None
            elif len(results) >= per_page and page:  # no links: Scarf's cursor parameters, while pages come full
                params = [("after", str(page[-1]["id"])), ("per_page", str(per_page))]
                url = None
            else:
                return ArtifactListing(tuple(items), pages, complete=True)
            key = url or repr(params)
            if pages >= max_pages or key in seen:
                logger.warning("Read %d page(s) of the owner's %s (%d items) and stopped there (%s).", pages,
                               words, len(items), "the most it reads" if pages >= max_pages
                               else "the next page was one already read")
                return ArtifactListing(tuple(items), pages, complete=False)
            seen.add(key)

    def _same_origin(self, link: str, words: str) -> str:
        """A next-page link as an absolute URL on the API's own scheme, host and port, else a ScarfError."""
        url = urllib.parse.urljoin(self._base + "/", link)
        there, here = urllib.parse.urlsplit(url), urllib.parse.urlsplit(self._base)
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            raise ScarfError(
                f"Scarf's list of {words} pointed its next page to {there.scheme}://{there.hostname}, not to "
                f"api_url's host; the connector does not send the API token there. Check api_url (Scarf's API is "
                "https://api.scarf.sh).")
        return url

    def get_package(self, package_id: str) -> Mapping[str, Any]:
        answer = self._request(
            "GET",
            f"/v2/packages/{_segment(self._owner)}/{_segment(package_id)}",
            context=f"reading package {package_id}",
            kind="artifact",
            not_found=f"package {package_id} was not found under owner '{self._owner}': check target.package_id",
        )
        return self._json(answer)

    def get_tracking_pixel(self, tracking_pixel_id: str) -> Mapping[str, Any]:
        answer = self._request(
            "GET",
            f"/v2/tracking-pixels/{_segment(self._owner)}/{_segment(tracking_pixel_id)}",
            context=f"reading tracking pixel {tracking_pixel_id}",
            kind="artifact",
            not_found=(
                f"tracking pixel {tracking_pixel_id} was not found under owner '{self._owner}': "
                "check target.tracking_pixel_id"
            ),
        )
        return self._json(answer)

    # ----- machinery -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        context: str,
        not_found: str,
        url: str | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | Path | None = None,
        idempotent: bool | None = None,
        budget: float | None = None,
        deadline: float | None = None,
        attempts: int | None = None,
        consume: Consume = read_bounded,
        cancellable: bool = True,
        interrupt_in_flight: bool = True,
        kind: CallKind,
    ) -> Answer:
        """Send with retries; return a 2xx answer or raise one of our error types.

        The request goes to `url` when given (an absolute URL on the API's host, query included; `path` then
        only names it), else to api_url + `path`.

        The call ends by the earlier of `deadline` and `budget` (default: the policy's budget) seconds
        from now, the attempt in flight included, and after `attempts` attempts when given. A `cancellable`
        call stops at a cancel: no attempt starts and no retry wait goes on after it, and the attempt in
        flight is cut short unless `interrupt_in_flight` is False (an upload keeps its answer coming, within
        the cancel's few seconds, so that the import it creates can be aborted).
        """
        if idempotent is None:
            idempotent = method == "GET"
        policy = self._retry if budget is None and deadline is None else self._retry.with_budget(
            budget if budget is not None else float("inf"))
        if attempts is not None:
            policy = replace(policy, max_attempts=attempts)
        started = self._clock()
        end = started + policy.max_total_seconds
        if deadline is not None:
            end = min(end, deadline)
        attempt = 0
        while True:
            attempt += 1
            if cancellable:
                SyncCancelled.check(self._cancelled, "The sync was cancelled while calling Scarf's API.")
            retry_after: float | None = None
            with self._calls_lock:
                self.calls[kind] += 1
            try:
                answer = self._transport.exchange(method, url or self._base + path, path=path, deadline=end,
                                                  params=params, headers=headers, body=body, consume=consume,
                                                  cancellable=cancellable and interrupt_in_flight)
            except Unanswered as failure:
                if failure.cancelled:
                    raise SyncCancelled(f"The sync was cancelled while {context}.") from None
                if failure.fix:
                    raise ScarfConfigError(
                        f"Could not reach Scarf's API at {self._base} while {context}: {failure.reason}. {failure.fix}",
                        internal=f"{method} {path}: {failure.reason}") from None
                if not (idempotent or not failure.reached_server):
                    raise UncertainImport(
                        f"Scarf's API did not answer while {context} ({failure.reason}), so it is unknown "
                        "whether the import was created. The events carry no $unique_id, so re-sending could "
                        "count them twice: the sync stops here. Check `imports` in Scarf, then re-run the sync "
                        "(set unique_id_mode to deterministic to make such retries safe).",
                        internal=f"{method} {path}: {failure.reason}",
                    ) from None
                problem = failure.reason if failure.reached_server else (
                    f"could not reach Scarf at {self._base} ({failure.reason})")
            else:
                if answer.status < 300:
                    return answer
                problem = f"HTTP {answer.status}"
                self._raise_if_final(answer, context=context, not_found=not_found, idempotent=idempotent)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            elapsed = self._clock() - started
            wait = policy.next_wait(attempt=attempt, elapsed=elapsed, retry_after=retry_after, rand=self._rand,
                                    remaining=end - self._clock())
            if wait is None:
                raise ScarfTransientError(
                    f"Scarf's API kept failing while {context}: {problem} after {attempt} attempt(s) over "
                    f"{duration_text(elapsed)}. Check api_url and the network; if Scarf is having an outage, "
                    "try again later (a sync resumes from its last saved state).",
                    internal=f"{method} {path}: {problem}",
                )
            logger.warning("Scarf API %s %s: %s; retry %d in %.1f s (trying for %s so far)",
                           method, path, problem, attempt, wait, duration_text(elapsed))
            # Calls that go through a cancellation (aborts) wait with a plain sleep: the cancellable wait returns
            # at once once the sync is cancelled, which would turn their retries into a burst without backoff.
            (self._sleep if cancellable else self._steady_sleep)(wait)

    def _raise_if_final(self, answer: Answer, *, context: str, not_found: str, idempotent: bool) -> None:
        """Raise for statuses that retrying cannot fix; return for retriable ones."""
        status = answer.status
        if 300 <= status < 400:
            raise ScarfConfigError(
                f"Scarf's API answered with a redirect (HTTP {status}) to {_redirect_target(answer, self._base)} "
                f"while {context}. The connector never follows redirects, so that the API token and record data "
                "are never sent to another host: check api_url (Scarf's API is https://api.scarf.sh)."
            )
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
                f"The account allows {SCARF_MAX_ACTIVE_IMPORTS} at once, shared with other tools.",
                internal=f"422{self._excerpt(answer)}",
            )
        if status == 429:  # not processed, try again later: for every request, POSTs included
            return
        if status >= 500:
            if idempotent:
                return
            raise UncertainImport(
                f"Scarf answered HTTP {status} while {context}; it is unknown whether the import was created. "
                "The events carry no $unique_id, so re-sending could count them twice: the sync stops here. "
                "Check `imports` in Scarf, then re-run the sync (set unique_id_mode to deterministic to make "
                "such retries safe).",
                internal=f"HTTP {status}{self._excerpt(answer)}",
            )
        raise ScarfError(
            f"Scarf answered HTTP {status} while {context}{self._excerpt(answer)}. "
            "This is unexpected; please report it with this message.",
        )


    def _excerpt(self, answer: Answer) -> str:
        """A short, token-free excerpt of an error body: Scarf's error bodies are undocumented."""
        text = answer.body.decode("utf-8", "replace")[:200].replace("\n", " ").strip()
        if self._token and self._token in text:
            text = text.replace(self._token, "****")
        return f": {text}" if text else ""


    def _describe_target_not_found(self, target: Target) -> str:
        if target.kind == "package":
            return f"owner '{self._owner}' or package {target.artifact_id} was not found at Scarf: check both"
        if target.kind == "tracking_pixel":
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


def _redirect_target(answer: Answer, base: str) -> str:
    """The host a redirect points to (never its path, query or credentials, which may carry anything)."""
    location = answer.headers.get("Location") or ""
    if not location:
        return "nowhere (no Location header)"
    try:
        target = urllib.parse.urlsplit(urllib.parse.urljoin(base + "/", location))
        hostname, port_number = target.hostname, target.port
    except ValueError:  # a port out of range or not a number, a broken IPv6 literal: still name the host
        scheme, _, rest = location.partition("://")
        hostport = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
        return f"{scheme[:20]}://{hostport[:100]} (a malformed address)" if rest else "a malformed Location header"
    host = hostname or "?"
    if ":" in host:  # an IPv6 literal, bracketed as in a URL
        host = f"[{host}]"
    port = f":{port_number}" if port_number else ""
    same = urllib.parse.urlsplit(base)
    where = f"{target.scheme}://{host}{port}"
    return f"{where} (the same host)" if (hostname, port_number) == (same.hostname, same.port) else where
