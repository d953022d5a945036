"""A stack in eval mode: each member's loss and accuracy on its rows (the curves), and its
predictions (class probabilities, or values in the target's original units)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from scipy.special import softmax

from dlbench.data.datasets import Dataset
from dlbench.engine import tta
from dlbench.engine.inputs import StackData, padded
from dlbench.engine.losses import member_stats, per_sample_loss
from dlbench.engine.members import Member
from dlbench.engine.predictions import Predictions, averaged
from dlbench.nn.models import StackedModel
from dlbench.seeding import TRAIN_SAMPLE_KEY, derive_seed

EVAL_FLOATS = 2**24  # inputs evaluated at once, over all members (64 MB of float32)
TRAIN_CURVE_ROWS = 1024  # training rows evaluated after each epoch, at most (a fixed sample)
ONCE = ("test",)  # splits scored once, at the end, never after each epoch


@torch.no_grad()
def evaluate(model: StackedModel, data: StackData, rows: list[np.ndarray], kind: str,
             transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Eval-mode pass over each member's rows -> (stats (M, 3), outputs (M, N_max, outputs));
    `transform` changes the preprocessed inputs first (a test-time copy)."""
    length = max(len(r) for r in rows)
    index, weight = padded(rows, length, data.X.device)
    outs, stats = [], torch.zeros(len(rows), 3, device=data.X.device)
    chunk = max(64, EVAL_FLOATS // (len(rows) * data.width))  # rows per member at once
    for s in range(0, length, chunk):
        idx, w = index[:, s:s + chunk], weight[:, s:s + chunk]
        x, y = data.batch(idx)
        if transform is not None:
            x = transform(x)
        out = model(x, w)  # the mask matters only to batch norm on batch statistics
        stats += member_stats(per_sample_loss(kind, out, y), out, y, w, data.regression)
        outs.append(out)
    return stats, torch.cat(outs, dim=1)


def splits(members: list[Member]) -> dict[str, list[np.ndarray]]:
    """Every split of the stack -> each member's rows: "train", then the evaluation splits."""
    rows = {"train": [m.train for m in members]}
    return rows | {split: [m.evals[split] for m in members] for split in members[0].evals}


def curve_rows(members: list[Member]) -> dict[str, list[np.ndarray]]:
    """The rows evaluated after every epoch: the evaluation splits but the test split (scored
    once, at the end: a test curve invites choosing an epoch on test rows), and a fixed sample
    of at most TRAIN_CURVE_ROWS training rows per member (the same every epoch, so the curve
    compares like with like at a bounded cost; the final scores use every training row)."""
    rows = {split: r for split, r in splits(members).items() if split not in ONCE}
    rows["train"] = [train_sample(m) for m in members]
    return rows


def train_sample(member: Member) -> np.ndarray:
    if len(member.train) <= TRAIN_CURVE_ROWS:
        return member.train
    rng = np.random.default_rng(derive_seed(member.seed, TRAIN_SAMPLE_KEY))
    return np.sort(rng.choice(member.train, TRAIN_CURVE_ROWS, replace=False))


def predict(model: StackedModel, data: StackData, dataset: Dataset, members: list[Member],
            kind: str, copies: list[int]) -> list[dict[str, Predictions]]:
    """Every member's predictions on each of its splits, with the model as it is now; member m
    averages its first copies[m] test-time copies (tta.py) when that is more than one."""
    predictions: list[dict[str, Predictions]] = [{} for _ in members]
    shape = dataset.input_shape
    for split, rows in splits(members).items():
        made: list[list[Predictions]] = [[] for _ in members]
        for c in range(max(1, *copies)):  # every member in each pass: one stacked computation
            transform = None if c == 0 else partial(tta.copy_of, input_shape=shape, c=c)
            out = evaluate(model, data, rows, kind, transform)[1].double().cpu().numpy()
            for m, r in enumerate(rows):  # out: (M, N_max, outputs)
                if c < max(1, copies[m]):
                    made[m].append(to_predictions(out[m, : len(r)], dataset.y[r], data, m,
                                                  dataset))
        for m, preds in enumerate(made):
            predictions[m][split] = preds[0] if len(preds) == 1 else averaged(preds)
    return predictions


def to_predictions(out: np.ndarray, y_true: np.ndarray, data: StackData, m: int,
                   dataset: Dataset) -> Predictions:
    """Model outputs (n, outputs) of member m -> class probabilities or values in original units."""
    if data.regression:
        pred = out[:, 0] * data.y_std[m] + data.y_mean[m]
        return Predictions(y_true, pred, None, 0, y_scale=float(data.y_std[m]))
    with np.errstate(invalid="ignore", over="ignore"):
        proba = softmax(out, axis=1)
    return Predictions(y_true, out.argmax(1), proba, dataset.n_classes)
