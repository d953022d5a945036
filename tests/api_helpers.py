"""Objects for tests/test_api.py, in a module of their own: what a pool worker imports to get
a Python object handed to the API (it travels with its task, pickled by reference)."""

from __future__ import annotations

import torch


class SignSGD(torch.optim.Optimizer):
    """SGD on the sign of the gradient: each weight on its own, so it may share the stack.
    (tests/test_plugins.py writes this class into a user's file.)"""

    elementwise = True

    def __init__(self, params, lr=0.01, weight_decay=0.0):
        if lr > 1:
            raise ValueError(f"SignSGD wants lr <= 1, got {lr}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


def make_mlp(input_shape, n_outputs, width=16):
    """A model factory as `--model file.py:Name` takes one: (input shape, outputs, **k)."""
    (features,) = input_shape
    return torch.nn.Sequential(torch.nn.Linear(features, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, n_outputs))


def error_rate(y_true, proba) -> float:
    """A metric function: (class indices, probabilities) -> float, lower is better."""
    return float((y_true != proba.argmax(1)).mean())


error_rate.greater_is_better = False  # its direction, declared as --metrics requires
