"""The command line: parse and validate options, build a frozen config, call a runner, report.

torch and the runners are imported inside the commands, so `dlbench --help` stays instant.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from typer.exceptions import Abort, TyperException

from dlbench import __version__
from dlbench.errors import DlbenchError


class _OneLineErrors(typer.core.TyperGroup):
    """Bad usage or input: one line on stderr and exit code 2 — never a traceback or a panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except TyperException as e:  # click's usage errors: bad option, missing value, ...
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `dlbench`: the help, not an error
                typer.echo(e.format_message())
                sys.exit(0)
            _fail(e.format_message(), getattr(e, "exit_code", 2))
        except DlbenchError as e:
            _fail(str(e), 2)
        except Abort:
            _fail("aborted", 130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_OneLineErrors, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Measured evidence about deep-learning training choices: optimizers, regularization, "
         "evaluation protocols. Every run writes tidy CSVs, a manifest and a table.",
)

# --- options shared by the commands: declared once --------------------------------------------

DatasetOpt = Annotated[str, typer.Option(
    help="Built-in dataset (see `dlbench datasets`); a class subset like digits[0-4] or "
         "digits[5,7,9].")]
DataOpt = Annotated[Path | None, typer.Option(
    help="Your data instead: a .csv (with --target), a .npz with arrays X and y, or a directory "
         "of MNIST/Fashion-MNIST IDX files.")]
TargetOpt = Annotated[str | None, typer.Option(
    "--target", "--target-column", help="CSV: the target column.")]
TargetColumnOpt = Annotated[str | None, typer.Option(
    "--target-column", help="CSV: the target column.")]
GroupOpt = Annotated[str | None, typer.Option(
    help="CSV: a group column; splits keep each group on one side (group k-fold).")]
TimeOpt = Annotated[str | None, typer.Option(help="CSV: a time column; rows are sorted by it.")]
DedupeOpt = Annotated[bool, typer.Option(
    help="Drop rows whose features exactly duplicate an earlier row, before splitting.")]
ModelOpt = Annotated[str, typer.Option(help="Model (see `dlbench models`).")]
HiddenOpt = Annotated[str, typer.Option(help="mlp: hidden layer widths, comma-separated.")]
ChannelsOpt = Annotated[str, typer.Option(help="cnn1d/cnn2d: channels per conv block.")]
ActivationOpt = Annotated[str, typer.Option(help="relu | leaky_relu | tanh | sigmoid.")]
BatchnormOpt = Annotated[bool, typer.Option(help="Batch norm after each hidden layer.")]
DropoutOpt = Annotated[float, typer.Option(help="Dropout probability after each activation.")]
InitOpt = Annotated[str, typer.Option(help="Weight init: default | xavier | he | std1 | std0.01.")]
OptOpt = Annotated[str, typer.Option(
    "--opt", help="Optimizer entry (see `dlbench optimizers`), with optional parameters: "
                  "adam[lr=0.01,betas=0.9/0.99].")]
LrOpt = Annotated[float | None, typer.Option(
    help="Learning rate of every --opt entry that sets none (default: the optimizer's own).")]
WeightDecayOpt = Annotated[float | None, typer.Option(
    help="Weight decay of every --opt entry that sets none (adamw: decoupled; default: the "
         "optimizer's own).")]
ScheduleOpt = Annotated[str, typer.Option(
    help="Learning-rate schedule, stepped per optimizer step: constant | step | exponential "
         "| cosine.")]
WarmupOpt = Annotated[int, typer.Option(help="Optimizer steps of linear warm-up.")]
EpochsOpt = Annotated[int, typer.Option(help="Epochs: passes over each member's training rows.")]
BatchOpt = Annotated[int, typer.Option(help="Rows per step and member.")]
PreprocessOpt = Annotated[str, typer.Option(
    help="standardize | minmax | none; fitted on each training part only.")]
SeedOpt = Annotated[int, typer.Option(help="Seeds splits, initial weights and batch order.")]
SeedsOpt = Annotated[int, typer.Option(help="Initialisations trained per split.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when present) | cpu | cuda.")]
MetricsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated metrics (default: all for the task): accuracy, balanced_accuracy, "
         "f1_macro, log_loss, roc_auc, loss; regression mse, mae, r2, loss.")]
OutOpt = Annotated[Path | None, typer.Option(
    help="Results directory (default results/<command>-<timestamp>/).")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | json (the summary on stdout).")]


def _ints(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise DlbenchError(f"{option} takes comma-separated integers, e.g. 128,64; "
                           f"got '{text}'") from None
    if any(v < 1 for v in values):
        raise DlbenchError(f"{option} widths must be positive, got '{text}'")
    return values


def _one_optimizer(text: str, lr: float | None, weight_decay: float | None):
    from dlbench.optim import parse_optimizers

    specs = parse_optimizers(text, lr, weight_decay)
    if len(specs) > 1:
        raise DlbenchError("cv evaluates one configuration: give one --opt entry "
                           "(dlbench optimize compares several)")
    return specs[0]


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else ()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dlbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
          ) -> None:
    pass


@app.command()
def cv(dataset: DatasetOpt = "digits", data: DataOpt = None, target: TargetOpt = None,
       group: GroupOpt = None, time: TimeOpt = None, dedupe: DedupeOpt = False,
       model: ModelOpt = "mlp", hidden: HiddenOpt = "128", channels: ChannelsOpt = "16,32",
       activation: ActivationOpt = "relu", batchnorm: BatchnormOpt = False,
       dropout: DropoutOpt = 0.0, init: InitOpt = "default", opt: OptOpt = "adam",
       lr: LrOpt = None, weight_decay: WeightDecayOpt = None, schedule: ScheduleOpt = "constant",
       warmup: WarmupOpt = 0, epochs: EpochsOpt = 20, batch_size: BatchOpt = 32,
       preprocess: PreprocessOpt = "standardize",
       protocol: Annotated[str, typer.Option(help="kfold | holdout.")] = "kfold",
       k: Annotated[int, typer.Option(help="Folds.")] = 4,
       repeats: Annotated[int, typer.Option(
           help="k-fold repeats; >1 is iterated k-fold, reshuffled every repeat.")] = 1,
       val_fraction: Annotated[float, typer.Option(help="holdout: validation fraction.")] = 0.25,
       holdout_seeds: Annotated[int, typer.Option(
           help="holdout: repeat the split with N shuffle seeds to see the estimate move.")] = 1,
       test_fraction: Annotated[float | None, typer.Option(
           help="Hold out an untouched test split; after validation, refit on train+val and "
                "test once.")] = None,
       stratify: Annotated[bool, typer.Option(
           help="Keep class ratios in every split (classification).")] = True,
       time_order: Annotated[bool, typer.Option(
           help="Forward-chaining splits in time order; no shuffling.")] = False,
       metrics: MetricsOpt = None, seed: SeedOpt = 0, seeds: SeedsOpt = 1,
       device: DeviceOpt = "auto", out: OutOpt = None, fmt: FormatOpt = "table") -> None:
    """Hold-out, k-fold and iterated k-fold estimates with confidence intervals, leakage-safe."""
    from dlbench.datasets import DataSpec
    from dlbench.models import ModelSpec
    from dlbench.runners import cv as runner
    from dlbench.splits import SplitConfig
    from dlbench.trainer import TrainConfig

    config = runner.CVConfig(
        data=DataSpec(dataset, str(data) if data else None, target, group, time, dedupe),
        model=ModelSpec(model, _ints("--hidden", hidden), _ints("--channels", channels),
                        activation, batchnorm, dropout, init),
        train=TrainConfig(_one_optimizer(opt, lr, weight_decay), epochs, batch_size, preprocess,
                          schedule, warmup, device),
        split=SplitConfig(protocol, k, repeats, val_fraction, holdout_seeds, stratify,
                          time_order, seed),
        seeds=seeds, test_fraction=test_fraction, metrics=_names(metrics))
    _run_cv(runner, config, out, fmt)


def _run_cv(runner, config, out: Path | None, fmt: str) -> None:
    from dlbench import report, results
    from dlbench.progress import progress_bar

    out_dir = _check_output(out, fmt, "cv")
    plan = runner.prepare(config)
    if plan.dataset.time is not None and not config.split.time_order:
        typer.echo(f"warning: {plan.dataset.name} is time-ordered and these splits shuffle it, "
                   "so later rows train models scored on earlier ones; pass --time-order",
                   err=True)
    if plan.duplicates["train_val"] or plan.duplicates["dev_test"]:
        d = plan.duplicates
        test = f", and {d['dev_test']} test rows a train+val row" if d["dev_test"] else ""
        typer.echo(f"warning: validation rows duplicate a training row of their split "
                   f"{d['train_val']} times over {len(d['per_split'])} splits{test}; this "
                   "inflates the estimate; pass --dedupe to drop duplicates", err=True)
    with progress_bar(plan.total_epochs, "cv") as advance:
        result = runner.run(plan, advance)
    manifest = {"command": "cv", **results.environment(), "config": asdict(config),
                "seed": config.split.seed, **result.info}
    results.write_run(out_dir, {"scores": result.scores, "curves": result.curves,
                                "splits": result.splits, "summary": result.summary}, manifest)
    s = config.split
    design = (f"{s.k}-fold × {s.repeats} repeats" if s.protocol == "kfold"
              else f"holdout {s.val_fraction:g} × {s.holdout_seeds} shuffles")
    if config.seeds > 1:
        design += f" × {config.seeds} seeds"
    title = (f"cv · {result.info['dataset']['name']} · {config.model.name} · "
             f"{config.train.optimizer.label} lr={config.train.optimizer.lr:g} · {design}")
    report.print_cv(result.summary, result.info, title, fmt)
    typer.echo(f"results: {out_dir}", err=True)


def _check_output(out: Path | None, fmt: str, command: str) -> Path:
    from dlbench import results

    if fmt not in ("table", "json"):
        raise DlbenchError(f"unknown format '{fmt}'; choose one of: table, json")
    if out is not None and out.exists() and not out.is_dir():
        raise DlbenchError(f"--out {out} is a file; give a directory path")
    if out is not None and (out / "manifest.json").exists():  # its files would mix with ours
        raise DlbenchError(f"--out {out} already holds a finished run; choose a new directory "
                           "or remove that one")
    path = out if out is not None else results.default_out_dir(command)
    # Checked now, not when the files are written after training: the nearest existing ancestor
    # must be a writable directory.
    base = next(p for p in (path, *path.parents) if p.exists())
    if not base.is_dir():
        raise DlbenchError(f"cannot create results directory {path}: {base} is a file; "
                           "give --out a directory path")
    if not os.access(base, os.W_OK):
        raise DlbenchError(f"cannot create results directory {path}: {base} is not writable; "
                           "give --out a writable directory")
    return path


FUNCTION_OPT = "sgd[lr=0.95],momentum[lr=0.1],adagrad[lr=1.5],adam[lr=0.3]"
NETWORK_OPT = "sgd[lr=0.1],momentum[lr=0.01],adagrad[lr=0.01],rmsprop[lr=0.001],adam[lr=0.001]"


@app.command()
def optimize(
        ctx: typer.Context,
        opt: Annotated[str | None, typer.Option(
            "--opt", help="Optimizer entries, comma-separated, each with optional parameters: "
                          "'sgd[lr=0.95],adam[lr=0.3,betas=0.9/0.999]' (see `dlbench optimizers`)."
                          f" Default: {FUNCTION_OPT} on --function, else {NETWORK_OPT}.")] = None,
        lr: LrOpt = None, weight_decay: WeightDecayOpt = None, schedule: ScheduleOpt = "constant",
        warmup: WarmupOpt = 0,
        function: Annotated[str | None, typer.Option(
            help="A 2-D test function (anisotropic, rosenbrock, beale, himmelblau, saddle, "
                 "rastrigin): trajectories instead of networks.")] = None,
        steps: Annotated[int, typer.Option(help="--function: optimizer steps.")] = 100,
        start: Annotated[str | None, typer.Option(
            help="--function: start point X,Y (default: the function's).")] = None,
        tol: Annotated[float, typer.Option(
            help="--function: a path has arrived once f - f_min <= tol.")] = 1e-3,
        dataset: DatasetOpt = "digits", data: DataOpt = None, target_column: TargetColumnOpt = None,
        model: Annotated[str, typer.Option(help="Models, comma-separated (see `dlbench models`)."
                                           )] = "mlp",
        hidden: Annotated[list[str] | None, typer.Option(
            help="mlp hidden widths; repeat to compare depths: --hidden 8 --hidden 8,8,8 "
                 "(default 128; 100,100,100,100,100 when --init is given).")] = None,
        channels: ChannelsOpt = "16,32",
        activation: Annotated[str, typer.Option(
            help="Activations, comma-separated: relu, leaky_relu, tanh, sigmoid.")] = "relu",
        batchnorm: Annotated[str, typer.Option(
            help="Batch norm: on, off, or on,off to compare.")] = "off",
        dropout: DropoutOpt = 0.0,
        init: Annotated[str | None, typer.Option(
            help="Inits, comma-separated: default, xavier, he, std1, std0.01; also records "
                 "per-layer activations at initialisation.")] = None,
        preprocess: Annotated[str, typer.Option(
            help="Preprocessing, comma-separated: standardize, minmax, none.")] = "standardize",
        epochs: EpochsOpt = 20, batch_size: BatchOpt = 32, seeds: Annotated[int, typer.Option(
            help="Seeds per cell, paired across cells.")] = 3, seed: SeedOpt = 0,
        lr_grid: Annotated[str | None, typer.Option(
            help="LOW:HIGH:N — every optimizer at N log-spaced learning rates.")] = None,
        tune: Annotated[str | None, typer.Option(
            help="'lr': tune each optimizer's learning rate on validation with --budget "
                 "trials, then rerun over --seeds and test once.")] = None,
        budget: Annotated[int, typer.Option(help="--tune: trials per optimizer.")] = 8,
        target: Annotated[float | None, typer.Option(
            help="Validation accuracy whose time-to-reach (epochs, seconds) is reported.")] = None,
        val_fraction: Annotated[float, typer.Option(help="Validation fraction.")] = 0.2,
        test_fraction: Annotated[float, typer.Option(
            help="Test fraction (datasets without a fixed test split).")] = 0.2,
        stratify: Annotated[bool, typer.Option(
            help="Keep class ratios in the train/validation/test parts.")] = True,
        metrics: MetricsOpt = None, device: DeviceOpt = "auto", out: OutOpt = None,
        fmt: FormatOpt = "table") -> None:
    """Optimizers on 2-D test functions and on networks: curves, sweeps, tuning, init studies."""
    from dlbench.datasets import DataSpec
    from dlbench.models import ModelSpec, normalize
    from dlbench.optim import parse_optimizers
    from dlbench.runners import optimize as runner
    from dlbench.trainer import TrainConfig

    entries = opt or (FUNCTION_OPT if function else NETWORK_OPT)
    if lr_grid is not None and (lr is not None or "lr=" in (opt or "")):
        raise DlbenchError("--lr-grid sets every entry's learning rate; drop --lr and the "
                           "entries' own lr=")
    depths = [_ints("--hidden", h) for h in hidden] if hidden else \
        [(100,) * 5 if init else (128,)]
    _check_mode(ctx, function is not None)
    models = tuple(dict.fromkeys(  # a model ignoring an option is not multiplied by it
        normalize(ModelSpec(name, widths, _ints("--channels", channels), act, bn, dropout, ini))
        for name in _names(model) for widths in depths for ini in _names(init or "default")
        for act in _names(activation) for bn in _switches("--batchnorm", batchnorm)))
    config = runner.OptimizeConfig(
        optimizers=tuple(dict.fromkeys(parse_optimizers(entries, lr, weight_decay))),
        function=function,
        steps=steps, start=_point(start), tol=tol,
        data=DataSpec(dataset, str(data) if data else None, target_column),
        models=models, preprocess=_names(preprocess),
        train=TrainConfig(epochs=epochs, batch_size=batch_size, schedule=schedule,
                          warmup=warmup, device=device), stratify=stratify,
        lr_grid=_lr_grid(lr_grid), tune_budget=_tune_budget(tune, budget), seeds=seeds,
        seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, target=target,
        activations=init is not None, metrics=_names(metrics))
    _run_optimize(runner, config, out, fmt)


def _run_optimize(runner, config, out: Path | None, fmt: str) -> None:
    from dlbench import plots, report, results
    from dlbench.functions import FUNCTIONS
    from dlbench.progress import progress_bar

    out_dir = _check_output(out, fmt, "optimize")
    manifest = {"command": "optimize", **results.environment(), "config": asdict(config)}
    del manifest["config"]["train"]["optimizer"]  # every cell sets its own: config.optimizers
    if config.function:
        info = FUNCTIONS.get(config.function)
        start = time.perf_counter()
        trajectories, summary = runner.run_functions(config)
        manifest["seconds"] = round(time.perf_counter() - start, 3)
        results.write_run(out_dir, {"trajectories": trajectories, "summary": summary}, manifest,
                          {"trajectories.png": lambda p: plots.trajectories_plot(
                              p, info, trajectories)})
        report.print_functions(summary, info, config, fmt)
    else:
        plan = runner.prepare(config)
        with progress_bar(plan.total_epochs, "optimize") as advance:
            result = runner.run(plan, advance)
        tables = {"scores": result.scores, "curves": result.curves, "summary": result.summary}
        if result.activations is not None:
            tables["activations"] = result.activations
        results.write_run(out_dir, tables, manifest | result.info,
                          _optimize_plots(config, result))
        report.print_optimize(result.summary, result.info, config, fmt)
    typer.echo(f"results: {out_dir}", err=True)


def _optimize_plots(config, result) -> dict:
    from dlbench import plots

    final = result.curves[result.curves.phase == "final"]
    title = f"{result.info['dataset']['name']}: {result.info['seeds']} seeds per cell"
    figures = {"curves.png": lambda p: plots.curves_plot(p, final, title)}
    if config.lr_grid or config.tune_budget:
        figures["lr_sweep.png"] = lambda p: plots.lr_sweep_plot(p, result.sweep, title)
    if result.histograms:
        figures["activations.png"] = lambda p: plots.activations_plot(p, result.histograms)
    return figures


FUNCTION_ONLY = ("steps", "start", "tol")
NETWORK_ONLY = ("dataset", "data", "target_column", "model", "hidden", "channels", "activation",
                "batchnorm", "dropout", "init", "preprocess", "epochs", "batch_size", "seeds",
                "tune", "budget", "target", "val_fraction", "test_fraction", "stratify",
                "metrics", "device")


def _check_mode(ctx: typer.Context, function_mode: bool) -> None:
    """An option of the other mode would be silently ignored: say so instead."""
    given = [name for name in (NETWORK_ONLY if function_mode else FUNCTION_ONLY)
             if ctx.get_parameter_source(name).name == "COMMANDLINE"]
    if given:
        option = "--" + given[0].replace("_", "-")
        mode = "networks, not --function" if function_mode else "--function only"
        raise DlbenchError(f"{option} applies to {mode}; drop it")


def _switches(option: str, text: str) -> tuple[bool, ...]:
    values = {"on": True, "off": False}
    try:
        return tuple(values[v] for v in _names(text))
    except KeyError:
        raise DlbenchError(f"{option} takes on, off or on,off; got '{text}'") from None


def _point(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise DlbenchError(f"--start takes a point X,Y such as -7,2; got '{text}'") from None
    return x, y


def _lr_grid(text: str | None) -> tuple[float, ...]:
    if text is None:
        return ()
    import numpy as np

    try:
        low, high, n = text.split(":")
        low, high, count = float(low), float(high), int(n)
    except ValueError:
        raise DlbenchError(f"--lr-grid takes LOW:HIGH:N such as 1e-4:1:9; got '{text}'") from None
    if not (0 < low < high) or count < 2:
        raise DlbenchError(f"--lr-grid needs 0 < LOW < HIGH and N >= 2; got '{text}'")
    return tuple(float(v) for v in np.geomspace(low, high, count))


def _tune_budget(tune: str | None, budget: int) -> int:
    if tune is None:
        return 0
    if tune != "lr":
        raise DlbenchError(f"unknown --tune '{tune}'; choose one of: lr")
    if budget < 2:
        raise DlbenchError(f"--budget must be at least 2 trials, got {budget}")
    return budget


@app.command()
def optimizers() -> None:
    """List the optimizers with their defaults (the --opt grammar's names and parameters)."""
    from dlbench.optim import OPTIMIZERS, format_value
    from dlbench.report import listing

    rows = [{"name": o.name, "class": o.cls.__name__,
             "defaults": ", ".join(f"{k}={format_value(v)}"
                                   for k, v in o.signature_defaults().items()),
             "stacked": "yes" if o.elementwise else "alone, full batch",
             "description": o.description} for o in OPTIMIZERS]
    listing("optimizers", rows, ["name", "class", "defaults", "stacked", "description"])


@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    from dlbench.datasets import DATASETS, describe
    from dlbench.report import listing

    rows = [describe(info) for info in DATASETS]
    listing("datasets", rows, ["name", "samples", "features", "classes", "task", "fixed_test",
                               "description"])


@app.command()
def models() -> None:
    """List the models and the options each one uses."""
    from dlbench.models import MODELS
    from dlbench.report import listing

    rows = [{"name": m.name, "tasks": ", ".join(m.tasks), "options": m.options,
             "description": m.description} for m in MODELS]
    listing("models", rows, ["name", "tasks", "options", "description"])


def main() -> None:
    app()
