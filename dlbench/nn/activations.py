"""Per-layer activation statistics: how each hidden layer's outputs are distributed at a point.

`capture` runs one batch through a stacked model (eval mode, no gradients) and records the output
of every hidden nonlinearity (each `Activation` module) for one member, as a (B, units) array;
in conv models `units` is channels × positions, flattened. `layer_stats` summarises one layer:

- mean, std: over all B × units values (std is the population std, ddof=0).
- saturated: fraction of values where the nonlinearity's derivative is below 1% of its maximum,
  so that almost no gradient flows back through them. Sigmoid: s(1-s) < 0.0025 (max 0.25), i.e.
  s below ~0.0025 or above ~0.9975 (pre-activation |z| > ~5.99). Tanh: 1 - a² < 0.01 (max 1), i.e.
  |a| > ~0.995 (|z| > ~2.99). ReLU and leaky ReLU never saturate (0.0): their slope is 1 on the
  active side, and their flat side is counted under `dead` instead (leaky ReLU's slope of 0.01
  there is exactly 1% of the maximum, not below it).
- dead: fraction of units that are inactive for every sample of the batch, so that on this batch
  their incoming weights get no gradient (ReLU) or 1% of it (leaky ReLU). ReLU: output == 0 on
  every row. Leaky ReLU: output < 0 on every row. Sigmoid and tanh have no inactive side (0.0).

The rules live in one registry entry per activation, so a new nonlinearity adds one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dlbench.data.preprocess import fit_affine
from dlbench.errors import DlbenchError
from dlbench.nn.models import Activation, Shape, StackedModel, batch_statistics, build_model
from dlbench.registry import Registry

Mask = Callable[[np.ndarray], np.ndarray]  # values -> boolean array of the same shape


@dataclass(frozen=True)
class LayerActivations:
    layer: int  # 1-based hidden layer index
    activation: str  # its nonlinearity's name, see models.ACTIVATIONS
    values: np.ndarray  # (B, units) post-activation values of one member, float32


@dataclass(frozen=True)
class StatRule:
    name: str  # activation name, as in models.ACTIVATIONS
    saturated: Mask | None  # values whose derivative is < 1% of its max; None: never saturates
    inactive: Mask | None  # values on the zero/negative side; None: no inactive region


# Both derivatives are written in terms of the output, which is what the hooks see.
STAT_RULES: Registry[StatRule] = Registry("activation")
STAT_RULES.add(StatRule("relu", None, lambda a: a == 0))
STAT_RULES.add(StatRule("leaky_relu", None, lambda a: a < 0))
STAT_RULES.add(StatRule("tanh", lambda a: 1 - a**2 < 0.01, None))
STAT_RULES.add(StatRule("sigmoid", lambda s: s * (1 - s) < 0.0025, None))


def capture(model: StackedModel, x: torch.Tensor, member: int = 0) -> list[LayerActivations]:
    """Post-activation values of member `member` for batch x (M, B, d), one entry per hidden layer.

    Runs in eval mode (dropout off, batch norm on its running statistics) and restores the
    model's previous mode; the hooks are removed even if the forward pass raises.
    """
    if not 0 <= member < x.shape[0]:
        raise DlbenchError(f"member {member} is out of range: the batch has {x.shape[0]} "
                           f"members, choose 0..{x.shape[0] - 1}")
    acts = [m for m in model.modules() if isinstance(m, Activation)]
    outputs: list[torch.Tensor] = []

    def hook(module, inputs, out):  # out: (M, B, units) or (M, B, C, *S)
        # Keep only the chosen member, and flatten channels/positions into units.
        outputs.append(out[member].reshape(out.shape[1], -1))

    handles = [a.register_forward_hook(hook) for a in acts]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [LayerActivations(i, a.name, out.float().cpu().numpy())
            for i, (a, out) in enumerate(zip(acts, outputs, strict=True), start=1)]


def layer_stats(layer: LayerActivations) -> dict[str, float]:
    """{"mean", "std", "saturated", "dead"} for one layer; definitions in the module docstring."""
    rule = STAT_RULES.get(layer.activation)
    v = np.asarray(layer.values, dtype=np.float64)  # (B, units); float64 so sums don't drift
    saturated = 0.0 if rule.saturated is None else float(rule.saturated(v).mean())
    dead = 0.0 if rule.inactive is None else float(rule.inactive(v).all(axis=0).mean())
    return {"mean": float(v.mean()), "std": float(v.std()), "saturated": saturated, "dead": dead}


def activation_rows(layers: list[LayerActivations]) -> list[dict]:
    """One flat row per layer: layer, activation, units, mean, std, saturated, dead."""
    return [{"layer": la.layer, "activation": la.activation, "units": la.values.shape[1],
             **layer_stats(la)} for la in layers]


def init_study(dataset, member, cells, batch_rows: int = 1000):
    """Per model variant of `cells` (model spec × preprocessing): every hidden layer's
    activations at initialisation for one batch of the member's training rows, with its weights.

    -> (one row per variant × layer, [(variant label, per-layer values)] for the histograms).
    """
    seen, rows, histograms = set(), [], []
    batch = member.train[:batch_rows]
    for cell in cells:
        key = (cell.model, cell.train.preprocess)
        if key in seen:
            continue
        seen.add(key)
        scale, shift = fit_affine(cell.train.preprocess, dataset.X[member.train])
        x = torch.as_tensor(dataset.X[batch] * scale + shift)[None]  # (1, B, d)
        model = build_model(cell.model, Shape.of(dataset), [member.seed])
        with batch_statistics(model):  # at init eval-mode batch norm would be the identity
            layers = capture(model, x)
        setting = f"{cell.model.init} · {cell.model.activation}" + \
            (" · bn" if cell.model.batchnorm else "")
        coords = {k: v for k, v in cell.coords().items() if k not in ("optimizer", "lr")}
        rows += [{"setting": setting, **coords, **row} for row in activation_rows(layers)]
        histograms.append((setting, [layer.values.ravel() for layer in layers]))
    return pd.DataFrame(rows), histograms
