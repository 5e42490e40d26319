"""Replaying rejected records with the README's recipe, as written: both kinds of entries (a record refused before
upload, an event Scarf failed) carry the original record message, so one `jq` pipeline into a real `write` through
the command line imports the fixed records, each exactly once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support import (
    OWNER,
    ROOT,
    catalog,
    download,
    make_config,
    messages_of,
    now_iso,
    record,
    run_connector,
    stream_state,
    write_json,
)
from sync_helpers import STREAM, UNKNOWN_PACKAGE, WAIT_SECONDS

pytestmark = pytest.mark.skipif(
    shutil.which("jq") is None,
    reason="jq is not installed (.ci/run installs it): the README's replay recipe pipes the rejected records "
           "through jq")


def readme_recipe() -> str:
    """The replay recipe of the README's "Rejected records" section: its `sh` block that runs jq."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Rejected records", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    [recipe] = [block for block in blocks if "jq " in block]
    return recipe


def test_the_readmes_recipe_replays_refused_records_and_failed_events_each_exactly_once(emulator, tmp_path):
    rejected = tmp_path / "rejected.ndjson"
    config = make_config(emulator, on_invalid_record="skip", on_failed_events="warn",
                         rejected_records_path=str(rejected), batch_max_events=4)
    write_json(tmp_path / "config.json", config)
    write_json(tmp_path / "catalog.json", catalog(STREAM))
    good = [record(STREAM, download(n)) for n in range(1, 7)]
    refused = record(STREAM, download(7, time="not a time"))  # refused before upload: fixed in the file
    failed = record(STREAM, download(8, package=UNKNOWN_PACKAGE))  # Scarf fails it: its cause is fixed in Scarf
    lines = [orjson.dumps(m) for m in [*good[:3], refused, *good[3:], failed, stream_state(STREAM, 1)]]
    lines.insert(2, b"{not json")  # an unreadable line: kept as an entry without a message, never replayed
    first = run_connector(["write", "--config", str(tmp_path / "config.json"), "--catalog",
                           str(tmp_path / "catalog.json")], stdin=b"\n".join(lines) + b"\n")
    assert first.returncode == 0, first.stderr.decode()[-2000:]
    assert [m["state"]["destinationStats"] for m in messages_of(first.stdout) if m["type"] == "STATE"] == [
        {"recordCount": 8, "rejectedRecordCount": 2}]
    assert emulator.wait_idle(WAIT_SECONDS)
    assert sorted(int(e["id"]) for e in emulator.events(OWNER)) == [1, 2, 3, 4, 5, 6]

    entries = [orjson.loads(line) for line in rejected.read_bytes().splitlines()]
    by_reason = {("failed" if "import_id" in e else "refused" if "field" in e else "unreadable"): e for e in entries}
    assert len(entries) == 3 and set(by_reason) == {"failed", "refused", "unreadable"}
    # Both kinds of records carry their message verbatim; the failed event also the event as sent.
    assert by_reason["refused"]["message"] == refused
    assert by_reason["failed"]["message"] == failed and by_reason["failed"]["event"]["id"] == "8"
    assert "message" not in by_reason["unreadable"]

    # The user fixes what was wrong: the refused record's time in the file, the failed one's package in Scarf.
    fixed_time = now_iso(-60)
    by_reason["refused"]["message"]["record"]["data"]["time"] = fixed_time
    rejected.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in entries))
    emulator.add_package(OWNER, UNKNOWN_PACKAGE)

    recipe = readme_recipe()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    replay = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=tmp_path, env=env, capture_output=True,
                            timeout=120)
    assert replay.returncode == 0, (recipe, replay.stderr.decode()[-2000:])
    assert emulator.wait_idle(WAIT_SECONDS)
    events = emulator.events(OWNER)
    assert sorted(int(e["id"]) for e in events) == [1, 2, 3, 4, 5, 6, 7, 8]  # the fixed two, once each
    assert len({e["$unique_id"] for e in events}) == 8
    assert next(e for e in events if e["id"] == "7")["$time"].startswith(fixed_time[:19])
    assert not [line for line in rejected.read_bytes().splitlines() if line.strip()]  # the replay rejected none

    # Replaying the same records again adds nothing: their ids are deterministic.
    again = subprocess.run(["bash", "-euo", "pipefail", "-c", recipe.splitlines()[-1]], cwd=tmp_path, env=env,
                           capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == 8


@pytest.mark.parametrize("options, kept", [
    ({"on_failed_events": "warn", "rejected_records_path": "REJECTS"}, True),
    ({"on_failed_events": "fail", "rejected_records_path": "REJECTS"}, False),  # failed events stop the sync
    ({"on_failed_events": "warn"}, False),  # nowhere to keep entries: only counted
])
def test_input_lines_are_kept_beside_a_batch_only_when_a_failed_event_could_need_them(emulator, tmp_path, options,
                                                                                       kept):
    from support import make_writer

    options = {k: str(tmp_path / "rejected.ndjson") if v == "REJECTS" else v for k, v in options.items()}
    writer = make_writer(emulator, make_config(emulator, **options), catalog(STREAM), spool_root=str(tmp_path))
    seen: list[bool] = []
    spooled = (orjson.dumps(record(STREAM, download(n))) + b"\n" for n in range(3))

    def chunks():
        yield from spooled
        seen.append(any(tmp_path.glob("destination-scarf-*/batch-*.messages.gz")))

    assert list(writer.write(chunks())) == []
    assert seen == [kept]
