"""The import slots on their own: backpressure, outcomes in the order imports end, a bounded stop, a crash
reported as an outcome. Each import runs against a scripted Scarf whose answers wait at a test's gate."""

from __future__ import annotations

import gzip
import threading
from array import array
from pathlib import Path
from typing import Any

import pytest

from destination_scarf.config import Target
from destination_scarf.scarf.client import EventImport
from destination_scarf.scarf.import_job import Batch, JobSettings, Phase
from destination_scarf.scarf.imports import ImportSlots, ImportsStopped
from destination_scarf.scarf.polling import PollPolicy

WAIT = 10.0  # a guard against a hang, never an assertion


class GatedScarf:
    """A Scarf whose import of batch N is done once gate N opens (a batch without a gate is done at once)."""

    def __init__(self) -> None:
        self.gates: dict[int, threading.Event] = {}
        self.started: dict[int, threading.Event] = {}
        self.crash: set[int] = set()

    def gate(self, batch_id: int) -> threading.Event:
        self.started.setdefault(batch_id, threading.Event())
        return self.gates.setdefault(batch_id, threading.Event())

    def import_events(self, *, what: str, **kwargs: Any) -> EventImport:
        batch_id = int(what.split()[1])
        self.started.setdefault(batch_id, threading.Event()).set()
        if batch_id in self.crash:
            raise ValueError(f"a bug while importing batch {batch_id}")
        return EventImport(id=f"0000000{batch_id}-0000-4000-8000-000000000000", status="importing", events_total=1)

    def get_import(self, import_id: str, **kwargs: Any) -> EventImport:
        batch_id = int(import_id[7])
        gate = self.gates.get(batch_id)
        assert gate is None or gate.wait(WAIT), "a test gate was never opened"
        return EventImport(id=import_id, status="done", events_total=1, events_successfully_imported=1)

    def abort_import(self, import_id: str, **kwargs: Any) -> None:
        pass


def batch(tmp_path: Path, batch_id: int) -> Batch:
    path = tmp_path / f"batch-{batch_id}.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n'))
    return Batch(batch_id=batch_id, path=path, events=1, raw_bytes=8, wire_bytes=path.stat().st_size,
                 streams=frozenset({0}), stream_indexes=array("H", [0]), record_positions=array("Q", [batch_id]),
                 input_lines=array("Q", [batch_id]), stream_labels=["s"])


def slots(scarf: GatedScarf, count: int) -> ImportSlots:
    settings = JobSettings(target=Target(kind="multi_artifact"), safe_to_resend=True, on_failed_events="fail",
                           import_timeout_seconds=60, slot_wait_seconds=60, upload_budget_seconds=60,
                           status_polling="by_id",  # each import read on its own: these tests are about the slots
                           poll=PollPolicy(initial_seconds=0.001, age_fraction=0.1, max_seconds=0.01))
    return ImportSlots(client=scarf, settings=settings, slots=count, cancelled=threading.Event())  # type: ignore


def finished(imports: ImportSlots, count: int) -> list:
    outcomes: list = []
    for _ in range(1000):
        if len(outcomes) >= count:
            break
        imports.wait(WAIT)
        outcomes += imports.take_finished()
    return outcomes


def test_outcomes_come_back_and_a_crash_is_an_outcome(tmp_path):
    scarf = GatedScarf()
    scarf.crash.add(2)
    imports = slots(scarf, 2)
    imports.start(batch(tmp_path, 1))
    imports.start(batch(tmp_path, 2))
    outcomes = {outcome.batch.batch_id: outcome for outcome in finished(imports, 2)}
    assert outcomes[1].phase is Phase.DONE and outcomes[1].error is None
    assert outcomes[2].phase is Phase.FAILED and "failed unexpectedly (ValueError)" in outcomes[2].error.message
    assert not imports.busy and imports.stats.imports_done == 1
    imports.stop()


def test_outcomes_come_back_in_the_order_imports_end(tmp_path):
    scarf = GatedScarf()
    first, second = scarf.gate(1), scarf.gate(2)
    imports = slots(scarf, 2)
    imports.start(batch(tmp_path, 1))
    imports.start(batch(tmp_path, 2))
    second.set()
    assert [o.batch.batch_id for o in finished(imports, 1)] == [2]
    first.set()
    assert [o.batch.batch_id for o in finished(imports, 1)] == [1]
    imports.stop()


def test_no_room_while_every_slot_is_busy_and_as_many_batches_wait(tmp_path):
    scarf = GatedScarf()
    gate = scarf.gate(1)
    scarf.gate(2)
    imports = slots(scarf, 1)
    imports.start(batch(tmp_path, 1))
    assert scarf.started[1].wait(WAIT)
    assert imports.has_room  # one slot busy, nobody waiting yet
    imports.start(batch(tmp_path, 2))  # the one queue place
    assert not imports.has_room  # backpressure: the sync must wait before handing over another batch
    gate.set()  # the running import ends: batch 2 starts, and its place in the queue frees up
    imports.wait(WAIT, for_room=True)
    assert imports.has_room and scarf.started[2].wait(WAIT)
    scarf.gates[2].set()
    finished(imports, 2)
    imports.stop()


def test_stop_drops_the_waiting_batches_and_waiting_for_the_running_ones_is_bounded(tmp_path):
    scarf = GatedScarf()
    gates = [scarf.gate(1), scarf.gate(2)]
    imports = slots(scarf, 2)
    for n in (1, 2):
        imports.start(batch(tmp_path, n))
    assert scarf.started[1].wait(WAIT) and scarf.started[2].wait(WAIT)
    for n in (3, 4):  # both slots are busy: these wait
        imports.start(batch(tmp_path, n))
    assert imports.stop() == 2 and not any(n in scarf.started for n in (3, 4))
    assert imports._join(0.05) is False  # the running imports are still at their gates: the join gives up on time
    for gate in gates:
        gate.set()
    assert imports._join(WAIT) is True
    with pytest.raises(ImportsStopped):
        imports.start(batch(tmp_path, 5))
