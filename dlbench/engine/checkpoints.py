"""Checkpoints: one member's weights as a plain PyTorch state dict, and back.

The plain layout is torch's own, named as the model's layer list: `layers.{i}.weight` and
`layers.{i}.bias` of layer i. A linear layer's weight is (out, in) as in nn.Linear (dlbench
stores it transposed), its bias (out,); convolutions and batch norm are as torch stores them
(nn.Conv1d/2d, nn.BatchNorm1d/2d). `dlbench models` lists each model's layers; for `--model mlp
--hidden 64,32`: 0 Linear, 1 activation, 2 Linear, 3 activation, 4 Linear (the head). So any
plain PyTorch network with the same layers at the same positions (an nn.Sequential too, whose
keys lack the `layers.` prefix) loads a dlbench checkpoint, and dlbench loads its state dict.

A plugged model's checkpoint (nn/plugged.py) is its module's own state dict, as
`Name(input_shape, n_outputs, **k).state_dict()` names and shapes it: loadable with plain
`load_state_dict`, and loaded as it is.

Files are read with `torch.load(weights_only=True)`: tensors only, never arbitrary objects.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from dlbench.errors import DlbenchError
from dlbench.nn import plugged
from dlbench.nn.models import (
    Lambda,
    ModelSpec,
    Shape,
    StackedBatchNorm,
    StackedConv,
    StackedLinear,
    StackedModel,
    StackedResidual,
    build_model,
)
from dlbench.nn.plugged import PluggedModel

PREFIX = "layers."


def _stacked(spec: ModelSpec, shape: Shape) -> StackedModel:
    with torch.device("meta"):  # names and shapes only
        return build_model(spec, shape, [0])


def weight_units(spec: ModelSpec, shape: Shape) -> list[tuple[str, ...]]:
    """The layers with weights — linear, convolution, a whole residual block — input first,
    the head last, each as the parameter-name prefixes it spans: its own and those of the
    layers after it up to the next one (batch norm, activations): `("layers.0.", "layers.1.")`.
    A plugged model's: its nn.Linear / nn.ConvNd layers and its head (nn/plugged.py)."""
    model = _stacked(spec, shape)
    if isinstance(model, PluggedModel):
        return plugged.weight_units(model)
    positions = [i for i, layer in enumerate(model.layers)
                 if isinstance(layer, StackedLinear | StackedConv | StackedResidual)]
    ends = [*positions[1:], len(model.layers)]
    return [tuple(f"{PREFIX}{i}." for i in range(start, end))
            for start, end in zip(positions, ends, strict=True)]


def to_plain(spec: ModelSpec, shape: Shape, weights: dict[str, torch.Tensor]
             ) -> dict[str, torch.Tensor]:
    """A member's weights (stack axis removed) in the plain layout."""
    linear = _linear_names(spec, shape)
    plain = {}
    for name, value in weights.items():
        if name in linear:
            value = value.T if name.endswith(".weight") else value.reshape(-1)
        plain[name] = value.contiguous().clone()
    return plain


def from_plain(spec: ModelSpec, shape: Shape, state: dict[str, torch.Tensor],
               skip: str | None = None) -> dict[str, torch.Tensor]:
    """A plain state dict -> a member's weights, checked against the model: a layer it lacks,
    lacks of it, or whose shape differs is a DlbenchError naming the first one. Names under
    `skip` (a head about to be re-drawn) are neither checked nor kept."""
    expected = {k: tuple(v.shape[1:]) for k, v in _stacked(spec, shape).state_dict().items()
                if (skip is None or not k.startswith(skip))
                and not k.endswith("num_batches_tracked")}
    # an nn.Sequential's keys (a plugged model's are its module's own, as they are)
    bare = not spec.plugged and not any(k.startswith(PREFIX) for k in state)
    linear = _linear_names(spec, shape)
    weights = {}
    for key, value in state.items():
        name = PREFIX + key if bare else key
        if name.endswith("num_batches_tracked") or (skip and name.startswith(skip)):
            continue  # torch's batch-norm counter (dlbench keeps none), or the skipped head
        if name not in expected:
            raise DlbenchError(f"the checkpoint has '{key}', which model {spec.shown} lacks "
                               f"(its layers: {', '.join(list(expected)[:6])}, ...)")
        if name in linear:
            value = value.T if name.endswith(".weight") else value.reshape(1, -1)
        if tuple(value.shape) != expected[name]:
            raise DlbenchError(f"the checkpoint's '{key}' does not fit model {spec.shown}: "
                               f"{_plain_shape(name, expected[name], linear)} expected, got "
                               f"{tuple(state[key].shape)}")
        weights[name] = value.contiguous().clone()
    missing = [k for k in expected if k not in weights]
    if missing:
        raise DlbenchError(f"the checkpoint lacks '{missing[0]}' of model {spec.shown}"
                           + (f" ({len(missing)} names in all)" if len(missing) > 1 else "")
                           + "; save every layer of the same architecture")
    return weights


def _plain_shape(name: str, stacked: tuple[int, ...], linear: set[str]) -> tuple[int, ...]:
    if name not in linear:
        return stacked
    return stacked[::-1] if name.endswith(".weight") else (stacked[-1],)


def _linear_names(spec: ModelSpec, shape: Shape) -> set[str]:
    names = set()
    for path, module in _stacked(spec, shape).named_modules():
        if isinstance(module, StackedLinear):
            names |= {f"{path}.weight", f"{path}.bias"}
    return names


def plain_model(spec: ModelSpec, shape: Shape) -> nn.Module:
    """A plain PyTorch network with the model's layers (names and shapes of the plain layout),
    for loading a dlbench checkpoint into torch code; flat models only. A plugged model's is
    its own module."""
    if spec.plugged:
        return plugged.construct(spec, shape, 0)
    model = _stacked(spec, shape)
    layers = []
    for layer in model.layers:
        if isinstance(layer, StackedLinear):
            layers.append(nn.Linear(layer.fan_in, layer.fan_out, bias=layer.bias is not None))
        elif isinstance(layer, StackedConv):
            w = layer.weight
            conv = nn.Conv1d if w.dim() == 4 else nn.Conv2d
            layers.append(conv(w.shape[2], w.shape[1], w.shape[3], padding=layer.padding,
                               bias=layer.bias is not None))
        elif isinstance(layer, StackedBatchNorm):
            norm = nn.BatchNorm1d if len(model.input_shape or ()) < 3 else nn.BatchNorm2d
            layers.append(norm(layer.weight.shape[1]))
        elif isinstance(layer, Lambda):  # activation, pooling, flatten
            layers.append(_PlainLambda(layer.fn))
        else:
            raise DlbenchError(f"a plain copy of model {spec.name} is not available (layer "
                               f"{type(layer).__name__}); use linear, mlp, cnn1d or cnn2d")
    return _PlainNet(layers, model.input_shape)


class _PlainNet(nn.Module):
    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...] | None):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d) flat features
        if self.input_shape is not None:
            x = x.reshape(x.shape[0], *self.input_shape)
        return self.layers(x)


class _PlainLambda(nn.Module):
    """A stacked model's activation, pooling or flatten on one model: add and drop the member
    axis around it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x.unsqueeze(0)).squeeze(0)


def save(path: Path, state: dict[str, torch.Tensor]) -> None:
    torch.save(state, path)


def load(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: tensors only (DlbenchError when it is missing or corrupt)."""
    path = Path(path)
    if not path.is_file():
        raise DlbenchError(f"--source-checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError) as e:
        raise DlbenchError(f"--source-checkpoint {path} is not a PyTorch state dict of "
                           f"weights ({type(e).__name__}); save one with "
                           "torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise DlbenchError(f"--source-checkpoint {path} holds no state dict of tensors; save "
                           "one with torch.save(model.state_dict(), path)")
    return state
