"""Stacked models: M independent members computed as one batched network.

Every layer maps (M, B, ...) -> (M, B, ...): member first, then batch. Member m owns slice [m]
of every parameter, so an elementwise optimizer (SGD, Adam, ...) updates each member exactly as
it would update that model alone. Initial weights are drawn member by member from the member's
own generator, so a member starts from the same weights whatever stack it is trained in, and
every random draw in training (dropout, DropConnect, stochastic depth, fractional pooling) comes
from a generator of the member's own. Models nest: a `StackedSequential` or `StackedResidual` is a
layer like any other, initialised, masked and seeded wherever it sits in the tree.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlbench import grammar, plugins
from dlbench.errors import DlbenchError
from dlbench.grammar import format_value
from dlbench.nn import plugged
from dlbench.registry import Registry
from dlbench.seeding import (
    DROPCONNECT_KEY,
    DROPOUT_KEY,
    FRACTIONAL_POOL_KEY,
    STOCHASTIC_DEPTH_KEY,
    derive_seed,
)

# Each kind of random layer derives member m's generator seed from seeds[m], its key and the
# layer's index among layers of its kind.


@dataclass(frozen=True)
class ModelSpec:
    # registry name: linear | perceptron | adaline | mlp | resmlp | cnn1d | cnn2d, or a plugged
    # model's resolved reference '/abs/file.py:Name' (nn/plugged.py)
    name: str = "mlp"
    hidden: tuple[int, ...] = (128,)  # mlp: width of each hidden layer; resmlp: of each block
    channels: tuple[int, ...] = (16, 32)  # cnn1d/cnn2d: channels of each conv block
    activation: str = "relu"  # registry name, see ACTIVATIONS
    batchnorm: bool = False  # batch norm after each hidden linear/conv layer
    dropout: float = 0.0  # dropout probability after each hidden activation, in [0, 1)
    init: str = "default"  # weight initialisation, see INITS
    stochastic_depth: float = 0.0  # resmlp: probability of dropping a block per sample, [0, 1)
    dropconnect: float = 0.0  # probability of dropping each hidden-layer weight, in [0, 1)
    pool: str = "max"  # cnn2d: pooling after each conv block, see POOLS
    # a plugged model's k=v, sorted; built-ins: none. Left out of cell keys when empty (the
    # keys of built-in models stay as they were before it: engine/execution.py's ADDED)
    params: tuple[tuple[str, Any], ...] = dataclasses.field(default=(),
                                                            metadata={"added": True})

    @property
    def plugged(self) -> bool:
        return plugins.is_reference(self.name)

    @property
    def shown(self) -> str:
        """The name a row shows: a plugged file's without its directory, with its k=v
        ('net.py:Net[width=32]')."""
        body = ",".join(f"{k}={format_value(v)}" for k, v in self.params)
        return plugins.short(self.name) + (f"[{body}]" if body else "")


# --- activations and initialisations -------------------------------------------------------


@dataclass(frozen=True)
class ActivationInfo:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    gain: float  # torch.nn.init.calculate_gain for this nonlinearity (used by xavier/he)


ACTIVATIONS: Registry[ActivationInfo] = Registry("activation")
ACTIVATIONS.add(ActivationInfo("relu", F.relu, nn.init.calculate_gain("relu")))
ACTIVATIONS.add(ActivationInfo("leaky_relu", F.leaky_relu, nn.init.calculate_gain("leaky_relu")))
ACTIVATIONS.add(ActivationInfo("tanh", torch.tanh, nn.init.calculate_gain("tanh")))
ACTIVATIONS.add(ActivationInfo("sigmoid", torch.sigmoid, nn.init.calculate_gain("sigmoid")))


@dataclass(frozen=True)
class InitInfo:
    name: str
    description: str
    # (weight slice, fan_in, fan_out, gain, generator) -> None: fills the slice in place
    fill: Callable[[torch.Tensor, int, int, float, torch.Generator], None]
    zero_bias: bool  # False keeps torch's default U(±1/sqrt(fan_in)) bias


def _uniform(w, bound, g):
    w.uniform_(-bound, bound, generator=g)


INITS: Registry[InitInfo] = Registry("init")
INITS.add(InitInfo(
    "default", "torch's nn.Linear/nn.Conv default: U(±1/sqrt(fan_in))",
    lambda w, fi, fo, gain, g: _uniform(w, 1 / math.sqrt(fi), g), zero_bias=False))
INITS.add(InitInfo(
    "xavier", "Glorot uniform: U(±gain·sqrt(6/(fan_in+fan_out)))",
    lambda w, fi, fo, gain, g: _uniform(w, gain * math.sqrt(6 / (fi + fo)), g), zero_bias=True))
INITS.add(InitInfo(
    "he", "He/Kaiming normal: N(0, gain/sqrt(fan_in))",
    lambda w, fi, fo, gain, g: w.normal_(0, gain / math.sqrt(fi), generator=g), zero_bias=True))
INITS.add(InitInfo(
    "std1", "N(0, 1): too large, saturates sigmoid/tanh",
    lambda w, fi, fo, gain, g: w.normal_(0, 1.0, generator=g), zero_bias=True))
INITS.add(InitInfo(
    "std0.01", "N(0, 0.01): too small, activations collapse with depth",
    lambda w, fi, fo, gain, g: w.normal_(0, 0.01, generator=g), zero_bias=True))


# --- stacked layers --------------------------------------------------------------------------


class MemberRandom(nn.Module):
    """A layer whose random draws member m takes from a generator of its own, seeded from the
    member's seed (build_model sets `seeds`, one per member, from `seed_key`).

    So a member draws the same whatever else shares its stack (a cell's numbers never depend on
    the grid around it), and exactly as when it trains alone.
    """

    seed_key: int

    def __init__(self):
        super().__init__()
        self.seeds: list[int] = []  # set by build_model: one per member
        self._generators: list[torch.Generator] | None = None

    def generators(self, device: torch.device) -> list[torch.Generator]:
        if self._generators is None or self._generators[0].device != device:
            self._generators = [torch.Generator(device=device).manual_seed(s)
                                for s in self.seeds]
        return self._generators

    def uniform(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """(M, *shape): U[0, 1) values, each member's from its own generator."""
        return torch.stack([torch.rand(shape, generator=g, device=device)
                            for g in self.generators(device)])

    def uniform_rows(self, shape: tuple[int, ...], mask: torch.Tensor | None, batch: int,
                     device: torch.device, fill: float) -> torch.Tensor:
        """(M, B, *shape): U[0, 1) values for each member's real rows, `fill` for its padding.

        Drawing for real rows only advances a member's generator exactly as a batch of just
        those rows would, so a short last batch (padded in a stack) keeps it exact. Padding
        rows come last in a batch, as the trainer lays them out.
        """
        generators = self.generators(device)
        counts = [batch] * len(generators) if mask is None else mask.sum(1).int().tolist()
        out = torch.full((len(generators), batch, *shape), fill, device=device)
        for m, (g, n) in enumerate(zip(generators, counts, strict=True)):
            out[m, :n] = torch.rand((n, *shape), generator=g, device=device)
        return out


class DropConnect(MemberRandom):
    """Drops a layer's weights, not its outputs (Wan et al. 2013): in training each weight is
    zeroed with probability p and the rest scaled by 1/(1-p); the bias is kept. One mask per
    member per forward pass (so per mini-batch); the identity at evaluation."""

    seed_key = DROPCONNECT_KEY

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # (M, ...) -> (M, ...)
        if not self.training:
            return weight
        keep = self.uniform(weight.shape[1:], weight.device) >= self.p
        return weight * keep / (1 - self.p)


class StackedLinear(nn.Module):
    def __init__(self, members: int, n_in: int, n_out: int, bias: bool = True,
                 dropconnect: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, n_in, n_out))  # x @ W, per member
        self.bias = nn.Parameter(torch.empty(members, 1, n_out)) if bias else None
        self.fan_in, self.fan_out = n_in, n_out
        self.drop = DropConnect(dropconnect) if dropconnect > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (M, B, in) -> (M, B, out)
        w = self.weight if self.drop is None else self.drop(self.weight)
        if self.bias is None:
            return torch.bmm(x, w)
        return torch.baddbmm(self.bias, x, w)


class StackedConv(nn.Module):
    """Conv1d/Conv2d per member as one grouped convolution (members become channel groups)."""

    def __init__(self, members: int, c_in: int, c_out: int, kernel: int, ndim: int,
                 bias: bool = True, dropconnect: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, c_out, c_in, *[kernel] * ndim))
        self.bias = nn.Parameter(torch.empty(members, c_out)) if bias else None
        self.fan_in, self.fan_out = c_in * kernel**ndim, c_out * kernel**ndim
        self.conv = F.conv1d if ndim == 1 else F.conv2d
        self.padding = kernel // 2
        self.drop = DropConnect(dropconnect) if dropconnect > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (M, B, C, *S) -> (M, B, C_out, *S)
        m, b, c = x.shape[:3]
        grouped = x.transpose(0, 1).reshape(b, m * c, *x.shape[3:])  # (B, M*C, *S)
        weight = self.weight if self.drop is None else self.drop(self.weight)
        w = weight.reshape(-1, *weight.shape[2:])  # (M*C_out, C, *K)
        b_flat = None if self.bias is None else self.bias.reshape(-1)
        y = self.conv(grouped, w, b_flat, padding=self.padding, groups=m)
        return y.reshape(b, m, -1, *y.shape[2:]).transpose(0, 1)


class StackedBatchNorm(nn.Module):
    """Batch norm with statistics per member, over the real (unmasked) samples of the batch.

    Matches torch's BatchNorm: biased variance to normalise, unbiased for the running estimate.
    """

    def __init__(self, members: int, features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, features))
        self.bias = nn.Parameter(torch.zeros(members, features))
        self.register_buffer("running_mean", torch.zeros(members, features))
        self.register_buffer("running_var", torch.ones(members, features))
        self.momentum, self.eps = momentum, eps
        self.batch_stats = False  # eval mode, yet normalise with the batch's own statistics
        # (M,) bool: members whose layer is frozen (a pretrained feature extractor): they
        # normalise with their running estimates in training too, and never update them
        self.frozen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        spatial = [1] * (x.dim() - 3)  # x: (M, B, C, *S)
        view = (x.shape[0], 1, x.shape[2], *spatial)  # per-(member, channel) stats, broadcast
        if self.training or self.batch_stats:
            w = torch.ones(x.shape[:2], device=x.device) if mask is None else mask
            w = w.reshape(*w.shape, 1, *spatial)  # (M, B, 1, *1)
            dims = (1, *range(3, x.dim()))  # batch and spatial axes
            count = w.sum(1).reshape(-1, 1) * math.prod(x.shape[3:])  # (M, 1)
            mean = (x * w).sum(dims) / count  # (M, C)
            var = ((x - mean.reshape(view)).square() * w).sum(dims) / count
            frozen = None if self.frozen is None else self.frozen[:, None]  # (M, 1)
            if self.training:
                with torch.no_grad():
                    unbiased = var * count / (count - 1).clamp(min=1)
                    new_mean = self.running_mean.lerp(mean, self.momentum)
                    new_var = self.running_var.lerp(unbiased, self.momentum)
                    if frozen is not None:
                        new_mean = torch.where(frozen, self.running_mean, new_mean)
                        new_var = torch.where(frozen, self.running_var, new_var)
                    self.running_mean.copy_(new_mean)
                    self.running_var.copy_(new_var)
            if frozen is not None and self.training:
                mean = torch.where(frozen, self.running_mean, mean)
                var = torch.where(frozen, self.running_var, var)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.reshape(view)) / torch.sqrt(var.reshape(view) + self.eps)
        return x_hat * self.weight.reshape(view) + self.bias.reshape(view)


class StackedDropout(MemberRandom):
    """Dropout whose masks member m draws from a generator of its own (see MemberRandom)."""

    seed_key = DROPOUT_KEY

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> torch.Tensor:  # (M, B, ...)
        if not self.training or self.p == 0:
            return x
        keep = self.uniform_rows(x.shape[2:], mask, x.shape[1], x.device, 1.0) >= self.p
        return x * keep / (1 - self.p)


class StochasticDepth(MemberRandom):
    """Drops a residual branch per sample in training (Huang et al. 2016), scaling kept ones by
    1/(1-p), as torchvision's StochasticDepth(mode="row"); at evaluation every branch, unscaled."""

    seed_key = STOCHASTIC_DEPTH_KEY

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return x
        keep = self.uniform_rows((), mask, x.shape[1], x.device, fill=1.0) >= self.p  # (M, B)
        return x * (keep / (1 - self.p)).reshape(*keep.shape, *[1] * (x.dim() - 2))


class FractionalMaxPool(MemberRandom):
    """Fractional max pooling (Graham 2014), 2-D: overlapping 2×2 regions that shrink each side
    by √2 rather than 2, at pseudo-random places drawn per sample and channel in training.

    At evaluation the regions are fixed: torch's per-sample offset u is 0.5 for every image (a
    regular pattern in between the random ones), so evaluation is deterministic.
    """

    seed_key = FRACTIONAL_POOL_KEY

    def __init__(self, spatial: list[int]):
        super().__init__()
        self.kernel = tuple(min(2, s) for s in spatial)  # a side of 1 stays 1
        self.size = tuple(max(1, int(s / math.sqrt(2))) for s in spatial)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        m, b, c = x.shape[:3]  # x: (M, B, C, H, W)
        if self.training:
            u = self.uniform_rows((c, 2), mask, b, x.device, fill=0.5)
        else:
            u = torch.full((m, b, c, 2), 0.5, device=x.device)
        y = F.fractional_max_pool2d(x.flatten(0, 1), self.kernel, output_size=self.size,
                                    _random_samples=u.flatten(0, 1))
        return y.reshape(m, b, *y.shape[1:])


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Batch norm on each batch's own statistics, running estimates untouched: at
    initialisation those estimates are still 0 and 1, so eval mode would skip batch norm."""
    layers = [m for m in model.modules() if isinstance(m, StackedBatchNorm)]
    for layer in layers:
        layer.batch_stats = True
    try:
        yield
    finally:
        for layer in layers:
            layer.batch_stats = False


class Lambda(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class Activation(Lambda):
    """A hidden layer's nonlinearity, marked so studies can hook its outputs by name."""

    def __init__(self, name: str):
        super().__init__(ACTIVATIONS.get(name).fn)
        self.name = name


@dataclass(frozen=True)
class PoolInfo:
    name: str
    description: str
    # (spatial dims, spatial sizes) -> (the stacked pooling layer, spatial sizes after it)
    build: Callable[[int, list[int]], tuple[nn.Module, list[int]]]


def _max_pool(ndim: int, spatial: list[int]) -> tuple[nn.Module, list[int]]:
    """Max-pool by 2 on the spatial axes, per member (ceil mode keeps length-1 inputs alive)."""
    pool = F.max_pool1d if ndim == 1 else F.max_pool2d

    def fn(x):  # (M, B, C, *S)
        y = pool(x.flatten(0, 1), 2, ceil_mode=True)
        return y.reshape(*x.shape[:2], *y.shape[1:])

    return Lambda(fn), [(s + 1) // 2 for s in spatial]


def _fractional_pool(ndim: int, spatial: list[int]) -> tuple[nn.Module, list[int]]:
    pool = FractionalMaxPool(spatial)
    return pool, list(pool.size)


POOLS: Registry[PoolInfo] = Registry("pool")
POOLS.add(PoolInfo("max", "max pooling by 2: each side halves", _max_pool))
POOLS.add(PoolInfo(
    "fractional", "fractional max pooling (Graham 2014): each side shrinks by √2, the regions "
    "drawn at random in training and fixed at evaluation; 2-D only", _fractional_pool))


class StackedSequential(nn.Module):
    """Stacked layers in order; the padding mask goes to every layer that takes one."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask) if isinstance(layer, MASKED) else layer(x)
        return x


class StackedResidual(nn.Module):
    """x + body(x); with drop > 0 the body's branch is dropped per sample (stochastic depth)."""

    def __init__(self, body: list[nn.Module], drop: float = 0.0):
        super().__init__()
        self.body = StackedSequential(body)
        self.drop = StochasticDepth(drop) if drop > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        branch = self.body(x, mask)
        return x + (branch if self.drop is None else self.drop(branch, mask))


# The layers whose forward takes the padding mask (M, B): batch norm's statistics and per-row
# random draws must skip padded rows, and containers pass it on.
MASKED = (StackedBatchNorm, StackedSequential, StackedResidual, FractionalMaxPool,
          StackedDropout)


class StackedModel(StackedSequential):
    """The whole network; input (M, B, d) flat features, output (M, B, outputs)."""

    def __init__(self, layers: list[nn.Module], input_shape: tuple[int, ...] | None):
        super().__init__(layers)
        self.input_shape = input_shape  # reshape flat features for conv models

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.input_shape is not None:
            x = x.reshape(*x.shape[:2], *self.input_shape)
        return super().forward(x, mask)

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator], init: InitInfo, gain: float):
        """Member m's weights come from generators[m] alone, layer by layer in a fixed order:
        every linear and conv layer of the tree, nested ones included, in modules() order."""
        for layer in self.modules():
            if not isinstance(layer, StackedLinear | StackedConv):
                continue
            for m, g in enumerate(generators):
                init.fill(layer.weight[m], layer.fan_in, layer.fan_out, gain, g)
                if layer.bias is None:
                    continue
                if init.zero_bias:
                    layer.bias[m].zero_()
                else:
                    _uniform(layer.bias[m], 1 / math.sqrt(layer.fan_in), g)


# --- the model registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What a model is built for: input features, their per-sample shape, outputs."""

    n_inputs: int
    input_shape: tuple[int, ...] | None  # (C, L) or (C, H, W) for conv models
    n_outputs: int  # classes, or 1 for regression

    @classmethod
    def of(cls, dataset: Any) -> Shape:
        """The shape a model needs for a dataset (a dlbench.data.datasets.Dataset)."""
        outputs = 1 if dataset.task == "regression" else dataset.n_classes
        return cls(dataset.n_features, dataset.input_shape, outputs)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    tasks: tuple[str, ...]
    uses: tuple[str, ...]  # the ModelSpec fields it reads; the others are ignored
    build: Callable[[ModelSpec, int, Shape], tuple[list[nn.Module], tuple[int, ...] | None]]
    loss: str = "default"  # "default" (cross-entropy / MSE by task), "perceptron" or "adaline"
    # its tests' build (tests/test_contract.py sweeps every entry): ModelSpec fields that keep it
    # tiny yet show its structure, and the per-sample input shape it needs, (C, H, W) for
    # images; None: a table of features
    test_fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    test_input: tuple[int, ...] | None = None
    own_options: str = ""  # a plugged model's parameters with their defaults: 'width=8, p=0.3'

    @property
    def options(self) -> str:
        """Its command-line options, for `dlbench models`; a plugged model's own k=v."""
        return self.own_options or " ".join(_flag(field) for field in self.uses)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def model_info(name: str) -> ModelInfo:
    """The entry of a model: a registered one, or a plugged one (a resolved reference), which
    takes no model option (it builds its own layers from its k=v)."""
    if plugins.is_reference(name):
        # keyed by the object too: an edited file (a new invocation) is a new entry
        return _plugged_info(name, plugins.get(name, plugged.KIND))
    return MODELS.get(name)


@functools.cache
def _plugged_info(reference: str, obj: Any) -> ModelInfo:
    def build(spec, members, shape):
        raise AssertionError("a plugged model is built by nn/plugged.py")

    return ModelInfo(reference, plugged.description(reference), ("classification", "regression"),
                     (), build, own_options=", ".join(
                         f"{k}={'(required)' if v is None else format_value(v)}"
                         for k, v in plugged.parameters(reference).items()))


def offered(where: str) -> list[ModelInfo]:
    """The models a file or module defines, as `--model where:Name` would read them; their
    options are their own parameters with defaults (k=v)."""
    resolved = plugins.split(plugins.resolve(f"{where}:_", "--from"))[0]
    module = plugins.load(resolved, "--from").module
    return [model_info(f"{resolved}:{name}")
            for name in plugins.offered(module, plugged.KIND)]


def normalize(spec: ModelSpec) -> ModelSpec:
    """The spec with the fields its model ignores at their defaults: equal models compare
    equal (so a grid never trains the same perceptron once per --hidden)."""
    used = model_info(spec.name).uses
    defaults = ModelSpec(spec.name)
    return replace(spec, **{f: getattr(defaults, f) for f in ModelSpec.__dataclass_fields__
                            if f not in (*used, "name", "params")})


_MODEL_HELP = "write e.g. 'mlp', or path/to/file.py:Name[width=64] for your own nn.Module"


def parse_model(entry: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """One --model entry -> (registry name or resolved reference, its sorted k=v). A plugged
    model's k are its signature's; a built-in takes its options instead."""
    name, body = grammar.read_entry(entry, "--model", _MODEL_HELP)
    name = MODELS.lookup(name)  # an installed entry point's name reads as its module:Name
    if not plugins.is_reference(name):
        info = MODELS.get(name)
        if body is not None:
            raise DlbenchError(f"--model {name} takes no [k=v]; set it with its options: "
                               f"{info.options or 'none'}")
        return name, ()
    reference = plugins.resolve(name, "--model")
    allowed = plugged.parameters(reference)
    params = grammar.read_params(body, "--model", plugins.short(reference), allowed,
                                 _MODEL_HELP)
    return reference, tuple(sorted(params.items()))


# A layer followed by batch norm has no bias: batch norm subtracts the mean, so such a bias gets
# an exactly-zero gradient (and adaptive optimizers would amplify its rounding noise).


def _hidden_block(spec: ModelSpec, members: int, width: int) -> list[nn.Module]:
    """[batch norm] -> activation -> [dropout], after a hidden linear or conv layer."""
    block: list[nn.Module] = []
    if spec.batchnorm:
        block.append(StackedBatchNorm(members, width))
    block.append(Activation(spec.activation))
    if spec.dropout > 0:
        block.append(StackedDropout(spec.dropout))
    return block


def _build_linear(spec, members, shape):
    return [StackedLinear(members, shape.n_inputs, shape.n_outputs)], None


def _build_mlp(spec, members, shape):
    layers: list[nn.Module] = []
    width = shape.n_inputs
    for h in spec.hidden:
        layers += [StackedLinear(members, width, h, bias=not spec.batchnorm,
                                 dropconnect=spec.dropconnect),
                   *_hidden_block(spec, members, h)]
        width = h
    return [*layers, StackedLinear(members, width, shape.n_outputs)], None


def _build_resmlp(spec, members, shape):
    """Project to width w, then one residual block per --hidden entry, then a linear head.
    Every block drops its branch with the same probability (Huang et al. grow it with depth)."""
    if len(set(spec.hidden)) != 1:
        raise DlbenchError(f"resmlp needs equal hidden widths, e.g. --hidden 64,64,64 (got "
                           f"--hidden {','.join(map(str, spec.hidden))})")
    w, p = spec.hidden[0], spec.dropconnect
    layers: list[nn.Module] = [StackedLinear(members, shape.n_inputs, w, dropconnect=p),
                               Activation(spec.activation)]
    for _ in spec.hidden:
        body = [StackedLinear(members, w, w, bias=not spec.batchnorm, dropconnect=p),
                *_hidden_block(spec, members, w)]
        layers.append(StackedResidual(body, spec.stochastic_depth))
    return [*layers, StackedLinear(members, w, shape.n_outputs)], None


def _build_cnn(ndim: int):
    def build(spec, members, shape):
        in_shape = shape.input_shape
        if in_shape is None or len(in_shape) != ndim + 1:
            in_shape = (1, shape.n_inputs) if ndim == 1 else None
        if in_shape is None:
            raise DlbenchError(
                "model cnn2d needs image data (samples shaped C×H×W); "
                "use an image dataset such as digits or mnist IDX files, or --model cnn1d/mlp"
            )
        pool = POOLS.get(spec.pool if ndim == 2 else "max")  # torch has no 1-D fractional pool
        layers: list[nn.Module] = []
        c, spatial = in_shape[0], list(in_shape[1:])
        for ch in spec.channels:
            conv = StackedConv(members, c, ch, 3, ndim, bias=not spec.batchnorm,
                               dropconnect=spec.dropconnect)
            pooling, spatial = pool.build(ndim, spatial)
            layers += [conv, *_hidden_block(spec, members, ch), pooling]
            c = ch
        flat = c * math.prod(spatial)
        layers += [Lambda(lambda x: x.flatten(2)), StackedLinear(members, flat, shape.n_outputs)]
        return layers, in_shape

    return build


MODELS: Registry[ModelInfo] = Registry("model")
MODELS.add(ModelInfo(
    "linear", "one linear layer: softmax regression (logistic for 2 classes), or linear regression",
    ("classification", "regression"), ("init",), _build_linear))
MODELS.add(ModelInfo(
    "perceptron", "one linear layer trained on the perceptron criterion max_j s_j - s_y",
    ("classification",), ("init",), _build_linear, loss="perceptron"))
MODELS.add(ModelInfo(
    "adaline", "one linear unit per class trained on squared error against ±1 targets "
    "(Widrow-Hoff): the step between the perceptron and logistic regression",
    ("classification",), ("init",), _build_linear, loss="adaline"))
MODELS.add(ModelInfo(
    "mlp", "multi-layer perceptron: linear → [batch norm] → activation → [dropout] per layer",
    ("classification", "regression"),
    ("hidden", "activation", "batchnorm", "dropout", "init", "dropconnect"), _build_mlp,
    test_fields={"hidden": (5,)}))
MODELS.add(ModelInfo(
    "resmlp", "residual MLP, as in the MNIST-1D paper's experiments: linear to width w, then "
    "blocks x + (linear → [bn] → act → [dropout]), then a linear head",
    ("classification", "regression"),
    ("hidden", "activation", "batchnorm", "dropout", "init", "stochastic_depth", "dropconnect"),
    _build_resmlp, test_fields={"hidden": (5, 5)}))  # equal widths, two blocks: nesting shows
MODELS.add(ModelInfo(
    "cnn1d", "1-D conv blocks (conv k=3 → [bn] → act → maxpool 2), then a linear head; sequences",
    ("classification", "regression"),
    ("channels", "activation", "batchnorm", "dropout", "init", "dropconnect"), _build_cnn(1),
    test_fields={"channels": (3, 4)}))  # a table of d features is a 1×d sequence
MODELS.add(ModelInfo(
    "cnn2d", "2-D conv blocks (conv 3×3 → [bn] → act → pool), then a linear head; images",
    ("classification", "regression"),
    ("channels", "activation", "batchnorm", "dropout", "init", "dropconnect", "pool"),
    _build_cnn(2), test_fields={"channels": (3, 4)}, test_input=(1, 8, 8)))

# The options only some models have, and what each does, to name the models that do.
_ONLY_SOME = {"stochastic_depth": "drops residual blocks", "dropconnect": "drops hidden weights",
              "pool": "pools 2-D conv blocks"}


def check_spec(spec: ModelSpec, task: str) -> ModelInfo:
    """Validate a model spec against a task before anything trains (raises DlbenchError)."""
    info = model_info(spec.name)
    ACTIVATIONS.get(spec.activation)
    INITS.get(spec.init)
    POOLS.get(spec.pool)
    if task not in info.tasks:
        raise DlbenchError(f"model {spec.name} is for {' or '.join(info.tasks)}, not {task}; "
                           f"choose another --model")
    if any(w < 1 for w in (*spec.hidden, *spec.channels)):
        raise DlbenchError("layer widths must be positive integers, e.g. --hidden 128,128")
    for field in ("dropout", "stochastic_depth", "dropconnect"):
        if not 0 <= getattr(spec, field) < 1:
            raise DlbenchError(f"{_flag(field)} must be in [0, 1), got {getattr(spec, field)}")
    for field, what in _ONLY_SOME.items():
        value = getattr(spec, field)
        if value != getattr(ModelSpec(), field) and field not in info.uses:
            users = [m.name for m in MODELS if field in m.uses]
            raise DlbenchError(f"{_flag(field)} {value} ({what}) does not apply to model "
                               f"{spec.name}; use --model {_either(users)}")
    return info


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def build_model(spec: ModelSpec, shape: Shape, seeds: list[int]
                ) -> StackedModel | plugged.PluggedModel:
    """One stacked model with len(seeds) members; member m's initial weights depend on seeds[m].

    Under `with torch.device("meta")` it only has shapes: nothing is allocated or initialised.
    A plugged model is its module's copies stacked (nn/plugged.py).
    """
    if spec.plugged:
        return plugged.build(spec, shape, seeds)
    info = MODELS.get(spec.name)
    layers, input_shape = info.build(spec, len(seeds), shape)
    model = StackedModel(layers, input_shape)
    if any(p.is_meta for p in model.parameters()):  # built under torch.device("meta"): shapes
        return model  # only, nothing allocated or drawn (size estimates, shape checks)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    model.reset_parameters(generators, INITS.get(spec.init), ACTIVATIONS.get(spec.activation).gain)
    count: dict[int, int] = {}
    for layer in model.modules():  # member m's draws: its own seed, the layer's kind and index
        if isinstance(layer, MemberRandom):
            i = count[layer.seed_key] = count.get(layer.seed_key, -1) + 1
            layer.seeds = [derive_seed(s, layer.seed_key, i) for s in seeds]
    return model
