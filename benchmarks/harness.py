"""The side-by-side timing harness shared by the benchmarks in this folder.

`bench_cv.py` and `bench_optimize.py` each time a dlbench runner ("dlbench") against a plain
PyTorch loop ("plain") doing the same job. What they share lives here: the thresholds, the
warm-up, the timing, the alternating loop, the medians and best runs, the load-average caution,
the verdict, the final table and the JSON figures. Each script keeps its own configuration, its
two sides and its specific checks.

The scripts run as `python benchmarks/bench_X.py`, which puts this folder first on `sys.path`,
so they import this module as `import harness`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import torch
import torch.nn.functional as F
import typer
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

REQUIRED_SPEEDUP = 5.0  # plain seconds / dlbench seconds, at least
ACCURACY_TOLERANCE = 1.0  # |mean val accuracy difference| in percentage points, at most

SIDES = ("plain", "dlbench")  # the timed sides, in the order of the first run and the tables

T = TypeVar("T")

# The options every benchmark takes (its own default for --epochs): `repeats: harness.Repeats = 3`.
Repeats = Annotated[int, typer.Option(help="Timed runs of each side (median reported).")]
Epochs = Annotated[int, typer.Option(help="Training epochs per model.")]
Threads = Annotated[int, typer.Option(
    help="torch threads, the same for both sides (default 1: dlbench's own default).")]
JsonPath = Annotated[Path | None, typer.Option(
    "--json", help="Also write the figures to this JSON file.")]


def start(repeats: int, epochs: int, threads: int = 1) -> Console:
    """Check the common options, set torch's threads for both sides -> the console a benchmark
    prints to.

    Rejects --repeats, --epochs or --threads below 1 (typer reports it as a usage error, exit
    code 2).
    """
    if repeats < 1 or epochs < 1 or threads < 1:
        raise typer.BadParameter("--repeats, --epochs and --threads must be at least 1")
    torch.set_num_threads(threads)
    return Console()


def load_average() -> float:
    """The 1-minute load average of the machine."""
    return os.getloadavg()[0]


def machine_line(load: float, repeats: int) -> str:
    """The end of a benchmark's opening line: torch, threads, CPUs, load and runs per side."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
            f"CPUs, load {load:.2f}; {repeats} runs per side")


def warm_up() -> None:
    """Pay torch's one-off per-process costs, so that neither timed side is charged them.

    A plain torch.optim step imports torch._dynamo (~1.2 s; dlbench's own steps do not); a
    tiny forward/backward/step takes care of the rest.
    """
    w = torch.zeros(4, 2, requires_grad=True)
    torch.optim.Adam([w], lr=1e-3)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = F.cross_entropy(model(torch.randn(3, 4)), torch.tensor([0, 1, 0]))
    loss.backward()
    opt.step()


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Call `fn(*args)` -> (wall-clock seconds, its result)."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def alternate(
    sides: Mapping[str, Callable[..., T]],
    repeats: int,
    print: Callable[[str], Any],
    *args: Any,
    width: int = 6,
    score: Callable[[T], float] = float,
) -> tuple[dict[str, list[float]], dict[str, list[T]]]:
    """Time each side `repeats` times on `args`, alternating which side goes first.

    Run i (from 0) takes the sides in their given order when i is even, reversed when odd.
    After each timed call, `print` gets the line "  run i/n   side: seconds s  val accuracy a",
    with the seconds `width` characters wide and `a = score(result)`.
    Returns (seconds per side, results per side), each a list in run order.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, list[T]] = {name: [] for name in sides}
    for i in range(repeats):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for name in order:
            seconds, result = timed(sides[name], *args)
            times[name].append(seconds)
            results[name].append(result)
            print(f"  run {i + 1}/{repeats} {name:>7}: {seconds:{width}.3f} s  "
                  f"val accuracy {score(result):.4f}")
    return times, results


def table(title: str, *columns: str) -> Table:
    """A rich table whose first column names the row and whose other columns are figures."""
    made = Table(title=title)
    made.add_column(columns[0])
    for column in columns[1:]:
        made.add_column(column, justify="right")
    return made


def fit_and_score(
    model: nn.Module, opt: torch.optim.Optimizer, loader: DataLoader, epochs: int,
    x_val: torch.Tensor, y_val: torch.Tensor,
) -> float:
    """The plain side's training of one classifier: `epochs` passes of cross-entropy steps over
    `loader`, then the accuracy of `model` on (x_val, y_val)."""
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(x_val).argmax(1) == y_val).float().mean().item()


def verdict(ratio: float, diff_points: float) -> tuple[bool, str]:
    """PASS when dlbench is at least REQUIRED_SPEEDUP× faster and the mean accuracies are within
    ACCURACY_TOLERANCE points -> (passed, the verdict line)."""
    required = f"(required: ≥ {REQUIRED_SPEEDUP:g}× within {ACCURACY_TOLERANCE:g} point)"
    reasons = []
    if ratio < REQUIRED_SPEEDUP:
        reasons.append(f"dlbench is only {ratio:.1f}× faster")
    if not abs(diff_points) <= ACCURACY_TOLERANCE:
        reasons.append(f"mean accuracy differs by {abs(diff_points):.2f} points")
    if reasons:
        return False, f"FAIL: {'; '.join(reasons)} {required}"
    return True, (f"PASS: dlbench is {ratio:.1f}× faster at mean accuracy within "
                  f"{abs(diff_points):.2f} points {required}")


@dataclass(frozen=True)
class Summary:
    """The figures of a finished side-by-side run (sides keyed "plain" and "dlbench")."""

    times: dict[str, list[float]]  # seconds of every run
    median: dict[str, float]
    best: dict[str, float]  # fastest run
    ratio: float  # of medians, plain / dlbench
    best_ratio: float  # of best runs, plain / dlbench
    mean_acc: dict[str, float]  # mean validation accuracy
    diff_points: float  # dlbench − plain mean accuracy, in percentage points
    load: tuple[float, float]  # load average before and after the timed runs
    passed: bool
    line: str  # the verdict


def summarise(
    times: dict[str, list[float]], mean_acc: dict[str, float], load: tuple[float, float],
) -> Summary:
    """Medians, best runs, their plain / dlbench ratios, the accuracy difference and the verdict."""
    median = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    ratio = median["plain"] / median["dlbench"]
    diff_points = 100 * (mean_acc["dlbench"] - mean_acc["plain"])
    passed, line = verdict(ratio, diff_points)
    return Summary(times, median, best, ratio, best["plain"] / best["dlbench"], mean_acc,
                   diff_points, load, passed, line)


def summary_table(title: str, s: Summary) -> Table:
    """One row per side (runs, median, best, mean val accuracy), then the ratios and the diff."""
    table = Table(title=title)
    table.add_column("side")
    table.add_column("runs (s)")
    table.add_column("median (s)", justify="right")
    table.add_column("best (s)", justify="right")
    table.add_column("mean val accuracy", justify="right")
    for name in SIDES:
        table.add_row(name, ", ".join(f"{t:.3f}" for t in s.times[name]), f"{s.median[name]:.3f}",
                      f"{s.best[name]:.3f}", f"{s.mean_acc[name]:.4f}")
    table.add_row("ratio / diff", "plain ÷ dlbench", f"{s.ratio:.1f}×", f"{s.best_ratio:.1f}×",
                  f"{s.diff_points:+.2f} points")
    return table


def caution(s: Summary) -> str | None:
    """A warning when the machine was busy (load average above the CPU count, before or after)
    or the medians and the best runs disagree on the speedup verdict; None otherwise."""
    before, after = s.load
    busy = max(before, after) > (os.cpu_count() or 1)
    if busy or (s.best_ratio < REQUIRED_SPEEDUP) != (s.ratio < REQUIRED_SPEEDUP):
        return (f"caution: load average {before:.2f} → {after:.2f} on {os.cpu_count()} CPUs; "
                f"the ratio of medians is {s.ratio:.1f}×, of best runs {s.best_ratio:.1f}× — "
                "rerun on a quiet machine before trusting the verdict")
    return None


def report(console: Console, title: str, s: Summary) -> None:
    """Print the summary table, the caution if any, and the verdict (green PASS, red FAIL)."""
    console.print(summary_table(title, s))
    warning = caution(s)
    if warning is not None:
        console.print(warning, style="yellow", highlight=False)
    console.print(s.line, style="bold green" if s.passed else "bold red", highlight=False)


def write_json(
    path: Path, s: Summary, *, command: str, repeats: int, epochs: int,
    setup: Mapping[str, Any] | None = None, accuracy: Mapping[str, Any] | None = None,
) -> None:
    """Write the figures of `s` to `path` as JSON: the command and the machine, `setup`, the
    times, `accuracy` (a script's own accuracy breakdown), the mean accuracies and the verdict."""
    figures: dict[str, Any] = {
        "command": command,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": repeats,
        "epochs": epochs, "cpus": os.cpu_count(), "load_average": list(s.load),
        **(setup or {}),
        "seconds": s.times, "median_seconds": s.median, "ratio": s.ratio,
        "best_seconds": s.best, "best_ratio": s.best_ratio,
        **(accuracy or {}),
        "mean_val_accuracy": s.mean_acc, "accuracy_diff_points": s.diff_points,
        "required_speedup": REQUIRED_SPEEDUP, "accuracy_tolerance_points": ACCURACY_TOLERANCE,
        "passed": s.passed, "verdict": s.line,
    }
    path.write_text(json.dumps(figures, indent=2) + "\n")
