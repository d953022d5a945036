"""Every PNG of dlbench, drawn from tidy frames only (what the CSVs hold, nothing else).

A `cell` column (a label such as "mlp · adam lr=0.001") names a configuration everywhere.
Each function saves one figure to `path` as PNG whatever the path's suffix (results are written
to a temporary name first and renamed), and closes it.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dlbench.optim.functions import FunctionInfo, evaluate_grid  # noqa: E402

DPI = 120
GRID = 300  # contour grid points per axis
MAX_MARKERS = 60  # iterate markers per path; a longer path is marked every k-th step
# Where an activation's values live; an activation missing here (relu) uses the data's range.
ACTIVATION_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
COLORS = plt.get_cmap("tab10").colors
# A line's look beyond its colour (see _style): 10 colours × 4 line styles × 7 markers, 7 and
# 10 coprime, so that no two of 70 lines share a colour and marker, nor of 280 all three.
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LEGEND_FONT = 9  # points
MAX_LEGEND_COLUMNS = 4


def _save(fig: plt.Figure, path: str | Path) -> None:
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)


def _color(i: int):
    return COLORS[i % len(COLORS)]


def _style(i: int) -> dict:
    """The i-th line's colour, line style and marker. Colour and marker both change with every
    line (10 colours, 7 markers: no (colour, marker) pair repeats in the first 70 lines), the
    line style with every 10: no two of the first 10 · 4 · 7 = 280 lines look alike."""
    n = len(COLORS)
    return {"color": COLORS[i % n], "ls": LINESTYLES[i // n % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)]}


def _finite(values: pd.Series) -> pd.Series:
    """As floats, NaN for inf and for anything that is not a number (an empty frame read
    back from CSV has object columns, which np.isfinite rejects)."""
    values = pd.to_numeric(values, errors="coerce").astype(np.float64)
    return values.where(np.isfinite(values))


def _legend_columns(labels: list[str], width: float) -> int:
    """Up to 3 legend columns, as many as fit `width` inches of figure at 9 pt."""
    column = 0.075 * (max(map(len, labels), default=0) + 6)  # inches: the label + its marker
    return max(1, min(3, len(labels), int(0.95 * width / column)))


# --- optimizer paths on a 2-D function --------------------------------------------------------


def trajectories_plot(path: str | Path, info: FunctionInfo, trajectories: pd.DataFrame) -> None:
    """Contours of the function with one path per cell (columns cell, step, x, y, f, status)."""
    fig, ax = plt.subplots(layout="constrained")
    _draw_contours(fig, ax, info)
    handles = [_draw_path(ax, rows.sort_values("step"), str(cell), _color(i), info.window)
               for i, (cell, rows) in enumerate(trajectories.groupby("cell", sort=False))]
    first = trajectories[trajectories["step"] == 0]
    starts = set(zip(first["x"], first["y"], strict=True)) or {info.start}
    for x, y in starts:
        ax.plot(x, y, "o", ms=9, mfc="white", mec="black", mew=1.5, zorder=6)
    handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="white", mec="black",
                          mew=1.5, label="start"))
    if info.minima:
        mx, my = zip(*info.minima, strict=True)
        ax.plot(mx, my, "*", ms=16, color="gold", mec="black", zorder=7)
        handles.append(Line2D([], [], ls="", marker="*", ms=14, color="gold", mec="black",
                              label="global minima" if len(info.minima) > 1 else "global minimum"))
    xmin, xmax, ymin, ymax = info.window
    ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax), xlabel="x", ylabel="y", aspect="equal")
    fig.suptitle(f"{info.name}: optimizer paths\n{info.description}", fontsize=11)
    labels = [h.get_label() for h in handles]
    width, height_of = _trajectory_size(info.window)
    ncols = _legend_columns(labels, width)
    fig.set_size_inches(width, height_of(math.ceil(len(labels) / ncols)))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=9,
               frameon=False)
    _save(fig, path)


def _trajectory_size(window):
    """Figure width (inches) that fits an equal-aspect axes of the window and its colorbar,
    and the height as a function of the legend's rows."""
    ratio = (window[1] - window[0]) / (window[3] - window[2])
    width = float(np.clip(5.5 * ratio, 4.5, 11.0))
    return width + 2.2, lambda legend_rows: width / ratio + 1.1 + 0.25 * legend_rows


def _draw_contours(fig: plt.Figure, ax: plt.Axes, info: FunctionInfo) -> None:
    xmin, xmax, ymin, ymax = info.window
    xs, ys = np.linspace(xmin, xmax, GRID), np.linspace(ymin, ymax, GRID)
    z = evaluate_grid(info, xs, ys)
    if info.log_levels and math.isfinite(info.f_min):
        # Shifted by f_min so the minimum sits at the bottom of a positive log scale; the
        # floor keeps the grid point that lands exactly on a minimum from being log(0).
        z = z - info.f_min
        top = float(z.max())
        floor = max(float(z[z > 0].min()), top * 1e-7)
        z = np.clip(z, floor, top)
        quarters = np.arange(math.floor(4 * math.log10(floor)), math.ceil(4 * math.log10(top)) + 1)
        levels, norm, label = 10.0 ** (quarters / 4), LogNorm(), "f(x, y) − f_min (log scale)"
    else:
        levels = ticker.MaxNLocator(nbins=24).tick_values(z.min(), z.max())
        norm, label = None, "f(x, y)"
    filled = ax.contourf(xs, ys, z, levels=levels, norm=norm, cmap="viridis", alpha=0.6)
    # Every other level as a thin line: the shape of the valley without clutter.
    ax.contour(xs, ys, z, levels=levels[::2], colors="black", linewidths=0.3, alpha=0.3)
    bar = fig.colorbar(filled, ax=ax, label=label, shrink=0.9)
    if norm is not None:  # ticks on whole decades, not on the quarter-decade levels
        bar.set_ticks([v for v in levels if float(np.log10(v)).is_integer()])
        bar.ax.yaxis.set_major_formatter(ticker.LogFormatterSciNotation())


def _draw_path(ax: plt.Axes, rows: pd.DataFrame, cell: str, color, window) -> Line2D:
    """One path: its segments cut to the window, iterate markers, the last point ringed.

    A segment with both ends outside the window (a diverging path swinging across it) is
    drawn faint, so the iterates that are in view stand out.
    """
    points = rows[["x", "y"]].to_numpy(dtype=np.float64)
    inside = _inside(points, window)
    through = ~inside[:-1] & ~inside[1:]
    ax.plot(*_clipped_segments(points, window, ~through), "-", color=color, lw=1.6, zorder=3)
    ax.plot(*_clipped_segments(points, window, through), ":", color=color, lw=1.0,
            alpha=0.6, zorder=3)
    every = max(1, math.ceil(len(points) / MAX_MARKERS))
    marked = points[::every][inside[::every]]
    ax.plot(marked[:, 0], marked[:, 1], "o", ms=3, color=color, zorder=4)
    if inside[-1]:
        ax.plot(*points[-1], "o", ms=7, color=color, mec="black", zorder=5)
    status = rows["status"].iloc[-1] if "status" in rows else "ok"
    label = cell if status == "ok" else f"{cell} ({status})"
    if not inside.all():
        label += f", leaves the plot at step {int(rows['step'].iloc[int(np.argmin(inside))])}"
    return Line2D([], [], color=color, lw=1.6, marker="o", ms=3, label=label)


def _inside(points: np.ndarray, window) -> np.ndarray:
    """(n, 2) points -> (n,) whether each lies in the window (NaN and inf do not)."""
    xmin, xmax, ymin, ymax = window
    x, y = points[:, 0], points[:, 1]
    return (xmin <= x) & (x <= xmax) & (ymin <= y) & (y <= ymax)


def _clipped_segments(points: np.ndarray, window, keep: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The kept segments of a path cut to the window (Liang–Barsky), as x, y with NaN breaks.

    A diverged path reaches 1e300 or inf; cutting each segment where it crosses the window
    keeps its true direction without handing matplotlib coordinates it cannot transform.
    """
    p0, p1 = points[:-1], points[1:]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d = p1 - p0
        t0, t1 = np.zeros(len(d)), np.ones(len(d))
        visible = keep & np.isfinite(d).all(axis=1)
        lows, highs = (window[0], window[2]), (window[1], window[3])
        for k in range(2):
            for p, q in ((-d[:, k], p0[:, k] - lows[k]), (d[:, k], highs[k] - p0[:, k])):
                r = q / p  # the t at which this segment crosses this edge
                visible &= (p != 0) | (q >= 0)  # parallel to the edge and outside it
                t0 = np.where(p < 0, np.maximum(t0, r), t0)
                t1 = np.where(p > 0, np.minimum(t1, r), t1)
        visible &= t0 <= t1
        a, b = p0 + t0[:, None] * d, p0 + t1[:, None] * d
    gap = np.full((len(d), 2), np.nan)
    pieces = np.stack([a, b, gap], axis=1)[visible].reshape(-1, 2)  # (3 * visible, 2)
    return pieces[:, 0], pieces[:, 1]


# --- learning curves --------------------------------------------------------------------------


CURVES_SIZE = (12.0, 4.8)  # inches: the two panels with their titles, before the legend
TRAIN_TITLE = "training loss (eval mode, ≤1024 training rows, after each epoch)"


def curves_plot(path: str | Path, curves: pd.DataFrame, title: str) -> None:
    """Training loss and validation accuracy (or loss) by epoch: mean over seeds, min–max band.

    curves: columns cell, seed, epoch, split, metric, value. The training loss is split
    "train", metric "loss": measured in eval mode like validation (the train-mode
    "running_loss" of the epoch's minibatches is not drawn). Non-finite values (a diverged
    seed) are left out of the mean and the band; the legend says how many seeds diverged.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=CURVES_SIZE, layout="constrained")
    curves = curves.assign(value=_finite(curves["value"]))
    styles = {cell: _style(i) for i, cell in enumerate(dict.fromkeys(curves["cell"]))}
    averaged = _averaged(curves.groupby("cell")["seed"].nunique())
    train = _select(curves, "train", "loss")
    _draw_mean_band(left, train, styles)
    _log_scale(left, train["value"])
    left.set(title=TRAIN_TITLE, xlabel="epoch", ylabel=f"loss ({averaged})")
    metric = "accuracy" if len(_select(curves, "val", "accuracy")) else "loss"
    val = _select(curves, "val", metric)
    _draw_mean_band(right, val, styles)
    if metric == "loss":
        _log_scale(right, val["value"])
    right.set(title=f"validation {metric}", xlabel="epoch", ylabel=f"{metric} ({averaged})")
    handles = [Line2D([], [], lw=1.8, ms=4, label=_diverged_note(cell, train), **style)
               for cell, style in styles.items()]
    if averaged != "one run":  # one seed has no band
        handles.append(plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.25,
                                     label="band: min–max over seeds"))
    fig.suptitle(title)
    _legend_below(fig, handles)
    _save(fig, path)


def _averaged(seeds: pd.Series) -> str:
    """What a plotted value is, given how many seeds are behind each: one run, or a mean."""
    return "one run" if len(seeds) and (seeds <= 1).all() else "mean over seeds"


def _legend_below(fig: plt.Figure, handles: list) -> None:
    """A legend below every panel, spanning the figure; the figure grows by its height.

    As many columns (up to MAX_LEGEND_COLUMNS) as fit the figure's width, measured with
    the renderer rather than guessed from label lengths; a single column wider than the
    figure widens it. Constrained layout then keeps the panels clear of it.
    """
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    for ncols in range(min(MAX_LEGEND_COLUMNS, len(handles)), 0, -1):
        # Built afresh for each try: set_ncols does not re-lay out a legend already made.
        legend = fig.legend(handles=handles, loc="outside lower center", frameon=False,
                            fontsize=LEGEND_FONT, handlelength=3.0, ncols=ncols)
        box = legend.get_window_extent(renderer)
        if box.width <= 0.95 * width * fig.dpi or ncols == 1:
            break
        legend.remove()
    pad = 0.15  # inches between the panels' tick labels and the legend's first row
    fig.set_size_inches(max(width, 1.05 * box.width / fig.dpi),
                        height + box.height / fig.dpi + pad)


def _select(curves: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    return curves[(curves["split"] == split) & (curves["metric"] == metric)]


def _draw_mean_band(ax: plt.Axes, rows: pd.DataFrame, styles: dict[str, dict]) -> None:
    if rows["value"].notna().sum() == 0:
        _no_data(ax, "no values recorded" if rows.empty else "no finite values (diverged)")
        return
    stats = rows.groupby(["cell", "epoch"], sort=False)["value"].agg(["mean", "min", "max"])
    band_alpha = 0.2 if len(styles) <= len(COLORS) else 0.1  # many bands stack up
    for cell, style in styles.items():
        if cell not in stats.index.get_level_values("cell"):
            continue
        line = stats.loc[cell].sort_index()
        # A short run shows every epoch; a long one keeps a few markers, which tell apart
        # cells beyond the first 40 (their marker is their only difference).
        every = 1 if len(line) <= 30 else math.ceil(len(line) / 12)
        ax.plot(line.index, line["mean"], lw=1.8, ms=4, markevery=every, label=cell, **style)
        ax.fill_between(line.index, line["min"], line["max"], color=style["color"],
                        alpha=band_alpha, lw=0)
    ax.grid(alpha=0.3)


def _diverged_note(cell: str, train: pd.DataFrame) -> str:
    """The cell's label, with how many of its seeds diverged (a non-finite training loss)."""
    per_seed = train[train["cell"] == cell].groupby("seed")["value"].apply(
        lambda v: v.isna().any())
    bad = int(per_seed.sum())
    return cell if bad == 0 else f"{cell} ({bad} of {len(per_seed)} seeds diverged)"


def _log_scale(ax: plt.Axes, values: Iterable[float]) -> None:
    """Log y, or symlog when a finite value is ≤ 0 (a perceptron loss reaches exactly 0)."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return
    positive = finite[finite > 0]
    if positive.size == finite.size:
        ax.set_yscale("log")
        return
    # Linear below the smallest positive value's decade, so 0 and that decade's tick label
    # stand a decade apart rather than on top of one another.
    linthresh = 10.0 ** math.floor(math.log10(positive.min())) if positive.size else 1e-3
    ax.set_yscale("symlog", linthresh=linthresh)
    if finite.min() >= 0:  # no negative loss: stop just below 0, not decades into negatives
        ax.autoscale_view(scalex=False)  # the top's margin, in the new scale's terms
        ax.set_ylim(bottom=-0.3 * linthresh)


def _no_data(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


# --- learning-rate sweep ----------------------------------------------------------------------

_STATUS_ORDER = {"ok": 0, "stalled": 1, "unstable": 2, "diverged": 3}  # a point: its worst seed
# How a point of each status is drawn (in its optimizer's colour) and named in the legend.
_STATUS_MARKS = {
    "ok": ({"marker": "o", "ms": 6}, "ok"),
    "stalled": ({"marker": "o", "ms": 6, "mfc": "white", "mew": 1.5},
                "stalled (learned nothing usable)"),
    "unstable": ({"marker": "^", "ms": 8}, "unstable (loss rose; at its final value)"),
    "diverged": ({"marker": "x", "ms": 9, "mew": 2}, "diverged (at top edge)"),
}
_CHOSEN = {"marker": "o", "ms": 17, "mfc": "none", "mec": "black", "mew": 1.5}
STRIP_TOP = 0.97  # axes fraction of the highest row of diverged marks


def lr_sweep_plot(path: str | Path, sweep: pd.DataFrame, title: str) -> None:
    """Final training loss against learning rate, one line per optimizer.

    sweep: columns phase ('trial' | 'final'), optimizer, lr, seed, final_loss, status ('ok' |
    'stalled' | 'unstable' | 'diverged') and chosen (the rate --tune chose). With --tune the
    trials are the sweep; its final runs only repeat the chosen rates (curves.png has them).
    """
    fig, ax = plt.subplots(figsize=(9.5, 5.0), layout="constrained")
    points = _sweep_points(sweep)
    heights = _diverged_heights(points)
    handles = []
    for i, (name, rows) in enumerate(points.groupby("optimizer", sort=False)):
        rows, style, top = rows.sort_values("lr"), _style(i), heights.get(name)
        color = style["color"]
        ax.plot(rows["lr"], rows["loss"].where(rows["status"] != "diverged"), color=color,
                ls=style["ls"])
        for status, (mark, _) in _STATUS_MARKS.items():
            _plot_points(ax, rows[rows["status"] == status], top, color=color, **mark)
        _plot_points(ax, rows[rows["chosen"]], top, zorder=4, **_CHOSEN)
        handles.append(Line2D([], [], color=color, ls=style["ls"], marker="o", label=str(name)))
    finite = points.loc[points["status"] != "diverged", "loss"]
    if finite.empty:  # the y axis would show made-up losses around 0
        _no_data(ax, "no finite final loss: every run diverged" if len(points)
                 else "no learning rates swept")
        ax.set_yticks([])
    ax.set_xscale("log")
    _log_scale(ax, finite)
    if heights:
        _leave_top_strip(ax, min(heights.values()))
    ax.set(xlabel="learning rate (log scale)",
           ylabel=f"final training loss, eval mode ({_averaged(points['seeds'])})")
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(title)
    shown = set(points["status"])
    handles += [Line2D([], [], ls="", color="gray", label=label, **mark)
                for status, (mark, label) in _STATUS_MARKS.items() if status in shown]
    if points["chosen"].any():
        handles.append(Line2D([], [], ls="", label="chosen by --tune (best validation score)",
                              **_CHOSEN))
    _legend_below(fig, handles)
    _save(fig, path)


def _diverged_heights(points: pd.DataFrame) -> dict[str, float]:
    """Axes-fraction heights in a strip at the top, one per optimizer with a diverged point,
    so that marks of several optimizers at one rate do not hide one another."""
    names = list(dict.fromkeys(points.loc[points["status"] == "diverged", "optimizer"]))
    step = min(0.03, 0.2 / max(1, len(names)))  # 9 pt apart; closer when there are many
    return {name: STRIP_TOP - i * step for i, name in enumerate(names)}


def _plot_points(ax: plt.Axes, rows: pd.DataFrame, top: float | None, **style) -> None:
    """Points at their loss; a diverged one (it has no loss) at height `top` of the strip."""
    diverged = (rows["status"] == "diverged").to_numpy()
    # Empty selections are skipped: an empty unclipped line would stretch the layout to (0, 0).
    if (~diverged).any():
        ax.plot(rows["lr"][~diverged], rows["loss"][~diverged], ls="", **style)
    if diverged.any():
        ax.plot(rows["lr"][diverged], np.full(diverged.sum(), top), ls="",
                transform=ax.get_xaxis_transform(), clip_on=False, **style)


def _leave_top_strip(ax: plt.Axes, lowest_mark: float) -> None:
    """Raise the y limit so every finite loss lies below the strip of diverged marks, with a
    dashed line between: no mark sits level with a real loss. Works in the scale's own
    coordinates (linear, log or symlog)."""
    finite_top = lowest_mark - 0.07  # axes fraction
    scale = ax.yaxis.get_transform()
    low, high = scale.transform(np.array(ax.get_ylim()))
    ax.set_ylim(top=scale.inverted().transform(np.array([low + (high - low) / finite_top]))[0])
    ax.plot([0, 1], [finite_top + 0.035] * 2, color="gray", lw=0.6, ls="--", alpha=0.6,
            transform=ax.transAxes)


def _sweep_points(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per (optimizer, lr) of the sweep: mean final loss over its finite seeds,
    how many seeds, its worst status, and whether --tune chose it."""
    swept = _swept(sweep)
    frame = swept.assign(loss=_finite(swept["final_loss"]),
                         rank=swept["status"].map(_STATUS_ORDER).fillna(0))
    points = frame.groupby(["optimizer", "lr"], sort=False).agg(
        loss=("loss", "mean"), seeds=("seed", "nunique"), rank=("rank", "max"))
    names = {v: k for k, v in _STATUS_ORDER.items()}
    points["status"] = points["rank"].map(names)
    # A seed can blow up without being flagged; with no finite loss the point diverged.
    points.loc[points["loss"].isna(), "status"] = "diverged"
    # Chosen from any row at that rate: the trial's, or the final run's that repeats it.
    chosen = sweep[sweep["chosen"].eq(True)] if "chosen" in sweep else sweep.iloc[:0]
    points["chosen"] = points.index.isin(pd.MultiIndex.from_frame(chosen[["optimizer", "lr"]]))
    return points.drop(columns="rank").reset_index()


def _swept(sweep: pd.DataFrame) -> pd.DataFrame:
    """The rows that make the sweep: --tune's single-seed trials when there are any (its
    final runs, more seeds at the chosen rate only, would make one point unlike the rest),
    else every row (a plain --lr-grid sweep is all final runs)."""
    if "phase" in sweep and (sweep["phase"] == "trial").any():
        return sweep[sweep["phase"] == "trial"]
    return sweep


# --- activation histograms --------------------------------------------------------------------


def activations_plot(path: str | Path, histograms: list[tuple[str, list[np.ndarray]]],
                     activation_ranges: dict[str, tuple[float, float]] | None = None) -> None:
    """One row per setting, one histogram per hidden layer of its activations on one batch.

    A row's x range comes from `activation_ranges` (keyed by the row label, or an activation
    name that appears as a word in it), else ACTIVATION_RANGES; a row without one (relu) gives
    each layer the range of its own values, since one layer's can be 10⁴× another's (std 1).
    """
    ncols = max([1, *(len(layers) for _, layers in histograms)])  # a row may have no layers
    nrows = max(1, len(histograms))
    # Wide enough for the longest row label, which heads its row (a label written sideways
    # beside a 2-inch row runs into its neighbours').
    longest = max((len(label) for label, _ in histograms), default=0)
    width = max(2.3 * ncols + 1.4, 0.085 * longest + 1.0)
    fig = plt.figure(figsize=(width, 2.3 * nrows + 1.0), layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)  # neighbours' edge tick labels (1.0, −1.0) apart
    rows = fig.subfigures(nrows, 1, squeeze=False)[:, 0]
    if not histograms:
        _no_data(rows[0].subplots(), "no activations recorded")
    for i, (subfig, (label, layers)) in enumerate(zip(rows, histograms, strict=False)):
        fixed = _row_range(label, activation_ranges)
        axes = subfig.subplots(1, ncols, sharey=True, squeeze=False)[0]
        for j, ax in enumerate(axes):
            if j >= len(layers):
                ax.axis("off")  # this setting has fewer hidden layers than the widest
                continue
            values = np.asarray(layers[j], dtype=np.float64).ravel()
            values = values[np.isfinite(values)]
            lo, hi = fixed or _span(values)
            ax.hist(values, bins=30, range=(lo, hi), color=_color(i))
            ax.set_xlim(lo, hi)
            ax.set_title(f"layer {j + 1}", fontsize=9)
            ax.tick_params(labelsize=8)
        axes[0].set_ylabel("count", fontsize=9)
        subfig.suptitle(label, fontsize=10, fontweight="bold", x=0.01, ha="left")
    fig.suptitle("Activation values per hidden layer (one batch)")
    fig.supxlabel("activation value (sigmoid, tanh: their whole range; otherwise each "
                  "layer's own range: read its ticks)")
    _save(fig, path)


def _row_range(label: str, given: dict[str, tuple[float, float]] | None
               ) -> tuple[float, float] | None:
    """A row's fixed x range: given for its label or an activation named in it; else None."""
    ranges = {**ACTIVATION_RANGES, **(given or {})}
    if label in ranges:
        return ranges[label]
    for name, span in ranges.items():
        if re.search(rf"\b{re.escape(name)}\b", label):
            return span
    return None


def _span(values: np.ndarray) -> tuple[float, float]:
    """The range of one layer's finite values (relu: [0, max])."""
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return lo, hi if hi > lo else lo + 1.0


# --- overfitting: training against validation ------------------------------------------------

# Two fixed looks, the same in every panel and in both figures: validation solid, training dashed.
SPLIT_LOOKS = {"train": {"color": COLORS[0], "ls": "--"}, "val": {"color": COLORS[1], "ls": "-"}}
SPLIT_NAMES = {"train": "training", "val": "validation"}
PANEL_SIZE = (3.4, 2.7)  # inches per panel of overfit_plot, its title and tick labels included
MAX_PANEL_COLUMNS = 4
MIN_MAX_SEEDS = 5  # up to this many seeds the band is min–max over seeds, beyond it mean ± std
LOG_DECADES = 1.5  # a loss axis goes log when its finite values span more than this many decades
CHAR_WIDTH = 0.085  # inches a character takes at 10 pt, for wrapping titles to their room
_ONSET = {"color": "0.25", "ls": ":", "lw": 1.4}


def overfit_plot(path: str | Path, curves: pd.DataFrame, marks: pd.DataFrame, title: str,
                 metric: str = "loss") -> None:
    """One panel per cell: its training and validation `metric` by epoch, with the onset of
    overfitting.

    curves: columns cell, seed, epoch, split, metric, value (other splits and metrics are
    ignored; NaN after a divergence is left out). A seed's curve may end early (early stopping):
    the mean and band at an epoch are over the seeds still running there. marks: columns cell
    and onset (an epoch, NaN when validation loss never rose); its best_epoch is not drawn.
    The panels share both axes, so gaps between training and validation, and where a curve
    was cut, compare across cells; a loss goes log when it spans more than LOG_DECADES.
    """
    curves = curves.assign(value=_finite(curves["value"]))
    curves = curves[curves["split"].isin(SPLIT_LOOKS) & (curves["metric"] == metric)]
    cells = list(dict.fromkeys(curves["cell"])) or [""]
    ncols = min(MAX_PANEL_COLUMNS, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    width = PANEL_SIZE[0] * ncols + 0.6
    fig, axes = plt.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False,
                             figsize=(width, PANEL_SIZE[1] * nrows + 0.6), layout="constrained")
    seeds = curves.groupby("cell")["seed"].nunique()
    spread = "min–max" if max(seeds, default=0) <= MIN_MAX_SEEDS else "mean ± std"
    marks = marks.set_index("cell") if "cell" in marks else pd.DataFrame()
    for i, ax in enumerate(axes.flat):
        if i >= len(cells):
            ax.set_visible(False)
            continue
        rows = curves[curves["cell"] == cells[i]]
        _draw_split_curves(ax, rows, spread)
        ax.set_title(_wrap(cells[i], PANEL_SIZE[0] - 0.3), fontsize=10)
        _label_outer_panel(ax, i, len(cells), ncols, f"{metric} ({_averaged(seeds)})")
    if metric.endswith("loss"):  # a score in [0, 1] stays linear
        _log_scale_if_wide(axes[0, 0], curves["value"])
    for ax, cell in zip(axes.flat, cells, strict=False):  # after the limits settle
        _mark_onset(ax, _mark(marks, cell, "onset"))
    _legend_below(fig, _overfit_handles(spread, seeds, marks))  # may widen the figure
    fig.suptitle(_wrap(title, fig.get_size_inches()[0], font=12))
    _save(fig, path)


def _draw_split_curves(ax: plt.Axes, rows: pd.DataFrame, spread: str) -> None:
    """Each split's mean over seeds as a line and the seeds' spread as a band."""
    if rows["value"].notna().sum() == 0:
        _no_data(ax, "no values recorded" if rows.empty else "no finite values (diverged)")
    for split, look in SPLIT_LOOKS.items():
        stats = _seed_stats(rows[rows["split"] == split], spread)
        if stats.empty:
            continue
        ax.plot(stats.index, stats["mean"], lw=1.6, **look)
        ax.fill_between(stats.index, stats["low"], stats["high"], color=look["color"],
                        alpha=0.2, lw=0)
    ax.grid(alpha=0.3)


def _seed_stats(rows: pd.DataFrame, spread: str) -> pd.DataFrame:
    """By epoch: mean over the seeds with a finite value there, and the band's low and high."""
    stats = rows.dropna(subset=["value"]).groupby("epoch")["value"].agg(
        ["mean", "min", "max", "std"]).sort_index()
    if spread == "min–max":
        return stats.assign(low=stats["min"], high=stats["max"])
    std = stats["std"].fillna(0.0)  # one seed left at this epoch: no spread to show
    return stats.assign(low=stats["mean"] - std, high=stats["mean"] + std)


def _wrap(text: str, inches: float, font: float = 10) -> str:
    """Text broken into lines that fit `inches` at `font` points: at the " · " between a
    label's parts where it can (a line ends with its "·"), else between words."""
    width = max(8, int(inches / (CHAR_WIDTH * font / 10))) - 2  # room for a trailing " ·"
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
            continue
        if lines and len(part) > width:  # needs breaking anyway: go on from the line
            lines[-1:] = textwrap.wrap(lines[-1] + "\u00a0· " + part, width)
            continue
        if lines:
            lines[-1] += " ·"
        lines += textwrap.wrap(part, width) or [part]
    return "\n".join(lines).replace("\u00a0", " ")  # the no-break space kept "·" on its line


def _label_outer_panel(ax: plt.Axes, i: int, n: int, ncols: int, ylabel: str) -> None:
    """Axis labels on the outer panels only; a panel with no panel below it (the last row is
    short) keeps its epoch tick labels, which sharex would have hidden."""
    if i % ncols == 0:
        ax.set_ylabel(ylabel)
    if i + ncols >= n:
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("epoch")


def _log_scale_if_wide(ax: plt.Axes, values: pd.Series) -> None:
    """Log y (symlog with a zero) when the positive finite values span > LOG_DECADES decades."""
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 10**LOG_DECADES:
        _log_scale(ax, values)


def _mark(marks: pd.DataFrame, cell: str, column: str) -> float:
    if column not in marks or cell not in marks.index:
        return math.nan
    return float(pd.to_numeric(pd.Series(marks.loc[[cell], column]), errors="coerce").iloc[0])


def _mark_onset(ax: plt.Axes, onset: float) -> None:
    """A dotted line at the onset, labelled at its top or bottom end, whichever the curves
    leave free; with no onset, "no onset" in the freest corner."""
    points = _curve_points(ax)
    note = {"fontsize": 8, "color": _ONSET["color"], "transform": ax.transAxes,
            "bbox": {"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1}}
    if not math.isfinite(onset):
        x, y = min(((x, y) for y in (0.95, 0.05) for x in (0.97, 0.03)), key=lambda c: _crowding(
            points, (c[0] - 0.3, c[0]) if c[0] > 0.5 else (c[0], c[0] + 0.3), c[1]))
        ax.text(x, y, "no onset", ha="right" if x > 0.5 else "left",
                va="top" if y > 0.5 else "bottom", **note)
        return
    ax.axvline(onset, **_ONSET)
    x = (ax.transData + ax.transAxes.inverted()).transform([[onset, 1.0]])[0, 0]
    late = x > 0.75  # the label goes on the side with room
    span = (x - 0.15, x) if late else (x, x + 0.15)
    y = min((0.97, 0.03), key=lambda y: _crowding(points, span, y))
    ax.text(x, y, "onset " if late else " onset", ha="right" if late else "left",
            va="top" if y > 0.5 else "bottom", **note)


def _curve_points(ax: plt.Axes) -> np.ndarray:
    """(n, 2) points along every data line of ax, in axes fractions, 20 to a segment."""
    to_axes = ax.transData + ax.transAxes.inverted()
    pieces = [np.empty((0, 2))]
    for line in ax.get_lines():
        if line.get_transform() != ax.transData:
            continue
        xy = to_axes.transform(np.column_stack(line.get_data()).astype(np.float64))
        xy = xy[np.isfinite(xy).all(axis=1)]
        t = np.linspace(0, len(xy) - 1, 20 * len(xy))
        pieces.append(np.column_stack([np.interp(t, np.arange(len(xy)), xy[:, k])
                                       for k in (0, 1)]) if len(xy) > 1 else xy)
    return np.concatenate(pieces)


def _crowding(points: np.ndarray, span: tuple[float, float], y: float) -> int:
    """How many points lie over `span` of the axes' width and within 0.12 of its height from y
    (0.95: the top, 0.05: the bottom), all in axes fractions."""
    low, high = (y - 0.12, y) if y > 0.5 else (y, y + 0.12)
    px, py = points[:, 0], points[:, 1]
    return int(((px >= span[0]) & (px <= span[1]) & (py >= low) & (py <= high)).sum())


def _overfit_handles(spread: str, seeds: pd.Series, marks: pd.DataFrame) -> list:
    handles = [Line2D([], [], lw=1.6, label=SPLIT_NAMES[split], **look)
               for split, look in SPLIT_LOOKS.items()]
    if _averaged(seeds) != "one run":
        handles.append(plt.Rectangle((0, 0), 1, 1, color="gray", alpha=0.3,
                                     label=f"band: {spread} over seeds (those still running "
                                     "at the epoch)"))
    onsets = pd.to_numeric(marks["onset"], errors="coerce") if "onset" in marks else pd.Series()
    if onsets.notna().any():
        handles.append(Line2D([], [], label="onset of overfitting", **_ONSET))
    return handles


def learning_curve_plot(path: str | Path, points: pd.DataFrame, title: str, metric: str) -> None:
    """Validation (solid) and training (dashed) score against training-set size, one colour
    per cell, with 95% intervals as error bars.

    points: columns cell (the configuration without its fraction), train_rows, split ('train'
    | 'val'), mean, ci_low, ci_high (NaN: no point, or no bar); optionally panel (one axes per
    value, side by side on one y scale: transfer's similar and different targets). Cells at
    one size are drawn a little apart (DODGE), so that their error bars do not hide one another.
    """
    points = points[points["split"].isin(CURVE_LOOKS)].assign(
        **{c: _finite(points[c]) for c in ("train_rows", "mean", "ci_low", "ci_high")})
    panels = list(dict.fromkeys(points["panel"])) if "panel" in points else [None]
    panels = panels or [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 if len(panels) == 1 else
                                                      4.6 * len(panels), 4.8),
                             sharey=True, squeeze=False, layout="constrained")
    cells = list(dict.fromkeys(points["cell"]))  # one colour per cell in every panel
    for ax, panel in zip(axes[0], panels, strict=True):
        mine = points if panel is None else points[points["panel"] == panel]
        _draw_learning_panel(ax, mine, cells, metric)
        if panel is not None:
            ax.set_title(str(panel), fontsize=10)
    axes[0][0].set(ylabel=metric)
    handles = [Line2D([], [], color=_style(i)["color"], lw=1.8, label=str(cell))
               for i, cell in enumerate(cells)]
    handles += [Line2D([], [], color="gray", ls=ls, marker=SPLIT_MARKERS[split], ms=4,
                       label=SPLIT_NAMES.get(split, split))
                for split, ls in CURVE_LOOKS.items() if (points["split"] == split).any()]
    handles.append(Line2D([], [], color="gray", ls="", marker="|", ms=10, mew=1.2,
                          label="95% interval"))
    _legend_below(fig, handles)
    fig.suptitle(_wrap(title, fig.get_size_inches()[0], font=12))
    _save(fig, path)


def _draw_learning_panel(ax: plt.Axes, points: pd.DataFrame, cells: list, metric: str) -> None:
    """One axes of learning_curve_plot: every cell of `cells` that has points here."""
    dodge = _size_axis(ax, points["train_rows"].dropna(), len(cells))
    for i, cell in enumerate(cells):
        for split, ls in CURVE_LOOKS.items():
            rows = points[(points["cell"] == cell) & (points["split"] == split)]
            rows = rows.sort_values("train_rows").assign(x=lambda r, i=i: dodge(r["train_rows"], i))
            _draw_interval_line(ax, rows, _style(i)["color"], ls, SPLIT_MARKERS[split])
    if points["mean"].notna().sum() == 0:
        _no_data(ax, "no scores recorded" if points.empty else "no finite scores")
    if metric.endswith("loss"):  # on the means: an interval reaching 0 runs off the bottom
        _log_scale_if_wide(ax, points["mean"])
    ax.grid(alpha=0.3)


SPLIT_MARKERS = {"train": "s", "val": "o", "test": "D"}
CURVE_LOOKS = {"train": "--", "val": "-", "test": "-"}  # line style per split
DODGE = 0.008  # axes-width fraction between neighbouring cells' points at one training size


def _draw_interval_line(ax: plt.Axes, rows: pd.DataFrame, color, ls: str, marker: str) -> None:
    """A line through the means at x; an error bar from ci_low to ci_high where both are known."""
    if rows["mean"].notna().sum() == 0:
        return
    ax.plot(rows["x"], rows["mean"], color=color, ls=ls, marker=marker, ms=4, lw=1.6)
    known = rows.dropna(subset=["mean", "ci_low", "ci_high"])
    if len(known):
        below = (known["mean"] - known["ci_low"]).clip(lower=0)
        above = (known["ci_high"] - known["mean"]).clip(lower=0)
        ax.errorbar(known["x"], known["mean"], yerr=[below, above], color=color, ls="",
                    capsize=3, lw=1.0)


def _size_axis(ax: plt.Axes, sizes: pd.Series, cells: int):
    """Training rows on x: log when the sizes span 10× or more, ticks at the sizes run.

    Returns dodge(x, i): where cell i's points at sizes x are drawn, DODGE of the axes' width
    from its neighbours' (multiplied on a log axis, added on a linear one) and centred.
    """
    ax.set_xlabel("training rows")
    if len(sizes) == 0 or sizes.min() <= 0:
        return lambda x, i: x
    log = sizes.max() / sizes.min() >= 10
    if log:
        ax.set_xscale("log")
        ax.set_xlabel("training rows (log scale)")
    runs = np.unique(sizes.to_numpy())
    if len(runs) <= 8:
        ax.set_xticks(runs, [f"{v:,.0f}" if v == round(v) else f"{v:g}" for v in runs])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
    step = DODGE * min(1.0, 6 / max(cells, 1))  # many cells: closer, within ±2.5% of the width
    if log:
        decades = max(math.log10(sizes.max() / sizes.min()), 1.0)
        return lambda x, i: x * 10 ** (decades * step * (i - (cells - 1) / 2))
    span = float(sizes.max() - sizes.min()) or float(sizes.max())
    return lambda x, i: x + span * step * (i - (cells - 1) / 2)


def critical_difference_plot(path: str | Path, ranks: pd.Series, nemenyi: pd.DataFrame,
                             title: str) -> None:
    """The critical-difference diagram (Demšar 2006), drawn by scikit-posthocs: mean ranks on
    an axis from 1 to k (every rank a method could have), methods not significantly different
    (Nemenyi) joined by a bar, the labels at the axis's ends as in Demšar's figures."""
    import scikit_posthocs as sp

    k = len(ranks)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.3 * k), layout="constrained")
    drawn = sp.critical_difference_diagram(ranks, nemenyi, ax=ax)
    for elbow, label in zip(drawn["elbows"], drawn["labels"], strict=True):
        end = 1.0 if label.get_ha() == "right" else float(k)  # its side's end of the axis
        elbow.set_xdata([end, *elbow.get_xdata()[1:]])
        label.set_x(end - 0.02 * (k - 1) if end == 1.0 else end + 0.02 * (k - 1))
    for artist in drawn["markers"] + drawn["elbows"]:
        artist.set_clip_on(False)  # a method at rank 1 (or k) sits on the axis's end
    ax.set_xlim(1, k)
    ax.set_xticks(np.arange(1, k + 1))
    ax.set_title(title, fontsize=10)
    _save(fig, path)


PROFILE_DODGE = 0.012  # share of problems between neighbouring methods' profile lines


def profiles_plot(path: str | Path, profiles: pd.DataFrame, cost: str, title: str) -> None:
    """Performance profiles: the share of problems each method solves within τ× the cheapest
    method's cost, τ from 1 to 4 (steps: a method solves a problem at one τ). Each method has
    its own colour, line style and marker, and is shifted up or down by a little, so that
    methods with equal profiles stay visible side by side (the legend says by how much)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    k = len(profiles.columns)
    every = max(1, len(profiles) // 8)
    for i, method in enumerate(profiles.columns):
        shift = PROFILE_DODGE * (i - (k - 1) / 2)
        style = {"color": _color(i), "ls": LINESTYLES[i % len(LINESTYLES)],
                 "marker": MARKERS[i % len(MARKERS)]}
        ax.plot(profiles.index, profiles[method] + shift, drawstyle="steps-post", lw=1.8,
                ms=5, markevery=(i % every, every), label=method, **style)
    ax.set_xlabel(f"τ: {cost.replace('_', ' ')} to the target ÷ the best method's")
    ax.set_ylabel("share of problems solved within τ")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(profiles.index.min(), profiles.index.max())
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    handles = ax.get_legend_handles_labels()[0]
    if k > 1:
        handles.append(Line2D([], [], ls="none", label=f"lines shifted apart by "
                                                        f"{PROFILE_DODGE:g} so equal ones "
                                                        "stay visible"))
    _legend_below(fig, handles)
    _save(fig, path)
