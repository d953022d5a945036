"""The stacked trainer: the one training loop of dlbench, shared by every runner.

It trains M independent members (folds × repeats × seeds, or whatever a runner asks for) as one
batched computation. The exactness contract: member m ends with the same weights and losses (to
float tolerance) as that model trained alone with the same initial weights, batch order and
hyperparameters. It holds because
- the stacked loss is the sum over members of each member's *mean* batch loss, so member m's
  gradient is exactly its own;
- optimizers marked elementwise update each weight from its own gradient history only;
- every member in a stack takes the same number of steps per epoch (members are grouped by it),
  and a member with fewer rows has its short last batch padded with zero-weight rows that no
  loss, gradient or batch-norm statistic sees.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax

from dlbench.data.augment import augment_batch
from dlbench.data.augment import check as check_augment
from dlbench.data.augment import generators as augment_generators
from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import IMPUTERS, PREPROCESSORS, fit_inputs, indicator_columns
from dlbench.engine import regimens, tta
from dlbench.engine.predictions import Predictions, averaged
from dlbench.engine.regimens import Regimen
from dlbench.errors import DlbenchError
from dlbench.nn.models import (
    MODELS,
    ModelSpec,
    Shape,
    StackedBatchNorm,
    StackedModel,
    batch_statistics,
    build_model,
)
from dlbench.nn.models import check_spec as check_model
from dlbench.optim.optimizers import NEWTON_MAX_PARAMS, OptimSpec, build_optimizer, check_spec, step
from dlbench.optim.schedules import build_scheduler, check_schedule
from dlbench.seeding import TRAIN_SAMPLE_KEY, derive_seed

DEVICES = ("auto", "cpu", "cuda")
EVAL_FLOATS = 2**24  # inputs evaluated at once, over all members (64 MB of float32)
GATHER_FLOATS = 2**24  # training batches gathered ahead at most (64 MB of float32)
TRAIN_CURVE_ROWS = 1024  # training rows evaluated after each epoch, at most (a fixed sample)
ONCE = ("test",)  # splits scored once, at the end, never after each epoch


@dataclass(frozen=True)
class TrainConfig:
    optimizer: OptimSpec = OptimSpec("adam", 1e-3)  # entry of the --opt grammar, lr included
    epochs: int = 20  # passes over each member's training rows
    batch_size: int = 32  # rows per step and member; full-batch optimizers take all rows
    preprocess: str = "standardize"  # fitted on each member's training rows only
    schedule: str = "constant"  # lr schedule, stepped once per optimizer step (schedules.py)
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


def check_config(config: TrainConfig, spec: ModelSpec, dataset: Dataset) -> None:
    """Everything about training that can be wrong, checked before anything trains."""
    check_train(config)
    check_pair(config, spec, check_model_fits(spec, dataset))
    check_task(config, spec, dataset)


def check_train(config: TrainConfig) -> None:
    """The training options alone."""
    check_spec(config.optimizer)
    PREPROCESSORS.get(config.preprocess)
    check_schedule(config.schedule, config.warmup)
    resolve_device(config.device)
    for option, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size)):
        if value < 1:
            raise DlbenchError(f"{option} must be positive, got {value}")
    if config.loss not in ("default", *TRAINING_LOSSES):
        raise DlbenchError(f"unknown loss '{config.loss}'; choose one of: "
                           f"{', '.join(TRAINING_LOSSES)}")
    regimens.check(config.regimen, config.epochs)
    if config.missing != "none":
        IMPUTERS.get(config.missing)
    for option, value in (("--features", config.features), ("tta n", config.tta)):
        if value < 0:
            raise DlbenchError(f"{option} must be positive, got {value}")
    if config.tta > 1 and config.regimen.snapshots:
        raise DlbenchError("snapshot ensembles and test-time augmentation both average "
                           "predictions; use one of them")
    if config.regimen.snapshots and (config.schedule != "constant" or config.warmup):
        raise DlbenchError("snapshot ensembles set their own cyclic learning rate; drop "
                           "--schedule and --warmup")
    if config.regimen.lr_scales and not config.optimizer.info.elementwise:
        raise DlbenchError(f"{config.optimizer.name} takes one learning rate for every weight; "
                           "per-layer rates and frozen layers need an elementwise optimizer")


def check_model_fits(spec: ModelSpec, dataset: Dataset) -> int:
    """The model against the data (shape errors such as cnn2d on tables); -> its parameters."""
    check_model(spec, dataset.task)
    with torch.device("meta"):  # shapes only: a huge model is refused before it is allocated
        model = build_model(spec, model_shape(dataset), [0])
    return sum(p.numel() for p in model.parameters())


def check_task(config: TrainConfig, spec: ModelSpec, dataset: Dataset) -> None:
    """The loss, the inputs and the augmentation against the data."""
    _loss_kind(config, spec, dataset)
    check_augment(config.regimen.augment, dataset.input_shape)
    tta.check(config.tta, dataset.input_shape)
    check_inputs(config, dataset)


def check_inputs(config: TrainConfig, dataset: Dataset) -> None:
    """Missing values and feature selection against the data: a NaN never reaches training
    unless a fill is asked for."""
    if len(dataset.missing_features) and config.missing == "none":
        raise DlbenchError(f"{dataset.name} has missing values in {len(dataset.missing_features)}"
                           " feature(s); pass --missing zero, mean or median to fill them")
    if config.missing != "none" and not len(dataset.missing_features):
        raise DlbenchError(f"{dataset.name} has no missing values: --missing {config.missing} "
                           "would change nothing; drop it")
    if config.features > dataset.n_features:
        raise DlbenchError(f"--features {config.features}: {dataset.name} has "
                           f"{dataset.n_features} features; ask for at most that many")


def model_shape(dataset: Dataset) -> Shape:
    """What the models are built for: the data's shape, plus one input column per missing-value
    indicator (tabular data with missing values; the same for every member and config)."""
    shape = Shape.of(dataset)
    extra = len(indicator_columns(dataset.missing_features, dataset.input_shape))
    return replace(shape, n_inputs=shape.n_inputs + extra)


def check_pair(config: TrainConfig, spec: ModelSpec, n_params: int) -> None:
    if config.optimizer.name == "newton" and n_params > NEWTON_MAX_PARAMS:
        raise DlbenchError(f"newton solves with the exact Hessian: at most {NEWTON_MAX_PARAMS} "
                           f"parameters, and this {spec.name} has {n_params}; use a smaller "
                           "model (e.g. --hidden 8) or another optimizer")


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which a member visits its n training rows in an epoch (a permutation)."""
    return np.random.default_rng(derive_seed(seed, epoch)).permutation(n)


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return math.ceil(n_rows / batch_size)


def rows_per_step(config: TrainConfig, n_train: int) -> int:
    return n_train if config.optimizer.info.full_batch else config.batch_size


def plan_stacks(members: list[Member], configs: list[TrainConfig]) -> list[list[tuple[int, int]]]:
    """(config, member) index pairs grouped into stacks that train together exactly.

    Every pair of elementwise configs sharing epochs, batch size, device and a member's steps per
    epoch joins one stack, each config with its own optimizer over its members' slices; pairs
    of closure optimizers (L-BFGS, Newton: a reduction across all weights) train alone.
    """
    stacks: dict[tuple, list[tuple[int, int]]] = {}
    alone: list[list[tuple[int, int]]] = []
    for c, config in enumerate(configs):
        for i, m in enumerate(members):
            if not config.optimizer.info.elementwise:
                alone.append([(c, i)])
                continue
            key = (steps_per_epoch(len(m.train), config.batch_size), tuple(m.evals),
                   config.epochs, config.batch_size, config.device, config.loss)
            stacks.setdefault(key, []).append((c, i))
    return [*stacks.values(), *alone]


def train(dataset: Dataset, spec: ModelSpec, config: TrainConfig, members: list[Member],
          progress: Callable[[int], None] | None = None, best: bool = False
          ) -> list[MemberResult]:
    """Train every member; results come back in the order of `members`.

    `progress(n)` is called after each epoch with the number of members that finished it.
    `best`: track each member's epoch of lowest validation loss and predict with its weights
    too (`MemberResult.at_best`).
    """
    return train_grid(dataset, spec, [config], members, progress, best)[0]


def train_grid(dataset: Dataset, spec: ModelSpec, configs: list[TrainConfig],
               members: list[Member], progress: Callable[[int], None] | None = None,
               best: bool = False) -> list[list[MemberResult]]:
    """Every config × every member of one model spec: results[c][m].

    Configs that can share a stack (see plan_stacks) train in one batched computation: an
    optimizer grid costs one forward and backward pass per step, not one per config.
    """
    for config in configs:
        resolve_device(config.device)
    results: list[list[MemberResult | None]] = [[None] * len(members) for _ in configs]
    for stack in plan_stacks(members, configs):
        pairs = [(configs[c], members[i]) for c, i in stack]
        for (c, i), result in zip(stack, _train_stack(dataset, spec, pairs, progress, best),
                                  strict=True):
            results[c][i] = result
    return results  # type: ignore[return-value]


# --- one stack -------------------------------------------------------------------------------


class _StackData:
    """The dataset on the device, with each member's input pipeline and target scaling.

    Per member and batch, as preprocess.fit_inputs describes (each part fitted on the member's
    training rows only): missing values filled and flagged, the affine applied, features left
    out by selection zeroed (folded into the affine: scale and shift 0)."""

    def __init__(self, dataset: Dataset, members: list[Member], configs: list[TrainConfig],
                 device: torch.device):
        self.regression = dataset.task == "regression"
        self.X = torch.as_tensor(dataset.X, dtype=torch.float32, device=device)  # (N, d)
        self.y = torch.as_tensor(dataset.y, device=device)  # (N,)
        indicators = indicator_columns(dataset.missing_features, dataset.input_shape)
        inputs = [fit_inputs(dataset.X[m.train], dataset.y[m.train], dataset.task, c.preprocess,
                             c.missing, c.features, indicators)
                  for c, m in zip(configs, members, strict=True)]
        self.width = dataset.n_features + len(indicators)  # input columns of the models
        self.scale = torch.as_tensor(np.stack([i.scale for i in inputs])[:, None], device=device)
        self.shift = torch.as_tensor(np.stack([i.shift for i in inputs])[:, None], device=device)
        self.fill = None  # (M, 1, d): complete data need none
        if len(dataset.missing_features):
            self.fill = torch.as_tensor(np.stack([i.fill for i in inputs])[:, None],
                                        device=device)
        self.indicators = torch.as_tensor(indicators, device=device) if len(indicators) \
            else None
        # Regression targets are standardised per member (training rows only) for the loss;
        # predictions are mapped back to the original units before any metric sees them.
        y_train = [dataset.y[m.train].astype(np.float64) for m in members]
        self.y_mean = np.array([y.mean() if self.regression else 0.0 for y in y_train])
        self.y_std = np.array([(y.std() or 1.0) if self.regression else 1.0 for y in y_train])
        self._y_mean_t = torch.as_tensor(self.y_mean[:, None], dtype=torch.float32, device=device)
        self._y_std_t = torch.as_tensor(self.y_std[:, None], dtype=torch.float32, device=device)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """idx (M, B) dataset rows -> x (M, B, width) preprocessed, y (M, B) loss-ready targets."""
        x = self.X[idx]  # (M, B, d)
        if self.fill is not None:
            missing = torch.isnan(x)
            x = torch.where(missing, self.fill, x)
            if self.indicators is not None:  # (M, B, d + k)
                x = torch.cat([x, missing[..., self.indicators].to(x.dtype)], dim=-1)
        x = torch.addcmul(self.shift, x, self.scale)
        y = self.y[idx]
        if self.regression:
            y = (y - self._y_mean_t) / self._y_std_t
        return x, y


def _padded(rows: list[np.ndarray], length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows per member padded to `length` -> (index (M, length), weight (M, length) 1=real)."""
    index = np.zeros((len(rows), length), dtype=np.int64)
    weight = np.zeros((len(rows), length), dtype=np.float32)
    for m, r in enumerate(rows):
        index[m, : len(r)], index[m, len(r):] = r, r[0]  # pad with a row of its own, weight 0
        weight[m, : len(r)] = 1.0
    return torch.as_tensor(index, device=device), torch.as_tensor(weight, device=device)


# Per-sample training losses, (M, B, outputs), (M, B) -> (M, B). A model's registry entry names
# its loss ("default": cross-entropy for classification, MSE of the standardised target).
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": lambda out, y: F.cross_entropy(out.flatten(0, 1), y.flatten(),
                                                    reduction="none").view_as(y),
    "mse": lambda out, y: (out.squeeze(-1) - y).square(),
    # Rosenblatt's criterion: how far the best score beats the right one (amax: fast on tiny)
    "perceptron": lambda out, y: out.amax(-1) - out.gather(-1, y.unsqueeze(-1)).squeeze(-1),
    # Widrow-Hoff (Adaline): squared error of the raw outputs against ±1 one-vs-rest targets
    "adaline": lambda out, y: (out - (2 * F.one_hot(y, out.shape[-1]) - 1)).square().sum(-1),
    # squared error of the softmax probabilities against one-hot targets: its gradient vanishes
    # where a wrong answer is confident, which is why cross-entropy learns faster
    "softmax_mse": lambda out, y: (out.softmax(-1) - F.one_hot(y, out.shape[-1])).square().sum(-1),
}
TRAINING_LOSSES = ("cross-entropy", "mse")  # the --loss names (the models' own: "default")


def _per_sample_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return LOSSES[kind](out, y)


def _loss_kind(config: TrainConfig, spec: ModelSpec, dataset: Dataset) -> str:
    """The LOSSES entry a config trains with on a dataset (raises DlbenchError when none fits)."""
    if dataset.task == "regression":
        if config.loss == "cross-entropy":
            raise DlbenchError("--loss cross-entropy needs classes; a regression target "
                               "trains on mse")
        return "mse"
    if config.loss == "default":
        loss = MODELS.get(spec.name).loss
        return "cross_entropy" if loss == "default" else loss
    if MODELS.get(spec.name).loss != "default":
        raise DlbenchError(f"model {spec.name} is defined by its own loss; drop --loss")
    return {"cross-entropy": "cross_entropy", "mse": "softmax_mse"}[config.loss]


def _member_stats(loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                  regression: bool) -> torch.Tensor:
    """(M, 3): summed loss, correct predictions and real rows, over the real rows given."""
    correct = torch.zeros_like(w) if regression else (out.argmax(-1) == y).float()
    return torch.stack([(loss * w).sum(1), (correct * w).sum(1), w.sum(1)], dim=1)


def _train_stack(dataset, spec, pairs: list[tuple[TrainConfig, Member]], progress,
                 best: bool) -> list[MemberResult]:
    """One stack: `pairs` share epochs, batch size, device and steps per epoch (plan_stacks)."""
    start = time.perf_counter()
    config, members = pairs[0][0], [m for _, m in pairs]
    device = resolve_device(config.device)
    data = _StackData(dataset, members, [c for c, _ in pairs], device)
    shape = model_shape(dataset)
    model = build_model(spec, shape, [m.seed for m in members]).to(device)
    for m, member in enumerate(members):
        if member.init is not None:
            load_member(model, m, member.init)
    _freeze_batch_norm(model, [config for config, _ in pairs], device)
    size = rows_per_step(config, len(members[0].train))
    steps = steps_per_epoch(len(members[0].train), size)
    groups = _config_groups(pairs)
    regimen = _StackRegimen(model, groups, members, shape, device)
    step = _Stepper(list(model.named_parameters()), groups, steps, config.epochs,
                    regimen.norm_dims, sync=device.type == "cuda")
    kind = _loss_kind(config, spec, dataset)
    curves: list[list[tuple[int, str, str, float]]] = [[] for _ in members]
    costs: list[list[Cost]] = [[] for _ in members]
    diverged: list[int | None] = [None] * len(members)
    evaluated = _curve_rows(members)  # the same rows after every epoch
    tracker = _BestEpoch(model, pairs) if best or regimen.stops else None
    snapshots = _Snapshots(pairs, _splits(members)) if regimen.snapshots else None

    def evaluate() -> dict[str, torch.Tensor]:
        model.eval()
        return {split: _evaluate(model, data, rows, kind)[0] for split, rows in evaluated.items()}

    with batch_statistics(model):  # epoch 0, before any training: batch norm on batch
        stats = evaluate()  # statistics, as training will see it
    for epoch in range(config.epochs + 1):
        if epoch > 0:
            model.train()
            running = _train_epoch(model, step, data, members, epoch, steps, size, kind,
                                   regimen)
            stats = evaluate() | {"running": running}
        stats = {split: s.cpu().numpy() for split, s in stats.items()}
        seconds = _own_seconds(time.perf_counter() - start, step, groups, len(members))
        for m, (member, curve) in enumerate(zip(members, curves, strict=True)):
            if tracker is not None and tracker.stopped[m] is not None:
                continue  # its curve and its cost end where it stopped
            _record_epoch(curve, epoch, stats, m, data.regression)
            n = len(member.train)  # a full-batch evaluation passes over every row
            passes = step.evals if config.optimizer.info.full_batch else epoch
            costs[m].append(Cost(step.evals, passes * n, passes, seconds[m]))
            losses = [stats[split][m][0] for split in ("train", "running") if split in stats]
            if epoch > 0 and diverged[m] is None and not all(map(math.isfinite, losses)):
                diverged[m] = epoch
        if tracker is not None:
            tracker.after_epoch(epoch, stats["val"], config.epochs)
        if snapshots is not None:
            snapshots.after_epoch(epoch, lambda rows: _evaluate(model, data, rows, kind)[1])
        if progress is not None and epoch > 0:
            progress(len(members))
        if tracker is not None and tracker.all_stopped:
            if progress is not None:  # the epochs nobody needs: done, as far as progress goes
                progress(len(members) * (config.epochs - epoch))
            break
    return _finish(model, data, dataset, pairs, kind, curves, costs, diverged, tracker,
                   snapshots)


def _freeze_batch_norm(model: StackedModel, configs: list[TrainConfig],
                       device: torch.device) -> None:
    """A batch-norm layer frozen for a member (learning rate 0 for its weight) keeps that
    member's running estimates and normalises with them in training too: a frozen pretrained
    layer computes the same features in training and at evaluation."""
    for path, module in model.named_modules():
        if isinstance(module, StackedBatchNorm):
            frozen = [c.regimen.lr_scale(f"{path}.weight") == 0 for c in configs]
            module.frozen = torch.tensor(frozen, device=device) if any(frozen) else None


def load_member(model: StackedModel, m: int, weights: dict[str, torch.Tensor]) -> None:
    """Member m's initial weights from a state dict without the stack axis (DlbenchError when
    a name or a shape does not fit the model: the first one that differs is named)."""
    state = model.state_dict()
    for name, value in weights.items():
        if name not in state:
            raise DlbenchError(f"the initial weights have '{name}', which this model lacks "
                               f"(its layers: {', '.join(list(state)[:6])}, ...)")
        if tuple(state[name].shape[1:]) != tuple(value.shape):
            raise DlbenchError(f"the initial weights' '{name}' is {tuple(value.shape)}, but "
                               f"this model's is {tuple(state[name].shape[1:])}")
        with torch.no_grad():
            state[name][m].copy_(value)


def _own_seconds(elapsed: float, step: _Stepper, groups: list[tuple[TrainConfig, slice]],
                 members: int) -> list[float]:
    """Each member's own share of a stack's wall seconds so far: the shared work (data,
    forward, backward, evaluation) split evenly, plus its optimizer's step time split over
    that optimizer's members, so an optimizer whose step costs more shows it."""
    shared = (elapsed - sum(step.group_seconds)) / members
    seconds = [shared] * members
    for (_, rows), own in zip(groups, step.group_seconds, strict=True):
        for m in range(rows.start, rows.stop):
            seconds[m] += own / (rows.stop - rows.start)
    return seconds


def _train_epoch(model, step, data, members, epoch, steps, batch_size, kind,
                 regimen: _StackRegimen) -> torch.Tensor:
    """One epoch for every member -> (M, 3) training stats (the running minibatch figures)."""
    orders = [m.train[epoch_order(m.seed, epoch, len(m.train))] for m in members]
    index, weight = _padded(orders, steps * batch_size, data.X.device)  # (M, S*B)
    # Each row's share of its member's batch mean: 1/(real rows in its batch), 0 for padding.
    # Every member has at least one real row in every step (the stack shares steps per epoch).
    per_batch = weight.view(len(members), steps, batch_size)
    share = (per_batch / per_batch.sum(-1, keepdim=True)).view_as(weight)
    losses, outs_right = torch.zeros_like(weight), torch.zeros_like(weight)
    block = max(1, GATHER_FLOATS // (weight.numel() // steps * data.width))
    for first in range(0, steps, block):  # gather and preprocess a block of steps at once
        cols = slice(first * batch_size, min(first + block, steps) * batch_size)
        x_block, y_block = data.batch(index[:, cols])
        for t in range(min(block, steps - first)):
            b = slice(t * batch_size, (t + 1) * batch_size)
            c = slice(cols.start + b.start, cols.start + b.stop)
            seen: dict[str, torch.Tensor] = {}
            step(partial(_batch_objective, model, kind,
                         regimen.augmented(x_block[:, b], weight[:, c]),
                         y_block[:, b], weight[:, c], share[:, c], seen, regimen.penalty))
            losses[:, c] = seen["loss"]
            if not data.regression:
                outs_right[:, c] = seen["out"].argmax(-1) == y_block[:, b]
    return torch.stack([(losses * weight).sum(1), (outs_right * weight).sum(1), weight.sum(1)], 1)


def _batch_objective(model, kind, x, y, w, share, seen, penalty) -> torch.Tensor:
    """The stacked loss of one batch: sum over members of each member's mean loss (plus its
    weight penalty, when its regimen has one). `seen` keeps the data loss alone."""
    out = model(x, w)
    loss = _per_sample_loss(kind, out, y)  # (M, B)
    seen.setdefault("out", out.detach())  # the batch as the step first saw it
    seen.setdefault("loss", loss.detach())
    total = (loss * share).sum()
    return total if penalty is None else total + penalty()


def _config_groups(pairs: list[tuple[TrainConfig, Member]]) -> list[tuple[TrainConfig, slice]]:
    """Runs of stack members that share a config (plan_stacks keeps them contiguous)."""
    groups: list[tuple[TrainConfig, slice]] = []
    for i, (config, _) in enumerate(pairs):
        if groups and groups[-1][0] is config:
            groups[-1] = (config, slice(groups[-1][1].start, i + 1))
        else:
            groups.append((config, slice(i, i + 1)))
    return groups


@dataclass(eq=False)
class _Group:
    """One config's optimizer and schedule over its members' slices of the stacked weights."""

    opt: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR | None  # None: constant, nothing to step
    rows: slice  # its members along the stack axis
    views: list[tuple[torch.nn.Parameter, torch.Tensor]]  # (its slice, the stacked parameter)
    regimen: Regimen
    # its trained weights: (tensor, a unit's incoming axes, index of its optimizer param group)
    weights: list[tuple[torch.Tensor, tuple[int, ...], int]]

    @torch.no_grad()
    def decay(self) -> None:
        """Decoupled weight decay at the current rate, before the step (as AdamW does)."""
        if self.regimen.decay:
            for w, _, g in self.weights:
                w.mul_(1 - self.opt.param_groups[g]["lr"] * self.regimen.decay)

    def renorm(self) -> None:
        if self.regimen.max_norm:
            for w, dims, _ in self.weights:
                regimens.renorm(w, dims, self.regimen.max_norm)


class _Stepper:
    """One optimizer step on an objective, then one schedule step, for every config group.

    With several groups each optimizer owns Parameters that are views into the stacked weights'
    storage: its in-place updates land in the model, and its gradients are its slice of the
    stacked gradient. Closure optimizers (L-BFGS, Newton) re-evaluate the objective as often as
    they need; they are always alone in their stack, so they own the whole tensors. A parameter
    whose learning-rate multiplier is 0 is left out of its group's optimizer (frozen); frozen in
    every group, it needs no gradient at all.

    It counts gradient evaluations (the same for every member of the stack) and, when several
    groups share the stack, times each group's own optimizer and schedule steps.
    """

    def __init__(self, named: list[tuple[str, torch.Tensor]],
                 groups: list[tuple[TrainConfig, slice]], steps_per_epoch: int, epochs: int,
                 norm_dims: dict[str, tuple[int, ...]], sync: bool = False):
        self.params, self.groups = [p for _, p in named], []
        self.closure = groups[0][0].optimizer.info.full_batch
        self.evals = 0  # gradient evaluations so far, per member
        self.group_seconds = [0.0] * len(groups)  # each group's own step time (several groups)
        self._timed = len(groups) > 1  # alone, a group's time is all the stack's anyway
        self._sync = sync  # CUDA runs asynchronously: synchronise before reading the clock
        for name, p in named:
            if all(config.regimen.lr_scale(name) == 0 for config, _ in groups):
                p.requires_grad_(False)
        for config, rows in groups:
            own = self.params if len(groups) == 1 else [torch.nn.Parameter(p.data[rows])
                                                        for p in self.params]
            scales = {name: config.regimen.lr_scale(name) for name, _ in named}
            trained = [(name, mine, full) for (name, full), mine in zip(named, own, strict=True)
                       if scales[name] > 0]
            by_scale: dict[float, list[torch.Tensor]] = {}
            for name, mine, _ in trained:
                by_scale.setdefault(scales[name], []).append(mine)
            param_group = {id(p): g for g, ps in enumerate(by_scale.values()) for p in ps}
            opt = build_optimizer(config.optimizer, by_scale[1.0] if list(by_scale) == [1.0]
                                  else [{"params": ps, "lr": config.optimizer.lr * scale}
                                        for scale, ps in by_scale.items()])
            views = [] if len(groups) == 1 else [(mine, full) for _, mine, full in trained]
            weights = [(mine, norm_dims[name], param_group[id(mine)]) for name, mine, _ in trained
                       if name in norm_dims]
            self.groups.append(_Group(opt, _scheduler(opt, config, steps_per_epoch, epochs),
                                      rows, views, config.regimen, weights))

    def __call__(self, objective: Callable[[], torch.Tensor]) -> None:
        if self.closure:
            self._closure_step(objective)
        else:
            for p in self.params:
                p.grad = None
            objective().backward()
            self.evals += 1
            for i, group in enumerate(self.groups):
                begin = self._clock() if self._timed else 0.0
                for view, full in group.views:
                    view.grad = None if full.grad is None else full.grad[group.rows]
                self._step(group)
                if self._timed:
                    self.group_seconds[i] += self._clock() - begin

    @staticmethod
    def _step(group: _Group, closure: Callable[[], torch.Tensor] | None = None) -> None:
        group.decay()
        step(group.opt, closure)
        group.renorm()
        if group.scheduler is not None:
            group.scheduler.step()

    def _closure_step(self, objective: Callable[[], torch.Tensor]) -> None:
        group = self.groups[0]

        def closure(backward: bool = True) -> torch.Tensor:
            self.evals += 1
            group.opt.zero_grad(set_to_none=True)
            value = objective()
            if backward:
                value.backward()
            return value

        self._step(group, closure)
        self.evals += getattr(group.opt, "hessian_passes", 0)  # Newton: a pass per Hessian row

    def _clock(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int,
               epochs: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """The config's schedule (snapshot ensembles: their cycles); None when constant."""
    cycles = config.regimen.snapshots
    if cycles:
        return torch.optim.lr_scheduler.LambdaLR(opt, partial(
            regimens.cyclic_factor, steps_per_epoch=steps_per_epoch, epochs=epochs,
            cycles=cycles))
    if config.schedule == "constant" and not config.warmup:
        return None
    return build_scheduler(opt, config.schedule, steps_per_epoch * epochs, config.warmup)


def minimize(objective: Callable[[torch.Tensor], torch.Tensor], start: list[float],
             config: TrainConfig, steps: int) -> tuple[np.ndarray, str]:
    """Descend a function of a point (a model that is just a point) with the same stepping.

    -> ((steps+1, d+2) rows of the point, its value and the gradient evaluations so far (line
    searches and Hessian rows included, as in training), step 0 the start; status
    "ok"/"diverged"). A path stops at the first non-finite value.
    """
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    step = _Stepper([("point", point)], [(config, slice(None))], 1, steps, {})
    path = [[*start, float(objective(point.detach())), 0]]
    for _ in range(steps):
        step(lambda: objective(point))
        value = float(objective(point.detach()))
        path.append([*point.detach().tolist(), value, step.evals])
        if not all(map(math.isfinite, path[-1])):
            return np.array(path), "diverged"
    return np.array(path), "ok"


@torch.no_grad()
def _evaluate(model: StackedModel, data: _StackData, rows: list[np.ndarray], kind: str,
              transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Eval-mode pass over each member's rows -> (stats (M, 3), outputs (M, N_max, outputs));
    `transform` changes the preprocessed inputs first (a test-time copy)."""
    length = max(len(r) for r in rows)
    index, weight = _padded(rows, length, data.X.device)
    outs, stats = [], torch.zeros(len(rows), 3, device=data.X.device)
    chunk = max(64, EVAL_FLOATS // (len(rows) * data.width))  # rows per member at once
    for s in range(0, length, chunk):
        idx, w = index[:, s:s + chunk], weight[:, s:s + chunk]
        x, y = data.batch(idx)
        if transform is not None:
            x = transform(x)
        out = model(x, w)  # the mask matters only to batch norm on batch statistics
        stats += _member_stats(_per_sample_loss(kind, out, y), out, y, w, data.regression)
        outs.append(out)
    return stats, torch.cat(outs, dim=1)


def _record_epoch(curve, epoch, epoch_stats, m, regression):
    """Each split's loss (and accuracy) for member m; the running figures of the epoch's
    minibatches go to split "train" as running_loss / running_accuracy."""
    for split, stats in epoch_stats.items():
        loss, correct, count = stats[m]
        name, prefix = ("train", "running_") if split == "running" else (split, "")
        curve.append((epoch, name, f"{prefix}loss", loss / count))
        if not regression:
            curve.append((epoch, name, f"{prefix}accuracy", correct / count))


def _splits(members: list[Member]) -> dict[str, list[np.ndarray]]:
    """Every split of the stack -> each member's rows: "train", then the evaluation splits."""
    splits = {"train": [m.train for m in members]}
    return splits | {split: [m.evals[split] for m in members] for split in members[0].evals}


def _curve_rows(members: list[Member]) -> dict[str, list[np.ndarray]]:
    """The rows evaluated after every epoch: the evaluation splits but the test split (scored
    once, at the end: a test curve invites choosing an epoch on test rows), and a fixed sample
    of at most TRAIN_CURVE_ROWS training rows per member (the same every epoch, so the curve
    compares like with like at a bounded cost; the final scores use every training row)."""
    rows = {split: r for split, r in _splits(members).items() if split not in ONCE}
    rows["train"] = [_train_sample(m) for m in members]
    return rows


def _train_sample(member: Member) -> np.ndarray:
    if len(member.train) <= TRAIN_CURVE_ROWS:
        return member.train
    rng = np.random.default_rng(derive_seed(member.seed, TRAIN_SAMPLE_KEY))
    return np.sort(rng.choice(member.train, TRAIN_CURVE_ROWS, replace=False))


class _StackRegimen:
    """The stack's members' regimens as per-member values (penalty strengths, augmentation)."""

    def __init__(self, model: StackedModel, groups: list[tuple[TrainConfig, slice]],
                 members: list[Member], shape: Shape, device: torch.device):
        configs = [config for config, rows in groups for _ in range(rows.start, rows.stop)]
        self.norm_dims = regimens.weight_norm_dims(model)
        params = dict(model.named_parameters())
        self.penalty = None
        if any(c.regimen.penalised for c in configs):
            l1, l2 = (torch.tensor([getattr(c.regimen, k) for c in configs], device=device)
                      for k in ("l1", "l2"))
            self.penalty = partial(regimens.penalty, [params[n] for n in self.norm_dims], l1, l2)
        self.stops = any(c.regimen.patience for c in configs)
        self.snapshots = any(c.regimen.snapshots for c in configs)
        self._input_shape = shape.input_shape
        self._augment = [(rows, config.regimen.augment,
                          augment_generators([m.seed for m in members[rows]], device))
                         for config, rows in groups if config.regimen.augment.active]

    def augmented(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A training batch (M, B, d), each augmenting member's real rows (weight (M, B): 1
        real, 0 padding, which comes last) from its own generator."""
        if not self._augment:
            return x
        x = x.clone()
        for rows, spec, generators in self._augment:
            real = weight[rows].sum(1).int().tolist()
            x[rows] = augment_batch(x[rows], self._input_shape, spec, generators, real)
        return x


class _BestEpoch:
    """Epoch-end hook: each member's epoch of lowest validation loss, with a copy of its weights
    then; members with early-stopping patience stop after that many epochs without a new low."""

    def __init__(self, model: StackedModel, pairs: list[tuple[TrainConfig, Member]]):
        if any("val" not in m.evals for _, m in pairs):
            raise DlbenchError("early stopping and best-epoch scores watch a validation split, "
                               "and these members have none")
        self.model = model
        self.patience = [c.regimen.patience for c, _ in pairs]
        self.loss = [math.inf] * len(pairs)
        self.epoch: list[int | None] = [None] * len(pairs)
        self.stopped: list[int | None] = [None] * len(pairs)
        self.weights: list[dict[str, torch.Tensor] | None] = [None] * len(pairs)

    def after_epoch(self, epoch: int, val: np.ndarray, epochs: int) -> None:
        """val: (M, 3) summed loss, correct, rows on the validation split."""
        state = self.model.state_dict()
        for m, (loss, _, count) in enumerate(val):
            if self.stopped[m] is not None:
                continue
            if loss / count < self.loss[m]:  # NaN never is
                self.loss[m], self.epoch[m] = loss / count, epoch
                self.weights[m] = {k: v[m].clone() for k, v in state.items()}
            waited = epoch - (self.epoch[m] or 0)
            if self.patience[m] and (waited >= self.patience[m] or epoch == epochs):
                self.stopped[m] = epoch

    @property
    def all_stopped(self) -> bool:
        return all(s is not None for s in self.stopped)

    @torch.no_grad()
    def restore(self, members: list[int]) -> None:
        """Those members' weights back to their best epoch's."""
        state = self.model.state_dict()
        for m in members:
            if self.weights[m] is not None:
                for k, v in self.weights[m].items():
                    state[k][m].copy_(v)


class _Snapshots:
    """Epoch-end hook of snapshot ensembles: at each cycle's end, member m's outputs on every
    split, kept to average their probabilities (regression: their predictions)."""

    def __init__(self, pairs: list[tuple[TrainConfig, Member]], splits: dict[str, list]):
        self.ends = [set(regimens.cycle_ends(c.epochs, c.regimen.snapshots))
                     if c.regimen.snapshots else set() for c, _ in pairs]
        self.splits = splits
        self.outputs: list[dict[str, list[np.ndarray]]] = [{} for _ in pairs]

    def after_epoch(self, epoch: int, outputs: Callable[[list[np.ndarray]], torch.Tensor]
                    ) -> None:
        takers = [m for m, ends in enumerate(self.ends) if epoch in ends]
        if not takers:
            return
        for split, rows in self.splits.items():
            out = outputs(rows).double().cpu().numpy()
            for m in takers:
                self.outputs[m].setdefault(split, []).append(out[m, : len(rows[m])])


def _finish(model, data, dataset, pairs, kind, curves, costs, diverged, tracker,
            snapshots) -> list[MemberResult]:
    """Final eval-mode predictions on every split, and each member's own weights: members with
    early stopping first get their best epoch's weights back; with a tracker every member is
    also scored with its best epoch's weights. Both predictions average a member's test-time
    copies when its config asks for them (the curves, scored after each epoch, never do)."""
    members = [m for _, m in pairs]
    if tracker is not None:
        tracker.restore([m for m, p in enumerate(tracker.patience) if p])
    model.eval()
    copies = [c.tta for c, _ in pairs]
    predictions = _predict(model, data, dataset, members, kind, copies)
    if snapshots is not None:
        for m, outputs in enumerate(snapshots.outputs):
            for split, outs in outputs.items():
                y_true = dataset.y[snapshots.splits[split][m]]
                predictions[m][split] = averaged([_predictions(out, y_true, data, m, dataset)
                                                  for out in outs])
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    at_best: list[dict[str, Predictions] | None] = [None] * len(members)
    if tracker is not None:
        tracker.restore(range(len(members)))
        at_best = _predict(model, data, dataset, members, kind, copies)
    return [
        MemberResult(member, "ok" if diverged[m] is None else "diverged", diverged[m], curves[m],
                     costs[m], predictions[m], {k: v[m].clone() for k, v in state.items()},
                     best_epoch=None if tracker is None else tracker.epoch[m],
                     stopped_epoch=None if tracker is None else tracker.stopped[m],
                     at_best=at_best[m])
        for m, member in enumerate(members)
    ]


def _predict(model, data, dataset, members, kind, copies: list[int]
             ) -> list[dict[str, Predictions]]:
    """Every member's predictions on each of its splits, with the model as it is now; member m
    averages its first copies[m] test-time copies (tta.py) when that is more than one."""
    predictions: list[dict[str, Predictions]] = [{} for _ in members]
    shape = dataset.input_shape
    for split, rows in _splits(members).items():
        made: list[list[Predictions]] = [[] for _ in members]
        for c in range(max(1, *copies)):  # every member in each pass: one stacked computation
            transform = None if c == 0 else partial(tta.copy_of, input_shape=shape, c=c)
            out = _evaluate(model, data, rows, kind, transform)[1].double().cpu().numpy()
            for m, r in enumerate(rows):  # out: (M, N_max, outputs)
                if c < max(1, copies[m]):
                    made[m].append(_predictions(out[m, : len(r)], dataset.y[r], data, m,
                                                dataset))
        for m, preds in enumerate(made):
            predictions[m][split] = preds[0] if len(preds) == 1 else averaged(preds)
    return predictions


def _predictions(out: np.ndarray, y_true: np.ndarray, data: _StackData, m: int,
                 dataset: Dataset) -> Predictions:
    """Model outputs (n, outputs) of member m -> class probabilities or values in original units."""
    if data.regression:
        pred = out[:, 0] * data.y_std[m] + data.y_mean[m]
        return Predictions(y_true, pred, None, 0, y_scale=float(data.y_std[m]))
    with np.errstate(invalid="ignore", over="ignore"):
        proba = softmax(out, axis=1)
    return Predictions(y_true, out.argmax(1), proba, dataset.n_classes)
