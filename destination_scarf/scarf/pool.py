"""A small pool of worker threads with a bounded queue: it runs jobs and hands back their results.

It knows nothing of Scarf. A job is any object with `run() -> result`; the pool runs up to
`workers` at once, lets at most `max_queued` wait (so a fast reader is paused instead of piling
batches up: backpressure), and keeps the results for the main thread to `take()`. A job that
raises is a bug in the job: its exception is handed back as its result.

Stopping is explicit and bounded: `stop()` drops the queued jobs (they never start) and lets the
running ones finish; `join(timeout)` waits for them, never longer than asked.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

R = TypeVar("R", covariant=True)


class Job(Protocol[R]):
    def run(self) -> R: ...


J = TypeVar("J", bound=Job)


class PoolStopped(Exception):
    """`submit` after `stop()`: the job was not queued."""


class WorkerPool(Generic[J]):
    def __init__(self, *, workers: int, max_queued: int, name: str = "worker") -> None:
        self._max_queued = max_queued
        self._cond = threading.Condition()
        self._queue: deque[J] = deque()
        self._running: list[J] = []
        self._results: deque[tuple[J, object]] = deque()
        self._stopped = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    # ----- the main thread's side ----------------------------------------------------------------

    def submit(self, job: J, *, on_wait: Callable[[], None] = lambda: None, wait_seconds: float = 0.5) -> None:
        """Queue `job`; while `max_queued` jobs already wait, block, calling `on_wait` every `wait_seconds`.

        `on_wait` may raise (a cancelled sync stops waiting that way); the job is then not queued.
        """
        with self._cond:
            while not self._stopped and len(self._queue) >= self._max_queued:
                self._cond.wait(wait_seconds)
                self._cond.release()
                try:
                    on_wait()
                finally:
                    self._cond.acquire()
            if self._stopped:
                raise PoolStopped()
            self._queue.append(job)
            self._cond.notify_all()

    def take(self) -> list[tuple[J, object]]:
        """The (job, result) pairs of the jobs that ended since the last call, in the order they ended."""
        with self._cond:
            results = list(self._results)
            self._results.clear()
            return results

    def wait(self, timeout: float) -> None:
        """Block until a result is there, the pool is idle, or `timeout` passes."""
        with self._cond:
            if not self._results and (self._queue or self._running):
                self._cond.wait(timeout)

    def running(self) -> list[J]:
        with self._cond:
            return list(self._running)

    @property
    def busy(self) -> bool:
        """True while any job is queued or running."""
        with self._cond:
            return bool(self._queue or self._running)

    def stop(self) -> list[J]:
        """No job starts from now on: the queued ones are dropped and returned; running ones go on."""
        with self._cond:
            self._stopped = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
            return dropped

    def join(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds in all) for the running jobs after `stop()`; True if all ended."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    # ----- the workers' side ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopped)
                if not self._queue:
                    return
                job = self._queue.popleft()
                self._running.append(job)
                self._cond.notify_all()  # a queue place is free: wake a blocked submit
            try:
                result: object = job.run()
            except BaseException as error:
                result = error
            with self._cond:
                self._running.remove(job)
                self._results.append((job, result))
                self._cond.notify_all()
