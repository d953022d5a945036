"""Optimizers: a registry over torch.optim. 'sgd' and 'momentum' are one class, other defaults."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from dlbench.errors import DlbenchError
from dlbench.registry import Registry


@dataclass(frozen=True)
class OptimInfo:
    name: str
    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any] = field(default_factory=dict)  # over torch.optim's own defaults
    # True when every update is elementwise, so stacked members stay independent and exact.
    # False (a reduction across parameters, e.g. L-BFGS's line search) trains each member alone.
    elementwise: bool = True
    description: str = ""


OPTIMIZERS: Registry[OptimInfo] = Registry("optimizer")
for _info in (
    OptimInfo("sgd", torch.optim.SGD, {}, description="plain stochastic gradient descent"),
    OptimInfo("momentum", torch.optim.SGD, {"momentum": 0.9},
              description="SGD with heavy-ball momentum 0.9"),
    OptimInfo("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True},
              description="SGD with Nesterov momentum 0.9"),
    OptimInfo("adagrad", torch.optim.Adagrad,
              description="per-weight rates from the sum of squared gradients"),
    OptimInfo("rmsprop", torch.optim.RMSprop,
              description="per-weight rates from a running mean of squared gradients"),
    OptimInfo("adam", torch.optim.Adam,
              description="momentum + RMSProp with bias correction; coupled L2 weight decay"),
    OptimInfo("adamw", torch.optim.AdamW, description="Adam with decoupled weight decay"),
):
    OPTIMIZERS.add(_info)


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float,
                    weight_decay: float = 0.0, **overrides: Any) -> torch.optim.Optimizer:
    """torch.optim optimizer for `name`; weight decay is the class's own convention."""
    info = OPTIMIZERS.get(name)
    kwargs = {**info.defaults, **overrides, "lr": lr}
    if "fused" in inspect.signature(info.cls).parameters:
        kwargs.setdefault("fused", True)  # one kernel per step instead of one per tensor
    if weight_decay:
        kwargs["weight_decay"] = weight_decay
    try:
        return info.cls(params, **kwargs)
    except (TypeError, ValueError) as e:
        raise DlbenchError(f"optimizer {name}: {e}") from None
