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
from dlbench.engine.execution import Store
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_files_of_an_uninterrupted_one(
        sig, tmp_path, uninterrupted):
    out = tmp_path / "run"
    code, stderr = stop_after_first_cell(out, sig)
    kept = len(list((out / results.CELLS).glob("*.pkl")))
    assert not (out / "manifest.json").exists() and not (out / "scores.csv").exists()
    assert not list(out.rglob("*.tmp")), "a half-written file was left behind"
    if sig != signal.SIGKILL:  # SIGTERM is handled as Ctrl-C
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


def test_a_run_made_before_an_option_existed_resumes(tmp_path):
    """run.json of a run made before ModelSpec had `params`: its absence is what its empty
    default means, so the resume goes on and reuses the stored cells."""
    import json

    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    record = json.loads((out / results.RUN_RECORD).read_text())
    del record["config"]["model"]["params"]
    (out / results.RUN_RECORD).write_text(json.dumps(record))
    again = invoke(*CV, "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    assert pd.read_json(out / "manifest.json", typ="series")["execution"]["cells_trained"] == 0


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


# --- stored cells and result files are checked; every stop is one line ----------------------

SMALL = ["overfit", "--dataset", "iris", "--width", "8,16", "--epochs", "2", "--seeds", "1"]


def _float_bytes(path: Path) -> tuple[int, bytes]:
    """Where a stored task file holds its first probabilities (8 bytes inside its pickle)."""
    import pickle

    data = path.read_bytes()
    payload = data.partition(b"\n")[2] if data.startswith(b"dlbench-cells") else data
    [[first, *_], *_] = pickle.loads(payload)["results"]
    proba = next(iter(first.predictions.values())).proba
    chunk = proba.tobytes()[:8]
    return path.read_bytes().index(chunk), chunk


def _flip_a_bit(data: bytearray, at: int) -> None:
    data[at + 3] ^= 0x40  # an exponent bit of a float32 (or a float64's mantissa)


def _overwrite_8_bytes(data: bytearray, at: int) -> None:
    data[at:at + 8] = b"\xff" * 8  # two NaNs


@pytest.mark.parametrize("damage", [_flip_a_bit, _overwrite_8_bytes])
def test_a_damaged_stored_cell_is_trained_again_with_one_warning(damage, tmp_path):
    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    before = {name: (out / name).read_bytes() for name in ("scores.csv", "curves.csv")}
    [stored] = (out / results.CELLS).glob("*.pkl")
    at, _ = _float_bytes(stored)
    data = bytearray(stored.read_bytes())
    damage(data, at)
    stored.write_bytes(bytes(data))
    again = invoke(*CV, "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    [warning] = [line for line in again.stderr.splitlines() if line.startswith("warning: ")]
    assert "damaged" in warning and "trained again" in warning
    assert {name: (out / name).read_bytes() for name in before} == before
    assert pd.read_json(out / "manifest.json", typ="series")["execution"]["cells_trained"] == 1


def test_the_manifest_records_each_file_and_verify_finds_a_damaged_one(tmp_path):
    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    recorded = pd.read_json(out / "manifest.json", typ="series")["sha256"]
    assert {"scores.csv", "curves.csv", "summary.csv"} <= set(recorded)
    assert results.verify(out) == []
    data = bytearray((out / "scores.csv").read_bytes())
    data[-3] ^= 0x01
    (out / "scores.csv").write_bytes(bytes(data))
    [problem] = results.verify(out)
    assert "scores.csv is damaged" in problem


def test_ctrl_c_at_start_up_says_nothing_was_kept(tmp_path, monkeypatch):
    from dlbench.runners import cv

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cv, "prepare", interrupted)
    out = tmp_path / "run"
    result = invoke(*CV, "--out", out)
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["interrupted before any cell finished; nothing was "
                                          "kept"]
    assert not out.exists()


def test_ctrl_c_after_the_last_cell_says_how_to_resume(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    assert invoke(*CV, "--out", whole).exit_code == 0
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        patch.setattr(results, "write_run", interrupted)
        result = invoke(*CV, "--out", out)
    assert result.exit_code == 130
    [line] = result.stderr.splitlines()
    assert line.startswith(f"interrupted: 1 finished cell kept in {out}; finish with: ")
    assert line.endswith("--resume")
    assert invoke(*CV, "--out", out).exit_code == 2  # refused without --resume, as it says
    assert invoke(*CV, "--out", out, "--resume").exit_code == 0
    assert (out / "scores.csv").read_bytes() == (whole / "scores.csv").read_bytes()


def test_a_full_disk_is_one_line_that_keeps_the_first_task(tmp_path, monkeypatch):
    import errno

    real, calls = results.atomic_write, []

    def full_after_the_first_task(path, *args, **kwargs):
        if path.parent.name == results.CELLS:
            calls.append(path)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(results, "atomic_write", full_after_the_first_task)
    out = tmp_path / "run"
    result = invoke(*SMALL, "--out", out)
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: No space left on device (") and "Traceback" not in line
    kept = Store(out / results.CELLS).count()  # the first task's cells
    assert kept >= 1 and len(calls) == 2
    assert f"{kept} finished cells kept in {out}; finish with: " in line
    assert line.endswith("--resume") and not list(out.rglob("*.tmp"))


def test_a_damaged_run_record_does_not_block_resuming(tmp_path):
    out = tmp_path / "run"
    assert invoke(*CV, "--out", out).exit_code == 0
    before = (out / "scores.csv").read_bytes()
    (out / "manifest.json").unlink()  # as if interrupted while writing its files
    (out / results.RUN_RECORD).write_bytes(b"\x00garbage{")
    refused = invoke(*CV, "--out", out)
    assert refused.exit_code == 2 and "add --resume" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    again = invoke(*CV, "--out", out, "--resume")
    assert again.exit_code == 0, again.output
    [warning] = again.stderr.splitlines()[:-1]  # then "results: DIR"
    assert warning.startswith("warning: ") and "run.json was damaged" in warning
    assert (out / "scores.csv").read_bytes() == before
    assert pd.read_json(out / "manifest.json", typ="series")["execution"]["cells_trained"] == 0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _workers(pid: int) -> list[int]:
    """The pool's worker processes of a run (not multiprocessing's resource tracker)."""
    return [child for child in _children(pid)
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_a_killed_pool_worker_ends_the_run_in_one_line(tmp_path):
    import tempfile

    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "dlbench", *OVERFIT, "--workers", "2",
                            "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / results.CELLS).glob("*.pkl")) and time.monotonic() < deadline:
            assert run.poll() is None, run.communicate()
            time.sleep(0.01)
        os.kill(_workers(run.pid)[0], signal.SIGKILL)
        _, stderr = run.communicate(timeout=60)  # not a hang
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 3
    [line] = stderr.strip().splitlines()
    assert line.startswith("error: a worker process died") and f"kept in {out}" in line
    assert line.endswith(f"--out {out} --resume")
    assert not list(Path(tempfile.gettempdir()).glob(f"dlbench-data-{run.pid}-*"))


def test_a_full_disk_before_training_is_a_usage_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(results, "atomic_write", full)
    out = tmp_path / "run"
    message = assert_usage_error(invoke(*CV, "--out", out), out)
    assert f"cannot write {out / results.RUN_RECORD}: No space left on device" in message
