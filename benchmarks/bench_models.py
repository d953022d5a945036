"""Benchmark: a user's own MLP through `--model file.py:Name` (torch.func stacking) against the
built-in `mlp` (hand-written stacked layers) and a plain per-fold PyTorch loop, side by side.

What is measured
    bench_cv's job — 12 MLPs (64-128-10, ReLU) on sklearn's digits, one per split of a 4-fold ×
    3-repeat stratified k-fold, adam lr=1e-3, batch 32 — done three ways:

    plugged  `dlbench cv --model user_mlp.py:UserMLP` as the CLI drives it (prepare + run, no
             file writing): the user's nn.Module (nn.Sequential(Linear(64, 128), ReLU,
             Linear(128, 10)) in a file this script writes) stacked with torch.func;
    builtin  the same command with `--model mlp --hidden 128`: the fast path;
    plain    bench_cv's plain loop: per split, one model at a time, torch.optim.Adam and a
             DataLoader, the same epochs and batch size.

    Warm-up and alternation as in harness.py; each side runs `--repeats` times (the order
    rotating), the figures are medians. Printed: plain ÷ plugged (how much the generic path
    saves over a per-fold loop) and plugged ÷ builtin (what the generic path costs against
    the hand-written stacked layers).

    Verdict: PASS when the plugged path beats the plain loop (ratio > 1) at a mean validation
    accuracy within 1 point of it; exit code 0 on PASS, 1 on FAIL.

How to run
    .venv/bin/python benchmarks/bench_models.py              # or: make bench
    .venv/bin/python benchmarks/bench_models.py --repeats 5 --epochs 20
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import bench_cv
import harness
import numpy as np
import typer

from dlbench.nn.models import ModelSpec, parse_model
from dlbench.runners import cv as runner

USER_MLP = '''
import math

from torch import nn


class UserMLP(nn.Module):
    """The built-in mlp's widths, written as a user would (digits' rows are 1×8×8 images)."""

    def __init__(self, input_shape, n_outputs, hidden=128):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_outputs))

    def forward(self, x):
        return self.net(x)
'''
SIDES = ("plain", "builtin", "plugged")


def plugged_config(epochs: int, folder: Path) -> runner.CVConfig:
    """bench_cv's config with the user's MLP (from a file written to `folder`) as the model."""
    path = folder / "user_mlp.py"
    path.write_text(USER_MLP)
    name, params = parse_model(f"{path}:UserMLP[hidden={bench_cv.HIDDEN}]")
    return replace(bench_cv.cv_config(epochs), model=ModelSpec(name, params=params))


def run_cv(config: runner.CVConfig) -> float:
    """The cv runner -> mean validation accuracy of the trained model (its rows, not chance's)."""
    s = runner.run(runner.prepare(config)).scores
    mask = (s.model == config.model.shown) & (s.split == "val") & (s.metric == "accuracy")
    return float(s.loc[mask, "value"].mean())


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 20,
         threads: harness.Threads = 1) -> None:
    """Time a plugged MLP against the built-in mlp and a plain per-fold loop."""
    console = harness.start(repeats, epochs, threads)
    load = harness.load_average()
    console.print(f"bench_models: {bench_cv.DATASET}, user MLP vs mlp {bench_cv.HIDDEN} vs "
                  f"plain loop, {bench_cv.K}-fold × {bench_cv.CV_REPEATS}, {epochs} epochs; "
                  f"{harness.machine_line(load, repeats)}", highlight=False)
    harness.warm_up()
    with tempfile.TemporaryDirectory() as folder:
        configs = {"plain": bench_cv.cv_config(epochs), "builtin": bench_cv.cv_config(epochs),
                   "plugged": plugged_config(epochs, Path(folder))}
        run_cv(configs["plugged"])  # untimed: torch.func's first import and vmap's set-up
        sides = {"plain": lambda: bench_cv.run_plain(configs["plain"]),
                 "builtin": lambda: run_cv(configs["builtin"]),
                 "plugged": lambda: run_cv(configs["plugged"])}
        times, accuracy = harness.alternate(
            sides, repeats, lambda line: console.print(line, highlight=False))
    median = {name: statistics.median(t) for name, t in times.items()}
    mean_acc = {name: float(np.mean(a)) for name, a in accuracy.items()}
    table = harness.table("user MLP (torch.func) vs built-in mlp vs plain loop (12 models)",
                          "side", "median (s)", "mean val accuracy")
    for name in SIDES:
        table.add_row(name, f"{median[name]:.3f}", f"{mean_acc[name]:.4f}")
    console.print(table)
    beats = median["plain"] / median["plugged"]
    costs = median["plugged"] / median["builtin"]
    diff = 100 * (mean_acc["plugged"] - mean_acc["plain"])
    console.print(f"plain ÷ plugged: {beats:.2f}×   plugged ÷ builtin: {costs:.2f}×   "
                  f"accuracy plugged − plain: {diff:+.2f} points", highlight=False)
    passed = beats > 1 and abs(diff) <= harness.ACCURACY_TOLERANCE
    console.print(f"{'PASS' if passed else 'FAIL'}: the plugged path is {beats:.2f}× the plain "
                  f"loop's speed (required: > 1× within {harness.ACCURACY_TOLERANCE:g} point)",
                  style="bold green" if passed else "bold red", highlight=False)
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    typer.run(main)
