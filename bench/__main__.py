"""`make bench`: how fast does `destination-scarf write` move a long stream, and in how much memory?

A: `destination-scarf write` against the emulator (in no-store mode: it decodes, checks and counts),
   end to end until the last state is echoed.
B: the smallest CDK destination (bench/baseline_destination.py): iterates the CDK's parsed messages
   and echoes states, the ceiling of any destination built on the CDK's input parsing.
C: a loop that only orjson.loads each line (bench/raw_floor.py).

Start-up (importing airbyte_cdk takes seconds) is paid by A and B alike, so throughput is compared
at the margin: (N2 - N1) / (t(N2) - t(N1)). Runs alternate A, B, C on the same input; medians are
reported. Results go to stdout, bench/results/latest.json, and (unless --no-readme) README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import budget, data
from bench.harness import OWNER, ROOT, TOKEN, Emulator, Measurement, measure

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def connector_command(config: Path, catalog: Path) -> list[str]:
    return [sys.executable, "-c", "from destination_scarf.run import run; run()", "write",
            "--config", str(config), "--catalog", str(catalog)]


def baseline_command(config: Path, catalog: Path) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "baseline_destination.py"), "write",
            "--config", str(config), "--catalog", str(catalog)]


def floor_command() -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "raw_floor.py")]


class Bench:
    def __init__(self, work: Path, *, runs: int) -> None:
        self.work = work
        self.runs = runs
        self.inputs: dict[int, tuple[Path, int]] = {}
        self.catalog = work / "catalog.json"
        self.catalog.write_text(json.dumps(data.catalog()))

    def input(self, records: int) -> tuple[Path, int]:
        if records not in self.inputs:
            path = self.work / f"input-{records}.jsonl"
            self.inputs[records] = (path, data.write_input(path, records))
        return self.inputs[records]

    def config(self, emulator: Emulator, **overrides) -> Path:
        path = self.work / "config.json"
        path.write_text(json.dumps({**data.config(emulator.url, OWNER, TOKEN), **overrides}))
        return path

    def run_a(self, emulator: Emulator, records: int, **overrides) -> Measurement:
        path, states = self.input(records)
        before = emulator.stats()
        cpu_before = emulator.cpu_seconds()
        result = measure(connector_command(self.config(emulator, **overrides), self.catalog), path)
        cpu_after = emulator.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            result.emulator_cpu = cpu_after - cpu_before
        after = emulator.stats()
        arrived = after.get("events_total", 0) - before.get("events_total", 0)
        if result.returncode != 0 or result.states() != states or arrived != records:
            raise SystemExit(f"A failed on {records} records: exit {result.returncode}, {result.states()}/{states} "
                             f"states, {arrived} events arrived")
        return result

    def run_b(self, emulator: Emulator, records: int) -> Measurement:
        path, states = self.input(records)
        result = measure(baseline_command(self.config(emulator), self.catalog), path)
        if result.returncode != 0 or result.states() != states:
            raise SystemExit(f"B failed on {records} records: exit {result.returncode}, {result.states()} states")
        return result

    def run_c(self, records: int) -> Measurement:
        path, states = self.input(records)
        result = measure(floor_command(), path)
        if result.returncode != 0 or int(result.stdout) != records + states:
            raise SystemExit(f"C failed on {records} records")
        return result


def marginal(n1: int, n2: int, t1: float, t2: float) -> float:
    return (n2 - n1) / max(t2 - t1, 1e-9)


def throughput(bench: Bench, emulator: Emulator, n1: int, n2: int) -> dict:
    times: dict[str, dict[int, list[Measurement]]] = {k: {n1: [], n2: []} for k in "ABC"}
    for _ in range(bench.runs):
        for n in (n1, n2):
            times["A"][n].append(bench.run_a(emulator, n))
            times["B"][n].append(bench.run_b(emulator, n))
            times["C"][n].append(bench.run_c(n))
    result = {}
    for name, by_n in times.items():
        rates = [marginal(n1, n2, a.wall, b.wall) for a, b in zip(by_n[n1], by_n[n2])]
        cpu = [(b.cpu - a.cpu) / (n2 - n1) * 1e6 for a, b in zip(by_n[n1], by_n[n2])]
        result[name] = {
            "records_per_s": statistics.median(rates),
            "cpu_s_per_million": statistics.median(cpu),
            "wall": {str(n): statistics.median(m.wall for m in ms) for n, ms in by_n.items()},
            "rss_mb": {str(n): max(m.max_rss_mb for m in ms) for n, ms in by_n.items()},
        }
    emulator_cpu = [(b.emulator_cpu - a.emulator_cpu) / (n2 - n1) * 1e6 for a, b in zip(times["A"][n1], times["A"][n2])
                    if a.emulator_cpu is not None and b.emulator_cpu is not None]
    if emulator_cpu:
        result["A"]["emulator_cpu_s_per_million"] = statistics.median(emulator_cpu)
    return result


def startup(bench: Bench, emulator: Emulator) -> float:
    runs = [bench.run_a(emulator, 1000).wall for _ in range(bench.runs)]
    return statistics.median(runs)


def pipelining(bench: Bench, records: int, *, rate: float, slots: int, batch: int) -> dict:
    """With Scarf processing `rate` events/s per import and `slots` imports at once, the ideal wall
    time is records / (rate * slots); report the sync's wall time (minus start-up) against it."""
    emulator = Emulator(packages=data.PACKAGES, rate=rate)
    try:
        tiny = bench.run_a(emulator, 1000, max_concurrent_imports=slots, batch_max_events=batch).wall
        run = bench.run_a(emulator, records, max_concurrent_imports=slots, batch_max_events=batch)
    finally:
        emulator.close()
    ideal = records / (rate * slots)
    wall = run.wall - tiny  # the 1000-record run costs start-up and ~one short import round
    return {"records": records, "rate": rate, "slots": slots, "batch": batch, "ideal_s": ideal,
            "wall_s": wall, "ratio": wall / ideal}


def compression(bench: Bench, records: int) -> dict:
    path, _ = bench.input(records)
    emulator = Emulator(packages=data.PACKAGES)
    try:
        bench.run_a(emulator, records)
        wire = emulator.import_bytes()
    finally:
        emulator.close()
    ndjson = _ndjson_size(bench, records)
    return {"records": records, "wire_bytes": wire, "ndjson_bytes": ndjson, "ratio": wire / ndjson}


def _ndjson_size(bench: Bench, records: int) -> int:
    """Size of the events as NDJSON (what would be sent without gzip), by mapping the input once."""
    import orjson

    mappers = data.mappers()
    total = 0
    with open(bench.input(records)[0], "rb") as lines:
        for line in lines:
            message = orjson.loads(line)
            if message["type"] == "RECORD":
                total += len(mappers[message["record"]["stream"]].encode(message["record"]["data"]))
    return total


def report(results: dict) -> str:
    t = results["throughput"]
    n1, n2 = results["n1"], results["n2"]
    a, b, c = t["A"], t["B"], t["C"]
    lines = [
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; medians of {results['runs']} runs; "
        f"marginal throughput between N1 = {n1:,} and N2 = {n2:,} records.",
        "",
        "| program | records/s (marginal) | CPU s per 1M records | wall at N2 |",
        "|---|---|---|---|",
        f"| A: destination-scarf write, end to end | {a['records_per_s']:,.0f} | {a['cpu_s_per_million']:.2f} | "
        f"{a['wall'][str(n2)]:.1f} s |",
        f"| B: minimal CDK destination (CDK parsing) | {b['records_per_s']:,.0f} | {b['cpu_s_per_million']:.2f} | "
        f"{b['wall'][str(n2)]:.1f} s |",
        f"| C: orjson.loads per line | {c['records_per_s']:,.0f} | {c['cpu_s_per_million']:.2f} | "
        f"{c['wall'][str(n2)]:.1f} s |",
        "",
        f"- A/B = {a['records_per_s'] / b['records_per_s']:.2f}, A/C = {a['records_per_s'] / c['records_per_s']:.2f}",
        f"- start-up (a 1,000-record sync, A): {results['startup_s']:.2f} s",
        "- peak RSS of A: " + ", ".join(f"{int(n):,} records: {mb:.0f} MB" for n, mb in results["rss_mb"].items()),
    ]
    lines += _budget_lines(results, b)
    p = results.get("pipelining")
    if p:
        lines.append(f"- pipelining: {p['records']:,} events, Scarf at {p['rate']:,.0f} events/s per import, "
                     f"{p['slots']} slots: {p['wall_s']:.1f} s vs ideal {p['ideal_s']:.1f} s "
                     f"(ratio {p['ratio']:.2f})")
    z = results.get("compression")
    if z:
        lines.append(f"- wire bytes: {z['wire_bytes']:,} gzip vs {z['ndjson_bytes']:,} NDJSON "
                     f"(ratio {z['ratio']:.3f}, 1/{1 / z['ratio']:.1f})")
    return "\n".join(lines)


def _budget_lines(results: dict, b: dict) -> list[str]:
    """The CPU budget: what A's unavoidable stages cost per record, against what a CDK-relative target allows."""
    cost = results.get("budget")
    if not cost:
        return []
    stages = cost["parse"] + cost["map_and_encode"] + cost["gzip"]
    a = results["throughput"]["A"]
    emulator = a.get("emulator_cpu_s_per_million")
    allowed = (os.cpu_count() or 1) * 1e6 / (1.5 * b["records_per_s"])
    lines = [
        f"- CPU per record by stage (fastest of {budget.PASSES} passes, in-process): parse {cost['parse']:.1f} µs, "
        f"map + `$unique_id` + serialize {cost['map_and_encode']:.1f} µs, gzip level {cost['gzip_level']} "
        f"{cost['gzip']:.1f} µs ({cost['event_bytes']:.0f}-byte events): {stages:.1f} µs, "
        f"{stages / b['cpu_s_per_million']:.1f}x B's whole {b['cpu_s_per_million']:.1f} µs",
    ]
    if emulator is not None:
        lines.append(f"- the emulator, on the same cores, spent {emulator:.1f} µs of CPU per event")
    lines.append(f"- A/B = 1.5 would leave {allowed:.1f} µs of CPU per record on {os.cpu_count()} cores, for the "
                 f"connector and the emulator together")
    return lines


def update_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text()
    if README_START not in content or README_END not in content:
        return
    head, rest = content.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{text}\n{README_END}{tail}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n1", type=int, default=100_000)
    parser.add_argument("--n2", type=int, default=1_000_000)
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[1_000_000, 4_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pipelining-records", type=int, default=400_000)
    parser.add_argument("--no-readme", action="store_true", help="do not write the results into README.md")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="scarf-bench-") as tmp:
        bench = Bench(Path(tmp), runs=args.runs)
        emulator = Emulator(packages=data.PACKAGES)
        try:
            results: dict = {"n1": args.n1, "n2": args.n2, "runs": args.runs}
            results["startup_s"] = startup(bench, emulator)
            results["throughput"] = throughput(bench, emulator, args.n1, args.n2)
            rss = {}
            for n in args.rss_sizes:
                rss[str(n)] = results["throughput"]["A"]["rss_mb"].get(str(n)) or bench.run_a(emulator, n).max_rss_mb
            results["rss_mb"] = rss
        finally:
            emulator.close()
        if args.pipelining_records:
            records = args.pipelining_records
            results["pipelining"] = pipelining(bench, records, rate=max(1_000, records // 80), slots=4,
                                               batch=max(500, records // 20))
        results["compression"] = compression(bench, args.n1)
        results["budget"] = budget.stage_costs(bench.input(args.n1)[0])
    text = report(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    if not args.no_readme:
        update_readme(text)
    return results


if __name__ == "__main__":
    main()
