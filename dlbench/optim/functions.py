"""2-D test functions for `dlbench optimize`: where optimizers show how they move.

Each entry's `fn` reads the point as p[0], p[1] and uses torch operations only, so autograd
(and the double backward Newton needs) works. The leading axis of p is the coordinate, so the
same `fn` given a (2, H, W) grid evaluates every grid point at once (see `evaluate_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dlbench.registry import Registry

Window = tuple[float, float, float, float]


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    description: str  # one line, with the formula
    fn: Callable[[torch.Tensor], torch.Tensor]  # p (2,) float64 -> scalar; (2, ...) -> (...)
    start: tuple[float, float]  # default start point
    minima: tuple[tuple[float, float], ...]  # global minimiser(s); () when unbounded below
    f_min: float  # value at the global minimum; -inf when unbounded below
    window: Window  # xmin, xmax, ymin, ymax of the contour plot; holds start and minima
    log_levels: bool  # log-spaced contour levels: steep walls around a flat valley


def _anisotropic(p: torch.Tensor) -> torch.Tensor:
    return p[0] ** 2 / 20 + p[1] ** 2


def _rosenbrock(p: torch.Tensor) -> torch.Tensor:
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def _beale(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]
    return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2
            + (2.625 - x + x * y**3) ** 2)


def _himmelblau(p: torch.Tensor) -> torch.Tensor:
    return (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2


def _saddle(p: torch.Tensor) -> torch.Tensor:
    return p[0] ** 2 - p[1] ** 2


def _rastrigin(p: torch.Tensor) -> torch.Tensor:
    x, y = p[0], p[1]  # written out, not summed over p, so a (2, H, W) grid works too
    return (20 + x**2 - 10 * torch.cos(2 * math.pi * x)
            + y**2 - 10 * torch.cos(2 * math.pi * y))


FUNCTIONS: Registry[FunctionInfo] = Registry("function")
for _info in (
    FunctionInfo("anisotropic", "anisotropic bowl f = x²/20 + y²: SGD zig-zags across the valley",
                 _anisotropic, (-7.0, 2.0), ((0.0, 0.0),), 0.0, (-10.0, 10.0, -5.0, 5.0), False),
    FunctionInfo("rosenbrock", "Rosenbrock f = (1 − x)² + 100(y − x²)²: a curved, flat valley",
                 _rosenbrock, (-1.5, 2.0), ((1.0, 1.0),), 0.0, (-2.0, 2.0, -1.0, 3.0), True),
    FunctionInfo("beale", "Beale f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
                 _beale, (1.0, 1.5), ((3.0, 0.5),), 0.0, (-1.0, 4.5, -1.5, 2.5), True),
    # The three irrational minimisers are Newton-polished to float64 precision.
    FunctionInfo("himmelblau", "Himmelblau f = (x² + y − 11)² + (x + y² − 7)²: four equal minima",
                 _himmelblau, (0.0, 0.0),
                 ((3.0, 2.0), (-2.805118086952745, 3.131312518250573),
                  (-3.779310253377747, -3.283185991286169),
                  (3.5844283403304917, -1.8481265269644036)),
                 0.0, (-5.0, 5.0, -5.0, 5.0), True),
    # Started just off the ridge y = 0: on it the gradient never points along y.
    FunctionInfo("saddle", "saddle f = x² − y²: unbounded below, escape along y",
                 _saddle, (-1.5, 0.01), (), -math.inf, (-2.0, 2.0, -2.0, 2.0), False),
    FunctionInfo("rastrigin", "Rastrigin f = 20 + Σᵢ (xᵢ² − 10 cos 2πxᵢ): many local minima",
                 _rastrigin, (2.5, 2.2), ((0.0, 0.0),), 0.0, (-3.0, 3.0, -3.0, 3.0), False),
):
    FUNCTIONS.add(_info)


def evaluate_grid(info: FunctionInfo, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """f on a grid, in one batched call.

    xs, ys either both 1-D (grid coordinates: the result is (len(ys), len(xs)), the layout
    matplotlib's contour expects) or already a meshgrid of the same shape.
    """
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.ndim == 1 and ys.ndim == 1:
        xs, ys = np.meshgrid(xs, ys)
    with torch.no_grad():
        grid = torch.as_tensor(np.stack(np.broadcast_arrays(xs, ys)))  # (2, ...)
        return info.fn(grid).numpy()
