"""Every plot writes a readable PNG from tidy frames, whatever the path and however bad the data."""

import math

import numpy as np
import pandas as pd
import pytest
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


# --- learning-rate sweep ---------------------------------------------------------------------


def sweep_frame() -> pd.DataFrame:
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
    return pd.DataFrame(rows, columns=["optimizer", "lr", "seed", "final_loss", "status"])


def test_lr_sweep_plot_marks_diverged_at_the_top_without_stretching_the_axis(tmp_path, figures):
    plots.lr_sweep_plot(tmp_path / "sweep", sweep_frame(), "digits · mlp")
    assert_png(tmp_path / "sweep")
    ax = figures[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_ylim()[1] < 100  # the 1e30 of a diverged seed is not plotted as a loss
    crosses = [line for line in ax.get_lines()
               if line.get_marker() == "x" and len(line.get_xdata())]
    assert crosses and all((line.get_ydata() == 0.96).all() for line in crosses)
    stalled = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"
               and len(line.get_xdata())]
    assert stalled
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()]
    assert {"sgd", "adam", "ok", "stalled (barely moved)", "diverged (at top edge)"} <= set(labels)


def test_sweep_points_average_finite_seeds_and_keep_the_worst_status():
    sweep = pd.DataFrame({"optimizer": ["sgd"] * 4, "lr": [0.1, 0.1, 1.0, 1.0], "seed": [0, 1] * 2,
                          "final_loss": [1.0, 3.0, 0.5, math.inf],
                          "status": ["ok", "stalled", "ok", "ok"]})
    points = plots._sweep_points(sweep).set_index("lr")
    assert points.loc[0.1, "loss"] == 2.0 and points.loc[0.1, "status"] == "stalled"
    assert points.loc[1.0, "loss"] == 0.5  # the unflagged inf seed is left out of the mean
    all_bad = sweep.assign(final_loss=math.nan)
    assert (plots._sweep_points(all_bad)["status"] == "diverged").all()


def test_lr_sweep_plot_with_zero_loss_and_all_diverged(tmp_path):
    sweep = sweep_frame()
    sweep.loc[sweep["status"] == "ok", "final_loss"] = 0.0  # a perceptron that fits exactly
    sweep.loc[sweep["optimizer"] == "adam", ["final_loss", "status"]] = [math.nan, "diverged"]
    plots.lr_sweep_plot(tmp_path / "s.png", sweep, "edge cases")
    assert_png(tmp_path / "s.png")


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
