"""The training loop of one stack: set up its model, data, regimen hooks and stepper, run its
epochs (each batch's stacked objective, the curves and cost after each epoch) and collect
what each member delivers. The exactness contract is trainer.py's."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch

from dlbench.data.datasets import Dataset
from dlbench.engine.inference import curve_rows, evaluate, predict, splits, to_predictions
from dlbench.engine.inputs import StackData, padded
from dlbench.engine.losses import loss_kind, per_sample_loss
from dlbench.engine.members import (
    Cost,
    Member,
    MemberResult,
    TrainConfig,
    epoch_order,
    model_shape,
    resolve_device,
    rows_per_step,
    steps_per_epoch,
)
from dlbench.engine.predictions import Predictions
from dlbench.engine.regimens import Batch, EpochEnd, Finish, Stack, build_hooks, weight_norm_dims
from dlbench.engine.stepper import Stepper, config_groups
from dlbench.errors import DlbenchError
from dlbench.nn.models import (
    ModelSpec,
    StackedBatchNorm,
    StackedModel,
    batch_statistics,
    build_model,
)
from dlbench.nn.plugged import NORMS, PluggedModel

GATHER_FLOATS = 2**24  # training batches gathered ahead at most (64 MB of float32)
Curve = list[tuple[int, str, str, float]]  # (epoch, split, metric, value)


def train_stack(dataset: Dataset, spec: ModelSpec, pairs: list[tuple[TrainConfig, Member]],
                progress: Callable[[int], None] | None, best: bool) -> list[MemberResult]:
    """One stack: `pairs` share epochs, batch size, device and steps per epoch (plan_stacks)."""
    run = _Run(dataset, spec, pairs, best)
    run.train(progress)
    return run.finish()


class _Run:
    """One stack as it trains: its model, data, hooks and stepper, and what it has recorded."""

    def __init__(self, dataset: Dataset, spec: ModelSpec,
                 pairs: list[tuple[TrainConfig, Member]], best: bool):
        self.start = time.perf_counter()
        self.dataset, self.pairs = dataset, pairs
        self.config, self.members = pairs[0][0], [m for _, m in pairs]
        configs = [c for c, _ in pairs]
        device = resolve_device(self.config.device)
        self.data = StackData(dataset, self.members, configs, device)
        shape = model_shape(dataset)
        self.model = build_model(spec, shape, [m.seed for m in self.members]).to(device)
        for m, member in enumerate(self.members):
            if member.init is not None:
                load_member(self.model, m, member.init)
        freeze_batch_norm(self.model, configs, device)
        self.size = rows_per_step(self.config, len(self.members[0].train))
        self.steps = steps_per_epoch(len(self.members[0].train), self.size)
        self.groups = config_groups(pairs)
        stack = Stack(self.model, [rows for _, rows in self.groups],
                      [m.seed for m in self.members], shape.input_shape, splits(self.members),
                      self.config.epochs, device, best)
        self.hooks = build_hooks(stack, [c.regimen for c in configs])
        self.step = Stepper(list(self.model.named_parameters()), self.groups, self.steps,
                            self.config.epochs, weight_norm_dims(self.model), self.hooks,
                            sync=device.type == "cuda", seeds=[m.seed for m in self.members])
        self.kind = loss_kind(self.config, spec, dataset)
        self.curves: list[Curve] = [[] for _ in self.members]
        self.costs: list[list[Cost]] = [[] for _ in self.members]
        self.diverged: list[int | None] = [None] * len(self.members)
        self.stopped: list[int | None] = [None] * len(self.members)  # set by hooks
        self.evaluated = curve_rows(self.members)  # the same rows after every epoch

    def train(self, progress: Callable[[int], None] | None) -> None:
        """Epoch 0 (before training) and every epoch after it, until all members stopped."""
        epochs, members = self.config.epochs, len(self.members)
        with batch_statistics(self.model):  # epoch 0, before any training: batch norm on batch
            stats = self._evaluate()  # statistics, as training will see it
        for epoch in range(epochs + 1):
            if epoch > 0:
                self.model.train()
                self.step.train()
                running = self._train_epoch(epoch)
                stats = self._evaluate() | {"running": running}
            found = {split: s.cpu().numpy() for split, s in stats.items()}
            self._record(epoch, found)
            end = EpochEnd(epoch, found, self._outputs, self.stopped)
            for hook in self.hooks:
                hook.after_epoch(end)
            if progress is not None and epoch > 0:
                progress(members)
            if all(s is not None for s in self.stopped):
                if progress is not None:  # the epochs nobody needs: done, as far as progress goes
                    progress(members * (epochs - epoch))
                break

    def _evaluate(self) -> dict[str, torch.Tensor]:
        self.model.eval()
        self.step.eval()  # a schedule-free optimizer's evaluation weights
        return {split: evaluate(self.model, self.data, rows, self.kind)[0]
                for split, rows in self.evaluated.items()}

    def _outputs(self, rows: list[np.ndarray]) -> torch.Tensor:
        return evaluate(self.model, self.data, rows, self.kind)[1]

    def _record(self, epoch: int, stats: dict[str, np.ndarray]) -> None:
        """Each member's curves and cost at an epoch's end; a stopped member's end where it
        stopped. A member diverged from the first epoch its training loss is not finite."""
        seconds = own_seconds(time.perf_counter() - self.start, self.step, self.groups,
                              len(self.members))
        full_batch = self.config.optimizer.info.full_batch
        for m, member in enumerate(self.members):
            if self.stopped[m] is not None:
                continue  # its curve and its cost end where it stopped
            record_epoch(self.curves[m], epoch, stats, m, self.data.regression)
            n = len(member.train)  # a full-batch evaluation passes over every row
            passes = self.step.evals if full_batch else epoch
            self.costs[m].append(Cost(self.step.evals, passes * n, passes, seconds[m]))
            losses = [stats[split][m][0] for split in ("train", "running") if split in stats]
            if epoch > 0 and self.diverged[m] is None and not all(map(math.isfinite, losses)):
                self.diverged[m] = epoch

    def _train_epoch(self, epoch: int) -> torch.Tensor:
        """One epoch for every member -> (M, 3) training stats (the running minibatch figures)."""
        members, data, steps, size = self.members, self.data, self.steps, self.size
        orders = [m.train[epoch_order(m.seed, epoch, len(m.train))] for m in members]
        index, weight = padded(orders, steps * size, data.X.device)  # (M, S*B)
        # Each row's share of its member's batch mean: 1/(real rows in its batch), 0 for padding.
        # Every member has at least one real row in every step (the stack shares steps per epoch).
        per_batch = weight.view(len(members), steps, size)
        share = (per_batch / per_batch.sum(-1, keepdim=True)).view_as(weight)
        losses, outs_right = torch.zeros_like(weight), torch.zeros_like(weight)
        block = max(1, GATHER_FLOATS // (weight.numel() // steps * data.width))
        for first in range(0, steps, block):  # gather and preprocess a block of steps at once
            cols = slice(first * size, min(first + block, steps) * size)
            x_block, y_block = data.batch(index[:, cols])
            for t in range(min(block, steps - first)):
                b = slice(t * size, (t + 1) * size)
                c = slice(cols.start + b.start, cols.start + b.stop)
                out, loss = self._step_on(x_block[:, b], y_block[:, b], weight[:, c], share[:, c])
                losses[:, c] = loss
                if not data.regression:
                    outs_right[:, c] = out.argmax(-1) == y_block[:, b]
        return torch.stack([(losses * weight).sum(1), (outs_right * weight).sum(1),
                            weight.sum(1)], 1)

    def _step_on(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, share: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch -> its outputs and data losses as the step first saw
        them. The stacked objective: the sum over members of each member's mean loss, plus what
        the loss hooks add (each member's own term)."""
        for hook in self.hooks:
            x = hook.batch(x, w)
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def objective() -> torch.Tensor:
            out = self.model(x, w)
            loss = per_sample_loss(self.kind, out, y)  # (M, B)
            if not seen:
                seen.append((out.detach(), loss.detach()))
            total = (loss * share).sum()
            batch = Batch(out, y, loss, share)
            for hook in self.hooks:
                total = hook.loss(total, batch)
            return total

        self.step(objective)
        return seen[0]

    def finish(self) -> list[MemberResult]:
        """Final eval-mode predictions on every split and each member's own weights, as the
        hooks leave them (early stopping: its best epoch's; snapshots: their average). Both
        average a member's test-time copies when its config asks for them (the curves, scored
        after each epoch, never do)."""
        self.step.eval()  # predictions and weights are a schedule-free optimizer's eval ones
        for hook in self.hooks:
            hook.before_predict()
        self.model.eval()
        copies = [c.tta for c, _ in self.pairs]
        now = partial(predict, self.model, self.data, self.dataset, self.members, self.kind,
                      copies)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        finish = Finish(now, now(), self._to_predictions, [{} for _ in self.members])
        for hook in self.hooks:
            hook.after_predict(finish)
        return [MemberResult(member, "ok" if self.diverged[m] is None else "diverged",
                             self.diverged[m], self.curves[m], self.costs[m],
                             finish.predictions[m], {k: v[m].clone() for k, v in state.items()},
                             stopped_epoch=self.stopped[m], **finish.extras[m])
                for m, member in enumerate(self.members)]

    def _to_predictions(self, out: np.ndarray, m: int, split: str) -> Predictions:
        rows = splits(self.members)[split][m]
        return to_predictions(out, self.dataset.y[rows], self.data, m, self.dataset)


def record_epoch(curve: Curve, epoch: int, epoch_stats: dict[str, np.ndarray], m: int,
                 regression: bool) -> None:
    """Each split's loss (and accuracy) for member m; the running figures of the epoch's
    minibatches go to split "train" as running_loss / running_accuracy."""
    for split, stats in epoch_stats.items():
        loss, correct, count = stats[m]
        name, prefix = ("train", "running_") if split == "running" else (split, "")
        curve.append((epoch, name, f"{prefix}loss", loss / count))
        if not regression:
            curve.append((epoch, name, f"{prefix}accuracy", correct / count))


def freeze_batch_norm(model: StackedModel, configs: list[TrainConfig],
                      device: torch.device) -> None:
    """A batch-norm layer frozen for a member (learning rate 0 for its weight) keeps that
    member's running estimates and normalises with them in training too: a frozen pretrained
    layer computes the same features in training and at evaluation (a plugged model's
    normalisation layers: those frozen for a member run in eval mode for it)."""
    if isinstance(model, PluggedModel):
        model.frozen = {path: frozen for path, frozen in _frozen(model, configs)
                        if any(frozen)}
        return
    for path, module in model.named_modules():
        if isinstance(module, StackedBatchNorm):
            frozen = [c.regimen.lr_scale(f"{path}.weight") == 0 for c in configs]
            module.frozen = torch.tensor(frozen, device=device) if any(frozen) else None


def _frozen(model: PluggedModel, configs: list[TrainConfig]
            ) -> Iterator[tuple[str, list[bool]]]:
    """Each normalisation layer of a plugged model -> for each member, whether its weight is
    frozen (learning rate 0)."""
    for path, module in model.named_modules():
        if isinstance(module, NORMS) and isinstance(module.weight, torch.Tensor):
            yield path, [c.regimen.lr_scale(f"{path}.weight") == 0 for c in configs]


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


def own_seconds(elapsed: float, step: Stepper, groups: list[tuple[TrainConfig, slice]],
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
