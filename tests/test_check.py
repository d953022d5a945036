"""`dlbench check`: the exactness contract (engine/contract.py) on one optimizer or model, in
one line; exit 0 when exact, 1 when not, 2 on bad input."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from cli_helpers import assert_usage_error, invoke
from test_contract import NormalizedSGD

from dlbench.engine import contract

# a user's file: test_contract's per-tensor-norm optimizer, and the same claiming to be
# elementwise (stepped on the stacked tensors, its norm spans every member's slice)
MINE = f"""import torch\n\n\n{inspect.getsource(NormalizedSGD)}

class FalselyElementwise(NormalizedSGD):
    elementwise = True
"""
LINE = re.compile(r"^(exact|NOT exact): .* rtol 1e-05, atol 1e-06.*; 4 members together "
                  r"\((?P<how>[^)]*)\) (?P<stacked>[0-9.e-]+) s/epoch, 1 alone "
                  r"(?P<alone>[0-9.e-]+) s/epoch: .*x the members per second together\n$")


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    path = tmp_path / "mine.py"
    path.write_text(MINE)
    return path


def _check(*args: str, code: int) -> re.Match:
    result = invoke("check", *args)
    assert result.exit_code == code, f"{result.output}{result.exception!r}"
    found = LINE.match(result.stdout)
    assert found, f"not the one line: {result.stdout!r}"
    assert float(found["stacked"]) > 0 and float(found["alone"]) > 0
    return found


@pytest.mark.parametrize("target, how", [
    ("sgd", "stacked, one optimizer on the stacked tensors"),
    ("lbfgs", "each member alone: full batch"),
    ("mlp", "stacked, one optimizer on the stacked tensors"),  # a model: checked with adam
    ("cnn2d", "stacked, one optimizer on the stacked tensors"),  # on its image test input
])
def test_a_built_in_entry_stacks_exactly(target, how):
    assert _check(target, code=0)["how"] == how


def test_a_users_optimizer_that_is_not_elementwise_steps_leaf_views_and_is_exact(mine):
    found = _check(f"{mine}:NormalizedSGD[lr=0.1]", code=0)
    assert found["how"] == "stacked, an optimizer per member on its leaf views"


def test_a_users_optimizer_falsely_elementwise_is_a_finding_exit_1(mine):
    found = _check(f"{mine}:FalselyElementwise", code=1)
    assert found.group(1) == "NOT exact"


def test_a_model_is_checked_with_the_optimizer_given(mine):
    """--opt takes the --opt grammar, a user's file too; the model from --model's parser."""
    _check("mlp", "--opt", f"{mine}:NormalizedSGD[lr=0.1]", code=0)
    _check("mlp", "--opt", f"{mine}:FalselyElementwise", code=1)


@pytest.mark.parametrize("args, says", [
    (["nosuch"], "'nosuch' is neither an optimizer (sgd,"),
    (["{dir}/nope.py:Opt"], "no such file"),
    (["adam[lr=-1]"], "lr must be positive"),
    (["{dir}/mine.py:Missing"], "defines no 'Missing'; it defines NormalizedSGD"),
    (["sgd", "--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_input_is_a_one_line_error(mine, tmp_path, args, says):
    result = invoke("check", *(a.format(dir=tmp_path) for a in args))
    assert says in assert_usage_error(result, tmp_path / "no-output")


def test_the_verdict_names_the_first_difference():
    """The contract's own verdict, without the command line: a difference is named."""
    verdict = contract.Verdict(False, "curves: Mismatched elements: 1 / 12", 0.01, 0.02,
                               "stacked, one optimizer on the stacked tensors")
    assert verdict.line().startswith("NOT exact: member 0 alone differs from member 0 in a "
                                     "stack of 4 beyond rtol 1e-05, atol 1e-06: curves:")
    assert "2x the members per second together" in verdict.line()  # 4 × 0.01 / 0.02


def test_a_users_model_with_dropout_and_batch_norm_is_checked_exactly(tmp_path):
    from test_plugged_models import MODELS

    path = tmp_path / "models.py"
    path.write_text(MODELS)
    found = _check(f"{path}:Net", "--opt", "adam[lr=0.02]", code=0)
    assert found["how"] == "stacked, one optimizer on the stacked tensors"
