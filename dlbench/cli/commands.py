"""The one table of training commands: name → options, config builder, runner, table, figures.

The CLI generates each command from its row, `dlbench run` parses a suite entry with the row's
options and builder, and a finished run is shown and drawn by the row's route. A new command is
a new row (and its options dataclass), not an edit in four places. Runners are imported only
when a command runs, so `dlbench --help` stays instant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from dlbench.cli import config, figures, options

if TYPE_CHECKING:
    from dlbench.runners.base import Runner


@dataclass(frozen=True)
class Route:
    """What runs a config, and how its finished run is shown and drawn."""

    runner: str  # its module under dlbench.runners (a runners.base.Runner)
    table: str | None  # the name of output.report's function result -> (table, notes), looked
    #                    up when the run is shown (importing output.report here would slow
    #                    --help); None: report.show_functions, which prints its own
    figures: Callable[[Any], dict]  # result -> {file name: writer(path)}: PNGs, extra files

    def module(self) -> Runner:
        """The runner module, looked up when the run starts (tests may patch its prepare)."""
        return importlib.import_module(f"dlbench.runners.{self.runner}")

    def show(self, result: Any, fmt: str) -> None:
        """The summary on stdout: the route's table and notes, or JSON."""
        from dlbench.output import report

        if self.table is None:
            report.show_functions(result, fmt)
        else:
            report.show(result, fmt, getattr(report, self.table))


@dataclass(frozen=True)
class Command:
    """A training command: its options, how they become a config, and what runs it."""

    name: str  # `dlbench NAME`, the manifest's command and the default results directory
    doc: str  # its line in `dlbench --help`
    options: type  # its options dataclass (cli/options.py): flags, types, defaults, help
    build: Callable[[Mapping[str, Any], Collection[str]], Any]  # (values, given) -> config
    routes: tuple[Route, ...]  # what can run it; route() picks one for a config

    def route(self, built: Any) -> Route:
        """optimize's config with a --function runs on paths; every other config on cells."""
        return self.routes[-1] if getattr(built, "function", None) else self.routes[0]


FUNCTIONS = Route("functions", None, figures.function_figures)
COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("cv", "Hold-out, k-fold and iterated k-fold estimates with confidence intervals, "
            "leakage-safe.", options.CVOptions, config.cv_config,
            (Route("cv", "cv_table", figures.no_figures),)),
    Command("optimize", "Optimizers on 2-D test functions and on networks: curves, sweeps, "
            "tuning, init studies.", options.OptimizeOptions, config.optimize_config,
            (Route("optimize", "optimize_table", figures.optimize_figures), FUNCTIONS)),
    Command("overfit", "Capacity and regularizers on train-vs-validation curves: overfitting "
            "onset and gap.", options.OverfitOptions, config.overfit_config,
            (Route("overfit", "overfit_table", figures.overfit_figures),)),
    Command("transfer", "Pretrain, then linear-probe or fine-tune, against training from "
            "scratch.", options.TransferOptions, config.transfer_config,
            (Route("transfer", "transfer_table", figures.transfer_figures),)),
)}


def values(chosen: Any) -> dict[str, Any]:
    """An options dataclass as the name -> value mapping the config builders read."""
    return {f.name: getattr(chosen, f.name) for f in fields(chosen)}
