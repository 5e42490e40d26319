"""The worker pool on its own: backpressure, results in the order jobs end, a bounded stop."""

from __future__ import annotations

import threading

from destination_scarf.scarf.pool import PoolStopped, WorkerPool


class Job:
    def __init__(self, name: str, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.name, self.gate, self.fail = name, gate, fail
        self.started = threading.Event()

    def run(self) -> str:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "a test gate was never opened"
        if self.fail:
            raise ValueError(self.name)
        return self.name.upper()


def test_results_come_back_and_an_exception_is_a_result():
    pool: WorkerPool[Job] = WorkerPool(workers=2, max_queued=2)
    jobs = [Job("a"), Job("b", fail=True)]
    for job in jobs:
        pool.submit(job)
    results: dict[str, object] = {}
    while len(results) < 2:
        pool.wait(1.0)
        results.update({job.name: result for job, result in pool.take()})
    assert results["a"] == "A" and isinstance(results["b"], ValueError)
    assert not pool.busy
    pool.stop()


def test_submit_blocks_while_the_queue_is_full_and_calls_on_wait():
    gate = threading.Event()
    pool: WorkerPool[Job] = WorkerPool(workers=1, max_queued=1)
    first = Job("first", gate)
    pool.submit(first)
    assert first.started.wait(5)
    pool.submit(Job("queued", gate))  # the one queue place
    waits = []

    def on_wait() -> None:
        waits.append(1)
        if len(waits) == 2:
            gate.set()  # the running job ends: a place frees up

    pool.submit(Job("third", gate), on_wait=on_wait, wait_seconds=0.01)
    assert len(waits) >= 2  # it waited (backpressure) and kept calling back while it did
    pool.stop()
    assert pool.join(5)


def test_stop_drops_the_queued_jobs_and_join_is_bounded():
    gate = threading.Event()
    pool: WorkerPool[Job] = WorkerPool(workers=1, max_queued=3)
    running = Job("running", gate)
    pool.submit(running)
    assert running.started.wait(5)
    queued = [Job(f"q{n}") for n in range(3)]
    for job in queued:
        pool.submit(job)
    dropped = pool.stop()
    assert dropped == queued and not any(job.started.is_set() for job in queued)
    assert pool.join(0.05) is False  # the running job is still at its gate: join gives up on time
    gate.set()
    assert pool.join(5) is True
    try:
        pool.submit(Job("late"))
    except PoolStopped:
        pass
    else:
        raise AssertionError("submit after stop must refuse the job")


def test_on_wait_can_stop_a_blocked_submit():
    gate = threading.Event()
    pool: WorkerPool[Job] = WorkerPool(workers=1, max_queued=1)
    pool.submit(Job("running", gate))
    pool.submit(Job("queued", gate))

    class Cancelled(Exception):
        pass

    def cancel() -> None:
        raise Cancelled()

    try:
        pool.submit(Job("never"), on_wait=cancel, wait_seconds=0.01)
    except Cancelled:
        pass
    else:
        raise AssertionError("the callback's exception must end the wait")
    gate.set()
    pool.stop()
    assert pool.join(5)
