"""`dlbench transfer`: strategies freeze and re-initialise what they claim, every strategy sees
the same target rows, the source checkpoint round-trips through plain PyTorch, and bad input is
one line before anything trains."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

from dlbench.data.datasets import DataSpec
from dlbench.engine import checkpoints
from dlbench.engine.members import TrainConfig
from dlbench.evaluate import verdicts
from dlbench.evaluate.metrics import METRICS
from dlbench.nn.models import ModelSpec, Shape, build_model
from dlbench.optim.optimizers import OptimSpec
from dlbench.runners import transfer as runner
from tests.cli_helpers import RUN_FILES, assert_usage_error, invoke

DIGITS = ("--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp",
          "--hidden", "16,8", "--source-epochs", "3", "--epochs", "3", "--seeds", "2",
          "--target-size", "10,60")
SPEC = ModelSpec("mlp", hidden=(16, 8))


def config(**changes) -> runner.TransferConfig:
    base = runner.TransferConfig(DataSpec("digits[0-4]"), DataSpec("digits[5-9]"), SPEC,
                                 strategies=tuple(runner.STRATEGIES.names()),
                                 target_sizes=(10, 40), source_epochs=2, seeds=2,
                                 train=TrainConfig(OptimSpec("adam", 0.01), epochs=2))
    return runner.replace(base, **changes)


@pytest.fixture(scope="module")
def trained():
    plan = runner.prepare(config())
    weights, _ = runner._pretrained(plan, None)
    return plan, weights


def test_each_strategy_freezes_and_reinitialises_what_it_claims(trained):
    plan, source = trained
    [target] = plan.targets
    runs = runner.run_cells(target.dataset, plan.cells,
                            runner.target_members(plan, target, source), target.chance)
    head = plan.layers.head
    lowest = plan.layers.units[0][0]
    for run in runs:
        strategy = run.cell.tag("strategy")
        for r in run.results:
            for name, value in r.weights.items():
                if name.startswith(head):  # the head always trains, from a fresh draw
                    assert not torch.equal(value, source[name])
                elif strategy == "linear-probe" or (strategy in ("finetune-top", "probe-early")
                                                    and name.startswith(lowest)):
                    torch.testing.assert_close(value, source[name])  # frozen source weights
                else:  # scratch trains its own weights; fine-tuning moves the source's
                    assert not torch.equal(value, source[name]), (strategy, name)


def test_probe_early_redraws_its_top_layers_and_keeps_the_lower_ones(trained):
    plan, source = trained
    [target] = plan.targets
    members = runner.target_members(plan, target, source)
    [cell] = [c for c in plan.cells if c.tag("strategy") == "probe-early"][:1]
    init = members(cell)[0].init
    top = plan.layers.units[-2][0]
    assert not any(k.startswith((top, plan.layers.head)) for k in init)  # fresh draws
    lowest = plan.layers.units[0][0]
    assert all(torch.equal(init[k], source[k]) for k in init if k.startswith(lowest))


def test_every_strategy_sees_the_same_target_rows_and_the_same_test_rows(trained):
    plan, _ = trained
    [target] = plan.targets
    for (size, _), rows in target.rows.items():
        assert len(rows) == size
        assert not set(rows) & set(target.test)
    assert not np.array_equal(target.rows[(40, 0)], target.rows[(40, 1)])  # a sample per seed


def test_the_checkpoint_round_trips_through_a_plain_pytorch_model():
    for spec, shape in [(ModelSpec("mlp", hidden=(16, 8), batchnorm=True), Shape(12, None, 3)),
                        (ModelSpec("cnn1d", channels=(4, 6)), Shape(40, (1, 40), 10)),
                        (ModelSpec("cnn2d", channels=(4,)), Shape(64, (1, 8, 8), 10))]:
        stacked = build_model(spec, shape, [5]).eval()
        weights = {k: v[0] for k, v in stacked.state_dict().items()}
        plain = checkpoints.plain_model(spec, shape).eval()
        plain.load_state_dict(checkpoints.to_plain(spec, shape, weights))
        x = torch.randn(7, shape.n_inputs)
        with torch.no_grad():
            torch.testing.assert_close(plain(x), stacked(x.unsqueeze(0))[0])
        back = checkpoints.from_plain(spec, shape, plain.state_dict())
        assert all(torch.equal(back[k], weights[k]) for k in weights)
        bare = {k.removeprefix("layers."): v for k, v in plain.state_dict().items()}
        assert checkpoints.from_plain(spec, shape, bare).keys() == back.keys()  # nn.Sequential


def test_a_run_writes_its_files_and_a_loaded_checkpoint_gives_the_same_numbers(tmp_path):
    first = invoke("transfer", *DIGITS, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    files = {p.name for p in (tmp_path / "a").iterdir()}
    assert files == {"scores.csv", "curves.csv", "summary.csv", "transfer.png", "source.pt",
                     "manifest.json", *RUN_FILES}
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert set(summary.strategy) == {"scratch", "linear-probe", "finetune-top", "finetune-all"}
    assert set(summary.target_size) == {10, 60}
    assert (summary.groupby("target_size").winner.count() == 1).all()  # one winner per size
    scores = pd.read_csv(tmp_path / "a" / "scores.csv")
    assert {"strategy", "target_size"} <= set(scores.columns)
    loaded = list(DIGITS)
    del loaded[loaded.index("--source-epochs"):loaded.index("--source-epochs") + 2]
    second = invoke("transfer", *loaded, "--source-checkpoint", tmp_path / "a" / "source.pt",
                    "--out", tmp_path / "b")
    assert second.exit_code == 0, second.output
    again = pd.read_csv(tmp_path / "b" / "scores.csv")
    pd.testing.assert_series_equal(scores.value, again.value)  # the same source weights
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["source"]["checkpoint"].endswith("source.pt")


@pytest.mark.parametrize(("args", "fragment"), [
    (("--strategy", "scratch,probe"), "unknown strategy 'probe'; choose one of: scratch"),
    (("--top", "5", "--strategy", "finetune-top"), "--top 5: model mlp has 2 pretrained"),
    (("--top", "1", "--strategy", "scratch"), "--top applies to --strategy finetune-top"),
    (("--target-size", "5000"), "--target-size 5000"),
    (("--target", "iris"), "differ in input shape"),
    (("--target", "digits[5-]"), ""),
    (("--source-checkpoint", "/nonexistent.pt"), "no such file"),
])
def test_bad_input_is_one_line_before_training(tmp_path, args, fragment):
    out = tmp_path / "out"
    base = ["--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp",
            "--hidden", "16,8", "--target-size", "10,60"]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[base.index(flag) + 1] = value
        else:
            base += [flag, value]
    line = assert_usage_error(invoke("transfer", *base, "--out", out), out)
    assert fragment in line, line


def test_a_corrupt_or_mismatched_checkpoint_is_refused_naming_the_layer(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    args = ["--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp",
            "--hidden", "16,8", "--target-size", "10"]
    line = assert_usage_error(invoke("transfer", *args, "--source-checkpoint", bad,
                                     "--out", out), out)
    assert "not a PyTorch state dict" in line
    other = tmp_path / "other.pt"
    torch.save({"layers.0.weight": torch.zeros(32, 64)}, other)
    line = assert_usage_error(invoke("transfer", *args, "--source-checkpoint", other,
                                     "--out", out), out)
    assert "'layers.0.weight' does not fit model mlp: (16, 64) expected, got (32, 64)" in line


def test_members_of_different_strategies_in_one_stack_equal_each_strategy_alone(trained):
    plan, source = trained
    [target] = plan.targets
    members = runner.target_members(plan, target, source)
    together = runner.run_cells(target.dataset, plan.cells, members, target.chance)
    for run in together:
        [alone] = runner.run_cells(target.dataset, [run.cell], members, target.chance)
        for a, b in zip(run.results, alone.results, strict=True):
            for name, value in a.weights.items():
                torch.testing.assert_close(value, b.weights[name], rtol=1e-4, atol=1e-5)


def test_similarity_runs_a_permuted_target_and_the_preset_measures_the_advice(tmp_path):
    out = tmp_path / "out"
    result = invoke("transfer", "--preset", "quadrants", "--source", "digits[0-4]", "--target",
                    "digits[5-9]", "--model", "mlp", "--hidden", "16,8", "--target-size",
                    "10,60", "--source-epochs", "2", "--epochs", "2", "--seeds", "2",
                    "--out", out)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.similarity) == {"similar", "different"}
    assert set(summary.target) == {"digits[5-9]", "digits[5-9,transform=permuted]"}
    quadrants = pd.read_csv(out / "quadrants.csv")
    assert list(quadrants.quadrant) == ["small + similar", "large + similar",
                                        "small + different", "large + different"]
    assert set(quadrants.verdict) <= {"agrees", "disagrees", "inconclusive", "diverged"}
    assert quadrants.set_index("quadrant").loc["small + different", "advised"] == "probe-early"
    assert "advice 'a linear probe on the frozen features'" in result.stdout
    # the tests and the margin stand beside each verdict: table, CSV and manifest
    assert (quadrants.margin == 0.01).all() and quadrants.tests.str.contains("TOST").all()
    method = json.loads((out / "manifest.json").read_text())["quadrants"]
    assert method["margin"] == "0.01 (accuracy)" and "paired t" in method["tests"]
    stdout = " ".join(result.stdout.split())
    for q in quadrants.itertuples():
        assert f"{q.advised}: {q.verdict} (paired t and TOST within ±0.01" in stdout
        shown = [part.split(": ")[1].split(" (")[0] for part in q.versus.split("; ")]
        assert len(shown) == len(runner.STRATEGIES.names()) - 1  # against each other one
        assert (q.verdict == "agrees") == all(s in ("better", "equivalent") for s in shown)


@pytest.mark.parametrize(("args", "fragment"), [
    (("--similarity", "similar,alien"), "unknown similarity 'alien'"),
    (("--different", "digits[0-4]"), "--different names the different target"),
    (("--preset", "quadrants", "--strategy", "scratch"), "--strategy is set by --preset"),
    (("--preset", "quadrants", "--target-size", "10"), "two --target-size values"),
    (("--preset", "halves"), "unknown --preset 'halves'; choose one of: quadrants"),
])
def test_bad_similarity_and_preset_input_is_one_line(tmp_path, args, fragment):
    out = tmp_path / "out"
    line = assert_usage_error(invoke("transfer", "--source", "digits[0-4]", "--target",
                                     "digits[5-9]", "--model", "mlp", "--target-size", "10,60",
                                     *args, "--out", out), out)
    assert fragment in line, line


def test_a_frozen_batch_norm_layer_keeps_its_running_estimates():
    """Frozen means frozen: a linear probe's batch norm normalises with the source's running
    estimates in training too, and never updates them."""
    plan = runner.prepare(config(model=ModelSpec("mlp", hidden=(16,), batchnorm=True),
                                 strategies=("linear-probe", "finetune-all")))
    source, _ = runner._pretrained(plan, None)
    [target] = plan.targets
    runs = runner.run_cells(target.dataset, plan.cells,
                            runner.target_members(plan, target, source), target.chance,
                            weights=True)
    for run in runs:
        frozen = run.cell.tag("strategy") == "linear-probe"
        for r in run.results:
            for name in ("layers.1.running_mean", "layers.1.running_var", "layers.1.weight"):
                assert torch.equal(r.weights[name], source[name]) == frozen, (name, frozen)


def test_a_checkpoint_missing_a_layer_is_refused_and_its_head_may_differ(tmp_path):
    spec, shape = ModelSpec("mlp", hidden=(16, 8)), Shape(64, None, 5)
    plain = checkpoints.to_plain(spec, shape, {k: v[0] for k, v in
                                               build_model(spec, shape, [1]).state_dict().items()})
    partial = {k: v for k, v in plain.items() if not k.startswith("layers.0.")}
    with pytest.raises(runner.DlbenchError, match="lacks 'layers.0.weight'"):
        checkpoints.from_plain(spec, shape, partial)
    ten_classes = plain | {"layers.4.weight": torch.zeros(10, 8), "layers.4.bias": torch.zeros(10)}
    body = checkpoints.from_plain(spec, shape, ten_classes, skip="layers.4.")
    assert "layers.4.weight" not in body and "layers.0.weight" in body


def test_body_lr_scale_and_a_named_different_target_run_end_to_end(tmp_path):
    base = ["--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp", "--hidden",
            "16,8", "--target-size", "40", "--source-epochs", "2", "--epochs", "3", "--seeds",
            "2", "--strategy", "finetune-all", "--similarity", "similar,different",
            "--different", "digits[5-9,transform=reversed]"]
    means = []
    for scale in ("1", "0.1"):
        out = tmp_path / scale
        result = invoke("transfer", *base, "--body-lr-scale", scale, "--out", out)
        assert result.exit_code == 0, result.output
        summary = pd.read_csv(out / "summary.csv")
        assert set(summary.target) == {"digits[5-9]", "digits[5-9,transform=reversed]"}
        means.append(summary.test_mean.tolist())
        assert json.loads((out / "manifest.json").read_text())["config"]["body_lr_scale"] == \
            float(scale)
    assert means[0] != means[1]  # a smaller rate on the pretrained layers trains differently


# --- the quadrants: the advice against every other strategy, paired ----------------------------

ACCURACY = METRICS.get("accuracy")
QUADRANTS = config(similarity=("similar", "different"))  # small + similar: linear-probe advised


def seeds(*per_seed: float, spread: float = 0.01) -> verdicts.Scored:
    """Seeds' test accuracies, with the same row-resampling noise for every strategy (paired)."""
    noise = np.random.default_rng(0).normal(0, spread, 1000)
    values = np.array(per_seed)
    return verdicts.Scored(values, values[:, None] + noise[None, :])


def small_similar(strategies: dict[str, verdicts.Scored]) -> pd.Series:
    """The small + similar quadrant's row, with the strategies run in the given order."""
    frame = pd.DataFrame({"similarity": "similar", "target_size": 10, "strategy": list(strategies),
                          "test_mean": [s.per_seed.mean() for s in strategies.values()]})
    quadrants = runner.advice(QUADRANTS, ACCURACY, frame, list(strategies.values()))
    return quadrants.set_index("quadrant").loc["small + similar"]


def test_the_sample_maximum_not_shown_better_is_inconclusive_not_agreement():
    row = small_similar({"linear-probe": seeds(0.80, 0.70, 0.78),  # the sample max, 0.76
                         "finetune-all": seeds(0.74, 0.76, 0.75),  # 0.75: n.s., not within 0.01
                         "scratch": seeds(0.50, 0.52, 0.49)})  # clearly worse
    assert row.winner == "linear-probe"
    assert row.verdict == "inconclusive", row.versus
    assert "finetune-all: inconclusive" in row.versus and "scratch: better" in row.versus
    assert row.margin == 0.01 and "TOST" in row.tests


@pytest.mark.parametrize("others, verdict", [
    ({"finetune-all": seeds(0.60, 0.62, 0.61)}, "agrees"),  # shown better than each
    ({"finetune-all": seeds(0.799, 0.701, 0.781, spread=0.001)}, "agrees"),  # within 0.01
    ({"finetune-all": seeds(0.90, 0.82, 0.88)}, "disagrees"),  # another shown better
])
def test_agreement_needs_each_other_strategy_shown_worse_or_equivalent(others, verdict):
    row = small_similar({"linear-probe": seeds(0.80, 0.70, 0.78, spread=0.001),
                         "scratch": seeds(0.50, 0.52, 0.49, spread=0.001), **others})
    assert row.verdict == verdict, row.versus


def test_an_exact_tie_gives_one_verdict_and_one_winner_in_any_strategy_order():
    scores = {"linear-probe": seeds(0.80, 0.70, 0.75), "finetune-all": seeds(0.70, 0.80, 0.75),
              "scratch": seeds(0.50, 0.52, 0.49)}  # the probe and fine-tuning tie at 0.75
    rows = [small_similar({name: scores[name] for name in order})
            for order in itertools.permutations(scores)]
    assert {(r.verdict, r.winner, r.versus) for r in rows} == {
        (rows[0].verdict, "linear-probe", rows[0].versus)}
    assert rows[0].verdict == "inconclusive"
