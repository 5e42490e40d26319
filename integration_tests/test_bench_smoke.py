"""A small run of the benchmark, both data variants: it runs end to end and every program sees every record.

Counts and sizes only, never a time: timings on a shared test machine say nothing.
"""

from __future__ import annotations

import datetime
import json

import orjson

from bench import data
from bench.__main__ import main


def test_the_benchmark_runs_both_variants_and_the_counts_match(tmp_path):
    # run_a / run_b / run_c raise SystemExit unless every state is echoed and every event arrives.
    results = main(["--n1", "5000", "--n2", "12000", "--big", "15000", "--runs", "1", "--pipelining-records", "6000",
                    "--budget-records", "2000", "--shapes-records", "6000", "--scarf-bound-imports", "4",
                    "--scarf-bound-import-seconds", "0.3", "--scarf-bound-slots", "2",
                    "--scarf-bound-events-per-import", "150", "--results", str(tmp_path), "--quiet"])
    assert set(results["variants"]) == set(data.VARIANTS)
    for variant in data.VARIANTS:
        result = results["variants"][variant]
        assert set(result["programs"]) == {"A", "B", "C"}
        assert result["rss_big"]["records"] == 15000
        wire = result["wire"]
        assert wire["records"] == 5000
        assert 0 < wire["wire_bytes"] < wire["ndjson_bytes"]
        assert result["budget"]["event_bytes"] > 100
        assert {"throughput_a_over_b", "cpu_per_record_a_over_b", "whole_n1_wall_a_over_b", "rss_n2_a_over_b",
                "rss_big_over_n2_a", "wire_over_ndjson"} <= set(result["ratios"])
    assert results["pipelining"]["records"] == 6000
    assert results["shapes"]["records"] == 6000 and results["shapes"]["ratio"] > 0
    # The Scarf-bound scenario, both status polling policies side by side (run_once raises SystemExit unless every
    # state is echoed and every event arrives in an import that ended done).
    bound = results["scarf_bound"]
    assert (bound["scenario"]["imports"], bound["scenario"]["slots"], bound["scenario"]["import_seconds"]) == (4, 2, 0.3)
    assert list(bound["policies"]) == ["list", "by_id"]
    assert bound["policies"]["by_id"]["summary"]["config_extra"] == {"status_polling": "by_id"}
    for name, policy in bound["policies"].items():
        [run] = policy["runs"]
        assert run["imports"] == 4 and run["calls"]["by_kind"]["import-post"] == 4
        assert run["calls"]["total"] == sum(run["calls"]["by_kind"].values())
        reads = run["calls"]["by_kind"]["import-list"]
        assert reads >= 2 if name == "list" else reads == 1  # by_id: the pre-flight alone
    assert json.loads((tmp_path / "latest.json").read_text())["n2"] == 12000
    text = (tmp_path / "latest.md").read_text()
    assert "| realistic | A: destination-scarf write |" in text
    assert "Scarf-bound scenario: 4 imports" in text and "| list | 4 |" in text and "| by_id | 4 |" in text


def _records(path):
    return [m["record"]["data"] for m in map(orjson.loads, path.read_bytes().splitlines()) if m["type"] == "RECORD"]


def test_the_realistic_variant_is_seeded_skewed_and_inside_the_window(tmp_path):
    now = datetime.datetime(2026, 1, 10, 12, 0, 0, 654321, tzinfo=datetime.timezone.utc)
    big, small, again = tmp_path / "big.jsonl", tmp_path / "small.jsonl", tmp_path / "again.jsonl"
    assert data.write_input(big, 30_000, variant="realistic", now=now, also={20_000: small}) == 3
    data.write_input(again, 20_000, variant="realistic", now=now)
    assert small.read_bytes() == again.read_bytes()  # a prefix is the smaller input, and the seed fixes it
    records = _records(big)
    assert len(records) == 30_000
    assert len({r["package"] for r in records}) == len(data.REALISTIC_PACKAGES) <= 5
    assert len({r["remote_address"] for r in records}) <= data.REALISTIC_IPS
    assert len({r["user_agent"] for r in records}) <= data.REALISTIC_USER_AGENTS
    top_address = max(sum(r["remote_address"] == a for r in records[:2000]) for a in {r["remote_address"] for r in records[:50]})
    assert top_address > 100  # Zipf: the busiest client is far above the 2000/3000 of a uniform draw
    for record in records:
        when = datetime.datetime.fromisoformat(record["created_at"])
        assert when.microsecond == 0 and now - datetime.timedelta(days=data.REALISTIC_DAYS) <= when < now


def test_the_pessimistic_variant_keeps_its_microseconds_and_unique_addresses(tmp_path):
    path = tmp_path / "input.jsonl"
    assert data.write_input(path, 10_000) == 1
    records = _records(path)
    assert sum(datetime.datetime.fromisoformat(r["created_at"]).microsecond != 0 for r in records) > 9_900
    assert len({r["remote_address"] for r in records}) > 9_900


def test_the_shapes_variants_have_one_shape_and_thousands(tmp_path):
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    data.write_input(one, 20_000, variant="one-shape")
    data.write_input(many, 20_000, variant="4096-shapes")
    shapes = {variant: {tuple(r) for r in _records(path)} for variant, path in (("one", one), ("many", many))}
    assert len(shapes["one"]) == 1
    assert len(shapes["many"]) > 3_500  # 20,000 draws of 4,096 equally likely subsets
    optional = [sum(key in r for key in data.OPTIONAL_KEYS) for r in _records(many)]
    assert 5.8 < sum(optional) / len(optional) < 6.2  # as many keys on average as the one shape has
