"""The stacked trainer: the one training loop of dlbench, shared by every runner.

It trains M independent members (folds × repeats × seeds, or whatever a runner asks for) as one
batched computation. The exactness contract: member m ends with the same weights and losses (to
float tolerance) as that model trained alone with the same initial weights, batch order and
hyperparameters. It holds because
- the stacked loss is the sum over members of each member's *mean* batch loss, so member m's
  gradient is exactly its own;
- optimizers marked elementwise update each weight from its own gradient history only, and
  any other minibatch optimizer steps each member's own leaf views, one instance per member
  (stepper.py), so it never sees another member's weights;
- every member in a stack takes the same number of steps per epoch (members are grouped by it),
  and a member with fewer rows has its short last batch padded with zero-weight rows that no
  loss, gradient or batch-norm statistic sees.

The trainer's parts, each in its engine/ module: members.py (what it takes and gives:
TrainConfig, Member, MemberResult, Cost), loop.py (one stack's epochs), stepper.py (optimizers
and schedules over each config's slices), regimens.py (what a regimen adds, as hooks on the
loop), losses.py, inputs.py (each member's input pipeline) and inference.py (a trained stack run
on rows: eval-mode curves and predictions). This module is their public face: the checks before
training, how members group into stacks, and the calls that train them (`train`,
`train_grid`, `minimize`); import the types from members.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from dlbench.data.augment import check as check_augment
from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import IMPUTERS, PREPROCESSORS
from dlbench.engine import regimens, tta
from dlbench.engine.loop import train_stack
from dlbench.engine.losses import TRAINING_LOSSES, loss_kind
from dlbench.engine.members import (
    Member,
    MemberResult,
    TrainConfig,
    model_shape,
    resolve_device,
    steps_per_epoch,
)
from dlbench.engine.stepper import Stepper, trains_alone
from dlbench.errors import DlbenchError
from dlbench.nn import plugged
from dlbench.nn.models import ModelSpec, build_model
from dlbench.nn.models import check_spec as check_model
from dlbench.optim.optimizers import NEWTON_MAX_PARAMS, check_spec
from dlbench.optim.schedules import check_schedule

__all__ = [
    "check_config", "check_inputs", "check_model_fits", "check_pair", "check_task", "check_train",
    "minimize", "plan_stacks", "train", "train_grid",
]


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
    if config.regimen.lr_scales and config.optimizer.info.full_batch:
        # L-BFGS and Newton read one parameter group's options only
        raise DlbenchError(f"{config.optimizer.shown} takes one learning rate for every weight; "
                           "per-layer rates and frozen layers need a minibatch optimizer")


def check_model_fits(spec: ModelSpec, dataset: Dataset) -> int:
    """The model against the data (shape errors such as cnn2d on tables); -> its parameters."""
    check_model(spec, dataset.task)
    if spec.plugged:  # built once on a tiny batch: its own errors, its outputs' shape
        return plugged.check(spec, model_shape(dataset))
    with torch.device("meta"):  # shapes only: a huge model is refused before it is allocated
        model = build_model(spec, model_shape(dataset), [0])
    return sum(p.numel() for p in model.parameters())


def check_task(config: TrainConfig, spec: ModelSpec, dataset: Dataset) -> None:
    """The loss, the inputs and the augmentation against the data."""
    loss_kind(config, spec, dataset)
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


def check_pair(config: TrainConfig, spec: ModelSpec, n_params: int) -> None:
    if config.optimizer.name == "newton" and n_params > NEWTON_MAX_PARAMS:
        raise DlbenchError(f"newton solves with the exact Hessian: at most {NEWTON_MAX_PARAMS} "
                           f"parameters, and this {spec.shown} has {n_params}; use a smaller "
                           "model (e.g. --hidden 8) or another optimizer")


def plan_stacks(members: list[Member], configs: list[TrainConfig]) -> list[list[tuple[int, int]]]:
    """(config, member) index pairs grouped into stacks that train together exactly.

    Every pair of minibatch configs sharing epochs, batch size, device and a member's steps per
    epoch joins one stack, each elementwise config with its own optimizer over its members'
    slices, each other one (a per-tensor norm, a trust ratio: a reduction across weights) with
    an optimizer per member over its leaf views (stepper.py); pairs of a full-batch optimizer
    (L-BFGS, Newton) or of one that re-evaluates a closure (SAM) train alone.
    """
    stacks: dict[tuple, list[tuple[int, int]]] = {}
    alone: list[list[tuple[int, int]]] = []
    for c, config in enumerate(configs):
        for i, m in enumerate(members):
            if trains_alone(config.optimizer):
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
        for (c, i), result in zip(stack, train_stack(dataset, spec, pairs, progress, best),
                                  strict=True):
            results[c][i] = result
    return results  # type: ignore[return-value]


def minimize(objective: Callable[[torch.Tensor], torch.Tensor], start: list[float],
             config: TrainConfig, steps: int) -> tuple[np.ndarray, str]:
    """Descend a function of a point (a model that is just a point) with the same stepping.

    -> ((steps+1, d+2) rows of the point, its value and the gradient evaluations so far (line
    searches and Hessian rows included, as in training), step 0 the start; status
    "ok"/"diverged"). A path stops at the first non-finite value.
    """
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    # the point is the model's one weight: an optimizer's weight decay acts on it
    step = Stepper([("point", point)], [(config, slice(None))], 1, steps, {"point": ()},
                   stacked=False)
    path = [[*start, float(objective(point.detach())), 0]]
    for _ in range(steps):
        step(lambda: objective(point))
        value = float(objective(point.detach()))
        path.append([*point.detach().tolist(), value, step.evals])
        if not all(map(math.isfinite, path[-1])):
            return np.array(path), "diverged"
    return np.array(path), "ok"

