"""Benchmark: how a cell's cost grows with its members, and cells per second by executor.

What is measured
    (a) Members per stack. One cell — digits, mlp hidden 128, adam lr 1e-3, `--epochs` (20)
        epochs, batch 32, cpu — trained with M members for M in MEMBERS (1, 2, 4, ..., 64) by
        `dlbench.engine.trainer.train_grid(dataset, spec, [config], members)` at 1 torch thread. The
        members are M seeds (0..M-1) on the same rows: a fixed 75/25 split of digits (a
        permutation drawn with seed 0). The sweep runs `--repeats` times, ascending then
        descending. Figures: median and best seconds, seconds per member, and the speed-up per
        member against M=1 (M × seconds(1) ÷ seconds(M)): how the cost grows with the work.

    (b) Cells per second. A grid of 8 cells — mlp of hidden width 16, 32, ..., 128, each its
        own task (`dlbench.engine.cells.tasks`), 4 seeds each on the same split, `--epochs` epochs —
        run by each executor:

        inline      Engine(ExecutionConfig(threads=1)): in this process (also what
                    --workers 1 gives: a pool is started only for more than one worker);
        pool of 1   dlbench.engine.execution.Pool(1, threads=1) driven directly: a real one-worker
                    process pool, which no ExecutionConfig gives (the pool's own overhead);
        workers=2   Engine(ExecutionConfig(workers=2)): a two-worker pool, 1 thread each.

        Each is timed from its creation to the first results ("first": pool start-up
        included), then a second run on the same engine ("second": warm workers), then its
        close. Start-up ≈ first − second. The executors alternate their order between repeats.
        Figures: medians and best, cells per second, and the speed-up against inline.
        Check: every executor, every run, gives bit-identical validation probabilities
        (each member's `predictions["val"].proba` bytes) to the first inline run.

    The process is warmed up first (torch's one-off costs and a throwaway one-member cell).
    Verdict: exit code 0 when the predictions are bit-identical, 1 when they are not.

How to run
    .venv/bin/python benchmarks/bench_cells.py
    .venv/bin/python benchmarks/bench_cells.py --repeats 5 --epochs 20 --json cells.json
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import harness
import numpy as np
import torch
import typer
from rich.table import Table

from dlbench.data.datasets import Dataset, DataSpec, load_dataset
from dlbench.engine.cells import Cell, tasks
from dlbench.engine.execution import Engine, ExecutionConfig, Pool, Results, Task
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.trainer import train_grid
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec

DATASET = "digits"
HIDDEN = 128
LR = 1e-3
BATCH_SIZE = 32
VAL_FRACTION = 0.25
SPLIT_SEED = 0
MEMBERS = (1, 2, 4, 8, 16, 32, 64)  # (a): members of the one cell
WIDTHS = (16, 32, 48, 64, 80, 96, 112, 128)  # (b): one cell (and task) per mlp width
GRID_SEEDS = 4  # (b): members of each cell


def train_config(epochs: int) -> TrainConfig:
    return TrainConfig(OptimSpec("adam", LR), epochs, BATCH_SIZE, "standardize", device="cpu")


def split(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The fixed 75/25 split: (training rows, validation rows)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(dataset.n_samples)
    cut = round((1 - VAL_FRACTION) * len(order))
    return np.sort(order[:cut]), np.sort(order[cut:])


def members(n: int, rows: tuple[np.ndarray, np.ndarray]) -> list[Member]:
    """Seeds 0..n-1 on the same training and validation rows."""
    train, val = rows
    return [Member({"seed": s}, s, train, {"val": val}) for s in range(n)]


# --- (a) members per stack -------------------------------------------------------------------


def members_sweep(dataset: Dataset, config: TrainConfig, rows, repeats: int,
                  print: Callable[[str], Any]) -> dict[int, list[float]]:
    """Seconds of the one cell at each member count, `repeats` sweeps (ascending, descending)."""
    spec = ModelSpec("mlp", (HIDDEN,))
    times: dict[int, list[float]] = {m: [] for m in MEMBERS}
    with Engine(ExecutionConfig(threads=1)):  # this process's torch threads: 1, restored after
        for i in range(repeats):
            for m in MEMBERS if i % 2 == 0 else reversed(MEMBERS):
                seconds, _ = harness.timed(train_grid, dataset, spec, [config], members(m, rows))
                times[m].append(seconds)
                print(f"  run {i + 1}/{repeats} M={m:<2}: {seconds:6.3f} s  "
                      f"{seconds / m:.4f} s per member")
    return times


def members_table(times: dict[int, list[float]]) -> Table:
    one = statistics.median(times[1]), min(times[1])
    table = harness.table(f"(a) one cell ({DATASET}, mlp {HIDDEN}) with M members, 1 thread",
                          "M", "median (s)", "best (s)", "s per member", "speed-up per member")
    for m, t in times.items():
        median, best = statistics.median(t), min(t)
        table.add_row(str(m), f"{median:.3f}", f"{best:.3f}", f"{median / m:.4f}",
                      f"{m * one[0] / median:.1f}× ({m * one[1] / best:.1f}×)")
    return table


# --- (b) cells per second --------------------------------------------------------------------


class DirectPool:
    """`dlbench.engine.execution.Pool` driven without an Engine: ExecutionConfig(workers=1) runs
    inline, so this is the only way to time a one-worker pool. Engine-like: `run`, a context."""

    def __init__(self, workers: int, threads: int):
        self.pool = Pool(workers, threads)

    def __enter__(self) -> DirectPool:
        return self

    def __exit__(self, *error) -> None:
        self.pool.close(abort=error[0] is not None)

    def run(self, dataset: Dataset, found: list[Task]) -> list[Results]:
        done = dict(self.pool.map(dataset, found, None))
        return [done[i] for i in range(len(found))]


EXECUTORS: dict[str, Callable[[], Any]] = {
    "inline": lambda: Engine(ExecutionConfig(threads=1)),
    "pool of 1": lambda: DirectPool(1, 1),
    "workers=2": lambda: Engine(ExecutionConfig(workers=2)),
}


@dataclass
class Timing:
    """One executor's runs: seconds of each phase, in run order."""

    first: list[float]  # creation to the first results (pool start-up included)
    second: list[float]  # a second run on the same engine
    close: list[float]  # closing it (the pool's workers joined)

    @property
    def startup(self) -> list[float]:
        return [a - b for a, b in zip(self.first, self.second, strict=True)]


def grid_runs(dataset: Dataset, found: list[Task], repeats: int, print: Callable[[str], Any]
              ) -> tuple[dict[str, Timing], dict[str, list[list[Results]]]]:
    """Each executor `repeats` times (order alternating): its timings and every run's results."""
    timing = {name: Timing([], [], []) for name in EXECUTORS}
    results: dict[str, list[list[Results]]] = {name: [] for name in EXECUTORS}
    for i in range(repeats):
        for name in list(EXECUTORS) if i % 2 == 0 else reversed(EXECUTORS):
            t = timing[name]
            start = time.perf_counter()
            with EXECUTORS[name]() as engine:
                results[name].append(engine.run(dataset, found))
                t.first.append(time.perf_counter() - start)
                seconds, again = harness.timed(engine.run, dataset, found)
                results[name].append(again)
                t.second.append(seconds)
                closing = time.perf_counter()
            t.close.append(time.perf_counter() - closing)
            print(f"  run {i + 1}/{repeats} {name:>9}: first {t.first[-1]:6.3f} s, second "
                  f"{t.second[-1]:6.3f} s, close {t.close[-1]:.3f} s")
    return timing, results


def probabilities(run: list[Results]) -> list[bytes]:
    """Every member's validation probabilities, as bytes, task by task."""
    return [r.predictions["val"].proba.tobytes() for task in run for cell in task for r in cell]


def identical(results: dict[str, list[list[Results]]]) -> dict[str, bool]:
    """Per executor: whether all its runs give the first inline run's probabilities, bit for bit."""
    reference = probabilities(results["inline"][0])
    return {name: all(probabilities(run) == reference for run in runs)
            for name, runs in results.items()}


def grid_table(timing: dict[str, Timing]) -> Table:
    n = len(WIDTHS)
    inline = statistics.median(timing["inline"].first), statistics.median(timing["inline"].second)
    table = harness.table(f"(b) {n} cells × {GRID_SEEDS} seeds: seconds median (best), cells/s",
                          "executor", "first (s)", "second (s)", "start-up", "cells/s",
                          "× inline")
    for name, t in timing.items():
        first, second = statistics.median(t.first), statistics.median(t.second)
        table.add_row(name, f"{first:.2f} ({min(t.first):.2f})",
                      f"{second:.2f} ({min(t.second):.2f})",
                      f"{statistics.median(t.startup):.2f}",
                      f"{n / first:.1f} / {n / second:.1f}",
                      f"{inline[0] / first:.2f} / {inline[1] / second:.2f}")
    return table


# --- the benchmark -----------------------------------------------------------------------------


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 20,
         json_path: harness.JsonPath = None) -> None:
    """Time one cell at 1..64 members, and an 8-cell grid inline and in process pools."""
    console = harness.start(repeats, epochs)

    def say(line: str) -> None:
        console.print(line, highlight=False)

    load_before = harness.load_average()
    say(f"bench_cells: {DATASET}, adam lr={LR:g}, batch {BATCH_SIZE}, {epochs} epochs, cpu, "
        f"fixed {1 - VAL_FRACTION:.0%}/{VAL_FRACTION:.0%} split; "
        f"{harness.machine_line(load_before, repeats)}")
    dataset = load_dataset(DataSpec(DATASET))
    config, rows = train_config(epochs), split(dataset)
    harness.warm_up()
    with Engine(ExecutionConfig(threads=1)):  # throwaway: one-off costs charged to no run
        train_grid(dataset, ModelSpec("mlp", (HIDDEN,)), [config], members(1, rows))

    say(f"(a) one cell, mlp {HIDDEN}, M members (seeds) on the same rows; load average "
        f"{harness.load_average():.2f}")
    sweep = members_sweep(dataset, config, rows, repeats, say)

    grid_members = members(GRID_SEEDS, rows)  # one list: every cell trains these members
    cells = [Cell(ModelSpec("mlp", (w,)), config) for w in WIDTHS]
    found = [task for task, _ in tasks(dataset, cells, lambda cell: grid_members)]
    assert len(found) == len(WIDTHS), "each width is its own task"
    assert ExecutionConfig(workers=1).executor == "inline"
    say(f"(b) {len(found)} cells (mlp widths {', '.join(map(str, WIDTHS))}) × {GRID_SEEDS} "
        f"seeds, one task each; load average {harness.load_average():.2f}")
    timing, results = grid_runs(dataset, found, repeats, say)
    same = identical(results)
    load_after = harness.load_average()

    console.print(members_table(sweep))
    say("speed-up per member: M × seconds(M=1) ÷ seconds(M), of medians (of best runs)")
    console.print(grid_table(timing))
    say("first: creation to results (pool start-up included); second: again, same engine; "
        "start-up: median of first − second; cells/s and × inline: first / second. "
        "'pool of 1' is execution.Pool(1) driven directly (--workers 1 runs inline)")
    say(f"load average {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} "
        "CPUs")
    passed = all(same.values())
    runs = 2 * repeats
    if passed:
        console.print(f"PASS: bit-identical validation probabilities from every executor "
                      f"({', '.join(same)}; {runs} runs each)", style="bold green",
                      highlight=False)
    else:
        differ = ", ".join(name for name, ok in same.items() if not ok)
        console.print(f"FAIL: validation probabilities differ from inline's: {differ}",
                      style="bold red", highlight=False)

    if json_path is not None:
        figures = {
            "torch": torch.__version__, "cpus": os.cpu_count(), "repeats": repeats,
            "epochs": epochs, "load_average": [load_before, load_after],
            "members_per_stack": {
                "cell": f"{DATASET}, mlp {HIDDEN}, adam lr={LR:g}, batch {BATCH_SIZE}, cpu",
                "threads": 1,
                "seconds": {str(m): t for m, t in sweep.items()},
                "median_seconds": {str(m): statistics.median(t) for m, t in sweep.items()},
                "best_seconds": {str(m): min(t) for m, t in sweep.items()},
            },
            "cells_per_second": {
                "widths": list(WIDTHS), "seeds": GRID_SEEDS,
                "executors": {name: {"first_seconds": t.first, "second_seconds": t.second,
                                     "close_seconds": t.close, "startup_seconds": t.startup,
                                     "identical_predictions": same[name]}
                              for name, t in timing.items()},
            },
            "passed": passed,
        }
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    typer.run(main)
