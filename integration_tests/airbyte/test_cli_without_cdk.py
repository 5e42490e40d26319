"""`write` runs without importing the Airbyte CDK, yet keeps its conventions: the CDK's secret filter and
its TRACE format, checked here against the CDK itself."""

from __future__ import annotations

import subprocess
import sys

import orjson
from airbyte_cdk.models import AirbyteMessageSerializer
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_scarf.airbyte import secret_filter as secrets
from destination_scarf.airbyte.protocol import trace_message
from destination_scarf.errors import ScarfConfigError, ScarfTransientError
from support import ROOT, TOKEN, catalog, lines, make_config, messages_of, write_json
from sync_helpers import STREAM, downloads_with_states


def _cdk_trace(error: BaseException) -> dict:
    traced = error if isinstance(error, AirbyteTracedException) else AirbyteTracedException.from_exception(error)
    return AirbyteMessageSerializer.dump(traced.as_sanitized_airbyte_message())


def _cdk_error_of(error: ScarfConfigError | ScarfTransientError) -> AirbyteTracedException:
    return AirbyteTracedException(internal_message=error.internal_message, message=error.message,
                                  failure_type=error.failure_type)


def _without_time(message: dict) -> dict:
    trace = dict(message["trace"])
    assert isinstance(trace.pop("emitted_at"), (int, float))
    return {**message, "trace": trace}


def test_the_trace_is_the_cdks_for_our_errors_and_for_bugs():
    secrets.update_secrets([TOKEN])
    for error in (ScarfConfigError(f"bad token {TOKEN} here", internal="internal detail"),
                  ScarfTransientError("Scarf is down")):
        try:
            raise error
        except type(error) as raised:
            ours = trace_message(raised)
            theirs = _cdk_trace(_cdk_error_of(raised))
        assert {k: v for k, v in _without_time(ours)["trace"]["error"].items() if k != "stack_trace"} == \
            {k: v for k, v in _without_time(theirs)["trace"]["error"].items() if k != "stack_trace"}
        assert TOKEN not in orjson.dumps(ours).decode()
    try:
        raise KeyError("a bug")
    except KeyError as bug:
        ours, theirs = trace_message(bug), _cdk_trace(bug)
    assert _without_time(ours) == _without_time(theirs)  # the stack trace included


def test_the_secret_filter_is_the_cdks_own_file():
    import airbyte_cdk.utils.airbyte_secrets_utils as cdk_secrets

    assert secrets.source_file() == cdk_secrets.__file__


def test_write_never_imports_the_cdk_and_still_filters_secrets(emulator, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator, api_token=TOKEN + "\n"))
    raw_catalog = write_json(tmp_path / "catalog.json", catalog(STREAM))
    code = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('CDK LOADED' if 'airbyte_cdk' in "
            "sys.modules else 'NO CDK')); from destination_scarf.airbyte.cli import run; run()")
    result = subprocess.run([sys.executable, "-c", code, "write", "--config", config, "--catalog", raw_catalog],
                            input=b"".join(lines(downloads_with_states(10, every=10))), capture_output=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stderr.endswith(b"NO CDK")
    assert [m["type"] for m in messages_of(result.stdout)].count("STATE") == 1
    # and a failing one: its TRACE, the last line, in the CDK's shape, without the token
    bad = write_json(tmp_path / "bad.json", make_config(emulator, rejected_records_path=f"/nope/{TOKEN}/r",
                                                        on_invalid_record="skip"))
    failed = subprocess.run([sys.executable, "-c", code, "write", "--config", bad, "--catalog", raw_catalog],
                            input=b"", capture_output=True, timeout=60, cwd=ROOT)
    assert failed.returncode == 1 and failed.stderr.endswith(b"NO CDK")
    trace = messages_of(failed.stdout)[-1]
    assert trace["type"] == "TRACE" and trace["trace"]["type"] == "ERROR"
    assert set(trace["trace"]["error"]) == {"message", "internal_message", "stack_trace", "failure_type"}
    assert trace["trace"]["error"]["failure_type"] == "config_error" and "****" in trace["trace"]["error"]["message"]
    assert TOKEN.encode() not in failed.stdout + failed.stderr
