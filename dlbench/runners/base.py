"""What every runner offers, stated once: the contract the CLI, the suites and a Python API call.

A runner is a module (cv, optimize, functions, overfit, transfer) with two steps. `prepare`
loads and checks everything a run needs (data, sizes) before anything trains, so a bad input
is refused with nothing written; `run` trains the prepared plan (through `engine`, whose store
skips finished cells) and returns tables, not prints. `TRAINS_CELLS` says whether its work goes
through the engine's cells at all: paths on a 2-D function are a second's work and run
directly (no executor, no resume).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import pandas as pd


class Plan(Protocol):
    """A run checked and ready to train."""

    config: Any  # the frozen config it was prepared from
    warnings: list[str]  # said before training

    @property
    def total_epochs(self) -> int:  # the progress bar's length (0: no cells)
        ...


class Result(Protocol):
    """A finished run: what is written to its directory and shown."""

    plan: Any  # the Plan it ran
    summary: pd.DataFrame  # one row per configuration: the table on stdout, summary.csv
    info: dict[str, Any]  # what the manifest adds to the config (dataset, seeds, timing, ...)
    warnings: list[str]  # said after training, before the table

    @property
    def tables(self) -> dict[str, pd.DataFrame]:  # CSV name (no suffix) -> its rows
        ...


@runtime_checkable
class Runner(Protocol):
    """A command's recipe: what to train for a config (the engine decides how)."""

    TRAINS_CELLS: bool  # True: cells through an Engine (executors, resume); False: direct

    def prepare(self, config: Any) -> Plan: ...

    def run(self, plan: Any, engine: Any = None) -> Result: ...
