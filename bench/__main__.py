"""`make bench`: how fast does `destination-scarf write` move a long stream, and in how much memory?

A: `destination-scarf write` against the emulator (in no-store mode: it decodes, checks and counts),
   end to end until the last state is echoed.
B: the smallest CDK destination (bench/baseline_destination.py): iterates the CDK's parsed messages
   and echoes states, the ceiling of any destination built on the CDK's input parsing.
C: a loop that only orjson.loads each line (bench/raw_floor.py).

Each program runs on two inputs of the same shape (bench/data.py): "pessimistic" (uniformly random
addresses, microsecond times) and "realistic" (Zipf-distributed clients and user agents, second
times, a few packages). Runs alternate A, B, C on the same input, for both variants, several times;
medians are reported.

Start-up (importing airbyte_cdk takes seconds) is paid by A and B alike, so throughput and CPU per
record are compared at the margin: (N2 - N1) / (t(N2) - t(N1)). The whole N1-record sync, start-up
included, is compared too.

Last, the Scarf-bound scenario (bench/scarf_bound.py): the emulator takes a set time for every import
(`--scarf-bound-import-seconds`, 8 s by default: Scarf's minute scaled down; 60 s for the issue's own
measure, about 4 minutes per policy), and `write` syncs several rounds of imports with the default slots,
once with each status polling policy (`list`, the default, and `by_id`, the previous per-import polling):
API calls per import, in all and by kind, and wall time against the ideal (imports x import time / slots).
`--scarf-bound-imports 0` skips it.

Results go to stdout and bench/results/ (latest.json, latest.md); with --readme (`make bench-readme`) also
into README.md between the bench markers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import budget, data, scarf_bound
from bench.harness import OWNER, ROOT, TOKEN, Emulator, Measurement, measure

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
PROGRAMS = ("A", "B", "C")
STARTUP_RECORDS = 1000


def connector_command(config: Path, catalog: Path) -> list[str]:
    return [sys.executable, "-c", "from destination_scarf.airbyte.cli import run; run()", "write",
            "--config", str(config), "--catalog", str(catalog)]


def baseline_command(config: Path, catalog: Path) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "baseline_destination.py"), "write",
            "--config", str(config), "--catalog", str(catalog)]


def floor_command() -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "raw_floor.py")]


class Progress:
    """One line per step on stderr, with the time since the start: a full run takes minutes."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.started = time.perf_counter()
        self.quiet = quiet

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():6.0f} s] {text}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, work: Path, *, runs: int, progress: Progress) -> None:
        self.work = work
        self.runs = runs
        self.progress = progress
        self.inputs: dict[tuple[str, int], Path] = {}
        self.catalog = work / "catalog.json"
        self.catalog.write_text(json.dumps(data.catalog()))

    def prepare(self, variant: str, sizes: set[int]) -> None:
        """Write every input size of a variant in one pass: the smaller ones are prefixes of the largest."""
        largest = max(sizes)
        path = lambda n: self.work / f"input-{variant}-{n}.jsonl"  # noqa: E731
        self.progress(f"{variant}: writing inputs of {', '.join(f'{n:,}' for n in sorted(sizes))} records")
        data.write_input(path(largest), largest, variant=variant, also={n: path(n) for n in sizes if n != largest})
        self.inputs.update({(variant, n): path(n) for n in sizes})

    def input(self, variant: str, records: int) -> tuple[Path, int]:
        if (variant, records) not in self.inputs:
            self.prepare(variant, {records})
        return self.inputs[(variant, records)], data.states_for(records)

    def config(self, emulator: Emulator, **overrides) -> Path:
        path = self.work / "config.json"
        path.write_text(json.dumps({**data.config(emulator.url, OWNER, TOKEN), **overrides}))
        return path

    def run_a(self, emulator: Emulator, variant: str, records: int, *, wire: bool = False, **overrides) -> Measurement:
        """A on `records` records; with `wire`, also the gzip bytes its imports posted (`Measurement.wire_bytes`)."""
        path, states = self.input(variant, records)
        wire_before = emulator.import_bytes() if wire else 0
        before = emulator.stats()
        cpu_before = emulator.cpu_seconds()
        result = measure(connector_command(self.config(emulator, **overrides), self.catalog), path)
        cpu_after = emulator.cpu_seconds()
        if cpu_before is not None and cpu_after is not None:
            result.emulator_cpu = cpu_after - cpu_before
        after = emulator.stats()
        arrived = after.get("events_total", 0) - before.get("events_total", 0)
        if result.returncode != 0 or result.states() != states or arrived != records:
            raise SystemExit(f"A failed on {records:,} {variant} records: exit {result.returncode}, "
                             f"{result.states()}/{states} states, {arrived} events arrived")
        if wire:
            result.wire_bytes = emulator.import_bytes() - wire_before
        return result

    def run_b(self, emulator: Emulator, variant: str, records: int) -> Measurement:
        path, states = self.input(variant, records)
        result = measure(baseline_command(self.config(emulator), self.catalog), path)
        if result.returncode != 0 or result.states() != states:
            raise SystemExit(f"B failed on {records:,} {variant} records: exit {result.returncode}, "
                             f"{result.states()}/{states} states")
        return result

    def run_c(self, variant: str, records: int) -> Measurement:
        path, states = self.input(variant, records)
        result = measure(floor_command(), path)
        if result.returncode != 0 or int(result.stdout) != records + states:
            raise SystemExit(f"C failed on {records:,} {variant} records")
        return result

    def run(self, program: str, emulator: Emulator, variant: str, records: int, **kwargs) -> Measurement:
        if program == "A":
            result = self.run_a(emulator, variant, records, **kwargs)
        elif program == "B":
            result = self.run_b(emulator, variant, records)
        else:
            result = self.run_c(variant, records)
        self.progress(f"  {variant} {program} {records:>9,}: {result.wall:6.2f} s wall, {result.cpu:6.2f} s CPU, "
                      f"{result.max_rss_mb:4.0f} MB")
        return result


def marginal(n1: int, n2: int, t1: float, t2: float) -> float:
    return (n2 - n1) / max(t2 - t1, 1e-9)


def throughput(bench: Bench, emulator: Emulator, variants: list[str], n1: int, n2: int) -> dict:
    """Every run does, for each variant, both sizes of A, B and C back to back (order reversed on odd runs,
    so slow drift in the machine's load does not favour one program); then medians per program and size."""
    times = {v: {p: {n1: [], n2: []} for p in PROGRAMS} for v in variants}
    wire: dict[str, int] = {}
    for run in range(bench.runs):
        bench.progress(f"throughput run {run + 1}/{bench.runs}")
        order = PROGRAMS if run % 2 == 0 else PROGRAMS[::-1]
        for variant in variants:
            for n in (n1, n2):
                for program in order:
                    measure_wire = program == "A" and n == n1 and variant not in wire
                    m = bench.run(program, emulator, variant, n, **({"wire": True} if measure_wire else {}))
                    if measure_wire:
                        wire[variant] = m.wire_bytes
                    times[variant][program][n].append(m)
    return {variant: {"programs": {p: _summary(by_n, n1, n2) for p, by_n in by_program.items()},
                      "wire_bytes": wire[variant]}
            for variant, by_program in times.items()}


def _summary(by_n: dict[int, list[Measurement]], n1: int, n2: int) -> dict:
    pairs = list(zip(by_n[n1], by_n[n2], strict=True))
    summary = {
        "records_per_s": statistics.median(marginal(n1, n2, a.wall, b.wall) for a, b in pairs),
        "cpu_us_per_record": statistics.median((b.cpu - a.cpu) / (n2 - n1) * 1e6 for a, b in pairs),
        "wall_s": {str(n): statistics.median(m.wall for m in ms) for n, ms in by_n.items()},
        "cpu_s": {str(n): statistics.median(m.cpu for m in ms) for n, ms in by_n.items()},
        "rss_mb": {str(n): statistics.median(m.max_rss_mb for m in ms) for n, ms in by_n.items()},
        "rss_mb_max": {str(n): max(m.max_rss_mb for m in ms) for n, ms in by_n.items()},
    }
    emulator = [(b.emulator_cpu - a.emulator_cpu) / (n2 - n1) * 1e6 for a, b in pairs
                if a.emulator_cpu is not None and b.emulator_cpu is not None]
    if emulator:
        summary["emulator_cpu_us_per_event"] = statistics.median(emulator)
    return summary


def startup(bench: Bench, emulator: Emulator) -> float:
    bench.progress(f"start-up: {bench.runs} syncs of {STARTUP_RECORDS:,} records")
    return statistics.median(bench.run("A", emulator, "pessimistic", STARTUP_RECORDS).wall for _ in range(bench.runs))


def pipelining(bench: Bench, records: int, *, rate: float, slots: int, batch: int) -> dict:
    """With Scarf processing `rate` events/s per import and `slots` imports at once, the ideal wall
    time is records / (rate * slots); report the sync's wall time (minus start-up) against it."""
    bench.progress(f"pipelining: {records:,} records, Scarf at {rate:,.0f} events/s per import, {slots} slots")
    emulator = Emulator(packages=data.ALL_PACKAGES, rate=rate)
    try:
        kwargs = {"max_concurrent_imports": slots, "batch_max_events": batch}
        tiny = bench.run("A", emulator, "pessimistic", STARTUP_RECORDS, **kwargs).wall
        run = bench.run("A", emulator, "pessimistic", records, **kwargs)
    finally:
        emulator.close()
    ideal = records / (rate * slots)
    wall = run.wall - tiny  # the 1000-record run costs start-up and ~one short import round
    return {"records": records, "rate": rate, "slots": slots, "batch": batch, "ideal_s": ideal,
            "wall_s": wall, "ratio": wall / ideal}


def shapes(bench: Bench, emulator: Emulator, records: int) -> dict:
    """A's marginal throughput on records of one shape and of 4,096 shapes (the same keys on average)."""
    n1 = records // 3
    found = {}
    for variant in data.SHAPE_VARIANTS:
        bench.progress(f"record shapes: {variant}, {n1:,} and {records:,} records")
        small, large = bench.run("A", emulator, variant, n1), bench.run("A", emulator, variant, records)
        found[variant] = {"records_per_s": marginal(n1, records, small.wall, large.wall),
                          "cpu_us_per_record": (large.cpu - small.cpu) / (records - n1) * 1e6}
    one, many = (found[v] for v in data.SHAPE_VARIANTS)
    return {"records": records, **found, "ratio": many["records_per_s"] / one["records_per_s"]}


def ndjson_size(bench: Bench, variant: str, records: int) -> int:
    """Size of the events as NDJSON (what would be sent without gzip), by mapping the input once."""
    import orjson

    mappers = data.mappers()
    total = 0
    with open(bench.input(variant, records)[0], "rb") as lines:
        for line in lines:
            message = orjson.loads(line)
            if message["type"] == "RECORD":
                total += len(mappers[message["record"]["stream"]].encode(message["record"]["data"]))
    return total


def derive(result: dict, n1: int, n2: int) -> dict:
    """The targets' ratios for one variant, from its medians."""
    a, b = result["programs"]["A"], result["programs"]["B"]
    ratios = {
        "throughput_a_over_b": a["records_per_s"] / b["records_per_s"],
        "throughput_a_over_c": a["records_per_s"] / result["programs"]["C"]["records_per_s"],
        "cpu_per_record_a_over_b": a["cpu_us_per_record"] / b["cpu_us_per_record"],
        "whole_n1_wall_a_over_b": a["wall_s"][str(n1)] / b["wall_s"][str(n1)],
        "rss_n2_a_over_b": a["rss_mb"][str(n2)] / b["rss_mb"][str(n2)],
    }
    if "emulator_cpu_us_per_event" in a:
        ratios["cpu_per_record_a_with_emulator_over_b"] = (
            (a["cpu_us_per_record"] + a["emulator_cpu_us_per_event"]) / b["cpu_us_per_record"])
    big = result.get("rss_big")
    if big:
        ratios["rss_big_over_n2_a"] = big["rss_mb"] / a["rss_mb"][str(n2)]
    wire = result.get("wire")
    if wire:
        ratios["wire_over_ndjson"] = wire["wire_bytes"] / wire["ndjson_bytes"]
    return ratios


def report(results: dict) -> str:
    n1, n2, big = results["n1"], results["n2"], results.get("big")
    machine = results["machine"]
    variants = results["variants"]
    names = list(variants)
    lines = [
        f"Machine: {machine['cores']} cores, Python {machine['python']}, load average {machine['load_start']:.1f} "
        f"at the start; medians of {results['runs']} interleaved runs; marginal figures between N1 = {n1:,} and "
        f"N2 = {n2:,} records; bench took {results['elapsed_s'] / 60:.1f} min.",
        "",
        f"| data | program | records/s (marginal) | CPU µs per record (marginal) | whole {n1:,} sync | "
        f"wall at {n2:,} | peak RSS at {n2:,} |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"A": "A: destination-scarf write", "B": "B: minimal CDK destination", "C": "C: orjson.loads per line"}
    for variant in names:
        for program in PROGRAMS:
            p = variants[variant]["programs"][program]
            lines.append(f"| {variant} | {labels[program]} | {p['records_per_s']:,.0f} | {p['cpu_us_per_record']:.2f} | "
                         f"{p['wall_s'][str(n1)]:.2f} s | {p['wall_s'][str(n2)]:.2f} s | "
                         f"{p['rss_mb'][str(n2)]:.0f} MB |")
    lines += ["", "| target measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(variants[v]) for v in names) + " |")

    row("marginal throughput A/B (higher: A faster)", lambda v: f"{v['ratios']['throughput_a_over_b']:.2f}")
    row("CPU per record A/B (lower: A cheaper)", lambda v: f"{v['ratios']['cpu_per_record_a_over_b']:.2f}")
    if all("cpu_per_record_a_with_emulator_over_b" in v["ratios"] for v in variants.values()):
        row("CPU per record (A + emulator)/B", lambda v: f"{v['ratios']['cpu_per_record_a_with_emulator_over_b']:.2f}")
    row(f"whole {n1:,}-record sync, start-up included: wall A/B (lower: A faster)",
        lambda v: f"{v['ratios']['whole_n1_wall_a_over_b']:.2f}")
    row(f"peak RSS at {n2:,}: A, B, A/B", lambda v: f"{v['programs']['A']['rss_mb'][str(n2)]:.0f} MB, "
        f"{v['programs']['B']['rss_mb'][str(n2)]:.0f} MB, {v['ratios']['rss_n2_a_over_b']:.2f}")
    if big and all(v.get("rss_big") for v in variants.values()):
        row(f"A's peak RSS, {n2:,} to {big:,} (one run at {big:,})",
            lambda v: f"{v['programs']['A']['rss_mb'][str(n2)]:.0f} to {v['rss_big']['rss_mb']:.0f} MB "
                      f"({v['ratios']['rss_big_over_n2_a']:.2f}x)")
    row("wire bytes / NDJSON bytes (gzip)", lambda v: f"{v['ratios']['wire_over_ndjson']:.3f} "
        f"(1/{1 / v['ratios']['wire_over_ndjson']:.2f})")
    lines.append("")
    lines.append(f"- start-up (a {STARTUP_RECORDS:,}-record sync, A): {results['startup_s']:.2f} s")
    p = results.get("pipelining")
    if p:
        lines.append(f"- pipelining (pessimistic data): {p['records']:,} events, Scarf at {p['rate']:,.0f} events/s "
                     f"per import, {p['slots']} slots: {p['wall_s']:.1f} s vs ideal {p['ideal_s']:.1f} s "
                     f"(ratio {p['ratio']:.2f})")
    s = results.get("shapes")
    if s:
        one, many = s["one-shape"], s["4096-shapes"]
        lines.append(f"- record shapes (pessimistic data plus optional keys, marginal to {s['records']:,} records): "
                     f"one shape {one['records_per_s']:,.0f} records/s ({one['cpu_us_per_record']:.2f} µs CPU), "
                     f"4,096 shapes {many['records_per_s']:,.0f} records/s ({many['cpu_us_per_record']:.2f} µs CPU): "
                     f"{s['ratio']:.2f} of one shape's throughput")
    for variant in names:
        lines += _variant_lines(variant, variants[variant], machine["cores"])
    if results.get("scarf_bound"):
        lines += ["", scarf_bound.report(results["scarf_bound"])]
    return "\n".join(lines)


def _variant_lines(variant: str, result: dict, cores: int) -> list[str]:
    """Wire bytes, and the CPU budget: what A's unavoidable stages cost per record, against B."""
    a, b = result["programs"]["A"], result["programs"]["B"]
    wire = result["wire"]
    lines = [f"- {variant}: A/C = {result['ratios']['throughput_a_over_c']:.2f}; wire {wire['wire_bytes']:,} gzip "
             f"bytes vs {wire['ndjson_bytes']:,} NDJSON for {wire['records']:,} records"]
    if "emulator_cpu_us_per_event" in a:
        lines[-1] += f"; the emulator, on the same cores, spent {a['emulator_cpu_us_per_event']:.1f} µs of CPU per event"
    cost = result.get("budget")
    if cost:
        stages = cost["parse"] + cost["map_and_encode"] + cost["gzip"]
        allowed = cores * 1e6 / (1.5 * b["records_per_s"])
        lines.append(
            f"- {variant}, CPU per record by stage (fastest of {budget.PASSES} passes, in-process): parse "
            f"{cost['parse']:.1f} µs, map + `$unique_id` + serialize {cost['map_and_encode']:.1f} µs, gzip level "
            f"{cost['gzip_level']} {cost['gzip']:.1f} µs ({cost['event_bytes']:.0f}-byte events): {stages:.1f} µs, "
            f"{stages / b['cpu_us_per_record']:.1f}x B's whole {b['cpu_us_per_record']:.1f} µs; A's whole "
            f"{a['cpu_us_per_record']:.1f} µs; A/B = 1.5 would leave {allowed:.1f} µs per record on {cores} cores "
            f"for the connector and the emulator together")
    return lines


def update_readme(text: str) -> bool:
    readme = ROOT / "README.md"
    content = readme.read_text()
    if README_START not in content or README_END not in content:
        return False
    head, rest = content.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{text}\n{README_END}{tail}")
    return True


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--scarf-bound" in argv:  # a scenario of its own, with its own options and output files
        return scarf_bound.main([a for a in argv if a != "--scarf-bound"], prog="python -m bench --scarf-bound")
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n1", type=int, default=200_000, help="smaller size; also the whole-sync comparison")
    parser.add_argument("--n2", type=int, default=1_000_000, help="larger size; also where peak RSS is compared")
    parser.add_argument("--big", type=int, default=4_000_000, help="one run of A at this size for its peak RSS (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=data.VARIANTS, default=list(data.VARIANTS))
    parser.add_argument("--pipelining-records", type=int, default=400_000, help="0: skip")
    parser.add_argument("--shapes-records", type=int, default=300_000,
                        help="records of one shape and of 4,096 shapes, A only (0: skip)")
    parser.add_argument("--budget-records", type=int, default=50_000, help="records for the per-stage costs (0: skip)")
    defaults = scarf_bound.Scenario()
    parser.add_argument("--scarf-bound-imports", type=int, default=defaults.imports,
                        help="imports of the Scarf-bound scenario, run once per status polling policy (0: skip)")
    parser.add_argument("--scarf-bound-import-seconds", type=float, default=defaults.import_seconds,
                        help="how long the emulator takes for each import of the Scarf-bound scenario (60: the "
                             "issue's measure, about 4 minutes per policy)")
    parser.add_argument("--scarf-bound-slots", type=int, default=defaults.slots,
                        help="max_concurrent_imports in the Scarf-bound scenario")
    parser.add_argument("--scarf-bound-events-per-import", type=int, default=defaults.events_per_import,
                        help="batch_max_events in the Scarf-bound scenario")
    parser.add_argument("--scarf-bound-runs", type=int, default=1,
                        help="runs per policy of the Scarf-bound scenario (its imports take a set time: one is enough)")
    parser.add_argument("--readme", action="store_true", help="also write the results into README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                        help="directory for latest.json and latest.md")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--scarf-bound", action="store_true",
                        help="run only the Scarf-bound scenario instead (API calls per import, wall time against the "
                             "ideal, with Scarf as the bottleneck); its options: python -m bench --scarf-bound --help")
    args = parser.parse_args(argv)
    if not 0 < args.n1 < args.n2:
        parser.error("need 0 < N1 < N2")
    if args.scarf_bound_imports < 0 or (args.scarf_bound_imports and (
            args.scarf_bound_slots < 1 or args.scarf_bound_events_per_import < 1
            or not args.scarf_bound_import_seconds > 0 or args.scarf_bound_runs < 1)):
        parser.error("the Scarf-bound scenario needs positive slots, events per import, import seconds and runs")

    progress = Progress(quiet=args.quiet)
    results: dict = {
        "n1": args.n1, "n2": args.n2, "big": args.big or None, "runs": args.runs,
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0], "load_start": os.getloadavg()[0]},
        "data": {"zipf_s": data.ZIPF_S, "realistic_ips": data.REALISTIC_IPS,
                 "realistic_user_agents": data.REALISTIC_USER_AGENTS, "realistic_days": data.REALISTIC_DAYS,
                 "realistic_packages": len(data.REALISTIC_PACKAGES)},
    }
    with tempfile.TemporaryDirectory(prefix="scarf-bench-") as tmp:
        bench = Bench(Path(tmp), runs=args.runs, progress=progress)
        for variant in args.variants:
            sizes = {args.n1, args.n2} | ({args.big} if args.big else set())
            if variant == "pessimistic":
                sizes |= {STARTUP_RECORDS} | ({args.pipelining_records} if args.pipelining_records else set())
            bench.prepare(variant, sizes)
        emulator = Emulator(packages=data.ALL_PACKAGES)
        try:
            results["startup_s"] = startup(bench, emulator)
            variants = throughput(bench, emulator, args.variants, args.n1, args.n2)
            if args.shapes_records:
                results["shapes"] = shapes(bench, emulator, args.shapes_records)
            if args.big:
                for variant in args.variants:
                    bench.progress(f"{variant}: A's peak RSS at {args.big:,} records (one run)")
                    m = bench.run("A", emulator, variant, args.big)
                    variants[variant]["rss_big"] = {"records": args.big, "rss_mb": m.max_rss_mb, "wall_s": m.wall}
        finally:
            emulator.close()
        if args.pipelining_records:
            records = args.pipelining_records
            results["pipelining"] = pipelining(bench, records, rate=max(1_000, records // 80), slots=4,
                                               batch=max(500, records // 20))
        for variant in args.variants:
            bench.progress(f"{variant}: NDJSON size and per-stage CPU costs")
            result = variants[variant]
            result["wire"] = {"records": args.n1, "wire_bytes": result.pop("wire_bytes"),
                              "ndjson_bytes": ndjson_size(bench, variant, args.n1)}
            if args.budget_records:
                result["budget"] = budget.stage_costs(bench.input(variant, args.n1)[0], limit=args.budget_records)
            result["ratios"] = derive(result, args.n1, args.n2)
        results["variants"] = variants
    if args.scarf_bound_imports:
        scenario = scarf_bound.Scenario(imports=args.scarf_bound_imports, import_seconds=args.scarf_bound_import_seconds,
                                        slots=args.scarf_bound_slots,
                                        events_per_import=args.scarf_bound_events_per_import)
        results["scarf_bound"] = scarf_bound.run_scenario(scenario, scarf_bound.POLICIES, runs=args.scarf_bound_runs,
                                                          progress=progress)
    results["machine"]["load_end"] = os.getloadavg()[0]
    results["elapsed_s"] = progress.elapsed()
    text = report(results)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.json").write_text(json.dumps(results, indent=2))
    (args.results / "latest.md").write_text(text + "\n")
    if args.readme:
        if update_readme(text):
            progress("README.md: the Performance block is rewritten")
        else:
            progress(f"README.md has no {README_START} ... {README_END} block: left as it is")
    return results


if __name__ == "__main__":
    main()
