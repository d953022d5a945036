"""The 2-D test functions: their stated minima are minima, and the plotting window holds them."""

import math

import numpy as np
import pytest
import torch

from dlbench.errors import DlbenchError
from dlbench.optim.functions import FUNCTIONS, FunctionInfo, evaluate_grid

ALL = list(FUNCTIONS)
BOUNDED = [info for info in ALL if info.minima]


def _inside(point: tuple[float, float], window) -> bool:
    xmin, xmax, ymin, ymax = window
    return xmin <= point[0] <= xmax and ymin <= point[1] <= ymax


def test_registry_holds_the_textbook_functions():
    assert set(FUNCTIONS.names()) >= {"anisotropic", "rosenbrock", "beale", "himmelblau",
                                      "saddle", "rastrigin"}
    assert len(FUNCTIONS.get("himmelblau").minima) == 4
    with pytest.raises(DlbenchError, match="choose one of: anisotropic"):
        FUNCTIONS.get("rosenbrok")


@pytest.mark.parametrize("info", BOUNDED, ids=lambda i: i.name)
def test_each_minimum_has_value_f_min_and_zero_gradient(info: FunctionInfo):
    for minimum in info.minima:
        p = torch.tensor(minimum, dtype=torch.float64, requires_grad=True)
        value = info.fn(p)
        (grad,) = torch.autograd.grad(value, p)
        assert value.item() == pytest.approx(info.f_min, abs=1e-9)
        assert float(grad.abs().max()) < 1e-8


def test_unbounded_functions_say_so():
    saddle = FUNCTIONS.get("saddle")
    assert saddle.minima == () and saddle.f_min == -math.inf
    assert float(saddle.fn(torch.tensor([0.0, 1e6], dtype=torch.float64))) < -1e11


@pytest.mark.parametrize("info", ALL, ids=lambda i: i.name)
def test_window_holds_start_and_minima(info: FunctionInfo):
    xmin, xmax, ymin, ymax = info.window
    assert xmin < xmax and ymin < ymax
    for point in (info.start, *info.minima):
        assert _inside(point, info.window), point


@pytest.mark.parametrize("info", BOUNDED, ids=lambda i: i.name)
def test_no_random_point_beats_f_min(info: FunctionInfo):
    rng = np.random.default_rng(0)
    xmin, xmax, ymin, ymax = info.window
    points = rng.uniform([xmin - 5, ymin - 5], [xmax + 5, ymax + 5], size=(2000, 2))
    values = [float(info.fn(torch.as_tensor(p))) for p in points]
    assert min(values) >= info.f_min - 1e-12


@pytest.mark.parametrize("info", ALL, ids=lambda i: i.name)
def test_evaluate_grid_agrees_with_fn_pointwise(info: FunctionInfo):
    xmin, xmax, ymin, ymax = info.window
    xs, ys = np.linspace(xmin, xmax, 7), np.linspace(ymin, ymax, 5)
    grid = evaluate_grid(info, xs, ys)
    assert grid.shape == (5, 7)  # rows follow y, columns x: matplotlib's contour layout
    expected = [[float(info.fn(torch.tensor([x, y], dtype=torch.float64))) for x in xs]
                for y in ys]
    np.testing.assert_allclose(grid, expected, rtol=1e-12, atol=1e-12)
    X, Y = np.meshgrid(xs, ys)  # a meshgrid given as such gives the same
    np.testing.assert_array_equal(evaluate_grid(info, X, Y), grid)


@pytest.mark.parametrize("info", ALL, ids=lambda i: i.name)
def test_fn_is_twice_differentiable_at_the_start(info: FunctionInfo):
    start = torch.tensor(info.start, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(info.fn, start)
    assert hessian.shape == (2, 2)
    assert torch.isfinite(hessian).all()
    torch.testing.assert_close(hessian, hessian.T)
    assert float(torch.autograd.functional.jacobian(info.fn, start).abs().max()) > 0


def test_hessian_matches_the_formula_where_it_is_known():
    anisotropic = FUNCTIONS.get("anisotropic")
    hessian = torch.autograd.functional.hessian(anisotropic.fn,
                                                torch.tensor([3.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(hessian, torch.tensor([[0.1, 0.0], [0.0, 2.0]],
                                                     dtype=torch.float64))
