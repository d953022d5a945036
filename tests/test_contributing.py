"""The README's contributor examples work as written: each one's code registers its entry, its
command runs with it and writes it into scores.csv, and a model, optimizer or regularizer entry
keeps the stacking contract (the same check tests/test_contract.py sweeps over the built-ins)."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from dlbench.data.datasets import DATASETS
from dlbench.engine.regimens import REGIMENS
from dlbench.engine.regularizers import REGULARIZERS
from dlbench.evaluate.metrics import METRICS
from dlbench.nn.models import MODELS
from dlbench.optim.optimizers import OPTIMIZERS
from tests import test_contract as contract
from tests.cli_helpers import invoke

README = Path(__file__).resolve().parent.parent / "README.md"
REGISTRIES = (OPTIMIZERS, MODELS, REGULARIZERS, REGIMENS, METRICS, DATASETS)
EXAMPLE = re.compile(r"^#### (.+?)\n.*?```python\n(.*?)```.*?```console\n\$ (dlbench .+?)\n```",
                     re.S | re.M)


def examples() -> list[tuple[str, str, str]]:
    """(heading, code, command) of each worked example in the README's contributor section."""
    section = README.read_text().split("\n## For contributors\n", 1)[1].split("\n## ", 1)[0]
    return EXAMPLE.findall(section)


def test_the_readme_shows_an_example_for_each_kind_of_entry():
    assert [heading for heading, _, _ in examples()] == [
        "An optimizer", "A model", "A regularizer", "A metric", "A dataset"]


@pytest.fixture
def registries(monkeypatch):
    """Every registry as it was before the test (entries a test adds are gone after it)."""
    for registry in REGISTRIES:
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


def _contract(registry, name: str) -> None:
    """The entry's contract check: alone = in a stack, and (but for a regularizer whose regimen
    has its own plain version to write into test_contract's PlainRegimen) = a plain loop."""
    if registry is REGULARIZERS:
        contract.check_stacking(contract.regularizer_case(name))
        return
    case = {OPTIMIZERS: lambda: contract.optimizer_case(OPTIMIZERS.get(name)),
            MODELS: lambda: contract.model_case(MODELS.get(name))}.get(registry)
    if case is not None:
        contract.check_plain(case(), contract.check_stacking(case()))


@pytest.mark.parametrize("heading, code, command",
                         [pytest.param(*e, id=e[0]) for e in examples()])
def test_an_example_registers_an_entry_that_runs_and_keeps_the_contract(
        registries, monkeypatch, tmp_path, heading, code, command):
    before = {id(r): set(r.names()) for r in REGISTRIES}
    module = types.ModuleType("readme_example")  # a module of its own, as the file it goes in
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, f"README: {heading}", "exec"), module.__dict__)
    added = [(r, name) for r in REGISTRIES for name in r.names() if name not in before[id(r)]]
    assert added, f"{heading}: the example registers nothing"

    out = tmp_path / "run"
    result = invoke(*shlex.split(command)[1:], "--out", out)
    assert result.exit_code == 0, result.output
    cells = {str(v) for v in pd.read_csv(out / "scores.csv").to_numpy().ravel()}
    for registry, name in added:
        if registry is not REGIMENS:  # a regimen is reached through its regularizer
            assert any(cell.startswith(name) for cell in cells), f"{name} not in scores.csv"
        _contract(registry, name)
