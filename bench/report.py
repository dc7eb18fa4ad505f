"""Every benchmark in one run, one table: `scripts/bench report [--quick] [--only load,scale]`.

Prints one table (figure, value, baseline measured in the same run, ratio, target) and writes it to
bench/results/report.md and bench/results/report.json, so the README's numbers come from one command.
--quick keeps each benchmark small (a few minutes in all); the full run is what the README quotes. Each
benchmark also runs alone (`scripts/bench load --clients 200`), with the same figures.

A benchmark that fails is reported as such and the others still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from bench.common import RESULTS, ROOT, Figure

# name -> (quick arguments, full arguments). The fast ones first: the real-Spark ones take minutes.
PLAN: dict[str, tuple[list[str], list[str]]] = {
    "load": (["--clients", "50", "--seconds", "5", "--api-workers", "2"], ["--api-workers", "2"]),
    "scale": (["--items", "1000"], ["--items", "10000"]),
    "batch_submit": (["--runs", "1"], ["--runs", "3"]),
    "sessions": (["--statements", "30", "--starts", "1"], []),
    "clusters": (["--runs", "1"], ["--runs", "3"]),
}


@dataclass
class Outcome:
    benchmark: str
    arguments: list[str]
    seconds: float
    figures: list[Figure]
    error: str | None = None


def _main_of(name: str) -> Callable[[list[str]], list[Figure]]:
    module = __import__(f"bench.{name}", fromlist=["main"])
    main: Callable[[list[str]], list[Figure]] = module.main
    return main


def run(names: list[str], quick: bool) -> list[Outcome]:
    outcomes = []
    for name in names:
        arguments = PLAN[name][0 if quick else 1]
        print(f"\n=== {name} {' '.join(arguments)}", flush=True)
        started = time.perf_counter()
        try:
            figures, error = _main_of(name)(arguments), None
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            figures, error = [], f"{type(exc).__name__}: {exc}"
        outcomes.append(Outcome(name, arguments, time.perf_counter() - started, figures, error))
    return outcomes


def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def rows(outcomes: list[Outcome]) -> list[list[str]]:
    table = []
    for outcome in outcomes:
        if outcome.error:
            table.append([outcome.benchmark, "FAILED", outcome.error[:60], "", "", ""])
        for f in outcome.figures:
            table.append(
                [
                    outcome.benchmark,
                    f.name,
                    f"{_number(f.value)} {f.unit}",
                    f"{_number(f.baseline)} {f.unit} ({f.baseline_name})",
                    _number(f.ratio),
                    f.target or "",
                ]
            )
    return table


HEADER = ["benchmark", "figure", "value", "baseline (same run)", "ratio", "target"]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def host_loop_ms() -> float:
    """The best of five runs of one fixed pure-Python loop, before any benchmark. The development machines differ
    from day to day by up to three times (the same GET /healthz phase served 2,797 req/s on one day and 9,015 on
    another, a bare getOrCreate took 7.3 s and 15.9 s): with this beside them, reports of different days can be
    told apart from changes in the code."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(2_000_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def markdown(outcomes: list[Outcome], command: str, host_ms: float) -> str:
    lines = [
        "# sparkplane benchmarks",
        "",
        f"`{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"host speed: a fixed Python loop in {host_ms:.0f} ms (bench/report.host_loop_ms).",
        "Baselines are measured in the same run; targets are reported, not asserted.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(outcomes)]
    lines += ["", "| benchmark | arguments | took |", "|---|---|---|"]
    lines += [f"| {o.benchmark} | `{' '.join(o.arguments)}` | {o.seconds:.0f} s |" for o in outcomes]
    return "\n".join(lines) + "\n"


def write(outcomes: list[Outcome], command: str, host_ms: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.md").write_text(markdown(outcomes, command, host_ms))
    data = {
        "command": command,
        "machine": machine(),
        "host_loop_ms": host_ms,
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "benchmarks": [
            {**asdict(o), "figures": [{**asdict(f), "ratio": f.ratio} for f in o.figures]} for o in outcomes
        ],
    }
    (RESULTS / "report.json").write_text(json.dumps(data, indent=2, default=str))


def show(outcomes: list[Outcome]) -> None:
    table = Table(title="sparkplane benchmarks")
    for column in HEADER:
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for row in rows(outcomes):
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small runs: a few minutes in all")
    parser.add_argument("--only", default=",".join(PLAN), help=f"comma-separated, of: {', '.join(PLAN)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLAN]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(PLAN)}")
    command = (
        "scripts/bench report"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if argv and "--only" in argv else "")
    )
    host_ms = host_loop_ms()
    print(f"host speed: a fixed Python loop in {host_ms:.0f} ms", flush=True)
    outcomes = run(names, args.quick)
    show(outcomes)
    write(outcomes, command, host_ms)
    print(f"(written to {(RESULTS / 'report.md').relative_to(ROOT)} and report.json)")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
