"""Learning-rate schedules: a multiplier of the base rate, stepped once per optimizer step.

Each schedule is a closed form of the progress t = step / total ∈ [0, 1], applied through
torch's LambdaLR. `--warmup N` ramps linearly from 1/N to 1 over the first N steps, then the
schedule runs over the remaining steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlbench.errors import DlbenchError
from dlbench.registry import Registry


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    description: str
    factor: Callable[[float], float]  # progress t in [0, 1] -> multiplier of the base lr


SCHEDULES: Registry[ScheduleInfo] = Registry("schedule")
for _info in (
    ScheduleInfo("constant", "the base rate throughout", lambda t: 1.0),
    ScheduleInfo("step", "×0.1 after 1/3 and again after 2/3 of training",
                 lambda t: 0.1 ** min(2, math.floor(3 * t))),
    ScheduleInfo("exponential", "decays smoothly to 1% of the base rate by the end",
                 lambda t: 0.01**t),
    ScheduleInfo("cosine", "half a cosine from the base rate down to 0",
                 lambda t: 0.5 * (1 + math.cos(math.pi * t))),
):
    SCHEDULES.add(_info)


def lr_factor(name: str, step: int, total: int, warmup: int = 0) -> float:
    """The multiplier of the base learning rate for optimizer step `step` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    rest = max(1, total - warmup)
    return SCHEDULES.get(name).factor(min(1.0, (step - warmup) / rest))


def check_schedule(name: str, warmup: int) -> None:
    SCHEDULES.get(name)
    if warmup < 0:
        raise DlbenchError(f"--warmup must be >= 0 steps, got {warmup}")


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, total: int,
                    warmup: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(name, step, total, warmup))
