"""Where cells run, and what is kept of them as they finish.

A *task* is the unit of work: the cells of one model that share their members and can share a
stack (stepper.trains_alone: a full-batch or closure optimizer's cell is a task alone).
`run_task` is a top-level, picklable function — dataset and task in, each cell's member results
out (weights only when asked) — so any executor can run it:

- `inline`: in this process, one task after another, progress after every epoch;
- `pool`: a local process pool (`--workers N`), tasks as they finish;
- `dask`: a Dask distributed cluster (`--scheduler ADDRESS`, or `--dask-local N` workers here).

An executor only decides where a task runs: a task's numbers are the same whichever runs it (the
stack a cell trains in never depends on the executor). The `Engine` skips tasks already stored in
the run directory (`--resume`) and stores each one, atomically, as soon as it finishes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlbench import plugins
from dlbench.errors import DlbenchError

if TYPE_CHECKING:
    from dlbench.data.datasets import Dataset
    from dlbench.engine.members import Member, MemberResult, TrainConfig
    from dlbench.nn.models import ModelSpec

Results = list[list["MemberResult"]]  # results[cell][member]

EXECUTORS = ("inline", "pool", "dask")
# Bump when a change alters any number a cell gives: stored cells of older runs then no longer
# match, so --resume trains them again instead of mixing numbers of two engines.
ENGINE_VERSION = 2  # 2: an optimizer's own weight_decay no longer decays biases and batch norm
DEFAULT_THREADS = 1  # torch threads per process (see ExecutionConfig.threads)


@dataclass(frozen=True)
class ExecutionConfig:
    """How a run's cells are executed; never changes a number (so not part of a run's config)."""

    workers: int = 1  # > 1: a local process pool of that many workers
    scheduler: str | None = None  # address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786
    dask_local: int = 0  # > 0: start a Dask LocalCluster with that many workers here
    # torch's intra-op threads per process, each worker included. One by default: small stacks
    # lose far more to contention with other processes than they gain from a second thread.
    threads: int = DEFAULT_THREADS

    @property
    def executor(self) -> str:
        if self.scheduler or self.dask_local:
            return "dask"
        return "pool" if self.workers > 1 else "inline"

    def record(self) -> dict[str, Any]:
        return {"executor": self.executor, "workers": self.processes, "threads": self.threads,
                "scheduler": self.scheduler}

    @property
    def processes(self) -> int | None:
        """Worker processes (None: those of an existing cluster, whatever it has)."""
        if self.scheduler:
            return None
        return self.dask_local or self.workers


def check_execution(config: ExecutionConfig) -> list[str]:
    """Refuse what cannot run; warnings for what would run badly."""
    if config.workers < 1 or config.threads < 1 or config.dask_local < 0:
        raise DlbenchError("--workers and --threads must be at least 1, --dask-local at least 0")
    chosen = [name for name, on in (("--workers", config.workers > 1),
                                    ("--scheduler", config.scheduler),
                                    ("--dask-local", config.dask_local)) if on]
    if len(chosen) > 1:
        raise DlbenchError(f"{' and '.join(chosen)} each choose where cells run; give one")
    if config.scheduler is not None and "://" not in config.scheduler:
        raise DlbenchError(f"--scheduler {config.scheduler}: give a Dask scheduler address like "
                           "tcp://HOST:8786")
    if config.executor == "dask":
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise DlbenchError(f"{chosen[0]} needs Dask's distributed: pip install "
                               "'dlbench[dask]'") from None
    cores = os.cpu_count() or 1
    wanted = (config.processes or 1) * config.threads
    if config.scheduler is None and wanted > cores:
        return [f"{config.processes} process(es) × {config.threads} thread(s) = {wanted} "
                f"threads on {cores} cores: they will wait on each other; lower --threads "
                "or the workers"]
    return []


# --- keys ------------------------------------------------------------------------------------


ADDED = "added"  # dataclass field metadata: a field left out of keys at its default (canonical)


def canonical(value: Any) -> Any:
    """A JSON value that stands for `value` exactly: dataclasses by their fields, arrays and
    tensors by dtype, shape and a hash of their bytes, floats by their shortest repr. A field
    added after keys were first stored (metadata ADDED) is left out at its default, so the keys
    of everything that does not use it stay as they were (a resume still finds its cells)."""
    import numpy as np

    if is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: {f.name: canonical(getattr(value, f.name))
                                       for f in fields(value)
                                       if not (f.metadata.get(ADDED)
                                               and getattr(value, f.name) == f.default)}}
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {"array": [str(data.dtype), list(data.shape),
                          hashlib.sha256(data.tobytes()).hexdigest()]}
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, float):
        return repr(value)  # nan and inf included; 0.1 stays 0.1
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


def digest(value: Any) -> str:
    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# --- tasks -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Task:
    """Cells of one model trained on the same members: each config × every member."""

    spec: ModelSpec
    configs: tuple[TrainConfig, ...]  # one per cell
    members: tuple[Member, ...]  # every config trains each of them
    keys: tuple[str, ...]  # one stable key per cell
    best: bool = False  # track the best epoch (MemberResult.best_epoch, at_best)
    weights: bool = False  # return the final weights (else they are dropped)
    # (file or module, sha256 or version, registered object or None) of each plugged object
    # its configs use (plugins.pins): a worker loads them itself and checks they are the ones
    # the keys were made from
    plugins: tuple[tuple[str, str, Any], ...] = ()

    @property
    def key(self) -> str:
        return digest([list(self.keys), self.weights])

    @property
    def work(self) -> int:
        """Member-epochs: the progress bar's unit."""
        return sum(c.epochs for c in self.configs) * len(self.members)


def run_task(dataset: Dataset, task: Task, threads: int | None = None,
             progress: Callable[[int], None] | None = None) -> Results:
    """Each cell's member results: results[cell][member]. Top-level and pure, so an executor
    can run it anywhere; members' given initial weights and (unless asked) the final weights
    are not returned."""
    import torch

    from dlbench.engine.trainer import train_grid

    if threads is not None:
        torch.set_num_threads(threads)
    for where, digest, obj in task.plugins:
        plugins.pin(where, digest, obj)
    trained = train_grid(dataset, task.spec, list(task.configs), list(task.members), progress,
                         task.best)
    return [[replace(r, member=replace(r.member, init=None),
                     weights=r.weights if task.weights else {}) for r in cell]
            for cell in trained]


# --- executors -------------------------------------------------------------------------------

Done = Iterator[tuple[int, Results]]  # (task index, results) in the order they finish


class Inline:
    """In this process, in order; progress after every epoch."""

    live_progress = True  # the Engine has set this process's threads

    def map(self, dataset: Dataset, tasks: list[Task], progress) -> Done:
        for i, task in enumerate(tasks):
            yield i, run_task(dataset, task, None, progress)

    def close(self, abort: bool = False) -> None:
        pass


def _quiet_worker(threads: int) -> None:
    """A pool worker: Ctrl-C is for the parent to handle (it stops the pool), and threads as
    asked (set before any work, so every task in it runs the same)."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _run_task_at(path: str, task: Task) -> Results:
    return run_task(_dataset_at(path), task)


@functools.lru_cache(maxsize=2)  # a transfer run has two datasets: source and target
def _dataset_at(path: str) -> Dataset:
    with open(path, "rb") as f:
        return pickle.load(f)


DATA_PREFIX = "dlbench-data-"  # the pool's dataset files: dlbench-data-<pid>-<random>.pkl


@contextlib.contextmanager
def _dataset_file(dataset: Dataset) -> Iterator[str]:
    """The dataset pickled into a temporary file, removed on every exit the process lives
    through (SIGTERM is one: the CLI turns it into KeyboardInterrupt). A SIGKILLed run cannot
    remove its own: the file names its process, and the next pool removes those whose process
    is gone."""
    import tempfile

    _remove_stale_data_files(Path(tempfile.gettempdir()))
    fd, path = tempfile.mkstemp(prefix=f"{DATA_PREFIX}{os.getpid()}-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(dataset, f, pickle.HIGHEST_PROTOCOL)
        yield path
    finally:
        os.unlink(path)


def _remove_stale_data_files(directory: Path) -> None:
    for path in directory.glob(f"{DATA_PREFIX}*-*.pkl"):
        pid = path.name.removeprefix(DATA_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


class Pool:
    """A local process pool (spawned, not forked: torch's thread pools do not survive a fork).
    The dataset goes to the workers through one temporary file per grid, read once by each
    worker, not through the pipe with every task. A worker killed from outside (the
    out-of-memory killer, a user) breaks the pool: WorkerLost, at once, not a hang."""

    live_progress = False

    def __init__(self, workers: int, threads: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"),
                                        initializer=_quiet_worker, initargs=(threads,))

    def map(self, dataset: Dataset, tasks: list[Task], progress) -> Done:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        with _dataset_file(dataset) as path:
            futures = {self.pool.submit(_run_task_at, path, t): i for i, t in enumerate(tasks)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            except BrokenProcessPool:
                raise WorkerLost("a worker process died (killed from outside: the "
                                 "out-of-memory killer, or a user)") from None
            finally:
                for future in futures:
                    future.cancel()

    def close(self, abort: bool = False) -> None:
        if abort:  # running tasks are not waited for; a broken pool has no workers left
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)


class Dask:
    """A Dask distributed cluster: an existing one (`scheduler`) or a LocalCluster started here
    with one thread per worker process. The dataset is sent to the workers once per grid."""

    live_progress = False

    def __init__(self, scheduler: str | None, local: int, threads: int):
        import distributed

        self.threads, self.cluster = threads, None
        try:
            if scheduler is None:
                self.cluster = distributed.LocalCluster(
                    n_workers=local, threads_per_worker=1, processes=True,
                    # a free port: None means 8787, which a second run here would find taken
                    dashboard_address=":0",
                    host="127.0.0.1")
            self.client = distributed.Client(scheduler or self.cluster, timeout="10s")
        except OSError as e:  # includes distributed's TimeoutError
            if self.cluster is not None:
                self.cluster.close()
            raise DlbenchError(f"cannot reach the Dask scheduler at {scheduler}: {e}; start one "
                               "with `dask scheduler` (and `dask worker ADDRESS`), or drop "
                               "--scheduler") from None

    def map(self, dataset: Dataset, tasks: list[Task], progress) -> Done:
        import distributed

        data = self.client.scatter(dataset, broadcast=True)
        futures = {self.client.submit(run_task, data, task, self.threads, pure=False): i
                   for i, task in enumerate(tasks)}
        try:
            for future in distributed.as_completed(futures):
                yield futures[future], future.result()
        except (distributed.KilledWorker, distributed.CancelledError, OSError) as e:
            # a task its workers kept dying on, or the cluster gone (its last worker lost)
            raise WorkerLost(f"the Dask cluster lost its workers ({type(e).__name__})") from None

    def close(self, abort: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def executor(config: ExecutionConfig):
    if config.executor == "dask":
        return Dask(config.scheduler, config.dask_local, config.threads)
    if config.executor == "pool":
        return Pool(config.workers, config.threads)
    return Inline()


# --- the store and the engine ----------------------------------------------------------------


class Store:
    """Finished tasks under a run directory, one file each, named by the task's key.

    Files are pickles written by dlbench itself (atomically: a temp file, then a rename), read
    back only when that run is resumed: resume only runs you made. Each file starts with a
    header line holding the sha256 of the pickle after it, checked before it is unpickled: a
    damaged file (a flipped bit, overwritten bytes) or one of an older dlbench without a
    checksum is not used, its cells are trained again, and `rejected` says which and why.
    """

    MAGIC = b"dlbench-cells sha256 "  # + 64 hex digits + newline, then the pickle

    def __init__(self, directory: Path):
        self.directory = directory
        self.rejected: dict[Path, str] = {}  # stored files not used -> why

    def path(self, task: Task) -> Path:
        return self.directory / f"{task.key}.pkl"

    def get(self, task: Task) -> Results | None:
        stored = self._read(self.path(task))
        return stored["results"] if stored and stored.get("keys") == list(task.keys) else None

    def _read(self, path: Path) -> dict | None:
        """A stored file's contents, checked; None (and why, in `rejected`) when unusable."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            self.rejected[path] = f"unreadable: {e.strerror}"
            return None
        header, _, payload = data.partition(b"\n")
        if not header.startswith(self.MAGIC):
            self.rejected[path] = "no checksum: stored by an older dlbench, or damaged"
            return None
        if hashlib.sha256(payload).hexdigest().encode() != header[len(self.MAGIC):]:
            self.rejected[path] = "damaged: its checksum does not match"
            return None
        try:
            return pickle.loads(payload)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            self.rejected[path] = f"unreadable by this dlbench ({type(e).__name__})"
            return None

    def put(self, task: Task, results: Results) -> None:
        from dlbench.results import atomic_write

        payload = pickle.dumps({"keys": list(task.keys), "results": results,
                                "plugins": {w: d for w, d, _ in task.plugins}},
                               pickle.HIGHEST_PROTOCOL)
        header = self.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
        atomic_write(self.path(task), lambda f: f.write(header + payload), binary=True)

    def changed(self, tasks: list[Task]) -> None:
        """Note in `rejected` each stored file trained with a plugged optimizer's file or
        package that has changed since (its cells have other keys now: trained again)."""
        now = {where: digest for task in tasks for where, digest, _ in task.plugins}
        if not now:
            return
        for path in sorted(self.directory.glob("*.pkl")):
            stored = self._read(path) or {}
            for where, digest in stored.get("plugins", {}).items():
                if now.get(where, digest) != digest:
                    self.rejected[path] = f"{where} has changed since they were trained"

    def count(self) -> int:
        """Cells stored so far (checked ones only)."""
        stored = (self._read(path) for path in sorted(self.directory.glob("*.pkl")))
        return sum(len(s.get("keys", ())) for s in stored if isinstance(s, dict))


class Stopped(Exception):
    """A run stopped before it finished; what finished is stored. `code`: the exit status (3:
    stopped by its environment — a worker died, the disk filled —, never 1, which means a
    regression)."""

    code = 3


class Interrupted(Stopped):
    """Ctrl-C (or SIGTERM) during a run."""

    code = 130


class WorkerLost(Stopped):
    """A worker process died under a task (killed from outside), or a cluster lost them all."""


class Engine:
    """Runs tasks on an executor, skipping and storing finished ones; counts what it did.

    Use as a context manager: it sets this process's torch threads (restored after) and closes
    the executor's workers.
    """

    def __init__(self, config: ExecutionConfig | None = None, store: Store | None = None,
                 progress: Callable[[int], None] | None = None):
        self.config = config or ExecutionConfig()
        self.store, self.progress = store, progress
        self._executor = None
        self._threads: int | None = None
        self.trained = self.resumed = 0  # cells

    def __enter__(self) -> Engine:
        import torch

        self._threads = torch.get_num_threads()
        torch.set_num_threads(self.config.threads)
        return self

    def __exit__(self, kind, error, trace) -> None:
        import torch

        if self._executor is not None:
            self._executor.close(abort=kind is not None)  # on an error, stop workers at once
            self._executor = None
        if self._threads is not None:
            torch.set_num_threads(self._threads)

    def use(self, store: Store | None) -> None:
        """Keep finished tasks in `store` from now on (the next run's), and count afresh."""
        self.store = store
        self.trained = self.resumed = 0

    def run(self, dataset: Dataset, tasks: list[Task]) -> list[Results]:
        """Each task's results, in task order."""
        done: dict[int, Results] = {}
        if self.store is not None:
            self.store.changed(tasks)
        for i, task in enumerate(tasks):
            stored = self.store.get(task) if self.store is not None else None
            if stored is not None:
                done[i] = stored
                self.resumed += len(task.keys)
                self._advance(task.work)
        todo = [i for i in range(len(tasks)) if i not in done]
        if todo:
            if self._executor is None:
                self._executor = executor(self.config)
            runner = self._executor
            finished = runner.map(dataset, [tasks[i] for i in todo], self.progress)
            try:  # closed at once, whatever stops the loop: the executor's temporary files go
                with contextlib.closing(finished):
                    for j, results in finished:
                        self._keep(tasks[todo[j]], results, runner.live_progress)
                        done[todo[j]] = results
            except KeyboardInterrupt:
                raise Interrupted() from None
        return [done[i] for i in range(len(tasks))]

    def _keep(self, task: Task, results: Results, advanced: bool) -> None:
        if self.store is not None:
            self.store.put(task, results)
        self.trained += len(task.keys)
        if not advanced:
            self._advance(task.work)

    def _advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress(n)
