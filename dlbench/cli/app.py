"""The command line: parse and validate options, build a frozen config, call a runner, report.

torch and the runners are imported inside the commands, so `dlbench --help` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from typer.exceptions import Abort, TyperException

from dlbench import __version__
from dlbench.cli.config import FUNCTION_OPT, NETWORK_OPT
from dlbench.cli.suites import RESERVED
from dlbench.engine.execution import DEFAULT_THREADS, Interrupted, Stopped
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
        except Interrupted as e:  # Ctrl-C or SIGTERM in a run: what finished is kept
            typer.echo(str(e), err=True)
            sys.exit(e.code)
        except Stopped as e:  # a worker killed, a full disk: what finished is kept
            _fail(str(e), e.code)
        except (Abort, KeyboardInterrupt):
            rv = 130
        if rv == 130:  # typer's answer to a Ctrl-C outside a run: before anything was kept
            typer.echo("interrupted before any cell finished; nothing was kept", err=True)
            sys.exit(130)
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
         "digits[5,7,9]; parameters like mnist1d[n=12000] or digits[transform=inverted].")]
DataOpt = Annotated[Path | None, typer.Option(
    help="Your data instead of --dataset: a .csv (with --target), a .npz with arrays X and y, "
         "or a directory of MNIST/Fashion-MNIST IDX files.")]
TargetOpt = Annotated[str | None, typer.Option(
    "--target", "--target-column", help="CSV: the target column.")]
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
DropconnectOpt = Annotated[float, typer.Option(
    help="Probability of dropping each hidden-layer weight in training (DropConnect).")]
StochasticDepthOpt = Annotated[float, typer.Option(
    help="resmlp: probability of skipping a residual block per sample in training.")]
PoolOpt = Annotated[str, typer.Option(help="cnn2d pooling: max | fractional.")]
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
MissingOpt = Annotated[str | None, typer.Option(
    help="Fill missing feature values (empty CSV cells, NaN): zero | mean | median of each "
         "member's training rows; tables also get a 0/1 indicator column per feature with a "
         "missing value. optimize/overfit: comma-separated to compare. Default: the data "
         "must be complete.")]
FeaturesOpt = Annotated[str | None, typer.Option(
    help="Keep the K features of highest F statistic (ANOVA F for classes, regression F) on "
         "each member's training rows; the others are zeroed, i.e. removed from the first "
         "layer. optimize/overfit: comma-separated to compare. Default: every feature.")]
SeedOpt = Annotated[int, typer.Option(
    help="Seeds splits, initial weights, batch order and the bootstrap resamples.")]
SeedsOpt = Annotated[int, typer.Option(help="Initialisations trained per split.")]
DeviceOpt = Annotated[str, typer.Option(help="auto (CUDA when present) | cpu | cuda.")]
MetricsOpt = Annotated[str | None, typer.Option(
    help="Comma-separated metrics (the first one ranks): accuracy, balanced_accuracy, "
         "f1_macro, log_loss, roc_auc, loss (the default set); also precision_macro, "
         "recall_macro, average_precision; regression mse, mae, r2, loss.")]
AllowLargeOpt = Annotated[bool, typer.Option(
    "--allow-large", help="Run even when the size estimate says it cannot fit in memory or "
                          "would take hours.")]
OutOpt = Annotated[Path | None, typer.Option(
    help="Results directory (default results/<command>-<timestamp>/).")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | json (the summary on stdout).")]
# where cells run, and continuing a run: never changes a number
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Finish the interrupted run in --out: only its missing cells train; the "
                     "options must be those of that run.")]
WorkersOpt = Annotated[int, typer.Option(
    help="Run cells on a local pool of N worker processes (each with --threads threads).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    help="Run cells on a Dask cluster: its scheduler's address, tcp://HOST:8786 (needs "
         "pip install 'dlbench[dask]').")]
DaskLocalOpt = Annotated[int, typer.Option(
    help="Run cells on a Dask LocalCluster of N worker processes started here.")]
ThreadsOpt = Annotated[int, typer.Option(
    help="torch threads per process (each worker's too). 1 by default: small stacks lose far "
         "more to contention than they gain from threads (see README).")]
# the one train/validation/test split of the grid commands (optimize, overfit)
ValFractionOpt = Annotated[float | None, typer.Option(
    help="Validation share of the rows that are not test rows (default 0.2).")]
TestFractionOpt = Annotated[float | None, typer.Option(
    help="Test share, for datasets without a fixed test split (default 0.2).")]
StratifyOpt = Annotated[bool, typer.Option(
    help="Keep class ratios in the train/validation/test parts.")]


def _given(ctx: typer.Context) -> set[str]:
    """The options the user typed (the others hold their defaults)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name).name == "COMMANDLINE"}


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
def cv(ctx: typer.Context, dataset: DatasetOpt = "digits", data: DataOpt = None,
       target: TargetOpt = None, group: GroupOpt = None, time: TimeOpt = None,
       dedupe: DedupeOpt = False, model: ModelOpt = "mlp", hidden: HiddenOpt = "128",
       channels: ChannelsOpt = "16,32", activation: ActivationOpt = "relu",
       batchnorm: BatchnormOpt = False, dropout: DropoutOpt = 0.0, init: InitOpt = "default",
       dropconnect: DropconnectOpt = 0.0, stochastic_depth: StochasticDepthOpt = 0.0,
       pool: PoolOpt = "max",
       opt: OptOpt = "adam", lr: LrOpt = None, weight_decay: WeightDecayOpt = None,
       schedule: ScheduleOpt = "constant", warmup: WarmupOpt = 0, epochs: EpochsOpt = 20,
       batch_size: BatchOpt = 32, preprocess: PreprocessOpt = "standardize",
       missing: MissingOpt = None, features: FeaturesOpt = None,
       protocol: Annotated[str, typer.Option(help="kfold | holdout.")] = "kfold",
       k: Annotated[int, typer.Option(help="kfold: folds.")] = 4,
       repeats: Annotated[int, typer.Option(
           help="kfold: repeats; >1 is iterated k-fold, reshuffled every repeat.")] = 1,
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
       device: DeviceOpt = "auto", allow_large: AllowLargeOpt = False, out: OutOpt = None,
       resume: ResumeOpt = False, workers: WorkersOpt = 1, scheduler: SchedulerOpt = None,
       dask_local: DaskLocalOpt = 0, threads: ThreadsOpt = DEFAULT_THREADS,
       fmt: FormatOpt = "table") -> None:
    """Hold-out, k-fold and iterated k-fold estimates with confidence intervals, leakage-safe."""
    from dlbench.cli.config import cv_config
    from dlbench.runners import cv as runner

    _check_format(fmt)
    _run(runner, cv_config(ctx.params, _given(ctx)), ctx, fmt, "cv")


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
        dataset: DatasetOpt = "digits", data: DataOpt = None, target: TargetOpt = None,
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
        dropout: DropoutOpt = 0.0, dropconnect: DropconnectOpt = 0.0,
        stochastic_depth: StochasticDepthOpt = 0.0, pool: PoolOpt = "max",
        init: Annotated[str | None, typer.Option(
            help="Inits, comma-separated: default, xavier, he, std1, std0.01; also records "
                 "per-layer activations at initialisation.")] = None,
        preprocess: Annotated[str, typer.Option(
            help="Preprocessing, comma-separated: standardize, minmax, none.")] = "standardize",
        missing: MissingOpt = None, features: FeaturesOpt = None,
        epochs: EpochsOpt = 20,
        batch_size: Annotated[str, typer.Option(
            help="Rows per step and member; comma-separated to compare (each size its own "
                 "stack): 16,64,256.")] = "32",
        loss: Annotated[str | None, typer.Option(
            help="Training losses, comma-separated: cross-entropy, mse (classification: squared "
                 "error of the softmax against one-hot). Default: the model's own.")] = None,
        seeds: Annotated[int, typer.Option(
            help="Seeds per cell, paired across cells.")] = 3, seed: SeedOpt = 0,
        lr_grid: Annotated[str | None, typer.Option(
            help="LOW:HIGH:N — every optimizer at N log-spaced learning rates.")] = None,
        tune: Annotated[str | None, typer.Option(
            help="'lr': tune each optimizer's learning rate on validation with --budget "
                 "trials, then rerun over --seeds and test once.")] = None,
        budget: Annotated[int, typer.Option(help="--tune: trials per optimizer.")] = 8,
        target_accuracy: Annotated[float | None, typer.Option(
            help="Validation accuracy whose cost to reach (passes over the data, gradient "
                 "evaluations, seconds) is reported.")] = None,
        margin: Annotated[str | None, typer.Option(
            help="Equivalence margin for '≈ #1', in the first metric's units (0.01) or as a "
                 "share of #1's value (2%); default 0.01 (mse, mae: 1%).")] = None,
        val_fraction: ValFractionOpt = None, test_fraction: TestFractionOpt = None,
        stratify: StratifyOpt = True,
        metrics: MetricsOpt = None, device: DeviceOpt = "auto",
        allow_large: AllowLargeOpt = False, out: OutOpt = None,
        resume: ResumeOpt = False, workers: WorkersOpt = 1, scheduler: SchedulerOpt = None,
        dask_local: DaskLocalOpt = 0, threads: ThreadsOpt = DEFAULT_THREADS,
        fmt: FormatOpt = "table") -> None:
    """Optimizers on 2-D test functions and on networks: curves, sweeps, tuning, init studies."""
    from dlbench.cli.config import optimize_config
    from dlbench.runners import functions
    from dlbench.runners import optimize as runner

    _check_format(fmt)
    config = optimize_config(ctx.params, _given(ctx))
    if config.function:
        _run_functions(functions, config, ctx, fmt)
    else:
        _run(runner, config, ctx, fmt, "optimize")


@app.command()
def overfit(
        ctx: typer.Context,
        reg: Annotated[str, typer.Option(
            "--reg", help="Regularizers, comma-separated, each with optional parameters: "
                          "'none,l2[strength=1e-3],dropout[p=0.5]' (see `dlbench "
                          "regularizers`; tta[n=4] averages predictions over test-time copies "
                          "of images or sequences); each is compared with none.")
                       ] = "none,l2[strength=1e-3],dropout[p=0.5],early-stop[patience=5]",
        dataset: DatasetOpt = "mnist1d", data: DataOpt = None, target: TargetOpt = None,
        model: ModelOpt = "mlp",
        hidden: HiddenOpt = "512,512",
        width: Annotated[str | None, typer.Option(
            help="Capacity sweep: hidden-layer widths, comma-separated (6,16,64,1024).")] = None,
        depth: Annotated[str | None, typer.Option(
            help="Capacity sweep: numbers of hidden layers, comma-separated (1,2,4).")] = None,
        channels: ChannelsOpt = "16,32", activation: ActivationOpt = "relu",
        init: InitOpt = "default",
        train_rows: Annotated[str, typer.Option(
            help="Training rows drawn (stratified) from the training part, or 'all'; few rows "
                 "overfit soon.")] = "1000",
        train_fraction: Annotated[str | None, typer.Option(
            help="Learning curve: shares of those rows, comma-separated (0.1,0.25,0.5,1).")
                                  ] = None,
        opt: OptOpt = "adam", lr: LrOpt = None, weight_decay: WeightDecayOpt = None,
        schedule: ScheduleOpt = "constant", warmup: WarmupOpt = 0, epochs: EpochsOpt = 60,
        batch_size: BatchOpt = 32, preprocess: PreprocessOpt = "standardize",
        missing: MissingOpt = None, features: FeaturesOpt = None,
        seeds: Annotated[int, typer.Option(help="Seeds per configuration, paired.")] = 3,
        seed: SeedOpt = 0,
        val_fraction: ValFractionOpt = None, test_fraction: TestFractionOpt = None,
        stratify: StratifyOpt = True,
        metrics: MetricsOpt = None, device: DeviceOpt = "auto",
        allow_large: AllowLargeOpt = False, out: OutOpt = None,
        resume: ResumeOpt = False, workers: WorkersOpt = 1, scheduler: SchedulerOpt = None,
        dask_local: DaskLocalOpt = 0, threads: ThreadsOpt = DEFAULT_THREADS,
        fmt: FormatOpt = "table") -> None:
    """Capacity and regularizers on train-vs-validation curves: overfitting onset and gap."""
    from dlbench.cli.config import overfit_config
    from dlbench.runners import overfit as runner

    _check_format(fmt)
    _run(runner, overfit_config(ctx.params, _given(ctx)), ctx, fmt, "overfit")


@app.command()
def transfer(
        ctx: typer.Context,
        source: Annotated[str, typer.Option(
            help="Source dataset to pretrain on (class subsets: mnist1d[0-4]).")
                          ] = "mnist1d[0-4,n=12000]",
        target: Annotated[str, typer.Option(
            "--target", help="Target dataset, the same input shape as the source.")
                          ] = "mnist1d[5-9]",
        strategy: Annotated[str, typer.Option(
            help="Strategies, comma-separated: scratch, linear-probe, finetune-top, "
                 "finetune-all, probe-early.")] = "scratch,linear-probe,finetune-top,finetune-all",
        target_size: Annotated[str, typer.Option(
            help="Target training rows per model, comma-separated (stratified samples).")
                               ] = "25,100,1000",
        top: Annotated[int, typer.Option(
            help="finetune-top: pretrained weight layers trained below the new head; "
                 "probe-early: those re-drawn (a probe on the layers below).")] = 1,
        body_lr_scale: Annotated[float, typer.Option(
            help="finetune-all: learning-rate multiplier of the pretrained layers.")] = 1.0,
        source_epochs: Annotated[int, typer.Option(
            help="Epochs of pretraining on the source.")] = 20,
        similarity: Annotated[str | None, typer.Option(
            help="similar,different: the target (similar) against a different domain of the "
                 "same shape (--different, default: the target's features permuted).")] = None,
        different: Annotated[str | None, typer.Option(
            help="The different target of --similarity (e.g. 'mnist1d[5-9,transform=reversed]')."
        )] = None,
        preset: Annotated[str | None, typer.Option(
            help="quadrants: small/large × similar/different, and the classic advice for each, "
                 "measured.")] = None,
        source_checkpoint: Annotated[Path | None, typer.Option(
            help="Load the source weights from a PyTorch state dict instead of pretraining "
                 "(weights only; the layout of source.pt, see README).")] = None,
        model: ModelOpt = "cnn1d", hidden: HiddenOpt = "128", channels: ChannelsOpt = "16,32",
        activation: ActivationOpt = "relu", batchnorm: BatchnormOpt = False,
        init: InitOpt = "default", opt: OptOpt = "adam", lr: LrOpt = None,
        weight_decay: WeightDecayOpt = None, schedule: ScheduleOpt = "constant",
        warmup: WarmupOpt = 0, epochs: Annotated[int, typer.Option(
            help="Epochs on the target's training rows.")] = 40,
        batch_size: BatchOpt = 32, preprocess: PreprocessOpt = "standardize",
        seeds: Annotated[int, typer.Option(
            help="Seeds per strategy and size, each with its own target sample.")] = 3,
        seed: SeedOpt = 0, metrics: MetricsOpt = None, device: DeviceOpt = "auto",
        allow_large: AllowLargeOpt = False, out: OutOpt = None,
        resume: ResumeOpt = False, workers: WorkersOpt = 1, scheduler: SchedulerOpt = None,
        dask_local: DaskLocalOpt = 0, threads: ThreadsOpt = DEFAULT_THREADS,
        fmt: FormatOpt = "table") -> None:
    """Pretrain, then linear-probe or fine-tune, against training from scratch."""
    from dlbench.cli.config import transfer_config
    from dlbench.runners import transfer as runner

    _check_format(fmt)
    _run(runner, transfer_config(ctx.params, _given(ctx)), ctx, fmt, "transfer")


@app.command(name="report")
def report_page(
        paths: Annotated[list[Path], typer.Argument(
            help="Results to show: run, suite, compare (compare --out) or rank directories.",
            metavar="DIR", show_default=False)],
        out: Annotated[Path, typer.Option(
            help="The HTML file to write (self-contained: styles and images inline).")
                       ] = Path("report.html")) -> None:
    """One HTML page of results that opens in any browser without a server: compare verdicts
    first (regressions at the top), then every run's summary table and figures."""
    from dlbench import results
    from dlbench.output import html

    html.check_out(out)
    text = html.page(paths)
    try:
        results.atomic_write(out, lambda f: f.write(text))
    except OSError as e:
        raise DlbenchError(f"cannot write {out}: {e.strerror}; give --out a writable path"
                           ) from None
    typer.echo(f"report: {out}", err=True)


@app.command(name="run")
def run_suite(
        ctx: typer.Context,
        suite: Annotated[Path, typer.Argument(
            help="A suite file (TOML): [entry.NAME] tables, each a command and its options, "
                 "e.g. benchmarks/smoke.toml.", metavar="SUITE", show_default=False)],
        out: Annotated[Path | None, typer.Option(
            help="The suite's results directory, one subdirectory per entry (default "
                 "results/<suite>-<timestamp>/). Entries finished there are skipped, "
                 "interrupted ones resumed.")] = None,
        timings: Annotated[int, typer.Option(
            help="Also time each network entry N times (its cells train again, their results "
                 "dropped) into timings.csv: what compare --tolerance seconds:+N% needs.")
                           ] = 0,
        workers: WorkersOpt = 1, scheduler: SchedulerOpt = None, dask_local: DaskLocalOpt = 0,
        threads: ThreadsOpt = DEFAULT_THREADS) -> None:
    """Run a benchmark suite: every entry is checked first, then each runs into its own
    directory, keeping what already finished there."""
    from dlbench import results
    from dlbench.cli import suites
    from dlbench.cli.config import execution_config
    from dlbench.engine.execution import Engine, check_execution
    from dlbench.output import report
    from dlbench.output.progress import progress_bar

    loaded = suites.load(suite)
    if timings < 0:
        raise DlbenchError(f"--timings must be 0 or more, got {timings}")
    results.check_out(out)  # a suite's directory holds entries' runs, not a run of its own
    execution = execution_config(ctx.params)
    warnings = check_execution(execution)
    root = out or results.default_out_dir(loaded.name)
    entries = [_prepared(entry, root / entry.name) for entry in loaded.entries]
    if out is None:  # every entry checked: now make the suite's directory, exclusively
        root = results.new_dir(loaded.name)
        for e in entries:
            e.out = root / e.entry.name
    _warn(warnings + [f"{e.entry.name}: {w}" for e in entries for w in e.warnings])
    try:
        results.atomic_write(root / "suite.json", lambda f: json.dump(  # what the report shows
            {"suite": loaded.name, "description": loaded.description,
             "entries": [{"name": e.name, "command": e.command, "claim": e.claim}
                         for e in loaded.entries]}, f, indent=2))
    except OSError as e:
        raise DlbenchError(f"cannot write to {root}: {e.strerror}; give --out a writable "
                           "directory") from None
    again = [*sys.argv[1:], *(["--out", str(root)] if out is None else [])]
    hint = f"dlbench {shlex.join(again)}"  # a rerun resumes
    rows = []
    total = sum(e.plan.total_epochs for e in entries if e.plan is not None)
    with progress_bar(total, loaded.name) as advance, \
            Engine(execution, progress=advance) as engine, _suite_interrupted(root, hint):
        for e in entries:
            if e.state != "finished" and e.plan is None:  # paths on a function
                _, e.out = _execute_functions(e.runner, e.config, e.out, e.state != "new")
            elif e.state != "finished":
                _, e.out = _execute(e.entry.command, e.runner, e.config, e.plan, e.out,
                                    e.state == "unfinished", engine, lambda _: hint)
            rows.append({"entry": e.entry.name, "command": e.entry.command,
                         "done": {"new": "trained", "unfinished": "resumed"}.get(
                             e.state, "already finished"),
                         "cells trained": engine.trained if e.plan is not None else 0,
                         "results": str(e.out)})
    for e, row in zip(entries, rows, strict=True):  # after every result: timing only adds
        if timings and e.entry.options.get("function") is None:
            row["timings"] = _timed(e, timings, execution)
    columns = ["entry", "command", "done", "cells trained", *(["timings"] if timings else []),
               "results"]
    report.listing(f"suite {loaded.name}", [{"timings": "", **r} for r in rows], columns,
                   wrap=("results",))
    typer.echo(f"results: {root}", err=True)


@contextlib.contextmanager
def _suite_interrupted(root: Path, hint: str) -> Iterator[None]:
    """Ctrl-C between a suite's entries (inside one, its own run says what it kept)."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: the entries finished so far are kept in {root}; "
                          f"finish with: {hint}") from None


@dataclass(eq=False)
class _Entry:
    """A suite entry, parsed, checked and prepared before anything in the suite trains."""

    entry: Any  # suites.Entry
    runner: Any
    config: Any
    plan: Any  # None when its run finished already, and for paths on a function (no cells)
    state: str  # results.run_state: new, unfinished or finished
    out: Path

    @property
    def warnings(self) -> list[str]:
        return self.plan.warnings if self.plan is not None else []


def _timed(e: _Entry, n: int, execution) -> int:
    """Time an entry's whole training `n` times (its stored cells not used), kept in its
    timings.csv; timings already there count -> how many there are."""
    import pandas as pd

    from dlbench import results
    from dlbench.engine.execution import Engine

    path = e.out / "timings.csv"
    done = pd.read_csv(path)["seconds"].tolist() if path.exists() else []
    plan = e.plan or e.runner.prepare(e.config)
    with Engine(execution) as engine:  # no store: every cell trains again; one pool for all
        while len(done) < n:
            started = time.perf_counter()
            e.runner.run(plan, engine)
            done.append(round(time.perf_counter() - started, 4))
            frame = pd.DataFrame({"timing": range(len(done)), "seconds": done})
            results.atomic_write(path, lambda f, frame=frame: frame.to_csv(f, index=False))
    return len(done)


def _prepared(entry, out: Path) -> _Entry:
    """Parse an entry's options with the command's own parser and config builder, check its
    directory, and prepare its plan (data, sizes): every error names the entry."""
    from dlbench import results

    try:
        context = _entry_context(entry)
        build, runner = _recipe(entry.command)
        config = build(context.params, _given(context))
        state = results.run_state(out, {"command": entry.command, "config": config.record()})
        if state != "finished":
            results.check_out(out, resume=state == "unfinished")
        plan = None
        if getattr(config, "function", None):  # paths on a function: a second, no cells
            from dlbench.runners import functions

            runner = functions
            runner.check(config)
        elif state != "finished":
            plan = runner.prepare(config)
    except DlbenchError as e:
        raise DlbenchError(f"suite entry '{entry.name}': {e}") from None
    return _Entry(entry, runner, config, plan, state, out)


def _entry_context(entry) -> typer.Context:
    """A suite entry's options through its command's own parser: the values, types, defaults
    and usage errors of the command line."""
    command = typer.main.get_command(app).commands[entry.command]
    try:
        return command.make_context(entry.command, _arguments(command, entry))
    except TyperException as e:  # typer's click: a bad value, a missing one
        raise DlbenchError(e.format_message()) from None


def _arguments(command, entry) -> list[str]:
    """An entry's options as command-line arguments."""
    params = {opt[2:]: p for p in command.params for opt in (*p.opts, *p.secondary_opts)
              if opt.startswith("--")}
    args: list[str] = []
    for key, value in entry.options.items():
        param = params.get(key)
        if param is None or key.startswith("no-"):
            names = sorted(p.opts[0][2:] for p in command.params
                           if p.opts[0].startswith("--") and p.opts[0][2:] not in RESERVED)
            raise DlbenchError(f"{entry.command} has no option --{key}; its options: "
                               f"{', '.join(names)}")
        if getattr(param, "is_flag", False):
            if not isinstance(value, bool):
                raise DlbenchError(f"--{key} is a switch: give true or false")
            if value or param.secondary_opts:
                args.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        values = value if isinstance(value, list) else [value]
        if len(values) > 1 and not param.multiple:  # click would keep the last one
            raise DlbenchError(f"--{key} takes one value, got a list of {len(values)}; only "
                               "an option that may be repeated (optimize's hidden) takes a list")
        for item in values:
            args += [param.opts[0], str(item).lower() if isinstance(item, bool) else str(item)]
    return args


def _recipe(command: str):
    """A command's config builder and runner."""
    from dlbench.cli import config
    from dlbench.runners import cv, optimize, overfit, transfer

    return {"cv": (config.cv_config, cv), "optimize": (config.optimize_config, optimize),
            "overfit": (config.overfit_config, overfit),
            "transfer": (config.transfer_config, transfer)}[command]


@app.command()
def compare(
        ctx: typer.Context,
        paths: Annotated[list[Path], typer.Argument(
            help="BASELINE CURRENT: results directories, suite directories or scores.csv "
                 "files. With --rank: two or more results or suite directories.",
            metavar="PATH", show_default=False)],
        tolerance: Annotated[str | None, typer.Option(
            help="How much worse each metric may get before it counts, relative ('%') or in "
                 "its units: 'accuracy:-1%,loss:+5%' (default 1% of the baseline for every "
                 "metric); 'seconds:+20%' also compares wall time (needs dlbench run "
                 "--timings).")] = None,
        rope: Annotated[float | None, typer.Option(
            help="Also the probability that the difference lies within ±ROPE (practically "
                 "equivalent; correlated Bayesian t-test), in the metric's units.")] = None,
        all_rows: Annotated[bool, typer.Option(
            "--all", help="List the unchanged rows too.")] = False,
        rank: Annotated[bool, typer.Option(
            "--rank", help="Rank the methods (configurations) across the problems (each "
                           "directory or suite entry): Friedman, Nemenyi, Wilcoxon for two.")
                        ] = False,
        metric: Annotated[str, typer.Option(help="--rank: the metric ranked.")] = "accuracy",
        split: Annotated[str, typer.Option(help="--rank: the split ranked.")] = "val",
        cost: Annotated[str | None, typer.Option(
            help="--rank: also performance profiles of this cost to the target (grad_evals, "
                 "passes, epochs, seconds; runs of optimize --target-accuracy).")] = None,
        out: Annotated[Path | None, typer.Option(
            help="Also write the verdicts (compare.csv) here, for `dlbench report`; --rank: "
                 "where its CSVs and PNGs go (default results/rank-<timestamp>/).")] = None,
        fmt: Annotated[str, typer.Option(
            "--format", help="table | markdown (a CI job summary) | json.")] = "table") -> None:
    """Compare results with a baseline: exit 1 when something regressed (shown worse than
    its tolerance) or went missing, 0 when nothing did. With --rank: methods
    ranked across problems."""
    from dlbench import results
    from dlbench.evaluate import compare as judge
    from dlbench.output import report

    if fmt not in ("table", "markdown", "json"):
        raise DlbenchError(f"unknown format '{fmt}'; choose one of: table, markdown, json")
    given = {name for name in ("tolerance", "rope", "all_rows", "metric", "split", "cost")
             if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}
    own = {"metric", "split", "cost"}  # --rank's; the others judge two runs
    for name in sorted(given - own if rank else given & own):
        option = "--all" if name == "all_rows" else f"--{name}"
        raise DlbenchError(f"{option} does not apply to --rank; drop it" if rank else
                           f"{option} applies to --rank; drop it or add --rank")
    if rank:
        _rank(paths, metric, split, cost, out, fmt)
        return
    if len(paths) != 2:
        raise DlbenchError(f"compare takes BASELINE CURRENT (2 paths), got {len(paths)}; "
                           "--rank compares more")
    if rope is not None and not (rope > 0 and math.isfinite(rope)):
        raise DlbenchError(f"--rope must be a positive number, got {rope:g}")
    tolerances = judge.parse_tolerance(tolerance)
    results.check_out(out)
    base_path, now_path = paths
    baseline, current = judge.load(base_path), judge.load(now_path)
    notes = [f"regressed: shown worse than its tolerance, one-sided p < {judge.ALPHA} "
             "(non-inferiority; p is that test's, in the direction Δ points); units are the "
             "resampled splits (seeds averaged within each, corrected resampled t of Nadeau & "
             "Bengio 2003) or else the seeds (t), paired where both runs used the same rows; "
             "missing rows or members count as failures", *judge.notes(baseline, current)]
    if rope is not None:
        notes.append(f"p_equivalent (json): posterior probability that the difference lies "
                     f"within ±{rope:g} (correlated Bayesian t-test)")
    if judge.TIMING in tolerances:
        notes.append("wall time: geometric means of each side's timings (dlbench run "
                     "--timings N), Welch t on log seconds; both sides' load is part of it: "
                     "time them on the same quiet machine")
    found = judge.compare(baseline, current, tolerances, rope)
    if out is not None:  # compare.csv, every row: what `dlbench report` shows
        record = {"command": "compare", "config": {"baseline": str(base_path),
                                                   "current": str(now_path),
                                                   "tolerance": tolerance, "rope": rope}}
        with results.claimed(out, "compare", record) as out_dir:
            results.write_run(out_dir, {"compare": found}, {
                **record, "baseline": str(base_path), "current": str(now_path),
                "rule": notes[0], **results.environment()})
    report.show_compare(found, f"compare {base_path} → {now_path}", notes, fmt, all_rows)
    raise typer.Exit(1 if found.verdict.isin(judge.FAILURES).any() else 0)


def _rank(paths: list[Path], metric: str, split: str, cost: str | None, out: Path | None,
          fmt: str) -> None:
    """compare --rank: every input checked, then the ranking, its files and its table."""
    from dlbench import results
    from dlbench.evaluate import compare as judge
    from dlbench.evaluate import ranking
    from dlbench.evaluate.metrics import METRICS
    from dlbench.output import plots, report

    if metric not in METRICS:
        raise DlbenchError(f"--metric: unknown metric '{metric}'; choose from: "
                           f"{', '.join(METRICS.names())}")
    if cost is not None and cost not in ranking.COSTS:
        raise DlbenchError(f"--cost: unknown cost '{cost}'; choose one of: "
                           f"{', '.join(ranking.COSTS)}")
    results.check_out(out)
    scores = ranking.score_table([judge.load(p) for p in paths], split, metric)
    costs = ranking.cost_table(paths, cost) if cost is not None else None
    ranked = ranking.rank(scores, metric)
    title = f"{metric} on {split}, {len(scores)} problems"
    tables = {"ranks": ranking.ranks_table(ranked),
              "scores": scores.rename_axis("problem").reset_index()}
    figures = {}
    if ranked.nemenyi is not None:
        tables["nemenyi"] = ranked.nemenyi.rename_axis("method").reset_index()
        figures["critical_difference.png"] = lambda p: plots.critical_difference_plot(
            p, ranked.ranks, ranked.nemenyi, f"mean rank, {title} (bars join methods "
            f"Nemenyi cannot tell apart at α={ranking.ALPHA})")
    if costs is not None:
        profile = ranking.profiles(costs)
        tables["profiles"] = profile.reset_index()
        figures["profiles.png"] = lambda p: plots.profiles_plot(
            p, profile, cost, f"performance profiles: {cost} to the target, {len(costs)} "
            "problems")
    record = {"command": "compare --rank", "config": {
        "paths": [str(p) for p in paths], "metric": metric, "split": split, "cost": cost}}
    with results.claimed(out, "rank", record) as out_dir:
        results.write_run(out_dir, tables, {**record, **results.environment()}, figures)
    report.show_ranking(ranked, title, fmt)
    typer.echo(f"results: {out_dir}", err=True)


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise DlbenchError(f"unknown format '{fmt}'; choose one of: table, json")


def _run(runner, config, ctx: typer.Context, fmt: str, command: str) -> None:
    """Validate everything (data, sizes, executor, the results directory), then train, write,
    report."""
    from dlbench import results
    from dlbench.cli.config import execution_config
    from dlbench.engine.execution import Engine, check_execution
    from dlbench.output import report
    from dlbench.output.progress import progress_bar

    out, resume = ctx.params["out"], ctx.params["resume"]
    results.check_out(out, resume)
    execution = execution_config(ctx.params)
    warnings = check_execution(execution)
    plan = runner.prepare(config)
    _warn(warnings + plan.warnings)
    with progress_bar(plan.total_epochs, command) as advance, \
            Engine(execution, progress=advance) as engine:
        result, out_dir = _execute(command, runner, config, plan, out, resume, engine,
                                   _finish_hint(out))
    try:
        _warn(result.warnings)
        report.show(command, result, fmt)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after the run finished: its results are complete in "
                          f"{out_dir}") from None
    typer.echo(f"results: {out_dir}", err=True)


def _execute(command: str, runner, config, plan, out: Path | None, resume: bool, engine,
             hint: Callable[[Path], str]):
    """Train a prepared plan into its claimed directory (its finished cells kept, the others
    trained by `engine`) and write its files -> (result, the directory). However it stops
    (Ctrl-C, SIGTERM, a killed worker, a full disk), one line says what was kept and how to
    finish."""
    from dlbench import results
    from dlbench.engine.execution import Store, WorkerLost

    record = {"command": command, "config": config.record()}
    with results.claimed(out, command, record, resume, lambda w: _warn([w])) as out_dir:
        store = Store(out_dir / results.CELLS)
        engine.use(store)
        try:
            result = runner.run(plan, engine)
            _warn(_rejected(store))
            manifest = {"command": command, **results.environment(), "config": config.record(),
                        "execution": engine.config.record() | {
                            "cells_trained": engine.trained, "cells_resumed": engine.resumed},
                        **result.info}
            results.write_run(out_dir, result.tables, manifest, _figures(command, result))
        except (Interrupted, KeyboardInterrupt):
            raise Interrupted(f"interrupted: {_kept(out_dir, store, hint)}") from None
        except (WorkerLost, OSError) as e:
            raise Stopped(f"{_why(e)}; {_kept(out_dir, store, hint)}") from None
    return result, out_dir


def _finish_hint(out: Path | None) -> Callable[[Path], str]:
    """The command that finishes an interrupted run: this one, with --resume (and --out)."""

    def hint(out_dir: Path) -> str:
        args = [a for a in sys.argv[1:] if a != "--resume"]
        more = ["--resume"] + (["--out", str(out_dir)] if out is None else [])
        return f"dlbench {shlex.join(args + more)}"

    return hint


def _kept(out_dir: Path, store, hint: Callable[[Path], str]) -> str:
    """What a stopped run leaves, and the command that finishes it."""
    finished = store.count()
    if not finished:
        return "no cell had finished, so nothing was kept; run the command again"
    return (f"{finished} finished cell{'s' if finished > 1 else ''} kept in {out_dir}; "
            f"finish with: {hint(out_dir)}")


def _why(error: Exception) -> str:
    """What stopped a run, in words: a lost worker's message, or the failed file operation."""
    if not isinstance(error, OSError):
        return str(error)
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}"


def _rejected(store) -> list[str]:
    """One warning for the stored cells that could not be used (and were trained again)."""
    if not store.rejected:
        return []
    reasons = sorted(set(store.rejected.values()))
    n = len(store.rejected)
    return [f"{n} stored task file{'s' if n > 1 else ''} in {store.directory} not used "
            f"({'; '.join(reasons)}): trained again"]


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


def _figures(command: str, result) -> dict:
    """What to draw (and extra files to write), by file name; cv draws nothing."""
    figures = {"optimize": _optimize_figures, "overfit": _overfit_figures,
               "transfer": _transfer_figures}
    return figures[command](result) if command in figures else {}


def _optimize_figures(result) -> dict:
    from dlbench.output import plots

    final = result.curves[result.curves.phase == "final"]
    seeds = result.info["seeds"]
    title = f"{result.info['dataset']['name']}: {seeds} seed{'s' if seeds > 1 else ''} per cell"
    figures = {"curves.png": lambda p: plots.curves_plot(p, final, title)}
    if result.plan.config.lr_grid or result.plan.config.tune_budget:
        figures["lr_sweep.png"] = lambda p: plots.lr_sweep_plot(p, result.sweep,
                                                                _sweep_title(result))
    if result.histograms:
        figures["activations.png"] = lambda p: plots.activations_plot(p, result.histograms)
    return figures


def _overfit_figures(result) -> dict:
    import pandas as pd

    from dlbench.output import plots

    info, config = result.info, result.plan.config
    seeds = f"{config.seeds} seed{'s' if config.seeds > 1 else ''}"
    summary = result.summary
    marks = pd.DataFrame({"cell": summary["cell"], "best_epoch": summary["best_epoch"],
                          "onset": summary["onset_epoch"]})
    title = (f"{info['dataset']['name']}: training vs validation loss (eval mode, after each "
             f"epoch; {seeds})")
    figures = {"overfit.png": lambda p: plots.overfit_plot(p, result.curves, marks, title)}
    if len(result.learning):
        figures["learning_curve.png"] = lambda p: plots.learning_curve_plot(
            p, result.learning, f"{info['dataset']['name']}: learning curve ({seeds}, 95% "
            "intervals)", info["primary_metric"])
    return figures


def _transfer_figures(result) -> dict:
    import pandas as pd

    from dlbench.engine import checkpoints
    from dlbench.output import plots

    s, info = result.summary, result.info
    points = pd.DataFrame({"cell": s["strategy"], "train_rows": s["target_size"],
                           "split": "test", "metric": s["metric"], "mean": s["test_mean"],
                           "ci_low": s["test_ci_low"], "ci_high": s["test_ci_high"]})
    if (s["similarity"] != "").any():  # the quadrants: a panel per target, sizes along x
        points["panel"] = s["similarity"] + " target"
    target = "similar/different" if len(info["targets"]) > 1 else info["dataset"]["name"]
    title = (f"{info['source']['name']} → {target}: test {s['metric'].iloc[0]} "
             f"against target rows ({info['seeds']} seeds, 95% intervals)")
    return {"transfer.png": lambda p: plots.learning_curve_plot(p, points, title,
                                                                s["metric"].iloc[0]),
            "source.pt": lambda p: checkpoints.save(p, result.source_weights)}


def _sweep_title(result) -> str:
    name, seeds = result.info["dataset"]["name"], result.info["seeds"]
    if result.info["trials"]:
        return (f"{name}: --tune trials (one run each, validation only); the finals "
                f"rerun the chosen rates over {seeds} seed{'s' if seeds > 1 else ''}")
    return f"{name}: {seeds} seed{'s' if seeds > 1 else ''} per learning rate"


def _run_functions(runner, config, ctx: typer.Context, fmt: str) -> None:
    """Paths on a 2-D function: no cells, and a second's work (so no --resume or executors)."""
    from dlbench import results
    from dlbench.optim.functions import FUNCTIONS
    from dlbench.output import report

    out = ctx.params["out"]
    results.check_out(out)
    runner.check(config)
    summary, out_dir = _execute_functions(runner, config, out)
    report.print_functions(summary, FUNCTIONS.get(config.function), config, fmt)
    typer.echo(f"results: {out_dir}", err=True)


def _execute_functions(runner, config, out: Path | None, resume: bool = False):
    """Run paths on a function into their claimed directory -> (summary, the directory)."""
    from dlbench import results
    from dlbench.optim.functions import FUNCTIONS
    from dlbench.output import plots

    info = FUNCTIONS.get(config.function)
    record = {"command": "optimize", "config": config.record()}
    with results.claimed(out, "optimize", record, resume) as out_dir:
        started = time.perf_counter()
        trajectories, summary = runner.run(config, config.optimizer_grid())
        manifest = {"command": "optimize", **results.environment(), "config": config.record(),
                    "seconds": round(time.perf_counter() - started, 3)}
        results.write_run(out_dir, {"trajectories": trajectories, "summary": summary}, manifest,
                          {"trajectories.png": lambda p: plots.trajectories_plot(
                              p, info, trajectories)})
    return summary, out_dir


@app.command()
def optimizers() -> None:
    """List the optimizers with their defaults (the --opt grammar's names and parameters)."""
    from dlbench.optim.optimizers import OPTIMIZERS, format_value
    from dlbench.output.report import listing

    rows = [{"name": o.name, "class": o.cls.__name__,
             "defaults": ", ".join(f"{k}={format_value(v)}"
                                   for k, v in o.signature_defaults().items()),
             "stacked": "yes" if o.elementwise else "alone, full batch",
             "description": o.description} for o in OPTIMIZERS]
    listing("optimizers", rows, ["name", "class", "defaults", "stacked", "description"],
            wrap=("defaults", "stacked", "description"))


@app.command()
def datasets() -> None:
    """List the built-in datasets."""
    from dlbench.data.datasets import DATASETS, describe
    from dlbench.output.report import listing

    rows = [describe(info) for info in DATASETS]
    for row in rows:
        row["task"] = f"{row['classes']} classes" if row["classes"] else row["task"]
        row["test"] = "fixed" if row["fixed_test"] else "—"
    listing("datasets", rows, ["name", "samples", "features", "task", "test", "description"])


@app.command()
def regularizers() -> None:
    """List the regularizers of `dlbench overfit --reg` with their parameters."""
    from dlbench.engine.regularizers import REGULARIZERS
    from dlbench.grammar import format_value
    from dlbench.output.report import listing

    rows = [{"name": r.name, "defaults": ", ".join(f"{k}={format_value(v)}"
                                                   for k, v in r.defaults.items()) or "—",
             "description": r.description} for r in REGULARIZERS]
    listing("regularizers", rows, ["name", "defaults", "description"],
            wrap=("defaults", "description"))


@app.command()
def models() -> None:
    """List the models and the options each one uses."""
    from dlbench.nn.models import MODELS
    from dlbench.output.report import listing

    rows = [{"name": m.name, "tasks": ", ".join(m.tasks), "options": m.options,
             "description": m.description} for m in MODELS]
    listing("models", rows, ["name", "tasks", "options", "description"],
            wrap=("tasks", "options", "description"))


def main() -> None:
    """The `dlbench` program. Once a command has finished (its files closed, its workers
    stopped), exit without the interpreter's teardown of some 3000 modules (torch's among them):
    about half a second that no one waits for gladly. Exit handlers still run."""
    import atexit
    import os
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: files cleaned up
    try:
        app()
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:  # after the command's own handling: its files are complete
        code = 130
    for sig in (signal.SIGINT, signal.SIGTERM):  # the command is over: nothing to interrupt
        signal.signal(sig, signal.SIG_IGN)
    if not isinstance(code, int):  # SystemExit("message") or None, as Python would treat them
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
