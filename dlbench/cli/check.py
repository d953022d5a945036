"""`dlbench check OPTIMIZER_OR_MODEL`: the exactness contract (engine/contract.py) on one entry,
a user's own or a built-in, in one line. Exit 0 when it stacks exactly, 1 when it does not (a
finding, as compare's regression is), 2 on bad input."""

from __future__ import annotations

from typing import Annotated

import typer

from dlbench import grammar, plugins
from dlbench.errors import DlbenchError

Target = Annotated[str, typer.Argument(
    help="An optimizer in the --opt grammar (adam[lr=0.01], path/to/file.py:Name[k=v], an "
         "installed entry point's name) or a model in the --model grammar (mlp, "
         "path/to/file.py:Name).", metavar="OPTIMIZER_OR_MODEL", show_default=False)]
Opt = Annotated[str, typer.Option(help="The optimizer a model is checked with.")]
Model = Annotated[str, typer.Option(help="The model an optimizer is checked on (the convex "
                                         "linear model by default: any optimizer is stable "
                                         "on it).")]
Epochs = Annotated[int, typer.Option(help="Epochs of 3 minibatches each.")]
Plugin = Annotated[list[str] | None, typer.Option(
    help="Import a module (package.module) or file (path/to/file.py) that adds entries to the "
         "registries first; repeatable.")]


def check(target: Target, opt: Opt = "adam[lr=0.02]", model: Model = "linear",
          epochs: Epochs = 2, plugin: Plugin = None) -> None:
    """Does it stack exactly? Member 0 alone against member 0 in a stack of 4 (beside another
    seed and two members of half the lr) on tiny data, and how fast each path is."""
    from dlbench.engine import contract

    for where in plugin or ():
        plugins.use(where)
    if epochs < 1:
        raise DlbenchError(f"--epochs must be at least 1, got {epochs}")
    if _is_optimizer(target):
        case = _case(target, model, epochs)
    else:
        case = _case(opt, target, epochs)
    found = contract.verdict(case)
    typer.echo(found.line())
    if not found.exact:
        raise typer.Exit(1)


def _is_optimizer(target: str) -> bool:
    """Whether `target` names an optimizer (else a model): by the registries' names, or by
    what a plugged reference's object is."""
    from dlbench.nn.models import MODELS
    from dlbench.optim.optimizers import OPTIMIZERS, is_optimizer

    name = grammar.read_entry(target, "check", "write an optimizer or a model")[0]
    found = OPTIMIZERS.lookup(name)
    if not plugins.is_reference(found):
        if found in OPTIMIZERS:
            return True
        if found in MODELS:
            return False
        raise DlbenchError(f"check: '{name}' is neither an optimizer "
                           f"({', '.join(OPTIMIZERS.names())}) nor a model "
                           f"({', '.join(MODELS.names())}); or give path/to/file.py:Name")
    where, obj = plugins.split(plugins.resolve(found, "check"))
    named = getattr(plugins.load(where, "check").module, obj, None)
    return named is None or is_optimizer(named)  # missing: --opt's error lists what it has


def _case(opt: str, model: str, epochs: int):
    """The contract's case: the optimizer at its own (or the entry's) lr, the model as --model
    builds it, tiny data of the shape the model needs."""
    from dlbench.engine.contract import BATCH, Case, halved_lr, make_data
    from dlbench.engine.members import TrainConfig
    from dlbench.optim.optimizers import parse_optimizers

    specs = parse_optimizers(opt)
    if len(specs) != 1:
        raise DlbenchError(f"check takes one optimizer, got {len(specs)}: {opt}")
    config = TrainConfig(specs[0], epochs=epochs, batch_size=BATCH)
    spec, shape = _model(model)
    return Case(make_data(shape), spec, config, halved_lr(config))


def _model(name: str):
    """A model as `--model NAME` builds it (the command line's own parser and defaults) -> (its
    spec, the input shape its contract data takes: a built-in's declared test input)."""
    from dlbench.cli import commands, config, options
    from dlbench.nn.models import MODELS

    o = commands.values(options.CVOptions(model=name))
    [spec] = config._models(o, set(), [name], [config._ints("--hidden", o["hidden"])],
                            (o["init"],), (o["activation"],), (o["batchnorm"],))
    return spec, MODELS.get(name).test_input if name in MODELS else None
