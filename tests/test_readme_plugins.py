"""The README's "Benchmark your own optimizer" runs as written: its file, its command and its
Python code, each taken from README.md.

How the README stays honest: the command is run as its text says, with only `--epochs 2 --out
DIR` appended (the README sets neither; a later value of an option wins), and the Python code
is run as its text says, with the same two options added to the API call it makes. Both must
write the same scores.csv — the command and the code are one benchmark — and the optimizer
must keep the stacking contract its `elementwise = True` claims.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from cli_helpers import invoke

from dlbench.cli import api
from dlbench.optim.optimizers import plugged
from tests import test_contract as contract

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL = {"epochs": 2}  # the budget both runs get on top of the README's options
BLOCK = re.compile(r"```(python|console)\n(.*?)```", re.S)


def section() -> dict[str, str]:
    """The section's file (a python block opening with '# NAME.py'), command and code."""
    text = README.read_text().split("\n## Benchmark your own optimizer\n", 1)[1]
    blocks = BLOCK.findall(text.split("\n## ", 1)[0])
    found = {}
    for kind, body in blocks:
        if kind == "console":
            found["command"] = body.strip().removeprefix("$ ")
        elif body.startswith("# ") and body.splitlines()[0].endswith(".py"):
            found["file"] = body
        else:
            found["code"] = body
    assert set(found) == {"file", "command", "code"}, f"the section holds {list(found)}"
    return found


@pytest.fixture
def example(tmp_path, monkeypatch) -> dict[str, str]:
    """The README's file written where its command and code run."""
    found = section()
    name = found["file"].splitlines()[0].removeprefix("# ")
    (tmp_path / name).write_text(found["file"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return found | {"name": name}


def test_the_readme_example_runs_and_its_command_and_code_agree(example, tmp_path, monkeypatch,
                                                               capsys):
    args = shlex.split(example["command"])
    assert args[0] == "dlbench"
    result = invoke(*args[1:], *(a for k, v in SMALL.items() for a in (f"--{k}", v)),
                    "--out", tmp_path / "cli")
    assert result.exit_code == 0, result.output

    call_command = api.call_command  # the code's call, with the same budget and a known --out
    calls = []

    def small(name, show, kw):
        calls.append(name)
        return call_command(name, show, {**kw, **SMALL, "out": tmp_path / "api"})

    monkeypatch.setattr(api, "call_command", small)
    exec(compile(example["code"], "README: Benchmark your own optimizer", "exec"), {})
    assert calls == [args[1]]  # the code calls the command the README shows
    assert str(tmp_path / "api") in capsys.readouterr().out  # its prints ran

    # the file's optimizer is named 'lion.py:Lion' on the command line, 'Lion' as an object
    label = f"{example['name']}:Lion"
    cli = (tmp_path / "cli" / "scores.csv").read_text()
    assert label in cli
    assert (tmp_path / "api" / "scores.csv").read_text() == cli.replace(label, "Lion")


def test_the_readme_optimizer_keeps_the_stacking_contract(example):
    """It declares itself elementwise: member 0 alone equals member 0 in a stack, and a plain
    one-model loop."""
    info = plugged(f"{Path(example['name']).resolve()}:Lion")
    assert info.elementwise
    case = contract.optimizer_case(replace(info, test_lr=1e-2))
    contract.check_plain(case, contract.check_stacking(case))
