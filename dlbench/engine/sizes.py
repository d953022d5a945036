"""How big a run is, estimated before anything trains: memory and work.

A run that cannot fit in memory, or would take hours on the machine at hand, is refused with
the estimate in the message and a flag to go ahead anyway (--allow-large): finding out after
minutes of training (an allocator traceback, or the kernel's OOM killer) loses the user's time.
The estimates are deliberately rough — within a small factor — and err on the large side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from dlbench.data.datasets import Dataset
from dlbench.engine.inference import EVAL_FLOATS
from dlbench.engine.loop import GATHER_FLOATS
from dlbench.engine.members import TrainConfig, model_shape, rows_per_step, steps_per_epoch
from dlbench.engine.stepper import trains_alone
from dlbench.errors import DlbenchError
from dlbench.nn import plugged
from dlbench.nn.models import DropConnect, ModelSpec, Shape, StackedConv, StackedLinear, build_model

FLOAT = 4  # bytes: training is float32
ROW_BYTES = 1500  # a tidy result row as a Python dict before it becomes a DataFrame
CURVE_ROWS_PER_EPOCH = 8  # split × metric rows a member adds to curves.csv per epoch
STATE_COPIES = 4  # weights, gradients and up to two optimizer states (Adam's moments)
MEMORY_SHARE = 0.8  # of the memory available now, the most a run may plan to use
MAX_HOURS = 2.0  # refused beyond this many estimated hours
REAL_FORWARD_PARAMS = 2**22  # models up to this size (16 MB) measure a real one-row forward
# Throughput assumed for the time estimate: what small stacks reach on a 2-core laptop CPU
# (measured: ~1e10 useful FLOP/s) and a per-step cost of Python and optimizer overhead.
CPU_FLOPS, CUDA_FLOPS = 1e10, 1e12
STEP_SECONDS = 50e-6  # per optimizer group and step
MEMBER_EPOCH_SECONDS = 30e-6  # per member and epoch: its batch order, curves and rows
MEMBER_SECONDS = 0.02  # per member: scoring its final predictions (scikit-learn metrics)
# Paths on a 2-D function (optimize --function), measured on a 2-core CPU: a step costs
# ~0.25 ms with an elementwise optimizer, ~0.7 ms (L-BFGS's line search) and ~1.3 ms (Newton's
# Hessian) with a closure one; each step keeps a row of the path (its list, array and
# DataFrame rows: ~400 bytes).
PATH_STEP_SECONDS, CLOSURE_PATH_STEP_SECONDS = 3e-4, 1.5e-3
PATH_ROW_BYTES = 500


@dataclass(frozen=True)
class Job:
    """Models of one spec trained together: every config × `members` members."""

    spec: ModelSpec
    configs: tuple[TrainConfig, ...]
    members: int  # members per config
    n_train: int  # training rows per member (the largest)
    n_eval: int  # rows evaluated per member after each epoch, training rows included


@dataclass(frozen=True)
class Size:
    models: int
    peak_bytes: float  # the largest stack while it trains, plus every result kept
    flops: float
    group_steps: int  # optimizer steps summed over every config group
    hours: float

    def describe(self) -> str:
        return (f"{self.models:,} models, about {_bytes(self.peak_bytes)} of memory and "
                f"{self.flops:.1e} floating-point operations (~{_duration(self.hours)} here)")


def estimate(dataset: Dataset, jobs: list[Job], device: torch.device) -> Size:
    shape = model_shape(dataset)  # missing-value indicators widen the input
    peak = results = flops = 0.0
    group_steps = models = member_epochs = 0
    for job in jobs:
        params, macs, activations = _per_model(job.spec, shape)
        stacked = sum(not trains_alone(c.optimizer) for c in job.configs)
        width = stacked * job.members or 1  # members training at once (full batch, closure: alone)
        batch = max(rows_per_step(c, job.n_train) for c in job.configs)
        chunk = max(64, EVAL_FLOATS // (width * max(dataset.n_features, 1)))  # as the trainer
        eval_rows = width * min(job.n_eval, chunk)
        peak = max(peak, width * params * FLOAT * STATE_COPIES
                   + width * batch * activations * FLOAT * 3  # forward values and gradients
                   + eval_rows * activations * FLOAT + GATHER_FLOATS * FLOAT)
        for c in job.configs:
            size = rows_per_step(c, job.n_train)
            steps = steps_per_epoch(job.n_train, size) * c.epochs
            evals = steps * (3 if c.optimizer.info.full_batch else 1)  # a line search: ~3
            flops += job.members * (6 * macs * evals * size + 2 * macs * c.epochs * job.n_eval)
            group_steps += steps * (1 if c.optimizer.info.elementwise else job.members)
            member_epochs += job.members * c.epochs
            results += job.members * (params * FLOAT + job.n_eval * shape.n_outputs * 16
                                      + (c.epochs + 1) * CURVE_ROWS_PER_EPOCH * ROW_BYTES)
            models += job.members
    rate = CUDA_FLOPS if device.type == "cuda" else CPU_FLOPS
    hours = (flops / rate + group_steps * STEP_SECONDS
             + member_epochs * MEMBER_EPOCH_SECONDS + models * MEMBER_SECONDS) / 3600
    data = dataset.n_samples * dataset.n_features * FLOAT
    return Size(models, data + peak + results, flops, group_steps, hours)


def check(dataset: Dataset, jobs: list[Job], device: torch.device, allow_large: bool) -> Size:
    """Refuse a run that cannot fit or would take hours, unless --allow-large."""
    size = estimate(dataset, jobs, device)
    if not allow_large:
        _refuse_large(size.peak_bytes, size.hours, size.describe(), device,
                      "use fewer seeds, cells, epochs or smaller models")
    return size


def check_count(models: int, epochs: int, allow_large: bool) -> None:
    """Refuse, before any data are loaded or generated, a run whose count of models alone
    exceeds the hours allowed: the per-member part of `estimate` (batch orders, curves, rows,
    scoring), a floor of the whole estimate that needs no data."""
    hours = count_hours(models, epochs)
    if hours > MAX_HOURS and not allow_large:
        raise DlbenchError(f"this run trains {models:,} models: at least ~{_duration(hours)} "
                           "here for their bookkeeping alone, far beyond a quick measurement; "
                           "use fewer seeds, cells or ensemble members, or pass --allow-large "
                           "to run it anyway")


def count_hours(models: int, epochs: int) -> float:
    """The hours of `estimate` that depend on the count of models alone."""
    return models * (MEMBER_SECONDS + epochs * MEMBER_EPOCH_SECONDS) / 3600


def check_paths(optimizers: list, steps: int, allow_large: bool) -> float:
    """Paths on a 2-D function (`optimizers`: OptimSpecs, `steps` each): refused like a
    network run when they cannot fit or would take hours -> the estimated hours. A path that
    diverges stops early: the estimate is its longest."""
    closure = sum(o.info.full_batch for o in optimizers)
    seconds = steps * ((len(optimizers) - closure) * PATH_STEP_SECONDS
                       + closure * CLOSURE_PATH_STEP_SECONDS)
    peak, hours = (steps + 1) * len(optimizers) * PATH_ROW_BYTES, seconds / 3600
    if not allow_large:
        paths = f"{len(optimizers)} path{'s' if len(optimizers) > 1 else ''}"
        _refuse_large(peak, hours, f"{paths} of {steps:,} steps, about "
                      f"{_bytes(peak)} of memory (~{_duration(hours)} here)",
                      torch.device("cpu"), "use fewer --steps or optimizers")
    return hours


def _refuse_large(peak_bytes: float, hours: float, what: str, device: torch.device,
                  fewer: str) -> None:
    available = available_memory(device)
    if peak_bytes > MEMORY_SHARE * available:
        raise DlbenchError(f"this run needs {what}, more than the {_bytes(available)} "
                           f"available; {fewer}, or pass --allow-large to try anyway")
    if hours > MAX_HOURS:
        raise DlbenchError(f"this run is {what}: far beyond a quick measurement; {fewer}, or "
                           "pass --allow-large to run it anyway")


def available_memory(device: torch.device) -> float:
    """Bytes this process can use now: the GPU's free memory, or the host's available RAM."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return float(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _per_model(spec: ModelSpec, shape: Shape) -> tuple[int, int, int]:
    """(parameters, multiply-adds per row, activation values per row) of one model, measured
    on a one-row forward pass of a one-member stack. Its parameters are counted in shapes only
    (the meta device), so a huge model is refused unallocated; a model that fits in
    REAL_FORWARD_PARAMS runs its pass on the CPU (on the meta device, activations go through
    torch's Python decompositions, which import torch._dynamo: a second of start-up). A plugged
    model's pass is its module's own, on the CPU."""
    if spec.plugged:
        return plugged.cost_per_row(spec, shape)
    with torch.device("meta"):
        model = build_model(spec, shape, [0])
    n_params = sum(p.numel() for p in model.parameters())
    device = "cpu" if n_params <= REAL_FORWARD_PARAMS else "meta"
    if device == "cpu":
        model = build_model(spec, shape, [0])
    macs, values = [0], [0]

    def hook(module, inputs, out):
        values[0] += out[0, 0].numel()
        if isinstance(module, StackedLinear):
            macs[0] += module.fan_in * module.fan_out
        elif isinstance(module, StackedConv):
            macs[0] += out[0, 0].numel() * module.fan_in

    # the layers a row flows through: leaves, not containers (a residual block would count its
    # body twice), and not DropConnect (its output is a weight matrix, not row values)
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, StackedLinear | StackedConv)
               or not (list(m.children()) or isinstance(m, DropConnect))]
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 1, shape.n_inputs, device=device))
    for h in handles:
        h.remove()
    return n_params, macs[0], values[0]


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def _duration(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    return f"{hours:.3g} h" if hours < 48 else f"{hours / 24:.3g} days"

