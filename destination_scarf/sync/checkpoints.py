"""Which STATE messages may be echoed now: the whole rule, in one place.

The rule: a state is echoed only when every batch holding records received before it is settled (its
import is `done`, Scarf's counts account for every event, failures handled per policy), and states
leave in the order they came. A STREAM state waits only for batches holding its own stream's records;
a GLOBAL or LEGACY state waits for every batch. States do not stop reading: they queue behind the
batches they depend on.

`Checkpoints` is told five things, and decides the rest:

    record_batched(stream) -> position   a record's event went into the open batch
    record_rejected(stream) -> position  a record was refused before upload (counted, in no batch)
    batch_closed() -> batch id           the open batch goes to Scarf; the next one opens
    batch_settled(id, late_rejections)   that batch's import is settled; some events may have failed
    state_received(message, line) -> scope

and `ready()` yields, in order, the states that may leave, each exactly as received (every key,
including ones the CDK's models do not know, such as the platform's `id`) plus `destinationStats`
counted since the previous state of the same scope. No threads, no HTTP: it is pure bookkeeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

#: Scope of a GLOBAL or LEGACY state: it covers every stream.
GLOBAL = -1
#: Scope of a STREAM state for a stream this sync does not write (not in the catalog).
UNKNOWN_STREAM = -2

#: Finds a stream's index from (namespace, name), or None: the catalog's lookup, injected.
FindStream = Callable[[Any, Any], "int | None"]


@dataclass(eq=False)
class _PendingState:
    message: MutableMapping[str, Any]
    scope: int
    input_line: int
    waiting_on: set[int]
    record_count: int
    rejected_count: int = 0


class Checkpoints:
    """Tracks the open batch, the unfinished ones, and the states that wait on them."""

    def __init__(self, *, stream_count: int, find_stream: FindStream) -> None:
        self._find_stream = find_stream
        self._records = [0] * stream_count  # records received per stream (their positions)
        self._rejected = [0] * stream_count  # of them, rejected (before upload, or failed by Scarf)
        self._open_streams: set[int] = set()
        self.open_batch = 1  # the id of the batch being filled; ids grow by one per closed batch
        self._unfinished: dict[int, set[int]] = {}  # closed, unsettled batch -> the streams it holds
        self._pending: deque[_PendingState] = deque()
        # Counts at the previous state of each scope: scope -> (records, rejected); GLOBAL too.
        self._last: dict[int, tuple[int, int]] = {}
        self.echoed = 0

    # ----- records -------------------------------------------------------------------------------

    def record_batched(self, stream: int) -> int:
        """A record of `stream` became an event of the open batch; returns its 1-based position in its stream."""
        position = self._records[stream] = self._records[stream] + 1
        self._open_streams.add(stream)
        return position

    def record_rejected(self, stream: int) -> int:
        """A record of `stream` was refused before upload: it counts, as rejected, and waits for no batch."""
        position = self._records[stream] = self._records[stream] + 1
        self._rejected[stream] += 1
        return position

    # ----- batches -------------------------------------------------------------------------------

    def batch_closed(self) -> int:
        """The open batch is handed over for import (it holds at least one event); returns its id."""
        batch_id = self.open_batch
        self._unfinished[batch_id] = self._open_streams
        self._open_streams = set()
        self.open_batch += 1
        return batch_id

    def batch_discarded(self) -> None:
        """The open batch is dropped (the sync is stopping): states that wait on it never leave."""
        if self._open_streams:
            self.batch_closed()

    def batch_settled(self, batch_id: int, *, late_rejections: Iterable[tuple[int, int]] = ()) -> None:
        """The batch's import is settled; `late_rejections` are (stream, input line) of events Scarf failed
        (under `on_failed_events: warn`), each counted with the first state of its scope after its record."""
        for stream, input_line in late_rejections:
            self._reject_late(stream, input_line)
        self._unfinished.pop(batch_id, None)
        for state in self._pending:
            state.waiting_on.discard(batch_id)

    @property
    def records_read(self) -> int:
        return sum(self._records)

    @property
    def unfinished_batches(self) -> int:
        return len(self._unfinished)

    def _reject_late(self, stream: int, input_line: int) -> None:
        for state in self._pending:
            if state.input_line > input_line and state.scope in (stream, GLOBAL):
                state.rejected_count += 1
                return
        self._rejected[stream] += 1  # no state after it is queued yet: it counts towards the next one

    # ----- states --------------------------------------------------------------------------------

    def state_received(self, message: MutableMapping[str, Any], *, input_line: int) -> int:
        """Queue a state (its message has a `state` object) behind every batch holding records of its scope.

        Returns the scope: a stream index, GLOBAL, or UNKNOWN_STREAM.
        """
        scope = self._scope(message["state"])
        if scope == GLOBAL:
            waiting_on = set(self._unfinished)
            counts = (sum(self._records), sum(self._rejected))
        elif scope == UNKNOWN_STREAM:
            waiting_on, counts = set(), (0, 0)
        else:
            waiting_on = {batch for batch, streams in self._unfinished.items() if scope in streams}
            counts = (self._records[scope], self._rejected[scope])
        if self._open_streams and (scope == GLOBAL or scope in self._open_streams):
            waiting_on.add(self.open_batch)
        last_records, last_rejected = self._last.get(scope, (0, 0))
        if scope != UNKNOWN_STREAM:
            self._last[scope] = counts
        self._pending.append(_PendingState(
            message=message, scope=scope, input_line=input_line, waiting_on=waiting_on,
            record_count=counts[0] - last_records, rejected_count=counts[1] - last_rejected))
        return scope

    def _scope(self, state: MutableMapping[str, Any]) -> int:
        if state.get("type") != "STREAM":
            return GLOBAL  # GLOBAL, LEGACY (no type), or an unknown future type: wait for everything
        stream = state.get("stream")
        descriptor = stream.get("stream_descriptor") if type(stream) is dict else None
        if type(descriptor) is not dict:
            return UNKNOWN_STREAM
        index = self._find_stream(descriptor.get("namespace"), descriptor.get("name"))
        return UNKNOWN_STREAM if index is None else index

    @property
    def any_ready(self) -> bool:
        """Whether `ready()` would yield at least one state."""
        return bool(self._pending) and not self._pending[0].waiting_on

    def ready(self, *, before_line: int | None = None) -> Iterator[MutableMapping[str, Any]]:
        """Pop, in order, the states whose batches are all settled, with destinationStats attached; with
        `before_line`, only those that came before that input line."""
        while self._pending and not self._pending[0].waiting_on and (
                before_line is None or self._pending[0].input_line < before_line):
            state = self._pending.popleft()
            state.message["state"]["destinationStats"] = {
                # The protocol's number form: Airbyte's models declare these counts as numbers.
                "recordCount": float(state.record_count),
                "rejectedRecordCount": float(state.rejected_count),
            }
            self.echoed += 1
            yield state.message

    @property
    def pending_states(self) -> int:
        return len(self._pending)
