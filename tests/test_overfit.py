"""`dlbench overfit`: the onset and gap measures, every regularizer end to end, the files and
the table, and bad input refused before training."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dlbench.engine.cells import AXES
from dlbench.engine.regularizers import REGULARIZERS, parse_regularizers
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec
from dlbench.runners import overfit as runner
from dlbench.runners.overfit import OverfitConfig, onset
from tests.cli_helpers import RUN_FILES, assert_usage_error, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ("--dataset", "digits", "--train-rows", "200", "--hidden", "16", "--epochs", "4",
         "--seeds", "2")


def run_overfit(out, *args: str):
    result = invoke("overfit", *args, "--out", out)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    return result


def csv(out, stem: str) -> pd.DataFrame:
    return pd.read_csv(out / f"{stem}.csv", dtype={"hidden": str},
                       keep_default_na=False, na_values=[""])


# --- the measures ----------------------------------------------------------------------------


def test_onset_is_the_lowest_validation_loss_when_the_loss_then_stays_up():
    assert onset([2.0, 1.5, 1.0, 1.2, 1.4, 1.6]) == 2  # bottoms out at 2, ends 60% higher
    assert math.isnan(onset([2.0, 1.5, 1.2, 1.1, 1.05, 1.0]))  # falls throughout
    assert math.isnan(onset([2.0, 1.0, 1.02, 1.03]))  # ends 3% above: within the 5% tolerance
    assert math.isnan(onset([2.0, 1.0, 3.0, 1.01]))  # a spike that came back down
    assert onset([2.0, 1.0, 1.2, float("nan")]) == 1  # NaN after divergence: the last finite
    assert math.isnan(onset([float("nan")] * 3))


def test_member_measures_read_the_curves(monkeypatch):
    class Fake:
        stopped_epoch = None

        def curve(self, split, metric):
            return {("val", "loss"): [2.0, 1.0, 1.5], ("train", "accuracy"): [0.1, 0.6, 0.9],
                    ("val", "accuracy"): [0.1, 0.5, 0.55], ("train", "loss"): [2.0, 0.8, 0.3]
                    }[(split, metric)]

    m = runner.member_measures(Fake(), "classification")
    assert m == pytest.approx({"onset_epoch": 1, "best_epoch": 1, "gap_final": 0.35,
                               "gap_best": 0.1, "val_loss_final": 1.5})
    r = runner.member_measures(Fake(), "regression")
    assert r["gap_final"] == pytest.approx(1.2) and r["gap_best"] == pytest.approx(0.2)
    stopped = Fake()
    stopped.stopped_epoch = 2  # early stopping delivers its best epoch's weights: measured there
    s = runner.member_measures(stopped, "classification")
    assert s["gap_final"] == pytest.approx(0.1) and s["val_loss_final"] == 1.0
    assert all(math.isnan(v) for v in
               runner.member_measures(Fake(), "classification", "diverged").values())


# --- the command -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit") / "run"
    result = run_overfit(out, *SMALL, "--reg",
                         "none,l2[strength=0.01],dropout[p=0.3],early-stop[patience=1],"
                         "ensemble[n=2]")
    return out, result


def test_a_run_writes_curves_scores_summary_and_the_figure(small):
    out, result = small
    assert {p.name for p in out.iterdir()} == {"scores.csv", "curves.csv", "summary.csv",
                                               "overfit.png", "manifest.json", *RUN_FILES}
    assert (out / "overfit.png").read_bytes()[:8] == PNG_MAGIC
    curves, scores, summary = csv(out, "curves"), csv(out, "scores"), csv(out, "summary")
    assert set(curves.regularizer) == {"none", "l2[strength=0.01]", "dropout[p=0.3]",
                                       "early-stop[patience=1]", "ensemble[n=2]"}
    assert {"train", "val"} <= set(curves.split) and "test" not in set(curves.split)
    measures = scores[scores.checkpoint.isna()]
    assert set(measures.metric) == {"onset_epoch", "best_epoch", "gap_final", "gap_best",
                                    "val_loss_final"}
    assert set(scores.checkpoint.dropna()) == {"final", "best"}
    assert len(summary) == 5 and list(summary.vs_none)[0] == "baseline"
    cells = ["cell", *(a.name for a in AXES)]
    intervals = [f"{name}_{part}" for name in ("val_best", "val_final", "test_best", "test")
                 for part in ("mean", "ci_low", "ci_high", "ci_half", "ci_clipped")]
    assert list(summary.columns) == [  # as the README documents them
        *cells, "metric", "train_rows", "onset_epoch", "onset_seeds", "seeds", "best_epoch",
        "gap_final", "gap_final_ci_half", "gap_best", "gap_best_ci_half", *intervals,
        "val_loss_final", "grad_evals", "passes", "seconds_per_model", "status", "statuses",
        "diff_none", "diff_none_ci_low", "diff_none_ci_high", "diff_none_ci_half", "p_vs_none",
        "vs_none"]
    assert list(scores.columns[:len(cells) + 2]) == ["dataset", "phase", *cells]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "overfit" and manifest["rows"]["train"] == 200
    assert "Δ none" in result.stdout and "early-stop[patience=1]" in result.stdout


def test_early_stopping_delivers_its_best_epoch(small):
    out, _ = small
    scores = csv(out, "scores")
    stop = scores[(scores.regularizer == "early-stop[patience=1]") & (scores.split == "test")
                  & (scores.metric == "accuracy")]
    final = stop[stop.checkpoint == "final"].value.to_numpy()
    best = stop[stop.checkpoint == "best"].value.to_numpy()
    np.testing.assert_allclose(final, best)


def test_an_ensemble_is_one_row_per_seed_and_costs_its_members(small):
    out, _ = small
    summary = csv(out, "summary").set_index("regularizer")
    scores = csv(out, "scores")
    ensemble = scores[(scores.regularizer == "ensemble[n=2]") & (scores.split == "test")
                      & (scores.metric == "accuracy") & (scores.checkpoint == "final")]
    assert sorted(ensemble.seed) == [0, 1]
    assert summary.loc["ensemble[n=2]", "grad_evals"] == 2 * summary.loc["none", "grad_evals"]


def test_ensemble_predictions_average_their_members_probabilities():
    config = OverfitConfig(parse_regularizers("none,ensemble[n=3]"),
                           data=runner.DataSpec("digits"), model=ModelSpec("mlp", hidden=(8,)),
                           train_rows=150, seeds=2,
                           train=runner.TrainConfig(runner.OptimSpec("adam", 0.01), epochs=2))
    plan = runner.prepare(config)
    raw = runner.run_cells(plan.dataset, plan.cells, plan.members_of, plan.chance, best=True)
    single, ensemble = raw
    combined = runner._combined(ensemble, plan.chance)
    assert len(ensemble.results) == 6 and len(combined.results) == 2
    for s in range(2):
        members = ensemble.results[3 * s:3 * s + 3]
        expected = np.mean([m.predictions["test"].proba for m in members], axis=0)
        np.testing.assert_allclose(combined.results[s].predictions["test"].proba, expected)
        # its first member is the single-model cell's member for that seed: the same model,
        # trained in a stack of 6 against one of 2 (other BLAS kernels), so to float tolerance
        np.testing.assert_allclose(members[0].predictions["test"].proba,
                                   single.results[s].predictions["test"].proba,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [r.name for r in REGULARIZERS])
def test_every_regularizer_runs_end_to_end(tmp_path, name):
    model = {"stochastic-depth": ("--model", "resmlp", "--hidden", "8,8"),
             "fractional-max-pool": ("--model", "cnn2d", "--channels", "4")}.get(
        name, ("--hidden", "8"))
    extra = ("--epochs", "4") if name == "snapshot" else ()
    args = ["--dataset", "digits", "--train-rows", "120", "--epochs", "2", "--seeds", "2",
            *model, *extra, "--reg", f"none,{name}" if name != "none" else "none"]
    if name == "snapshot":
        args[args.index("--reg") + 1] = "none,snapshot[n=2]"
    run_overfit(tmp_path / "out", *args)
    summary = csv(tmp_path / "out", "summary")
    assert summary.status.isin(["ok", "stalled", "unstable"]).all()


def test_a_capacity_sweep_and_a_learning_curve(tmp_path):
    out = tmp_path / "out"
    run_overfit(out, "--dataset", "digits", "--train-rows", "300", "--epochs", "2", "--seeds",
                "2", "--reg", "none", "--width", "4,16", "--depth", "1,2",
                "--train-fraction", "0.5,1")
    summary = csv(out, "summary")
    assert sorted(set(summary.hidden)) == ["16", "16,16", "4", "4,4"]
    assert sorted(set(summary.train_rows)) == [150, 300]
    learning = csv(out, "learning_curve")
    assert set(learning.split) == {"train", "val"} and set(learning.train_rows) == {150, 300}
    assert (out / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC


def test_same_command_and_seed_give_the_same_numbers(tmp_path):
    args = ("--dataset", "digits", "--train-rows", "100", "--hidden", "8", "--epochs", "2",
            "--seeds", "2", "--reg", "none,dropout")
    run_overfit(tmp_path / "a", *args)
    run_overfit(tmp_path / "b", *args)
    a, b = csv(tmp_path / "a", "scores"), csv(tmp_path / "b", "scores")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(("args", "fragment"), [
    (("--reg", "none,l3"), "unknown regularizer 'l3'; choose one of: none, l1, l2"),
    (("--reg", "dropout[p=1]"), "p must be in [0, 1)"),
    (("--reg", "dropout[p=-0.1]"), "p must be in [0, 1)"),
    (("--reg", "l2[strength=-1]"), "strength must be >= 0"),
    (("--reg", "early-stop[patience=2.5]"), "patience takes a whole number"),
    (("--reg", "none,none"), "lists none twice"),
    (("--reg", "stochastic-depth"), "use --model resmlp"),
    (("--reg", "augment[shift=2]", "--dataset", "iris"), "augment shift needs sequences"),
    (("--width", "0,8"), "--width values must be positive"),
    (("--depth", "x"), "--depth takes comma-separated integers"),
    (("--train-fraction", "0,0.5"), "--train-fraction values must be in (0, 1]"),
    (("--train-fraction", "1.5"), "--train-fraction values must be in (0, 1]"),
    (("--train-rows", "100000"), "ask for at most that many"),
    (("--opt", "sgd,adam"), "overfit trains one optimizer"),
    (("--model", "linear", "--width", "8"), "use --model mlp or resmlp"),
    (("--reg", "max-norm[c=0]"), "c must be > 0"),  # 0 would make it a copy of none
    (("--reg", "tta[n=1]"), "n must be >= 2"),
    (("--reg", "snapshot[n=5]", "--epochs", "3"), "raise --epochs or lower n"),
    (("--missing", "mean"), "digits has no missing values"),
])
def test_bad_input_is_one_line_before_training(tmp_path, args, fragment):
    out = tmp_path / "out"
    result = invoke("overfit", "--dataset", "digits", *args, "--out", out)
    line = assert_usage_error(result, out)
    assert fragment in line, line


def test_every_regularizer_is_refused_with_its_valid_names_listed():
    with pytest.raises(DlbenchError) as error:
        parse_regularizers("dropuot")
    for info in REGULARIZERS:
        assert info.name in str(error.value)


def test_regularizers_lists_every_entry_with_its_defaults():
    result = invoke("regularizers")
    assert result.exit_code == 0 and result.stderr == ""
    for info in REGULARIZERS:
        assert info.name in result.stdout


@pytest.mark.parametrize("args", [
    ("--model", "resmlp", "--hidden", "8,8", "--stochastic-depth", "0.2"),
    ("--model", "mlp", "--hidden", "8", "--dropconnect", "0.3"),
    ("--model", "cnn2d", "--channels", "4", "--pool", "fractional"),
])
def test_the_model_side_regularizers_are_options_of_cv_and_optimize(tmp_path, args):
    for command in ("cv", "optimize"):
        out = tmp_path / command
        result = invoke(command, "--dataset", "digits", "--epochs", "1", *args,
                        *(("--opt", "adam", "--seeds", "2") if command == "optimize" else ()),
                        "--out", out)
        assert result.exit_code == 0, result.output
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["command"] == command


def test_a_repeated_width_is_refused_as_a_repeated_regularizer_is(tmp_path):
    out = tmp_path / "out"
    message = assert_usage_error(invoke("overfit", "--dataset", "digits", "--width", "8,8,4",
                                        "--out", out), out)
    assert "--width lists 8 twice" in message
