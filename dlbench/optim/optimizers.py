"""Optimizers: a registry over torch.optim (plus exact Newton), and the one grammar to pick them.

The grammar, the same everywhere in the tool: top-level commas separate entries, commas inside
brackets separate an entry's parameters, tuples are written with '/':

    sgd[lr=0.95],momentum[lr=0.1,momentum=0.9],adam[lr=0.3,betas=0.9/0.999],lbfgs

An entry's learning rate comes from its own `lr=`, else from --lr, else the optimizer's default.
'sgd' and 'momentum' are the same class with different defaults (timm's OptimInfo idea).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from dlbench import grammar, plugins
from dlbench.errors import DlbenchError
from dlbench.grammar import format_value
from dlbench.optim import collection
from dlbench.registry import Registry

# constructor arguments that choose an implementation, not a hyperparameter
INTERNAL = frozenset({"params", "foreach", "fused", "differentiable", "capturable", "maximize"})
NEWTON_MAX_PARAMS = 1000  # the exact Hessian costs one backward pass per parameter


class Newton(torch.optim.Optimizer):
    """Exact Newton steps on all parameters jointly: x ← x − lr · H⁻¹ ∇f.

    H is the full Hessian by double backpropagation, so this is for 2-D functions and tiny
    models. A singular H is solved in the least-squares sense; an indefinite one is used as is,
    which is why Newton is drawn to saddle points.
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0):
        if lr <= 0 or damping < 0:
            raise ValueError(f"Newton needs lr > 0 and damping >= 0, got {lr}, {damping}")
        super().__init__(params, {"lr": lr, "damping": damping})
        self.hessian_passes = 0

    @torch.no_grad()
    def step(self, closure: Callable[..., torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        params = [p for group in self.param_groups for p in group["params"]]
        with torch.enable_grad():
            loss = closure(backward=False)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            g = torch.cat([x.reshape(-1) for x in grads])  # (n,)
            rows = [_flat(torch.autograd.grad(gi, params, retain_graph=True, allow_unused=True),
                          params) for gi in g]
        self.hessian_passes = len(rows)  # backward passes the last step's Hessian took
        group = self.param_groups[0]
        hessian = torch.stack(rows) + group["damping"] * torch.eye(len(g), dtype=g.dtype)
        # gelsd (SVD): the same answer on every run; the default gelsy is not deterministic
        # on a singular Hessian
        direction = torch.linalg.lstsq(hessian, g.detach().unsqueeze(1),
                                       driver="gelsd").solution.squeeze(1)
        offset = 0
        for p in params:
            p.sub_(group["lr"] * direction[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        return loss.detach()


def _flat(grads, params) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


@dataclass(frozen=True)
class OptimInfo:
    name: str
    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any] = field(default_factory=dict)  # over the class's own defaults
    # elementwise: each weight is updated from its own gradient history only, so stacked
    # members stay independent and exact. Not unless an entry says so: anything else (L-BFGS's
    # line search, Newton's Hessian, a per-tensor norm couple all weights) trains each member
    # alone, which is exact for any optimizer, only slower.
    elementwise: bool = False
    full_batch: bool = False  # takes a closure over the whole training set each step
    description: str = ""
    # the learning rate the tests train it with (tests/test_contract.py, tests/test_optim.py):
    # a few steps on a tiny model move its weights measurably without diverging; None: the
    # sweep refuses the entry until it declares one
    test_lr: float | None = None

    def signature_defaults(self) -> dict[str, Any]:
        """Every hyperparameter with its effective default (class default, then ours); one
        without a default (a plugged optimizer's) reads None: the user must give it."""
        params = inspect.signature(self.cls).parameters
        found = {k: None if p.default is inspect.Parameter.empty else p.default
                 for k, p in params.items() if k not in INTERNAL and p.kind in _NAMED}
        return {**found, **self.defaults}


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def is_optimizer(obj: Any) -> bool:
    """A torch.optim.Optimizer subclass, or a function whose first parameter is `params`."""
    if isinstance(obj, type):
        return issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
    if not inspect.isfunction(obj):
        return False
    first = next(iter(inspect.signature(obj).parameters), None)
    return first == "params"


KIND = plugins.Kind("optimizer", "--opt", is_optimizer,
                    "a torch.optim.Optimizer subclass or a function (params, "
                    "**hyperparameters) that returns one")


def plugged(reference: str) -> OptimInfo:
    """The entry of a plugged optimizer (plugins.py), named by its resolved reference; its
    defaults are its signature's, its declarations (plugins.FLAGS) its own."""
    return _plugged(reference, plugins.get(reference, KIND))


@functools.cache
def _plugged(reference: str, obj: Any) -> OptimInfo:
    return OptimInfo(reference, obj, **{f: plugins.flag(obj, f) for f in plugins.FLAGS},
                     description=plugins.summary(obj))


OPTIMIZERS: Registry[OptimInfo] = Registry("optimizer")
for _info in (
    # test_lr: plain SGD on standardized inputs takes 0.1 safely
    OptimInfo("sgd", torch.optim.SGD, {}, elementwise=True, test_lr=0.1,
              description="plain stochastic gradient descent"),
    # momentum 0.9 multiplies the effective step up to 10x: half SGD's rate stays stable
    OptimInfo("momentum", torch.optim.SGD, {"momentum": 0.9}, elementwise=True, test_lr=0.05,
              description="SGD with heavy-ball momentum 0.9"),
    OptimInfo("nesterov", torch.optim.SGD, {"momentum": 0.9, "nesterov": True},
              elementwise=True, test_lr=0.05, description="SGD with Nesterov momentum 0.9"),
    # AdaGrad's steps shrink as squared gradients add up: it starts as large as SGD's
    OptimInfo("adagrad", torch.optim.Adagrad, elementwise=True, test_lr=0.1,
              description="per-weight rates from the sum of squared gradients"),
    # normalised steps of about lr per weight from the first step: 0.01 keeps them small
    OptimInfo("rmsprop", torch.optim.RMSprop, elementwise=True, test_lr=0.01,
              description="per-weight rates from a running mean of squared gradients"),
    # Adam's steps are about lr per weight whatever the gradient's scale: 0.02 moves a tiny
    # model within a few steps
    OptimInfo("adam", torch.optim.Adam, elementwise=True, test_lr=0.02,
              description="momentum + RMSProp with bias correction; coupled L2 weight decay"),
    OptimInfo("adamw", torch.optim.AdamW, elementwise=True, test_lr=0.02,
              description="Adam with decoupled weight decay of the weights (never biases "
                          "or batch norm)"),
    # max_eval: torch derives max_iter*5//4 = 1, which leaves the line search no evaluation.
    # test_lr 1: the line search scales the step itself
    OptimInfo("lbfgs", torch.optim.LBFGS,
              {"max_iter": 1, "max_eval": 25, "line_search_fn": "strong_wolfe"},
              full_batch=True, test_lr=1.0,
              description="L-BFGS, full batch; one iteration per step, strong-Wolfe line search"),
    # the same on mini-batches: a step's closure (and its line search) sees only the batch, so
    # its curvature pairs come from different batches; alone in a stack, as any closure step
    OptimInfo("lbfgs-minibatch", torch.optim.LBFGS,
              {"max_iter": 1, "max_eval": 25, "line_search_fn": "strong_wolfe"}, test_lr=1.0,
              description="L-BFGS on mini-batches (--batch-size): each step's line search sees "
                          "one batch; noisy, the textbook's reason for full batches"),
    # test_lr 1: the full Newton step, exact on a quadratic
    OptimInfo("newton", Newton, {}, full_batch=True, test_lr=1.0,
              description=f"exact Newton (Hessian solve), full batch; 2-D functions and models "
                          f"of at most {NEWTON_MAX_PARAMS} parameters"),
):
    OPTIMIZERS.add(_info)
OPTIMIZERS.collections.append(collection.reference)  # after the entry points, built-ins first


@dataclass(frozen=True)
class OptimSpec:
    name: str  # registry name, or a plugged optimizer's resolved reference (plugins.py)
    lr: float  # learning rate
    params: tuple[tuple[str, Any], ...] = ()  # other hyperparameters set by the user, sorted

    @property
    def info(self) -> OptimInfo:
        if plugins.is_reference(self.name):
            return plugged(self.name)
        return OPTIMIZERS.get(self.name)

    @property
    def shown(self) -> str:
        """The name a row shows: a plugged file's without its directory ('sign.py:SignSGD')."""
        return plugins.short(self.name)

    @property
    def label(self) -> str:
        """The entry without its lr (which has a column of its own): 'adam[betas=0.9/0.99]'."""
        if not self.params:
            return self.shown
        return f"{self.shown}[{','.join(f'{k}={format_value(v)}' for k, v in self.params)}]"

    def __str__(self) -> str:
        body = ",".join(f"{k}={format_value(v)}" for k, v in (("lr", self.lr), *self.params))
        return f"{self.shown}[{body}]"

    def kwargs(self) -> dict[str, Any]:
        return {**self.info.defaults, **dict(self.params), "lr": self.lr}


def offered(where: str) -> list[OptimInfo]:
    """The optimizers a file or module defines, as `--opt where:Name` would read them."""
    resolved = plugins.split(plugins.resolve(f"{where}:_", "--from"))[0]
    module = plugins.load(resolved, "--from").module
    return [plugged(f"{resolved}:{name}") for name in plugins.offered(module, KIND)]


# --- the grammar (dlbench/grammar.py): name[key=value,...] entries, comma-separated ---------------

_HELP = "write e.g. 'sgd,momentum[lr=0.1],adam[lr=0.3,betas=0.9/0.999]'"


def parse_optimizers(text: str, lr: float | None = None,
                     weight_decay: float | None = None) -> list[OptimSpec]:
    """Entries of the grammar -> validated specs; --lr/--weight-decay fill what entries leave."""
    if lr is not None and not (lr > 0 and math.isfinite(lr)):
        raise DlbenchError(f"--lr must be a positive number, got {lr:g}")
    if weight_decay is not None and not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise DlbenchError(f"--weight-decay must be a finite number >= 0, got {weight_decay:g}")
    specs = [_parse_entry(entry, lr, weight_decay)
             for entry in grammar.split_entries(text, "--opt", _HELP)]
    if not specs:
        raise DlbenchError(f"--opt names no optimizer; {_HELP}")
    return specs


def entry_keys(text: str) -> list[set[str]]:
    """The parameters each entry sets itself: 'sgd,adam[lr=0.3]' -> [set(), {'lr'}]."""
    bodies = [grammar.read_entry(e, "--opt", _HELP)[1] or ""
              for e in grammar.split_entries(text, "--opt", _HELP)]
    return [{item.partition("=")[0].strip() for item in body.split(",") if item.strip()}
            for body in bodies]


def _parse_entry(entry: str, lr: float | None, weight_decay: float | None) -> OptimSpec:
    name, body = grammar.read_entry(entry, "--opt", _HELP)
    name = OPTIMIZERS.lookup(name)  # an installed entry point's or collection's name too
    info = plugged(plugins.resolve(name)) if plugins.is_reference(name) else _registered(name)
    shown = plugins.short(info.name)
    allowed = info.signature_defaults()
    params = grammar.read_params(body, "--opt", shown, allowed, _HELP)
    if weight_decay is not None and "weight_decay" not in params:
        if "weight_decay" not in allowed:
            raise DlbenchError(f"--weight-decay: {shown} has no weight decay; drop it")
        params["weight_decay"] = weight_decay
    if "lr" not in allowed:
        raise DlbenchError(f"--opt {shown} takes no 'lr'; dlbench sets every optimizer's "
                           "learning rate: give it an lr parameter")
    rate = params.pop("lr", lr if lr is not None else allowed["lr"])
    if rate is None:
        raise DlbenchError(f"--opt {shown} has no default lr; give {shown}[lr=...] or --lr")
    spec = OptimSpec(info.name, float(rate), tuple(sorted(params.items())))
    check_spec(spec)
    return spec


def _registered(name: str) -> OptimInfo:
    """A registered optimizer; an unknown name's error names the collection's too."""
    try:
        return OPTIMIZERS.get(name)
    except DlbenchError as e:
        if not collection.installed():
            raise
        reachable = [n for n in collection.names() if n not in OPTIMIZERS]
        raise DlbenchError(f"{e}, or one of pytorch-optimizer's {len(reachable)} "
                           "names (`dlbench optimizers` lists them)") from None


def check_spec(spec: OptimSpec) -> None:
    """Let torch's own constructor judge the values (it says what is wrong), on a dummy."""
    if not (spec.lr > 0 and math.isfinite(spec.lr)):
        raise DlbenchError(f"optimizer {spec.shown}: lr must be positive (set by --lr or "
                           f"{spec.shown}[lr=...]), got {spec.lr:g}")
    _without_dynamo()
    try:
        built = spec.info.cls([torch.zeros(1, requires_grad=True)], **spec.kwargs())
    except (TypeError, ValueError, IndexError, RuntimeError) as e:
        raise DlbenchError(f"optimizer {spec}: {e}") from None
    except Exception as e:  # the user's own code may raise anything: say what, where
        if not plugins.is_reference(spec.name):
            raise
        raise DlbenchError(f"optimizer {spec}: {type(e).__name__}: {e}") from None
    if plugins.is_reference(spec.name) and not isinstance(built, torch.optim.Optimizer):
        raise DlbenchError(f"optimizer {spec}: returned a {type(built).__name__}, not a "
                           "torch.optim.Optimizer; return one")


def build_optimizer(spec: OptimSpec, params: Iterable[torch.nn.Parameter]
                    ) -> torch.optim.Optimizer:
    _without_dynamo()
    kwargs = spec.kwargs()
    if "fused" in inspect.signature(spec.info.cls).parameters and \
            not plugins.is_plugged(spec.name):  # a user's class: its own default implementation
        kwargs["fused"] = True  # one kernel per step instead of one per tensor
    return spec.info.cls(params, **kwargs)


# --- torch.optim without torch._dynamo ---------------------------------------------------------
# torch.optim marks some Optimizer methods as not compilable with torch._disable_dynamo, whose
# first call imports torch._dynamo, and wraps every step in a grad-mode switch that imports it
# too (for graph breaks). dlbench never compiles, and the import costs about 1.2 s of a
# process's start-up and 0.35 s of its exit. Both are skipped here; where torch's internals are
# not as expected, the public methods are used as they are (slower to start, same numbers).


@functools.cache
def _without_dynamo() -> None:
    """Mark the _disable_dynamo-wrapped Optimizer methods as already disabled: the wrapper then
    calls the method itself instead of importing torch._dynamo to disable it."""
    for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict"):
        method = inspect.unwrap(getattr(torch.optim.Optimizer, name))
        if not hasattr(method, "__dynamo_disable"):
            setattr(method, "__dynamo_disable", method)


def step(opt: torch.optim.Optimizer, closure: Callable[[], torch.Tensor] | None = None):
    """opt.step(closure) as torch.optim's wrappers would run it — without gradient tracking,
    telling a learning-rate scheduler that the optimizer stepped — but without them (they import
    torch._dynamo). Hooks or a differentiable optimizer need the wrappers: then opt.step."""
    bare = _bare_step(type(opt))
    if bare is None or opt.defaults.get("differentiable") or \
            getattr(opt, "_optimizer_step_pre_hooks", None) or \
            getattr(opt, "_optimizer_step_post_hooks", None):
        return opt.step(closure)
    with torch.no_grad():
        loss = bare(opt, closure)
    opt._opt_called = True  # what a scheduler's "step before optimizer.step()" check reads
    return loss


def _bare_step(cls: type) -> Callable | None:
    bare = inspect.unwrap(cls.step)
    return None if bare is cls.step else bare
