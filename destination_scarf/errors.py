"""The error types of the connector, grouped the way the Airbyte platform acts on them.

Every error the user can see is a `ScarfError` with a failure type, which becomes the `failure_type` of
the TRACE message the sync ends with (trace.py writes it in the CDK's format):

- `config_error`: the user must change something (token, owner, ids, mapping, a bad record). Retrying
  the sync as is will fail the same way.
- `transient_error`: the API or the network misbehaved; the platform may retry the sync, and a re-run
  from the last echoed state repairs it.
- `system_error`: a bug or an invariant broken in the connector itself.

Messages name what went wrong, where, and what to do. They never carry the API token or record values.

Not built on the CDK's `AirbyteTracedException`: importing the CDK takes about a second and 45 MB, and
`write` does not need it. Where the CDK's own types are wanted (check, discover, tests), `failure_type`
and `as_airbyte_message()` convert.
"""

from __future__ import annotations

import threading
from typing import Any


class ScarfError(Exception):
    """Base of the connector's errors: `message` is for the user, `internal_message` for the logs."""

    failure: str = "system_error"

    def __init__(self, message: str, *, internal: str | None = None, cause: BaseException | None = None):
        super().__init__(message)
        self.message = message
        self.internal_message = internal or message
        self.cause = cause

    def __str__(self) -> str:
        return self.message

    @property
    def failure_type(self) -> Any:
        """The failure type as the CDK's `FailureType` (imports the CDK)."""
        from airbyte_cdk.models import FailureType

        return FailureType(self.failure)

    def as_airbyte_message(self) -> Any:
        """This error as the CDK's TRACE `AirbyteMessage` (imports the CDK)."""
        from airbyte_cdk.utils.traced_exception import AirbyteTracedException

        return AirbyteTracedException(internal_message=self.internal_message, message=self.message,
                                      failure_type=self.failure_type, exception=self.cause).as_airbyte_message()


class ScarfConfigError(ScarfError):
    """The configuration, the account's data or the input must change before a retry can succeed."""

    failure = "config_error"


class ScarfAuthError(ScarfConfigError):
    """401/403: the token is rejected or has no access to the owner."""


class ScarfNotFound(ScarfConfigError):
    """404: an owner, package, tracking pixel or import that Scarf does not know."""


class ScarfTransientError(ScarfError):
    """A failure the platform may retry: retries exhausted, API errors, timeouts."""

    failure = "transient_error"


class TooManyActiveImports(ScarfTransientError):
    """422: the account's import slots (15) are all busy. Callers wait for a slot and retry."""


class UncertainImport(ScarfTransientError):
    """An import POST failed in a way that leaves unknown whether Scarf created the import.

    Raised instead of re-sending when the events carry no `$unique_id`: a second POST could
    count every event twice.
    """


class ImportFailed(ScarfTransientError):
    """An import ended in a way that lost events (aborted twice, timed out, or unusable)."""


class ImportIncomplete(ScarfTransientError):
    """Scarf reported an import `done` but its counts do not account for every event of the batch."""


class InvalidInput(ScarfConfigError):
    """A record or input line that cannot become a Scarf event under `on_invalid_record: fail`."""


class FailedEvents(ScarfConfigError):
    """Scarf could not import some events (under `on_failed_events: fail`): their records must change."""


class SyncCancelled(ScarfTransientError):
    """SIGTERM/SIGINT: the sync stopped on request; in-flight imports were aborted."""

    @classmethod
    def check(cls, cancelled: threading.Event, message: str = "The sync was cancelled.") -> None:
        """Raise when the sync was cancelled: every step that may take a while looks here first."""
        if cancelled.is_set():
            raise cls(message)

