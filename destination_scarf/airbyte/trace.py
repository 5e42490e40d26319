"""The TRACE message a failed command ends with, in the CDK's format, without the CDK.

The same fields as the CDK's `AirbyteTracedException.as_sanitized_airbyte_message()`: type ERROR, the
failure type, the user's message, the internal message and the stack trace, each through the CDK's
secret filter. A test builds both for the same errors and compares them.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from destination_scarf.airbyte.secret_filter import filter_secrets
from destination_scarf.errors import ScarfError

#: What the CDK says for an error that is not one of ours (a bug): the details are in the internal message.
UNEXPECTED = "Something went wrong in the connector. See the logs for more details."


def trace_message(error: BaseException) -> dict[str, Any]:
    """The TRACE message for `error`; a ScarfError keeps its failure type and message."""
    if isinstance(error, ScarfError):
        message, internal, failure = error.message, error.internal_message, error.failure
        cause: BaseException = error.cause or error
    else:
        message, internal, failure, cause = UNEXPECTED, str(error), "system_error", error
    stack = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    return {
        "type": "TRACE",
        "trace": {
            "type": "ERROR",
            "emitted_at": time.time() * 1000,
            "error": {
                "message": filter_secrets(message),
                "internal_message": filter_secrets(internal),
                "stack_trace": filter_secrets(stack),
                "failure_type": failure,
            },
        },
    }
