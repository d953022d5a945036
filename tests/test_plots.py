"""Every plot writes a readable PNG from tidy frames, whatever the path and however bad the data."""

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from PIL import Image

from dlbench.engine.members import TrainConfig
from dlbench.engine.trainer import minimize
from dlbench.optim.functions import FUNCTIONS
from dlbench.optim.optimizers import parse_optimizers
from dlbench.output import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000  # a drawn figure, not an empty canvas
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 300
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something was drawn on the white


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots save, kept for inspection after they are written and closed."""
    saved = []
    save = plots._save

    def keep(fig, path):
        saved.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def trajectories(info, opts: str, steps: int = 30) -> pd.DataFrame:
    frames = []
    for spec in parse_optimizers(opts):
        path, status = minimize(info.fn, list(info.start), TrainConfig(spec), steps)
        frames.append(pd.DataFrame({"cell": f"{spec.label} lr={spec.lr:g}",
                                    "step": range(len(path)), "x": path[:, 0], "y": path[:, 1],
                                    "f": path[:, 2], "status": status}))
    return pd.concat(frames, ignore_index=True)


def plotted_points(fig) -> np.ndarray:
    """Every finite data point of every line on the main (first) axes."""
    ax = fig.axes[0]
    xy = [np.column_stack(line.get_data()).astype(float) for line in ax.get_lines()
          if line.get_transform() == ax.transData]
    xy = np.concatenate(xy)
    return xy[np.isfinite(xy).all(axis=1)]


def drawn_boxes(fig):
    """Draws the figure as saved; returns a function giving an artist's box in pixels (an
    axes' box holds its title, axis labels and tick labels)."""
    canvas = FigureCanvasAgg(fig)  # closing the figure took its canvas away
    canvas.draw()
    renderer = canvas.get_renderer()
    return lambda artist: artist.get_tightbbox(renderer)


def look(line) -> tuple:
    """What tells a line apart from another: colour, line style, marker."""
    return to_hex(line.get_color()), line.get_linestyle(), line.get_marker()


# --- trajectories ----------------------------------------------------------------------------


@pytest.mark.parametrize("info", list(FUNCTIONS), ids=lambda i: i.name)
def test_trajectories_plot_for_every_function(tmp_path, info):
    frame = trajectories(info, "sgd[lr=0.01],momentum[lr=0.005],adam[lr=0.1],newton")
    plots.trajectories_plot(tmp_path / "paths.png", info, frame)
    assert_png(tmp_path / "paths.png")


def test_a_diverging_path_stays_inside_the_window(tmp_path, figures):
    info = FUNCTIONS.get("anisotropic")
    frame = trajectories(info, "sgd[lr=5],adam[lr=0.3]")
    assert frame["y"].abs().max() > 1e20  # sgd at lr=5 multiplies y by -9 each step
    inf_row = frame.iloc[[-1]].assign(step=31, x=math.inf, y=-math.inf, f=math.nan,
                                      status="diverged")
    plots.trajectories_plot(tmp_path / "diverged", info, pd.concat([frame, inf_row]))
    assert_png(tmp_path / "diverged")  # no .png suffix: still a PNG
    ax = figures[0].axes[0]
    xmin, xmax, ymin, ymax = info.window
    assert ax.get_xlim() == (xmin, xmax) and ax.get_ylim() == (ymin, ymax)
    points = plotted_points(figures[0])
    assert (points[:, 0] >= xmin - 1e-9).all() and (points[:, 0] <= xmax + 1e-9).all()
    assert (points[:, 1] >= ymin - 1e-9).all() and (points[:, 1] <= ymax + 1e-9).all()
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert any("sgd lr=5" in t and "leaves the plot at step 1" in t for t in labels)


def test_segments_are_cut_where_they_cross_the_window():
    window = (-1.0, 1.0, -1.0, 1.0)
    points = np.array([[0.0, 0.0], [1e300, 0.0], [0.0, 3.0], [0.0, -3.0], [0.5, 0.5],
                       [math.inf, 0.0], [0.5, 0.5]])
    x, y = plots._clipped_segments(points, window, np.ones(len(points) - 1, dtype=bool))
    pieces = np.column_stack([x, y]).reshape(-1, 3, 2)[:, :2]  # (segment, end, xy)
    # out to the right edge; a far-off segment that misses the window is dropped; one that
    # passes straight through is cut at both edges; the one from (0,-3) ends at (0.5, 0.5);
    # segments touching inf are dropped.
    np.testing.assert_allclose(pieces, [[[0, 0], [1, 0]], [[0, 1], [0, -1]],
                                        [[2 / 7, -1], [0.5, 0.5]]], atol=1e-12)


# --- curves ------------------------------------------------------------------------------------


def curves_frame(metrics=("loss", "accuracy"), diverge=True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for c, cell in enumerate(["mlp · sgd lr=0.1", "mlp · adam lr=0.001"]):
        for seed in range(3):
            for epoch in range(1, 11):
                loss = 2.0 * np.exp(-epoch / (3 + c)) + 0.05 * rng.random()
                if diverge and c == 0 and seed == 2 and epoch >= 4:
                    loss = math.nan if epoch > 4 else math.inf
                for split in ("train", "val"):
                    rows.append((cell, seed, epoch, split, "loss", loss))
                    if "accuracy" in metrics:
                        rows.append((cell, seed, epoch, split, "accuracy", 1 - loss / 3))
    return pd.DataFrame(rows, columns=["cell", "seed", "epoch", "split", "metric", "value"])


def test_curves_plot_draws_mean_and_band_and_notes_diverged_seeds(tmp_path, figures):
    plots.curves_plot(tmp_path / "curves", curves_frame(), "digits · mlp")
    assert_png(tmp_path / "curves")
    left, right = figures[0].axes
    assert left.get_yscale() == "log" and right.get_title() == "validation accuracy"
    assert len(left.get_lines()) == 2 and len(left.collections) == 2  # a mean and a band each
    mean = left.get_lines()[0].get_ydata()
    assert np.isfinite(mean).all()  # the diverged seed is left out, not a hole in the mean
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert "mlp · sgd lr=0.1 (1 of 3 seeds diverged)" in labels
    assert "mlp · adam lr=0.001" in labels


def test_curves_plot_shows_validation_loss_for_regression(tmp_path, figures):
    plots.curves_plot(tmp_path / "reg.png", curves_frame(("loss",), diverge=False), "diabetes")
    assert_png(tmp_path / "reg.png")
    assert figures[0].axes[1].get_title() == "validation loss"
    assert figures[0].axes[1].get_yscale() == "log"


def test_curves_plot_survives_a_cell_that_is_all_nan_and_no_validation(tmp_path):
    frame = curves_frame(diverge=False)
    frame = frame[frame["split"] == "train"]
    frame.loc[frame["cell"] == "mlp · sgd lr=0.1", "value"] = math.nan
    plots.curves_plot(tmp_path / "c.png", frame, "no validation split")
    assert_png(tmp_path / "c.png")


LONG_LABEL = "mlp · hidden 100,100,100,100,100 · xavier · tanh · adam lr={lr:g}"


def many_cells(n: int, epochs: int = 8, seeds: int = 2) -> pd.DataFrame:
    """n cells with long labels; train and val loss and accuracy, and the train-mode running
    figures that the plot must not draw."""
    rng = np.random.default_rng(1)
    cell, seed, epoch = (a.ravel() for a in np.meshgrid(
        np.arange(n), np.arange(seeds), np.arange(epochs + 1), indexing="ij"))
    loss = 2 * np.exp(-epoch / (2 + cell % 7)) + 0.05 * rng.random(cell.size) + 0.01 * cell
    base = pd.DataFrame({"cell": [LONG_LABEL.format(lr=0.001 * (c + 1)) for c in cell],
                         "seed": seed, "epoch": epoch})
    return pd.concat([base.assign(split=split, metric=metric, value=value)
                      for split, metric, value in (
                          ("train", "loss", loss), ("val", "loss", 1.1 * loss),
                          ("val", "accuracy", 1 - loss / 3), ("train", "running_loss", 1e6),
                          ("train", "running_accuracy", math.nan))], ignore_index=True)


@pytest.mark.parametrize("n", [1, 5, 12, 40])
def test_curves_plot_gives_each_cell_its_own_look_everywhere(tmp_path, figures, n):
    plots.curves_plot(tmp_path / "many.png", many_cells(n), f"digits · {n} cells")
    assert_png(tmp_path / "many.png")
    fig = figures[0]
    left, right = fig.axes
    looks = [{line.get_label(): look(line) for line in ax.get_lines()} for ax in (left, right)]
    assert len(looks[0]) == n and len(set(looks[0].values())) == n  # no two cells alike
    assert looks[0] == looks[1]  # a cell looks the same in both panels
    legend = fig.legends[0]
    in_legend = {text.get_text(): look(handle) for text, handle
                 in zip(legend.get_texts(), legend.legend_handles, strict=True)
                 if text.get_text() in looks[0]}
    assert in_legend == looks[0]  # ... and in the legend


@pytest.mark.parametrize("n", [1, 5, 12, 40])
def test_curves_plot_legend_and_titles_stay_clear_of_the_panels(tmp_path, figures, n):
    plots.curves_plot(tmp_path / "many.png", many_cells(n), f"digits · mlp · {n} cells")
    fig = figures[0]
    box = drawn_boxes(fig)
    left, right = fig.axes
    legend, whole = box(fig.legends[0]), fig.bbox
    for ax in (left, right):
        assert not legend.overlaps(box(ax))  # not over a panel, its labels or its title
        assert not box(fig._suptitle).overlaps(box(ax))
        assert ax.get_window_extent().height / fig.dpi > 2.5  # the legend took no panel space
    assert not box(left).overlaps(box(right))  # titles and axis labels of the two panels
    assert legend.y0 >= whole.y0 and legend.x0 >= whole.x0 and legend.x1 <= whole.x1
    assert legend.y1 < min(box(left).y0, box(right).y0)  # below both panels


def test_curves_plot_training_loss_is_the_eval_mode_loss_only(tmp_path, figures):
    frame = many_cells(2)
    plots.curves_plot(tmp_path / "c.png", frame, "t")
    left = figures[0].axes[0]
    assert "eval mode" in left.get_title()
    train = frame[(frame["split"] == "train") & (frame["metric"] == "loss")]
    expected = train[train["cell"] == train["cell"].iloc[0]].groupby("epoch")["value"].mean()
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), expected.to_numpy())
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert not any("diverged" in label for label in labels)  # the NaN running accuracy


def test_curves_plot_one_seed_says_one_run_and_draws_no_band_entry(tmp_path, figures):
    plots.curves_plot(tmp_path / "c.png", many_cells(3, seeds=1), "t")
    left, right = figures[0].axes
    assert left.get_ylabel() == "loss (one run)" and right.get_ylabel() == "accuracy (one run)"
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert not any(label.startswith("band") for label in labels)


def test_styles_are_distinct_for_200_lines_and_the_first_ten_differ_in_colour():
    looks = [tuple(plots._style(i).values()) for i in range(200)]
    assert len(set(looks)) == 200
    assert len({plots._style(i)["color"] for i in range(10)}) == 10
    assert {plots._style(i)["ls"] for i in range(10)} == {"-"}


# --- learning-rate sweep ---------------------------------------------------------------------


def sweep_frame() -> pd.DataFrame:
    """A plain --lr-grid sweep: every rate run with 2 seeds, nothing chosen."""
    rows = []
    for name, best in (("sgd", 0.3), ("adam", 0.003)):
        for lr in np.geomspace(1e-4, 10, 6):
            for seed in range(2):
                if lr > 20 * best:
                    rows.append((name, lr, seed, math.nan if seed else 1e30, "diverged"))
                elif lr < best / 100:
                    rows.append((name, lr, seed, 2.3, "stalled"))
                else:
                    rows.append((name, lr, seed, 0.1 + abs(math.log10(lr / best)), "ok"))
    frame = pd.DataFrame(rows, columns=["optimizer", "lr", "seed", "final_loss", "status"])
    return frame.assign(phase="final", chosen=False)


def tune_frame() -> pd.DataFrame:
    """--tune: one trial run per rate, then 3 seeds at each optimizer's chosen rate."""
    rates = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    trials = {"sgd": [(2.3, "stalled"), (1.0, "ok"), (0.2, "ok"), (0.1, "ok"), (9.0, "unstable")],
              "adam": [(0.5, "ok"), (0.05, "ok"), (8.0, "unstable"), (math.nan, "diverged"),
                       (math.nan, "diverged")]}
    chosen = {"sgd": 1e-1, "adam": 1e-3}
    rows = [("trial", name, lr, 0, loss, status, lr == chosen[name])
            for name, runs in trials.items()
            for lr, (loss, status) in zip(rates, runs, strict=True)]
    rows += [("final", name, lr, seed, 0.3 + seed, "ok", True)
             for name, lr in chosen.items() for seed in range(3)]
    return pd.DataFrame(rows, columns=["phase", "optimizer", "lr", "seed", "final_loss",
                                       "status", "chosen"])


def in_axes_fraction(ax, line) -> np.ndarray:
    """A line's y values as a fraction of the axes' height (0 bottom, 1 top)."""
    xy = np.column_stack(line.get_data()).astype(float)
    return (line.get_transform() - ax.transAxes).transform(xy)[:, 1]


def marked(ax, **style) -> list:
    """The non-empty lines on ax drawn with these marker properties."""
    return [line for line in ax.get_lines() if len(line.get_xdata())
            and all(getattr(line, f"get_{k}")() == v for k, v in style.items())]


def test_lr_sweep_plot_marks_diverged_at_the_top_without_stretching_the_axis(tmp_path, figures):
    plots.lr_sweep_plot(tmp_path / "sweep", sweep_frame(), "digits · mlp")
    assert_png(tmp_path / "sweep")
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_ylim()[1] < 100  # the 1e30 of a diverged seed is not plotted as a loss
    crosses = marked(ax, marker="x")
    assert len(crosses) == 2  # both optimizers diverge, each on a height of its own
    heights = [set(in_axes_fraction(ax, line)) for line in crosses]
    assert all(len(h) == 1 for h in heights) and heights[0] != heights[1]
    finite = [y for line in marked(ax, marker="o") for y in in_axes_fraction(ax, line)]
    assert max(finite) < min(min(h) for h in heights) - 0.05  # never level with a real loss
    assert marked(ax, marker="o", markerfacecolor="white")  # stalled
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert {"sgd", "adam", "ok", "stalled (learned nothing usable)",
            "diverged (at top edge)"} <= set(labels)
    assert "chosen by --tune" not in labels  # a plain grid chose nothing
    assert ax.get_ylabel() == "final training loss, eval mode (mean over seeds)"


def test_lr_sweep_plot_draws_the_tuning_trials_and_rings_the_chosen_rates(tmp_path, figures):
    plots.lr_sweep_plot(tmp_path / "tune.png", tune_frame(), "digits · mlp: tuning")
    assert_png(tmp_path / "tune.png")
    ax = figures[0].axes[0]
    assert ax.get_ylabel() == "final training loss, eval mode (one run)"  # trials: one run a rate
    rings = marked(ax, marker="o", markerfacecolor="none")
    ringed = {(x, y) for line in rings for x, y in zip(*line.get_data(), strict=True)}
    assert ringed == {(1e-1, 0.1), (1e-3, 0.05)}  # at the trial's loss, one per optimizer
    triangles = marked(ax, marker="^")
    assert {(x, y) for line in triangles for x, y in zip(*line.get_data(), strict=True)} \
        == {(1.0, 9.0), (1e-2, 8.0)}  # unstable: at its finite loss
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert {"ok", "stalled (learned nothing usable)", "unstable (loss rose; at its final value)",
            "diverged (at top edge)", "chosen by --tune (best validation score)"} <= set(labels)


def test_lr_sweep_plot_legend_and_title_stay_clear_of_the_axes(tmp_path, figures):
    many = pd.concat([tune_frame().assign(optimizer=lambda f, i=i: f["optimizer"] + str(i))
                      for i in range(8)])
    plots.lr_sweep_plot(tmp_path / "many.png", many, "digits · mlp: 16 optimizers tuned")
    fig = figures[0]
    box = drawn_boxes(fig)
    ax = fig.axes[0]
    assert not box(fig.legends[0]).overlaps(box(ax))
    assert not box(fig._suptitle).overlaps(box(ax))
    assert not box(fig._suptitle).overlaps(box(fig.legends[0]))


def test_sweep_points_average_finite_seeds_and_keep_the_worst_status():
    sweep = pd.DataFrame({"optimizer": ["sgd"] * 4, "lr": [0.1, 0.1, 1.0, 1.0], "seed": [0, 1] * 2,
                          "final_loss": [1.0, 3.0, 0.5, math.inf],
                          "status": ["ok", "stalled", "ok", "ok"]})
    points = plots._sweep_points(sweep).set_index("lr")
    assert points.loc[0.1, "loss"] == 2.0 and points.loc[0.1, "status"] == "stalled"
    assert points.loc[1.0, "loss"] == 0.5  # the unflagged inf seed is left out of the mean
    assert (points["seeds"] == 2).all() and not points["chosen"].any()
    all_bad = sweep.assign(final_loss=math.nan)
    assert (plots._sweep_points(all_bad)["status"] == "diverged").all()


@pytest.mark.parametrize(("statuses", "worst"), [
    (["ok", "stalled"], "stalled"), (["stalled", "unstable"], "unstable"),
    (["unstable", "ok"], "unstable"), (["unstable", "diverged"], "diverged")])
def test_sweep_points_order_statuses_ok_stalled_unstable_diverged(statuses, worst):
    sweep = pd.DataFrame({"optimizer": "sgd", "lr": 0.1, "seed": [0, 1], "final_loss": 1.0,
                          "status": statuses})
    assert plots._sweep_points(sweep)["status"].tolist() == [worst]


def test_sweep_points_of_a_tuning_run_are_its_trials():
    points = plots._sweep_points(tune_frame()).set_index(["optimizer", "lr"])
    assert len(points) == 10 and (points["seeds"] == 1).all()  # the finals' 3 seeds left out
    assert points.loc[("sgd", 1e-1), "loss"] == 0.1  # the trial's loss, not the finals'
    assert points.index[points["chosen"]].tolist() == [("sgd", 1e-1), ("adam", 1e-3)]
    # chosen only on the final rows (or read back with gaps) still rings the trial's point
    finals_only = tune_frame().assign(chosen=lambda f: f["phase"].map({"final": True}))
    assert finals_only["chosen"].isna().any()  # NaN is truthy: must not count as chosen
    again = plots._sweep_points(finals_only).set_index(["optimizer", "lr"])
    assert again.index[again["chosen"]].tolist() == [("sgd", 1e-1), ("adam", 1e-3)]


def test_lr_sweep_plot_with_zero_loss_and_all_diverged(tmp_path):
    sweep = sweep_frame()
    sweep.loc[sweep["status"] == "ok", "final_loss"] = 0.0  # a perceptron that fits exactly
    sweep.loc[sweep["optimizer"] == "adam", ["final_loss", "status"]] = [math.nan, "diverged"]
    plots.lr_sweep_plot(tmp_path / "s.png", sweep, "edge cases")
    assert_png(tmp_path / "s.png")


@pytest.mark.parametrize("top_loss", [2.3, 10.85])
def test_a_zero_loss_keeps_the_axis_off_negative_losses_and_every_point_in_view(
        tmp_path, figures, top_loss):
    sweep = pd.DataFrame({"optimizer": "sgd", "lr": [1e-3, 1e-2, 1e-1, 1.0], "seed": 0,
                          "final_loss": [top_loss, 0.3, 4e-5, 0.0], "status": "ok"})
    plots.lr_sweep_plot(tmp_path / "s.png", sweep, "a perceptron fits exactly")
    ax = figures[0].axes[0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "symlog"
    assert all(tick >= 0 for tick in ax.get_yticks() if low <= tick <= high)
    scale = ax.yaxis.get_transform()
    room = np.diff(scale.transform(np.array([low, high])))[0]
    fraction = (scale.transform(np.array([0.0, top_loss])) - scale.transform(low)) / room
    assert 0.02 < fraction[0] and fraction[1] < 0.98  # neither marker cut by the frame
    box = drawn_boxes(figures[0])
    labels = [box(t) for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
    assert not any(a.overlaps(b) for a, b in itertools.pairwise(labels))  # 0 and 10⁻⁵ apart


# --- activations -----------------------------------------------------------------------------


def test_activations_plot_one_row_per_setting_one_panel_per_layer(tmp_path, figures):
    rng = np.random.default_rng(0)
    sigmoid = [1 / (1 + np.exp(-rng.normal(0, s, (100, 50)))) for s in (5, 3, 1)]
    relu = [np.maximum(rng.normal(0, 1, (100, 50)), 0), np.zeros((100, 50))]
    tanh = [np.tanh(rng.normal(0, 0.1, 500)), np.array([np.nan, 0.2, np.inf])]
    histograms = [("std1 · sigmoid", sigmoid), ("he · relu", relu), ("custom", tanh)]
    plots.activations_plot(tmp_path / "acts", histograms, {"custom": (-0.5, 0.5)})
    assert_png(tmp_path / "acts")
    axes = [ax for ax in figures[0].axes if ax.axison]
    assert len(axes) == 3 + 2 + 2  # the narrower rows leave their extra panels blank
    assert [ax.get_title() for ax in axes[:3]] == ["layer 1", "layer 2", "layer 3"]
    assert axes[0].get_xlim() == (0.0, 1.0)  # sigmoid, recognised in the label
    assert axes[3].get_xlim() == pytest.approx((0.0, relu[0].max()))  # relu: [0, max]
    assert axes[5].get_xlim() == (-0.5, 0.5)  # given for this row by its label


def test_row_range_prefers_given_ranges_then_known_activations_then_each_layers_data():
    assert plots._row_range("std0.01 · tanh", None) == (-1.0, 1.0)
    assert plots._row_range("std0.01 · tanh", {"tanh": (-2.0, 2.0)}) == (-2.0, 2.0)
    assert plots._row_range("xavier · relu", None) is None
    assert plots._row_range("hardsigmoid", None) is None  # not 'sigmoid'
    assert plots._span(np.array([0.0, 2.0, 4.0])) == (0.0, 4.0)
    assert plots._span(np.zeros(3)) == (0.0, 1.0)


def test_activations_plot_each_relu_layer_has_an_axis_fitting_its_own_values(tmp_path, figures):
    """std 1 · relu: each layer's activations grow ~10× (here 10⁰ to 10⁴); on one shared axis
    the first layers are a single bar at 0."""
    rng = np.random.default_rng(0)
    layers = [np.maximum(rng.normal(0, 10.0 ** j, 2000), 0) for j in range(5)]
    plots.activations_plot(tmp_path / "acts.png", [("std1 · relu", layers)])
    axes = [ax for ax in figures[0].axes if ax.axison]
    for ax, values in zip(axes, layers, strict=True):
        lo, hi = ax.get_xlim()
        assert lo <= values.min() and hi >= values.max()  # covers its layer's data ...
        assert hi <= 1.01 * values.max()  # ... and is not stretched to another layer's
        heights = [patch.get_height() for patch in ax.patches]
        assert sum(h > 0 for h in heights) >= 5  # a distribution, not one bar


def test_activations_plot_with_nothing_to_show(tmp_path):
    plots.activations_plot(tmp_path / "empty.png", [])
    data = (tmp_path / "empty.png").read_bytes()
    assert data.startswith(PNG_MAGIC)


def test_activations_plot_row_labels_head_their_rows_without_overlap(tmp_path, figures):
    rng = np.random.default_rng(0)
    histograms = [(LONG_LABEL.format(lr=0.001 * (i + 1)),
                   [np.tanh(rng.normal(0, 1, 200)) for _ in range(2)]) for i in range(8)]
    plots.activations_plot(tmp_path / "acts.png", histograms)
    fig = figures[0]
    box = drawn_boxes(fig)
    labels = [sub._suptitle for sub in fig.subfigs]
    assert [t.get_text() for t in labels] == [label for label, _ in histograms]
    boxes = [box(t) for t in labels] + [box(ax) for ax in fig.axes]
    for i, a in enumerate(boxes):
        assert fig.bbox.x0 <= a.x0 and a.x1 <= fig.bbox.x1  # not cut off at the edge
        assert not any(a.overlaps(b) for b in boxes[i + 1:])


# --- no warnings, whatever the input ----------------------------------------------------------


def _activation_rows(n: int, layers: int) -> list:
    rng = np.random.default_rng(0)
    return [(LONG_LABEL.format(lr=0.001 * (i + 1)),
             [np.tanh(rng.normal(0, 1, 100)) for _ in range(layers)]) for i in range(n)]


def _diverging_trajectories():
    info = FUNCTIONS.get("anisotropic")
    frame = trajectories(info, "sgd[lr=5],adam[lr=0.3]")
    inf_row = frame.iloc[[-1]].assign(step=31, x=math.inf, y=-math.inf, f=math.nan,
                                      status="diverged")
    return info, pd.concat([frame, inf_row])


EMPTY_CURVES = pd.DataFrame(columns=["cell", "seed", "epoch", "split", "metric", "value"])
EMPTY_SWEEP = pd.DataFrame(columns=["phase", "optimizer", "lr", "seed", "final_loss", "status",
                                    "chosen"])
AWKWARD_INPUTS = {
    "activations, 30 long rows": lambda p: plots.activations_plot(p, _activation_rows(30, 4)),
    "activations, none": lambda p: plots.activations_plot(p, []),
    "activations, a row with no layers": lambda p: plots.activations_plot(p, [("relu", [])]),
    "activations, only NaN": lambda p: plots.activations_plot(
        p, [("relu", [np.array([math.nan, math.inf])])]),
    "curves, 40 cells": lambda p: plots.curves_plot(p, many_cells(40), "40 cells"),
    "curves, 60 cells": lambda p: plots.curves_plot(p, many_cells(60), "60 cells"),
    "curves, empty": lambda p: plots.curves_plot(p, EMPTY_CURVES, "empty"),
    "curves, all NaN": lambda p: plots.curves_plot(p, many_cells(3).assign(value=math.nan), "x"),
    "sweep, all NaN": lambda p: plots.lr_sweep_plot(
        p, sweep_frame().assign(final_loss=math.nan, status="diverged"), "all diverged"),
    "sweep, empty": lambda p: plots.lr_sweep_plot(p, EMPTY_SWEEP, "empty"),
    "sweep, tuning": lambda p: plots.lr_sweep_plot(p, tune_frame(), "tuning"),
    "trajectories, diverging": lambda p: plots.trajectories_plot(p, *_diverging_trajectories()),
    "overfit, empty": lambda p: plots.overfit_plot(
        p, EMPTY_CURVES.assign(status=None), pd.DataFrame(columns=["cell", "best_epoch", "onset"]),
        "empty"),
    "overfit, all NaN": lambda p: plots.overfit_plot(
        p, overfit_frame(["a", "b"]).assign(value=math.nan), overfit_marks(["a", "b"],
                                                                           [math.nan, 3.0]), "x"),
    "overfit, one seed, 13 cells": lambda p: plots.overfit_plot(
        p, overfit_frame([str(i) for i in range(13)], seeds=1), pd.DataFrame(), "13 cells"),
    "learning curve, empty": lambda p: plots.learning_curve_plot(
        p, pd.DataFrame(columns=["cell", "train_rows", "split", "mean", "ci_low", "ci_high"]),
        "empty", "accuracy"),
    "learning curve, all NaN": lambda p: plots.learning_curve_plot(
        p, learning_points(["a"]).assign(mean=math.nan, ci_low=math.nan), "x", "loss"),
    "learning curve, one size": lambda p: plots.learning_curve_plot(
        p, learning_points(["a", "b"], sizes=(100,)), "x", "loss"),
}


@pytest.mark.parametrize("draw", AWKWARD_INPUTS.values(), ids=AWKWARD_INPUTS.keys())
def test_plots_emit_no_warnings(tmp_path, draw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constrained layout giving up, NumPy, pandas: all fail
        draw(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_MAGIC)


# --- overfitting: training against validation ------------------------------------------------


def overfit_frame(cells: list[str], seeds: int = 3, epochs: int = 20,
                  stops: dict | None = None) -> pd.DataFrame:
    """Training loss falling to ~0.01 and validation loss rising after epoch 8, plus accuracy
    and a running loss the plot must not draw. stops: {(cell, seed): last epoch}."""
    rng = np.random.default_rng(2)
    rows = []
    for c, cell in enumerate(cells):
        for seed in range(seeds):
            for epoch in range(1 + (stops or {}).get((cell, seed), epochs)):
                train = 2.0 * math.exp(-epoch / 3) + 0.01 + 0.01 * rng.random()
                val = 0.4 + 1.6 * math.exp(-epoch / 3) + 0.02 * c * max(0, epoch - 8)
                for split, loss in (("train", train), ("val", val)):
                    rows += [(cell, seed, epoch, split, "loss", loss, "ok"),
                             (cell, seed, epoch, split, "accuracy", 1 - loss / 3, "ok")]
                rows.append((cell, seed, epoch, "train", "running_loss", 1e6, "ok"))
    return pd.DataFrame(rows, columns=["cell", "seed", "epoch", "split", "metric", "value",
                                       "status"])


def overfit_marks(cells: list[str], onsets: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"cell": cells, "best_epoch": 8.0, "onset": onsets})


def panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def vertical_lines(ax) -> list:
    """The lines drawn with axvline: constant x, spanning the axes' height."""
    return [line for line in ax.get_lines() if line.get_transform() != ax.transData]


OVERFIT_CELLS = [f"mlp {w} · {reg}" for w in (64, 512) for reg in ("none", "dropout 0.5",
                                                                     "weight decay 1e-3")]


@pytest.mark.parametrize("n", [1, 6])
def test_overfit_plot_one_panel_per_cell_with_fixed_colours_and_a_shared_y_axis(
        tmp_path, figures, n):
    cells = OVERFIT_CELLS[:n]
    plt_before = plots.plt.get_fignums()
    plots.overfit_plot(tmp_path / "overfit", overfit_frame(cells),
                       overfit_marks(cells, [9.0] * n), "digits · capacity")
    assert_png(tmp_path / "overfit")  # no .png suffix: still a PNG
    assert plots.plt.get_fignums() == plt_before  # the figure was closed
    fig = figures[0]
    axes = panels(fig)
    assert [ax.get_title().replace("\n", " ") for ax in axes] == cells  # in order of appearance
    assert len(fig.axes) == (n if n <= 4 else 4 * math.ceil(n / 4))  # up to 4 columns
    for ax in axes:
        curves = [look(line) for line in ax.get_lines() if line not in vertical_lines(ax)]
        assert curves == [(to_hex(plots.COLORS[0]), "--", "None"),
                          (to_hex(plots.COLORS[1]), "-", "None")]  # training, validation
        assert len(ax.collections) == 2  # a band each
        assert ax.get_ylim() == axes[0].get_ylim()  # shared: gaps compare across panels
        assert ax.get_ylim()[1] < 10  # the running loss of 1e6 is not drawn
    assert axes[0].get_yscale() == "log"  # training loss falls over two decades
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["training", "validation"]
    assert "band: min–max over seeds (those still running at the epoch)" in labels
    assert "onset of overfitting" in labels


def test_overfit_plot_draws_the_onset_or_says_there_is_none(tmp_path, figures):
    cells = OVERFIT_CELLS[:3]
    marks = overfit_marks(cells, [9.0, math.nan, 12.5])
    plots.overfit_plot(tmp_path / "o.png", overfit_frame(cells), marks, "onsets")
    first, second, third = panels(figures[0])
    assert [line.get_xdata()[0] for line in vertical_lines(first)] == [9.0]
    assert texts(first) == [" onset"]
    assert vertical_lines(second) == [] and texts(second) == ["no onset"]
    assert [line.get_xdata()[0] for line in vertical_lines(third)] == [12.5]


def test_overfit_plot_without_any_onset_has_no_onset_legend_entry(tmp_path, figures):
    cells = OVERFIT_CELLS[:2]
    plots.overfit_plot(tmp_path / "o.png", overfit_frame(cells),
                       overfit_marks(cells, [math.nan, math.nan]), "never overfits")
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert not any("onset" in label for label in labels)
    assert all(texts(ax) == ["no onset"] for ax in panels(figures[0]))


def test_overfit_plot_means_over_the_seeds_still_running(tmp_path, figures):
    """Early stopping cuts curves at different epochs: a cell's line runs to its last seed's
    stop, and past a seed's stop the mean is over the others."""
    cells = ["long", "early stopped"]
    stops = {("early stopped", 0): 6, ("early stopped", 1): 9, ("early stopped", 2): 12}
    frame = overfit_frame(cells, epochs=20, stops=stops)
    plots.overfit_plot(tmp_path / "o.png", frame, overfit_marks(cells, [9.0, 9.0]), "lengths")
    long, short = panels(figures[0])
    assert max(long.get_lines()[0].get_xdata()) == 20
    assert max(short.get_lines()[0].get_xdata()) == 12
    val = frame[(frame["cell"] == "early stopped") & (frame["split"] == "val")
                & (frame["metric"] == "loss")]
    expected = val.groupby("epoch")["value"].mean()  # over 3, then 2, then 1 seed
    np.testing.assert_allclose(short.get_lines()[1].get_ydata(), expected.to_numpy())
    assert short.get_shared_x_axes().joined(short, long)  # the cut shows against the long run


def test_overfit_plot_leaves_out_nan_and_says_when_a_panel_has_nothing(tmp_path, figures):
    cells = OVERFIT_CELLS[:3]
    frame = overfit_frame(cells)
    diverged = (frame["cell"] == cells[0]) & (frame["seed"] == 1) & (frame["epoch"] >= 5)
    frame.loc[diverged, "value"] = math.nan
    frame.loc[frame["cell"] == cells[2], "value"] = math.nan
    plots.overfit_plot(tmp_path / "o.png", frame, overfit_marks(cells, [9.0, 9.0, math.nan]),
                       "nan")
    assert_png(tmp_path / "o.png")
    first, _, empty = panels(figures[0])
    assert np.isfinite(first.get_lines()[0].get_ydata()).all()  # a gap in no mean
    assert len(first.get_lines()[0].get_ydata()) == 21
    assert "no finite values (diverged)" in texts(empty)


def test_overfit_plot_of_accuracy_stays_linear_and_many_seeds_band_by_std(tmp_path, figures):
    cells = OVERFIT_CELLS[:2]
    plots.overfit_plot(tmp_path / "o.png", overfit_frame(cells, seeds=8),
                       overfit_marks(cells, [9.0, 9.0]), "accuracy", metric="accuracy")
    fig = figures[0]
    assert panels(fig)[0].get_yscale() == "linear"
    assert panels(fig)[0].get_ylabel() == "accuracy (mean over seeds)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "band: mean ± std over seeds (those still running at the epoch)" in labels


def test_overfit_plot_of_one_seed_draws_no_band_entry_and_a_narrow_loss_is_linear(
        tmp_path, figures):
    frame = overfit_frame(["a"], seeds=1)
    frame = frame[frame["epoch"] <= 6]  # losses within a decade
    plots.overfit_plot(tmp_path / "o.png", frame, overfit_marks(["a"], [9.0]), "one seed")
    ax = panels(figures[0])[0]
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "loss (one run)"
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert not any(label.startswith("band") for label in labels)


@pytest.mark.parametrize("n", [1, 6, 9])
def test_overfit_plot_titles_and_legend_fit_the_figure_and_clear_the_panels(
        tmp_path, figures, n):
    cells = [LONG_LABEL.format(lr=0.001 * (i + 1)) + " · dropout 0.5" for i in range(n)]
    plots.overfit_plot(tmp_path / "o.png", overfit_frame(cells), overfit_marks(cells, [9.0] * n),
                       "digits · capacity and regularizers: training against validation loss, "
                       "three seeds, twenty epochs")
    fig = figures[0]
    box = drawn_boxes(fig)
    axes, whole = panels(fig), fig.bbox
    legend, suptitle = box(fig.legends[0]), box(fig._suptitle)
    titles = [box(ax.title) for ax in axes]
    for b in [legend, suptitle, *titles]:
        assert whole.x0 <= b.x0 and b.x1 <= whole.x1 and whole.y0 <= b.y0 and b.y1 <= whole.y1
    for i, ax in enumerate(axes):
        assert not legend.overlaps(box(ax)) and not suptitle.overlaps(box(ax))
        assert not any(box(ax).overlaps(box(other)) for other in axes[i + 1:])
        assert ax.get_window_extent().height / fig.dpi > 1.5  # titles took no panel's room
    assert legend.y1 < min(box(ax).y0 for ax in axes)


def test_titles_wrap_at_the_separators():
    wrapped = plots._wrap("mlp 2048,2048,2048 · no regularizer · adam lr=0.001 · batch 32", 3.1)
    assert "\n" in wrapped and all(not line.startswith("·") for line in wrapped.split("\n"))
    assert wrapped.replace("\n", " ") == "mlp 2048,2048,2048 · no regularizer · adam lr=0.001 · " \
        "batch 32"


# --- learning curves against training-set size ----------------------------------------------


def learning_points(cells: list[str], sizes=(90, 180, 450, 900, 1437)) -> pd.DataFrame:
    rows = []
    for c, cell in enumerate(cells):
        for n in sizes:
            val = 0.97 - 2.5 / math.sqrt(n) - 0.02 * c
            for split, mean in (("train", 0.99 - 0.01 * c), ("val", val)):
                half = 0.5 / math.sqrt(n)
                rows.append((cell, n, split, mean, mean - half, mean + half))
    return pd.DataFrame(rows, columns=["cell", "train_rows", "split", "mean", "ci_low",
                                       "ci_high"])


def error_bars(ax) -> int:
    """How many error bars the axes hold."""
    return sum(len(c.lines[2][0].get_segments()) for c in ax.containers)


def test_learning_curve_plot_one_colour_per_cell_validation_solid_training_dashed(
        tmp_path, figures):
    cells = ["mlp 64", "mlp 512", "mlp 512 · dropout 0.5"]
    before = plots.plt.get_fignums()
    plots.learning_curve_plot(tmp_path / "lc", learning_points(cells), "digits", "accuracy")
    assert_png(tmp_path / "lc")
    assert plots.plt.get_fignums() == before
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "accuracy"
    lines = [line for line in ax.get_lines() if line.get_linestyle() != "None"]
    assert len(lines) == 2 * len(cells)
    for i in range(len(cells)):
        train, val = lines[2 * i], lines[2 * i + 1]
        assert to_hex(train.get_color()) == to_hex(val.get_color()) == to_hex(plots.COLORS[i])
        assert train.get_linestyle() == "--" and val.get_linestyle() == "-"
        # drawn a little apart from the other cells, at their own training size
        np.testing.assert_allclose(val.get_xdata(), [90, 180, 450, 900, 1437], rtol=0.05)
    assert error_bars(ax) == 2 * len(cells) * 5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["90", "180", "450", "900", "1,437"]
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert labels == [*cells, "training", "validation", "95% interval"]


def test_learning_curve_plot_nan_interval_draws_no_bar_and_a_narrow_range_is_linear(
        tmp_path, figures):
    points = learning_points(["a"], sizes=(400, 800, 1200))
    points.loc[points["train_rows"] == 400, ["ci_low", "ci_high"]] = math.nan
    points.loc[(points["train_rows"] == 800) & (points["split"] == "val"), "mean"] = math.nan
    plots.learning_curve_plot(tmp_path / "lc.png", points, "t", "loss")
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "linear"
    assert error_bars(ax) == 3  # 1200 both splits, 800 training only


@pytest.mark.parametrize("n", [1, 8])
def test_learning_curve_plot_title_and_legend_fit_and_clear_the_axes(tmp_path, figures, n):
    cells = [LONG_LABEL.format(lr=0.001 * (i + 1)) for i in range(n)]
    plots.learning_curve_plot(tmp_path / "lc.png", learning_points(cells),
                              "digits · learning curves: validation and training accuracy "
                              "against training rows, 95% intervals over five seeds", "accuracy")
    fig = figures[0]
    box = drawn_boxes(fig)
    ax, whole = fig.axes[0], fig.bbox
    legend, suptitle = box(fig.legends[0]), box(fig._suptitle)
    for b in (legend, suptitle):
        assert whole.x0 <= b.x0 and b.x1 <= whole.x1 and whole.y0 <= b.y0 and b.y1 <= whole.y1
        assert not b.overlaps(box(ax))


@pytest.mark.parametrize("n", [14, 70])
def test_curves_plot_no_two_cells_share_a_colour_and_marker(tmp_path, figures, n):
    """Beyond 10 cells the colours repeat: the marker still tells every cell apart (a line
    style alone is lost where lines cross or crowd)."""
    plots.curves_plot(tmp_path / "many.png", many_cells(n), f"{n} cells")
    lines = figures[0].axes[0].get_lines()
    pairs = {(to_hex(line.get_color()), line.get_marker()) for line in lines}
    assert len(lines) == n and len(pairs) == n


def test_styles_are_distinct_for_280_lines():
    assert len({tuple(plots._style(i).values()) for i in range(280)}) == 280


# --- compare --rank ----------------------------------------------------------------------------


def test_critical_difference_axis_runs_from_1_to_k_with_labels_in_the_figure(tmp_path, figures):
    """Demšar's diagram: the axis spans every rank a method could have, not just the ranks
    found (1.75–2.38 here), so how far apart methods are reads against the whole scale."""
    ranks = pd.Series({"momentum": 1.75, "adam": 1.875, "sgd lr=0.1": 2.375})
    nemenyi = pd.DataFrame(0.5, index=ranks.index, columns=ranks.index)
    plots.critical_difference_plot(tmp_path / "cd.png", ranks, nemenyi, "mean rank")
    assert (tmp_path / "cd.png").read_bytes().startswith(PNG_MAGIC)
    fig = figures[0]
    ax = fig.axes[0]
    assert ax.get_xlim() == (1.0, 3.0)
    assert list(ax.get_xticks()) == [1, 2, 3]
    box = drawn_boxes(fig)
    assert len(ax.texts) == 3
    for text in ax.texts:  # every method's label whole inside the figure
        assert box(text).x0 >= 0 and box(text).x1 <= fig.bbox.x1, text.get_text()


def test_profiles_keep_equal_methods_visible(tmp_path, figures):
    profiles = pd.DataFrame({"a": [1.0, 1.0, 1.0], "b": [0.5, 1.0, 1.0], "c": [0.5, 1.0, 1.0]},
                            index=pd.Index([1.0, 2.0, 4.0], name="tau"))
    plots.profiles_plot(tmp_path / "p.png", profiles, "grad_evals", "profiles")
    assert_png(tmp_path / "p.png")
    fig = figures[0]
    lines = fig.axes[0].get_lines()
    assert len({look(line) for line in lines}) == 3
    assert len({line.get_marker() for line in lines}) == 3  # not told apart by colour alone
    b, c = (np.asarray(line.get_ydata()) for line in lines[1:])
    assert np.all(np.abs(b - c) > 0.005)  # equal profiles, drawn apart ...
    assert np.all(np.abs(b - profiles["b"].to_numpy()) < 0.03)  # ... by a little
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("shifted apart" in label for label in labels)  # and the legend says so


# --- transfer ------------------------------------------------------------------------------------

STRATEGIES = ("scratch", "linear-probe", "finetune-last", "finetune-all", "finetune-lower-lr")


def quadrant_summary() -> pd.DataFrame:
    """transfer --preset quadrants' summary: 2 targets × 2 sizes × 5 strategies."""
    rows = [{"similarity": sim, "target_size": size, "strategy": strategy, "metric": "accuracy",
             "test_mean": 0.5 + 0.1 * k + 0.0001 * size, "test_ci_low": 0.45 + 0.1 * k,
             "test_ci_high": 0.6 + 0.1 * k + 0.0001 * size}
            for sim in ("similar", "different") for size in (50, 1000)
            for k, strategy in enumerate(STRATEGIES)]
    return pd.DataFrame(rows)


def test_transfer_quadrants_get_a_panel_per_target(tmp_path, figures):
    """Not 10 lines in one axes: a panel per target (similar, different), sizes along x, each
    strategy one colour in both panels."""
    from types import SimpleNamespace

    from dlbench.cli.figures import transfer_figures

    result = SimpleNamespace(summary=quadrant_summary(), source_weights={}, info={
        "targets": {"similar": {}, "different": {}}, "dataset": {"name": "digits"},
        "source": {"name": "digits[0-4]"}, "seeds": 2})
    transfer_figures(result)["transfer.png"](tmp_path / "transfer.png")
    assert_png(tmp_path / "transfer.png")
    axes = [ax for ax in figures[0].axes if ax.get_lines()]
    assert [ax.get_title() for ax in axes] == ["similar target", "different target"]
    colours = []
    for ax in axes:  # the strategies' lines (error bars and their caps drawn without one)
        lines = [line for line in ax.get_lines() if line.get_linestyle() != "None"]
        assert len(lines) == len(STRATEGIES)
        colours.append([to_hex(line.get_color()) for line in lines])
        assert len(set(colours[-1])) == len(STRATEGIES)
    assert colours[0] == colours[1]
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])  # one scale to compare on
