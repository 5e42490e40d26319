"""A small run of the benchmark: it runs end to end and every program sees every record. No timings."""

from __future__ import annotations

from bench.__main__ import main


def test_the_benchmark_runs_and_the_counts_match(tmp_path):
    # run_a / run_b / run_c raise SystemExit unless every state is echoed and every event arrives.
    results = main(["--n1", "5000", "--n2", "20000", "--rss-sizes", "20000", "--runs", "1",
                    "--pipelining-records", "8000", "--no-readme", "--json", str(tmp_path / "results.json")])
    assert set(results["throughput"]) == {"A", "B", "C"}
    assert all(results["throughput"][name]["records_per_s"] > 0 for name in "ABC")
    assert results["rss_mb"]["20000"] > 0
    assert results["pipelining"]["records"] == 8000
    assert 0 < results["compression"]["wire_bytes"] < results["compression"]["ndjson_bytes"]
    assert (tmp_path / "results.json").exists()
    budget = results["budget"]
    assert all(budget[stage] > 0 for stage in ("parse", "map_and_encode", "gzip"))
    assert budget["event_bytes"] > 100
