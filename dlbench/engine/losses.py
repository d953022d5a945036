"""Training losses: per-sample losses by kind, which kind a config trains with, and the
per-member figures (summed loss, correct predictions, rows) every curve is made of."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlbench.data.datasets import Dataset
from dlbench.engine.members import TrainConfig
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec, model_info

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


def per_sample_loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return LOSSES[kind](out, y)


def loss_kind(config: TrainConfig, spec: ModelSpec, dataset: Dataset) -> str:
    """The LOSSES entry a config trains with on a dataset (raises DlbenchError when none fits)."""
    if dataset.task == "regression":
        if config.loss == "cross-entropy":
            raise DlbenchError("--loss cross-entropy needs classes; a regression target "
                               "trains on mse")
        return "mse"
    if config.loss == "default":
        loss = model_info(spec.name).loss
        return "cross_entropy" if loss == "default" else loss
    if model_info(spec.name).loss != "default":
        raise DlbenchError(f"model {spec.name} is defined by its own loss; drop --loss")
    return {"cross-entropy": "cross_entropy", "mse": "softmax_mse"}[config.loss]


def member_stats(loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                  regression: bool) -> torch.Tensor:
    """(M, 3): summed loss, correct predictions and real rows, over the real rows given."""
    correct = torch.zeros_like(w) if regression else (out.argmax(-1) == y).float()
    return torch.stack([(loss * w).sum(1), (correct * w).sum(1), w.sum(1)], dim=1)

