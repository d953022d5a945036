"""dlbench: measured evidence about deep-learning training choices.

The package is laid out in layers; a module imports only from layers below its own (or from its own
folder), a rule that tests/test_layers.py holds:

    6  cli/                  the command line: options, configs, suites
    5  runners/  output/     what each command trains | tables, plots, HTML, progress
    4  evaluate/             metrics, statistics, verdicts, rows, compare, ranking
    3  engine/               the stacked trainer, regularizers, cells and their executors
    2  nn/  optim/           stacked models and their registries | optimizers, schedules,
                             the 2-D test functions
    1  data/                 datasets, splits, preprocessing, augmentation
    0  the modules here      errors, registry, grammar, seeding, results (the run directory format)
"""

__version__ = "0.1.0"
