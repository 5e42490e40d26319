"""The emulator's imports list, its list faults, the per-import pace and the call counts, over real HTTP.

A connector that polls the imports list once for all imports in flight (instead of each import by
id) needs the list to behave as Scarf's spec says, faults that break the list the ways a list can
break, imports that take a predictable time, and a count of the calls it made. Time-dependent
behaviour is checked on the emulator's own clock, a fake one the tests advance: never by measuring
wall-clock durations.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from integration_tests.emulator.test_emulator import (
    DEADLINE,
    OTHER_OWNER,
    OTHER_TOKEN,
    OWNER,
    ROOT,
    TOKEN,
    _read_line,
    assert_event_import,
    assert_valid,
    auth,
    control_action,
    event,
    get_import,
    make_emulator,
    ndjson,
    post_import,
)
from scarf_emulator import ScarfEmulator

LIST_URL = "/v2/imports/{owner}"


class FakeClock:
    """The emulator's monotonic clock, moved only by the test."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def wait_until(predicate: Callable[[], Any], what: str = "condition") -> Any:
    """Poll until `predicate` is truthy (the workers run on their own threads); fail after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def emu():
    emulator = make_emulator()
    emulator.start()
    yield emulator
    emulator.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def paced(clock):
    """An emulator on the fake clock where every import takes 10 of its seconds."""
    emulator = make_emulator(import_seconds=10, clock=clock)
    emulator.start()
    yield emulator
    emulator.close()


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def list_imports(http: requests.Session, emu: ScarfEmulator, params: Any = None, owner: str = OWNER) -> list[dict]:
    response = http.get(emu.url + LIST_URL.format(owner=owner), params=params, headers=auth(), timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid(body, "EventImports")
    for item in body["event_imports"]:
        assert_event_import(item)
    return body["event_imports"]


def ids(items: list[dict]) -> list[str]:
    return [i["id"] for i in items]


def done_import(http: requests.Session, emu: ScarfEmulator) -> str:
    created = post_import(http, emu, ndjson([event()])).json()["id"]
    wait_until(lambda: emu.get_import(OWNER, created)["status"] == "done", "the import to end")
    return created


def pages(http: requests.Session, emu: ScarfEmulator, **params: Any) -> list[list[str]]:
    """Every page, following `after` from the last import of each page until an empty one."""
    found: list[list[str]] = []
    after = None
    while True:
        page = ids(list_imports(http, emu, {**params, **({"after": after} if after else {})}))
        if not page:
            return found
        found.append(page)
        after = page[-1]
        assert len(found) < 50, "paging does not end"


# --------------------------------------------------------------------------------------
# The list as the spec describes it
# --------------------------------------------------------------------------------------
def test_status_is_a_repeatable_filter_over_the_spec_statuses(emu, http):
    done = [done_import(http, emu) for _ in range(2)]
    aborted = emu.hold_slots(OWNER, 1)
    assert emu.abort_import(OWNER, aborted[0])
    importing = emu.hold_slots(OWNER, 2)

    assert set(ids(list_imports(http, emu, {"status": "importing"}))) == set(importing)
    assert set(ids(list_imports(http, emu, {"status": "done"}))) == set(done)
    assert set(ids(list_imports(http, emu, {"status": "aborted"}))) == set(aborted)
    assert set(ids(list_imports(http, emu, [("status", "importing"), ("status", "aborted")]))) == set(importing + aborted)
    assert ids(list_imports(http, emu)) == list(reversed(done + aborted + importing))  # no filter: all, newest first
    for status in ("uploading", "", "DONE"):
        assert http.get(emu.url + LIST_URL.format(owner=OWNER), params={"status": status}, headers=auth()).status_code == 400


def test_per_page_and_after_walk_every_matching_import_once(emu, http):
    done = [done_import(http, emu) for _ in range(3)]
    held = emu.hold_slots(OWNER, 4)
    newest_first = list(reversed(done + held))

    assert pages(http, emu, per_page=3) == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert pages(http, emu, per_page=1) == [[i] for i in newest_first]
    assert pages(http, emu, per_page=100) == [newest_first]
    assert pages(http, emu, status="importing", per_page=3) == [list(reversed(held))[:3], list(reversed(held))[3:]]
    # The cursor is a position among all imports: it works from an import that no longer matches the filter.
    assert ids(list_imports(http, emu, {"status": "done", "after": held[0]})) == list(reversed(done))


@pytest.mark.parametrize("params", [{"per_page": 0}, {"per_page": -3}, {"per_page": "ten"}, {"after": "not-an-id"}])
def test_bad_paging_parameters_are_400(emu, http, params):
    response = http.get(emu.url + LIST_URL.format(owner=OWNER), params=params, headers=auth())
    assert response.status_code == 400 and "message" in response.json()


def test_the_default_page_is_ten_and_per_page_goes_above_it(emu, http):
    held = emu.hold_slots(OWNER, 12)
    assert ids(list_imports(http, emu)) == list(reversed(held))[:10]
    assert len(list_imports(http, emu, {"per_page": 11})) == 11
    assert len(list_imports(http, emu, {"per_page": 30})) == 12
    other = http.get(emu.url + LIST_URL.format(owner=OTHER_OWNER), headers=auth(OTHER_TOKEN)).json()
    assert other == {"event_imports": []}


# --------------------------------------------------------------------------------------
# Progress counts in the list, as by id, growing while importing
# --------------------------------------------------------------------------------------
def test_listed_imports_carry_the_same_fields_and_growing_counts_as_by_id(paced, clock, http):
    lines = [event(n=i) for i in range(8)] + ["junk", "junk"]  # 10 lines: 8 good, 2 that fail
    created = post_import(http, paced, ndjson(lines)).json()
    [listed] = list_imports(http, paced, {"status": "importing"})
    assert listed == get_import(http, paced, created["id"])
    assert (listed["events_total"], listed["events_successfully_imported"], listed["events_failed_to_import"]) == (10, 0, 0)

    clock.advance(5)  # half the import's time: its first 5 lines (all good)
    wait_until(lambda: paced.get_import(OWNER, created["id"])["events_successfully_imported"] == 5, "half the lines")
    [listed] = list_imports(http, paced, {"status": "importing"})
    assert listed == get_import(http, paced, created["id"])  # the clock stands still: nothing moves between reads
    assert (listed["status"], listed["events_successfully_imported"], listed["events_failed_to_import"]) == ("importing", 5, 0)

    clock.advance(4)  # 9 of 10 lines: 8 good, 1 failed
    wait_until(lambda: paced.get_import(OWNER, created["id"])["events_failed_to_import"] == 1, "a failed line counted")
    [listed] = list_imports(http, paced, {"status": "importing"})
    assert (listed["events_successfully_imported"], listed["events_failed_to_import"]) == (8, 1)
    assert listed["error_log_sample"] == get_import(http, paced, created["id"])["error_log_sample"] != []

    clock.advance(1)
    wait_until(lambda: paced.get_import(OWNER, created["id"])["status"] == "done", "the import to end")
    assert list_imports(http, paced, {"status": "importing"}) == []
    [final] = list_imports(http, paced, {"status": "done"})
    assert final == get_import(http, paced, created["id"])
    assert (final["events_successfully_imported"], final["events_failed_to_import"]) == (8, 2)


# --------------------------------------------------------------------------------------
# The pace knob
# --------------------------------------------------------------------------------------
def test_every_import_takes_the_set_seconds_whatever_its_size(paced, clock, http):
    sizes = {"one": 1, "ten": 10, "thousand": 1000}
    created = {name: post_import(http, paced, ndjson([event()] * n)).json()["id"] for name, n in sizes.items()}

    def counts() -> dict[str, tuple[str, int]]:
        return {name: (lambda i: (i["status"], i["events_successfully_imported"]))(paced.get_import(OWNER, import_id))
                for name, import_id in created.items()}

    assert counts() == {"one": ("importing", 0), "ten": ("importing", 0), "thousand": ("importing", 0)}
    clock.advance(2.5)
    expected = {"one": ("importing", 0), "ten": ("importing", 2), "thousand": ("importing", 250)}
    wait_until(lambda: counts() == expected, f"counts at a quarter of the time: {expected}")
    clock.advance(7.5)
    wait_until(lambda: counts() == {name: ("done", n) for name, n in sizes.items()}, "every import done at 10 s")


def test_an_empty_import_still_takes_its_time(paced, clock, http):
    created = post_import(http, paced, b"\n").json()
    assert created["events_total"] == 0
    clock.advance(9)
    assert paced.wait_idle(0.2) is False  # its time is not up on the emulator's clock
    assert paced.get_import(OWNER, created["id"])["status"] == "importing"
    clock.advance(1)
    wait_until(lambda: paced.get_import(OWNER, created["id"])["status"] == "done", "the empty import to end")


def test_with_a_rate_too_the_slower_of_the_two_wins(clock, http):
    with make_emulator(import_seconds=1, events_per_second=1, clock=clock) as emu:
        created = post_import(http, emu, ndjson([event()] * 5)).json()["id"]
        clock.advance(1)  # the import's time is up, but at 1 event/s one event at a time
        for processed in range(1, 5):
            wait_until(lambda n=processed: emu.get_import(OWNER, created)["events_successfully_imported"] == n, "an event")
            assert emu.get_import(OWNER, created)["status"] == "importing"
            clock.advance(1)
        wait_until(lambda: emu.get_import(OWNER, created)["status"] == "done", "the rate to let every event through")


def test_the_pace_can_be_set_and_lifted_while_running_and_through_the_control_endpoint(clock, http):
    with make_emulator(clock=clock) as emu:
        assert emu.stats()["import_seconds"] is None  # default: no pace
        assert control_action(http, emu, "set_import_seconds", seconds=4) is None
        assert http.get(f"{emu.url}/_emulator/stats").json()["import_seconds"] == 4
        created = post_import(http, emu, ndjson([event()] * 4)).json()["id"]
        clock.advance(1)
        wait_until(lambda: emu.get_import(OWNER, created)["events_successfully_imported"] == 1, "a quarter")
        control_action(http, emu, "set_import_seconds", seconds=None)  # lifted: the rest goes at once
        wait_until(lambda: emu.get_import(OWNER, created)["status"] == "done", "the rest at once")
        with pytest.raises(ValueError):
            emu.set_import_seconds(-1)
        assert http.post(f"{emu.url}/_emulator/faults", json={"action": "set_import_seconds", "seconds": "x"}).status_code == 400


def test_the_cli_takes_import_seconds(http):
    process = subprocess.Popen(
        [sys.executable, "-m", "scarf_emulator", "--port", "0", "--token", TOKEN, "--owner", OWNER, "--import-seconds", "7.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = _read_line(process.stdout, DEADLINE).strip().split("=", 1)[1]
        assert http.get(f"{url}/_emulator/stats").json()["import_seconds"] == 7.5
    finally:
        process.terminate()
        process.communicate(timeout=DEADLINE)


# --------------------------------------------------------------------------------------
# List faults
# --------------------------------------------------------------------------------------
def test_list_omit_next_leaves_named_imports_out_for_n_answers(emu, http):
    held = emu.hold_slots(OWNER, 4)
    finished = done_import(http, emu)
    emu.list_omit_next(2, import_ids=[held[1], finished])
    for _ in range(2):
        assert ids(list_imports(http, emu)) == [held[3], held[2], held[0]]
    assert ids(list_imports(http, emu)) == [finished, *reversed(held)]
    assert get_import(http, emu, held[1])["status"] == "importing"  # reads by id are not affected

    control_action(http, emu, "list_omit_next", n=1, import_ids=[held[3]])
    assert ids(list_imports(http, emu, {"per_page": 2})) == [finished, held[2]]  # left out before paging: the page fills up


def test_list_omit_a_fraction_of_importing_imports_evenly_and_stably_until_cleared(emu, http):
    held = emu.hold_slots(OWNER, 4)  # created 1st to 4th
    finished = done_import(http, emu)  # 5th, and done: never left out by a fraction
    control_action(http, emu, "list_omit_next", n=None, fraction=0.5)
    for _ in range(3):  # every answer, the same ones: the 2nd and 4th created
        assert ids(list_imports(http, emu)) == [finished, held[2], held[0]]
    assert ids(list_imports(http, emu, {"status": "importing"})) == [held[2], held[0]]
    assert [f["kind"] for f in emu.pending_faults()] == ["list_omit"]
    emu.clear_faults()
    assert ids(list_imports(http, emu)) == [finished, *reversed(held)]
    emu.list_omit_next(1)  # fraction 1 by default: every importing import
    assert ids(list_imports(http, emu)) == [finished]


def test_list_truncate_next_answers_short_pages_that_the_cursor_continues(emu, http):
    held = emu.hold_slots(OWNER, 5)
    newest_first = list(reversed(held))
    emu.list_truncate_next(1, keep=2)
    assert ids(list_imports(http, emu, {"per_page": 4})) == newest_first[:2]
    assert ids(list_imports(http, emu, {"per_page": 4})) == newest_first[:4]
    control_action(http, emu, "list_truncate_next", n=None, keep=1)
    assert pages(http, emu, per_page=3) == [[i] for i in newest_first]  # a short page is not the last page


def test_list_ignore_per_page_next_pages_at_ten(emu, http):
    held = emu.hold_slots(OWNER, 12)
    emu.list_ignore_per_page_next(2)
    assert len(list_imports(http, emu, {"per_page": 50})) == 10
    assert len(list_imports(http, emu, {"per_page": 3})) == 10
    assert len(list_imports(http, emu, {"per_page": 50})) == 12
    control_action(http, emu, "list_ignore_per_page_next", n=1, page_size=5)
    assert ids(list_imports(http, emu, {"per_page": 2})) == list(reversed(held))[:5]
    emu.list_ignore_per_page_next(1)
    assert http.get(emu.url + LIST_URL.format(owner=OWNER), params={"per_page": 0}, headers=auth()).status_code == 400


def test_list_stale_shows_a_finished_import_as_importing_for_a_while(paced, clock, http):
    control_action(http, paced, "list_stale", seconds=5)
    created = post_import(http, paced, ndjson([event(), "junk"])).json()["id"]
    clock.advance(10)
    final = wait_until(lambda: (lambda i: i if i["status"] == "done" else None)(get_import(http, paced, created)), "done")

    clock.advance(4)  # 4 s after it ended: the list still shows it importing, by id it is done
    [stale] = list_imports(http, paced, {"status": "importing"})
    assert stale["id"] == created and stale["status"] == "importing"
    assert (stale["events_successfully_imported"], stale["events_failed_to_import"]) == (1, 1)  # as last seen importing
    assert list_imports(http, paced, {"status": "done"}) == []
    assert get_import(http, paced, created) == final

    clock.advance(1)  # 5 s after: fresh
    assert list_imports(http, paced, {"status": "importing"}) == []
    assert list_imports(http, paced, {"status": "done"}) == [final]
    paced.list_stale(0)
    assert {"kind": "list_stale", "seconds": 5.0} not in paced.pending_faults()


def test_an_aborted_import_can_look_importing_in_a_stale_list_too(clock, http):
    with make_emulator(clock=clock) as emu:
        emu.list_stale(1)
        [held] = emu.hold_slots(OWNER, 1)
        assert emu.abort_import(OWNER, held)
        assert [i["status"] for i in list_imports(http, emu)] == ["importing"]
        clock.advance(1)
        assert [i["status"] for i in list_imports(http, emu)] == ["aborted"]


def test_the_request_log_keeps_what_each_import_read_answered_as_sent(paced, clock, http):
    """A client's decisions rest on what its reads answered: the log keeps each import's status and counts as
    the answer showed them (stale ones included), and nothing for an answer a fault replaced."""
    paced.list_stale(5)
    created = post_import(http, paced, ndjson([event(), event(n=1), "junk"])).json()["id"]
    list_imports(http, paced, {"status": "importing"})
    clock.advance(10)
    wait_until(lambda: paced.get_import(OWNER, created)["status"] == "done", "the import to end")
    list_imports(http, paced, {"status": "importing"})  # stale
    get_import(http, paced, created)
    paced.fail_next(1, only="import-by-id", after_processing=True)
    assert http.get(f"{paced.url}/v2/imports/{OWNER}/{created}", headers=auth()).status_code == 503
    http.get(f"{paced.url}/v2/imports/{OWNER}/{created}/log", headers=auth())

    reads = [(r.kind, [(s.id, s.status, s.events_total, s.events_successfully_imported, s.events_failed_to_import)
                       for s in r.answered]) for r in paced.requests]
    assert reads == [
        ("import-post", []),
        ("import-list", [(created, "importing", 3, 0, 0)]),
        ("import-list", [(created, "importing", 3, 2, 1)]),  # stale: its word of before, with the last counts
        ("import-by-id", [(created, "done", 3, 2, 1)]),
        ("import-by-id", []),  # the 503 a fault put in place of the answer
        ("log", []),
    ]
    recorded = http.get(f"{paced.url}/_emulator/requests").json()
    assert recorded[3]["answered"] == [{"id": created, "status": "done", "events_total": 3,
                                        "events_successfully_imported": 2, "events_failed_to_import": 1}]


def test_list_faults_are_used_only_by_list_answers_of_200(emu, http):
    held = emu.hold_slots(OWNER, 2)
    emu.list_omit_next(1, import_ids=[held[0]])
    emu.fail_next(1, only="import-list")
    assert http.get(emu.url + LIST_URL.format(owner=OWNER), headers=auth()).status_code == 503
    assert http.get(emu.url + LIST_URL.format(owner=OWNER)).status_code == 401
    assert get_import(http, emu, held[0])["id"] == held[0]
    assert ids(list_imports(http, emu)) == [held[1]]  # the omission was still there for this answer
    assert ids(list_imports(http, emu)) == [held[1], held[0]]


def test_one_list_answer_takes_one_of_each_list_fault(emu, http):
    held = emu.hold_slots(OWNER, 12)
    newest_first = list(reversed(held))
    emu.list_omit_next(1, import_ids=[newest_first[0]])
    emu.list_omit_next(1, import_ids=[newest_first[1]])
    emu.list_ignore_per_page_next(1)
    emu.list_truncate_next(1, keep=9)
    assert ids(list_imports(http, emu, {"per_page": 2})) == newest_first[1:10]  # omit 1st, page at 10, keep 9
    assert ids(list_imports(http, emu, {"per_page": 2})) == [newest_first[0], newest_first[2]]  # the second omission
    assert emu.pending_faults() == []


def test_list_fault_arguments_are_checked(emu, http):
    for call in (
        lambda: emu.list_omit_next(-1),
        lambda: emu.list_omit_next(1, fraction=0),
        lambda: emu.list_omit_next(1, fraction=1.5),
        lambda: emu.list_omit_next(1, import_ids=["a"], fraction=0.5),
        lambda: emu.list_omit_next(1, import_ids="abc"),  # type: ignore[arg-type]
        lambda: emu.list_truncate_next(1, keep=0),
        lambda: emu.list_ignore_per_page_next(1, page_size=0),
        lambda: emu.list_stale(-1),
    ):
        with pytest.raises(ValueError):
            call()
    assert emu.pending_faults() == []
    assert http.post(f"{emu.url}/_emulator/faults", json={"action": "list_truncate_next", "n": 1, "keep": 0}).status_code == 400
    assert http.post(f"{emu.url}/_emulator/faults", json={"action": "list_stale", "minutes": 1}).status_code == 400


def test_clear_faults_clears_list_faults_and_the_summary_counts_them(emu, http):
    held = emu.hold_slots(OWNER, 12)
    emu.list_omit_next(None)
    emu.list_truncate_next(3)
    emu.list_ignore_per_page_next(1)
    emu.list_stale(30)
    summary = http.get(f"{emu.url}/_emulator/fault_summary").json()
    assert summary["pending_by_kind"] == {"list_omit": 1, "list_truncate": 1, "list_ignore_per_page": 1, "list_stale": 1}
    assert http.get(f"{emu.url}/_emulator/faults").json() == [
        {"kind": "list_omit", "remaining": None, "import_ids": None, "fraction": 1.0},
        {"kind": "list_truncate", "remaining": 3, "keep": 1},
        {"kind": "list_ignore_per_page", "remaining": 1, "page_size": 10},
        {"kind": "list_stale", "seconds": 30.0},
    ]
    control_action(http, emu, "clear_faults")
    assert emu.pending_faults() == []
    assert ids(list_imports(http, emu, {"per_page": 12})) == list(reversed(held))


# --------------------------------------------------------------------------------------
# Fault categories: the list and reads by id apart, "import-get" both
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("only, list_status, by_id_status", [
    ("import-list", 503, 200), ("import-by-id", 200, 503), ("import-get", 503, 503)])
def test_faults_can_target_the_list_or_reads_by_id(emu, http, only, list_status, by_id_status):
    [held] = emu.hold_slots(OWNER, 1)
    list_url, by_id_url = emu.url + LIST_URL.format(owner=OWNER), f"{emu.url}/v2/imports/{OWNER}/{held}"
    emu.start_outage(only=only)
    assert (http.get(list_url, headers=auth()).status_code, http.get(by_id_url, headers=auth()).status_code) == (
        list_status, by_id_status)
    emu.end_outage()
    emu.fail_next(1, only=only)
    first = [http.get(url, headers=auth()).status_code for url in (list_url, by_id_url, list_url, by_id_url)]
    assert first.count(503) == 1 and first[0 if list_status == 503 else 1] == 503
    assert {r.category for r in emu.requests} == {"import-get"}  # the recorded category is unchanged
    assert [r.kind for r in emu.requests][:2] == ["import-list", "import-by-id"]


# --------------------------------------------------------------------------------------
# Call counts
# --------------------------------------------------------------------------------------
def test_calls_are_counted_by_kind_and_per_import(emu, http):
    first = post_import(http, emu, ndjson([event()])).json()["id"]
    emu.fail_next(1, status=503, only="import-post", after_processing=True)
    second_answer = post_import(http, emu, ndjson([event()]))
    assert second_answer.status_code == 503  # the import exists all the same: the upload is its call
    second = next(i["id"] for i in emu.imports(OWNER) if i["id"] != first)
    assert post_import(http, emu, b"x", content_type="text/csv").status_code == 415  # refused: no import
    for _ in range(3):
        get_import(http, emu, first)
    emu.fail_next(1, only="import-by-id")
    assert http.get(f"{emu.url}/v2/imports/{OWNER}/{second}", headers=auth()).status_code == 503  # billed as well
    list_imports(http, emu)
    list_imports(http, emu, {"status": "importing"})
    http.get(f"{emu.url}/v2/imports/{OWNER}/{first}/log", headers=auth())
    http.post(f"{emu.url}/v2/imports/{OWNER}/{second}/abort", headers=auth())
    http.get(f"{emu.url}/v2/packages/{OWNER}/pkg-1", headers=auth())
    http.get(f"{emu.url}/v3/nothing", headers=auth())
    post_import(http, emu, ndjson([event()]), path=f"/v2/packages/{OTHER_OWNER}/g-pkg/import", token=OTHER_TOKEN)

    counts = emu.call_counts(OWNER)
    assert counts["total"] == 12
    assert counts["by_kind"] == {"import-post": 3, "import-by-id": 4, "import-list": 2, "log": 1, "abort": 1,
                                 "artifact-get": 1, "other": 0}
    assert counts["imports"] == 2
    assert counts["by_import"] == {
        first: {"total": 5, "import-post": 1, "import-by-id": 3, "log": 1},
        second: {"total": 3, "import-post": 1, "import-by-id": 1, "abort": 1},
    }
    assert counts["unattributed"] == {"import-post": 1, "import-list": 2, "artifact-get": 1}

    everything = emu.call_counts()
    assert everything["total"] == 14 and everything["by_kind"]["other"] == 1 and everything["imports"] == 3
    assert http.get(f"{emu.url}/_emulator/calls", params={"owner": OWNER}).json() == counts
    assert http.get(f"{emu.url}/_emulator/calls").json() == everything
    recorded = http.get(f"{emu.url}/_emulator/requests").json()
    assert [(r["kind"], r["owner"], r["import_id"]) for r in recorded[:2]] == [
        ("import-post", OWNER, first), ("import-post", OWNER, second)]
    assert uuid.UUID(recorded[0]["import_id"])
    emu.clear_requests()
    assert emu.call_counts()["total"] == 0
