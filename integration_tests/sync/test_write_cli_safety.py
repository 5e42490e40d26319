"""The real command line under signals, bad tokens, bad paths and kills: it exits by itself, says what
happened, and never prints the token.

Each test runs the console entry point in a subprocess against the emulator, as Airbyte or `docker run`
would. Waits are conditions on what the emulator has seen, with generous timeouts as hang guards only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import (
    OWNER,
    TOKEN,
    catalog,
    make_config,
    messages_of,
    new_emulator,
    run_connector,
    wait_for,
    write_json,
)
from sync_helpers import STREAM, Connector, downloads_with_states, our_imports, polled


def test_sigterm_twice_exits_by_itself_with_a_trace_naming_aborted_and_unabortable_imports(emulator, tmp_path):
    config = make_config(emulator, batch_max_events=20, max_concurrent_imports=2)
    connector = Connector(tmp_path, config, catalog(STREAM))
    try:
        emulator.set_rate(1)  # the imports stay in flight
        emulator.silence_next(1, only="abort")  # one abort never gets an answer
        connector.send(downloads_with_states(40, every=20))
        in_flight = wait_for(lambda: our_imports(emulator) if len(our_imports(emulator)) == 2 else None,
                             "two imports in flight")
        wait_for(lambda: all(polled(emulator, i["id"]) for i in in_flight), "the connector polling them")
        connector.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: any("Received SIGTERM" in (m.get("log") or {}).get("message", "")
                             for m in connector.messages), "the first signal to be seen")
        connector.proc.send_signal(signal.SIGTERM)  # a second one is ignored, never fatal
        code = connector.finish(timeout=40)
    finally:
        emulator.release_silenced()
        connector.kill()

    assert code == 1, connector.messages[-3:]  # exited by itself, not killed by a signal (-15)
    logs = [m["log"]["message"] for m in connector.messages if m["type"] == "LOG"]
    assert any("again: ignored" in text for text in logs)
    last = connector.messages[-1]
    assert last["type"] == "TRACE" and last["trace"]["error"]["failure_type"] == "transient_error"
    message = last["trace"]["error"]["message"]
    assert "cancelled" in message and "Aborted import(s)" in message and "Could not abort" in message
    assert all(i["id"] in message for i in in_flight)
    statuses = sorted(emulator.get_import(OWNER, i["id"])["status"] for i in in_flight)
    assert statuses == ["aborted", "importing"]  # the silenced abort never reached the import
    assert connector.states() == []


BAD_TOKENS = {
    "zero-width space": TOKEN[:5] + "\u200b" + TOKEN[5:],
    "byte-order mark": "\ufeff" + TOKEN,
    "line break inside": TOKEN[:5] + "\n" + TOKEN[5:],
    "not latin-1": TOKEN + "\u20ac",
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_token_with_characters_no_header_can_carry_is_a_config_error_that_never_echoes_it(emulator, tmp_path, name):
    token = BAD_TOKENS[name]
    config = write_json(tmp_path / "config.json", make_config(emulator, api_token=token))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog(STREAM))
    check = run_connector(["check", "--config", config])
    write = run_connector(["write", "--config", config, "--catalog", raw_catalog],
                          stdin=b"".join(downloads_lines(5)))

    [status] = [m for m in messages_of(check.stdout) if m["type"] == "CONNECTION_STATUS"]
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "api_token" in status["connectionStatus"]["message"] and "position" in status["connectionStatus"]["message"]
    assert write.returncode == 1
    trace = messages_of(write.stdout)[-1]["trace"]["error"]
    assert trace["failure_type"] == "config_error" and "api_token" in trace["message"]
    for output in (check.stdout, check.stderr, write.stdout, write.stderr):
        text = output.decode("utf-8", "replace")
        assert token not in text and TOKEN not in text and token.encode("unicode_escape").decode() not in text
    assert emulator.requests == []


def downloads_lines(count: int) -> list[bytes]:
    from support import lines
    return lines(downloads_with_states(count, every=count))


def test_a_token_with_a_trailing_newline_is_stripped_and_works(emulator, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator, api_token=f"  {TOKEN}\n"))
    write = run_connector(["write", "--config", config, "--catalog", write_json(tmp_path / "c.json", catalog(STREAM))],
                          stdin=b"".join(downloads_lines(5)))
    assert write.returncode == 0, write.stdout[-1000:]
    assert [m["type"] for m in messages_of(write.stdout)].count("STATE") == 1


def test_the_final_trace_passes_the_secret_filter(emulator, tmp_path):
    # A message that would carry the token (here through a path the user chose): the TRACE shows **** instead.
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=f"/nonexistent/{TOKEN}/r.ndjson")
    write = run_connector(["write", "--config", write_json(tmp_path / "config.json", config),
                           "--catalog", write_json(tmp_path / "catalog.json", catalog(STREAM))],
                          stdin=b"".join(downloads_lines(5)))
    assert write.returncode == 1
    trace = messages_of(write.stdout)[-1]
    assert trace["type"] == "TRACE" and "rejected_records_path" in trace["trace"]["error"]["message"]
    assert "****" in trace["trace"]["error"]["message"]
    assert TOKEN not in write.stdout.decode() and TOKEN not in write.stderr.decode()
    assert emulator.requests == []  # it failed before reading input or calling Scarf


@pytest.mark.parametrize("case", ["folder", "missing_folder"])
def test_check_refuses_an_unusable_rejected_records_path(emulator, tmp_path, case):
    path = tmp_path if case == "folder" else tmp_path / "nope" / "r.ndjson"
    config = make_config(emulator, on_invalid_record="skip", rejected_records_path=str(path))
    check = run_connector(["check", "--config", write_json(tmp_path / "config.json", config)])
    [status] = [m for m in messages_of(check.stdout) if m["type"] == "CONNECTION_STATUS"]
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "rejected_records_path" in status["connectionStatus"]["message"]


def test_a_missing_catalog_file_is_reported_as_such(emulator, tmp_path):
    write = run_connector(["write", "--config", write_json(tmp_path / "config.json", make_config(emulator)),
                           "--catalog", str(tmp_path / "missing.json")])
    assert write.returncode == 1
    error = messages_of(write.stdout)[-1]["trace"]["error"]
    assert error["failure_type"] == "config_error" and "configured catalog" in error["message"]


def test_a_killed_syncs_spool_folder_is_removed_by_the_next_sync(tmp_path):
    emulator = new_emulator(events_per_second=1)
    emulator.start()
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    env = {**os.environ, "TMPDIR": str(spool_root), "PYTHONUNBUFFERED": "1"}
    config = write_json(tmp_path / "config.json", make_config(emulator, batch_max_events=10))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog(STREAM))
    try:
        from support import connector_command
        proc = subprocess.Popen(connector_command("write", "--config", config, "--catalog", raw_catalog),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        proc.stdin.write(b"".join(downloads_lines(10)))
        proc.stdin.flush()
        wait_for(lambda: our_imports(emulator), "the import")
        [left] = list(spool_root.glob("destination-scarf-*"))
        proc.kill()
        proc.wait(10)
        assert left.exists()  # SIGKILL leaves it: nothing runs after the kill
        emulator.set_rate(None)
        rerun = subprocess.run(connector_command("write", "--config", config, "--catalog", raw_catalog),
                               input=b"".join(downloads_lines(10)), capture_output=True, env=env, timeout=60)
        assert rerun.returncode == 0, rerun.stdout[-1000:]
        assert not left.exists()
        assert list(spool_root.glob("destination-scarf-*")) == []  # and the re-run cleaned up after itself
        assert any("left behind" in (m.get("log") or {}).get("message", "") for m in messages_of(rerun.stdout))
    finally:
        emulator.stop()


def test_a_running_syncs_spool_folder_is_never_removed(tmp_path):
    from destination_scarf.sync.batches import Spool, remove_stale

    live = Spool(root=str(tmp_path), gzip_level=2, stream_labels=[])
    stale = Spool(root=str(tmp_path), gzip_level=2, stream_labels=[])
    os.close(stale._lock_fd)  # as if its process had died: the kernel drops the lock
    stale._lock_fd = -1
    (stale.path / "batch-000001.ndjson.gz").write_bytes(b"record data")
    old_style = tmp_path / "destination-scarf-0.1.0-style"
    old_style.mkdir()
    os.utime(old_style, (0, 0))
    removed = remove_stale(str(tmp_path))
    assert sorted(removed) == sorted([stale.path, old_style])
    assert live.path.exists()
    live.close()
    assert not live.path.exists()



def _locked_by_someone(folder) -> bool:
    """Whether another holder has the folder's lock (an exclusive lock cannot be taken from a new descriptor)."""
    import errno
    import fcntl

    fd = os.open(folder / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        assert error.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        return True
    finally:
        os.close(fd)
    return False


def test_a_new_spool_folder_without_its_lock_is_removed_once_a_minute_old(tmp_path):
    # What a sync killed between making its folder and locking it leaves: an empty, unlocked, new-named folder.
    from destination_scarf.sync.batches import remove_stale

    left = tmp_path / ".destination-scarf-new-k1ll3d"
    left.mkdir()
    old_style = tmp_path / "destination-scarf-0.1.0-style"  # unlocked too, but a folder of 0.1.0: kept for a day
    old_style.mkdir()
    changed = 1_900_000_000.0
    for folder in (left, old_style):
        os.utime(folder, (changed, changed))

    assert remove_stale(str(tmp_path), now=changed + 59) == []  # it may be a sync starting this very moment
    assert left.exists()
    assert remove_stale(str(tmp_path), now=changed + 61) == [left]
    assert not left.exists() and old_style.exists()


def test_a_locked_folder_is_never_removed_however_old(tmp_path):
    import fcntl

    from destination_scarf.sync.batches import Spool, remove_stale

    live = Spool(root=str(tmp_path), gzip_level=2, stream_labels=[])
    starting = tmp_path / ".destination-scarf-new-st4rt"  # a sync between locking its new folder and naming it
    starting.mkdir()
    lock_fd = os.open(starting / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        for folder in (live.path, starting):
            os.utime(folder, (0, 0))
            os.utime(folder / ".lock", (0, 0))
        assert remove_stale(str(tmp_path), now=time.time() + 365 * 86400) == []
        assert live.path.exists() and starting.exists()
    finally:
        os.close(lock_fd)
        live.close()
    assert not live.path.exists()
    assert remove_stale(str(tmp_path)) == [starting]  # its lock was dropped: its sync is gone


def test_a_spool_folder_is_locked_before_it_gets_its_name(tmp_path, monkeypatch):
    from destination_scarf.sync.batches import PREFIX, Spool, remove_stale

    rename = os.rename
    renamed: list[tuple[str, str]] = []

    def checked_rename(source, target):
        source, target = Path(source), Path(target)
        if target.name.startswith(PREFIX):
            # The instant a cleaner could first judge it under its final name: it is locked already, and a
            # cleaner running right then (with a clock a year ahead) keeps it.
            assert source.name.startswith(".destination-scarf-new-") and not target.exists()
            assert _locked_by_someone(source)
            assert remove_stale(str(tmp_path), now=time.time() + 365 * 86400) == []
            renamed.append((source.name, target.name))
        return rename(source, target)

    monkeypatch.setattr(os, "rename", checked_rename)
    spool = Spool(root=str(tmp_path), gzip_level=2, stream_labels=[])
    try:
        assert renamed and renamed[-1][1] == spool.path.name
        assert spool.path.name.startswith(PREFIX) and _locked_by_someone(spool.path)
        assert [p.name for p in tmp_path.iterdir()] == [spool.path.name]  # nothing left under the new name
    finally:
        spool.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["wrong-token", "wrong-owner"])
def test_write_checks_the_token_and_owner_before_reading_input(emulator, tmp_path, case):
    config = make_config(emulator, **({"api_token": "not-a-token-of-ours"} if case == "wrong-token"
                                      else {"owner": "nobody-here"}))
    write = run_connector(["write", "--config", write_json(tmp_path / "config.json", config),
                           "--catalog", write_json(tmp_path / "catalog.json", catalog(STREAM))],
                          stdin=b"".join(downloads_lines(5)))
    assert write.returncode == 1
    error = messages_of(write.stdout)[-1]["trace"]["error"]
    assert error["failure_type"] == "config_error"
    assert ("token" in error["message"]) if case == "wrong-token" else ("nobody-here" in error["message"])
    assert [r.category for r in emulator.requests] == ["import-get"]  # one cheap read, no upload


def test_a_refresh_that_truncates_is_warned_about(emulator, tmp_path):
    raw_catalog = catalog(STREAM)
    raw_catalog["streams"][0].update(generation_id=3, minimum_generation_id=3, sync_id=7)
    write = run_connector(["write", "--config", write_json(tmp_path / "config.json", make_config(emulator)),
                           "--catalog", write_json(tmp_path / "catalog.json", raw_catalog)],
                          stdin=b"".join(downloads_lines(5)))
    assert write.returncode == 0
    logs = [m["log"] for m in messages_of(write.stdout) if m["type"] == "LOG"]
    warnings = [log["message"] for log in logs if "replaces its data" in log["message"]]
    assert len(warnings) == 1 and "generation 3" in warnings[0] and "cannot be removed" in warnings[0]
    assert [log["level"] for log in logs if "replaces its data" in log["message"]] == ["WARN"]
