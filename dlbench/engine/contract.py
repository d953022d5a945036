"""The exactness contract as a check anyone can run (DESIGN: "member m of a stack gives the same
numbers as training that one model alone"): member 0 trained alone (a stack of one) against
member 0 in a stack of four — beside a member of another seed and other rows under its own
config (so one optimizer steps both), and two members of half the learning rate (their own
optimizer over their slice). Through the public engine path the runners take (`train`,
`train_grid`), on tiny data: 80 rows, 3 classes.

tests/test_contract.py sweeps every registry entry with it (and adds a plain one-model PyTorch
loop as a reference); `dlbench check` runs it on a user's optimizer or model and times both
paths.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from dlbench.data.datasets import Dataset
from dlbench.engine.members import Member, MemberResult, TrainConfig
from dlbench.engine.stepper import stacking
from dlbench.engine.trainer import plan_stacks, train, train_grid
from dlbench.nn.models import ModelSpec

# Member 0 alone and in a stack run the same float32 operations on the same numbers, batched
# differently (bmm over 1 or 4 members): rounding may differ in the last bits and grows a little
# over the steps, so a tolerance, never bit-equality.
STACK_TOL = {"rtol": 1e-5, "atol": 1e-6}
ROWS, FEATURES, CLASSES = 80, 6, 3
BATCH = 16  # members of 40 and 39 training rows both take 3 steps an epoch: one stack
EPOCHS = 2
STACK = 4  # member 0's stack: 2 members (seeds, rows) × 2 learning rates


def make_data(input_shape: tuple[int, ...] | None = None, seed: int = 0) -> Dataset:
    """ROWS rows, 3 classes that the first features separate, badly scaled (so the
    preprocessing matters); flat features shaped `input_shape` (None: a table of FEATURES)."""
    d = math.prod(input_shape) if input_shape else FEATURES
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(ROWS, d)) * rng.uniform(0.5, 5, d) + rng.normal(size=d))
    y = (X[:, :CLASSES] + rng.normal(size=(ROWS, CLASSES))).argmax(1)
    return Dataset("contract", X.astype(np.float32), y.astype(np.int64), "classification",
                   classes=tuple(str(c) for c in range(CLASSES)), input_shape=input_shape)


def make_members() -> list[Member]:
    """Member 0: 40 training rows; member 1: 39 other ones (a short last batch each, padded
    differently in the stack), each with 20 validation rows and a seed of its own."""
    members = []
    for i, n in enumerate((40, 39)):
        rows = np.random.default_rng(10 + i).permutation(ROWS)
        members.append(Member({"i": i}, seed=100 + i, train=np.sort(rows[:n]),
                              evals={"val": np.sort(rows[n:n + 20])}))
    return members


@dataclass(frozen=True)
class Case:
    """One entry as the contract trains it."""

    data: Dataset  # tiny, of the shape the entry needs
    spec: ModelSpec  # the model member 0 trains
    config: TrainConfig  # member 0's training
    other: TrainConfig  # two neighbours' training in the shared stack (other hyperparameters)


def halved_lr(config: TrainConfig) -> TrainConfig:
    """Other hyperparameters that every optimizer has: half the learning rate."""
    return replace(config, optimizer=replace(config.optimizer, lr=config.optimizer.lr / 2))


def check_stacking(case: Case) -> MemberResult:
    """Member 0 alone against member 0 in a stack of four (AssertionError naming the first
    difference) -> member 0's result alone."""
    timed = _timed(case)
    assert_same_member(timed.alone, timed.stacked)
    return timed.alone


def assert_same_member(a: MemberResult, b: MemberResult) -> None:
    assert (a.status, a.best_epoch, a.stopped_epoch) == (b.status, b.best_epoch, b.stopped_epoch)
    assert [c[:3] for c in a.curves] == [c[:3] for c in b.curves]
    np.testing.assert_allclose([c[3] for c in a.curves], [c[3] for c in b.curves],
                               err_msg="curves", **STACK_TOL)
    for name, value in a.weights.items():
        np.testing.assert_allclose(value, b.weights[name], err_msg=name, **STACK_TOL)
    for split, pred in a.predictions.items():
        np.testing.assert_allclose(pred.proba, b.predictions[split].proba,
                                   err_msg=f"{split} probabilities", **STACK_TOL)


@dataclass(frozen=True)
class Timed:
    """Member 0 trained both ways, and how long each took."""

    alone: MemberResult  # member 0 in a stack of one
    stacked: MemberResult  # member 0 in the stack of four
    alone_seconds: float  # wall time of member 0 alone
    stacked_seconds: float  # wall time of the whole stack of four


def _timed(case: Case) -> Timed:
    members = make_members()
    if not stacking(case.config.optimizer).alone:  # else each member trains alone anyway
        assert len(plan_stacks(members, [case.config, case.other])) == 1, "not one stack"
    start = time.perf_counter()
    [alone] = train(case.data, case.spec, case.config, members[:1])
    middle = time.perf_counter()
    stacked = train_grid(case.data, case.spec, [case.config, case.other], members)[0][0]
    end = time.perf_counter()
    return Timed(alone, stacked, middle - start, end - middle)


@dataclass(frozen=True)
class Verdict:
    """What `dlbench check` says of an entry."""

    exact: bool  # member 0 alone equals member 0 in the stack, within STACK_TOL
    difference: str  # the first difference found ('' when exact)
    alone_seconds: float  # per epoch, member 0 alone
    stacked_seconds: float  # per epoch, the stack of four
    how: str  # how the optimizer's members train (stepper.stacking, in words)

    def line(self) -> str:
        """One line: exact or not (with the tolerance), and the speed of each path."""
        tol = f"rtol {STACK_TOL['rtol']:g}, atol {STACK_TOL['atol']:g}"
        head = (f"exact: member 0 alone = member 0 in a stack of {STACK} (another seed, half "
                f"the lr) within {tol}" if self.exact else
                f"NOT exact: member 0 alone differs from member 0 in a stack of {STACK} beyond "
                f"{tol}: {self.difference}")
        speed = (STACK * self.alone_seconds) / max(self.stacked_seconds, 1e-12)
        return (f"{head}; {STACK} members together ({self.how}) {self.stacked_seconds:.3g} "
                f"s/epoch, 1 alone {self.alone_seconds:.3g} s/epoch: {speed:.2g}x the members "
                "per second together")


def verdict(case: Case, warmup: bool = True) -> Verdict:
    """The contract on `case` as a verdict instead of an AssertionError (`dlbench check`);
    `warmup`: train once first, so neither path's time holds one-time costs."""
    if warmup:
        train(case.data, case.spec, replace(case.config, epochs=1), make_members()[:1])
    timed, epochs = _timed(case), case.config.epochs
    try:
        assert_same_member(timed.alone, timed.stacked)
        difference = ""
    except AssertionError as e:  # np.testing's message: what differs, by how much
        difference = "; ".join(line.strip() for line in str(e).strip().splitlines()
                               if line.strip())[:300]
    return Verdict(not difference, difference, timed.alone_seconds / epochs,
                   timed.stacked_seconds / epochs, stacking(case.config.optimizer).means)
