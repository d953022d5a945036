"""The commands' options, declared once: one frozen dataclass per command, composed of the
groups the commands share, one field per option.

A field is an option: its name is the flag (`holdout_seeds` is `--holdout-seeds`, unless its
metadata names the flags), its type and default are the option's, and the comment above it is
its help text (read from this file, so the help and the declaration cannot drift apart). A
`{name}` in a comment is filled from a registry when the help is shown (`{metrics}`, or
`{activations|}` to join with ' | '), so a new entry appears there by itself. The same
dataclasses are what a Python API call takes as keyword arguments, with the same defaults.

`command_function` turns a dataclass into the Typer command's parameters. Nothing here imports
torch: the registries are read only when a command's --help is shown.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
import sys
import tokenize
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from dlbench.cli.config import FUNCTION_OPT, NETWORK_OPT
from dlbench.engine.execution import DEFAULT_THREADS


def flags(default: Any, *names: str) -> Any:
    """A field whose option has its own flags (`--format` for `fmt`; a switch without --no-)."""
    return field(default=default, metadata={"flags": names})


# --- the groups the commands share -------------------------------------------------------------


@dataclass(frozen=True)
class DataOptions:
    """The rows: a built-in dataset or the user's file."""

    # Built-in dataset (see `dlbench datasets`); a class subset like digits[0-4] or
    # digits[5,7,9]; parameters like mnist1d[n=12000] or digits[transform=inverted].
    dataset: str = "digits"
    # Your data instead of --dataset: a .csv (with --target), a .npz with arrays X and y, a
    # directory of MNIST/Fashion-MNIST IDX files, or your loader file.py:load[k=v,...]
    # (package.module:load): load(**k) returns (X, y) or (X, y, X_test, y_test), X (n, d),
    # (n, C, L) or (n, C, H, W); float y is regression, other y class labels.
    data: Path | None = None
    # CSV: the target column.
    target: str | None = flags(None, "--target", "--target-column")


@dataclass(frozen=True)
class ModelOptions:
    """The network every command builds (optimize compares several)."""

    # Model (see `dlbench models`).
    model: str = "mlp"
    # mlp: hidden layer widths, comma-separated.
    hidden: str = "128"
    # cnn1d/cnn2d: channels per conv block.
    channels: str = "16,32"
    # {activations|}.
    activation: str = "relu"
    # Weight init: {inits|}.
    init: str = "default"


@dataclass(frozen=True)
class LayerOptions:
    """Per-layer noise and pooling of cv's and optimize's models."""

    # Dropout probability after each activation.
    dropout: float = 0.0
    # Probability of dropping each hidden-layer weight in training (DropConnect).
    dropconnect: float = 0.0
    # resmlp: probability of skipping a residual block per sample in training.
    stochastic_depth: float = 0.0
    # cnn2d pooling: {pools|}.
    pool: str = "max"


@dataclass(frozen=True)
class BatchnormOptions:
    """A switch that cv and transfer share (optimize compares on and off)."""

    # Batch norm after each hidden layer.
    batchnorm: bool = False


@dataclass(frozen=True)
class OptimizerOptions:
    """The optimizer and its learning-rate schedule."""

    # Optimizer entry (see `dlbench optimizers`), with optional parameters:
    # adam[lr=0.01,betas=0.9/0.99]; your own: path/to/file.py:Name or package.module:Name.
    opt: str = flags("adam", "--opt")
    # Learning rate of every --opt entry that sets none (default: the optimizer's own).
    lr: float | None = None
    # Weight decay of every --opt entry that sets none (adamw: decoupled; default: the
    # optimizer's own), on the weights of linear and conv layers only, never on biases or
    # batch norm.
    weight_decay: float | None = None
    # Learning-rate schedule, stepped per optimizer step: {schedules|}.
    schedule: str = "constant"
    # Optimizer steps of linear warm-up.
    warmup: int = 0


@dataclass(frozen=True)
class TrainingOptions:
    """How long and on what batches a network trains."""

    # Epochs: passes over each member's training rows.
    epochs: int = 20
    # Rows per step and member.
    batch_size: int = 32
    # {preprocessors|}; fitted on each training part only.
    preprocess: str = "standardize"


@dataclass(frozen=True)
class FeatureOptions:
    """Missing values and feature selection, fitted on each member's training rows."""

    # Fill missing feature values (empty CSV cells, NaN): {imputers|} of each member's training
    # rows; tables also get a 0/1 indicator column per feature with a missing value.
    # optimize/overfit: comma-separated to compare. Default: the data must be complete.
    missing: str | None = None
    # Keep the K features of highest F statistic (ANOVA F for classes, regression F) on each
    # member's training rows; the others are zeroed, i.e. removed from the first layer.
    # optimize/overfit: comma-separated to compare. Default: every feature.
    features: str | None = None


@dataclass(frozen=True)
class SplitOptions:
    """The one train/validation/test split of the grid commands (optimize, overfit)."""

    # Validation share of the rows that are not test rows (default 0.2).
    val_fraction: float | None = None
    # Test share, for datasets without a fixed test split (default 0.2).
    test_fraction: float | None = None
    # Keep class ratios in the train/validation/test parts.
    stratify: bool = True


@dataclass(frozen=True)
class RunOptions:
    """Seeds, metrics, device and the size guard of every training command."""

    # Comma-separated metrics (the first one ranks): {metrics}. Your own: file.py:name, a
    # function (y_true, probabilities (N, C) | predictions (N,)) -> float declaring
    # name.greater_is_better = True or False.
    metrics: str | None = None
    # Seeds splits, initial weights, batch order and the bootstrap resamples.
    seed: int = 0
    # Initialisations trained per split.
    seeds: int = 1
    # auto (CUDA when present) | cpu | cuda.
    device: str = "auto"
    # Run even when the size estimate says it cannot fit in memory or would take hours.
    allow_large: bool = flags(False, "--allow-large")
    # Import a module (package.module) or file (path/to/file.py) that adds entries to the
    # registries (OPTIMIZERS.add(...), see dlbench/plugins.py) first; repeatable.
    plugin: list[str] | None = None

    def __post_init__(self) -> None:
        # here, at the boundary every caller passes (command line, suite entry, Python API):
        # the entries a plugin adds exist before any option naming them is parsed
        from dlbench import plugins

        for where in self.plugin or ():
            plugins.use(where)


@dataclass(frozen=True)
class OutputOptions:
    """Where the results go and how the summary is printed."""

    # Results directory (default results/<command>-<timestamp>/).
    out: Path | None = None
    # table | json (the summary on stdout).
    fmt: str = flags("table", "--format")


@dataclass(frozen=True)
class ExecutionOptions:
    """Where cells run, and continuing a run: never changes a number."""

    # Finish the interrupted run in --out: only its missing cells train; the options must be
    # those of that run.
    resume: bool = flags(False, "--resume")
    # Run cells on a local pool of N worker processes (each with --threads threads).
    workers: int = 1
    # Run cells on a Dask cluster: its scheduler's address, tcp://HOST:8786 (needs pip install
    # 'dlbench[dask]').
    scheduler: str | None = None
    # Run cells on a Dask LocalCluster of N worker processes started here.
    dask_local: int = 0
    # torch threads per process (each worker's too). 1 by default: small stacks lose far more
    # to contention than they gain from threads (see README).
    threads: int = DEFAULT_THREADS


# --- the commands: their groups (fields of the first base listed last), then their own --------


@dataclass(frozen=True)
class CVOptions(ExecutionOptions, OutputOptions, RunOptions, FeatureOptions, TrainingOptions,
                OptimizerOptions, BatchnormOptions, LayerOptions, ModelOptions, DataOptions):
    """`dlbench cv`."""

    # CSV: a group column; splits keep each group on one side (group k-fold).
    group: str | None = None
    # CSV: a time column; rows are sorted by it.
    time: str | None = None
    # Drop rows whose features exactly duplicate an earlier row, before splitting.
    dedupe: bool = False
    # {protocols|}.
    protocol: str = "kfold"
    # kfold: folds.
    k: int = 4
    # kfold: repeats; >1 is iterated k-fold, reshuffled every repeat.
    repeats: int = 1
    # holdout: validation fraction.
    val_fraction: float = 0.25
    # holdout: repeat the split with N shuffle seeds to see the estimate move.
    holdout_seeds: int = 1
    # Hold out an untouched test split; after validation, refit on train+val and test once.
    test_fraction: float | None = None
    # Keep class ratios in every split (classification).
    stratify: bool = True
    # Forward-chaining splits in time order; no shuffling.
    time_order: bool = False


@dataclass(frozen=True)
class OptimizeOptions(ExecutionOptions, OutputOptions, RunOptions, SplitOptions,
                      FeatureOptions, TrainingOptions, LayerOptions, ModelOptions,
                      OptimizerOptions, DataOptions):
    """`dlbench optimize`: its grid options take comma-separated lists to compare."""

    # Optimizer entries, comma-separated, each with optional parameters:
    # 'sgd[lr=0.95],adam[lr=0.3,betas=0.9/0.999]' (see `dlbench optimizers`); your own:
    # path/to/file.py:Name or package.module:Name (`dlbench optimizers --from FILE`). Default:
    # {function_opt} on --function, else {network_opt}.
    opt: str | None = flags(None, "--opt")
    # A 2-D test function ({functions}): trajectories instead of networks.
    function: str | None = None
    # --function: optimizer steps.
    steps: int = 100
    # --function: start point X,Y (default: the function's).
    start: str | None = None
    # --function: a path has arrived once f - f_min <= tol.
    tol: float = 1e-3
    # --function: paths from N starts: the function's (or --start), then N-1 drawn with --seed
    # in its plot window; scores.csv holds every start's measures.
    starts: int = 1
    # Models, comma-separated (see `dlbench models`).
    model: str = "mlp"
    # mlp hidden widths; repeat to compare depths: --hidden 8 --hidden 8,8,8 (default 128;
    # 100,100,100,100,100 when --init is given).
    hidden: list[str] | None = None
    # Activations, comma-separated: {activations}.
    activation: str = "relu"
    # Batch norm: on, off, or on,off to compare.
    batchnorm: str = "off"
    # Inits, comma-separated: {inits}; also records per-layer activations at initialisation.
    init: str | None = None
    # Preprocessing, comma-separated: {preprocessors}.
    preprocess: str = "standardize"
    # Rows per step and member; comma-separated to compare (each size its own stack):
    # 16,64,256.
    batch_size: str = "32"
    # Training losses, comma-separated: cross-entropy, mse (classification: squared error of
    # the softmax against one-hot). Default: the model's own.
    loss: str | None = None
    # Seeds per cell, paired across cells.
    seeds: int = 3
    # LOW:HIGH:N — every optimizer at N log-spaced learning rates.
    lr_grid: str | None = None
    # 'lr': tune each optimizer's learning rate on validation with --budget trials, then rerun
    # over --seeds and test once.
    tune: str | None = None
    # --tune: trials per optimizer.
    budget: int = 8
    # Validation accuracy whose cost to reach (passes over the data, gradient evaluations,
    # seconds) is reported.
    target_accuracy: float | None = None
    # Equivalence margin for '≈ #1', in the first metric's units (0.01) or as a share of #1's
    # value (2%); default 0.01 (mse, mae: 1%).
    margin: str | None = None


@dataclass(frozen=True)
class OverfitOptions(ExecutionOptions, OutputOptions, RunOptions, SplitOptions,
                     FeatureOptions, TrainingOptions, OptimizerOptions, ModelOptions,
                     DataOptions):
    """`dlbench overfit`: dropout and the other regularizers are --reg entries."""

    # Regularizers, comma-separated, each with optional parameters:
    # 'none,l2[strength=1e-3],dropout[p=0.5]' (see `dlbench regularizers`; tta[n=4] averages
    # predictions over test-time copies of images or sequences); each is compared with none.
    reg: str = flags("none,l2[strength=1e-3],dropout[p=0.5],early-stop[patience=5]", "--reg")
    dataset: str = "mnist1d"
    hidden: str = "512,512"
    # Capacity sweep: hidden-layer widths, comma-separated (6,16,64,1024).
    width: str | None = None
    # Capacity sweep: numbers of hidden layers, comma-separated (1,2,4).
    depth: str | None = None
    # Training rows drawn (stratified) from the training part, or 'all'; few rows overfit
    # soon.
    train_rows: str = "1000"
    # Learning curve: shares of those rows, comma-separated (0.1,0.25,0.5,1).
    train_fraction: str | None = None
    epochs: int = 60
    # Seeds per configuration, paired.
    seeds: int = 3


@dataclass(frozen=True)
class TransferOptions(ExecutionOptions, OutputOptions, RunOptions, TrainingOptions,
                      OptimizerOptions, BatchnormOptions, ModelOptions):
    """`dlbench transfer`: a source and a target dataset instead of --dataset."""

    # Source dataset to pretrain on (class subsets: mnist1d[0-4]).
    source: str = "mnist1d[0-4,n=12000]"
    # Target dataset, the same input shape as the source.
    target: str = flags("mnist1d[5-9]", "--target")
    # Strategies, comma-separated: {strategies}.
    strategy: str = "scratch,linear-probe,finetune-top,finetune-all"
    # Target training rows per model, comma-separated (stratified samples).
    target_size: str = "25,100,1000"
    # finetune-top: pretrained weight layers trained below the new head; probe-early: those
    # re-drawn (a probe on the layers below).
    top: int = 1
    # finetune-all: learning-rate multiplier of the pretrained layers.
    body_lr_scale: float = 1.0
    # Epochs of pretraining on the source.
    source_epochs: int = 20
    # similar,different: the target (similar) against a different domain of the same shape
    # (--different, default: the target's features permuted).
    similarity: str | None = None
    # The different target of --similarity (e.g. 'mnist1d[5-9,transform=reversed]').
    different: str | None = None
    # quadrants: small/large × similar/different, and the classic advice for each, measured.
    preset: str | None = None
    # Load the source weights from a PyTorch state dict instead of pretraining (weights only;
    # the layout of source.pt, see README).
    source_checkpoint: Path | None = None
    model: str = "cnn1d"
    # Epochs on the target's training rows.
    epochs: int = 40
    # Seeds per strategy and size, each with its own target sample.
    seeds: int = 3


# --- help texts: the comments above the fields --------------------------------------------------


@functools.cache
def _comments(path: str) -> dict[str, dict[str, str]]:
    """class name -> field -> the comment block right above the field, in the file `path`."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    lines = source.splitlines()
    comment = {tok.start[0]: tok.string.lstrip("#").strip()
               for tok in tokenize.generate_tokens(iter(source.splitlines(True)).__next__)
               if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1].lstrip()[0] == "#"}
    found: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            found[node.name] = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    block, line = [], item.lineno - 1
                    while line in comment:
                        block.insert(0, comment[line])
                        line -= 1
                    found[node.name][item.target.id] = " ".join(block)
    return found


def help_template(cls: type, name: str) -> str:
    """A field's help as written (registry names still `{placeholders}`): its own comment, or,
    where a command only changes a group's default, the group's."""
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            source = inspect.getsourcefile(klass)  # None in an install without sources
            text = _comments(source)[klass.__name__].get(name, "") if source else ""
            if text:
                return text
    return ""


# the registries whose names a help text lists: read when a --help is shown, never at import


def _metrics() -> list[str]:
    from dlbench.evaluate.metrics import METRICS, default_metrics

    tasks = ("classification", "regression")
    listed = [f"{task} {', '.join(m.name for m in METRICS if task in m.tasks)}"
              for task in tasks]
    defaults = "; ".join(f"{', '.join(default_metrics(t))} for {t}" for t in tasks)
    return [f"{'; '.join(listed)} (default: {defaults})"]


def _names(module: str, registry: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        return getattr(importlib.import_module(module), registry).names()

    return names


FILLS: dict[str, Callable[[], list[str]]] = {  # a placeholder -> the names it lists
    # the default entries one by one, so the help wraps between them (the grammar takes spaces)
    "function_opt": lambda: FUNCTION_OPT.replace("],", "] ").split(),
    "network_opt": lambda: NETWORK_OPT.replace("],", "] ").split(),
    "activations": _names("dlbench.nn.models", "ACTIVATIONS"),
    "inits": _names("dlbench.nn.models", "INITS"),
    "pools": _names("dlbench.nn.models", "POOLS"),
    "schedules": _names("dlbench.optim.schedules", "SCHEDULES"),
    "preprocessors": _names("dlbench.data.preprocess", "PREPROCESSORS"),
    "imputers": _names("dlbench.data.preprocess", "IMPUTERS"),
    "protocols": _names("dlbench.data.splits", "PROTOCOLS"),
    "functions": _names("dlbench.optim.functions", "FUNCTIONS"),
    "strategies": _names("dlbench.runners.transfer", "STRATEGIES"),
    "metrics": _metrics,
}
PLACEHOLDER = re.compile(r"\{(\w+)(\|?)\}")  # {metrics}: joined by ', '; {inits|}: by ' | '


def filled(template: str) -> str:
    """A help text with its registries' names in place of their placeholders."""
    return PLACEHOLDER.sub(lambda m: (" | " if m[2] else ", ").join(FILLS[m[1]]()),
                           template)


class OptionsCommand(typer.core.TyperCommand):
    """A command whose options' help lists registry names: filled when its help is shown,
    from the registries as they are then (so `dlbench --help` imports none of them)."""

    def format_help(self, ctx, formatter) -> None:
        for param in self.params:
            template = getattr(param, "help_template", None)
            if template is None:
                template = param.help_template = getattr(param, "help", None) or ""
            if PLACEHOLDER.search(template):
                param.help = filled(template)
        super().format_help(ctx, formatter)


# --- the Typer parameters of a command --------------------------------------------------------


def parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per field, annotated as Typer reads an option."""
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    params = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()
        option = typer.Option(*f.metadata.get("flags", ()), help=help_template(cls, f.name))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[hints[f.name], option]))
    return params


def command_function(cls: type, body: Callable[[typer.Context, Any], None],
                     doc: str) -> Callable[..., None]:
    """A Typer command taking `cls`'s fields as options; it calls body(ctx, cls(**values))."""

    def command(ctx: typer.Context, **values: Any) -> None:
        body(ctx, cls(**values))

    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=typer.Context), *parameters(cls)]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command
