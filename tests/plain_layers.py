"""Plain torch counterparts of the stacked random layers, for the exactness tests' to_plain:
each draws from a generator seeded as the stacked member's, so it draws the same numbers."""

import torch
import torch.nn.functional as F
from torch import nn


class PlainResidual(nn.Module):
    def __init__(self, body: nn.Module, drop: nn.Module | None):
        super().__init__()
        self.body, self.drop = body, drop

    def forward(self, x):
        branch = self.body(x)
        return x + (branch if self.drop is None else self.drop(branch))


class PlainDropout(nn.Module):
    """Inverted dropout drawing its mask from a generator seeded as the stacked member's."""

    def __init__(self, p: float, seed: int):
        super().__init__()
        self.p, self.generator = p, torch.Generator().manual_seed(seed)

    def forward(self, x):
        if not self.training:
            return x
        return x * (torch.rand(x.shape, generator=self.generator) >= self.p) / (1 - self.p)


class PlainStochasticDepth(nn.Module):
    """Per-sample branch dropping as torchvision's StochasticDepth(mode="row"), drawing from
    a generator seeded as the stacked member's."""

    def __init__(self, p: float, seed: int):
        super().__init__()
        self.p, self.generator = p, torch.Generator().manual_seed(seed)

    def forward(self, x):
        if not self.training:
            return x
        keep = torch.rand(x.shape[0], generator=self.generator) >= self.p
        return x * (keep / (1 - self.p)).reshape(-1, *[1] * (x.dim() - 1))


class PlainDropConnect(nn.Module):
    """A plain linear or conv layer whose weights are dropped with the member's own masks (the
    stacked linear weight is stored transposed, so the mask is drawn that way)."""

    def __init__(self, layer: nn.Module, p: float, seed: int):
        super().__init__()
        self.layer, self.p, self.generator = layer, p, torch.Generator().manual_seed(seed)

    def forward(self, x):
        w, linear = self.layer.weight, isinstance(self.layer, nn.Linear)
        if self.training:
            keep = torch.rand((w.T if linear else w).shape, generator=self.generator) >= self.p
            w = w * (keep.T if linear else keep) / (1 - self.p)
        if linear:
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


class PlainFractionalPool(nn.Module):
    """torch's fractional max pooling with the member's own region offsets in training and the
    fixed offset 0.5 at evaluation."""

    def __init__(self, kernel, size, seed: int):
        super().__init__()
        self.kernel, self.size = kernel, size
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x):  # (B, C, H, W)
        shape = (*x.shape[:2], 2)
        u = (torch.rand(shape, generator=self.generator) if self.training
             else torch.full(shape, 0.5))
        return F.fractional_max_pool2d(x, self.kernel, output_size=self.size, _random_samples=u)
