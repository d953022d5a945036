"""Options never ignored without a word: every option either changes what runs, or is refused
in one line before anything is generated or trained (or, where harmless, warned about)."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import assert_usage_error, invoke, stop_after_config

from dlbench.data.datasets import DataSpec, load_dataset
from dlbench.engine import sizes
from dlbench.engine.members import TrainConfig
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec, parse_optimizers
from dlbench.runners import cv, functions, optimize, overfit, transfer

RUNNERS = (cv, optimize, overfit, transfer)


@pytest.fixture
def captured(monkeypatch) -> list:
    """Every runner records the config it gets, then stops the run (exit 2)."""
    return stop_after_config(monkeypatch, *RUNNERS)


def built(captured: list, tmp_path, *args: str):
    """The config a command line builds (checked without preparing or training anything)."""
    out = tmp_path / "out"
    assert "stopped by the test" in assert_usage_error(invoke(*args, "--out", out), out)
    [config] = captured
    return config


# --- --lr and --weight-decay: refused when given and filling nothing, whatever their value ---


@pytest.mark.parametrize(("command", "opt"), [("cv", "adam"), ("overfit", "adam"),
                                              ("transfer", "adam"),
                                              ("optimize", "sgd[lr=0.1],adam")])
def test_lr_and_weight_decay_given_at_their_default_values_fill_the_entries(
        captured, tmp_path, command, opt):
    """adam's own lr is 1e-3 and its weight decay 0: written out, they still fill adam."""
    config = built(captured, tmp_path, command, "--opt", opt, "--lr", "1e-3",
                   "--weight-decay", "0")
    optimizers = config.optimizers if command == "optimize" else (config.train.optimizer,)
    assert OptimSpec("adam", 1e-3, (("weight_decay", 0.0),)) in optimizers


@pytest.mark.parametrize("option", [["--lr", "1e-3"], ["--weight-decay", "0"]])
def test_lr_or_weight_decay_that_fills_no_entry_is_refused_at_any_value(tmp_path, option):
    out = tmp_path / "out"
    message = assert_usage_error(invoke(
        "cv", "--dataset", "iris", "--opt", "adam[lr=1e-3,weight_decay=0]", *option,
        "--out", out), out)
    assert f"{option[0]} fills --opt entries" in message


# --- overfit's capacity sweep and --hidden -------------------------------------------------


@pytest.mark.parametrize(("args", "says"), [
    (["--width", "32", "--hidden", "64,64"], "--hidden is replaced by --width"),
    (["--width", "32", "--depth", "1,2", "--hidden", "64"], "--hidden is replaced by --width"),
    (["--depth", "3", "--hidden", "64,32"], "give --hidden a single width"),
])
def test_hidden_that_a_capacity_sweep_would_override_is_refused(captured, tmp_path, args, says):
    out = tmp_path / "out"
    message = assert_usage_error(invoke("overfit", "--dataset", "digits", *args, "--out", out),
                                 out)
    assert says in message


def test_a_depth_sweep_takes_its_width_from_hidden(captured, tmp_path):
    config = built(captured, tmp_path, "overfit", "--depth", "1,3", "--hidden", "64")
    assert [m.hidden for m in config.models()] == [(64,), (64, 64, 64)]


# --- a value listed twice: refused in every list option, as --reg none,none is -----------


@pytest.mark.parametrize(("args", "says"), [
    (["transfer", "--target-size", "25,25"], "--target-size lists 25 twice"),
    (["transfer", "--strategy", "scratch,linear-probe,scratch"], "--strategy lists scratch"),
    (["transfer", "--similarity", "similar,different,similar"], "--similarity lists similar"),
    (["optimize", "--opt", "sgd,adam,sgd"], "--opt lists sgd[lr=0.001] twice"),
    (["optimize", "--opt", "sgd[lr=0.1],sgd", "--lr", "0.1"], "--opt lists sgd[lr=0.1] twice"),
    (["optimize", "--hidden", "8,8", "--hidden", "8,8"], "--hidden lists 8,8 twice"),
    (["optimize", "--batch-size", "16,64,16"], "--batch-size lists 16 twice"),
    (["optimize", "--activation", "relu,tanh,relu"], "--activation lists relu twice"),
    (["optimize", "--batchnorm", "on,on"], "--batchnorm lists on twice"),
    (["optimize", "--features", "4,4", "--dataset", "wine"], "--features lists 4 twice"),
    (["overfit", "--width", "8,8"], "--width lists 8 twice"),
    (["overfit", "--depth", "1,2,1"], "--depth lists 1 twice"),
    (["overfit", "--train-fraction", "0.5,0.50"], "--train-fraction lists 0.5 twice"),
    (["overfit", "--missing", "mean,mean"], "--missing lists mean twice"),
    (["cv", "--metrics", "accuracy,log_loss,accuracy"], "--metrics lists accuracy twice"),
])
def test_a_value_listed_twice_is_refused_in_every_list_option(captured, tmp_path, args, says):
    out = tmp_path / "out"
    message = assert_usage_error(invoke(*args, "--out", out), out)
    assert f"{says}" in message and message.endswith("give each value once"), message
    assert not captured, "refused before any data are loaded"


# --- transfer --------------------------------------------------------------------------------


def test_a_model_without_layers_below_its_head_is_refused_for_what_it_is(tmp_path):
    """The default --top 1 was blamed, though the user never gave it."""
    out = tmp_path / "out"
    message = assert_usage_error(invoke(
        "transfer", "--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "linear",
        "--out", out), out)
    assert "model linear has no layers below its head" in message and "--top" not in message
    assert "mlp, resmlp, cnn1d, cnn2d" in message


def test_a_top_the_user_gave_is_named_when_too_deep(tmp_path):
    out = tmp_path / "out"
    message = assert_usage_error(invoke(
        "transfer", "--source", "digits[0-4]", "--target", "digits[5-9]", "--model", "mlp",
        "--hidden", "8", "--top", "2", "--target-size", "20", "--out", out), out)
    assert message.startswith("error: --top 2: model mlp has 1 pretrained weight layers")


@pytest.mark.parametrize(("source", "target", "warned"), [
    ("digits[5-9]", "digits[5-9]", True), ("digits[0-9]", "digits", True),
    ("digits[0-4]", "digits[5-9]", False)])
def test_a_source_that_is_its_target_is_warned_about(source, target, warned):
    plan = transfer.prepare(transfer.TransferConfig(
        transfer.DataSpec(source), transfer.DataSpec(target),
        transfer.ModelSpec("mlp", hidden=(8,)), target_sizes=(20,), seeds=1))
    said = [w for w in plan.warnings if "measures no transfer" in w]
    assert len(said) == warned, plan.warnings


# --- sizes estimated before anything starts ----------------------------------------------


def never(*args, **kwargs):
    raise AssertionError("reached before the run was refused")


@pytest.mark.parametrize("args", [["--steps", "100000000"],
                                  ["--steps", "10000000", "--opt", "newton"]])
def test_paths_on_a_function_that_would_take_hours_are_refused_before_a_step(
        tmp_path, monkeypatch, args):
    monkeypatch.setattr(functions, "run", never)
    out = tmp_path / "out"
    message = assert_usage_error(invoke("optimize", "--function", "rosenbrock", *args,
                                        "--out", out), out)
    assert f"of {int(args[1]):,} steps" in message and "--allow-large" in message, message


def test_allow_large_lets_paths_on_a_function_run(tmp_path):
    result = invoke("optimize", "--function", "rosenbrock", "--steps", "20", "--allow-large",
                    "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sizes.check_paths(parse_optimizers("sgd,lbfgs"), 10**8, allow_large=True) > 2


@pytest.mark.parametrize(("args", "models"), [
    (["overfit", "--reg", "none,ensemble[n=1000000]", "--seeds", "2"], "2,000,002 models"),
    (["optimize", "--seeds", "200000", "--opt", "sgd,adam"], "400,000 models"),
    (["transfer", "--seeds", "100000", "--strategy", "scratch,linear-probe"],
     "600,000 models")])
def test_a_count_of_models_too_large_to_train_is_refused_before_any_data(
        tmp_path, monkeypatch, args, models):
    """overfit --reg 'ensemble[n=1000000]' took a minute (its data, then three million
    members) to refuse; transfer --seeds 1000000 longer still."""
    for module in RUNNERS:
        monkeypatch.setattr(module, "load_dataset", never)
    out = tmp_path / "out"
    message = assert_usage_error(invoke(*args, "--out", out), out)
    assert models in message and "--allow-large" in message, message


@pytest.mark.parametrize("members", [1, 50])
def test_the_count_check_is_a_floor_of_the_whole_estimate(members):
    """What check_count refuses without data, the full estimate would refuse too."""
    data = load_dataset(DataSpec("iris"))
    train = TrainConfig(OptimSpec("adam", 1e-3), epochs=7)
    job = sizes.Job(ModelSpec("mlp", hidden=(8,)), (train, train), members, 100, 150)
    size = sizes.estimate(data, [job], torch.device("cpu"))
    assert size.models == 2 * members
    assert size.hours >= sizes.count_hours(size.models, 7) > 0
    with pytest.raises(DlbenchError, match="400,000 models"):
        sizes.check_count(400_000, 60, allow_large=False)
    sizes.check_count(400_000, 60, allow_large=True)
