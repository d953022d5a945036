"""The user's own model, `--model path/to/file.py:Name[k=v,...]` (or `package.module:Name`):
an nn.Module subclass or a function `Name(input_shape, n_outputs, **k)` returning a plain
nn.Module that maps a batch (B, *input_shape) to (B, n_outputs). Its `k` default to its
signature's defaults; their values are judged by calling it (its own message).

M copies are stacked with torch.func (`stack_module_state`, `functional_call`, `vmap`) into a
`PluggedModel`, which the engine sees as it sees a built-in stacked model: (M, B, d) flat
features (+ padding mask (M, B)) -> (M, B, outputs), every parameter an nn.Parameter and every
buffer (batch-norm statistics) a tensor with the member axis first, named exactly as in the
user's module — so a member's slice of the stacked state dict is the module's own state dict,
loadable with plain `load_state_dict`.

Exactness (trainer.py's contract):
- member m's initial weights are the module's own initialisation with torch's global generator
  seeded with the member's seed, whatever its stack;
- a module that draws random numbers (dropout) never draws through vmap (whose "different"
  randomness takes every member's draws from one global generator, so a member's masks would
  depend on its stack mates): member m's forward runs on its own, with its own generator state
  (seeded from derive_seed(seed, PLUGGED_KEY)) swapped into torch's global generator and saved
  after it — as a plain loop that calls torch.manual_seed with that seed before training draws;
- a training batch with padding rows (a member's short last batch) runs member by member on
  its real rows only, so batch norm's statistics (or anything that mixes rows) never see them;
- evaluation is `model.eval()`: vmap over all members, rows independent of each other.

Weight decay, L1/L2 and max-norm follow dlbench's convention: the weights of the module's
nn.Linear and nn.ConvNd layers are decayed (`decayed_weights`); biases, normalisation and
every other parameter never are.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from dlbench import plugins
from dlbench.errors import DlbenchError
from dlbench.seeding import derive_seed

if TYPE_CHECKING:
    from dlbench.nn.models import ModelSpec, Shape

PLUGGED_KEY = 1_000_187  # a plugged model's random draws in training, from the member's seed
PROBE_ROWS = 2  # the batch a plugged model is checked on (batch norm needs two rows)
WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)  # whose weights are decayed
NORMS = (nn.modules.batchnorm._NormBase,)  # running statistics: frozen with their weight


def is_model(obj: Any) -> bool:
    """An nn.Module subclass, or a function whose first parameter is `input_shape`."""
    if isinstance(obj, type):
        return issubclass(obj, nn.Module) and obj is not nn.Module
    if not inspect.isfunction(obj):
        return False
    return next(iter(inspect.signature(obj).parameters), None) == "input_shape"


KIND = plugins.Kind("model", "--model", is_model,
                    "an nn.Module subclass or a function (input_shape, n_outputs, **k) that "
                    "returns one")


def parameters(reference: str) -> dict[str, Any]:
    """The `k` a plugged model takes (every parameter after input_shape and n_outputs) with its
    default; None where it has none (the user must give it)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    found = [p for p in inspect.signature(plugins.get(reference, KIND)).parameters.values()
             if p.kind in named]
    return {p.name: None if p.default is inspect.Parameter.empty else p.default
            for p in found[2:]}


def description(reference: str) -> str:
    return plugins.summary(plugins.get(reference, KIND))


def input_shape(shape: Shape) -> tuple[int, ...]:
    """One sample's shape as the module takes it: (d,) for a table, (C, H, W) for images."""
    return tuple(shape.input_shape or (shape.n_inputs,))


def construct(spec: ModelSpec, shape: Shape, seed: int) -> nn.Module:
    """One copy of the module, its initialisation drawn from torch's global generator seeded
    with `seed` (the caller's generator state is left as it was)."""
    factory = plugins.get(spec.name, KIND)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            module = factory(input_shape(shape), shape.n_outputs, **dict(spec.params))
        except Exception as e:  # the user's code judges its own values: its message
            raise DlbenchError(f"--model {spec.shown}: {type(e).__name__}: {e}") from None
    if not isinstance(module, nn.Module):
        raise DlbenchError(f"--model {spec.shown} returned a {type(module).__name__}, not an "
                           "nn.Module; return one")
    return module


def check(spec: ModelSpec, shape: Shape) -> int:
    """The model against the data before anything trains (DlbenchError, one line) -> its
    trainable parameters: it builds, has trainable parameters, and maps a batch
    (2, *input_shape) to (2, n_outputs). Once per spec, shape and content of its file."""
    return _check(spec, shape, plugins.load(plugins.split(spec.name)[0], "--model").digest)


@functools.cache
def _check(spec: ModelSpec, shape: Shape, digest: str) -> int:
    module = construct(spec, shape, 0)
    n_params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if not n_params:
        raise DlbenchError(f"--model {spec.shown} has no trainable parameters; give it "
                           "some (nothing would train)")
    rows = (PROBE_ROWS, *input_shape(shape))
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(rows))
    except Exception as e:
        raise DlbenchError(f"--model {spec.shown} fails on a batch shaped {rows}: "
                           f"{type(e).__name__}: {e}") from None
    expected = (PROBE_ROWS, shape.n_outputs)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != expected:
        outputs = "1 output (regression)" if shape.n_outputs == 1 else \
            f"{shape.n_outputs} outputs (one per class)"
        raise DlbenchError(f"--model {spec.shown} maps a batch shaped {rows} to {got}; this "
                           f"task needs {expected}: {outputs}")
    return n_params


def build(spec: ModelSpec, shape: Shape, seeds: list[int]) -> PluggedModel:
    """len(seeds) copies stacked; member m's initial weights from seeds[m]. Under
    `with torch.device("meta")` shapes only."""
    modules = [construct(spec, shape, s) for s in seeds]
    return PluggedModel(modules, input_shape(shape), shape.n_outputs,
                        [derive_seed(s, PLUGGED_KEY) for s in seeds], spec.shown)


class PluggedModel(nn.Module):
    """M copies of a plain module as one stacked model; see the module docstring.

    Its parameters, buffers and submodules are those of a copy of the module whose tensors
    were replaced by the stacked ones (so names are the module's own); the forward pass
    calls an unregistered template copy through torch.func.functional_call.
    """

    def __init__(self, modules: list[nn.Module], input_shape: tuple[int, ...], n_outputs: int,
                 random_seeds: list[int], shown: str = "the model"):
        super().__init__()
        self.shown = shown  # what an error calls it: 'net.py:Net[width=8]'
        template = modules[0]
        params, buffers = stack_module_state(modules)  # (M, ...) each, the module's names
        tree = _restacked(copy.deepcopy(template), params, buffers)
        for name in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
            self.__dict__[name] = tree.__dict__[name]  # the module's names, stacked
        self.__dict__["template"] = template  # not a submodule: its tensors are never used
        self.input_shape, self.n_outputs = input_shape, n_outputs
        self.random_seeds = random_seeds  # one per member (PLUGGED_KEY)
        self._states: dict[str, list[torch.Tensor]] = {}  # device type -> each member's
        meta = any(p.is_meta for p in template.parameters())
        self.random = {True: False, False: False} if meta else _draws_random(template,
                                                                             input_shape)
        # (members,) bool per normalisation layer whose statistics are frozen (transfer)
        self.frozen: dict[str, list[bool]] = {}

    def _apply(self, fn, recurse=True):
        self.template._apply(fn, recurse)  # the template follows the stack's device
        return super()._apply(fn, recurse)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The user's module may raise on what the checks could not foresee (batch norm on a
        last batch of one row): one line naming it, never a traceback."""
        try:
            return self._forward(x, mask)
        except DlbenchError:
            raise
        except Exception as e:
            rows = x.shape[1] if mask is None else int(mask.sum(1).min())
            hint = ("; a member's last batch has 1 row here (batch norm cannot train on one): "
                    "choose a --batch-size that leaves more" if self.training and rows == 1
                    else "; it cannot train here as given")
            raise DlbenchError(f"--model {self.shown} failed in "
                               f"{'training' if self.training else 'evaluation'}: "
                               f"{type(e).__name__}: {' '.join(str(e).split())}{hint}") from None

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x.reshape(*x.shape[:2], *self.input_shape)  # (M, B, *input_shape)
        self.template.train(self.training)
        padded = mask is not None and bool((mask == 0).any())
        if self.random[self.training] or (self.training and (padded or self.frozen)):
            return self._each_member(x, mask)
        params, buffers = dict(self.named_parameters()), dict(self.named_buffers())
        return vmap(self._call, randomness="error")(params, buffers, x)

    def _call(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def _each_member(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Member by member on its real rows (padding last), each with its own generator;
        padding rows get zeros."""
        params, buffers = dict(self.named_parameters()), dict(self.named_buffers())
        counts = [x.shape[1]] * x.shape[0] if mask is None else mask.sum(1).int().tolist()
        outs = []
        for m, n in enumerate(counts):
            if n == 0:
                outs.append(x.new_zeros(x.shape[1], self.n_outputs))
                continue
            with self._own_random(m, x.device), self._frozen_norms(m):
                y = self._call({k: v[m] for k, v in params.items()},
                               {k: v[m] for k, v in buffers.items()}, x[m, :n])
            outs.append(F.pad(y, (0, 0, 0, x.shape[1] - n)))
        return torch.stack(outs)

    @contextmanager
    def _own_random(self, m: int, device: torch.device) -> Iterator[None]:
        """Member m's generator state in torch's global generator of `device` for the call."""
        if not self.random[self.training]:
            yield
            return
        get, put = _global_state(device)
        states = self._states.setdefault(device.type, [
            torch.Generator(device=device).manual_seed(s).get_state()
            for s in self.random_seeds])
        saved = get()
        put(states[m])
        try:
            yield
        finally:
            states[m] = get()
            put(saved)

    @contextmanager
    def _frozen_norms(self, m: int) -> Iterator[None]:
        """Member m's frozen normalisation layers in eval mode: they normalise with their
        running estimates and never update them (a frozen pretrained layer)."""
        layers = [self.template.get_submodule(path) for path, frozen in self.frozen.items()
                  if frozen[m] and self.training]
        for layer in layers:
            layer.eval()
        try:
            yield
        finally:
            for layer in layers:
                layer.train(self.training)


def _global_state(device: torch.device) -> tuple[Callable, Callable]:
    if device.type == "cuda":
        return (lambda: torch.cuda.get_rng_state(device),
                lambda s: torch.cuda.set_rng_state(s, device))
    return torch.get_rng_state, torch.set_rng_state


def _restacked(tree: nn.Module, params: dict[str, torch.Tensor],
               buffers: dict[str, torch.Tensor]) -> nn.Module:
    """The copy's tensors replaced by the stacked ones, in place (a parameter the module
    shares between two places stays shared)."""
    named = dict(tree.named_parameters()) | dict(tree.named_buffers())
    stacked = {id(named[k]): v for k, v in (params | buffers).items()}
    for module in tree.modules():
        for key, value in module._parameters.items():
            if value is not None:
                module._parameters[key] = nn.Parameter(stacked[id(value)],
                                                       requires_grad=value.requires_grad)
        for key, value in module._buffers.items():
            if value is not None:
                module._buffers[key] = stacked[id(value)]
    return tree


def _draws_random(template: nn.Module, shape: tuple[int, ...]) -> dict[bool, bool]:
    """Whether the module draws random numbers (or cannot be vmapped), in training (True) and
    at evaluation (False): probed on a copy, one member, PROBE_ROWS zero rows."""
    probe = copy.deepcopy(template)
    params, buffers = stack_module_state([probe])
    x = torch.zeros(1, PROBE_ROWS, *shape)
    found = {}
    for training in (True, False):
        probe.train(training)
        try:
            with torch.no_grad():
                vmap(lambda p, b, x: functional_call(probe, (p, b), (x,)),
                     randomness="error")(params, buffers, x)
            found[training] = False
        except Exception:  # random, or an operation vmap cannot batch: member by member
            found[training] = True
    return found


def decayed_weights(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """A plugged model's decayed weights (nn.Linear / nn.ConvNd) -> a unit's incoming axes in
    the stacked tensor: (M, out, in, *kernel), a unit's weights after `out`."""
    return {f"{path}.weight" if path else "weight": tuple(range(2, module.weight.dim()))
            for path, module in model.named_modules()
            if isinstance(module, WEIGHT_LAYERS) and isinstance(module.weight, nn.Parameter)}


def cost_per_row(spec: ModelSpec, shape: Shape) -> tuple[int, int, int]:
    """(parameters, multiply-adds per row, activation values per row) of one copy, from one
    forward pass of one row through its leaf layers."""
    module = construct(spec, shape, 0).eval()
    macs, values = [0], [0]

    def hook(layer, inputs, out):
        if not isinstance(out, torch.Tensor):
            return
        values[0] += out.numel()
        if isinstance(layer, nn.Linear):
            macs[0] += layer.in_features * layer.out_features
        elif isinstance(layer, nn.modules.conv._ConvNd):
            macs[0] += out.numel() * layer.in_channels // layer.groups * \
                math.prod(layer.kernel_size)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if not list(m.children())]
    with torch.no_grad():
        module(torch.zeros(1, *input_shape(shape)))
    for h in handles:
        h.remove()
    return sum(p.numel() for p in module.parameters()), macs[0], values[0]


def head(model: nn.Module) -> str:
    """The path of a plugged model's head: the module's class attribute `head`, else its last
    nn.Linear (named_modules order)."""
    named = getattr(type(model.template), "head", None)
    if isinstance(named, str):
        try:
            model.template.get_submodule(named)
        except AttributeError:
            raise DlbenchError(f"the model's head = '{named}' names no submodule of it; "
                               "give the path of one (e.g. 'classifier.2')") from None
        return named
    linear = [path for path, m in model.template.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise DlbenchError("the model has no nn.Linear to take as its head; name one with a "
                           "class attribute head = 'path.to.layer'")
    return linear[-1]


def weight_units(model: nn.Module) -> list[tuple[str, ...]]:
    """A plugged model's layers for transfer, input first, its head last, each as the
    parameter-name prefixes it spans: each nn.Linear / nn.ConvNd outside the head with the
    layers of its own (normalisation) that follow it, then the head ('classifier.')."""
    top = _prefix(head(model))
    units: list[list[str]] = []
    for path, module in model.template.named_modules():
        prefix = _prefix(path)
        if prefix.startswith(top) or not (module._parameters or module._buffers):
            continue
        if isinstance(module, WEIGHT_LAYERS):
            units.append([prefix])
        elif units:  # batch norm after a weight layer goes with it
            units[-1].append(prefix)
    return [*map(tuple, units), (top,)]


def _prefix(path: str) -> str:
    """What the names of a submodule's parameters start with ('' for the module itself)."""
    return f"{path}." if path else ""
