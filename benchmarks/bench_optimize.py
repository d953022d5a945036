"""Benchmark: `dlbench optimize` against a plain per-model PyTorch loop, timed side by side.

What is measured
    The job of

        dlbench optimize --dataset mnist1d --model mlp --hidden 128 \
            --opt sgd,momentum,nesterov,adagrad,rmsprop,adam --seeds 3 --epochs 30

    i.e. 18 MLPs (40-128-10, ReLU) on MNIST-1D — six optimizers, each at its torch-default
    learning rate (no --lr: sgd, momentum, nesterov and adam 1e-3, adagrad and rmsprop 1e-2),
    times three seeds — on one train/validation split, done two ways:

    dlbench  the optimize runner exactly as `dlbench optimize` drives it: the same
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
    (plain / dlbench). Both sides run with `--threads` torch threads (default 1, dlbench's own
    default). The best (fastest) run of each side, their ratio and the load average are
    printed too: on a busy machine the times swing widely, so compare the two ratios before
    trusting one.

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

from unittest import mock

import harness
import numpy as np
import torch
import typer
from rich.table import Table
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbench.data.datasets import DataSpec, load_dataset
from dlbench.engine.members import TrainConfig
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import parse_optimizers
from dlbench.runners import optimize as runner

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
    """The OptimizeConfig `dlbench optimize` builds for the benchmarked command line."""
    return runner.OptimizeConfig(
        optimizers=tuple(parse_optimizers(OPT, None, None)), function=None, steps=100,
        start=None, tol=1e-3, data=DataSpec(DATASET, None, None),
        models=(ModelSpec("mlp", (HIDDEN,), (16, 32), "relu", False, 0.0, "default"),),
        preprocess=("standardize",),
        train=TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, schedule="constant", warmup=0,
                          device="auto"),
        lr_grid=(), tune_budget=0, seeds=SEEDS, seed=0, val_fraction=None, test_fraction=None,
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
            per_seed.append(
                harness.fit_and_score(model, opt, loader, config.train.epochs, x_val, y_val))
        accuracy[spec.label] = float(np.mean(per_seed))
    return accuracy


def warm_up(config: runner.OptimizeConfig) -> None:
    """One-off per-process costs, paid before either side is timed."""
    load_dataset(config.data)  # generates MNIST-1D once (~2 s); both sides then hit the cache
    harness.warm_up()


def check_cli_config(config: runner.OptimizeConfig, epochs: int) -> None:
    """The benchmarked config is the one the CLI builds for the command line (untimed)."""
    from typer.testing import CliRunner

    from dlbench.cli import app as cli

    seen: list[runner.OptimizeConfig] = []
    with mock.patch.object(cli, "_run", lambda _r, cfg, _o, _f, _c: seen.append(cfg)):
        outcome = CliRunner().invoke(cli.app, command(epochs))
    if len(seen) != 1:
        raise RuntimeError(f"`dlbench {' '.join(command(epochs))}` built no config "
                           f"(exit {outcome.exit_code}): {outcome.output.strip()}")
    if seen[0] != config:
        raise RuntimeError(f"the CLI builds a different OptimizeConfig:\n  cli:   {seen[0]}\n"
                           f"  bench: {config}")


# --- the benchmark -----------------------------------------------------------------------------


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 30,
         threads: harness.Threads = 1, json_path: harness.JsonPath = None) -> None:
    """Time `dlbench optimize` against a plain per-model PyTorch loop on the same 18 models."""
    console = harness.start(repeats, epochs, threads)
    config = optimize_config(epochs)
    n_models = len(config.optimizers) * config.seeds
    lrs = ", ".join(f"{s.label} {s.lr:g}" for s in config.optimizers)
    load_before = harness.load_average()
    console.print(f"bench_optimize: {DATASET}, mlp {HIDDEN}, {len(config.optimizers)} optimizers "
                  f"× {config.seeds} seeds = {n_models} models, {epochs} epochs, batch "
                  f"{BATCH_SIZE}, torch-default lrs ({lrs}); "
                  f"{harness.machine_line(load_before, repeats)}", highlight=False)
    check_cli_config(config, epochs)
    warm_up(config)
    plan0 = runner.prepare(config)  # the rows the plain loop trains and scores on (untimed)
    console.print(f"  rows: {len(plan0.members[0].train)} train, "
                  f"{len(plan0.members[0].evals['val'])} val", highlight=False)

    sides = {"plain": run_plain, "dlbench": run_dlbench}
    times, runs = harness.alternate(
        sides, repeats, lambda line: console.print(line, highlight=False), config, plan0,
        width=7, score=lambda acc: np.mean(list(acc.values())))
    load_after = harness.load_average()

    labels = [spec.label for spec in config.optimizers]
    per_opt = {name: {label: float(np.mean([r[label] for r in runs[name]])) for label in labels}
               for name in sides}
    per_opt_diff = {label: 100 * (per_opt["dlbench"][label] - per_opt["plain"][label])
                    for label in labels}
    mean_acc = {name: float(np.mean(list(per_opt[name].values()))) for name in sides}
    summary = harness.summarise(times, mean_acc, (load_before, load_after))

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
                           f"{summary.diff_points:+.2f} points")
    console.print(accuracy_table)
    harness.report(console, f"dlbench optimize vs plain PyTorch loop ({n_models} models)", summary)

    if json_path is not None:
        harness.write_json(
            json_path, summary, command="dlbench " + " ".join(command(epochs)), repeats=repeats,
            epochs=epochs, setup={"learning_rates": {s.label: s.lr for s in config.optimizers}},
            accuracy={"val_accuracy_per_optimizer": per_opt,
                      "accuracy_diff_points_per_optimizer": per_opt_diff})
    raise typer.Exit(0 if summary.passed else 1)


if __name__ == "__main__":
    typer.run(main)
