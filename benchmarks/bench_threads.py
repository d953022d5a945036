"""Benchmark: the default run at 1 and 2 torch threads, idle and beside a busy process, in one run.

What is measured
    The job of the default run,

        dlbench cv --k 4 --repeats 3

    (digits, mlp 128, adam lr 1e-3, batch 32, 20 epochs: 12 members in one stack), as
    `dlbench cv` drives it: its `CVConfig` (bench_cv.cv_config), `prepare(config)` once,
    then `run(plan, engine)` timed inside `with Engine(ExecutionConfig(threads=T))` for T in
    (1, 2), in three conditions:

    idle          nothing started by this benchmark (the machine may still be shared: the load
                  average is printed before each condition);
    1 busy loop   beside one single-threaded CPU hog: a subprocess spinning a pure-Python loop;
    2-thread job  beside a multi-threaded job: a subprocess multiplying 512×512 matrices in a
                  loop with torch.set_num_threads(2).

    A neighbour is started before its condition's timings (and waited for until it is running)
    and killed after them; the CPU it used meanwhile is printed, in cores. Within a condition
    the thread counts alternate (1 then 2, then 2 then 1, ...), `--repeats` runs each. The
    process is warmed up first (torch's one-off costs and a throwaway run of the job).

    Figures: per condition and thread count the median and best seconds; the ratios busy ÷ idle
    per thread count and threads=2 ÷ threads=1 per condition (of medians, and of best runs).

    There is no target: this documents the thread policy (dlbench runs 1 torch thread per
    process by default, ExecutionConfig.threads), so the exit code is 0 except on bad options.

How to run
    .venv/bin/python benchmarks/bench_threads.py
    .venv/bin/python benchmarks/bench_threads.py --repeats 5 --json threads.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import harness
import torch
import typer
from bench_cv import cv_config
from rich.table import Table

from dlbench.engine.execution import Engine, ExecutionConfig
from dlbench.runners import cv as runner

THREADS = (1, 2)
IDLE_LOAD = 1.0  # load average before "idle" above which other work shared the machine
COMMAND = "dlbench cv --k 4 --repeats 3"

# The neighbours: each prints "ready" once it is running its loop.
BUSY_LOOP = "print('ready', flush=True)\nwhile True:\n    pass\n"
MATMUL = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(512, 512)\na @ a\n"
          "print('ready', flush=True)\nwhile True:\n    a @ a\n")
CONDITIONS: dict[str, str | None] = {
    "idle": None,
    "1 busy loop": BUSY_LOOP,
    "2-thread job": MATMUL,
}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (None where /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Neighbour:
    """What a neighbour did while it ran beside the timings."""

    wall: float = 0.0  # seconds from "ready" to its kill
    cpu: float | None = None  # CPU seconds it used meanwhile

    @property
    def cores(self) -> float | None:
        return None if self.cpu is None or self.wall <= 0 else self.cpu / self.wall


@contextmanager
def neighbour(code: str | None) -> Iterator[Neighbour]:
    """Run `code` in a subprocess (none for None) for the duration of the block, then kill it."""
    seen = Neighbour()
    if code is None:
        yield seen
        return
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"the neighbour process exited {proc.wait()} before it was ready")
        start, cpu_start = time.perf_counter(), cpu_seconds(proc.pid)
        yield seen
        cpu_end = cpu_seconds(proc.pid)
        seen.wall = time.perf_counter() - start
        if cpu_start is not None and cpu_end is not None:
            seen.cpu = cpu_end - cpu_start
    finally:
        proc.kill()
        proc.wait()


def run_job(plan: runner.Plan, threads: int) -> float:
    """The default run's job at `threads` torch threads -> its mean validation accuracy."""
    with Engine(ExecutionConfig(threads=threads)) as engine:
        result = runner.run(plan, engine)
    s = result.scores
    mask = (s.model == plan.config.model.name) & (s.split == "val") & (s.metric == "accuracy")
    return float(s.loc[mask, "value"].mean())


@dataclass(frozen=True)
class Condition:
    """One condition's figures, by thread count."""

    load: float  # 1-minute load average before its timings
    times: dict[int, list[float]]
    accuracy: dict[int, float]  # mean validation accuracy over its runs
    neighbour: Neighbour

    def median(self, t: int) -> float:
        return statistics.median(self.times[t])

    def best(self, t: int) -> float:
        return min(self.times[t])


def measure(name: str, code: str | None, plan: runner.Plan, repeats: int, console) -> Condition:
    """Time both thread counts `repeats` times, alternating, beside `code`'s process."""
    load = harness.load_average()
    console.print(f"{name}: load average {load:.2f} on {os.cpu_count()} CPUs", highlight=False)
    sides = {f"threads={t}": (lambda t=t: run_job(plan, t)) for t in THREADS}
    with neighbour(code) as seen:
        times, accuracy = harness.alternate(
            sides, repeats, lambda line: console.print(line, highlight=False))
    if seen.cores is not None:
        console.print(f"  the neighbour used {seen.cores:.2f} cores over {seen.wall:.1f} s",
                      highlight=False)
    return Condition(load, {t: times[f"threads={t}"] for t in THREADS},
                     {t: statistics.fmean(accuracy[f"threads={t}"]) for t in THREADS}, seen)


def ratio_cell(num: float, den: float, num_best: float, den_best: float) -> str:
    """A ratio of medians, with that of the best runs in brackets."""
    return f"{num / den:.2f} ({num_best / den_best:.2f})"


def summary_table(conditions: dict[str, Condition]) -> Table:
    """One row per condition and thread count; ratios of medians (of best runs)."""
    idle = conditions["idle"]
    table = harness.table(f"{COMMAND}: seconds by condition and torch threads", "condition",
                          "threads", "median (s)", "best (s)", "÷ idle", "2 ÷ 1")
    for name, c in conditions.items():
        for t in THREADS:
            table.add_row(
                name if t == THREADS[0] else "", str(t), f"{c.median(t):.3f}", f"{c.best(t):.3f}",
                "" if c is idle else ratio_cell(c.median(t), idle.median(t), c.best(t),
                                                idle.best(t)),
                ratio_cell(c.median(2), c.median(1), c.best(2), c.best(1)) if t == 2 else "",
                end_section=t == THREADS[-1])
    return table


def figures(conditions: dict[str, Condition], repeats: int, epochs: int) -> dict[str, Any]:
    idle = conditions["idle"]
    return {
        "command": COMMAND, "epochs": epochs, "repeats": repeats, "torch": torch.__version__,
        "cpus": os.cpu_count(), "threads": list(THREADS),
        "neighbours": {name: code for name, code in CONDITIONS.items() if code is not None},
        "conditions": {name: {
            "load_average": c.load,
            "neighbour_cores": c.neighbour.cores,
            "seconds": {str(t): c.times[t] for t in THREADS},
            "median_seconds": {str(t): c.median(t) for t in THREADS},
            "best_seconds": {str(t): c.best(t) for t in THREADS},
            "mean_val_accuracy": {str(t): c.accuracy[t] for t in THREADS},
            "threads2_over_threads1": {"median": c.median(2) / c.median(1),
                                       "best": c.best(2) / c.best(1)},
            "over_idle": {str(t): {"median": c.median(t) / idle.median(t),
                                   "best": c.best(t) / idle.best(t)} for t in THREADS},
        } for name, c in conditions.items()},
    }


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 20,
         json_path: harness.JsonPath = None) -> None:
    """Time the default run at 1 and 2 torch threads, idle and beside busy processes."""
    console = harness.start(repeats, epochs)
    console.print(f"bench_threads: {COMMAND} (digits, mlp 128, adam lr=1e-3, batch 32, {epochs} "
                  f"epochs), threads {' and '.join(map(str, THREADS))}; "
                  f"{harness.machine_line(harness.load_average(), repeats)}", highlight=False)
    harness.warm_up()
    plan = runner.prepare(cv_config(epochs))
    run_job(plan, 1)  # throwaway: the first run's one-off costs are charged to no condition

    conditions = {name: measure(name, code, plan, repeats, console)
                  for name, code in CONDITIONS.items()}
    console.print(summary_table(conditions))
    console.print("÷ idle: busy ÷ idle at the same threads; 2 ÷ 1: threads=2 ÷ threads=1 in "
                  "the same condition; ratios of medians (of best runs). dlbench's default is "
                  "threads=1 per process (ExecutionConfig.threads); no target, exit code 0.",
                  highlight=False)
    if conditions["idle"].load > IDLE_LOAD:
        console.print(f"caution: load average {conditions['idle'].load:.2f} before 'idle' "
                      f"(this process's warm-up accounts for up to about {IDLE_LOAD:g}): other "
                      "work shared the machine, so 'idle' was not idle; compare the best runs",
                      style="yellow", highlight=False)
    if json_path is not None:
        json_path.write_text(json.dumps(figures(conditions, repeats, epochs), indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
