"""What the trainer takes and gives: a stack's configs and members, each member's results and
cost, and the small facts every part of the engine derives from them (the device, each epoch's
row order, steps per epoch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import indicator_columns
from dlbench.engine.predictions import Predictions
from dlbench.engine.regimens import Regimen
from dlbench.errors import DlbenchError
from dlbench.nn.models import Shape
from dlbench.optim.optimizers import OptimSpec
from dlbench.seeding import derive_seed

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: OptimSpec = OptimSpec("adam", 1e-3)  # entry of the --opt grammar, lr included
    epochs: int = 20  # passes over each member's training rows
    batch_size: int = 32  # rows per step and member; full-batch optimizers take all rows
    preprocess: str = "standardize"  # fitted on each member's training rows only
    schedule: str = "constant"  # lr schedule, stepped once per optimizer step (optim/schedules.py)
    warmup: int = 0  # optimizer steps of linear warm-up before the schedule
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda
    loss: str = "default"  # "default" (the model's own), "cross-entropy" or "mse" (see LOSSES)
    regimen: Regimen = field(default_factory=Regimen)  # penalties, early stopping, ...
    missing: str = "none"  # fill of missing feature values (preprocess.IMPUTERS), fitted on the
    #                        member's training rows, plus indicator columns; "none": no NaN
    features: int = 0  # > 0: keep the K features of highest F statistic on the member's
    #                    training rows, zero the others; 0: every feature
    tta: int = 0  # > 1: final and best-epoch predictions average this many test-time copies
    #               of each evaluation input (tta.py); 0 or 1: the input alone


@dataclass(frozen=True, eq=False)
class Member:
    key: dict[str, int]  # identifies the member in result rows, e.g. {"repeat": 0, "fold": 1}
    seed: int  # initial weights and batch order
    train: np.ndarray  # training rows of the dataset
    evals: dict[str, np.ndarray] = field(default_factory=dict)  # split name -> rows
    # initial weights by stacked-parameter name (stack axis removed), replacing the drawn ones;
    # names it lacks keep their draw (a new head on pretrained layers)
    init: dict[str, torch.Tensor] | None = None


@dataclass(frozen=True)
class Cost:
    """A member's work so far, counted the same whatever shares its stack (seconds excepted)."""

    grad_evals: int  # gradient evaluations: forward+backward passes over a batch (line-search
    #                  evaluations included; Newton adds one backward pass per Hessian row)
    examples: int  # training rows processed by those evaluations
    passes: int  # passes over the training rows: examples / training rows
    seconds: float  # its own share of wall time: the stack's shared work split evenly over its
    #                 members, plus its own optimizer's step time split over that optimizer's


@dataclass(eq=False)
class MemberResult:
    member: Member
    status: str  # "ok", or "diverged" once a training loss became NaN/inf
    diverged_epoch: int | None
    # (epoch, split, metric, value), in eval mode after each epoch (epoch 0: before training),
    # so train and validation compare like with like: "train" on a fixed sample of at most
    # TRAIN_CURVE_ROWS of its training rows, every evaluation split but "test" (scored once,
    # in `predictions`); plus, from epoch 1, "train" "running_loss"/"running_accuracy": the
    # mean over the epoch's minibatches in train mode, as the optimizer saw them.
    curves: list[tuple[int, str, str, float]]
    cost: list[Cost]  # cumulative at the end of each epoch; cost[0] = setup and epoch 0
    predictions: dict[str, Predictions]  # "train" and every eval split, after the last epoch
    #                                      (early stopping: of the restored best epoch;
    #                                      snapshots: the snapshots' averaged probabilities)
    weights: dict[str, torch.Tensor]  # its final parameters and buffers (CPU), stack axis removed
    best_epoch: int | None = None  # the epoch of lowest validation loss (tracked when asked)
    stopped_epoch: int | None = None  # early stopping: the last epoch it trained
    at_best: dict[str, Predictions] | None = None  # predictions with the best epoch's weights

    def curve(self, split: str, metric: str, trusted: bool = True) -> list[float]:
        """One curve's values, epoch 0 first (trusted: NaN from the epoch it diverged; else
        the values as measured, for judging how it diverged)."""
        return [self.trusted(e, v) if trusted else v for e, s, m, v in self.curves
                if (s, m) == (split, metric)]

    def trusted(self, epoch: int, value: float) -> float:
        """A curve value, or NaN from the epoch its loss became NaN/inf on: after that its
        numbers mean nothing (argmax of NaN outputs still 'predicts' a class)."""
        return math.nan if self.diverged_epoch is not None and epoch >= self.diverged_epoch \
            else value


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise DlbenchError(f"unknown device '{name}'; choose one of: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise DlbenchError("--device cuda: no CUDA device is available here; "
                           "use --device auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which a member visits its n training rows in an epoch (a permutation)."""
    return np.random.default_rng(derive_seed(seed, epoch)).permutation(n)


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return math.ceil(n_rows / batch_size)


def rows_per_step(config: TrainConfig, n_train: int) -> int:
    return n_train if config.optimizer.info.full_batch else config.batch_size


def model_shape(dataset: Dataset) -> Shape:
    """What the models are built for: the data's shape, plus one input column per missing-value
    indicator (tabular data with missing values; the same for every member and config)."""
    shape = Shape.of(dataset)
    extra = len(indicator_columns(dataset.missing_features, dataset.input_shape))
    return replace(shape, n_inputs=shape.n_inputs + extra)
