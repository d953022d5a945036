"""Regularizers: a registry, one entry each, written in the `--opt` bracket grammar.

`--reg 'none,l2[strength=1e-3],dropout[p=0.5],early-stop[patience=5]'`. An entry changes a
cell's model (dropout, DropConnect, batch norm, stochastic depth, pooling: cells with different
models train in different stacks), its training regimen (penalties, decay, max-norm, early
stopping, augmentation, snapshots: members with different regimens share a stack), how a
member predicts (test-time augmentation averages copies of each input; it shares a stack too),
or how many members make one prediction (an ensemble averages the probabilities of n members per
seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dlbench import grammar
from dlbench.data.augment import Augment
from dlbench.engine.members import TrainConfig
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec
from dlbench.registry import Registry

_HELP = "write e.g. 'none,l2[strength=1e-3],dropout[p=0.5]' (see `dlbench regularizers`)"
Change = Callable[[ModelSpec, TrainConfig, dict[str, Any], bool], tuple[ModelSpec, TrainConfig]]


@dataclass(frozen=True)
class RegularizerInfo:
    name: str
    description: str
    defaults: dict[str, Any]  # its parameters with their defaults (and types)
    # (model, training, parameters, shaped data?) -> the cell's model and training
    change: Change = lambda model, train, p, shaped: (model, train)
    ranges: dict[str, Range] | None = None  # a parameter's values (default: >= 0)
    # the parameters its tests set over the defaults (tests/test_contract.py), where the
    # defaults would not act on a tiny model in a few steps
    test_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Regularizer:
    """One parsed entry: its name and the parameters the user set."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def info(self) -> RegularizerInfo:
        return REGULARIZERS.get(self.name)

    @property
    def values(self) -> dict[str, Any]:
        return {**self.info.defaults, **dict(self.params)}

    @property
    def label(self) -> str:
        """The entry with every parameter written out: 'l2[strength=0.001]'."""
        if not self.info.defaults:
            return self.name
        body = ",".join(f"{k}={grammar.format_value(v)}" for k, v in self.values.items())
        return f"{self.name}[{body}]"

    @property
    def members(self) -> int:
        """Members trained per seed whose probabilities make one prediction."""
        return self.values["n"] if self.name == "ensemble" else 1

    def apply(self, model: ModelSpec, train: TrainConfig, shaped: bool
              ) -> tuple[ModelSpec, TrainConfig]:
        """The cell's model and training; `shaped`: the data are sequences or images."""
        return self.info.change(model, train, {**self.values, "given": dict(self.params)},
                                shaped)


def _regimen(train: TrainConfig, **changes: Any) -> TrainConfig:
    return replace(train, regimen=replace(train.regimen, **changes))


def _augment(model, train, p, shaped):
    shift = p["given"].get("shift", p["shift"] if shaped else 0)  # tables cannot shift
    return model, _regimen(train, augment=Augment(p["noise"], shift))


@dataclass(frozen=True)
class Range:
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False  # the low end itself is refused (it would make the entry a no-op)
    high_open: bool = True

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


PROBABILITY = Range(0.0, 1.0)
POSITIVE = Range(0.0, low_open=True)
AT_LEAST_2 = Range(2)  # an average of one is no average
REGULARIZERS: Registry[RegularizerInfo] = Registry("regularizer")
for _info in (
    RegularizerInfo("none", "no regularization: the baseline every other entry is compared with",
                    {}),
    RegularizerInfo("l1", "L1 weight penalty: strength·Σ|w| joins each member's loss",
                    {"strength": 1e-4}, lambda m, t, p, s: (m, _regimen(t, l1=p["strength"]))),
    RegularizerInfo("l2", "L2 weight penalty: strength·Σw² joins each member's loss",
                    {"strength": 1e-3}, lambda m, t, p, s: (m, _regimen(t, l2=p["strength"]))),
    RegularizerInfo("l1l2", "both penalties: l1·Σ|w| + l2·Σw² (elastic net)",
                    {"l1": 1e-4, "l2": 1e-3},
                    lambda m, t, p, s: (m, _regimen(t, l1=p["l1"], l2=p["l2"]))),
    RegularizerInfo("weight-decay", "decoupled weight decay w ← w·(1 − lr·strength) per step, "
                    "as AdamW", {"strength": 1e-2},
                    lambda m, t, p, s: (m, _regimen(t, decay=p["strength"]))),
    RegularizerInfo("dropout", "dropout after each hidden activation, probability p",
                    {"p": 0.5}, lambda m, t, p, s: (replace(m, dropout=p["p"]), t),
                    {"p": PROBABILITY}),
    RegularizerInfo("dropconnect", "hidden layers' weights dropped with probability p "
                    "(one mask per batch and member)", {"p": 0.5},
                    lambda m, t, p, s: (replace(m, dropconnect=p["p"]), t), {"p": PROBABILITY}),
    RegularizerInfo("batchnorm", "batch norm after each hidden layer", {},
                    lambda m, t, p, s: (replace(m, batchnorm=True), t)),
    RegularizerInfo("early-stop", "stop after `patience` epochs without a lower validation "
                    "loss; restore the best epoch's weights", {"patience": 5},
                    lambda m, t, p, s: (m, _regimen(t, patience=p["patience"])),
                    {"patience": Range(1)}),
    RegularizerInfo("augment", "training batches get Gaussian noise (std `noise`, "
                    "standardized units) and, for sequences and images, random shifts of up to "
                    "`shift` steps or pixels", {"noise": 0.1, "shift": 2}, _augment),
    RegularizerInfo("stochastic-depth", "residual blocks dropped per sample with probability p "
                    "in training, all used at evaluation (resmlp)", {"p": 0.2},
                    lambda m, t, p, s: (replace(m, stochastic_depth=p["p"]), t),
                    {"p": PROBABILITY}),
    RegularizerInfo("max-norm", "each unit's incoming weight vector clipped to norm c after "
                    "every step", {"c": 3.0},
                    lambda m, t, p, s: (m, _regimen(t, max_norm=p["c"])), {"c": POSITIVE},
                    test_params={"c": 0.5}),  # c=3 never binds: unit norms stay below 2
    RegularizerInfo("ensemble", "the averaged probabilities of n members per seed (each its "
                    "own initial weights and batch order), against one member", {"n": 5},
                    ranges={"n": AT_LEAST_2}),
    RegularizerInfo("snapshot", "a cyclic cosine learning rate with n cycles; the averaged "
                    "probabilities of the n snapshots at the cycles' ends", {"n": 5},
                    lambda m, t, p, s: (m, _regimen(t, snapshots=p["n"])),
                    {"n": AT_LEAST_2}),
    RegularizerInfo("tta", "test-time augmentation: final (and best-epoch) predictions average "
                    "the probabilities of n fixed copies of each input — images: flipped and "
                    "shifted by a pixel or more, sequences: shifted ±1, ±2 steps; not tables",
                    {"n": 4}, lambda m, t, p, s: (m, replace(t, tta=p["n"])),
                    {"n": AT_LEAST_2}),
    RegularizerInfo("fractional-max-pool", "cnn2d: fractional max pooling (pseudo-random "
                    "regions in training) in place of max pooling", {},
                    lambda m, t, p, s: (replace(m, pool="fractional"), t)),
):
    REGULARIZERS.add(_info)


def parse_regularizers(text: str) -> list[Regularizer]:
    """'none,l2[strength=1e-3]' -> validated entries (each once)."""
    entries = []
    for entry in grammar.split_entries(text, "--reg", _HELP):
        name, body = grammar.read_entry(entry, "--reg", _HELP)
        info = REGULARIZERS.get(name)
        params = grammar.read_params(body, "--reg", name, info.defaults, _HELP)
        for key, value in params.items():
            _check_range(name, key, value, (info.ranges or {}).get(key, Range()))
        entries.append(Regularizer(name, tuple(sorted(params.items()))))
    if not entries:
        raise DlbenchError(f"--reg names no regularizer; {_HELP}")
    labels = [e.label for e in entries]
    if len(set(labels)) < len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise DlbenchError(f"--reg lists {twice} twice; give each entry once")
    return entries


def edits_model(reg: Regularizer) -> bool:
    """Whether an entry edits the built-in architecture (dropout or batch-norm layers, pooling,
    ...) rather than the training or the predictions: a model of the user's own has no such
    switch, so these entries do not apply to it."""
    model = ModelSpec()
    return reg.apply(model, TrainConfig(), shaped=True)[0] != model


def for_any_model() -> list[str]:
    """The entries that apply to any model, a plugged one included."""
    return [name for name in REGULARIZERS.names() if not edits_model(Regularizer(name))]


def _check_range(name: str, key: str, value: float, allowed: Range) -> None:
    if value not in allowed:
        raise DlbenchError(f"--reg {name}[{key}={grammar.format_value(value)}]: {key} must be "
                           f"{allowed}")
