"""Cells as the unit of work: stable keys, tasks, the store, and executors that never change a
number."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbench.data.datasets import DataSpec, load_dataset
from dlbench.engine import execution
from dlbench.engine.cells import Cell, tasks
from dlbench.engine.execution import Engine, ExecutionConfig, Store, check_execution, digest
from dlbench.engine.members import Member, TrainConfig
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec
from dlbench.optim.optimizers import OptimSpec

TRAIN = TrainConfig(OptimSpec("adam", 1e-2), epochs=3, batch_size=32, device="cpu")


@pytest.fixture(scope="module")
def iris():
    return load_dataset(DataSpec("iris"))


def members(n_rows: int = 100, seeds: int = 2) -> list[Member]:
    rows = np.arange(150)
    return [Member({"seed": s}, s, rows[:n_rows], {"val": rows[n_rows:]}) for s in range(seeds)]


def grid() -> list[Cell]:
    """Two models, each with two elementwise optimizers and one closure optimizer (alone)."""
    return [Cell(ModelSpec("mlp", hidden=(h,)), replace(TRAIN, optimizer=o))
            for h in (8, 16) for o in (OptimSpec("adam", 1e-2), OptimSpec("sgd", 0.1),
                                       OptimSpec("lbfgs", 1.0))]


# --- keys ------------------------------------------------------------------------------------


def test_digest_is_stable_and_sees_every_value():
    base = {"a": 0.1, "rows": np.arange(5), "cell": grid()[0]}
    assert digest(base) == digest({"cell": grid()[0], "rows": np.arange(5), "a": 0.1})
    for changed in ({**base, "a": 0.1000001}, {**base, "rows": np.arange(1, 6)},
                    {**base, "rows": np.arange(5).astype(np.int32)},
                    {**base, "cell": grid()[1]}):
        assert digest(changed) != digest(base)
    assert digest(torch.ones(3)) == digest(np.ones(3, dtype=np.float32))


def test_a_cell_key_changes_with_its_config_data_and_members_only(iris):
    cells, ms = grid(), members()
    keys = [t.keys for t, _ in tasks(iris, cells, lambda c: ms)]
    rebuilt = members()
    again = [t.keys for t, _ in tasks(iris, grid(), lambda c: rebuilt)]
    assert keys == again  # rebuilt from scratch: the same names
    flat = [k for ks in keys for k in ks]
    assert len(set(flat)) == len(cells)
    fewer = members(n_rows=90)
    other_data = load_dataset(DataSpec("iris[0,1]"))
    tagged = [replace(c, tags=(("regularizer", "none"),)) for c in cells]
    for changed in (tasks(iris, cells, lambda c: fewer), tasks(other_data, cells, lambda c: ms),
                    tasks(iris, tagged, lambda c: ms)):
        assert not {k for t, _ in changed for k in t.keys} & set(flat)


def test_tasks_are_the_stacks_the_trainer_forms(iris):
    ms = members()
    found = tasks(iris, grid(), lambda c: ms)
    # per model: adam and sgd share a stack; lbfgs (a closure optimizer) trains alone
    assert sorted(indices for _, indices in found) == [[0, 1], [2], [3, 4], [5]]
    assert all(len(t.members) == 2 and t.work == len(t.configs) * 3 * 2 for t, _ in found)


# --- the store and the engine ----------------------------------------------------------------


def test_the_engine_stores_each_task_and_a_rerun_trains_nothing(iris, tmp_path):
    ms = members()
    found = [t for t, _ in tasks(iris, grid(), lambda c: ms)]
    store = Store(tmp_path / "cells")
    with Engine(store=store) as engine:
        first = engine.run(iris, found)
    assert engine.trained == 6 and engine.resumed == 0
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == sorted(
        f"{t.key}.pkl" for t in found)  # one file a task, no temp files left
    with Engine(store=store) as engine:
        again = engine.run(iris, found)
    assert engine.trained == 0 and engine.resumed == 6 and store.count() == 6
    assert _bits(again) == _bits(first)
    assert all(r.weights == {} and r.member.init is None for t in first for c in t for r in c)


def test_an_unreadable_stored_task_is_trained_again(iris, tmp_path):
    [(task, _)] = tasks(iris, grid()[:1], lambda c: members())
    store = Store(tmp_path)
    store.path(task).write_bytes(b"not a pickle")
    assert store.get(task) is None
    store.path(task).write_bytes(pickle.dumps({"keys": ["another"], "results": []}))
    assert store.get(task) is None  # another task's file under this name: not ours


def test_weights_come_back_only_when_asked(iris):
    ms = members()
    [(task, _)] = tasks(iris, grid()[:1], lambda c: ms, weights=True)
    [[[result, _]]] = Engine().run(iris, [task])
    assert result.weights and all(isinstance(w, torch.Tensor) for w in result.weights.values())


def test_the_engine_sets_threads_for_the_run_and_restores_them():
    before = torch.get_num_threads()
    with Engine(ExecutionConfig(threads=1)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_ctrl_c_in_a_task_keeps_the_finished_ones(iris, tmp_path, monkeypatch):
    ms = members()
    found = [t for t, _ in tasks(iris, grid(), lambda c: ms)]
    real, calls = execution.run_task, []

    def second_is_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(execution, "run_task", second_is_interrupted)
    store = Store(tmp_path)
    with pytest.raises(execution.Interrupted), Engine(store=store) as engine:
        engine.run(iris, found)
    assert store.count() == len(found[0].keys)


# --- executors: where a task runs changes no number ------------------------------------------


def _bits(results) -> list[bytes]:
    return [r.predictions[s].proba.tobytes() + np.asarray(r.curves).tobytes()
            for task in results for cell in task for r in cell for s in sorted(r.predictions)]


@pytest.fixture(scope="module")
def inline_bits(iris):
    ms = members()
    found = [t for t, _ in tasks(iris, grid(), lambda c: ms)]
    return found, _bits(Engine().run(iris, found))


def test_a_process_pool_gives_the_same_numbers(iris, inline_bits):
    found, expected = inline_bits
    with Engine(ExecutionConfig(workers=2)) as engine:
        assert _bits(engine.run(iris, found)) == expected


def test_a_dask_local_cluster_gives_the_same_numbers(iris, inline_bits):
    pytest.importorskip("distributed", reason="Dask's distributed is not installed: "
                                              "pip install 'dlbench[dask]' (make test does)")
    found, expected = inline_bits
    with Engine(ExecutionConfig(dask_local=2)) as engine:
        assert _bits(engine.run(iris, found)) == expected


def test_a_dask_local_cluster_starts_beside_another_one(iris, inline_bits):
    """Two runs on one machine: the port of Dask's dashboard (8787 by default) is taken by the
    first; the second starts all the same, silently (warnings are errors in these tests)."""
    import socket

    pytest.importorskip("distributed", reason="Dask's distributed is not installed: "
                                              "pip install 'dlbench[dask]' (make test does)")
    with socket.socket() as taken:
        try:
            taken.bind(("", 8787))
        except OSError:
            pass  # someone else holds it already: the same situation
        found, expected = inline_bits
        with Engine(ExecutionConfig(dask_local=1)) as engine:
            assert _bits(engine.run(iris, found)) == expected


@pytest.mark.parametrize("config, says", [
    (ExecutionConfig(workers=0), "at least 1"),
    (ExecutionConfig(threads=0), "at least 1"),
    (ExecutionConfig(workers=2, dask_local=2), "--workers and --dask-local"),
    (ExecutionConfig(scheduler="10.0.0.5:8786"), "tcp://HOST:8786"),
])
def test_bad_execution_options_are_refused(config, says):
    with pytest.raises(DlbenchError, match=says):
        check_execution(config)


def test_more_threads_than_cores_is_a_warning(monkeypatch):
    monkeypatch.setattr(execution.os, "cpu_count", lambda: 2)
    [warning] = check_execution(ExecutionConfig(workers=2, threads=2))
    assert "4 threads on 2 cores" in warning
    assert check_execution(ExecutionConfig(workers=2, threads=1)) == []


def test_a_stored_task_without_a_checksum_is_trained_again(iris, tmp_path):
    """The files of an older dlbench (a bare pickle) are not trusted: nothing says they are
    whole."""
    [(task, _)] = tasks(iris, grid()[:1], lambda c: members())
    store = Store(tmp_path)
    with Engine(store=store) as engine:
        engine.run(iris, [task])
    payload = store.path(task).read_bytes().partition(b"\n")[2]
    assert pickle.loads(payload)["keys"] == list(task.keys)  # what an older dlbench wrote
    store.path(task).write_bytes(payload)
    assert store.get(task) is None and store.count() == 0
    assert "no checksum" in store.rejected[store.path(task)]


def test_the_pool_data_file_goes_on_every_exit_and_stale_ones_of_dead_runs_too(
        iris, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a run SIGKILLed before it could remove its file
    stale = tmp_path / f"dlbench-data-{gone.pid}-abc.pkl"
    live = tmp_path / f"dlbench-data-{os.getpid()}-abc.pkl"  # a live run's: kept
    stale.touch()
    live.touch()
    with pytest.raises(KeyboardInterrupt), execution._dataset_file(iris) as path:
        assert Path(path).parent == tmp_path and not stale.exists() and live.exists()
        assert Path(path).name.startswith(f"dlbench-data-{os.getpid()}-")
        raise KeyboardInterrupt
    assert not Path(path).exists() and live.exists()


def test_a_dask_cluster_that_lost_its_workers_is_one_error(iris, monkeypatch):
    """What distributed raises when the last worker is gone (KilledWorker after its retries,
    or the client's connection closed) ends the run as WorkerLost, not a traceback."""
    distributed = pytest.importorskip("distributed", reason="Dask's distributed is not "
                                      "installed: pip install 'dlbench[dask]'")

    class Lost:
        def result(self):
            raise distributed.KilledWorker("run_task-1", "tcp://127.0.0.1:1", 3)

    class Client:
        def scatter(self, data, broadcast):
            return data

        def submit(self, *args, pure):
            return Lost()

    monkeypatch.setattr(distributed, "as_completed", lambda futures: iter(futures))
    dask = object.__new__(execution.Dask)  # its client, not a cluster's: no workers to start
    dask.client, dask.threads = Client(), 1
    [(task, _)] = tasks(iris, grid()[:1], lambda c: members())
    with pytest.raises(execution.WorkerLost, match="Dask cluster lost its workers"):
        list(dask.map(iris, [task], None))
