"""Package and tracking pixel names in `write`, against the emulator's paged lists.

The sync reads the owner's packages and tracking pixels once, every page, before it reads input
(`sync/artifact_names.names_for_sync`), and the events Scarf stores carry the ids the names stand for.
In-process runs read the lists at a page size of 10, so that 29 packages take three pages; the console's
`write` reads them at its own page size.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson
import pytest

from destination_scarf.config import parse_config
from destination_scarf.errors import InvalidInput, ScarfConfigError, SyncCancelled
from destination_scarf.sync.artifact_names import names_for_sync
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer
from support import (
    FAST_TUNING,
    OWNER,
    PACKAGE,
    PIXEL,
    TOKEN,
    catalog,
    download,
    fast_client,
    lines,
    make_config,
    messages_of,
    now_iso,
    record,
    run_connector,
    run_with_hang_guard,
    stream_state,
    wait_for,
    write_json,
)
from sync_helpers import drain, input_states, state_ids, stats

STREAM = "downloads"
LIBS = {f"lib-{n:02d}": f"aaaaaaaa-0000-4000-8000-{n:012d}" for n in range(25)}
RIGHT_PAD_NPM = "bbbbbbbb-0000-4000-8000-000000000001"
RIGHT_PAD_DOCKER = "bbbbbbbb-0000-4000-8000-000000000002"
DOCS_PIXEL = "cccccccc-0000-4000-8000-000000000001"
PAGE = 10  # 2 + 25 + 2 = 29 packages: three pages; 2 pixels: one


@pytest.fixture
def named(emulator):
    """The emulator with 25 python packages lib-00..lib-24, an npm and a docker right-pad, and a pixel 'docs'."""
    for name, package_id in LIBS.items():
        emulator.add_package(OWNER, package_id, name, "python")
    emulator.add_package(OWNER, RIGHT_PAD_NPM, "right-pad", "npm")
    emulator.add_package(OWNER, RIGHT_PAD_DOCKER, "right-pad", "docker")
    emulator.add_tracking_pixel(OWNER, DOCS_PIXEL, "docs")
    return emulator


def run(emu, raw_config: dict[str, Any], messages: list, *, cancelled: threading.Event | None = None,
        per_page: int = PAGE) -> tuple[list, BaseException | None]:
    """A sync as `cli.sync` runs it, in-process: the lists read (at `per_page`), then the writer on the same
    client. Returns the states echoed and what the sync raised."""
    config, streams = parse_config(raw_config), parse_catalog(catalog(STREAM))
    client = fast_client(emu, cancelled=cancelled)
    states: list = []
    try:
        names = names_for_sync(client, config, streams, per_page=per_page)
    except Exception as error:
        return states, error
    writer = Writer(config=config, streams=streams, client=client, tuning=FAST_TUNING, names=names,
                    cancelled=cancelled)
    return states, drain(states, writer.write(lines(messages)))


def list_reads(emu) -> list[tuple[str, str | None, int | None]]:
    """(path, after, status) of each read of the package and pixel lists, in order."""
    return [(r.path, r.query.get("after", [None])[0], r.status) for r in emu.requests
            if r.path in (f"/v2/packages/{OWNER}", f"/v2/tracking-pixels/{OWNER}")]


def stored_artifacts(emu) -> dict[int, str]:
    """Each stored event's record id -> the artifact id it carries."""
    return {int(e["id"]): e.get("$package") or e["$tracking_pixel"] for e in emu.events(OWNER)}


def test_names_are_read_from_every_page_and_sent_as_ids(named, caplog):
    caplog.set_level(logging.INFO)
    chosen = ["lib-00", "lib-24", "lib-13", "npm:right-pad", "docker:right-pad", PACKAGE]
    messages = [record(STREAM, download(n, package=chosen[n % len(chosen)])) for n in range(30)]
    messages.append(stream_state(STREAM, 30))

    states, error = run(named, make_config(named), messages)

    assert error is None, error
    assert stats(states[0]) == {"recordCount": 30, "rejectedRecordCount": 0}
    ids = {"lib-00": LIBS["lib-00"], "lib-24": LIBS["lib-24"], "lib-13": LIBS["lib-13"],
           "npm:right-pad": RIGHT_PAD_NPM, "docker:right-pad": RIGHT_PAD_DOCKER, PACKAGE: PACKAGE}
    assert stored_artifacts(named) == {n: ids[chosen[n % len(chosen)]] for n in range(30)}
    reads = list_reads(named)
    packages = [after for path, after, _ in reads if path.startswith("/v2/packages")]
    assert len(packages) == 3 and packages[0] is None and all(packages[1:])  # the cursor of each next link
    assert [path for path, _, _ in reads].count(f"/v2/tracking-pixels/{OWNER}") == 1
    logs = [r.getMessage() for r in caplog.records]
    assert any("Read the 29 packages and 2 tracking pixels of owner 'acme' (4 list page(s))" in m for m in logs)
    [summary] = [m for m in logs if m.startswith("API calls to Scarf")]
    assert "package and pixel list reads 4" in summary


def test_a_pixel_name_and_a_constant_package_name(named):
    config = make_config(named, field_mappings=[{"scarf_field": "$package", "constant": "lib-07"}])
    messages = [record(STREAM, {"id": 1, "time": now_iso(), "pixel": "docs"}),
                record(STREAM, {"id": 2, "time": now_iso()}), stream_state(STREAM, 2)]

    _states, error = run(named, config, messages)

    assert error is None, error
    events = sorted(named.events(OWNER), key=lambda e: int(e["id"]))
    assert [(e.get("$package"), e.get("$tracking_pixel")) for e in events] == [
        (LIBS["lib-07"], DOCS_PIXEL), (LIBS["lib-07"], None)]


def test_an_unknown_name_under_fail_stops_the_sync_naming_it_and_the_closest_names(named):
    messages = [record(STREAM, download(n, package="lib-01")) for n in range(5)] + [stream_state(STREAM, 5)]
    messages += [record(STREAM, download(5, package="Lib-01"))] + [record(STREAM, download(6, package="lib-02"))]

    states, error = run(named, make_config(named), messages)

    assert isinstance(error, InvalidInput)
    assert error.message.startswith(f"Record #6 of stream '{STREAM}' (input line 7) cannot become a Scarf event: "
                                    "$package 'Lib-01' is not the name or id of a package of owner 'acme' "
                                    "(29 packages listed; names are matched exactly; the closest: 'lib-01', ")
    assert state_ids(states) == state_ids(input_states(messages))  # the records before it were imported
    assert sorted(stored_artifacts(named)) == list(range(5))


def test_unknown_and_ambiguous_names_under_skip_are_rejected_before_upload(named, tmp_path):
    rejected = tmp_path / "rejected.ndjson"
    config = make_config(named, on_invalid_record="skip", rejected_records_path=str(rejected))
    values = ["lib-03", "lib-3", "right-pad", "npm:right-pad", "docs", "lib-04"]
    messages = [record(STREAM, download(n, package=value)) for n, value in enumerate(values)]
    messages.append(stream_state(STREAM, len(values)))

    states, error = run(named, config, messages)

    assert error is None, error
    assert stats(states[0]) == {"recordCount": 6, "rejectedRecordCount": 3}
    assert stored_artifacts(named) == {0: LIBS["lib-03"], 3: RIGHT_PAD_NPM, 5: LIBS["lib-04"]}
    kept = [orjson.loads(line) for line in rejected.read_bytes().splitlines()]
    assert [(k["record_position"], k["field"]) for k in kept] == [(2, "$package"), (3, "$package"), (5, "$package")]
    assert "'lib-3' is not the name or id of a package" in kept[0]["reason"] and "'lib-03'" in kept[0]["reason"]
    assert kept[1]["reason"] == ("'right-pad' is ambiguous: owner 'acme' has packages of that name of the types "
                                 "docker and npm; write 'docker:right-pad' or 'npm:right-pad', or give the id")
    assert "'docs' is the name of a tracking pixel: map it to $tracking_pixel" in kept[2]["reason"]
    assert [k["message"]["record"]["data"]["package"] for k in kept] == ["lib-3", "right-pad", "docs"]
    assert [r for r in named.requests if r.kind == "import-post"]  # the good ones went; no refused line was sent
    assert all(e["$package"] in (LIBS["lib-03"], RIGHT_PAD_NPM, LIBS["lib-04"]) for e in named.events(OWNER))


def test_a_second_page_that_fails_once_is_retried(named):
    named.flaky(every=2, count=2, only="artifact-get")  # the 1st list read answers, the 2nd fails once
    messages = [record(STREAM, download(1, package="lib-24")), stream_state(STREAM, 1)]

    _states, error = run(named, make_config(named), messages)

    assert error is None, error
    reads = list_reads(named)
    assert [status for _, _, status in reads] == [200, 503, 200, 200, 200]
    assert reads[1][1] == reads[2][1] is not None  # the same page, asked again
    assert stored_artifacts(named) == {1: LIBS["lib-24"]}


def test_an_unknown_constant_name_fails_the_sync_before_any_input_is_read(named):
    config = make_config(named, field_mappings=[{"scarf_field": "$tracking_pixel", "constant": "Docs",
                                                 "stream": STREAM}])
    states, error = run(named, config, [record(STREAM, download(1)), stream_state(STREAM, 1)])

    assert isinstance(error, ScarfConfigError)
    assert str(error) == (
        f"The destination's configuration is not valid: field_mappings: the constant $tracking_pixel for stream "
        f"'{STREAM}': 'Docs' is not the name or id of a tracking pixel of owner 'acme' (2 tracking pixels listed; "
        "names are matched exactly; the closest: 'docs').")
    assert states == [] and named.imports(OWNER) == []


def test_no_list_is_read_when_no_stream_can_send_a_name(named):
    both_constant = make_config(named, field_mappings=[{"scarf_field": "$package", "constant": PACKAGE},
                                                       {"scarf_field": "$tracking_pixel", "constant": PIXEL}])
    single = make_config(named, target={"target_type": "package", "package_id": PACKAGE})
    for config in (both_constant, single):
        _states, error = run(named, config, [record(STREAM, download(1, package="not-a-name")),
                                            stream_state(STREAM, 1)])
        assert error is None, error
    assert list_reads(named) == []


def test_a_cancel_wakes_a_list_read_that_hangs(named):
    named.silence_next(1, only="artifact-get")
    cancelled = threading.Event()
    threading.Thread(target=lambda: (wait_for(lambda: named.fault_summary()["silenced_connections"] == 1,
                                              "the list read to be held"), cancelled.set()), daemon=True).start()
    try:
        states, error = run_with_hang_guard(
            lambda: run(named, make_config(named), [record(STREAM, download(1))], cancelled=cancelled),
            "a sync whose list read hangs")
    finally:
        named.release_silenced()
    assert isinstance(error, SyncCancelled), error
    assert "while listing the owner's packages (page 1)" in error.message
    assert states == [] and named.imports(OWNER) == []


def test_cli_write_resolves_names_and_counts_the_list_reads(named, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(named))
    cat = write_json(tmp_path / "catalog.json", catalog(STREAM))
    stdin = b"".join(lines([record(STREAM, download(n, package="lib-05")) for n in range(3)]
                           + [record(STREAM, download(3, package="npm:right-pad")), stream_state(STREAM, 4)]))
    result = run_connector(["write", "--config", config, "--catalog", cat], stdin=stdin)

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    out = messages_of(result.stdout)
    assert [m["state"]["destinationStats"] for m in out if m["type"] == "STATE"] == [
        {"recordCount": 4, "rejectedRecordCount": 0}]
    assert stored_artifacts(named) == {0: LIBS["lib-05"], 1: LIBS["lib-05"], 2: LIBS["lib-05"], 3: RIGHT_PAD_NPM}
    logs = [m["log"]["message"] for m in out if m["type"] == "LOG"]
    [summary] = [m for m in logs if m.startswith("API calls to Scarf")]
    assert "package and pixel list reads 2" in summary  # one page each at the console's page size
    assert [r.category for r in named.requests][:3] == ["import-get", "artifact-get", "artifact-get"]
    assert TOKEN.encode() not in result.stdout + result.stderr
