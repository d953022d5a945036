"""What the CLI tests share: the runner, and what every bad-input case must look like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from dlbench.cli.app import app
from dlbench.errors import DlbenchError

RUNNER = CliRunner(env={"COLUMNS": "200"})  # wide, so rich never folds a name or a cell label
# what every run directory holds besides its results: what it runs, the lock of the live run,
# and (runs that train) its finished cells
RUN_FILES = {"run.json", ".lock", "cells"}
BOX_CHARS = set("│┃║─━═╭╮╰╯┌┐└┘┏┓┗┛╔╗╚╝┡┩")  # a rich panel or a table frame


def invoke(*args: str, **kwargs) -> Result:
    return RUNNER.invoke(app, [str(a) for a in args], **kwargs)


def run_ok(*args: str, **kwargs) -> Result:
    """A command that must succeed; when it does not, its output says why."""
    result = invoke(*args, **kwargs)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return result


def user_file(path: Path, text: str) -> Path:
    """A file of the user's own code (a plug-in) at `path`, its directory made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def assert_usage_error(result: Result, out: Path) -> str:
    """Exit 2, one `error:` line on stderr, nothing on stdout, nothing written: the message."""
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}{result.exception!r}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {result.stderr!r}"
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ") + 10
    assert "Traceback" not in result.output
    assert not BOX_CHARS & set(result.output), f"a rich panel or box in {result.output!r}"
    assert result.stdout == ""
    assert not out.exists(), f"{out} was created by a failing run"
    return lines[0]


def assert_suite_entry_as_command_line(folder: Path, entry: dict[str, Any], *args: Any) -> None:
    """A suite entry (`entry`: its command and options, TOML values) writes the scores.csv
    its command line (`args`) writes, byte for byte."""
    suite = folder / "suite.toml"
    suite.write_text("[entry.mine]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                for k, v in entry.items()))
    for run in (("run", suite, "--out", folder / "suite"), (*args, "--out", folder / "alone")):
        result = invoke(*run)
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    assert (folder / "suite" / "mine" / "scores.csv").read_bytes() == \
        (folder / "alone" / "scores.csv").read_bytes()


def stop_after_config(monkeypatch, *runners) -> list:
    """Replaces each runner module's prepare(): it records the config it gets, then stops the
    run (exit 2) — what the options built, with nothing loaded or trained. -> the configs."""
    configs = []

    def prepare(config):
        configs.append(config)
        raise DlbenchError("stopped by the test after the config was built")

    for runner in runners:
        monkeypatch.setattr(runner, "prepare", prepare)
    return configs


EXECUTORS = [["--workers", "2"], ["--dask-local", "2"]]  # pool and Dask workers
EXECUTOR_IDS = ["pool", "dask"]


def assert_scores_as_inline(args: list, tmp_path: Path, executor: list[str]) -> None:
    """A run's scores on other workers (EXECUTORS) equal the same run's in this process."""
    import pandas as pd
    import pytest

    if "--dask-local" in executor:
        pytest.importorskip("distributed", reason="Dask's distributed is not installed: "
                                                  "pip install 'dlbench[dask]' (make test does)")
    for where, extra in (("inline", []), ("elsewhere", executor)):
        result = invoke(*args, "--out", tmp_path / where, *extra)
        assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    inline, elsewhere = (pd.read_csv(tmp_path / d / "scores.csv")
                         for d in ("inline", "elsewhere"))
    pd.testing.assert_frame_equal(inline, elsewhere, rtol=1e-5, atol=1e-6)
