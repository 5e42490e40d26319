"""Which STATE messages may be echoed now.

The rule: a state is echoed only when every batch holding records received before it is in an import
that Scarf reports `done` (with failures handled per policy), and states leave in the order they came.
A STREAM state waits only for batches holding its own stream's records; a GLOBAL or LEGACY state
waits for every batch. States do not stop reading: they queue behind the batches they depend on.

Each state is echoed exactly as received (every key, including ones the CDK's models do not know,
such as the platform's `id`), plus `destinationStats` counted since the previous state of the same
scope. States are never round-tripped through the CDK's dataclasses, which drop unknown keys.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, MutableMapping

#: Scope of a GLOBAL or LEGACY state: it covers every stream.
GLOBAL = -1
#: Scope of a STREAM state for a stream this sync does not write (not in the catalog).
UNKNOWN_STREAM = -2


@dataclass(eq=False)
class PendingState:
    message: MutableMapping[str, Any]
    scope: int
    input_line: int
    waiting_on: set[int]
    record_count: int
    rejected_count: int = 0


@dataclass
class Checkpoints:
    """Tracks unfinished batches and the states that wait on them.

    `records[s]` and `rejected[s]` count the records of stream index `s` received and rejected so
    far; the writer increments them on its hot path, and states take their differences.
    """

    stream_count: int
    records: list[int] = field(init=False)
    rejected: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.records = [0] * self.stream_count
        self.rejected = [0] * self.stream_count
        self._unfinished: dict[int, set[int]] = {}
        self._pending: deque[PendingState] = deque()
        # Counts at the previous state of each scope: stream index -> (records, rejected); GLOBAL too.
        self._last: dict[int, tuple[int, int]] = {}
        self.echoed = 0

    # ----- batches ---------------------------------------------------------------------------------

    def batch_started(self, batch_id: int, streams: set[int]) -> None:
        """Register a batch; `streams` is the open batch's live set of stream indexes (it grows)."""
        self._unfinished[batch_id] = streams

    def batch_done(self, batch_id: int) -> None:
        """The batch's import is `done` and its failures are handled: states may stop waiting on it."""
        self._unfinished.pop(batch_id, None)
        for state in self._pending:
            state.waiting_on.discard(batch_id)

    @property
    def unfinished_batches(self) -> int:
        return len(self._unfinished)

    # ----- states ----------------------------------------------------------------------------------

    def add_state(self, message: MutableMapping[str, Any], *, scope: int, input_line: int) -> None:
        """Queue a state behind every unfinished batch that holds records of its scope."""
        if scope == GLOBAL:
            waiting_on = set(self._unfinished)
            counts = (sum(self.records), sum(self.rejected))
        elif scope == UNKNOWN_STREAM:
            waiting_on, counts = set(), (0, 0)
        else:
            waiting_on = {batch for batch, streams in self._unfinished.items() if scope in streams}
            counts = (self.records[scope], self.rejected[scope])
        last_records, last_rejected = self._last.get(scope, (0, 0))
        if scope != UNKNOWN_STREAM:
            self._last[scope] = counts
        self._pending.append(
            PendingState(
                message=message,
                scope=scope,
                input_line=input_line,
                waiting_on=waiting_on,
                record_count=counts[0] - last_records,
                rejected_count=counts[1] - last_rejected,
            )
        )

    def reject_late(self, stream_index: int, input_line: int) -> None:
        """Count a record rejected after the fact (an event Scarf failed, under `on_failed_events: warn`).

        It belongs to the first queued state of its scope that came after the record; without one,
        it is counted towards the next state.
        """
        for state in self._pending:
            if state.input_line > input_line and state.scope in (stream_index, GLOBAL):
                state.rejected_count += 1
                return
        self.rejected[stream_index] += 1

    def ready(self) -> Iterable[MutableMapping[str, Any]]:
        """Pop, in order, the states whose batches are all done, with destinationStats attached."""
        while self._pending and not self._pending[0].waiting_on:
            state = self._pending.popleft()
            body = state.message.get("state")
            if isinstance(body, MutableMapping):
                body["destinationStats"] = {
                    "recordCount": state.record_count,
                    "rejectedRecordCount": state.rejected_count,
                }
            self.echoed += 1
            yield state.message

    @property
    def pending_states(self) -> int:
        return len(self._pending)
