"""When the sync asks Scarf about its imports: the cadence, the pace, and the one status poller of a sync.

The poller runs here without its thread (`thread=False`): the test runs each round (`poll_once`) on a clock
it moves by hand, against a scripted imports list, and asserts which imports the poller tells their jobs to
read by id (`Watch.due`), and how many list reads it made for how many imports in flight. No real time passes.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from collections import deque
from typing import Any

import pytest

from destination_scarf.errors import ScarfTransientError, SyncCancelled
from destination_scarf.scarf.client import EventImport
from destination_scarf.scarf.polling import LIST_PAGE, Cadence, Pace, StatusPoller, Watch

IDS = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(1, 200)]
CADENCE = Cadence(first_seconds=0.5, factor=2.0, floor_seconds=0.5, cap_seconds=300.0, late_fraction=0.05,
                  gather_seconds=0.0)  # gathering looks has tests of its own


# ----- Cadence ---------------------------------------------------------------------------------------------


def test_before_a_pace_is_known_looks_back_off_geometrically_from_the_upload():
    waits, age = [], 0.0
    for looks in range(6):
        wait = CADENCE.next_look(age=age, since_look=0.0, looks=looks, predicted=None)
        waits.append(wait)
        age += wait
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    # The wait counts from the previous look: a look made for another import meanwhile shortens it.
    assert CADENCE.next_look(age=10, since_look=3.0, looks=4, predicted=None) == 5.0


def test_with_a_pace_the_look_is_at_the_predicted_end():
    assert CADENCE.next_look(age=0.0, since_look=0.0, looks=0, predicted=60.0) == 60.0
    assert CADENCE.next_look(age=45.0, since_look=5.0, looks=3, predicted=60.0) == 15.0


def test_past_the_predicted_end_the_next_look_is_a_late_fraction_then_as_long_as_the_overrun():
    assert CADENCE.next_look(age=60.0, since_look=0.0, looks=1, predicted=60.0) == pytest.approx(3.0)
    assert CADENCE.next_look(age=61.0, since_look=1.0, looks=2, predicted=60.0) == pytest.approx(3.0)
    assert CADENCE.next_look(age=200.0, since_look=3.0, looks=9, predicted=60.0) == pytest.approx(140.0)
    assert CADENCE.next_look(age=1010.0, since_look=0.0, looks=1, predicted=1000.0) == pytest.approx(50.0)
    assert CADENCE.next_look(age=1500.0, since_look=0.0, looks=1, predicted=1000.0) == pytest.approx(300.0)  # cap


def test_a_look_is_never_sooner_than_the_floor():
    assert CADENCE.next_look(age=59.9, since_look=0.0, looks=1, predicted=60.0) == 0.5  # 0.1 s to the end
    assert CADENCE.next_look(age=2.05, since_look=0.0, looks=1, predicted=2.0) == 0.5  # 5% of 2 s is 0.1 s
    assert CADENCE.next_look(age=1.0, since_look=0.9, looks=0, predicted=None) == 0.5  # 0.5 s - 0.9 s
    assert CADENCE.next_look(age=400.0, since_look=400.0, looks=1, predicted=1000.0) == 0.5  # the cap long passed


def test_a_look_is_never_later_than_the_cap_after_the_previous_one():
    assert CADENCE.next_look(age=0.0, since_look=0.0, looks=0, predicted=1500.0) == 300.0
    assert CADENCE.next_look(age=100.0, since_look=100.0, looks=2, predicted=1500.0) == 200.0
    assert CADENCE.next_look(age=0.0, since_look=0.0, looks=20, predicted=None) == 300.0  # 0.5 s * 2 ** 20
    assert CADENCE.next_look(age=8000.0, since_look=0.0, looks=3, predicted=7000.0) == 300.0  # 5% of 7000 s


# ----- Pace ------------------------------------------------------------------------------------------------


def test_the_pace_is_unknown_until_an_import_ends():
    pace = Pace()
    assert pace.duration(1000) is None
    pace.learn(0, 5.0)  # nothing to learn from: no events, or no time
    pace.learn(1000, 0.0)
    assert pace.duration(1000) is None


def test_the_pace_is_the_median_of_the_recent_imports():
    pace = Pace()
    pace.learn(1000, 10.0)  # 100 events/s
    assert pace.duration(500) == pytest.approx(5.0)
    pace.learn(1000, 20.0)  # 50
    pace.learn(1000, 1000.0)  # 1: an outlier moves the median, not the mean
    assert pace.duration(500) == pytest.approx(10.0)  # median 50 events/s
    for _ in range(8):  # only the most recent imports count
        pace.learn(200, 1.0)
    assert pace.duration(500) == pytest.approx(2.5)


def test_an_imports_own_counts_predict_its_end_before_the_syncs_pace():
    pace = Pace()
    pace.learn(1000, 100.0)  # 10 events/s: 1000 events would take 100 s
    watch = Watch(import_id=IDS[0], events=1000, created=0.0, next_look=0.0)
    assert watch.predicted(pace) == pytest.approx(100.0)
    watch.progress = (30.0, 0.5)  # half done after 30 s
    assert watch.predicted(pace) == pytest.approx(60.0)
    watch.progress = (30.0, 0.0)  # no count yet (or all): the sync's pace again
    assert watch.predicted(pace) == pytest.approx(100.0)


# ----- StatusPoller ----------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedList:
    """The imports list, scripted per call: each read pops the next answer (a list of imports, an exception, or a
    function of the call's parameters that returns one). The poller must never read an import by id itself."""

    def __init__(self, *answers: Any) -> None:
        self.answers = deque(answers)
        self.calls: list[dict[str, Any]] = []

    def script(self, *answers: Any) -> None:
        self.answers.extend(answers)

    def list_imports(self, **params: Any) -> list[EventImport]:
        self.calls.append(params)
        answer = self.answers.popleft()
        if callable(answer):
            answer = answer()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def get_import(self, *args: Any, **kwargs: Any) -> EventImport:
        raise AssertionError("the poller never reads an import by id: it tells the import's job to")


def importing(n: int, *, total: int = 1000, counted: int = 0) -> EventImport:
    return EventImport(id=IDS[n], status="importing", events_total=total, events_successfully_imported=counted)


def done(n: int, *, total: int = 1000) -> EventImport:
    return EventImport(id=IDS[n], status="done", events_total=total, events_successfully_imported=total)


def make_poller(scarf: ScriptedList, clock: Clock, cadence: Cadence = CADENCE) -> StatusPoller:
    return StatusPoller(client=scarf, cadence=cadence, cancelled=threading.Event(), clock=clock,  # type: ignore[arg-type]
                        thread=False)


def watch(poller: StatusPoller, n: int, events: int = 1000) -> Watch:
    return poller.watch(EventImport(id=IDS[n], status="importing", events_total=events), events=events)


def due(*watches: Watch) -> list[int]:
    """Which of `watches` (by position) the poller has told to read their import by id."""
    return [n for n, w in enumerate(watches) if w.due]


def taken(w: Watch) -> None:
    """The job's side: its wait returned (the poller said it is due), it reads by id."""
    assert w.due
    w.due = False


def test_nothing_is_read_before_the_first_look_and_one_list_read_answers_for_every_import():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    watches = [watch(poller, n) for n in range(4)]
    clock.now += 0.4
    poller.poll_once()
    assert scarf.calls == [] and due(*watches) == []

    clock.now += 0.1  # the first look of all four: one list read
    scarf.script([importing(n) for n in range(4)])
    poller.poll_once()
    assert len(scarf.calls) == 1 and due(*watches) == []
    assert scarf.calls[0]["statuses"] == ["importing"] and scarf.calls[0]["per_page"] == LIST_PAGE >= 15
    assert scarf.calls[0]["kind"] == "status list"
    assert scarf.calls[0]["attempts"] == 1  # its fallback, reads by id, is what retries
    assert all(w.looks == 1 and w.next_look == clock.now + 1.0 for w in watches)  # then 1 s later (geometric)

    clock.now += 1.0  # two have left the list: those two are read by id, in the same round
    scarf.script([importing(0), importing(2)])
    poller.poll_once()
    assert len(scarf.calls) == 2 and due(*watches) == [1, 3]


def test_an_import_that_leaves_the_list_before_its_look_is_read_by_id_at_once_when_the_page_is_whole():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    early = watch(poller, 0)
    clock.now += 0.3
    late = watch(poller, 1)  # its first look is 0.3 s after the other's
    clock.now += 0.2
    scarf.script([importing(0)])  # the whole list (below a page): the later import has already ended
    poller.poll_once()
    assert due(early, late) == [1] and len(scarf.calls) == 1


def test_a_full_page_does_not_mark_an_absent_import_due_before_its_time():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    early = watch(poller, 0)
    clock.now += 0.3
    late = watch(poller, 1)
    clock.now += 0.2
    others = [EventImport(id=IDS[100 + k], status="importing") for k in range(LIST_PAGE - 1)]
    scarf.script([importing(0), *others])  # a full page without the later import: it may be on the next page
    poller.poll_once()
    assert due(early, late) == []
    clock.now += 0.3  # its own first look has come: the same full page now sends it to a read by id
    scarf.script([importing(0), *others])
    poller.poll_once()
    assert due(early, late) == [1]
    # a due import missing from a full page is read by id too
    clock.now = early.next_look
    scarf.script([importing(1), *others])
    poller.poll_once()
    assert due(early, late) == [0, 1]


def test_an_import_the_list_leaves_out_but_a_read_by_id_finds_importing_is_read_by_id_from_then_on():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    shown, hidden = watch(poller, 0), watch(poller, 1)
    clock.now += 0.5
    scarf.script([importing(0)])  # the list leaves the second out although it is importing
    poller.poll_once()
    assert due(shown, hidden) == [1]
    taken(hidden)
    clock.now += 0.2
    poller.report(hidden, importing(1))  # the job's read by id, a moment later: still importing
    assert hidden.unlisted
    # On the same cadence as a listed import: its second look 1 s after its first (a read by id is one look).
    assert hidden.next_look == pytest.approx(clock.now + 1.0)

    clock.now = shown.next_look  # the other's look: the list is read for it alone, whatever it says of the second
    scarf.script([importing(0), importing(1)])
    poller.poll_once()
    assert due(shown, hidden) == [] and len(scarf.calls) == 2

    clock.now = hidden.next_look  # its own look: a read by id, without a list read
    poller.poll_once()
    assert due(shown, hidden) == [1] and len(scarf.calls) == 2
    taken(hidden)
    poller.report(hidden, importing(1))
    assert hidden.next_look == pytest.approx(clock.now + 2.0)  # geometric, as before
    clock.now = hidden.next_look  # both due: one list read, for the other import
    assert shown.next_look <= clock.now
    scarf.script([importing(0)])
    poller.poll_once()
    assert due(shown, hidden) == [1] and len(scarf.calls) == 3
    taken(hidden)
    poller.report(hidden, done(1))  # final: no longer followed
    clock.now += 1000
    scarf.script([importing(0)])
    poller.poll_once()
    assert due(shown, hidden) == [] and len(scarf.calls) == 4


def test_a_failing_list_sends_the_due_imports_to_a_read_by_id_and_not_the_others():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    first = watch(poller, 0)
    clock.now += 0.3
    second = watch(poller, 1)
    clock.now += 0.2
    scarf.script(ScarfTransientError("Scarf's API kept failing while listing imports: HTTP 503"))
    poller.poll_once()
    assert due(first, second) == [0]
    clock.now += 0.3
    scarf.script(ScarfTransientError("still failing"))
    poller.poll_once()
    assert due(first, second) == [0, 1]
    # an unexpected error is no different: the poller never dies (the jobs would wait on it for nothing)
    taken(first)
    poller.report(first, importing(0))
    clock.now = first.next_look
    scarf.script(ValueError("a bug"))
    poller.poll_once()  # first is read by id on its own now: no list read for it
    assert due(first, second) == [0, 1] and len(scarf.calls) == 2


def test_one_list_read_serves_the_looks_that_come_within_the_gathering_time():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock, dataclasses.replace(CADENCE, gather_seconds=0.5))
    first = watch(poller, 0)
    clock.now += 0.3
    second = watch(poller, 1)  # its first look 0.3 s after the first's: within the gathering time
    clock.now += 0.5
    third = watch(poller, 2)  # 1 s after the first's: not
    clock.now = first.next_look
    poller.poll_once()
    assert scarf.calls == []  # the first waits for the second
    clock.now = second.next_look
    scarf.script([importing(0), importing(1), importing(2)])
    poller.poll_once()
    assert len(scarf.calls) == 1 and due(first, second, third) == []
    assert (first.looks, second.looks, third.looks) == (1, 1, 0)  # the third was only glimpsed: its look stays
    assert third.next_look == pytest.approx(third.created + 0.5)
    # An import read by id on its own cadence does not wait for anything.
    taken_by_id = watch(poller, 3)
    taken_by_id.unlisted = True
    clock.now = taken_by_id.next_look
    poller.poll_once()
    assert due(taken_by_id) == [0] and len(scarf.calls) == 1


def test_a_read_made_for_other_imports_never_puts_an_imports_own_look_later():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    poller.report(Watch(import_id=IDS[9], events=1000, created=clock.now - 60, next_look=0.0), done(9))  # 60 s
    first = watch(poller, 0)
    clock.now += 0.05
    second = watch(poller, 1)
    assert second.next_look == pytest.approx(first.next_look + 0.05)
    clock.now = first.next_look  # the first's look, at its predicted end: the second, 0.05 s from its own
    scarf.script([importing(1, counted=999)])
    poller.poll_once()
    assert due(first, second) == [0]
    # Seen importing a moment before its end: its own look stays where it was, not the floor after this read.
    assert second.next_look == pytest.approx(clock.now + 0.05)
    # A read for another import can bring a look forward: counts that say the import ends sooner.
    third = watch(poller, 2)
    assert third.next_look == pytest.approx(clock.now + 60)
    clock.now = second.next_look
    scarf.script([importing(2, counted=500)])  # half done after 0.05 s: 0.1 s in all
    poller.poll_once()
    assert due(first, second, third) == [0, 1]
    assert third.next_look == pytest.approx(clock.now + CADENCE.floor_seconds)


def test_a_cancel_during_the_list_read_marks_nothing():
    clock = Clock()
    scarf = ScriptedList(SyncCancelled("cancelled"))
    poller = make_poller(scarf, clock)
    w = watch(poller, 0)
    clock.now += 0.5
    poller.poll_once()
    assert due(w) == []


def test_an_import_created_while_the_list_was_read_is_not_judged_by_that_list():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    old = watch(poller, 0)
    clock.now += 0.5
    new: list[Watch] = []

    def meanwhile() -> list[EventImport]:
        clock.now += 0.1
        new.append(watch(poller, 1))  # another job's upload answered while the list was on its way
        return [importing(0)]

    scarf.script(meanwhile)
    poller.poll_once()
    assert due(old, *new) == []
    assert new[0].looks == 0


def test_an_import_listed_with_a_final_status_is_read_by_id_at_once():
    # The list is asked for status=importing, but correctness never depends on the list honouring its filter:
    # an import it shows done (or aborted, or failed) has ended, and only a read by id can settle it.
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    watches = [watch(poller, n) for n in range(3)]
    clock.now += 0.5
    scarf.script([done(0), EventImport(id=IDS[1], status="aborted"), importing(2)])
    poller.poll_once()
    assert due(*watches) == [0, 1]
    # on a full page too, and before the import's own look (the list is read for another import's)
    clock.now += 0.7
    late = watch(poller, 3)
    clock.now += 0.3
    assert watches[2].next_look <= clock.now < late.next_look
    others = [EventImport(id=IDS[100 + k], status="importing") for k in range(LIST_PAGE - 1)]
    scarf.script([done(3), importing(2), *others[1:]])
    poller.poll_once()
    assert late.due and not watches[2].due


def test_an_import_listed_with_an_unknown_status_is_still_running():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    w = watch(poller, 0)
    clock.now += 0.5
    scarf.script([EventImport(id=IDS[0], status="queued")])
    poller.poll_once()
    assert due(w) == [] and w.looks == 1


def test_once_an_import_has_ended_the_next_ones_are_looked_at_near_their_predicted_end():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    first = watch(poller, 0, events=1000)
    clock.now += 0.5
    scarf.script([])  # ended already
    poller.poll_once()
    taken(first)
    clock.now += 59.5  # it was read by id and found done 60 s after its upload
    poller.report(first, done(0))
    second = watch(poller, 1, events=500)  # half the events: predicted 30 s
    assert second.next_look == pytest.approx(clock.now + 30.0)
    third = watch(poller, 2, events=100_000)  # predicted 6000 s: looked at within the cap all the same
    assert third.next_look == pytest.approx(clock.now + 300.0)


def finished(n: int, *, took: float | None, created_at: str = "2026-03-01T10:00:00.000000Z") -> EventImport:
    start = datetime.datetime.fromisoformat(created_at)
    updated_at = created_at if took is None else (start + datetime.timedelta(seconds=took)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    return EventImport(id=IDS[n], status="done", events_total=1000, events_successfully_imported=1000,
                       created_at=created_at, updated_at=updated_at)


@pytest.mark.parametrize(("answer", "learned"), [
    (finished(0, took=8.0), 8.0),  # Scarf's account: shorter than seen, since the read came after the end
    (finished(0, took=9.0), 8.5),  # longer than seen (another meaning of updated_at?): what was seen
    (finished(0, took=1.0), 4.25),  # far shorter: never below half of what was seen
    (finished(0, took=None), 8.5),  # no time between them: what was seen
    (EventImport(id=IDS[0], status="done", events_total=1000, events_successfully_imported=1000), 8.5),
    (EventImport(id=IDS[0], status="done", events_total=1000, events_successfully_imported=1000,
                 created_at="yesterday", updated_at="2026-03-01T10:00:08Z"), 8.5),
    (EventImport(id=IDS[0], status="done", events_total=1000, events_successfully_imported=1000,
                 created_at="2026-03-01T10:00:00", updated_at="2026-03-01T10:00:08Z"), 8.5),  # naive and aware
])
def test_the_pace_is_learned_from_scarfs_own_times_when_they_are_shorter_than_what_was_seen(answer, learned):
    # Learned from when the import was seen done, the pace would hold the wait for that read, and each next
    # look would come that much after the import's end, round after round.
    clock = Clock()
    poller = make_poller(ScriptedList(), clock)
    first = watch(poller, 0)
    first.due = True
    clock.now += 8.5
    taken(first)
    poller.report(first, answer)
    assert watch(poller, 1).next_look == pytest.approx(clock.now + learned)


def test_scarfs_own_times_are_never_taken_below_the_age_an_import_was_last_seen_running():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    first = watch(poller, 0)
    clock.now += 7.0
    scarf.script([importing(0)])
    poller.poll_once()  # seen running 7 s after its upload
    clock.now = first.next_look
    scarf.script([])
    poller.poll_once()
    taken(first)
    seen = clock.now - first.created
    poller.report(first, finished(0, took=6.0))  # says 6 s: it cannot have been
    assert watch(poller, 1).next_look == pytest.approx(clock.now + 7.0)
    assert seen > 7.0


def test_an_imports_growing_counts_in_the_list_move_its_next_look_to_its_own_predicted_end():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    w = watch(poller, 0, events=1000)
    clock.now += 0.5
    scarf.script([importing(0, counted=0)])  # no count yet: geometric
    poller.poll_once()
    assert w.next_look == pytest.approx(clock.now + 1.0)
    clock.now = w.next_look  # 1.5 s after the upload
    scarf.script([importing(0, counted=100)])  # 10% in 1.5 s: about 15 s in all
    poller.poll_once()
    assert w.next_look == pytest.approx(w.created + 15.0)
    assert len(scarf.calls) == 2


def test_an_aborted_or_failed_import_teaches_no_pace():
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    first = watch(poller, 0)
    clock.now += 0.5
    scarf.script([])
    poller.poll_once()
    taken(first)
    poller.report(first, EventImport(id=IDS[0], status="aborted"))
    assert watch(poller, 1).next_look == pytest.approx(clock.now + CADENCE.first_seconds)


def test_waiting_jobs_see_a_cancel_and_a_watch_that_is_forgotten_is_no_longer_looked_at():
    clock = Clock()
    cancelled = threading.Event()
    scarf = ScriptedList()
    poller = StatusPoller(client=scarf, cadence=CADENCE, cancelled=cancelled, clock=clock,  # type: ignore[arg-type]
                          thread=False)
    w = watch(poller, 0)
    poller.forget(w)
    clock.now += 1000
    poller.poll_once()
    assert scarf.calls == []
    w2 = watch(poller, 1)
    cancelled.set()
    with pytest.raises(SyncCancelled):
        poller.wait(w2, until=clock.now + 10)


def test_the_thread_runs_the_rounds_and_wakes_the_job_it_marks_due():
    # With its thread: the job's wait returns once the poller has marked its import due (a hang guard only).
    clock = Clock()
    scarf = ScriptedList(*([[]] * 5))
    cadence = Cadence(first_seconds=0.0, factor=2.0, floor_seconds=0.0, cap_seconds=1.0, late_fraction=0.05)
    poller = StatusPoller(client=scarf, cadence=cadence, cancelled=threading.Event(), clock=clock)  # type: ignore[arg-type]
    try:
        w = watch(poller, 0)
        waiting = threading.Thread(target=poller.wait, args=(w,), kwargs={"until": float("inf")}, daemon=True)
        waiting.start()
        waiting.join(30)  # a hang guard, far above the milliseconds it takes
        assert not waiting.is_alive(), "the job was never told to read its import"
        assert not w.due and len(scarf.calls) >= 1  # the list no longer shows it: read it by id
    finally:
        poller.stop()


def test_counts_that_stop_growing_do_not_keep_the_looks_at_the_floor():
    # An import that reports 999 of 1000 events and goes on importing (Scarf finishing up, or stuck): its counts
    # no longer say when it ends, so past the end they predicted it is looked at after a late fraction of that
    # duration, as for a pace, not every floor seconds.
    clock = Clock()
    scarf = ScriptedList()
    poller = make_poller(scarf, clock)
    w = watch(poller, 0)
    clock.now += 99.0
    w.next_look = clock.now  # (as if it had been looked at all along)
    looks = 0
    while clock.now < w.created + 200.0:
        scarf.script([importing(0, counted=999)])
        poller.poll_once()
        looks += 1
        assert not w.due
        clock.now = w.next_look
    assert 4 <= looks <= 10  # 100 s past the end, each look after as long as the overrun: about 7 looks, not 200
