"""Odd input through the real command line: `write` imports it into the emulator and `preview` shows the same events.

A stream name holding U+0000, and mapped `$unique_id`s that are only white space, longer than 512 characters,
or a number and the same digits as text. Each case runs `preview --json` and `write` on the same input and
compares what the preview showed with what Scarf stored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from support import (
    OWNER,
    catalog,
    download,
    lines,
    make_config,
    messages_of,
    record,
    run_connector,
    stream_state,
    write_json,
)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAPPED_ID = [{"scarf_field": "$unique_id", "source_field": "order_id"}]


def preview_and_write(emulator, tmp_path: Path, config: dict[str, Any], raw_catalog: dict[str, Any],
                      messages: list) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`preview --json` (the previewed records) and then `write` (the states it echoed) on the same input."""
    config_path = write_json(tmp_path / "config.json", config)
    catalog_path = write_json(tmp_path / "catalog.json", raw_catalog)
    stdin = b"".join(lines(messages))
    shown = run_connector(["preview", "--config", config_path, "--catalog", catalog_path, "--json", "--limit", "100"],
                          stdin=stdin)
    assert shown.returncode == 0 and shown.stderr == b"", shown.stderr.decode()
    # the preview sent nothing: it only read the owner's package and pixel lists, to check names as a sync does
    assert [(r.method, r.kind) for r in emulator.requests if (r.method, r.kind) != ("GET", "artifact-get")] == []
    sync = run_connector(["write", "--config", config_path, "--catalog", catalog_path], stdin=stdin)
    assert sync.returncode == 0, sync.stdout[-2000:]
    states = [m for m in messages_of(sync.stdout) if m["type"] == "STATE"]
    assert len(states) == sum(1 for m in messages if m["type"] == "STATE")
    assert emulator.wait_idle(20)
    return [entry for entry in messages_of(shown.stdout) if "event" in entry], states


def stored_ids(emulator) -> list[str]:
    return sorted(event["$unique_id"] for event in emulator.events(OWNER))


def test_a_stream_whose_name_holds_u0000_is_imported_and_previewed(emulator, tmp_path):
    name = "down\x00loads"
    messages = [record(name, download(n)) for n in range(3)] + [stream_state(name, 3)]

    previewed, states = preview_and_write(emulator, tmp_path, make_config(emulator), catalog(name), messages)

    assert [entry["stream"] for entry in previewed] == [name] * 3
    assert [s["state"]["stream"]["stream_descriptor"]["name"] for s in states] == [name]
    assert stored_ids(emulator) == sorted(entry["event"]["$unique_id"] for entry in previewed)
    text = run_connector(["preview", "--config", str(tmp_path / "config.json"), "--catalog",
                          str(tmp_path / "catalog.json")], stdin=b"".join(lines(messages)))
    assert text.returncode == 0, text.stderr.decode()
    assert b"\x00" not in text.stdout  # shown escaped, as JSON text
    assert text.stdout.startswith(b"Record #1 of stream '\"down\\u0000loads\"' (input line 1) would be sent:\n")


@pytest.mark.parametrize("id_mode", ["deterministic", "as_mapped"])
def test_a_mapped_id_of_white_space_or_nothing_is_no_id_the_event_gets_its_content_id(emulator, tmp_path, id_mode):
    config = make_config(emulator, field_mappings=MAPPED_ID, unique_id_mode=id_mode)
    first, second = download(1), download(2)
    # Windows apart (a state between), so that identical content is not numbered as a repeat.
    messages = [record("downloads", {**first, "order_id": " "}), record("downloads", {**second, "order_id": " "}),
                stream_state("downloads", 1),
                record("downloads", first),  # the same content with no id at all
                stream_state("downloads", 2),
                record("downloads", {**first, "order_id": ""}), stream_state("downloads", 3)]

    previewed, _ = preview_and_write(emulator, tmp_path, config, catalog("downloads"), messages)

    ids = [entry["event"]["$unique_id"] for entry in previewed]
    assert [entry["sources"]["$unique_id"] for entry in previewed] == ["content hash"] * 4
    spaced, other, none, empty = ids
    assert spaced == none == empty  # " " and "" alike: the content id, as if no id were mapped
    assert other != spaced and UUID.fullmatch(spaced) and UUID.fullmatch(other)
    # Two records with different content and a white-space id stay two events.
    assert stored_ids(emulator) == sorted({spaced, other})


def test_a_mapped_id_over_512_characters_is_hashed_under_as_mapped(emulator, tmp_path):
    config = make_config(emulator, field_mappings=MAPPED_ID, unique_id_mode="as_mapped")
    longest, too_long = "y" * 512, "x" * 513
    messages = [record("downloads", download(1, order_id=too_long)),
                record("downloads", download(2, order_id=longest)), stream_state("downloads", 2)]

    previewed, _ = preview_and_write(emulator, tmp_path, config, catalog("downloads"), messages)

    hashed, given = previewed
    assert UUID.fullmatch(hashed["event"]["$unique_id"])
    assert hashed["sources"]["$unique_id"] == "mapped field order_id"  # not ", as given": it was not sent as is
    assert given["event"]["$unique_id"] == longest
    assert given["sources"]["$unique_id"] == "mapped field order_id, as given"
    assert stored_ids(emulator) == sorted([hashed["event"]["$unique_id"], longest])


@pytest.mark.parametrize("id_mode", ["deterministic", "as_mapped"])
def test_a_mapped_number_and_the_same_digits_as_text_are_one_event(emulator, tmp_path, id_mode):
    config = make_config(emulator, field_mappings=MAPPED_ID, unique_id_mode=id_mode)
    messages = [record("downloads", download(1, order_id=1)), record("downloads", download(2, order_id="1")),
                stream_state("downloads", 2)]

    previewed, _ = preview_and_write(emulator, tmp_path, config, catalog("downloads"), messages)

    number, text = (entry["event"]["$unique_id"] for entry in previewed)
    assert number == text
    assert number == "1" if id_mode == "as_mapped" else UUID.fullmatch(number)
    assert stored_ids(emulator) == [number]  # the second replaced the first
