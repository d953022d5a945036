"""Benchmark: `dlbench optimize` against a plain per-model PyTorch loop, timed side by side.

What is measured
    The job of

        dlbench optimize --dataset mnist1d --model mlp --hidden 128 \
            --opt sgd,momentum,nesterov,adagrad,rmsprop,adam --seeds 3 --epochs 30

    i.e. 18 MLPs (40-128-10, ReLU) on MNIST-1D — six optimizers, each at its torch-default
    learning rate (no --lr: sgd, momentum, nesterov and adam 1e-3, adagrad and rmsprop 1e-2),
    times three seeds — on one train/validation split, done two ways:

    dlbench  the optimize runner exactly as `dlbench.cli.optimize` drives it: the same
             `OptimizeConfig` (checked, untimed, against the one the CLI builds for that command
             line), then `prepare(config)` and `run(plan)` — everything `run` does (one stack of
             3 seeds per optimizer, every metric on train/val/test, the curves, the sweep, the
             summary with its paired tests) — but no file writing, no plots, no progress bar.
    plain    what a typical user writes: for each of the 18 (optimizer, seed) pairs,
             torch.manual_seed(seed), a fresh nn.Sequential(Linear(40, 128), ReLU,
             Linear(128, 10)), the same torch.optim class and hyperparameters
             (`spec.info.cls(model.parameters(), **spec.kwargs())`), a StandardScaler fitted on
             the runner's own training rows (`plan.members[0].train`), DataLoader(
             TensorDataset(...), batch_size=32, shuffle=True), the epochs of training, then
             accuracy on the runner's own validation rows (`plan.members[0].evals["val"]`).

    Each timed side starts from the dataset name (load + training + evaluation; dlbench also
    its split). MNIST-1D is generated once per process (~2 s, cached by dlbench's loader) and
    both sides load it through that cache, so the generation is charged to neither; it is paid
    in the warm-up, together with a throwaway torch.optim optimizer (whose first construction
    imports torch._dynamo) and a tiny forward/backward. Each side runs `--repeats` times, the
    order alternating between runs; the figures are the medians and the ratio of medians
    (plain / dlbench). Torch keeps its default thread count on both sides. The best (fastest)
    run of each side, their ratio and the load average are printed too: on a busy machine
    torch's intra-op threads wait on descheduled peers and the times swing widely, so compare
    the two ratios before trusting one.

    The two sides start from different initial weights and batch orders (dlbench derives its
    own per seed), so their accuracies agree only statistically: the mean validation accuracy
    per optimizer (over 3 seeds) and overall (over 18 models, the verdict's figure) are printed
    for both, with the differences in percentage points. With torch-default learning rates some
    optimizers (sgd at 1e-3) learn slowly in 30 epochs; both sides use the same rates.

    Verdict: PASS when dlbench is at least 5× faster and the two overall mean validation
    accuracies are within 1 point (percentage point) of each other; exit code 0 on PASS, 1 on
    FAIL.

How to run
    .venv/bin/python benchmarks/bench_optimize.py            # or: make bench (runs both)
    .venv/bin/python benchmarks/bench_optimize.py --repeats 5 --epochs 30 --json bench.json
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
import typer
from rich.console import Console
from rich.table import Table
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbench.datasets import DataSpec, load_dataset
from dlbench.models import ModelSpec
from dlbench.optim import parse_optimizers
from dlbench.runners import optimize as runner
from dlbench.trainer import TrainConfig

REQUIRED_SPEEDUP = 5.0  # plain seconds / dlbench seconds, at least
ACCURACY_TOLERANCE = 1.0  # |overall mean val accuracy difference| in percentage points, at most

DATASET = "mnist1d"
HIDDEN = 128
OPT = "sgd,momentum,nesterov,adagrad,rmsprop,adam"
SEEDS = 3
BATCH_SIZE = 32


def command(epochs: int) -> list[str]:
    """The benchmarked command line, as arguments of `dlbench`."""
    return ["optimize", "--dataset", DATASET, "--model", "mlp", "--hidden", str(HIDDEN),
            "--opt", OPT, "--seeds", str(SEEDS), "--epochs", str(epochs)]


def optimize_config(epochs: int) -> runner.OptimizeConfig:
    """The OptimizeConfig `dlbench.cli.optimize` builds for the benchmarked command line."""
    return runner.OptimizeConfig(
        optimizers=tuple(parse_optimizers(OPT, None, None)), function=None, steps=100,
        start=None, tol=1e-3, data=DataSpec(DATASET, None, None),
        models=(ModelSpec("mlp", (HIDDEN,), (16, 32), "relu", False, 0.0, "default"),),
        preprocess=("standardize",),
        train=TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, schedule="constant", warmup=0,
                          device="auto"),
        lr_grid=(), tune_budget=0, seeds=SEEDS, seed=0, val_fraction=0.2, test_fraction=0.2,
        target=None, activations=False, metrics=(),
    )


# --- the two sides -----------------------------------------------------------------------------


def run_dlbench(config: runner.OptimizeConfig, plan0: runner.Plan) -> dict[str, float]:
    """The optimize runner as the CLI uses it -> mean validation accuracy per optimizer."""
    plan = runner.prepare(config)
    result = runner.run(plan)
    s = result.scores
    mask = (s.phase == "final") & (s.split == "val") & (s.metric == "accuracy")
    means = s[mask].groupby("optimizer")["value"].mean()  # NaN where a seed diverged
    return {spec.label: float(means[spec.label]) for spec in config.optimizers}


def run_plain(config: runner.OptimizeConfig, plan0: runner.Plan) -> dict[str, float]:
    """A per-model PyTorch loop on the runner's rows -> mean validation accuracy per optimizer."""
    dataset = load_dataset(config.data)
    X, y = dataset.X.astype(np.float32), dataset.y.astype(np.int64)
    train_rows, val_rows = plan0.members[0].train, plan0.members[0].evals["val"]
    scaler = StandardScaler().fit(X[train_rows])
    x_train = torch.as_tensor(scaler.transform(X[train_rows]), dtype=torch.float32)
    x_val = torch.as_tensor(scaler.transform(X[val_rows]), dtype=torch.float32)
    y_train, y_val = torch.as_tensor(y[train_rows]), torch.as_tensor(y[val_rows])
    n_classes = int(y.max()) + 1
    accuracy = {}
    for spec in config.optimizers:
        per_seed = []
        for seed in range(config.seeds):
            torch.manual_seed(seed)  # this seed's initial weights and shuffling, every optimizer
            model = nn.Sequential(nn.Linear(X.shape[1], HIDDEN), nn.ReLU(),
                                  nn.Linear(HIDDEN, n_classes))
            opt = spec.info.cls(model.parameters(), **spec.kwargs())
            loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH_SIZE,
                                shuffle=True)
            model.train()
            for _ in range(config.train.epochs):
                for xb, yb in loader:
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward()
                    opt.step()
            model.eval()
            with torch.no_grad():
                per_seed.append((model(x_val).argmax(1) == y_val).float().mean().item())
        accuracy[spec.label] = float(np.mean(per_seed))
    return accuracy


def warm_up(config: runner.OptimizeConfig) -> None:
    """One-off per-process costs, paid before either side is timed."""
    load_dataset(config.data)  # generates MNIST-1D once (~2 s); both sides then hit the cache
    w = torch.zeros(4, 2, requires_grad=True)
    torch.optim.SGD([w], lr=1e-3)  # the first torch.optim optimizer imports torch._dynamo
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(torch.randn(3, 4)), torch.tensor([0, 1, 0]))
    loss.backward()
    opt.step()


def check_cli_config(config: runner.OptimizeConfig, epochs: int) -> None:
    """The benchmarked config is the one the CLI builds for the command line (untimed)."""
    from typer.testing import CliRunner

    from dlbench import cli

    seen: list[runner.OptimizeConfig] = []
    with mock.patch.object(cli, "_run_optimize", lambda _r, cfg, _o, _f: seen.append(cfg)):
        outcome = CliRunner().invoke(cli.app, command(epochs))
    if len(seen) != 1:
        raise RuntimeError(f"`dlbench {' '.join(command(epochs))}` built no config "
                           f"(exit {outcome.exit_code}): {outcome.output.strip()}")
    if seen[0] != config:
        raise RuntimeError(f"the CLI builds a different OptimizeConfig:\n  cli:   {seen[0]}\n"
                           f"  bench: {config}")


# --- the benchmark -----------------------------------------------------------------------------


def timed(fn, config, plan0) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    accuracy = fn(config, plan0)
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
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 30,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Also write the figures to this JSON file.")] = None,
) -> None:
    """Time `dlbench optimize` against a plain per-model PyTorch loop on the same 18 models."""
    if repeats < 1 or epochs < 1:
        raise typer.BadParameter("--repeats and --epochs must be at least 1")
    console = Console()
    config = optimize_config(epochs)
    n_models = len(config.optimizers) * config.seeds
    lrs = ", ".join(f"{s.label} {s.lr:g}" for s in config.optimizers)
    load_before = os.getloadavg()[0]
    console.print(f"bench_optimize: {DATASET}, mlp {HIDDEN}, {len(config.optimizers)} optimizers "
                  f"× {config.seeds} seeds = {n_models} models, {epochs} epochs, batch "
                  f"{BATCH_SIZE}, torch-default lrs ({lrs}); torch {torch.__version__}, "
                  f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
                  f"load {load_before:.2f}; {repeats} runs per side", highlight=False)
    check_cli_config(config, epochs)
    warm_up(config)
    plan0 = runner.prepare(config)  # the rows the plain loop trains and scores on (untimed)
    console.print(f"  rows: {len(plan0.members[0].train)} train, "
                  f"{len(plan0.members[0].evals['val'])} val", highlight=False)

    sides = {"plain": run_plain, "dlbench": run_dlbench}
    times: dict[str, list[float]] = {name: [] for name in sides}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for i in range(repeats):
        order = ["plain", "dlbench"] if i % 2 == 0 else ["dlbench", "plain"]
        for name in order:
            seconds, acc = timed(sides[name], config, plan0)
            times[name].append(seconds)
            runs[name].append(acc)
            console.print(f"  run {i + 1}/{repeats} {name:>7}: {seconds:7.3f} s  "
                          f"val accuracy {np.mean(list(acc.values())):.4f}", highlight=False)
    load_after = os.getloadavg()[0]

    labels = [spec.label for spec in config.optimizers]
    per_opt = {name: {label: float(np.mean([r[label] for r in runs[name]])) for label in labels}
               for name in sides}
    per_opt_diff = {label: 100 * (per_opt["dlbench"][label] - per_opt["plain"][label])
                    for label in labels}
    mean_acc = {name: float(np.mean(list(per_opt[name].values()))) for name in sides}
    median = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    ratio = median["plain"] / median["dlbench"]
    best_ratio = best["plain"] / best["dlbench"]
    diff_points = 100 * (mean_acc["dlbench"] - mean_acc["plain"])
    passed, line = verdict(ratio, diff_points)

    accuracy_table = Table(title="mean validation accuracy per optimizer (3 seeds each)")
    accuracy_table.add_column("optimizer")
    accuracy_table.add_column("lr", justify="right")
    accuracy_table.add_column("plain", justify="right")
    accuracy_table.add_column("dlbench", justify="right")
    accuracy_table.add_column("dlbench − plain", justify="right")
    for spec in config.optimizers:
        accuracy_table.add_row(spec.label, f"{spec.lr:g}", f"{per_opt['plain'][spec.label]:.4f}",
                               f"{per_opt['dlbench'][spec.label]:.4f}",
                               f"{per_opt_diff[spec.label]:+.2f} points")
    accuracy_table.add_row("all", "", f"{mean_acc['plain']:.4f}", f"{mean_acc['dlbench']:.4f}",
                           f"{diff_points:+.2f} points")
    console.print(accuracy_table)

    table = Table(title=f"dlbench optimize vs plain PyTorch loop ({n_models} models)")
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
            "command": "dlbench " + " ".join(command(epochs)),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats,
            "epochs": epochs, "cpus": os.cpu_count(), "load_average": [load_before, load_after],
            "learning_rates": {s.label: s.lr for s in config.optimizers},
            "seconds": times, "median_seconds": median, "ratio": ratio,
            "best_seconds": best, "best_ratio": best_ratio,
            "val_accuracy_per_optimizer": per_opt, "accuracy_diff_points_per_optimizer":
                per_opt_diff, "mean_val_accuracy": mean_acc, "accuracy_diff_points": diff_points,
            "required_speedup": REQUIRED_SPEEDUP, "accuracy_tolerance_points": ACCURACY_TOLERANCE,
            "passed": passed, "verdict": line,
        }
        json_path.write_text(json.dumps(figures, indent=2) + "\n")
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    typer.run(main)
