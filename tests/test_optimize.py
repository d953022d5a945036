"""`dlbench optimize` end to end through Typer's CliRunner: trajectories on every 2-D function,
the network grid and its pairing over seeds, the --opt grammar, time to target, XOR, learning-rate
sweeps, fair tuning (test rows never reach a trial), the init study, JSON, reproducibility, the
optimizer listing and one-line usage errors."""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import RUN_FILES, assert_usage_error, invoke
from typer.testing import Result

from dlbench.nn.models import ACTIVATIONS, INITS, MODELS
from dlbench.optim.functions import FUNCTIONS
from dlbench.optim.optimizers import OPTIMIZERS, format_value
from dlbench.optim.schedules import SCHEDULES
from dlbench.runners import optimize as runner

SMALL = ["--epochs", "3", "--seeds", "2", "--hidden", "8"]
CELL_COLUMNS = ["cell", "model", "hidden", "init", "activation", "batchnorm", "preprocess",
                "missing", "features", "regularizer", "strategy", "similarity", "target_size",
                "train_fraction", "batch_size", "loss", "optimizer", "lr"]
SCORE_COLUMNS = ["dataset", "phase", *CELL_COLUMNS, "seed", "member_seed", "split", "metric",
                 "value", "status"]
CURVE_COLUMNS = ["phase", *CELL_COLUMNS, "seed", "member_seed", "epoch", "split", "metric",
                 "value", "grad_evals", "examples", "status"]
TRAJECTORY_COLUMNS = ["cell", "optimizer", "lr", "step", "grad_evals", "x", "y", "f", "status"]
NETWORK_FILES = {"scores.csv", "curves.csv", "summary.csv", "curves.png", "manifest.json",
                 *RUN_FILES}
FUNCTION_FILES = {"trajectories.csv", "summary.csv", "scores.csv", "trajectories.png",
                  "manifest.json", *RUN_FILES - {"cells"}}  # paths on a function are no cells
DEFAULT_FUNCTION_OPTS = ["sgd", "momentum", "adagrad", "adam"]  # cli.FUNCTION_OPT's entries
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- helpers


class Run:
    """One finished `dlbench optimize` run: the runner's result and the files it wrote."""

    def __init__(self, result: Result, out: Path):
        self.result, self.out = result, out

    def csv(self, stem: str) -> pd.DataFrame:
        # hidden "8" and "8,8" must stay text, not become the integer 8
        return pd.read_csv(self.out / f"{stem}.csv", dtype={"hidden": str})

    @cached_property
    def scores(self) -> pd.DataFrame:
        return self.csv("scores")

    @cached_property
    def curves(self) -> pd.DataFrame:
        return self.csv("curves")

    @cached_property
    def summary(self) -> pd.DataFrame:
        return self.csv("summary")

    @cached_property
    def trajectories(self) -> pd.DataFrame:
        return self.csv("trajectories")

    @cached_property
    def activations(self) -> pd.DataFrame:
        return self.csv("activations")

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.out / "manifest.json").read_text())

    def files(self) -> set[str]:
        return {p.name for p in self.out.iterdir()}

    def row(self, label: str) -> str:
        """The table line of one cell (the label, then its figures)."""
        lines = [line for line in self.result.stdout.splitlines()
                 if re.match(rf"\s*(\d+[≈?!]?\s+)?{re.escape(label)}\s", line)]
        assert len(lines) == 1, f"{label!r} in\n{self.result.stdout}"
        return lines[0]



def run_optimize(out: Path, *args: str) -> Run:
    """`dlbench optimize ARGS --out OUT`, which must succeed."""
    result = invoke("optimize", *args, "--out", out)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    assert result.stderr.strip().endswith(f"results: {out}")
    return Run(result, out)


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"


def final(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.phase == "final"]


def sign_changes(values: np.ndarray) -> int:
    signs = np.sign(values)
    return int((signs[1:] * signs[:-1] < 0).sum())


def steps_to(f: np.ndarray, f_min: float, tol: float) -> float:
    """The first step whose f - f* <= tol, NaN if none (the summary's steps_to_tol)."""
    arrived = np.flatnonzero(f - f_min <= tol)
    return float(arrived[0]) if len(arrived) else math.nan


# ---------------------------------------------------------------- 1. 2-D functions


@pytest.mark.parametrize("name", FUNCTIONS.names())
def test_every_function_writes_paths_from_the_start(tmp_path, name):
    info, steps = FUNCTIONS.get(name), 30
    run = run_optimize(tmp_path / "out", "--function", name, "--steps", steps)
    assert run.files() == FUNCTION_FILES
    assert_png(run.out / "trajectories.png")
    paths = run.trajectories
    assert list(paths.columns) == TRAJECTORY_COLUMNS
    assert list(paths.optimizer.unique()) == DEFAULT_FUNCTION_OPTS
    start_f = float(info.fn(torch.tensor(info.start, dtype=torch.float64)))
    for cell, path in paths.groupby("cell", sort=False):
        assert path.step.tolist() == list(range(len(path))), cell
        first, last = path.iloc[0], path.iloc[-1]
        assert (first.x, first.y) == info.start and first.f == pytest.approx(start_f), cell
        assert path.status.nunique() == 1, f"{cell}: one status per path"
        if len(path) < steps + 1:  # stopped early: only at a non-finite point
            assert last.status == "diverged"
            assert not np.isfinite(path[["x", "y", "f"]].to_numpy()[-1]).all(), cell
        else:
            assert len(path) == steps + 1, cell
            assert np.isfinite(path[["x", "y", "f"]].to_numpy()[:-1]).all(), cell
        if last.status == "ok":
            assert np.isfinite(path[["x", "y", "f"]].to_numpy()).all(), cell
    summary = run.summary
    assert summary.cell.tolist() == list(paths.cell.unique())
    for s in summary.itertuples():
        path = paths[paths.cell == s.cell]
        last = path.iloc[-1]
        assert s.status == last.status
        assert [s.x, s.y, s.f] == pytest.approx([last.x, last.y, last.f], nan_ok=True)
        expected = steps_to(path.f.to_numpy(), info.f_min, 1e-3)
        assert s.steps_to_tol == pytest.approx(expected, nan_ok=True), s.cell
        evals = math.nan if math.isnan(expected) else path.grad_evals.iloc[int(expected)]
        assert s.grad_evals_to_tol == pytest.approx(evals, nan_ok=True), s.cell
        assert s.grad_evals == last.grad_evals and (path.grad_evals.diff().dropna() >= 1).all()
        assert s.cell in run.result.stdout
    assert run.manifest["config"]["function"] == name
    assert run.manifest["config"]["steps"] == steps
    assert f"{name}: {info.description}" in run.result.stdout


@pytest.fixture(scope="module")
def bowl(tmp_path_factory) -> Run:
    """The textbook figure: the default optimizers, 100 steps on the anisotropic bowl."""
    return run_optimize(tmp_path_factory.mktemp("bowl") / "out", "--function", "anisotropic")


def test_sgd_zig_zags_across_the_bowl_and_adagrad_does_not(bowl):
    y = {opt: path.y.to_numpy() for opt, path in bowl.trajectories.groupby("optimizer")}
    assert sign_changes(y["sgd"]) >= 50  # lr 0.95: y ← -0.9 y, a sign change every step
    assert sign_changes(y["adagrad"]) == 0  # runs straight down the valley
    x = bowl.trajectories[bowl.trajectories.optimizer == "sgd"].x.to_numpy()
    assert sign_changes(x) == 0  # along the shallow axis SGD creeps, never overshoots
    assert set(bowl.summary.status) == {"ok"}
    assert set(bowl.trajectories.groupby("cell").size()) == {101}


def test_tol_changes_the_steps_to_figure(bowl, tmp_path):
    loose = run_optimize(tmp_path / "loose", "--function", "anisotropic", "--tol", "0.1")
    tight, easy = (r.summary.set_index("optimizer").steps_to_tol for r in (bowl, loose))
    assert (easy < tight).all(), f"{easy.to_dict()} vs {tight.to_dict()}"
    for run, tol, steps in ((bowl, 1e-3, tight), (loose, 0.1, easy)):
        assert f"to f−f*≤{tol:g}" in run.result.stdout
        for opt, path in run.trajectories.groupby("optimizer"):
            assert steps[opt] == steps_to(path.f.to_numpy(), 0.0, tol)
    sgd = loose.row(loose.summary.cell[loose.summary.optimizer == "sgd"].item())
    assert re.search(rf"\s{int(easy['sgd'])} / {int(easy['sgd'])}\s+ok\s*$", sgd)  # 1 a step


def test_lbfgs_and_newton_pay_more_than_one_gradient_evaluation_a_step(tmp_path):
    run = run_optimize(tmp_path / "out", "--function", "rosenbrock", "--steps", "20",
                       "--opt", "lbfgs,newton,sgd[lr=1e-3]")
    evals = run.summary.set_index("optimizer").grad_evals
    assert evals["sgd"] == 20 and evals["newton"] == 20 * 3  # 1 + one pass per Hessian row
    assert evals["lbfgs"] > 20  # its line search evaluates more than once a step


def test_start_sets_step_zero(tmp_path):
    run = run_optimize(tmp_path / "out", "--function", "anisotropic", "--start", "3,-1.5",
                       "--steps", "5", "--opt", "sgd[lr=0.1],adam[lr=0.1]")
    starts = run.trajectories[run.trajectories.step == 0]
    assert len(starts) == 2 and (starts.x == 3).all() and (starts.y == -1.5).all()
    assert starts.f.tolist() == pytest.approx([9 / 20 + 1.5**2] * 2)
    assert set(run.trajectories.groupby("cell").size()) == {6}
    assert run.manifest["config"]["start"] == [3.0, -1.5]
    assert "5 steps from (3, -1.5)" in run.result.stdout


@pytest.mark.parametrize(("steps", "expected"), [(100, "unstable"), (400, "diverged")])
def test_a_diverging_entry_is_a_result_not_an_error(tmp_path, steps, expected):
    """sgd[lr=5] on the bowl multiplies y by −9 a step: finite but far above its start after
    100 steps (unstable), past float64's range after 400 (diverged: NaN/inf)."""
    run = run_optimize(tmp_path / "out", "--function", "anisotropic", "--steps", str(steps),
                       "--opt", "sgd[lr=5],sgd[lr=0.95]")
    status = run.summary.set_index("lr").status
    assert status[5.0] == expected and status[0.95] == "ok"
    path = run.trajectories[run.trajectories.lr == 5.0]
    assert (path.status == expected).all()
    assert not path.f.iloc[-1] <= path.f.iloc[0], "the path must end above its start"
    assert np.isfinite(path.f.iloc[-1]) == (expected == "unstable")
    assert expected in run.row("sgd lr=5")
    assert expected not in run.row("sgd lr=0.95")
    assert "Warning" not in run.result.stderr


# ---------------------------------------------------------------- 2. networks: the grid

GRAMMAR = "sgd[lr=0.1],momentum[lr=0.05,momentum=0.8],adam[betas=0.85/0.99]"
GRAMMAR_CELLS = {("sgd", 0.1), ("momentum[momentum=0.8]", 0.05), ("adam[betas=0.85/0.99]", 0.02)}


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Run:
    """Three optimizer entries of the grammar on iris; --lr fills adam's rate."""
    return run_optimize(tmp_path_factory.mktemp("grid") / "out", "--dataset", "iris", *SMALL,
                        "--opt", GRAMMAR, "--lr", "0.02")


def test_network_run_writes_its_files_with_the_documented_columns(grid):
    assert grid.files() == NETWORK_FILES
    assert_png(grid.out / "curves.png")
    assert list(grid.scores.columns) == SCORE_COLUMNS
    assert list(grid.curves.columns) == CURVE_COLUMNS
    assert list(grid.summary.columns[:len(CELL_COLUMNS) + 1]) == ["rank", *CELL_COLUMNS]
    assert set(grid.scores.phase) == set(grid.curves.phase) == {"final"}
    assert set(grid.scores.dataset) == {"iris"}


def test_the_grammar_puts_labels_and_rates_in_the_rows(grid):
    for frame in (grid.scores, grid.curves, grid.summary):
        assert set(zip(frame.optimizer, frame.lr, strict=True)) == GRAMMAR_CELLS
    for label, lr in GRAMMAR_CELLS:
        assert f"{label} lr={lr:g}" in grid.row(f"{label} lr={lr:g}")
    entries = {o["name"]: o for o in grid.manifest["config"]["optimizers"]}
    assert entries["adam"] == {"name": "adam", "lr": 0.02, "params": [["betas", [0.85, 0.99]]]}
    assert entries["momentum"]["params"] == [["momentum", 0.8]]


def test_scores_have_one_row_per_cell_seed_split_metric(grid):
    scores = grid.scores
    metrics = set(scores.metric)
    assert metrics == {"accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert set(grid.summary.metric) == {"accuracy"} == {grid.manifest["primary_metric"]}
    assert set(scores.split) == {"train", "val", "test"} and set(scores.seed) == {0, 1}
    keys = scores[["cell", "seed", "split", "metric"]]
    assert not keys.duplicated().any()
    assert len(scores) == 3 * 2 * 3 * len(metrics)


def test_curves_run_from_epoch_0_to_the_last(grid):
    for key, part in grid.curves.groupby(["cell", "seed", "split", "metric"]):
        first = 1 if key[3].startswith("running") else 0  # running figures: while training
        assert sorted(part.epoch) == list(range(first, 4)), key


def test_summary_ranks_every_cell_by_its_validation_mean(grid):
    summary, scores = grid.summary, grid.scores
    assert sorted(summary.cell) == sorted(scores.cell.unique())
    assert summary["rank"].tolist() == sorted(summary["rank"])
    for r in summary.itertuples():
        assert r.rank == 1 + (summary.val_mean > r.val_mean).sum(), r.cell
        val = scores[(scores.cell == r.cell) & (scores.split == "val")
                     & (scores.metric == "accuracy")]
        test = scores[(scores.cell == r.cell) & (scores.split == "test")
                      & (scores.metric == "accuracy")]
        assert r.val_mean == pytest.approx(val.value.mean())
        assert r.test_mean == pytest.approx(test.value.mean())
        assert re.match(rf"\s*{r.rank}[≈?!]?\s", grid.row(r.cell))
    assert summary.epochs_to_target.isna().all(), "no --target: no time to target"
    assert not re.search(r"\bto \d", grid.result.stdout)


def test_every_cell_sees_the_same_rows_and_seed_s_the_same_initial_weights(grid):
    rows = grid.manifest["rows"]
    assert rows == {"train": 96, "val": 24, "test": 30}  # 20% test, then 20% of the rest
    assert rows["train"] + rows["val"] + rows["test"] == grid.manifest["dataset"]["samples"]
    start = grid.curves[grid.curves.epoch == 0]
    by_seed = start.pivot_table(index=["seed", "split", "metric"], columns="cell",
                                values="value")
    assert by_seed.shape[1] == 3
    for seed_split_metric, values in by_seed.iterrows():  # paired: one start per seed
        assert values.nunique() == 1, seed_split_metric
    losses = start[(start.split == "val") & (start.metric == "loss")].groupby("seed").value
    assert losses.first()[0] != losses.first()[1], "two seeds must start from different weights"


def test_the_manifest_records_the_run(grid):
    manifest = grid.manifest
    assert manifest["command"] == "optimize"
    assert manifest["cells"] == 3 and manifest["seeds"] == 2 and manifest["trials"] == 0
    assert manifest["config"]["train"]["epochs"] == 3
    assert manifest["config"]["models"][0]["hidden"] == [8]
    assert manifest["dataset"]["name"] == "iris" and len(manifest["dataset"]["fingerprint"]) > 8
    assert manifest["device"] in ("cpu", "cuda")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Run:
    """Two depths × batch norm on/off × two preprocessings, on badly scaled features."""
    return run_optimize(tmp_path_factory.mktemp("layouts") / "out", "--dataset", "badly-scaled",
                        "--epochs", "2", "--seeds", "2", "--hidden", "8", "--hidden", "8,8",
                        "--batchnorm", "on,off", "--preprocess", "none,standardize",
                        "--opt", "adam[lr=0.01]")


def test_hidden_batchnorm_and_preprocess_multiply_the_cells(layouts):
    summary = layouts.summary
    expected = set(itertools.product(["8", "8,8"], [True, False], ["none", "standardize"]))
    assert set(zip(summary.hidden, summary.batchnorm, summary.preprocess, strict=True)) == expected
    assert len(summary) == 8 == summary.cell.nunique()
    assert layouts.manifest["cells"] == 8
    assert [m["hidden"] for m in layouts.manifest["config"]["models"]] == [[8]] * 2 + [[8, 8]] * 2
    label = summary.set_index(["hidden", "batchnorm", "preprocess"]).cell
    assert label["8,8", True, "none"] == "hidden 8,8 · bn · none"
    assert label["8", False, "standardize"] == "hidden 8 · no bn · standardize"
    assert "optimize · badly-scaled · adam lr=0.01 · 8 cells" in layouts.result.stdout
    for cell in summary.cell:
        layouts.row(cell)
    assert set(layouts.scores.hidden) == {"8", "8,8"}


def test_target_reports_the_cost_to_reach_it(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--epochs", "5", "--seeds", "2",
                       "--hidden", "8", "--opt", "adam[lr=0.05],sgd[lr=0.001],lbfgs",
                       "--target-accuracy", "0.8")
    summary = run.summary.set_index("optimizer")
    curves = run.curves
    val = curves[(curves.split == "val") & (curves.metric == "accuracy") & (curves.epoch > 0)]
    for opt, cell in val.groupby("optimizer"):
        first = [part[part.value >= 0.8].iloc[0] if (part.value >= 0.8).any() else None
                 for _, part in cell.groupby("seed")]
        for column, unit in (("epochs", "epoch"), ("grad_evals", "grad_evals")):
            expected = np.median([math.inf if f is None else f[unit] for f in first])
            assert summary[f"{column}_to_target"][opt] == expected, (opt, column)
        passes = np.median([math.inf if f is None else f.examples / 96 for f in first])
        assert summary.passes_to_target[opt] == pytest.approx(passes), opt
    assert 1 <= summary.epochs_to_target["adam"] <= 5
    assert 0 < summary.seconds_to_target["adam"] < math.inf
    assert summary.epochs_to_target["sgd"] == summary.seconds_to_target["sgd"] == math.inf
    # minibatch: a pass is an epoch of 3 steps; L-BFGS: a pass per full-batch evaluation
    assert summary.grad_evals["adam"] == 5 * 3 and summary.passes["adam"] == 5
    assert summary.passes["lbfgs"] == summary.grad_evals["lbfgs"] > 5
    assert "to 0.8" in run.result.stdout
    assert re.search(r"\s—\s+\S+\s*$", run.row("sgd lr=0.001")), "never reached: —"


# ---------------------------------------------------------------- 3. XOR


def test_a_perceptron_cannot_learn_xor_and_two_layers_can(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "xor", "--model", "perceptron,mlp",
                       "--hidden", "8", "--opt", "adam[lr=0.05]", "--epochs", "300",
                       "--batch-size", "4", "--seeds", "2")
    assert set(run.summary.model) == {"perceptron", "mlp"}
    assert set(run.scores.model) == {"perceptron", "mlp"}
    accuracy = run.scores[run.scores.metric == "accuracy"]
    mlp, perceptron = (accuracy[accuracy.model == m] for m in ("mlp", "perceptron"))
    assert len(mlp) == len(perceptron) == 2 * 3  # seeds × (train, val, test)
    assert (mlp.value == 1.0).all()
    assert (perceptron.value <= 0.75).all()  # no line separates XOR: 3 of 4 at best
    assert run.summary.set_index("model").loc["mlp", "rank"] == 1
    assert run.manifest["rows"] == {"train": 4, "val": 4, "test": 4}
    assert run.manifest["evaluated_on_training_rows"] is True
    assert "xor has only 4 rows" in run.result.stdout
    assert "measure fit, not generalisation" in run.result.stdout


# ---------------------------------------------------------------- 4. learning-rate sweep


def test_lr_grid_spans_from_stalled_to_diverged(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "wine", "--epochs", "5", "--seeds", "2",
                       "--hidden", "8", "--opt", "sgd,adam", "--lr-grid", "1e-5:10:5")
    grid = list(np.geomspace(1e-5, 10, 5))
    summary = run.summary
    assert len(summary) == 10 and run.manifest["cells"] == 10
    for opt in ("sgd", "adam"):
        assert sorted(summary.lr[summary.optimizer == opt]) == pytest.approx(grid)
    assert_png(run.out / "lr_sweep.png")
    assert run.files() == NETWORK_FILES | {"lr_sweep.png"}
    sgd = run.scores[run.scores.optimizer == "sgd"]
    assert set(sgd.status[sgd.lr == min(grid)]) == {"stalled"}
    assert set(sgd.status[sgd.lr == max(grid)]) <= {"unstable", "diverged"}  # never ok
    assert "stalled" in run.row("sgd lr=1e-05")


# ---------------------------------------------------------------- 5. fair tuning


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Run:
    return run_optimize(tmp_path_factory.mktemp("tuned") / "out", "--dataset", "iris",
                        "--epochs", "5", "--seeds", "2", "--hidden", "8", "--opt", "sgd,adam",
                        "--tune", "lr", "--budget", "3")


def test_tuning_trials_see_validation_and_the_finals_test(tuned):
    scores, curves = tuned.scores, tuned.curves
    trials, finals = (scores[scores.phase == p] for p in ("trial", "final"))
    assert set(trials.split) == {"train", "val"}, "a trial must never be scored on test"
    assert set(curves.split[curves.phase == "trial"]) == {"train", "val"}
    assert set(finals.split) == {"train", "val", "test"}
    assert set(trials.seed) == {-1} and set(finals.seed) == {0, 1}  # a trial is no final seed
    trial_seeds, final_seeds = set(trials.member_seed), set(finals.member_seed)
    assert len(trial_seeds) == 1 and len(final_seeds) == 2 and not trial_seeds & final_seeds
    for opt in ("sgd", "adam"):  # the same budget for each optimizer, over 1e-4…1
        assert sorted(trials.lr[trials.optimizer == opt].unique()) == \
            pytest.approx([1e-4, 1e-2, 1.0])
    assert tuned.manifest["trials"] == 6 and tuned.manifest["cells"] == 2
    assert_png(tuned.out / "lr_sweep.png")


def test_the_final_rate_is_the_trial_with_the_best_validation_accuracy(tuned):
    scores = tuned.scores
    trial_val = scores[(scores.phase == "trial") & (scores.split == "val")
                       & (scores.metric == "accuracy")]
    finals = final(scores)
    for opt, trials in trial_val.groupby("optimizer"):
        trials = trials.sort_values("lr")  # ties go to the first trial: the lowest rate
        best = trials.lr.iloc[int(np.nanargmax(trials.value.to_numpy()))]
        assert set(finals.lr[finals.optimizer == opt]) == {best}, opt
        chosen = tuned.summary.cell[tuned.summary.optimizer == opt].item()
        assert chosen == f"{opt} lr={best:g}"
    assert "tuned: every optimizer had 3 learning-rate trials" in tuned.result.stdout


def test_trials_never_receive_test_rows(tmp_path, monkeypatch):
    """The trainer seam records what each call is given: trials (called from inside the tuner)
    get the first seed with validation rows only; every final cell gets the same members."""
    from dlbench.engine import trainer

    calls = []
    real = trainer.train_grid

    def recording(dataset, spec, configs, members, progress=None, best=False):
        in_tuning = False
        frame = sys._getframe(1)
        while frame is not None:  # called from inside the tuner?
            in_tuning |= frame.f_code.co_name == "_tune"
            frame = frame.f_back
        if in_tuning:
            assert all("test" not in m.evals for m in members), "a trial was given test rows"
        calls.append((in_tuning, configs, members))
        return real(dataset, spec, configs, members, progress, best)

    monkeypatch.setattr(trainer, "train_grid", recording)
    run_optimize(tmp_path / "out", "--dataset", "iris", "--epochs", "2", "--seeds", "2",
                 "--hidden", "8", "--opt", "sgd,adam", "--tune", "lr", "--budget", "3")
    trials = [(configs, members) for tuning, configs, members in calls if tuning]
    finals = [(configs, members) for tuning, configs, members in calls if not tuning]
    assert [c[0] for c in calls] == [True] * len(trials) + [False] * len(finals), \
        "every trial runs before the finals"
    tried = sorted((c.optimizer.name, round(c.optimizer.lr, 12))
                   for configs, _ in trials for c in configs)
    assert tried == [("adam", 1e-4), ("adam", 1e-2), ("adam", 1.0), ("sgd", 1e-4), ("sgd", 1e-2),
                     ("sgd", 1.0)]
    assert sorted(c.optimizer.name for configs, _ in finals for c in configs) == ["adam", "sgd"]
    final_members = finals[0][1]
    assert [m.key for m in final_members] == [{"seed": 0}, {"seed": 1}]
    assert all(members is final_members for _, members in finals), "one split for every cell"
    assert all(set(m.evals) == {"val", "test"} for m in final_members)
    test_rows = set(final_members[0].evals["test"])
    for _, members in trials:
        [member] = members  # the first seed only
        assert set(member.evals) == {"val"}
        assert member.seed not in {m.seed for m in final_members}, "a final rerun repeats a trial"
        assert np.array_equal(member.train, final_members[0].train)
        assert np.array_equal(member.evals["val"], final_members[0].evals["val"])
        assert not test_rows & set(member.train) and not test_rows & set(member.evals["val"])


# ---------------------------------------------------------------- 6. the init study


def test_init_study_records_per_layer_activations(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--epochs", "1", "--seeds", "1",
                       "--init", "std1,xavier", "--activation", "sigmoid,tanh",
                       "--opt", "adam[lr=0.01]")
    assert run.files() == NETWORK_FILES | {"activations.csv", "activations.png"}
    assert_png(run.out / "activations.png")
    assert [m["hidden"] for m in run.manifest["config"]["models"]] == [[100] * 5] * 4
    acts = run.activations
    assert {"setting", "layer", "units", "mean", "std", "saturated", "dead"} <= set(acts.columns)
    assert set(acts.setting) == {"std1 · sigmoid", "std1 · tanh", "xavier · sigmoid",
                                 "xavier · tanh"}
    for setting, layers in acts.groupby("setting"):
        assert layers.layer.tolist() == [1, 2, 3, 4, 5], setting
        assert set(layers.units) == {100}
    assert ((acts.saturated >= 0) & (acts.saturated <= 1)).all() and (acts.dead == 0).all()
    layer5 = acts[acts.layer == 5].set_index("setting")
    assert layer5.saturated["std1 · tanh"] > 0.3
    assert layer5.saturated["std1 · tanh"] > 10 * layer5.saturated["xavier · tanh"]
    assert layer5["std"]["std1 · tanh"] > layer5["std"]["xavier · tanh"]
    assert set(run.summary.init) == {"std1", "xavier"}
    assert set(run.summary.activation) == {"sigmoid", "tanh"}


# ---------------------------------------------------------------- 7. JSON


def _no_nan(constant):
    raise AssertionError(f"{constant} is not JSON")


def test_format_json_puts_only_the_summary_and_run_on_stdout(tmp_path):
    out = tmp_path / "out"
    result = invoke("optimize", "--dataset", "iris", *SMALL, "--opt", "sgd[lr=0.1],adam",
                    "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout, parse_constant=_no_nan)  # the whole of stdout
    assert set(payload) == {"summary", "run"}
    run = Run(result, out)
    rows = pd.DataFrame(payload["summary"])
    assert rows.cell.tolist() == run.summary.cell.tolist()
    assert rows["rank"].tolist() == run.summary["rank"].tolist()
    assert rows.val_mean.tolist() == pytest.approx(run.summary.val_mean.tolist())
    assert payload["run"]["dataset"] == run.manifest["dataset"]
    assert payload["run"]["rows"] == run.manifest["rows"]
    assert "results:" in result.stderr and "results:" not in result.stdout


def test_format_json_keeps_every_digit_of_a_function_summary(tmp_path):
    out = tmp_path / "out"
    result = invoke("optimize", "--function", "anisotropic", "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout, parse_constant=_no_nan)
    assert payload["run"] == {"function": "anisotropic", "steps": 100, "tol": 0.001}
    summary = Run(result, out).summary
    rows = pd.DataFrame(payload["summary"])
    assert rows.cell.tolist() == summary.cell.tolist()
    for column in ("x", "y", "f"):  # adagrad ends at f ≈ 1.8e-11: not 0.0
        assert rows[column].tolist() == pytest.approx(summary[column].tolist(), rel=1e-12, abs=0)


# ---------------------------------------------------------------- 8. reproducibility


def test_same_command_gives_identical_files(tmp_path):
    args = ["--dataset", "wine", *SMALL, "--dropout", "0.2", "--opt", "sgd[lr=0.1],adam[lr=0.01]",
            "--target-accuracy", "0.5", "--seed", "3"]
    first = run_optimize(tmp_path / "a", *args)
    second = run_optimize(tmp_path / "b", *args)
    for name in ("scores.csv", "curves.csv"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name
    timing = [c for c in first.summary.columns if "seconds" in c]  # the only ones that differ
    assert timing == ["seconds_per_model", "seconds_to_target"]
    pd.testing.assert_frame_equal(first.summary.drop(columns=timing),
                                  second.summary.drop(columns=timing))
    assert not {"seconds", "time"} & (set(first.scores.columns) | set(first.curves.columns))


# ---------------------------------------------------------------- 9. the optimizer listing


def test_optimizers_lists_every_optimizer_with_its_defaults():
    result = invoke("optimizers", env={"COLUMNS": "400"})  # one line per optimizer
    assert result.exit_code == 0, result.stderr
    for info in OPTIMIZERS:
        [line] = [line for line in result.stdout.splitlines()
                  if re.match(rf"{re.escape(info.name)}\s", line)]
        assert info.cls.__name__ in line and info.description in line, line
        for key, value in info.signature_defaults().items():
            assert f"{key}={format_value(value)}" in line, (info.name, key)
    lines = result.stdout.splitlines()
    assert any("momentum=0.9" in line for line in lines if line.startswith("momentum "))
    assert any("max_iter=1," in line for line in lines if line.startswith("lbfgs "))


# ---------------------------------------------------------------- 10. bad input

NETWORK = ["--dataset", "iris", "--epochs", "1", "--seeds", "1", "--hidden", "8"]
BAD_INPUT = [
    (["--opt", "nosuch"], "unknown optimizer 'nosuch'"),
    (["--opt", "sgd[betas=0.9/0.999]"], "takes no parameter 'betas'"),
    (["--opt", "adam[lr=abc]"], "lr takes a number"),
    (["--opt", "adam[lr=0.1"], "never closed"),
    (["--lr-grid", "1e-3:1"], "LOW:HIGH:N"),
    (["--lr-grid", "1:0.1:5"], "0 < LOW < HIGH"),
    (["--lr-grid", "a:b:c"], "LOW:HIGH:N"),
    (["--tune", "foo"], "unknown --tune 'foo'"),
    (["--tune", "lr", "--budget", "2"], "--budget must be at least 3"),
    (["--tune", "lr", "--opt", "adam[lr=0.01]"], "--tune sets every entry's learning rate"),
    (["--tune", "lr", "--lr", "0.01"], "--tune sets every entry's learning rate"),
    (["--dataset", "mnist1d", "--test-fraction", "0.3"], "fixed test split"),
    (["--dataset", "xor", "--val-fraction", "0.3"], "--val-fraction does not apply"),
    (["--dataset", "digits", "--opt", "newton", "--hidden", "128"], "at most 1000 parameters"),
    (["--target-accuracy", "1.5"], "(0, 1]"),
    (["--dataset", "diabetes", "--target-accuracy", "0.8"], "classification"),
    (["--target", "y"], "CSV data file"),  # --target is a CSV column, as in cv
    (["--budget", "4"], "--budget applies to --tune"),
    (["--model", "linear", "--hidden", "64,64"], "--hidden does not apply to model linear"),
    (["--model", "linear,perceptron", "--dropout", "0.5"], "apply to model linear, perceptron"),
    (["--activation", "relu,,tanh"], "empty item"),
    (["--opt", "sgd,,adam"], "empty entry"),
    (["--opt", "adam[lr=1e-3,lr=2e-3]"], "'lr' is given twice"),
    (["--opt", "adam[lr=0.1],sgd[lr=0.1]", "--lr", "0.01"], "--lr fills"),
    (["--weight-decay", "inf"], "finite"),
    (["--dropout", "nan"], "finite"),
    (["--function", "anisotropic", "--start", "nan,0"], "finite"),
    (["--function", "anisotropic", "--start", "inf,0"], "finite"),
    (["--function", "anisotropic", "--tol", "nan"], "finite"),
    (["--margin", "0"], "--margin must be positive"),
    (["--margin", "x%"], "--margin takes"),
    (["--data", "x.csv"], "--data and --dataset"),
    (["--lr-grid", "1e-3:1:100000", "--opt", "sgd", "--dataset", "digits", "--seeds", "3"],
     "--allow-large"),  # was killed by the kernel after 194 s
    (["--seeds", "100000", "--dataset", "digits", "--epochs", "20"], "--allow-large"),
    (["--hidden", "99999999"], "--allow-large"),
    (["--function", "anisotropic", "--start", "1"], "--start takes a point X,Y"),
    (["--batchnorm", "maybe"], "--batchnorm takes on, off"),
    (["--seeds", "0"], "--seeds must be positive"),
    (["--function", "anisotropic", "--steps", "0"], "--steps must be positive"),
    (["--function", "anisotropic", "--tol", "0"], "--tol must be positive"),
    (["--function", "anisotropic", "--starts", "0"], "--starts must be positive"),
    (["--function", "anisotropic", "--starts", "-3"], "--starts must be positive"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--hidden", "8,x"], "--hidden"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUT,
                         ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, fragment):
    out = tmp_path / "out"
    base = () if "--function" in args else NETWORK  # network options are refused there
    message = assert_usage_error(invoke("optimize", *base, *args, "--out", out), out)
    assert fragment in message


def test_a_parameter_the_optimizer_lacks_lists_those_it_takes(tmp_path):
    out = tmp_path / "out"
    message = assert_usage_error(
        invoke("optimize", *NETWORK, "--opt", "sgd[betas=0.9/0.999]", "--out", out), out)
    assert all(k in message for k in OPTIMIZERS.get("sgd").signature_defaults())


@pytest.mark.parametrize(("option", "registry", "extra"), [
    ("--function", FUNCTIONS, []), ("--schedule", SCHEDULES, []), ("--init", INITS, []),
    ("--activation", ACTIVATIONS, []), ("--model", MODELS, []), ("--opt", OPTIMIZERS, []),
    ("--schedule", SCHEDULES, ["--function", "anisotropic"]),
    ("--opt", OPTIMIZERS, ["--function", "anisotropic"]),
])
def test_unknown_names_list_the_valid_ones(tmp_path, option, registry, extra):
    out = tmp_path / "out"
    base = () if "--function" in (*extra, option) else NETWORK
    message = assert_usage_error(
        invoke("optimize", *base, *extra, option, "nosuch", "--out", out), out)
    assert f"unknown {registry.kind} 'nosuch'" in message
    assert all(name in message for name in registry.names())


def test_newton_trains_a_tiny_model(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--model", "linear",
                       "--opt", "newton", "--epochs", "2", "--seeds", "2")
    assert set(run.scores.optimizer) == {"newton"} and set(run.scores.model) == {"linear"}
    assert set(run.scores.status) == {"ok"}
    val = run.scores[(run.scores.split == "val") & (run.scores.metric == "accuracy")]
    assert (val.value > 0.6).all()  # two exact Newton steps on a convex loss: far above chance


@pytest.mark.parametrize(("args", "fragment"), [
    (["--function", "anisotropic", "--seeds", "2"], "--seeds applies to networks"),
    (["--function", "anisotropic", "--dataset", "iris"], "--dataset applies to networks"),
    (["--dataset", "iris", "--steps", "5"], "--steps applies to --function only"),
    (["--dataset", "iris", "--start", "1,2"], "--start applies to --function only"),
    (["--dataset", "iris", "--starts", "4"], "--starts applies to --function only"),
    (["--function", "anisotropic", "--seed", "3"], "--seed draws --starts above 1"),
])
def test_an_option_of_the_other_mode_is_refused_not_ignored(tmp_path, args, fragment):
    out = tmp_path / "out"
    assert fragment in assert_usage_error(invoke("optimize", *args, "--out", out), out)


def test_options_a_model_ignores_do_not_multiply_its_cells(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--model", "perceptron,mlp",
                       "--hidden", "4", "--hidden", "4,4", "--batchnorm", "on,off",
                       "--opt", "adam[lr=0.05]", "--epochs", "2", "--seeds", "2")
    cells = run.summary.cell.tolist()
    assert len(cells) == 5 and len(set(cells)) == 5  # 1 perceptron + 2 depths x 2 batch norms
    perceptron = run.summary[run.summary.model == "perceptron"]
    assert len(perceptron) == 1 and perceptron.hidden.isna().all()


def test_a_finished_run_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    run_optimize(out, "--dataset", "iris", "--epochs", "1", "--seeds", "1")
    before = (out / "manifest.json").read_bytes()
    result = invoke("optimize", "--dataset", "iris", "--epochs", "1", "--out", out)
    assert result.exit_code == 2 and "already holds a finished run" in result.stderr
    assert (out / "manifest.json").read_bytes() == before


def test_time_ordered_data_gets_a_time_ordered_split():
    plan = runner.prepare(runner.OptimizeConfig(data=runner.DataSpec("series"), seeds=1))
    member = plan.members[0]
    assert member.train.max() < member.evals["val"].min() < member.evals["test"].min()


def test_a_negative_seed_is_exit_2(tmp_path):
    out = tmp_path / "out"
    assert "--seed" in assert_usage_error(
        invoke("optimize", "--dataset", "iris", "--seed", "-1", "--out", out), out)


def test_a_diverged_cell_ranks_after_every_other(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--hidden", "8", "--epochs", "3",
                       "--seeds", "2", "--preprocess", "none",
                       "--opt", "sgd[lr=0.01],sgd[lr=1e20],adam[lr=0.01]")
    ranked = run.summary.sort_values("rank")
    assert ranked.iloc[-1].status == "diverged" and ranked.iloc[-1].lr == 1e20
    assert ranked.iloc[-1].vs_best == "diverged" and "≈" not in run.row("sgd lr=1e+20")


@pytest.mark.parametrize("extra", [["--lr", "0.1"], ["--opt", "sgd[lr=0.1]"]])
def test_lr_grid_refuses_a_learning_rate_it_would_override(tmp_path, extra):
    out = tmp_path / "out"
    message = assert_usage_error(invoke("optimize", "--dataset", "iris", "--lr-grid",
                                        "1e-3:1:3", *extra, "--out", out), out)
    assert "--lr-grid sets every entry's learning rate" in message


def test_an_unbounded_function_with_many_steps_warns_nothing(tmp_path):
    """saddle has no f*: its paths escape downhill for thousands of steps, with no warning."""
    run = run_optimize(tmp_path / "out", "--function", "saddle", "--steps", "3000")
    assert run.result.stderr.strip() == f"results: {tmp_path / 'out'}"
    assert run.summary.steps_to_tol.isna().all()


# ---------------------------------------------------------------- 11. statuses that mean it


@pytest.fixture(scope="module")
def fast_rates(tmp_path_factory) -> Run:
    """The issue's case: Adam at 0.3 and 3 reach ~0.9 accuracy with a loss far above its start."""
    return run_optimize(tmp_path_factory.mktemp("rates") / "out", "--dataset", "digits",
                        "--opt", "sgd,adam", "--lr-grid", "0.3:3:3", "--seeds", "4",
                        "--epochs", "3")


def test_a_model_that_learned_is_never_stalled_and_finite_is_never_diverged(fast_rates):
    summary = fast_rates.summary
    for lr in (0.3, 3.0):
        [row] = [r for r in summary.itertuples() if r.optimizer == "adam"
                 and math.isclose(r.lr, lr)]
        assert row.val_mean > 0.85, lr
        assert row.status != "stalled" and "stalled" not in row.statuses, (lr, row.statuses)
        assert "diverged" not in row.statuses, (lr, row.statuses)  # its losses stayed finite
    curves = fast_rates.curves
    adam = curves[(curves.optimizer == "adam") & (curves.split == "train")
                  & (curves.metric == "loss")]
    assert np.isfinite(adam.value).all()


def test_an_unstable_trial_can_be_chosen_a_diverged_one_never():
    from dlbench.engine.cells import Cell
    from dlbench.engine.members import Member, MemberResult, TrainConfig
    from dlbench.engine.predictions import Predictions
    from dlbench.evaluate.metrics import METRICS
    from dlbench.nn.models import ModelSpec
    from dlbench.optim.optimizers import OptimSpec
    from dlbench.runners import tuning

    y = np.array([0, 1, 0, 1])

    def trial(lr, right):
        cell = Cell(ModelSpec(), TrainConfig(OptimSpec("adam", lr)))
        pred = Predictions(y, np.where(np.arange(4) < right, y, 1 - y), None, 2)
        member = Member({"seed": -1}, 1, np.arange(4), {"val": np.arange(4)})
        return cell, MemberResult(member, "ok", None, [], [], {"val": pred}, {})

    trials = [(*trial(0.01, 2), "ok"), (*trial(0.3, 3), "unstable"), (*trial(3.0, 4), "diverged")]
    [choice] = tuning.choose(trials, METRICS.get("accuracy"))
    assert choice.cell.train.optimizer.lr == 0.3 and choice.at_edge is None
    [edge] = tuning.choose(trials[:2], METRICS.get("accuracy"))
    assert edge.at_edge == "highest"


def test_a_rate_chosen_at_the_edge_of_the_range_is_warned_about(tuned):
    edges = tuned.manifest["tuned_at_edge"]
    for cell, edge in edges.items():
        assert f"warning: {cell}: --tune chose the {edge} rate" in tuned.result.stderr
    chosen = tuned.summary.set_index("optimizer").lr
    for opt, lr in chosen.items():
        at_edge = math.isclose(lr, 1e-4) or math.isclose(lr, 1.0)
        assert (f"{opt} lr={lr:g}" in edges) == at_edge


def test_tune_with_an_lr_grid_takes_only_its_range(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--hidden", "8", "--epochs", "2",
                       "--seeds", "2", "--opt", "sgd", "--tune", "lr", "--budget", "3",
                       "--lr-grid", "0.01:1:4")
    assert run.manifest["trials"] == 3 and run.manifest["cells"] == 1
    trials = run.scores[(run.scores.phase == "trial") & (run.scores.split == "val")
                        & (run.scores.metric == "accuracy")]
    assert sorted(trials.lr) == pytest.approx([0.01, 0.1, 1.0])  # each rate once


def test_a_seed_that_diverged_never_reaches_the_target(tmp_path):
    run = run_optimize(tmp_path / "out", "--dataset", "iris", "--hidden", "8", "--epochs", "3",
                       "--seeds", "2", "--opt", "sgd[lr=1e20]", "--target-accuracy", "0.1")
    [row] = run.summary.itertuples()
    assert row.status == "diverged" and math.isinf(row.epochs_to_target)


def test_newton_gives_the_same_numbers_on_a_rerun(tmp_path):
    args = ["--dataset", "diabetes", "--opt", "newton[lr=10]", "--hidden", "4", "--epochs", "3",
            "--seeds", "2"]
    first, second = (run_optimize(tmp_path / name, *args) for name in ("a", "b"))
    assert (first.out / "scores.csv").read_bytes() == (second.out / "scores.csv").read_bytes()


def test_a_sweep_over_two_models_draws_a_line_each(tmp_path, monkeypatch):
    from dlbench.output import plots

    seen = []
    def record(path, sweep, title):
        seen.append(sweep)
        Path(path).write_bytes(b"")

    monkeypatch.setattr(plots, "lr_sweep_plot", record)
    run_optimize(tmp_path / "out", "--dataset", "iris", "--model", "linear,mlp", "--hidden", "8",
                 "--opt", "sgd", "--lr-grid", "0.01:1:3", "--epochs", "2", "--seeds", "1")
    [sweep] = seen
    assert set(sweep.optimizer) == {"linear · sgd", "mlp · sgd"}
    assert sweep.groupby("optimizer").lr.nunique().tolist() == [3, 3]


def test_batch_size_and_loss_are_grid_axes_with_counted_cost(tmp_path):
    """Each batch size trains in its own stack; the counted cost shows what a step costs:
    the same passes over the data, ceil(rows / batch) gradient evaluations per pass."""
    run = run_optimize(tmp_path / "bs", "--dataset", "iris", "--hidden", "8", "--opt", "adam",
                       "--batch-size", "8,32", "--loss", "cross-entropy,mse", "--epochs", "3",
                       "--seeds", "2")
    summary = run.summary.set_index(["batch_size", "loss"]).sort_index()
    assert sorted(summary.index) == [(8, "cross-entropy"), (8, "mse"), (32, "cross-entropy"),
                                     (32, "mse")]
    rows = run.manifest["rows"]["train"]
    for (batch, _), r in summary.iterrows():
        assert r.passes == 3
        assert r.grad_evals == 3 * math.ceil(rows / batch)
    assert {"batch 8 · cross-entropy loss", "batch 32 · mse loss"} <= set(run.summary.cell)


def test_a_batch_size_list_with_a_full_batch_optimizer_is_refused(tmp_path):
    out = tmp_path / "out"
    line = assert_usage_error(invoke("optimize", "--opt", "lbfgs,adam", "--batch-size", "16,64",
                                     "--out", out), out)
    assert "lbfgs" in line and "elementwise" in line
