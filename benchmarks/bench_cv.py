"""Benchmark: `dlbench cv` against a plain per-fold PyTorch loop, timed side by side in one run.

What is measured
    The job of

        dlbench cv --dataset digits --model mlp --hidden 128 --k 4 --repeats 3 --epochs 20 \
            --batch-size 32 --opt adam --lr 1e-3

    i.e. 12 MLPs (64-128-10, ReLU) on sklearn's digits, one per split of a 4-fold × 3-repeat
    stratified k-fold, done two ways:

    dlbench  the cv runner exactly as `dlbench.cli.cv` drives it: the same `CVConfig`, then
             `prepare(config)` and `run(plan)` — everything `run` does (stacked training, every
             metric, the chance baseline, the curves, the summary) — but no file writing and no
             progress bar.
    plain    what a typical user writes: load digits, take the *same* 12 splits from
             `dlbench.splits.make_splits` (same `SplitConfig` as the runner), and per split fit a
             StandardScaler on the training rows, build nn.Sequential(Linear(64, 128), ReLU,
             Linear(128, 10)), torch.optim.Adam(lr=1e-3, torch defaults), DataLoader(
             TensorDataset(...), batch_size=32, shuffle=True), train for the epochs, then score
             accuracy on the validation rows.

    Each timed side starts from the dataset name (load + splits + training + evaluation).
    Before any timing the process is warmed up once (a throwaway torch.optim optimizer, whose
    first construction imports torch._dynamo, and a tiny forward/backward), so that one-off cost
    is charged to neither side. Each side runs `--repeats` times, the order alternating between
    runs; the figures are the medians and the ratio of medians (plain / dlbench). Torch keeps
    its default thread count on both sides. The best (fastest) run of each side, their ratio and
    the load average are printed too: on a busy machine torch's intra-op threads wait on
    descheduled peers and the times swing widely, so compare the two ratios before trusting one.

    Verdict: PASS when dlbench is at least 5× faster and the two mean validation accuracies are
    within 1 point (percentage point) of each other; exit code 0 on PASS, 1 on FAIL.

How to run
    .venv/bin/python benchmarks/bench_cv.py                  # or: make bench
    .venv/bin/python benchmarks/bench_cv.py --repeats 5 --epochs 20 --json bench.json
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
import typer
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbench.datasets import DataSpec
from dlbench.models import ModelSpec
from dlbench.optim import OptimSpec
from dlbench.runners import cv as runner
from dlbench.splits import SplitConfig, make_splits
from dlbench.trainer import TrainConfig

REQUIRED_SPEEDUP = 5.0  # plain seconds / dlbench seconds, at least
ACCURACY_TOLERANCE = 1.0  # |mean val accuracy difference| in percentage points, at most

DATASET = "digits"
HIDDEN = 128
K = 4
CV_REPEATS = 3
BATCH_SIZE = 32
LR = 1e-3
SEED = 0


def cv_config(epochs: int) -> runner.CVConfig:
    """The CVConfig `dlbench.cli.cv` builds for the benchmarked command line (its defaults else)."""
    return runner.CVConfig(
        data=DataSpec(DATASET, None, None, None, None, False),
        model=ModelSpec("mlp", (HIDDEN,), (16, 32), "relu", False, 0.0, "default"),
        train=TrainConfig(OptimSpec("adam", LR), epochs, BATCH_SIZE, "standardize"),
        split=SplitConfig("kfold", K, CV_REPEATS, 0.25, 1, True, False, SEED),
        seeds=1, test_fraction=None, metrics=(),
    )


# --- the two sides -----------------------------------------------------------------------------


def run_dlbench(config: runner.CVConfig) -> float:
    """The cv runner as the CLI uses it -> mean validation accuracy of the trained model."""
    plan = runner.prepare(config)
    result = runner.run(plan)
    s = result.scores
    mask = (s.model == config.model.name) & (s.split == "val") & (s.metric == "accuracy")
    return float(s.loc[mask, "value"].mean())


def run_plain(config: runner.CVConfig) -> float:
    """A per-fold PyTorch loop on the same splits -> mean validation accuracy."""
    X, y = load_digits(return_X_y=True)
    X, y = X.astype(np.float32), y.astype(np.int64)
    splits = make_splits(y, config.split, task="classification")
    accuracies = []
    for i, split in enumerate(splits):
        torch.manual_seed(i)  # this fold's initial weights and shuffling
        scaler = StandardScaler().fit(X[split.train])
        x_train = torch.as_tensor(scaler.transform(X[split.train]), dtype=torch.float32)
        x_val = torch.as_tensor(scaler.transform(X[split.val]), dtype=torch.float32)
        y_train, y_val = torch.as_tensor(y[split.train]), torch.as_tensor(y[split.val])
        model = nn.Sequential(nn.Linear(X.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH_SIZE, shuffle=True)
        model.train()
        for _ in range(config.train.epochs):
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            accuracies.append((model(x_val).argmax(1) == y_val).float().mean().item())
    return float(np.mean(accuracies))


def warm_up() -> None:
    """One-off per-process costs, paid before either side is timed."""
    w = torch.zeros(4, 2, requires_grad=True)
    torch.optim.Adam([w], lr=LR)  # the first torch.optim optimizer imports torch._dynamo (~1.6 s)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss = F.cross_entropy(model(torch.randn(3, 4)), torch.tensor([0, 1, 0]))
    loss.backward()
    opt.step()


def check_same_splits(config: runner.CVConfig) -> None:
    """The plain loop's splits are the runner's splits (checked once, untimed)."""
    plan = runner.prepare(config)
    y = load_digits(return_X_y=True)[1].astype(np.int64)
    ours = make_splits(y, config.split, task="classification")
    assert len(ours) == len(plan.splits) == K * CV_REPEATS
    for a, b in zip(ours, plan.splits, strict=True):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)


# --- the benchmark -----------------------------------------------------------------------------


def timed(fn, config) -> tuple[float, float]:
    start = time.perf_counter()
    accuracy = fn(config)
    return time.perf_counter() - start, accuracy


def verdict(ratio: float, diff_points: float) -> tuple[bool, str]:
    required = f"(required: ≥ {REQUIRED_SPEEDUP:g}× within {ACCURACY_TOLERANCE:g} point)"
    reasons = []
    if ratio < REQUIRED_SPEEDUP:
        reasons.append(f"dlbench is only {ratio:.1f}× faster")
    if not abs(diff_points) <= ACCURACY_TOLERANCE:
        reasons.append(f"mean accuracy differs by {abs(diff_points):.2f} points")
    if reasons:
        return False, f"FAIL: {'; '.join(reasons)} {required}"
    return True, (f"PASS: dlbench is {ratio:.1f}× faster at mean accuracy within "
                  f"{abs(diff_points):.2f} points {required}")


def main(
    repeats: Annotated[int, typer.Option(help="Timed runs of each side (median reported).")] = 3,
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 20,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures to this JSON file.")] = None,
) -> None:
    """Time `dlbench cv` against a plain per-fold PyTorch loop on the same 12 splits."""
    if repeats < 1 or epochs < 1:
        raise typer.BadParameter("--repeats and --epochs must be at least 1")
    console = Console()
    config = cv_config(epochs)
    load_before = os.getloadavg()[0]
    console.print(f"bench_cv: {DATASET}, mlp {HIDDEN}, {K}-fold × {CV_REPEATS}, {epochs} epochs, "
                  f"batch {BATCH_SIZE}, adam lr={LR:g}; torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
                  f"load {load_before:.2f}; {repeats} runs per side", highlight=False)
    warm_up()
    check_same_splits(config)

    sides = {"plain": run_plain, "dlbench": run_dlbench}
    times: dict[str, list[float]] = {name: [] for name in sides}
    accuracy: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(repeats):
        order = ["plain", "dlbench"] if i % 2 == 0 else ["dlbench", "plain"]
        for name in order:
            seconds, acc = timed(sides[name], config)
            times[name].append(seconds)
            accuracy[name].append(acc)
            console.print(f"  run {i + 1}/{repeats} {name:>7}: {seconds:6.3f} s  "
                          f"val accuracy {acc:.4f}", highlight=False)
    load_after = os.getloadavg()[0]

    median = {name: statistics.median(t) for name, t in times.items()}
    mean_acc = {name: float(np.mean(a)) for name, a in accuracy.items()}
    best = {name: min(t) for name, t in times.items()}
    ratio = median["plain"] / median["dlbench"]
    best_ratio = best["plain"] / best["dlbench"]
    diff_points = 100 * (mean_acc["dlbench"] - mean_acc["plain"])
    passed, line = verdict(ratio, diff_points)

    table = Table(title="dlbench cv vs plain PyTorch loop (12 models)")
    table.add_column("side")
    table.add_column("runs (s)")
    table.add_column("median (s)", justify="right")
    table.add_column("best (s)", justify="right")
    table.add_column("mean val accuracy", justify="right")
    for name in ("plain", "dlbench"):
        table.add_row(name, ", ".join(f"{t:.3f}" for t in times[name]), f"{median[name]:.3f}",
                      f"{best[name]:.3f}", f"{mean_acc[name]:.4f}")
    table.add_row("ratio / diff", "plain ÷ dlbench", f"{ratio:.1f}×", f"{best_ratio:.1f}×",
                  f"{diff_points:+.2f} points")
    console.print(table)
    busy = max(load_before, load_after) > (os.cpu_count() or 1)
    if busy or (best_ratio < REQUIRED_SPEEDUP) != (ratio < REQUIRED_SPEEDUP):
        console.print(f"caution: load average {load_before:.2f} → {load_after:.2f} on "
                      f"{os.cpu_count()} CPUs; the ratio of medians is {ratio:.1f}×, of best runs "
                      f"{best_ratio:.1f}× — rerun on a quiet machine before trusting the verdict",
                      style="yellow", highlight=False)
    console.print(line, style="bold green" if passed else "bold red", highlight=False)

    if json_path is not None:
        figures: dict[str, Any] = {
            "command": ("dlbench cv --dataset digits --model mlp --hidden 128 --k 4 --repeats 3 "
                        f"--epochs {epochs} --batch-size 32 --opt adam --lr 1e-3"),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats,
            "epochs": epochs, "cpus": os.cpu_count(), "load_average": [load_before, load_after],
            "seconds": times, "median_seconds": median, "ratio": ratio,
            "best_seconds": best, "best_ratio": best_ratio,
            "mean_val_accuracy": mean_acc, "accuracy_diff_points": diff_points,
            "required_speedup": REQUIRED_SPEEDUP, "accuracy_tolerance_points": ACCURACY_TOLERANCE,
            "passed": passed, "verdict": line,
        }
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    typer.run(main)
