"""dlbench: measured evidence about deep-learning training choices.

The package is laid out in layers; a module imports only from layers below its own (or from its own
folder), a rule that tests/test_layers.py holds:

    6  cli/                  the command line: options, configs, suites; the Python API
    5  runners/  output/     what each command trains | tables, plots, HTML, progress
    4  evaluate/             metrics, statistics, verdicts, rows, compare, ranking
    3  engine/               the stacked trainer, regularizers, cells and their executors
    2  nn/  optim/           stacked models and their registries | optimizers, schedules,
                             the 2-D test functions
    1  data/                 datasets, splits, preprocessing, augmentation
    0  the modules here      errors, registry, grammar, seeding, results (the run directory format)

The Python API (cli/api.py) is re-exported here, imported on first use so that `import dlbench`
stays instant (no torch until a function is called):

    import dlbench
    run = dlbench.cv(dataset="iris", k=5, opt=[(MyOptimizer, {"lr": 0.01})])
    run.summary            # the table `dlbench cv` prints, as a DataFrame; run.scores, run.out
"""

from dlbench.errors import DlbenchError

__version__ = "0.1.0"
API = ("cv", "optimize", "overfit", "transfer", "run_suite", "compare", "Run", "SuiteRun",
       "Comparison")  # what `dlbench.NAME` gives from cli/api.py
__all__ = ["DlbenchError", "__version__", *API]


def __getattr__(name: str):
    if name in API:
        from dlbench.cli import api  # the top layer, imported only when the API is used

        return getattr(api, name)
    raise AttributeError(f"module 'dlbench' has no attribute '{name}'")
