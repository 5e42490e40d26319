"""A small run of the Scarf-bound scenario: it runs end to end, two policies side by side, and counts add up.

Counts only, never a time: timings on a shared test machine say nothing.
"""

from __future__ import annotations

import json

import pytest

from bench.__main__ import main as bench_main
from bench.scarf_bound import KINDS, parse_policy


def test_the_scenario_runs_two_policies_and_counts_every_call(tmp_path):
    # run_once raises SystemExit unless the sync exits 0, echoes every state and every event arrives done.
    results = bench_main(["--scarf-bound", "--imports", "4", "--import-seconds", "0.3", "--slots", "2",
                          "--events-per-import", "150", "--policy", "current",
                          "--policy", 'patient={"import_timeout_minutes": 30}', "--results", str(tmp_path), "--quiet"])
    scenario = results["scenario"]
    assert (scenario["imports"], scenario["records"], scenario["ideal_s"]) == (4, 600, pytest.approx(0.6))
    assert list(results["policies"]) == ["current", "patient"]
    for name, policy in results["policies"].items():
        [run] = policy["runs"]
        assert run["imports"] == 4 and run["events"] == 600
        calls = run["calls"]
        assert set(calls["by_kind"]) == set(KINDS)
        assert calls["total"] == sum(calls["by_kind"].values())
        assert calls["by_kind"]["import-post"] == 4  # one upload per import: nothing failed
        assert calls["by_id_reads_per_import"]["min"] >= 1  # every import was read at least once
        assert calls["per_import"] == pytest.approx(calls["total"] / 4)
        assert run["ratio"] == pytest.approx(run["wall_s"] / run["ideal_s"])
        assert run["handover_s"] is not None and run["startup_s"] is not None
        assert policy["summary"]["policy"] == name
    assert results["policies"]["patient"]["summary"]["config_extra"] == {"import_timeout_minutes": 30}
    assert json.loads((tmp_path / "scarf-bound.json").read_text())["scenario"]["slots"] == 2
    text = (tmp_path / "scarf-bound.md").read_text()
    assert "| current | 4 |" in text and "| patient | 4 |" in text
    assert not (tmp_path / "latest.json").exists()  # the main benchmark's results are not touched


def test_policies_are_name_and_json_object():
    assert parse_policy("current") == ("current", {})
    assert parse_policy('list={"a": 1}') == ("list", {"a": 1})
    for bad in ("=1", 'x=[1]', "x={"):
        with pytest.raises(ValueError):
            parse_policy(bad)
