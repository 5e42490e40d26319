"""When to ask Scarf about its imports: one status poller for the whole sync, and each import's cadence.

Scarf bills every API call, and an import takes minutes. So the sync does not poll each import by id
on its own: one `StatusPoller` reads the account's imports list (`status=importing`, a page larger
than the imports in flight), which answers for every import of the sync at once. An import is read by
id only when it is due and the list no longer shows it importing: once, for its final counts (the job
does that read, and only a read by id ever releases a state). When the list fails, or leaves out an
import that a read by id then finds still importing (the list's paging and freshness are not
documented), that import is read by id at the same cadence instead. The list gets one attempt (within
`list_seconds`): its retries would keep the imports due waiting, each billed, while their own reads by
id ride out errors anyway.

The cadence (`Cadence`): before anything is known, looks back off geometrically from the upload; once
this sync has seen imports end, its pace (events per second of one import: how long each took, by
when it was seen done, or by Scarf's own created_at and updated_at where those say less, within
bounds) predicts when each import ends, and the import is looked at then; when the list reports an
import's counts growing, its own pace predicts the end. Bounds on both sides: never more often than
`floor_seconds`, never more than `cap_seconds` after the previous look, and past the predicted end,
again after `late_fraction` of the predicted duration, so a slot that has come free or a state that
has become safe waits little, and from then on after as long as it has overrun (a Scarf ten times
slower than predicted costs about seven looks, not two hundred). One read of the list serves the looks that come within
`gather_seconds` of each other (imports started together end together); a read made for other
imports can bring an import's own look forward, never put it later.

`status_polling: by_id` (and a job without a poller, as in unit tests) keeps the previous policy
(`PollPolicy`): each import read by id on its own, quick at first, then every `age_fraction` of its
age, at most every `max_seconds`.
"""

from __future__ import annotations

import datetime
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from destination_scarf.errors import ScarfError, SyncCancelled
from destination_scarf.scarf.client import EventImport, ScarfClient

logger = logging.getLogger("airbyte")

#: How often a waiting job and the poller look for a cancel.
_CANCEL_POLL_SECONDS = 0.2
#: The list's page: larger than every import the account can have in flight (15), so one page holds them all.
LIST_PAGE = 100
#: How many of this sync's finished imports its pace is learned from (the most recent).
_PACE_MEMORY = 8


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """The previous policy (`status_polling: by_id`): each import read by id, quick at first, then a fraction of
    its age, up to a cap; brought forward when the import reports its counts growing."""

    initial_seconds: float = 0.1
    age_fraction: float = 0.08
    max_seconds: float = 10.0

    def interval(self, age_seconds: float, *, done_fraction: float | None = None) -> float:
        interval = min(self.max_seconds, max(self.initial_seconds, age_seconds * self.age_fraction))
        if done_fraction is not None and 0.0 < done_fraction < 1.0:
            expected_rest = age_seconds * (1.0 - done_fraction) / done_fraction
            interval = min(interval, max(self.initial_seconds, expected_rest))
        return interval


@dataclass(frozen=True, kw_only=True)
class Cadence:
    """When to look at an import again, from what is known of Scarf's pace (see the module docstring).

    `first_seconds` and `floor_seconds` are 0.2 s: against Scarf, whose imports take minutes, they bind only
    for the first few looks of a sync (a smaller start costs about one list read per halving, per sync);
    against a fast Scarf (the emulator), an import is seen done about 0.2 s after it ends, not 0.5 s.
    """

    first_seconds: float = 0.2
    factor: float = 2.0
    floor_seconds: float = 0.2
    cap_seconds: float = 300.0
    late_fraction: float = 0.05
    #: How long one read of the imports list may take (one attempt); past it, the imports due are read by id.
    list_seconds: float = 10.0
    #: The list is read when an import's look has come, and those coming within this long after it (see
    #: `StatusPoller._list_time`): so late at most for the first of them, one read for them all.
    gather_seconds: float = 0.5

    def next_look(self, *, age: float, since_look: float, looks: int, predicted: float | None) -> float:
        """Seconds from now until the next look at an import `age` seconds old, looked at `looks` times so far (the
        last `since_look` seconds ago); `predicted` is its predicted duration, when a pace is known."""
        if predicted is None:
            wait = self.first_seconds * self.factor ** min(looks, 32) - since_look
        elif age < predicted:
            wait = predicted - age
        else:  # late: again after `late_fraction` of the prediction, then after as long as it has overrun
            wait = max(predicted * self.late_fraction, age - predicted)
        return min(max(wait, self.floor_seconds), max(self.cap_seconds - since_look, self.floor_seconds))


class Pace:
    """Scarf's pace at importing, learned from this sync's finished imports: events per second of one import."""

    def __init__(self) -> None:
        self._rates: deque[float] = deque(maxlen=_PACE_MEMORY)

    def learn(self, events: int, seconds: float) -> None:
        if events > 0 and seconds > 0:
            self._rates.append(events / seconds)

    def duration(self, events: int) -> float | None:
        """How long an import of `events` events is expected to take, or None while nothing is known."""
        return events / statistics.median(self._rates) if self._rates else None


@dataclass(eq=False)
class Watch:
    """One import the poller follows, for its job: `due` once the job should read it by id."""

    import_id: str
    events: int
    created: float  # clock time the import was created (its upload answered)
    next_look: float
    looks: int = 0
    last_look: float = 0.0
    due: bool = False
    #: The list left it out while a read by id found it importing: it is read by id on its cadence from now on.
    unlisted: bool = False
    progress: tuple[float, float] | None = field(default=None)  # (age, fraction done) from the last count seen
    running: float = 0.0  # its age when a look last found it still importing

    def predicted(self, pace: Pace) -> float | None:
        """Its predicted duration: from its own counts growing when seen, else from the sync's pace."""
        if self.progress is not None:
            age, fraction = self.progress
            if 0.0 < fraction < 1.0:
                return age / fraction
        return pace.duration(self.events)


class StatusPoller:
    """The one status poller of a sync (list mode): a thread that reads the imports list when any watched import is
    due, and tells each job when to read its import by id. Jobs `watch`, `wait` and `report` what they read."""

    def __init__(self, *, client: ScarfClient, cadence: Cadence, cancelled: threading.Event,
                 clock: Callable[[], float] = time.monotonic, thread: bool = True) -> None:
        """`thread=False` starts no thread: the caller runs each round (`poll_once`) on its own clock (unit tests)."""
        self._client = client
        self._cadence = cadence
        self._cancelled = cancelled
        self._clock = clock
        self._cond = threading.Condition()
        self._watches: list[Watch] = []
        self._pace = Pace()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="scarf-status-poller", daemon=True) if thread else None
        if self._thread is not None:
            self._thread.start()

    # ----- the jobs' side ------------------------------------------------------------------------

    def watch(self, created: EventImport, *, events: int) -> Watch:
        """Follow an import this sync has just created."""
        now = self._clock()
        watch = Watch(import_id=created.id, events=events, created=now, next_look=now)
        watch.next_look = now + self._schedule(watch, now)
        with self._cond:
            self._watches.append(watch)
            self._cond.notify_all()
        return watch

    def wait(self, watch: Watch, *, until: float) -> None:
        """Block until the job should read its import by id (or until `until`); raises SyncCancelled on a cancel."""
        with self._cond:
            while not watch.due:
                SyncCancelled.check(self._cancelled)
                left = until - self._clock()
                if left <= 0:
                    return
                self._cond.wait(min(left, _CANCEL_POLL_SECONDS))
            watch.due = False

    def report(self, watch: Watch, found: EventImport) -> None:
        """What the job's read by id found. Final: the import is no longer followed, and its pace is learned (done
        only). Still running: the list had left it out (or was stale), so it is read by id on its cadence."""
        now = self._clock()
        with self._cond:
            if found.is_final:
                if watch in self._watches:
                    self._watches.remove(watch)
                if found.outcome == "done":
                    self._pace.learn(watch.events, _duration(found, seen=now - watch.created, running=watch.running))
                return
            watch.unlisted = True
            self._seen(watch, found, now, counted=True)  # `_read_by_id` counted this look when it asked for it
            self._cond.notify_all()

    def forget(self, watch: Watch) -> None:
        with self._cond:
            if watch in self._watches:
                self._watches.remove(watch)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # ----- the poller's side ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._wait_for_a_due_import():
                    return
            self.poll_once()

    def poll_once(self) -> None:
        """One round: the imports read by id on their own cadence whose look has come are marked due; the others
        are looked for in one read of the imports list once the list's time has come (`_list_time`). The poller's
        thread runs it whenever something is due; a test runs it on its own clock."""
        with self._cond:
            now = self._clock()
            for watch in self._due(now):
                if watch.unlisted:
                    self._read_by_id(watch)
            read_the_list = self._list_time() <= now
        if read_the_list:
            self._look_at_the_list()

    def _due(self, now: float) -> list[Watch]:
        """Under the lock: the watched imports whose next look has come (and whose job is not told already)."""
        return [w for w in self._watches if w.next_look <= now and not w.due]

    def _list_time(self) -> float:
        """Under the lock: when to read the list next (inf: never). The first look due of an import it follows
        waits for those that come within `gather_seconds` after it, so that one read serves them all: imports
        started together end together, and a read for the first alone would see the others still importing, a
        moment before their end, and their next look would come only after the floor."""
        looks = sorted(w.next_look for w in self._watches if not w.due and not w.unlisted)
        if not looks:
            return float("inf")
        return max(t for t in looks if t <= looks[0] + self._cadence.gather_seconds)

    def _wait_for_a_due_import(self) -> bool:
        """Under the lock: wait until a look is due (a read by id, or the list's): True; or the end: False."""
        while not self._stopped and not self._cancelled.is_set():
            now = self._clock()
            by_id = [w.next_look for w in self._watches if w.unlisted and not w.due]
            upcoming = min([self._list_time(), *by_id])
            if upcoming <= now:
                return True
            self._cond.wait(min(upcoming - now, _CANCEL_POLL_SECONDS))
        self._cond.notify_all()  # waiting jobs see the cancel at once
        return False

    def _look_at_the_list(self) -> None:
        """One read of the imports list for every watched import; those it no longer shows importing are read by id."""
        started = self._clock()
        try:
            # One attempt: while it is retried, the imports due wait, and each retry is billed. Its fallback, a read
            # by id of each import due, is what rides out errors (until the import's own deadline).
            listed = self._client.list_imports(statuses=["importing"], per_page=LIST_PAGE, attempts=1,
                                               budget_seconds=self._cadence.list_seconds, kind="status list")
        except SyncCancelled:
            return
        except Exception as error:  # the poller must never die: the jobs would wait on it for nothing
            logger.warning("Scarf's imports list could not be read (%s); the imports due are read one by one "
                           "instead.", error.message if isinstance(error, ScarfError) else repr(error))
            with self._cond:
                for watch in self._watches:
                    if watch.next_look <= started:
                        self._read_by_id(watch)
            return
        # Only an import shown still running counts as importing: the list is asked for status=importing, but an
        # import it shows done (or aborted, or failed) all the same has ended, and only a read by id settles it.
        importing = {item.id: item for item in listed if not item.is_final}
        shown = {item.id for item in listed}
        whole = len(listed) < LIST_PAGE  # a full page may have been cut short: the missing are read by id
        now = self._clock()
        with self._cond:
            for watch in self._watches:
                if watch.due or watch.unlisted or watch.created > started:
                    continue
                item = importing.get(watch.import_id)
                if item is None:
                    if whole or watch.next_look <= started or watch.import_id in shown:
                        self._read_by_id(watch)
                elif watch.next_look <= started:
                    self._seen(watch, item, now)
                else:
                    self._glimpsed(watch, item, now)

    def _read_by_id(self, watch: Watch) -> None:
        """Under the lock: tell the watch's job to read its import by id now."""
        watch.due = True
        watch.looks += 1
        watch.last_look = self._clock()
        watch.next_look = watch.last_look + self._schedule(watch, watch.last_look)
        self._cond.notify_all()

    def _seen(self, watch: Watch, found: EventImport, now: float, *, counted: bool = False) -> None:
        """Under the lock: a look found the import still importing; its counts may say how far it is. `counted`: the
        look is already in `watch.looks` (a read by id, counted when the job was told to make it)."""
        _note_counts(watch, found, age=now - watch.created)
        if not counted:
            watch.looks += 1
        watch.last_look = now
        watch.next_look = now + self._schedule(watch, now)

    def _glimpsed(self, watch: Watch, found: EventImport, now: float) -> None:
        """Under the lock: a read made for other imports shows this one still importing, before its own look. Its
        counts may bring that look forward; nothing here puts it later (the floor counts from its own looks)."""
        _note_counts(watch, found, age=now - watch.created)
        watch.next_look = min(watch.next_look, now + self._schedule(watch, now))

    def _schedule(self, watch: Watch, now: float) -> float:
        return self._cadence.next_look(age=now - watch.created, since_look=now - max(watch.last_look, watch.created),
                                       looks=watch.looks, predicted=watch.predicted(self._pace))


def _note_counts(watch: Watch, found: EventImport, *, age: float) -> None:
    """A look found the import running at `age`: note it, and how far its counts say it is. Counts that have not
    moved since the last look keep the age they were first seen at: an import whose counts stop short of its total
    (Scarf finishing up, or stuck) then passes the end they predicted and is looked at after a late fraction of it,
    instead of being predicted to end any moment now, every floor seconds."""
    watch.running = age
    if found.events_total > 0:
        fraction = (found.events_successfully_imported + found.events_failed_to_import) / found.events_total
        if watch.progress is None or watch.progress[1] != fraction:
            watch.progress = (age, fraction)


def _duration(final: EventImport, *, seen: float, running: float) -> float:
    """How long a done import took, to learn the pace from. `seen`: its age when a read found it done, which also
    holds the wait for that read; a pace learned from it alone would put each next look that much past its
    import's end, and carry that lateness into every later round. So Scarf's own account (created_at to
    updated_at, when it ended) is taken where it is shorter, but only within what was seen: never below its age
    when a look last found it `running`, nor below half of `seen` (an updated_at that is not the end)."""
    try:
        reported = (_moment(final.updated_at) - _moment(final.created_at)).total_seconds()
    except (TypeError, ValueError):  # missing, unreadable, or one with a time zone and one without
        return seen
    return min(seen, max(reported, running, seen / 2)) if reported > 0 else seen


def _moment(text: str | None) -> datetime.datetime:
    if not isinstance(text, str):
        raise TypeError("no timestamp")
    return datetime.datetime.fromisoformat(text)
