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

from dlbench import plots
from dlbench.functions import FUNCTIONS
from dlbench.optim import parse_optimizers
from dlbench.trainer import TrainConfig, minimize

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
    assert {"sgd", "adam", "ok", "stalled (barely moved)", "diverged (at top edge)"} <= set(labels)
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
    assert {"ok", "stalled (barely moved)", "unstable (loss rose; at its final value)",
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


def test_row_range_prefers_given_ranges_then_known_activations_then_data():
    layers = [np.array([0.0, 2.0, 4.0])]
    assert plots._row_range("std0.01 · tanh", layers, None) == (-1.0, 1.0)
    assert plots._row_range("std0.01 · tanh", layers, {"tanh": (-2.0, 2.0)}) == (-2.0, 2.0)
    assert plots._row_range("xavier · relu", layers, None) == (0.0, 4.0)
    assert plots._row_range("hardsigmoid", [np.zeros(3)], None) == (0.0, 1.0)  # not 'sigmoid'


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
}


@pytest.mark.parametrize("draw", AWKWARD_INPUTS.values(), ids=AWKWARD_INPUTS.keys())
def test_plots_emit_no_warnings(tmp_path, draw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constrained layout giving up, NumPy, pandas: all fail
        draw(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_MAGIC)
