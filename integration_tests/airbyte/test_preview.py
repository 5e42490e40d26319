"""`destination-scarf preview` through the real console entry point: what records would become, nothing sent.

The emulator only provides a config that a sync could use; every test checks that nothing was sent to it: at most
the owner's package and tracking pixel lists were read, to turn names into ids as a sync does (test_preview_names.py).
The last tests run `write` on the same input and compare what Scarf stored with what the preview showed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import orjson
import pytest

from destination_scarf.sync.writer import BAD_LINE_HINT, INVALID_RECORD_HINT
from support import (
    OWNER,
    PACKAGE,
    ROOT,
    TOKEN,
    catalog,
    download,
    lines,
    make_config,
    messages_of,
    now_iso,
    record,
    run_connector,
    stream_state,
    write_json,
)

SECRET = "SECRET-CONTENT-4711"


def preview(emulator, tmp_path, messages, *args: str, config: dict[str, Any] | None = None,
            raw_catalog: dict[str, Any] | None = None) -> subprocess.CompletedProcess:
    config_path = write_json(tmp_path / "config.json", config if config is not None else make_config(emulator))
    catalog_path = write_json(tmp_path / "catalog.json", raw_catalog or catalog("downloads"))
    result = run_connector(["preview", "--config", config_path, "--catalog", catalog_path, *args],
                           stdin=b"".join(lines(messages)))
    assert_only_lists_read(emulator)
    return result


def assert_only_lists_read(emulator) -> None:
    """Nothing was sent, not even a token check: at most the owner's two lists were read, to check names."""
    lists = {f"/v2/packages/{OWNER}", f"/v2/tracking-pixels/{OWNER}"}
    assert [(r.method, r.path) for r in emulator.requests if r.method != "GET" or r.path not in lists] == []


def preview_json(emulator, tmp_path, messages, *args: str, **kwargs: Any) -> list[dict[str, Any]]:
    result = preview(emulator, tmp_path, messages, "--json", *args, **kwargs)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return messages_of(result.stdout)


def exact_line(message: dict[str, Any]) -> bytes:
    """A message with integers beyond 64 bits, which orjson cannot write."""
    return json.dumps(message).encode() + b"\n"


def text_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


# --- what one record becomes ---------------------------------------------------------------------------------


def test_a_good_record_shows_its_event_and_where_each_field_came_from(emulator, tmp_path):
    config = make_config(emulator, field_mappings=[
        {"scarf_field": "$time", "source_field": "created_at"},
        {"scarf_field": "$remote_address", "source_field": "client.ip"},
        {"scarf_field": "$type", "constant": "download"}])
    created = now_iso(-60)
    data = {"created_at": created, "package": PACKAGE, "client": {"ip": "192.0.2.7", "port": 443},
            "$user_agent": None, "user_agent": "pip/24.0", "country": "NL", "_airbyte_raw_id": "r"}
    result = preview(emulator, tmp_path, [record("downloads", data)], config=config)
    text = text_of(result)
    assert text.startswith("Record #1 of stream 'downloads' (input line 1) would be sent:\n")
    assert f'\n  $time            "{created[:19]}' in text  # sent as ISO 8601 UTC
    for field, source in [("$package", "package"), ("$type", "constant"), ("$remote_address", "client.ip"),
                          ("$user_agent", "user_agent"), ("$time", "created_at"), ("$unique_id", "content hash")]:
        assert re.search(rf"\n  {re.escape(field)} +\S.*  <- {re.escape(source)}\n", text), (field, text)
    assert '    client.port  "443"\n' in text and '    country      "NL"\n' in text  # custom variables, as text
    assert "_airbyte_raw_id" not in text
    assert "Previewed 1 record (the whole input): 1 would be sent, 0 would be rejected. Nothing was sent" in text
    assert "Stream 'downloads' maps to Scarf as: $time <- source field 'created_at';" in text

    [entry, summary] = preview_json(emulator, tmp_path, [record("downloads", data)], config=config)
    assert entry["sources"] == {"$time": "created_at", "$unique_id": "content hash", "$package": "package",
                                "$type": "constant", "$remote_address": "client.ip", "$user_agent": "user_agent"}
    assert {k: v for k, v in entry["event"].items() if not k.startswith("$")} == {"client.port": "443",
                                                                                 "country": "NL"}
    assert entry["event"]["$remote_address"] == "192.0.2.7" and entry["event"]["$type"] == "download"
    assert (entry["stream"], entry["namespace"], entry["record_position"], entry["input_line"]) == \
        ("downloads", None, 1, 1)
    assert summary["summary"]["records"] == 1 and summary["summary"]["stopped_at_limit"] is False


def test_a_record_with_an_old_time_is_shown_as_rejected_with_the_syncs_reason_and_hint(emulator, tmp_path):
    messages = [record("downloads", download(1, time="2020-01-01T00:00:00Z"))]
    text = text_of(preview(emulator, tmp_path, messages))
    assert ("Record #1 of stream 'downloads' (input line 1) would be rejected: $time more than 7 days before now; "
            "Scarf no longer imports events older than one week.\n  " + INVALID_RECORD_HINT + "\n") in text
    assert "0 would be sent, 1 would be rejected" in text
    [entry, _] = preview_json(emulator, tmp_path, messages)
    assert entry["rejected"] == {"field": "$time", "reason": "more than 7 days before now; Scarf no longer imports "
                                 "events older than one week", "hint": INVALID_RECORD_HINT}
    assert "event" not in entry
    # the same record, under `on_invalid_record: skip`: what a skipping sync does instead
    [skipped, _] = preview_json(emulator, tmp_path, messages, config=make_config(emulator, on_invalid_record="skip"))
    assert skipped["rejected"]["hint"].startswith("Under on_invalid_record: skip, a sync counts such records")


def test_a_record_without_an_artifact_is_rejected_and_a_single_target_needs_none(emulator, tmp_path):
    messages = [record("downloads", download(1, package=None))]
    [entry, _] = preview_json(emulator, tmp_path, messages)
    assert entry["rejected"]["field"] == "$package"
    assert "multi-artifact imports need $package or $tracking_pixel" in entry["rejected"]["reason"]
    single = make_config(emulator, target={"target_type": "package", "package_id": PACKAGE})
    [entry, summary] = preview_json(emulator, tmp_path, messages, config=single)
    assert "$package" not in entry["event"] and "$package" not in entry["sources"]
    assert "$package <- not sent: the import target names the artifact" in summary["summary"]["streams"][0]["plan"]


def test_an_append_dedup_stream_takes_its_ids_from_the_primary_key(emulator, tmp_path):
    raw_catalog = catalog("downloads", sync_mode="append_dedup", primary_key=[["id"]])
    messages = [record("downloads", download(5)), record("downloads", download(5, country="DE"))]
    entries = preview_json(emulator, tmp_path, messages, raw_catalog=raw_catalog)
    assert [e["sources"]["$unique_id"] for e in entries[:2]] == ["primary key id"] * 2
    assert entries[0]["event"]["$unique_id"] == entries[1]["event"]["$unique_id"]  # the key, not the content
    text = text_of(preview(emulator, tmp_path, messages, raw_catalog=raw_catalog))
    assert re.search(r"\n  \$unique_id +\"[0-9a-f-]{36}\"  <- primary key id\n", text)
    # and an `append` sync of the same stream hashes the content instead
    entries = preview_json(emulator, tmp_path, messages)
    assert entries[0]["sources"]["$unique_id"] == "content hash"
    assert entries[0]["event"]["$unique_id"] != entries[1]["event"]["$unique_id"]


def test_repeated_content_is_numbered_as_a_sync_numbers_it_and_a_state_starts_over(emulator, tmp_path):
    same = download(1)
    entries = preview_json(emulator, tmp_path, [record("downloads", same), record("downloads", same),
                                                stream_state("downloads", 1), record("downloads", same)])
    ids = [e["event"]["$unique_id"] for e in entries[:3]]
    assert ids[0] != ids[1] and ids[2] == ids[0]
    assert entries[1]["sources"]["$unique_id"].startswith("content hash, numbered: the same content as an earlier")
    assert entries[2]["sources"]["$unique_id"] == "content hash"
    assert [e["input_line"] for e in entries[:3]] == [1, 2, 4]


# --- odd input -----------------------------------------------------------------------------------------------


def test_unreadable_lines_and_unknown_streams_are_reported_by_line_never_quoted(emulator, tmp_path):
    messages = [
        f'{{"type": "RECORD", "record": {SECRET}\n'.encode(),
        record("uploads", {"time": now_iso(), "ip": SECRET}),
        record("uploads", {"time": now_iso(), "ip": SECRET}),  # one line per stream, at its first record
        b'\xef\xbb\xbf' + orjson.dumps(record("downloads", download(1))) + b"\n",  # a BOM, as a sync drops it
        b"[1, 2]\n",
        b"garbage " + orjson.dumps(record("downloads", download(2))) + b"\n",  # glued: the record still counts
        exact_line(record("downloads", {"time": now_iso(), "package": PACKAGE, "n": 10**30})),  # exact digits
    ]
    result = preview(emulator, tmp_path, messages)
    text = text_of(result)
    assert SECRET not in text and SECRET.encode() not in result.stderr
    assert f"Input line 1 is not valid JSON. {BAD_LINE_HINT}\n" in text
    assert ("Input line 2 is a record of stream 'uploads', which is not in the configured catalog: a sync ignores "
            "that stream's records.\n") in text
    assert "Input line 3" not in text
    assert "Record #1 of stream 'downloads' (input line 4) would be sent:" in text
    assert f"Input line 5 is not an Airbyte message (no known `type`). {BAD_LINE_HINT}\n" in text
    assert "Input line 6 is not valid JSON before the Airbyte message glued to its end." in text
    assert "Record #2 of stream 'downloads' (input line 6) would be sent:" in text
    assert f'    n  "{10**30}"\n' in text
    assert ("Previewed 3 records (the whole input): 3 would be sent, 0 would be rejected; 3 unreadable lines; "
            "1 stream not in the catalog. Nothing was sent to Scarf.") in text

    entries = preview_json(emulator, tmp_path, messages)
    assert entries[0] == {"unreadable_line": {"input_line": 1, "reason": "is not valid JSON", "hint": BAD_LINE_HINT}}
    assert entries[1] == {"unknown_stream": {"stream": "uploads", "namespace": None, "input_line": 2}}
    assert entries[-1]["summary"]["unreadable_lines"] == 3 and entries[-1]["summary"]["unknown_streams"] == 1


def test_the_limit_stops_reading_early(emulator, tmp_path):
    messages = [record("downloads", download(n)) for n in range(25)]
    messages.insert(5, b"not json, and after the limit\n")
    entries = preview_json(emulator, tmp_path, messages, "--limit", "5")
    assert [e.get("record_position") for e in entries] == [1, 2, 3, 4, 5, None]
    assert entries[-1]["summary"] == {**entries[-1]["summary"], "records": 5, "would_send": 5, "limit": 5,
                                      "stopped_at_limit": True, "unreadable_lines": 0}
    text = text_of(preview(emulator, tmp_path, messages, "--limit", "5"))
    assert "Previewed 5 records (--limit 5 reached; the rest of the input was not read)" in text
    assert text.count("would be sent:") == 5
    default = preview_json(emulator, tmp_path, messages)  # 10 records, the bad line among them, the summary
    assert len(default) == 12 and default[-1]["summary"]["records"] == 10
    # the reader really stops: a source that never ends its output is previewed all the same
    config = write_json(tmp_path / "config.json", make_config(emulator))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    endless = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nline = sys.argv[1] + '\\n'\nwhile True:\n"
         "    sys.stdout.write(line); sys.stdout.flush(); time.sleep(0.01)",
         orjson.dumps(record("downloads", download(1))).decode()], stdout=subprocess.PIPE)
    try:
        assert endless.stdout is not None
        done = subprocess.run([*connector(), "preview", "--config", config, "--catalog", raw_catalog, "--limit", "3"],
                              stdin=endless.stdout, capture_output=True, timeout=30, cwd=ROOT)
    finally:
        endless.kill()
        endless.wait()
    assert done.returncode == 0 and done.stdout.decode().count("would be sent:") == 3


def connector() -> list[str]:
    return [sys.executable, "-c", "from destination_scarf.airbyte.cli import run; run()"]


def test_limit_must_be_positive_and_bad_configs_fail_on_stderr(emulator, tmp_path):
    assert preview(emulator, tmp_path, [], "--limit", "0").returncode == 2
    bad = preview(emulator, tmp_path, [], config=make_config(emulator, api_token=TOKEN, owner="not an owner!"))
    assert bad.returncode == 1 and bad.stdout == b""
    assert bad.stderr.decode().startswith("error: The destination's configuration is not valid: owner must be")
    wrong_catalog = preview(emulator, tmp_path, [], raw_catalog=catalog("downloads", sync_mode="overwrite"))
    assert wrong_catalog.returncode == 1 and b"asks for destination sync mode 'overwrite'" in wrong_catalog.stderr
    missing = run_connector(["preview", "--config", str(tmp_path / "config.json"), "--catalog",
                             str(tmp_path / "nope.json")])
    assert missing.returncode == 1 and b"Cannot read the configured catalog" in missing.stderr
    assert TOKEN.encode() not in bad.stderr + wrong_catalog.stderr + missing.stderr


def test_preview_never_imports_the_cdk(emulator, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    code = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('CDK LOADED' if 'airbyte_cdk' in "
            "sys.modules else 'NO CDK')); from destination_scarf.airbyte.cli import run; run()")
    result = subprocess.run([sys.executable, "-c", code, "preview", "--config", config, "--catalog", raw_catalog],
                            input=b"".join(lines([record("downloads", download(1))])), capture_output=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0 and result.stderr == b"NO CDK"
    assert_only_lists_read(emulator)


# --- the text layout and --json say the same -----------------------------------------------------------------


def parse_text(text: str) -> list[dict[str, Any]]:
    """The text layout read back into --json's objects (for records; other lines kept as text)."""
    decoder = json.JSONDecoder()
    blocks = text.split("\n\n")
    parsed: list[dict[str, Any]] = []
    for block in blocks[:-1]:
        head, *rest = block.split("\n")
        match = re.fullmatch(r"Record #(\d+) of stream '(.+)' \(input line (\d+)\) would be (sent:|rejected: (.*))",
                             head)
        if match is None:
            parsed.append({"line": head})
            continue
        entry: dict[str, Any] = {"stream": match[2], "record_position": int(match[1]), "input_line": int(match[3])}
        if match[5] is not None:
            field, reason = match[5].split(" ", 1)
            entry["rejected"] = {"field": field, "reason": reason.removesuffix("."), "hint": rest[0].strip()}
        else:
            event: dict[str, Any] = {}
            sources: dict[str, str] = {}
            for line in rest:
                if line.startswith("  custom variables"):
                    continue
                name, remainder = line.strip().split(" ", 1)
                value, end = decoder.raw_decode(remainder.strip())
                event[name] = value
                tail = remainder.strip()[end:]
                if tail:
                    sources[name] = tail.strip().removeprefix("<- ")
            entry.update(event=event, sources=sources)
        parsed.append(entry)
    parsed.append({"summary": blocks[-1]})
    return parsed


def test_json_says_what_the_text_says(emulator, tmp_path):
    raw_catalog = {"streams": catalog("downloads", sync_mode="append_dedup", primary_key=[["id"]])["streams"]
                   + catalog("views")["streams"]}
    config = make_config(emulator, field_mappings=[{"scarf_field": "$referrer", "source_field": "ref.url"}])
    messages = [record("downloads", download(1, ref={"url": "https://example.com/a b"}, note="line\nbreak")),
                record("views", download(2, package=None)), b"{oops\n", record("other", {}),
                record("views", download(3, headers={"Accept": ["a", "b"]}, **{"$referer": "typo"})),
                record("downloads", download(4, time="1999-01-01")), record("views", download(5))]
    text = text_of(preview(emulator, tmp_path, messages, "--limit", "4", config=config, raw_catalog=raw_catalog))
    entries = preview_json(emulator, tmp_path, messages, "--limit", "4", config=config, raw_catalog=raw_catalog)
    parsed = parse_text(text)
    assert len(parsed) == len(entries)
    for shown, entry in zip(parsed, entries, strict=True):
        if "record_position" in entry:
            assert shown == {k: v for k, v in entry.items() if k != "namespace"}
        elif "summary" in entry:
            summary = entry["summary"]
            assert (f"Previewed {summary['records']} records (--limit 4 reached; the rest of the input was not "
                    f"read): {summary['would_send']} would be sent, {summary['would_reject']} would be rejected; "
                    "1 unreadable line; 1 stream not in the catalog.") in shown["summary"]
            for stream in summary["streams"]:
                assert f"Stream '{stream['stream']}' maps to Scarf as: {stream['plan']}" in shown["summary"]
            assert summary["streams"][1]["dropped_fields"] == ["$referer"]
            assert "Stream 'views' drops 1 `$` field that is not a Scarf field: $referer" in shown["summary"]
        else:
            [(kind, detail)] = entry.items()
            assert shown["line"].startswith(f"Input line {detail['input_line']} ")
            if kind == "unreadable_line":
                assert shown["line"] == f"Input line {detail['input_line']} {detail['reason']}. {detail['hint']}"
            else:
                assert kind == "unknown_stream" and f"stream '{detail['stream']}'" in shown["line"]
    assert [e["event"]["$headers"] for e in entries if "$headers" in e.get("event", {})] == \
        [[{"name": "Accept", "value": "a"}, {"name": "Accept", "value": "b"}]]


# --- the preview's events are what a sync sends --------------------------------------------------------------


@pytest.mark.parametrize(("sync_mode", "id_mode"), [("append", "deterministic"), ("append_dedup", "deterministic"),
                                                    ("append", "as_mapped")])
def test_the_previewed_events_are_the_ones_write_sends(emulator, tmp_path, sync_mode, id_mode):
    raw_catalog = {"streams": catalog("downloads", sync_mode=sync_mode, primary_key=[["id"]])["streams"]
                   + catalog("views")["streams"]}
    config = make_config(emulator, field_mappings=[{"scarf_field": "$type", "constant": "download",
                                                    "stream": "downloads"},
                                                   {"scarf_field": "$unique_id", "source_field": "order.id"}],
                         on_invalid_record="skip", unique_id_mode=id_mode)
    same = download(7)
    messages: list[Any] = []
    for n in range(12):
        order = {"order": {"id": f"order-{n}"}} if n % 4 == 0 else {}
        messages.append(record("downloads" if n % 3 else "views", download(n, geo={"city": "Utrecht", "n": n},
                                                                           **order)))
    messages += [record("downloads", same), record("downloads", same), stream_state("downloads", 1),
                 record("downloads", same), record("views", same), record("views", same),
                 record("downloads", download(99, time="2001-01-01T00:00:00Z")),  # rejected by both
                 exact_line(record("views", {"time": now_iso(), "package": PACKAGE, "big": 2**70, "f": 1.5}))]
    messages.append(stream_state("downloads", 2))
    entries = preview_json(emulator, tmp_path, messages, "--limit", "100", config=config, raw_catalog=raw_catalog)
    previewed = [e["event"] for e in entries if "event" in e]
    assert len(previewed) == 18 and sum("rejected" in e for e in entries) == 1
    assert any("numbered" in e["sources"]["$unique_id"] for e in entries if "sources" in e)  # views' repeat
    mapped = [e for e in entries if e.get("sources", {}).get("$unique_id", "").startswith("mapped field order.id")]
    assert len(mapped) == 3
    if id_mode == "as_mapped":  # the value itself
        assert [(e["event"]["$unique_id"], e["sources"]["$unique_id"]) for e in mapped] == \
            [(f"order-{n}", "mapped field order.id, as given") for n in (0, 4, 8)]
    else:  # a hash of it
        assert {e["sources"]["$unique_id"] for e in mapped} == {"mapped field order.id"}
        assert not {e["event"]["$unique_id"] for e in mapped} & {"order-0", "order-4", "order-8"}

    sync = run_connector(["write", "--config", str(tmp_path / "config.json"), "--catalog",
                          str(tmp_path / "catalog.json")], stdin=b"".join(lines(messages)))
    assert sync.returncode == 0, sync.stdout[-2000:]
    stored = emulator.events(OWNER)
    by_id = {event["$unique_id"]: event for event in stored}
    assert len(by_id) == len({e["$unique_id"] for e in previewed})  # ids that repeat replace each other in both
    assert {e["$unique_id"]: e for e in previewed} == by_id


# --- characters a terminal acts on -----------------------------------------------------------------------------

#: A CSI (U+009B, which a terminal takes for ESC [), DEL and a right-to-left override.
TERMINAL_CONTROLS = {"\u009b": b"\\u009b", "\u007f": b"\\u007f", "\u202e": b"\\u202e"}


@pytest.mark.parametrize("as_json", [False, True])
def test_values_with_c1_controls_del_and_direction_overrides_are_escaped(emulator, tmp_path, as_json):
    tricky = "a\u009b2Jb\u007fc\u202ed"
    agent = "pip\u009b31m/24"
    key = "note\u009bx"
    messages = [record("downloads", download(1, user_agent=agent, **{key: tricky}))]
    result = preview(emulator, tmp_path, messages, *(["--json"] if as_json else []))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout
    for raw, escaped in TERMINAL_CONTROLS.items():
        assert raw.encode() not in out  # never the character itself, whatever its encoding
        assert escaped in out
    if as_json:
        [entry, _summary] = messages_of(out)
        assert entry["event"][key] == tricky and entry["event"]["$user_agent"] == agent  # the same JSON values
    else:
        [shown, _summary] = parse_text(out.decode())
        assert shown["event"]["$user_agent"] == agent
        assert shown["event"][json.dumps(key)] == tricky  # a name with a control is shown as JSON text too
