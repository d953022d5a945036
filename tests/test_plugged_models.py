"""The user's own nn.Module, `--model path/to/file.py:Name[k=v]` (dlbench/nn/plugged.py):
stacked exactly with torch.func, through the engine and every command that takes --model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_helpers import (
    EXECUTOR_IDS,
    EXECUTORS,
    assert_scores_as_inline,
    assert_suite_entry_as_command_line,
    assert_usage_error,
    invoke,
)
from test_contract import (
    BATCH,
    Case,
    assert_same_member,
    check_plain,
    check_stacking,
    halved_lr,
    make_data,
    make_members,
)

from dlbench import plugins
from dlbench.engine import checkpoints
from dlbench.engine.members import TrainConfig, model_shape
from dlbench.engine.regimens import Regimen
from dlbench.engine.trainer import check_config, train, train_grid
from dlbench.nn.models import ModelSpec, build_model, parse_model
from dlbench.nn.plugged import KIND, PluggedModel, weight_units
from dlbench.optim.optimizers import OptimSpec

MODELS = '''
import math

from torch import nn


class Net(nn.Module):
    """An MLP with batch norm and dropout: random draws and running statistics. (No bias
    before batch norm: its gradient is rounding noise, which Adam would amplify.)"""

    def __init__(self, input_shape, n_outputs, width=8, p=0.3):
        super().__init__()
        if width < 1:
            raise ValueError(f"Net wants width >= 1, got {width}")
        self.body = nn.Sequential(nn.Flatten(),
                                  nn.Linear(math.prod(input_shape), width, bias=False),
                                  nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(p))
        self.fc = nn.Linear(width, n_outputs)

    def forward(self, x):
        return self.fc(self.body(x))


class Named(Net):
    """Its head named: the body's linear layer is not the last one in named_modules order."""

    head = "fc"

    def __init__(self, input_shape, n_outputs, width=8):
        super().__init__(input_shape, n_outputs, width, p=0.0)
        self.extra = nn.Linear(n_outputs, n_outputs)  # registered after fc: last, not the head


def mlp(input_shape, n_outputs, width=8):
    """A plain MLP from a function."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                         nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_outputs))


def wrong_outputs(input_shape, n_outputs):
    return nn.Linear(input_shape[0], n_outputs + 4)


def frozen(input_shape, n_outputs):
    net = nn.Linear(input_shape[0], n_outputs)
    net.requires_grad_(False)
    return net


def not_a_module(input_shape, n_outputs):
    return 3


NOT_A_MODEL = 3
'''
IRIS = ["--dataset", "iris", "--epochs", "2", "--seeds", "2"]


@pytest.fixture(scope="module")
def models_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mine") / "nets.py"
    path.write_text(MODELS)
    return path


def spec_of(path: Path, entry: str) -> ModelSpec:
    name, params = parse_model(f"{path}:{entry}")
    return ModelSpec(name, params=params)


def _run(*args):
    result = invoke(*args)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return result


# --- the contract ------------------------------------------------------------------------------


def adam(regimen: Regimen | None = None) -> TrainConfig:
    regimen = regimen or Regimen()
    return TrainConfig(OptimSpec("adam", 0.02), epochs=3, batch_size=BATCH, regimen=regimen)


@pytest.mark.parametrize("regimen", [Regimen(), Regimen(l2=1e-2, decay=0.1, max_norm=0.5),
                                     Regimen(patience=1)], ids=["cv", "overfit", "early-stop"])
@pytest.mark.parametrize("entry", ["Net[width=6]", "Net[width=6,p=0]"],
                         ids=["dropout", "no-dropout"])
def test_member_0_alone_equals_member_0_in_a_stack_and_a_plain_loop(models_file, regimen,
                                                                     entry):
    """tests/test_contract.py's contract for a user module with batch norm, with dropout
    (every training batch member by member, each with its own generator) and without (full
    batches vmapped, batch norm's statistics updated through vmap; a padded last batch member
    by member): member 0 alone == member 0 in a stack of four (members of other seeds and
    rows — a short last batch, padded differently — and another learning rate) == a plain
    PyTorch loop of the module (penalties, decay and max-norm on its nn.Linear weights)."""
    config = adam(regimen)
    case = Case(make_data(), spec_of(models_file, entry), config, halved_lr(config))
    check_config(config, case.spec, case.data)
    model = build_model(case.spec, model_shape(case.data), [0])
    assert model.random[True] == ("p=0" not in entry)  # which path training takes
    check_plain(case, check_stacking(case))


def test_the_stack_check_would_catch_draws_shared_across_members(models_file, monkeypatch):
    """vmap(randomness='different') — one global generator for every member — would make
    member 0's dropout masks depend on its stack: the stacking check fails then."""
    from torch.func import vmap

    def shared(self, x, mask=None):
        x = x.reshape(*x.shape[:2], *self.input_shape)
        self.template.train(self.training)
        return vmap(self._call, randomness="different")(
            dict(self.named_parameters()), dict(self.named_buffers()), x)

    monkeypatch.setattr(PluggedModel, "forward", shared)
    data, spec, config = make_data(), spec_of(models_file, "Net[width=6]"), adam()
    members = make_members()
    [alone] = train(data, spec, config, members[:1])
    stacked = train_grid(data, spec, [config, halved_lr(config)], members)[0][0]
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_same_member(alone, stacked)


def test_a_member_starts_from_the_modules_own_initialisation_under_its_seed(models_file):
    spec, shape = spec_of(models_file, "mlp[width=5]"), model_shape(make_data())
    alone = build_model(spec, shape, [7])
    stacked = build_model(spec, shape, [3, 7, 11])
    torch.manual_seed(7)
    own = plugins.get(spec.name, KIND)((6,), 3, width=5).state_dict()
    for name, value in own.items():
        torch.testing.assert_close(alone.state_dict()[name][0], value, rtol=0, atol=0)
        torch.testing.assert_close(stacked.state_dict()[name][1], value, rtol=0, atol=0)
    assert not torch.equal(stacked.state_dict()["1.weight"][0], own["1.weight"])


def test_a_members_weights_are_the_modules_own_state_dict(models_file):
    data, spec = make_data(), spec_of(models_file, "Net[width=6]")
    [result] = train(data, spec, adam(), make_members()[:1])
    net = plugins.get(spec.name, KIND)((6,), 3, width=6)
    net.load_state_dict(result.weights)  # strict: the same names and shapes
    assert result.weights["body.2.num_batches_tracked"] == 3 * 3  # 3 epochs × 3 batches


def test_decay_and_penalties_take_the_linear_weights_only(models_file):
    from dlbench.engine.regimens import weight_norm_dims

    model = build_model(spec_of(models_file, "Net"), model_shape(make_data()), [0, 1])
    assert weight_norm_dims(model) == {"body.1.weight": (2,), "fc.weight": (2,)}


# --- transfer: the head ------------------------------------------------------------------------


def test_the_head_is_the_last_linear_unless_the_module_names_one(models_file):
    shape = model_shape(make_data())
    assert checkpoints.weight_units(spec_of(models_file, "Net"), shape) == [
        ("body.1.", "body.2."), ("fc.",)]  # batch norm goes with the linear layer before it
    named = build_model(spec_of(models_file, "Named"), shape, [0])
    assert weight_units(named) == [("body.1.", "body.2."), ("extra.",), ("fc.",)]


def test_transfer_trains_a_plugged_model_with_every_strategy(models_file, tmp_path):
    out = tmp_path / "out"
    _run("transfer", "--source", "digits[0-4]", "--target", "digits[5-9]", "--model",
         f"{models_file}:mlp[width=8]", "--source-epochs", "2", "--epochs", "2",
         "--target-size", "20", "--seeds", "2", "--strategy",
         "scratch,linear-probe,finetune-top,finetune-all,probe-early", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["strategy"]) == {"scratch", "linear-probe", "finetune-top",
                                       "finetune-all", "probe-early"}
    assert set(scores["model"]) == {"nets.py:mlp[width=8]"}


def test_a_linear_probe_keeps_the_pretrained_body_and_trains_the_head(models_file):
    """Through the runner's own members and learning-rate multipliers: after training on
    the target, the body equals the source weights — batch norm's running statistics too
    (frozen, it normalises with them) — and the head moved."""
    from dlbench.data.datasets import DataSpec
    from dlbench.runners import transfer

    config = transfer.TransferConfig(
        DataSpec("digits[0-4]"), DataSpec("digits[5-9]"), spec_of(models_file, "Net"),
        ("linear-probe",), (20,), source_epochs=1, seeds=1,
        train=TrainConfig(OptimSpec("adam", 0.01), epochs=2))
    plan = transfer.prepare(config)
    weights, _ = transfer._pretrained(plan, None)
    [cell] = plan.cells
    [member] = transfer.target_members(plan, plan.targets[0], weights)(cell)
    assert plan.layers.head == "fc." and "fc.weight" not in member.init
    fresh = build_model(config.model, model_shape(plan.targets[0].dataset), [member.seed])
    [result] = train(plan.targets[0].dataset, config.model, cell.train, [member])
    for name, value in weights.items():
        if not name.startswith(plan.layers.head):
            torch.testing.assert_close(result.weights[name], value, rtol=0, atol=0)
    head = fresh.state_dict()["fc.weight"][0]
    assert result.weights["fc.weight"].shape == head.shape  # the target's 5 classes
    assert not torch.equal(result.weights["fc.weight"], head)  # trained


# --- the commands, end to end ------------------------------------------------------------------


def test_cv_trains_a_plugged_model_and_records_its_file(models_file, tmp_path):
    out = tmp_path / "out"
    _run("cv", *IRIS, "--k", "2", "--model", f"{models_file}:Net[width=6]", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["model"]) - {"chance"} == {"nets.py:Net[width=6]"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plugins"] == [{"model": "nets.py:Net", "file": str(models_file),
                                    "sha256": hashlib.sha256(models_file.read_bytes())
                                    .hexdigest()}]
    assert manifest["config"]["model"]["params"] == [["width", 6]]


def test_optimize_and_overfit_train_a_plugged_model(models_file, tmp_path):
    _run("optimize", *IRIS, "--model", f"mlp,{models_file}:mlp[width=6]", "--opt",
         "sgd[lr=0.1],adam", "--out", tmp_path / "opt")
    assert set(pd.read_csv(tmp_path / "opt" / "scores.csv")["model"]) == {
        "mlp", "nets.py:mlp[width=6]"}
    _run("overfit", *IRIS, "--model", f"{models_file}:Net", "--reg",
         "none,l2,l1,weight-decay,max-norm,early-stop[patience=1],ensemble[n=2],snapshot[n=2]",
         "--out", tmp_path / "over")
    regs = set(pd.read_csv(tmp_path / "over" / "scores.csv")["regularizer"])
    assert {"none", "l2[strength=0.001]", "ensemble[n=2]"} <= regs


def test_overfit_leaves_the_architecture_defaults_out_for_a_plugged_model(models_file,
                                                                          tmp_path):
    """The default --reg has dropout, which edits the built-in mlp: left out, not refused."""
    _run("overfit", *IRIS, "--model", f"{models_file}:mlp", "--out", tmp_path / "o")
    regs = set(pd.read_csv(tmp_path / "o" / "scores.csv")["regularizer"])
    assert regs == {"none", "l2[strength=0.001]", "early-stop[patience=5]"}


def test_a_suite_entry_trains_a_plugged_model_as_its_command_line_does(models_file, tmp_path):
    model = f"{models_file}:mlp[width=6]"
    assert_suite_entry_as_command_line(tmp_path, {
        "command": "cv", "dataset": "iris", "epochs": 2, "k": 2, "seeds": 2, "model": model},
        "cv", *IRIS, "--k", "2", "--model", model)


def test_resume_retrains_after_the_file_changes(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(MODELS)
    out = tmp_path / "out"
    args = ["optimize", *IRIS, "--model", f"mlp,{path}:mlp", "--opt", "sgd[lr=0.1]",
            "--out", out]
    _run(*args)
    path.write_text(MODELS + "\n# edited\n")
    result = _run(*args, "--resume")
    execution = json.loads((out / "manifest.json").read_text())["execution"]
    assert execution["cells_trained"] == 1 and execution["cells_resumed"] == 1  # mlp kept
    assert "has changed since they were trained" in result.stderr


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_pool_and_dask_workers_give_the_in_process_numbers(models_file, tmp_path, executor):
    args = ["optimize", *IRIS, "--model", f"{models_file}:Net,{models_file}:mlp", "--opt",
            "sgd[lr=0.1]"]
    assert_scores_as_inline(args, tmp_path, executor)


def test_models_from_lists_what_a_file_offers(models_file):
    result = _run("models", "--from", models_file)
    for name in ("nets.py:Net", "nets.py:Named", "nets.py:mlp", "width=8, p=0.3"):
        assert name in result.stdout
    assert "NOT_A_MODEL" not in result.stdout


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "says"), [
    ("{dir}/missing.py:Net", "no such file"),
    ("{bad}:Net", "bad.py, line 2"),
    ("{models}:Nope", "defines no 'Nope'; it defines Net, Named, mlp, wrong_outputs, frozen"),
    ("{models}:NOT_A_MODEL", "is a int, not a model"),
    ("{models}:not_a_module", "returned a int, not an nn.Module"),
    ("{models}:Net[width=0]", "Net wants width >= 1, got 0"),  # its constructor's own words
    ("{models}:Net[depth=2]", "takes no parameter 'depth'; it takes: width, p"),
    ("{models}:wrong_outputs", "to (2, 7); this task needs (2, 3)"),
    ("{models}:frozen", "has no trainable parameters"),
])
def test_bad_models_are_one_line_errors(models_file, tmp_path, entry, says):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef broken(:\n")
    out = tmp_path / "out"
    result = invoke("cv", *IRIS, "--model",
                    entry.format(dir=tmp_path, bad=bad, models=models_file), "--out", out)
    assert says in assert_usage_error(result, out)


@pytest.mark.parametrize(("args", "says"), [
    (["cv", "--hidden", "64"], "--hidden does not apply to nets.py:Net"),
    (["overfit", "--reg", "none,dropout"], "--reg dropout[p=0.5] edits dlbench's built-in"),
    (["overfit", "--width", "8,16"], "--width and --depth size hidden layers"),
])
def test_what_a_plugged_model_has_no_use_for_is_refused(models_file, tmp_path, args, says):
    out = tmp_path / "out"
    result = invoke(*args[:1], *IRIS, "--model", f"{models_file}:Net", *args[1:],
                    "--out", out)
    assert says in assert_usage_error(result, out)


def test_a_module_failing_in_training_is_one_line_naming_it(models_file, tmp_path):
    """Batch norm cannot train on one row: with 75 training rows per fold and batches of 37,
    each member's last batch has one. The module raises; the user reads one line."""
    out = tmp_path / "out"
    result = invoke("cv", "--dataset", "iris", "--k", "2", "--epochs", "1", "--batch-size", "37",
                    "--model", f"{models_file}:Net", "--out", out)
    said = assert_usage_error(result, out)
    assert said.startswith("error: --model nets.py:Net failed in training: ValueError: ")
    assert said.endswith("choose a --batch-size that leaves more")


def test_a_built_in_models_key_has_no_plugged_parameters_field():
    """Keys stored before plugged models existed still name built-in cells (resume)."""
    from dlbench.engine.execution import canonical

    assert "params" not in canonical(ModelSpec())["ModelSpec"]
    assert canonical(ModelSpec("x.py:Net", params=(("width", 6),)))["ModelSpec"]["params"] == \
        [["width", 6]]


def test_an_edited_file_is_listed_afresh_in_the_same_process(tmp_path):
    """Each invocation reads the user's file again: the entry (its description, its
    parameters) is the edited file's, not the first one's."""
    path = tmp_path / "one.py"
    for doc, width in (("The first net.", 4), ("The edited net.", 6)):
        path.write_text(f'def net(input_shape, n_outputs, width={width}):\n    """{doc}"""\n'
                        "    import torch\n"
                        "    return torch.nn.Linear(input_shape[0], n_outputs)\n")
        listed = _run("models", "--from", path).stdout
        assert doc in listed and f"width={width}" in listed
