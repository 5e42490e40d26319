"""How `write` asks Scarf about its imports (issue 17), end to end against the emulator and its list faults.

One status poller reads the imports list for every import in flight; an import is read by id once the list no
longer shows it importing, and only a read by id ever releases a state. Whatever the list does (leave imports
out, cut its page short, ignore per_page, lag behind, fail), every event arrives once, every state is echoed,
and no state is echoed before a read by id of each import it depends on said `done` with counts that match.

That last rule is checked in the emulator's request log, by order, not by time: the test notes how long the
log was when each state reached it; the emulator logs a request (with what it answered) before it sends the
answer, and the connector echoes a state only after the answer that made it safe, so that answer is in the
part of the log noted with the state. Imports that must stay importing while the test looks run on the
emulator's own clock, which only the test moves.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from destination_scarf.options import SCARF_MAX_ACTIVE_IMPORTS
from destination_scarf.scarf.polling import LIST_PAGE
from scarf_emulator import RequestRecord, ScarfEmulator
from support import (
    FAST_TUNING,
    OWNER,
    catalog,
    lines,
    make_config,
    make_writer,
    messages_of,
    new_emulator,
    run_connector,
    run_with_hang_guard,
    write_json,
)
from sync_helpers import STREAM, Until, assert_everything_once, downloads_with_states, input_states, script, state_ids

BATCH = 20
SLOTS = 3


class FakeClock:
    """The emulator's clock, moved only by the test: its imports end when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def paced() -> Iterator[ScarfEmulator]:
    """An emulator whose imports take a fifth of a second each (real time): several rounds of list reads."""
    emu = new_emulator(import_seconds=0.2)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def held(clock: FakeClock) -> Iterator[ScarfEmulator]:
    """An emulator on the test's clock, where every import takes 10 of its seconds: nothing ends until the test
    advances the clock."""
    emu = new_emulator(import_seconds=10, clock=clock)
    emu.start()
    yield emu
    emu.stop()


# ----- running a sync and reading the log ---------------------------------------------------------------


def sync(emulator: ScarfEmulator, items: Iterable[Any], **config: Any) -> tuple[list[dict], list[int]]:
    """Run `write` in-process; the states echoed, and for each the length of the emulator's log when it came."""
    writer = make_writer(emulator, make_config(emulator, batch_max_events=BATCH, max_concurrent_imports=SLOTS,
                                               **config), catalog(STREAM))
    states: list[dict] = []
    marks: list[int] = []

    def run() -> None:
        for state in writer.write(script(items)):
            marks.append(len(emulator.requests))
            states.append(state)

    run_with_hang_guard(run, "the sync")
    return states, marks


def cursor(state: dict) -> int:
    return state["state"]["stream"]["stream_state"]["cursor"]


def done_with_matching_counts(request: RequestRecord, import_id: str, events: int) -> bool:
    return request.kind == "import-by-id" and request.status == 200 and any(
        seen.id == import_id and seen.status == "done" and seen.events_total == events
        and seen.events_successfully_imported + seen.events_failed_to_import == events
        for seen in request.answered)


def assert_each_state_came_after_its_imports_were_read_done(emulator: ScarfEmulator, states: list[dict],
                                                            marks: list[int]) -> None:
    """For each echoed state: each import holding a record before it was read by id, answered `done` with counts
    that match its events, in the part of the log that came before the state."""
    rows = emulator.event_rows(OWNER)
    events_of = Counter(row["import_id"] for row in rows)
    log = emulator.requests
    for state, mark in zip(states, marks, strict=True):
        needed = {row["import_id"] for row in rows if int(row["event"]["id"]) < cursor(state)}
        assert needed, "a state with no import before it"
        before = log[:mark]
        for import_id in needed:
            assert any(done_with_matching_counts(r, import_id, events_of[import_id]) for r in before), (
                f"state {cursor(state)} was echoed before a read by id of import {import_id} said it was done")


def assert_the_list_is_asked_for_importing_imports_on_a_page_above_those_in_flight(emulator: ScarfEmulator) -> None:
    """Every status read of the list: status=importing, per_page at least the imports in flight then (and at
    least the account's limit, so that one page can hold them all)."""
    in_flight: set[str] = set()
    lists = 0
    for request in emulator.requests:
        if request.kind == "import-post" and request.import_id:
            in_flight.add(request.import_id)
        elif request.kind == "import-by-id":
            in_flight -= {seen.id for seen in request.answered if seen.status != "importing"}
        elif request.kind == "import-list":
            lists += 1
            assert request.query.get("status") == ["importing"]
            per_page = int(request.query["per_page"][-1])
            assert per_page >= len(in_flight) and per_page >= SCARF_MAX_ACTIVE_IMPORTS
            assert per_page == LIST_PAGE
    assert lists > 0


def kinds(emulator: ScarfEmulator) -> dict[str, int]:
    return emulator.call_counts(OWNER)["by_kind"]


RECORDS = 8 * BATCH  # 8 imports, 3 at a time: a few rounds
MESSAGES = downloads_with_states(RECORDS, every=BATCH // 2)


def check_the_sync(emulator: ScarfEmulator, states: list[dict], marks: list[int]) -> None:
    assert state_ids(states) == state_ids(input_states(MESSAGES))
    assert_everything_once(emulator, range(RECORDS))
    assert_each_state_came_after_its_imports_were_read_done(emulator, states, marks)


# ----- the list misbehaves: nothing changes but the calls ------------------------------------------------


LIST_FAULTS = {
    "half the importing imports left out": lambda emu: emu.list_omit_next(None, fraction=0.5),
    "every importing import left out": lambda emu: emu.list_omit_next(None),
    "pages cut to one import": lambda emu: emu.list_truncate_next(None, keep=1),
    "per_page ignored, pages of two": lambda emu: emu.list_ignore_per_page_next(None, page_size=2),
    "per_page ignored, another tool's imports fill the page": lambda emu: (
        emu.list_ignore_per_page_next(None, page_size=10), emu.hold_slots(OWNER, 10)),
    "ended imports listed as importing for a while": lambda emu: emu.list_stale(0.5),
    "the list fails now and then": lambda emu: emu.flaky(every=2, only="import-list"),
    "the list fails a few times": lambda emu: emu.fail_next(4, only="import-list"),
    "the list is down for the whole sync": lambda emu: emu.start_outage(only="import-list"),
    "the list is reset for the whole sync": lambda emu: emu.start_outage(only="import-list", status="reset"),
    "all at once": lambda emu: (emu.list_omit_next(None, fraction=0.3), emu.list_truncate_next(None, keep=2),
                                emu.list_stale(0.3), emu.flaky(every=3, only="import-list")),
}


@pytest.mark.parametrize("fault", list(LIST_FAULTS))
def test_whatever_the_list_does_every_event_arrives_once_and_no_state_comes_before_a_done_read(paced, fault):
    LIST_FAULTS[fault](paced)
    states, marks = sync(paced, MESSAGES)
    check_the_sync(paced, states, marks)
    assert_the_list_is_asked_for_importing_imports_on_a_page_above_those_in_flight(paced)
    assert kinds(paced)["import-post"] == RECORDS // BATCH


@pytest.mark.parametrize("polling", ["list", "by_id"])
def test_a_sync_without_faults_keeps_the_state_rule_under_either_policy(paced, polling):
    states, marks = sync(paced, MESSAGES, status_polling=polling)
    check_the_sync(paced, states, marks)
    counts = paced.call_counts(OWNER)
    if polling == "by_id":
        assert counts["by_kind"]["import-list"] == 0
    else:
        assert_the_list_is_asked_for_importing_imports_on_a_page_above_those_in_flight(paced)
        # Without faults an import is read by id once, when it has left the list: for its final counts.
        assert all(calls.get("import-by-id") == 1 for calls in counts["by_import"].values())


# ----- the list leaves an import out: that one is read by id on its cadence, the others are not -----------


def reads_by_id(emulator: ScarfEmulator, import_id: str, status: str) -> int:
    return sum(1 for r in emulator.requests if r.kind == "import-by-id" and r.import_id == import_id
               and any(seen.status == status for seen in r.answered))


def listed_importing(emulator: ScarfEmulator, import_id: str, *, after: int = 0) -> int:
    return sum(1 for r in emulator.requests[after:] if r.kind == "import-list"
               and any(seen.id == import_id for seen in r.answered))


def created(emulator: ScarfEmulator) -> list[str]:
    return [r.import_id for r in emulator.requests if r.kind == "import-post" and r.import_id]


def test_an_import_the_list_leaves_out_is_read_by_id_on_its_cadence_and_the_others_only_once(held, clock):
    records = SLOTS * BATCH
    messages = downloads_with_states(records, every=BATCH)
    hidden: list[str] = []
    omitted_from: list[int] = []

    def leave_the_first_out() -> None:
        hidden.append(created(held)[0])
        omitted_from.append(len(held.requests))
        held.list_omit_next(None, import_ids=hidden)

    def seen_enough() -> bool:
        # The hidden import read by id three times while importing, the others shown importing by the list since.
        return (reads_by_id(held, hidden[0], "importing") >= 3
                and all(listed_importing(held, i, after=omitted_from[0]) >= 3 for i in created(held)[1:]))

    items = [*messages,
             Until(lambda: len(created(held)) == SLOTS, "every import created", then=leave_the_first_out),
             Until(seen_enough, "the hidden import read by id, the others listed", then=lambda: clock.advance(10))]
    states, marks = sync(held, items)

    assert state_ids(states) == state_ids(input_states(messages))
    assert_everything_once(held, range(records))
    assert_each_state_came_after_its_imports_were_read_done(held, states, marks)
    first, *others = created(held)
    assert reads_by_id(held, first, "importing") >= 3 and reads_by_id(held, first, "done") == 1
    for import_id in others:  # the list answered for them while they ran: one read by id each, the final one
        assert reads_by_id(held, import_id, "importing") == 0
        assert reads_by_id(held, import_id, "done") == 1
        assert held.call_counts(OWNER)["by_import"][import_id]["import-by-id"] == 1


def test_while_imports_run_the_list_answers_for_all_of_them_and_nothing_is_read_by_id(held, clock):
    records = SLOTS * BATCH
    messages = downloads_with_states(records, every=BATCH)
    lists_at_start: list[int] = []

    def all_listed_often() -> bool:
        ids = created(held)
        return len(ids) == SLOTS and all(listed_importing(held, i) >= 5 for i in ids)

    def end_the_imports() -> None:
        lists_at_start.append(kinds(held)["import-list"])
        assert kinds(held)["import-by-id"] == 0  # three imports running, followed by list reads alone
        clock.advance(10)

    items = [*messages, Until(all_listed_often, "the imports listed a few times", then=end_the_imports)]
    states, marks = sync(held, items)
    assert state_ids(states) == state_ids(input_states(messages))
    assert_each_state_came_after_its_imports_were_read_done(held, states, marks)
    assert kinds(held)["import-by-id"] == SLOTS  # then one read by id each, for the final counts
    assert_the_list_is_asked_for_importing_imports_on_a_page_above_those_in_flight(held)


# ----- the count of calls: what the sync says it made is what Scarf received -------------------------------


SUMMARY = re.compile(r"API calls to Scarf \(Scarf bills each\): (\d+) \(([^)]*)\), ([\d.]+) per import")
WORDS = {"uploads": "upload", "status reads by id": "status", "imports list reads": "status list",
         "pre-flight": "pre-flight", "log reads": "log", "aborts": "abort", "artifact reads": "artifact",
         "package and pixel list reads": "artifact list", "list reads": "list"}


def summary_calls(stdout: bytes) -> tuple[int, dict[str, int], float]:
    logs = [m["log"]["message"] for m in messages_of(stdout) if m["type"] == "LOG"]
    [line] = [text for text in logs if text.startswith("API calls to Scarf")]
    match = SUMMARY.fullmatch(line)
    assert match, line
    by_kind = {}
    for part in match.group(2).split(", "):
        words, _, count = part.rpartition(" ")
        by_kind[WORDS[words]] = int(count)
    return int(match.group(1)), by_kind, float(match.group(3))


@pytest.mark.parametrize("polling", ["list", "by_id"])
def test_the_summary_counts_exactly_the_calls_scarf_received(tmp_path, polling):
    emu = new_emulator(import_seconds=0.3)
    emu.start()
    try:
        messages = downloads_with_states(5 * BATCH, every=BATCH)
        config = make_config(emu, batch_max_events=BATCH, max_concurrent_imports=2, status_polling=polling)
        args = ["write", "--config", write_json(tmp_path / "config.json", config),
                "--catalog", write_json(tmp_path / "catalog.json", catalog(STREAM))]
        result = run_connector(args, stdin=b"".join(lines(messages)), timeout=120)
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        assert len([m for m in messages_of(result.stdout) if m["type"] == "STATE"]) == 5
        total, said, per_import = summary_calls(result.stdout)
        counts = emu.call_counts(OWNER)
        received = counts["by_kind"]
        requests = [r for r in emu.requests if r.owner == OWNER]
        preflight = [r for r in requests if r.kind == "import-list" and r.query.get("per_page") == ["1"]]
        assert requests[0] in preflight and len(preflight) == 1  # the first call, and the only one of its kind
        assert all(r.status == 200 for r in requests)  # a sync without retries
        assert total == counts["total"]
        assert said.get("upload", 0) == received["import-post"] == 5
        assert said.get("status", 0) == received["import-by-id"]
        assert said.get("pre-flight", 0) == 1
        assert said.get("status list", 0) == received["import-list"] - 1
        assert said.get("log", 0) == received["log"] == 0
        assert said.get("abort", 0) == received["abort"] == 0
        assert said.get("artifact list", 0) == received["artifact-get"] == 2  # the owner's names: a page of each list
        assert sum(said.values()) == total
        assert per_import == pytest.approx(round(total / 5, 1))
        if polling == "by_id":  # no list read after the pre-flight
            assert received["import-list"] == 1 and said.get("status list", 0) == 0
    finally:
        emu.stop()


# ----- a list that fails is not waited on: the due imports are read by id -----------------------------------


def test_a_list_that_keeps_failing_is_not_retried_while_the_imports_it_was_for_wait(paced):
    """The list is a saving, not a need: when it fails, the imports due are read by id (which ride out errors
    until their own deadline). With a cadence whose cap is long (as in production: minutes), the list read
    must not retry for that long while imports have ended and their slots and states wait."""
    paced.start_outage(only="import-list")
    tuning = dataclasses.replace(FAST_TUNING, cadence=dataclasses.replace(FAST_TUNING.cadence, cap_seconds=20.0))
    writer = make_writer(paced, make_config(paced, batch_max_events=BATCH, max_concurrent_imports=SLOTS),
                         catalog(STREAM), tuning=tuning)
    states = run_with_hang_guard(lambda: list(writer.write(lines(MESSAGES))), "the sync")
    assert state_ids(states) == state_ids(input_states(MESSAGES))
    assert_everything_once(paced, range(RECORDS))
    # Each failed list read is one attempt, or a few: never the retries of a long budget, each billed.
    imports = RECORDS // BATCH
    assert kinds(paced)["import-list"] <= 3 * imports
