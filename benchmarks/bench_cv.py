"""Benchmark: `dlbench cv` against a plain per-fold PyTorch loop, timed side by side in one run.

What is measured
    The job of

        dlbench cv --dataset digits --model mlp --hidden 128 --k 4 --repeats 3 --epochs 20 \
            --batch-size 32 --opt adam --lr 1e-3

    i.e. 12 MLPs (64-128-10, ReLU) on sklearn's digits, one per split of a 4-fold × 3-repeat
    stratified k-fold, done two ways:

    dlbench  the cv runner exactly as `dlbench cv` drives it: the same `CVConfig`, then
             `prepare(config)` and `run(plan)` — everything `run` does (stacked training, every
             metric, the chance baseline, the curves, the summary) — but no file writing and no
             progress bar.
    plain    what a typical user writes: load digits, take the *same* 12 splits from
             `dlbench.data.splits.make_splits` (same `SplitConfig` as the runner), and per split
             fit a StandardScaler on the training rows, build nn.Sequential(Linear(64, 128), ReLU,
             Linear(128, 10)), torch.optim.Adam(lr=1e-3, torch defaults), DataLoader(
             TensorDataset(...), batch_size=32, shuffle=True), train for the epochs, then score
             accuracy on the validation rows.

    Each timed side starts from the dataset name (load + splits + training + evaluation).
    Before any timing the process is warmed up once (a throwaway torch.optim optimizer, whose
    first construction imports torch._dynamo, and a tiny forward/backward), so that one-off cost
    is charged to neither side. Each side runs `--repeats` times, the order alternating between
    runs; the figures are the medians and the ratio of medians (plain / dlbench). Both sides
    run with `--threads` torch threads (default 1, dlbench's own default). The best (fastest)
    run of each side, their ratio and the load average are printed too: on a busy machine the
    times swing widely, so compare the two ratios before trusting one.

    Verdict: PASS when dlbench is at least 5× faster and the two mean validation accuracies are
    within 1 point (percentage point) of each other; exit code 0 on PASS, 1 on FAIL.

How to run
    .venv/bin/python benchmarks/bench_cv.py                  # or: make bench
    .venv/bin/python benchmarks/bench_cv.py --repeats 5 --epochs 20 --json bench.json
"""

from __future__ import annotations

import harness
import numpy as np
import torch
import typer
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbench.data.datasets import DataSpec
from dlbench.data.splits import SplitConfig, make_splits
from dlbench.engine.members import TrainConfig
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec
from dlbench.runners import cv as runner

DATASET = "digits"
HIDDEN = 128
K = 4
CV_REPEATS = 3
BATCH_SIZE = 32
LR = 1e-3
SEED = 0


def cv_config(epochs: int) -> runner.CVConfig:
    """The CVConfig `dlbench cv` builds for the benchmarked command line (its defaults
    else)."""
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
        accuracies.append(
            harness.fit_and_score(model, opt, loader, config.train.epochs, x_val, y_val))
    return float(np.mean(accuracies))


def check_same_splits(config: runner.CVConfig) -> None:
    """The plain loop's splits are the runner's splits (checked once, untimed)."""
    plan = runner.prepare(config)
    y = load_digits(return_X_y=True)[1].astype(np.int64)
    ours = make_splits(y, config.split, task="classification")
    assert len(ours) == len(plan.splits) == K * CV_REPEATS
    for a, b in zip(ours, plan.splits, strict=True):
        assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)


# --- the benchmark -----------------------------------------------------------------------------


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 20,
         threads: harness.Threads = 1, json_path: harness.JsonPath = None) -> None:
    """Time `dlbench cv` against a plain per-fold PyTorch loop on the same 12 splits."""
    console = harness.start(repeats, epochs, threads)
    config = cv_config(epochs)
    load_before = harness.load_average()
    console.print(f"bench_cv: {DATASET}, mlp {HIDDEN}, {K}-fold × {CV_REPEATS}, {epochs} epochs, "
                  f"batch {BATCH_SIZE}, adam lr={LR:g}; "
                  f"{harness.machine_line(load_before, repeats)}", highlight=False)
    harness.warm_up()
    check_same_splits(config)

    sides = {"plain": run_plain, "dlbench": run_dlbench}
    times, accuracy = harness.alternate(
        sides, repeats, lambda line: console.print(line, highlight=False), config)
    load_after = harness.load_average()

    mean_acc = {name: float(np.mean(a)) for name, a in accuracy.items()}
    summary = harness.summarise(times, mean_acc, (load_before, load_after))
    harness.report(console, "dlbench cv vs plain PyTorch loop (12 models)", summary)

    if json_path is not None:
        harness.write_json(
            json_path, summary, repeats=repeats, epochs=epochs,
            command=("dlbench cv --dataset digits --model mlp --hidden 128 --k 4 --repeats 3 "
                     f"--epochs {epochs} --batch-size 32 --opt adam --lr 1e-3"))
    raise typer.Exit(0 if summary.passed else 1)


if __name__ == "__main__":
    typer.run(main)
