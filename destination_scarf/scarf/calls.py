"""Calling Scarf's API: retries within time budgets, cancellation, and the one place where an HTTP outcome
becomes one of the connector's error types.

- Idempotent calls (GETs, abort) are retried on connection errors, timeouts, 429 and 5xx under one
  `RetryPolicy`, whose time budget includes the attempt in flight. A caller may pass its own deadline
  (an import's poll retries until that import's own deadline). An import POST is only re-sent when
  that cannot double-count: when the request provably never reached Scarf (connection refused, 429),
  or when every event carries a `$unique_id` (a re-sent event then overrides itself). Otherwise it
  raises `UncertainImport`.
- 422 is never retried here: it means "all 15 import slots are busy" and the import job waits for a
  slot with its own patience. A redirect is a configuration error naming the other host.
- Waits between attempts wake up on cancellation (`cancelled`), which then raises `SyncCancelled`;
  aborts are never cancellable, since they run while a cancelled sync stops (so their waits are plain
  sleeps: a wait on the cancelled event would return at once and leave no backoff between retries).
- No message built here contains the token; error excerpts of response bodies are short and stripped
  of it just in case.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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
from destination_scarf.scarf.retry import RetryPolicy, duration_text, parse_retry_after
from destination_scarf.scarf.transport import Answer, Consume, Transport, Unanswered, read_bounded

logger = logging.getLogger("airbyte")

#: Statuses that mean "not processed, try again later" for every request, POSTs included.
_THROTTLED = {429}


@dataclass(kw_only=True)
class ApiCaller:
    """Sends one logical call with retries; returns a 2xx answer or raises one of our error types."""

    base: str
    owner: str
    token: str = field(repr=False)  # only to strip it from error excerpts; never in a repr or a message
    retry: RetryPolicy
    transport: Transport
    sleep: Callable[[float], object]  # cancellable: wakes up when `cancelled` is set
    steady_sleep: Callable[[float], object]  # for calls that are not cancellable
    cancelled: threading.Event
    clock: Callable[[], float]
    rand: Callable[[], float]

    def _excerpt(self, answer: Answer) -> str:
        """A short, token-free excerpt of an error body: Scarf's error bodies are undocumented."""
        text = answer.body.decode("utf-8", "replace")[:200].replace("\n", " ").strip()
        if self.token and self.token in text:
            text = text.replace(self.token, "****")
        return f": {text}" if text else ""

    def request(
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
        budget: float | None = None,
        deadline: float | None = None,
        consume: Consume = read_bounded,
        cancellable: bool = True,
    ) -> Answer:
        """Send with retries; return a 2xx answer or raise one of our error types.

        The call ends by the earlier of `deadline` and `budget` (default: the policy's budget) seconds
        from now, the attempt in flight included.
        """
        if idempotent is None:
            idempotent = method == "GET"
        policy = self.retry if budget is None and deadline is None else self.retry.with_budget(
            budget if budget is not None else float("inf"))
        started = self.clock()
        end = started + policy.max_total_seconds
        if deadline is not None:
            end = min(end, deadline)
        attempt = 0
        while True:
            attempt += 1
            if cancellable:
                self._raise_if_cancelled()
            retry_after: float | None = None
            try:
                answer = self.transport.exchange(method, self.base + path, path=path, deadline=end,
                                                  params=params, headers=headers, body=body, consume=consume)
            except Unanswered as failure:
                if not (idempotent or not failure.reached_server):
                    raise UncertainImport(
                        f"Scarf's API did not answer while {context} ({failure.reason}), so it is unknown "
                        "whether the import was created. The events carry no $unique_id, so re-sending could "
                        "count them twice: the sync stops here. Check `imports` in Scarf, then re-run the sync "
                        "(set unique_id_mode to deterministic to make such retries safe).",
                        internal=f"{method} {path}: {failure.reason}",
                    ) from None
                problem = failure.reason if failure.reached_server else (
                    f"could not reach Scarf at {self.base} ({failure.reason})")
            else:
                if answer.status < 300:
                    return answer
                problem = f"HTTP {answer.status}"
                self._raise_if_final(answer, context=context, not_found=not_found, idempotent=idempotent)
                retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            elapsed = self.clock() - started
            wait = policy.next_wait(attempt=attempt, elapsed=elapsed, retry_after=retry_after, rand=self.rand,
                                    remaining=end - self.clock())
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
            (self.sleep if cancellable else self.steady_sleep)(wait)

    def _raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise SyncCancelled("The sync was cancelled while waiting to retry a call to Scarf's API.")

    def _raise_if_final(self, answer: Answer, *, context: str, not_found: str, idempotent: bool) -> None:
        """Raise for statuses that retrying cannot fix; return for retriable ones."""
        status = answer.status
        if 300 <= status < 400:
            raise ScarfConfigError(
                f"Scarf's API answered with a redirect (HTTP {status}) to {_redirect_target(answer, self.base)} "
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
                f"Scarf refused the API token for owner '{self.owner}' (HTTP 403 while {context}): the token is "
                "unknown or revoked, or it belongs to an account without access to that owner. Check api_token "
                "and owner."
            )
        if status == 404:
            raise ScarfNotFound(f"{not_found[0].upper()}{not_found[1:]} (HTTP 404 while {context}).")
        if status == 422:
            raise TooManyActiveImports(
                f"Scarf refused a new import: too many active imports (HTTP 422 while {context}). "
                "The account allows 15 at once, shared with other tools.",
                internal=f"422{self._excerpt(answer)}",
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
                internal=f"HTTP {status}{self._excerpt(answer)}",
            )
        raise ScarfError(
            f"Scarf answered HTTP {status} while {context}{self._excerpt(answer)}. "
            "This is unexpected; please report it with this message.",
        )


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
