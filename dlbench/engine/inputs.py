"""A stack's data on its device: each member's input pipeline (fitted on its own training
rows) applied per batch, its loss-ready targets, and rows padded to a common length."""

from __future__ import annotations

import numpy as np
import torch

from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import fit_inputs, indicator_columns
from dlbench.engine.members import Member, TrainConfig


class StackData:
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


def padded(rows: list[np.ndarray], length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows per member padded to `length` -> (index (M, length), weight (M, length) 1=real)."""
    index = np.zeros((len(rows), length), dtype=np.int64)
    weight = np.zeros((len(rows), length), dtype=np.float32)
    for m, r in enumerate(rows):
        index[m, : len(r)], index[m, len(r):] = r, r[0]  # pad with a row of its own, weight 0
        weight[m, : len(r)] = 1.0
    return torch.as_tensor(index, device=device), torch.as_tensor(weight, device=device)
