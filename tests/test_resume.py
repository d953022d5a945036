"""Run directories: claimed by one live run, interrupted cleanly, resumed to the same files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlbench import results
from tests.cli_helpers import assert_usage_error, invoke

# six tasks (three widths, with and without dropout), each long enough to be caught midway
OVERFIT = ["overfit", "--dataset", "digits", "--width", "8,32,128", "--reg",
           "none,dropout[p=0.2]", "--epochs", "30", "--seeds", "2", "--train-rows", "400"]
CV = ["cv", "--dataset", "iris", "--k", "2", "--epochs", "2"]
TIMING = ["seconds_per_model"]  # the columns a rerun may change: wall time


def dlbench(*args, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dlbench", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_after_first_cell(out: Path, sig: int) -> tuple[int, str]:
    """Start the overfit run, send `sig` once its first task is stored: (exit code, stderr)."""
    run = dlbench(*OVERFIT, "--out", out)
    deadline = time.monotonic() + 120
    while not list((out / results.CELLS).glob("*.pkl")) and time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        time.sleep(0.01)
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=120)
    return run.returncode, stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    result = invoke(*OVERFIT, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def assert_same_files(resumed: Path, whole: Path) -> None:
    """Byte for byte, but for wall-time columns."""
    for name in ("scores.csv", "curves.csv"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes(), name
    a, b = (pd.read_csv(d / "summary.csv").drop(columns=TIMING) for d in (resumed, whole))
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_files_of_an_uninterrupted_one(
        sig, tmp_path, uninterrupted):
    out = tmp_path / "run"
    code, stderr = stop_after_first_cell(out, sig)
    kept = len(list((out / results.CELLS).glob("*.pkl")))
    assert not (out / "manifest.json").exists() and not (out / "scores.csv").exists()
    assert not list(out.rglob("*.tmp")), "a half-written file was left behind"
    if sig == signal.SIGINT:
        assert code == 130
        [line] = stderr.strip().splitlines()
        assert line.startswith("interrupted: ") and f"kept in {out}" in line
        assert line.endswith(f"--out {out} --resume") and "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL  # the OS released its lock: resuming is allowed
    resumed = dlbench(*OVERFIT, "--out", out, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    execution = pd.read_json(out / "manifest.json", typ="series")["execution"]
    assert execution["cells_resumed"] >= kept >= 1 and execution["cells_trained"] >= 1
    assert execution["cells_resumed"] + execution["cells_trained"] == 6
    assert_same_files(out, uninterrupted)


def test_resuming_a_finished_run_trains_nothing_and_rewrites_the_same_files(tmp_path):
    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    before = (out / "scores.csv").read_bytes()
    again = invoke(*CV, "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    assert (out / "scores.csv").read_bytes() == before
    assert pd.read_json(out / "manifest.json", typ="series")["execution"]["cells_trained"] == 0


def test_a_resume_with_other_options_is_refused(tmp_path):
    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    result = invoke(*CV[:-1], "3", "--out", out, "--resume")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "another configuration (config.train.epochs: 2 there, 3 now)" in result.stderr
    # where cells run is not the configuration: another executor may finish a run
    assert invoke(*CV, "--out", out, "--resume", "--workers", "2").exit_code == 0


@pytest.mark.parametrize("args, says", [
    (["--resume"], "--resume continues the run in --out DIR"),
    (["--resume", "--out", "{fresh}"], "holds no dlbench run to continue"),
    (["--out", "{unfinished}"], "holds an unfinished run; add --resume"),
])
def test_resume_misuse_is_one_line(args, says, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / results.RUN_RECORD).write_text("{}")
    args = [a.format(fresh=tmp_path / "fresh", unfinished=unfinished) for a in args]
    result = invoke(*CV, *args)
    assert result.exit_code == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "fresh").exists()


def test_an_out_held_by_a_live_run_is_refused(tmp_path):
    out = tmp_path / "run"
    with results.claimed(out, "cv", {"command": "cv"}):
        for extra in ([], ["--resume"]):
            result = invoke(*CV, "--out", out, *extra)
            assert result.exit_code == 2, result.output
            assert f"in use by another running dlbench (pid {os.getpid()})" in result.stderr


def test_two_runs_started_in_the_same_second_get_two_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(results.time, "strftime", lambda _: "20261125-120000")
    with results.claimed(None, "cv", {}) as first, results.claimed(None, "cv", {}) as second:
        assert first != second
        assert {first.name, second.name} == {"cv-20261125-120000", "cv-20261125-120000-2"}


def test_two_runs_at_once_both_finish_in_their_own_directories(tmp_path):
    runs = [dlbench(*CV, cwd=tmp_path) for _ in range(2)]
    outcomes = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    dirs = {err.strip().splitlines()[-1] for _, err in outcomes}
    assert len(dirs) == 2 and all(line.startswith("results: results/cv-") for line in dirs)
    assert all((tmp_path / line.removeprefix("results: ") / "manifest.json").exists()
               for line in dirs)


def test_dask_needs_its_extra_and_a_reachable_scheduler(tmp_path):
    pytest.importorskip("distributed", reason="Dask's distributed is not installed: "
                                              "pip install 'dlbench[dask]' (make test does)")
    out = tmp_path / "run"
    message = assert_usage_error(invoke(*CV, "--scheduler", "tcp://127.0.0.1:9", "--out", out),
                                 out)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in message


@pytest.mark.parametrize("option", [["--resume"], ["--workers", "2"], ["--dask-local", "2"],
                                    ["--threads", "2"]])
def test_paths_on_a_function_have_no_cells_to_resume_or_spread(option, tmp_path):
    out = tmp_path / "run"
    message = assert_usage_error(invoke("optimize", "--function", "rosenbrock", *option,
                                        "--out", out), out)
    assert message.endswith("applies to networks, not --function; drop it")


def test_a_run_that_finished_there_meanwhile_is_not_overwritten(tmp_path):
    """check_out looks before the data loads; claimed looks again once it holds the lock."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / results.RUN_RECORD).write_text('{"command": "overfit"}')
    with pytest.raises(results.DlbenchError, match="already holds a finished run"):
        with results.claimed(out, "cv", {"command": "cv"}):
            pass
    assert (out / results.RUN_RECORD).read_text() == '{"command": "overfit"}'
    assert (out / "manifest.json").exists()
