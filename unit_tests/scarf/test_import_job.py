"""One import's life, run on the test's own thread against a scripted Scarf and a clock that only moves
when the job waits: every path of the state machine in milliseconds, with no HTTP and no real time.

(The same job runs against the emulator over real HTTP in integration_tests/; here the point is the
decisions: which phase comes next, and what the outcome says.)
"""

from __future__ import annotations

import gzip
import threading
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from destination_scarf.config import Target
from destination_scarf.errors import (
    FailedEvents,
    ImportFailed,
    ImportIncomplete,
    ScarfAuthError,
    ScarfNotFound,
    ScarfTransientError,
    SyncCancelled,
    TooManyActiveImports,
    UncertainImport,
)
from destination_scarf.scarf.client import EventImport
from destination_scarf.scarf.import_job import Batch, ImportJob, JobSettings, Phase
from destination_scarf.scarf.polling import PollPolicy
from destination_scarf.scarf.retry import SlotWaitPolicy

IDS = [f"0000000{n}-0000-4000-8000-000000000000" for n in range(1, 10)]


class Clock:
    """Time that passes only when the job waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


class FakeScarf:
    """A scripted Scarf: each call pops the next answer for it (an EventImport, a list, or an exception)."""

    def __init__(self, *, posts: list[Any], gets: list[Any], log: list[dict] | None = None) -> None:
        self.posts, self.gets = deque(posts), deque(gets)
        self.log = log or []
        self.aborted: list[str] = []
        self.calls: list[str] = []

    def _next(self, queue: deque, name: str) -> Any:
        self.calls.append(name)
        answer = queue.popleft()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def import_events(self, **kwargs: Any) -> EventImport:
        return self._next(self.posts, "post")

    def get_import(self, import_id: str, **kwargs: Any) -> EventImport:
        return self._next(self.gets, "get")

    def import_log(self, import_id: str, **kwargs: Any) -> list[dict]:
        self.calls.append("log")
        return self.log

    def abort_import(self, import_id: str, **kwargs: Any) -> None:
        self.calls.append("abort")
        self.aborted.append(import_id)


def imp(n: int, status: str = "importing", total: int = 3, imported: int | None = None, failed: int = 0) -> EventImport:
    done = status in ("done", "failed")
    return EventImport(id=IDS[n], status=status, events_total=total,
                       events_successfully_imported=(total - failed if imported is None else imported) if done else 0,
                       events_failed_to_import=failed if done else 0)


@pytest.fixture
def batch(tmp_path: Path) -> Batch:
    from array import array

    path = tmp_path / "batch.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n{"a":2}\n{"a":3}\n'))
    return Batch(batch_id=7, path=path, events=3, raw_bytes=24, wire_bytes=path.stat().st_size,
                 streams=frozenset({0}), stream_indexes=array("H", [0, 0, 0]), record_positions=array("Q", [1, 2, 3]),
                 input_lines=array("Q", [1, 2, 3]), stream_labels=["downloads"])


def run(batch: Batch, scarf: FakeScarf, *, cancelled: threading.Event | None = None, **settings: Any):
    clock = Clock()
    values: dict[str, Any] = dict(target=Target(kind="multi_artifact"), safe_to_resend=True, on_failed_events="fail",
                                  import_timeout_seconds=600, slot_wait_seconds=60, upload_budget_seconds=60,
                                  poll=PollPolicy(initial_seconds=1, age_fraction=0.1, max_seconds=5),
                                  slot_wait=SlotWaitPolicy(initial_seconds=1, factor=2, max_seconds=4),
                                  not_found_grace_seconds=10)
    values.update(settings)
    job = ImportJob(batch=batch, settings=JobSettings(**values), client=scarf,  # type: ignore[arg-type]
                    cancelled=cancelled or threading.Event(), clock=clock, rand=lambda: 1.0, wait=clock.wait)
    return job, job.run(), clock


def test_a_clean_import_is_done_after_polls_and_its_log_is_not_read(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1), imp(1), imp(1, "done")])
    _, outcome, clock = run(batch, scarf)
    assert outcome.phase is Phase.DONE and outcome.error is None and outcome.imports == (IDS[1],)
    assert scarf.calls == ["post", "get", "get", "get"]
    assert clock.waits == [1, 1, 1]  # quick polls first


def test_422_waits_for_a_slot_with_growing_backoff_then_uploads(batch):
    scarf = FakeScarf(posts=[TooManyActiveImports("busy"), TooManyActiveImports("busy"), imp(1)],
                      gets=[imp(1, "done")])
    _, outcome, clock = run(batch, scarf)
    assert outcome.phase is Phase.DONE
    assert clock.waits[:2] == [1, 2]  # the slot-wait policy's ceilings (rand = 1)


def test_slots_busy_for_longer_than_the_patience_fail_naming_it(batch):
    scarf = FakeScarf(posts=[TooManyActiveImports("busy")] * 50, gets=[])
    _, outcome, _ = run(batch, scarf, slot_wait_seconds=5)
    assert outcome.phase is Phase.FAILED and isinstance(outcome.error, ScarfTransientError)
    assert "slots" in outcome.error.message and "slot_wait_minutes" in outcome.error.message


def test_an_uncertain_upload_fails_without_resending(batch):
    scarf = FakeScarf(posts=[UncertainImport("unknown")], gets=[])
    _, outcome, _ = run(batch, scarf, safe_to_resend=False)
    assert isinstance(outcome.error, UncertainImport) and scarf.calls == ["post"]


def test_an_outside_abort_is_re_uploaded_once_when_safe_then_fails(batch):
    scarf = FakeScarf(posts=[imp(1), imp(2)], gets=[imp(1, "aborted"), imp(2, "aborted")])
    _, outcome, _ = run(batch, scarf)
    assert outcome.imports == (IDS[1], IDS[2]) and isinstance(outcome.error, ImportFailed)
    assert "aborted again" in outcome.error.message


def test_an_outside_abort_without_unique_ids_fails_at_once(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1, "aborted")])
    _, outcome, _ = run(batch, scarf, safe_to_resend=False)
    assert outcome.imports == (IDS[1],) and "$unique_id" in outcome.error.message


@pytest.mark.parametrize("word", ["failed", "error", "errored", "Failure", "rejected"])
def test_failure_words_are_final_failures(batch, word):
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1, word)])
    _, outcome, _ = run(batch, scarf)
    assert isinstance(outcome.error, ImportFailed) and f"'{word}'" in outcome.error.message


def test_unknown_statuses_are_polled_on_until_done(batch):
    scarf = FakeScarf(posts=[imp(1, "uploading")], gets=[imp(1, "queued"), imp(1, "processing"), imp(1, "done")])
    _, outcome, _ = run(batch, scarf)
    assert outcome.phase is Phase.DONE


def test_a_404_soon_after_creation_is_waited_out_and_a_lasting_one_fails(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[ScarfNotFound("404"), ScarfNotFound("404"), imp(1, "done")])
    assert run(batch, scarf)[1].phase is Phase.DONE
    scarf = FakeScarf(posts=[imp(1)], gets=[ScarfNotFound("404")] * 100)
    _, outcome, _ = run(batch, scarf, not_found_grace_seconds=3)
    assert isinstance(outcome.error, ImportFailed) and "404" in outcome.error.message


def test_the_import_deadline_aborts_a_slow_import(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1)] * 500)
    _, outcome, clock = run(batch, scarf, import_timeout_seconds=30)
    assert isinstance(outcome.error, ImportFailed) and "import_timeout_minutes" in outcome.error.message
    assert scarf.aborted == [IDS[1]] and outcome.aborted == (IDS[1],)
    assert clock.now - 1000 <= 31  # never waits past the deadline


def test_a_status_outage_past_the_deadline_fails_saying_so(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[ScarfTransientError("Scarf's API kept failing while reading import")])
    _, outcome, _ = run(batch, scarf)
    assert isinstance(outcome.error, ImportFailed) and "kept failing" in outcome.error.message


def test_a_revoked_token_while_polling_is_a_config_error(batch):
    scarf = FakeScarf(posts=[imp(1)], gets=[ScarfAuthError("403")])
    _, outcome, _ = run(batch, scarf)
    assert isinstance(outcome.error, ScarfAuthError) and outcome.phase is Phase.FAILED


def test_failed_lines_are_traced_to_records_and_fail_under_fail(batch):
    log = [{"class": "error", "type": "artifact-not-found", "line": 2, "human_friendly_message": "Package not found: x"}]
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1, "done", failed=1)], log=log)
    _, outcome, _ = run(batch, scarf)
    assert isinstance(outcome.error, FailedEvents) and "record #2" in outcome.error.message
    assert "Package not found" in outcome.error.message and ": x" not in outcome.error.message


def test_failed_lines_under_warn_are_in_the_outcome(batch):
    log = [{"class": "error", "type": "artifact-not-found", "line": 3, "human_friendly_message": "Package not found"}]
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1, "done", failed=1)], log=log)
    _, outcome, _ = run(batch, scarf, on_failed_events="warn")
    assert outcome.error is None and [f.line for f in outcome.failed_lines] == [3] and outcome.unattributed == 0


@pytest.mark.parametrize("short", [imp(1, "done", total=2), imp(1, "done", total=3, imported=1)])
def test_a_done_import_that_counts_short_is_incomplete(batch, short):
    scarf = FakeScarf(posts=[imp(1)], gets=[short])
    _, outcome, _ = run(batch, scarf)
    assert isinstance(outcome.error, ImportIncomplete)
    assert f"of 3 events of import {IDS[1]}" in outcome.error.message
    _, warned, _ = run(batch, FakeScarf(posts=[imp(1)], gets=[short]), on_failed_events="warn")
    assert warned.error is None and warned.unattributed in (1, 2)


def test_cancelled_while_polling_takes_a_last_look_and_keeps_a_done_import(batch):
    cancelled = threading.Event()
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1, "done")])  # cancelled before the first poll: the last look

    def wait(seconds: float) -> bool:
        cancelled.set()
        return True

    clock = Clock()
    job = ImportJob(batch=batch, settings=JobSettings(
        target=Target(kind="multi_artifact"), safe_to_resend=True, on_failed_events="fail",
        import_timeout_seconds=60, slot_wait_seconds=60, upload_budget_seconds=60),
        client=scarf, cancelled=cancelled, clock=clock, wait=wait)  # type: ignore[arg-type]
    outcome = job.run()
    assert outcome.phase is Phase.DONE and outcome.error is None  # Scarf had finished it: its state can leave
    assert scarf.aborted == []


def test_cancelled_while_polling_an_unfinished_import_aborts_it(batch):
    cancelled = threading.Event()
    scarf = FakeScarf(posts=[imp(1)], gets=[imp(1)])
    clock = Clock()
    job = ImportJob(batch=batch, settings=JobSettings(
        target=Target(kind="multi_artifact"), safe_to_resend=True, on_failed_events="fail",
        import_timeout_seconds=60, slot_wait_seconds=60, upload_budget_seconds=60),
        client=scarf, cancelled=cancelled, clock=clock, wait=lambda s: cancelled.set() or True)  # type: ignore
    outcome = job.run()
    assert outcome.phase is Phase.CANCELLED and isinstance(outcome.error, SyncCancelled)
    assert scarf.aborted == [IDS[1]] and outcome.aborted == (IDS[1],)
