"""Scarf-bound scenario: what a sync costs in API calls, and in time, when Scarf's import speed is the limit.

Scarf bills every API call. When Scarf, not the connector, is the bottleneck (imports that take about a
minute each), a sync's wall time is set by how soon the connector notices that an import has ended and
hands its slot to the next batch, and its cost by how many calls it makes to notice. This scenario
measures both on one small, repeatable sync:

- the emulator (a subprocess) takes `--import-seconds` for every import whatever its size (default 8 s:
  Scarf's minute scaled down, so the scenario runs in a few minutes), its counts growing evenly meanwhile;
- `python -m destination_scarf write` syncs `--imports` x `--events-per-import` records (bench/data.py)
  with `batch_max_events` = events per import and `max_concurrent_imports` = `--slots` (the connector's
  default, 4), end to end until it exits;
- reported: imports, API calls in all and per import, by kind (uploads, reads by id, list reads, log
  reads, aborts, artifact reads), wall time against the ideal imports x import seconds / slots, and where
  the difference goes: start-up to the first upload, the slot handover (from an import's end to the upload
  that takes its slot), the tail from the last import's end to the connector's exit.

`--policy NAME=JSON` (repeatable) runs the scenario once per named set of extra connector config keys,
merged into the config, and reports them side by side; without it, the two status polling policies
(`POLICIES`): `list`, the connector's default (one read of the imports list for every import in flight), and
`by_id`, the previous per-import polling. Runs alternate the policies. Results go to stdout and to
`--results` (scarf-bound.json, scarf-bound.md); `latest.json` and `latest.md` of `python -m bench` are
not touched. Run it alone (`python -m bench.scarf_bound`) or as `python -m bench --scarf-bound ...`;
`python -m bench` (`make bench`) runs it too, after its other parts, with its `--scarf-bound-*` options.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import data
from bench.harness import OWNER, ROOT, TOKEN, Emulator, measure

#: Call kinds as the emulator counts them (scarf_emulator.recording.CALL_KINDS), with the report's words.
KINDS = {
    "import-post": "uploads",
    "import-by-id": "reads by id",
    "import-list": "list reads",
    "log": "log reads",
    "abort": "aborts",
    "artifact-get": "artifact reads",
    "other": "other",
}
RESULT_NAME = "scarf-bound"
#: The policies compared by default: the connector's default, and the previous per-import polling.
POLICIES: dict[str, dict] = {"list": {}, "by_id": {"status_polling": "by_id"}}


@dataclass(frozen=True)
class Scenario:
    imports: int = 16
    import_seconds: float = 8.0
    slots: int = 4
    events_per_import: int = 2500
    variant: str = "pessimistic"

    @property
    def records(self) -> int:
        return self.imports * self.events_per_import

    @property
    def ideal_s(self) -> float:
        return self.imports * self.import_seconds / self.slots


def connector_command(config: Path, catalog: Path) -> list[str]:
    """The connector as a user runs it; never imported here (its package is being restructured)."""
    return [sys.executable, "-m", "destination_scarf", "write", "--config", str(config), "--catalog", str(catalog)]


def parse_policy(text: str) -> tuple[str, dict]:
    """`NAME=JSON` -> (name, dict of extra config keys); a bare NAME means no extra keys."""
    name, _, raw = text.partition("=")
    if not name:
        raise ValueError(f"a policy needs a name: {text!r}")
    extra = json.loads(raw) if raw else {}
    if not isinstance(extra, dict):
        raise ValueError(f"policy {name}: the config keys must be a JSON object, not {raw!r}")
    return name, extra


def _moment(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def timeline(imports: list[dict], started: datetime.datetime, ended: datetime.datetime, slots: int) -> dict:
    """Where the wall time goes, from the emulator's timestamps (UTC, the same machine clock as ours).

    The i-th upload (oldest first) beyond the first `slots` can only take a slot that the (i - slots)-th
    import to end has freed, so the gap between the two is the slot handover: noticing the end, plus the
    upload. Start-up runs to the first upload, the tail from the last end to the connector's exit.
    """
    created = sorted(_moment(i["created_at"]) for i in imports)
    ended_at = sorted(_moment(i["updated_at"]) for i in imports)
    handovers = [(created[k] - ended_at[k - slots]).total_seconds() for k in range(slots, len(created))]
    durations = [(_moment(i["updated_at"]) - _moment(i["created_at"])).total_seconds() for i in imports]
    return {
        "startup_s": (created[0] - started).total_seconds() if created else None,
        "handover_s": {"mean": statistics.fmean(handovers), "max": max(handovers)} if handovers else None,
        "tail_s": (ended - ended_at[-1]).total_seconds() if ended_at else None,
        "import_s_mean": statistics.fmean(durations) if durations else None,
    }


def run_once(work: Path, scenario: Scenario, name: str, extra: dict, input_path: Path, catalog: Path) -> dict:
    """One sync under one policy, against a fresh emulator; SystemExit unless it delivered everything."""
    emulator = Emulator(packages=data.ALL_PACKAGES, import_seconds=scenario.import_seconds)
    try:
        config = work / f"config-{name}.json"
        config.write_text(json.dumps({
            **data.config(emulator.url, OWNER, TOKEN),
            "max_concurrent_imports": scenario.slots, "batch_max_events": scenario.events_per_import, **extra}))
        started = datetime.datetime.now(datetime.timezone.utc)
        result = measure(connector_command(config, catalog), input_path)
        ended = datetime.datetime.now(datetime.timezone.utc)
        calls, imports, stats = emulator.calls(), emulator.imports(), emulator.stats()
    finally:
        emulator.close()
    states = data.states_for(scenario.records)
    if (result.returncode != 0 or result.states() != states or stats.get("events_total") != scenario.records
            or any(i["status"] != "done" for i in imports)):
        tail = b"\n".join(result.stdout.splitlines()[-3:]).decode(errors="replace")
        raise SystemExit(f"policy {name}: the sync failed: exit {result.returncode}, {result.states()}/{states} states, "
                         f"{stats.get('events_total')}/{scenario.records} events arrived, statuses "
                         f"{sorted({i['status'] for i in imports})}; last output:\n{tail}")
    count = len(imports)
    by_id = sorted(c.get("import-by-id", 0) for c in calls["by_import"].values())
    ideal = count * scenario.import_seconds / scenario.slots
    return {
        "policy": name, "config_extra": extra, "imports": count, "events": scenario.records, "states": states,
        "wall_s": result.wall, "ideal_s": ideal, "ratio": result.wall / ideal,
        "calls": {
            "total": calls["total"], "per_import": calls["total"] / count, "by_kind": calls["by_kind"],
            "by_kind_per_import": {k: n / count for k, n in calls["by_kind"].items()},
            "by_id_reads_per_import": {"min": by_id[0], "median": statistics.median(by_id), "max": by_id[-1]}
            if by_id else None,
        },
        **timeline(imports, started, ended, scenario.slots),
    }


def summarize(runs: list[dict]) -> dict:
    """Medians over the runs of one policy (one run: that run)."""
    def median(get) -> float:
        return statistics.median(get(r) for r in runs)

    first = runs[0]
    return {
        "policy": first["policy"], "config_extra": first["config_extra"], "runs": len(runs),
        "imports": median(lambda r: r["imports"]),
        "wall_s": median(lambda r: r["wall_s"]), "wall_s_min": min(r["wall_s"] for r in runs),
        "wall_s_max": max(r["wall_s"] for r in runs),
        "ideal_s": median(lambda r: r["ideal_s"]), "ratio": median(lambda r: r["ratio"]),
        "calls_total": median(lambda r: r["calls"]["total"]),
        "calls_per_import": median(lambda r: r["calls"]["per_import"]),
        "by_kind_per_import": {k: median(lambda r, k=k: r["calls"]["by_kind_per_import"].get(k, 0)) for k in KINDS},
        "by_id_reads_per_import": _spread([r["calls"]["by_id_reads_per_import"] for r in runs]),
        "startup_s": median(lambda r: r["startup_s"] or 0.0),
        "handover_s_mean": median(lambda r: (r["handover_s"] or {}).get("mean", 0.0)),
        "handover_s_max": median(lambda r: (r["handover_s"] or {}).get("max", 0.0)),
        "tail_s": median(lambda r: r["tail_s"] or 0.0),
        "import_s_mean": median(lambda r: r["import_s_mean"] or 0.0),
    }


def _spread(spreads: list[dict | None]) -> dict | None:
    """Reads by id per import over several runs: the lowest minimum, the median median, the highest maximum."""
    found = [s for s in spreads if s]
    if not found:
        return None
    return {"min": min(s["min"] for s in found), "median": statistics.median(s["median"] for s in found),
            "max": max(s["max"] for s in found)}


def run_scenario(scenario: Scenario, policies: dict[str, dict], *, runs: int = 1, progress=None) -> dict:
    """Every policy `runs` times (alternating), each against a fresh emulator; the runs and their medians."""
    say = progress or (lambda text: None)
    by_policy: dict[str, list[dict]] = {name: [] for name in policies}
    with tempfile.TemporaryDirectory(prefix="scarf-bound-") as tmp:
        work = Path(tmp)
        catalog = work / "catalog.json"
        catalog.write_text(json.dumps(data.catalog()))
        input_path = work / "input.jsonl"
        say(f"writing {scenario.records:,} {scenario.variant} records")
        data.write_input(input_path, scenario.records, variant=scenario.variant)
        for run in range(runs):
            names = list(policies) if run % 2 == 0 else list(reversed(policies))
            for name in names:
                say(f"run {run + 1}/{runs}, policy {name}: {scenario.imports} imports of {scenario.import_seconds:g} s, "
                    f"{scenario.slots} slots (ideal {scenario.ideal_s:.1f} s)")
                result = run_once(work, scenario, name, policies[name], input_path, catalog)
                say(f"  {result['wall_s']:.1f} s wall ({result['ratio']:.2f}x ideal), {result['calls']['total']} API calls, "
                    f"{result['calls']['per_import']:.1f} per import")
                by_policy[name].append(result)
    return {
        "scenario": {**asdict(scenario), "records": scenario.records, "ideal_s": scenario.ideal_s},
        "runs": runs,
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "policies": {name: {"summary": summarize(results), "runs": results} for name, results in by_policy.items()},
    }


def report(results: dict) -> str:
    s = results["scenario"]
    lines = [
        f"Scarf-bound scenario: {s['imports']} imports of {s['events_per_import']:,} events ({s['variant']} data), each "
        f"taking {s['import_seconds']:g} s in the emulator, {s['slots']} slots: ideal {s['ideal_s']:.1f} s "
        f"(imports x import time / slots). `python -m destination_scarf write`, end to end; "
        f"{'median of ' + str(results['runs']) + ' runs' if results['runs'] > 1 else 'one run'}; "
        f"{results['machine']['cores']} cores.",
        "",
        "| policy | imports | wall | wall/ideal | API calls | per import | " + " | ".join(
            f"{word} per import" for kind, word in KINDS.items() if kind != "other") + " |",
        "|---|" + "---|" * (5 + len(KINDS) - 1),
    ]
    summaries = [p["summary"] for p in results["policies"].values()]
    for p in summaries:
        lines.append(
            f"| {p['policy']} | {p['imports']:g} | {p['wall_s']:.1f} s | {p['ratio']:.2f} | {p['calls_total']:g} | "
            f"{p['calls_per_import']:.1f} | " + " | ".join(
                f"{p['by_kind_per_import'][kind]:.2f}" for kind in KINDS if kind != "other") + " |")
    lines += ["", "| policy | reads by id per import (min / median / max) | start-up to first upload | "
                  "slot handover (mean / max) | tail after the last import | import time in the emulator (mean) |",
              "|---|---|---|---|---|---|"]
    for p in summaries:
        spread = p["by_id_reads_per_import"]
        by_id = f"{spread['min']} / {spread['median']:g} / {spread['max']}" if spread else "n/a"
        lines.append(
            f"| {p['policy']} | {by_id} | "
            f"{p['startup_s']:.2f} s | {p['handover_s_mean']:.2f} / {p['handover_s_max']:.2f} s | {p['tail_s']:.2f} s | "
            f"{p['import_s_mean']:.2f} s |")
    lines.append("")
    for p in summaries:
        lines.append(f"- {p['policy']}: extra connector config {json.dumps(p['config_extra']) if p['config_extra'] else 'none (defaults)'}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Scenario()
    parser.add_argument("--imports", type=int, default=defaults.imports, help="imports the sync makes")
    parser.add_argument("--import-seconds", type=float, default=defaults.import_seconds,
                        help="how long the emulator takes for every import, whatever its size")
    parser.add_argument("--slots", type=int, default=defaults.slots, help="max_concurrent_imports")
    parser.add_argument("--events-per-import", type=int, default=defaults.events_per_import, help="batch_max_events")
    parser.add_argument("--variant", choices=data.VARIANTS, default=defaults.variant, help="input data (bench/data.py)")
    parser.add_argument("--policy", action="append", default=None, metavar="NAME=JSON",
                        help="a named set of extra connector config keys, merged into the config (repeatable; "
                             "default: list={} and by_id={\"status_polling\": \"by_id\"})")
    parser.add_argument("--runs", type=int, default=1, help="runs per policy (medians are reported)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                        help=f"directory for {RESULT_NAME}.json and {RESULT_NAME}.md")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def main(argv: list[str] | None = None, prog: str = "python -m bench.scarf_bound") -> dict:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.imports < 1 or args.slots < 1 or args.events_per_import < 1 or not args.import_seconds > 0 or args.runs < 1:
        parser.error("imports, slots, events per import, import seconds and runs must be positive")
    try:
        policies = dict(parse_policy(text) for text in args.policy) if args.policy else dict(POLICIES)
    except ValueError as exc:
        parser.error(str(exc))
    if args.policy and len(policies) != len(args.policy):
        parser.error("policy names must differ")
    scenario = Scenario(args.imports, args.import_seconds, args.slots, args.events_per_import, args.variant)
    started = time.perf_counter()

    def progress(text: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    results = run_scenario(scenario, policies, runs=args.runs, progress=progress)
    results["elapsed_s"] = time.perf_counter() - started
    text = report(results)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{RESULT_NAME}.json").write_text(json.dumps(results, indent=2))
    (args.results / f"{RESULT_NAME}.md").write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
