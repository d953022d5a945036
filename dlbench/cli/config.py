"""Options → frozen configs: parsed and checked in one place, whoever gives the options.

The command line hands over its parsed options (`options`: name → value, names as the Python
parameters of `dlbench <command>`, i.e. the flags with dashes as underscores) and the names the
user set explicitly (`given`). A suite entry can hand over the same two. Everything that needs
no data is checked here — an option that does not apply to what was asked is refused when given,
never silently ignored; checks that need the data run in the runner's prepare().
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from dlbench.errors import DlbenchError

FUNCTION_OPT = "sgd[lr=0.95],momentum[lr=0.1],adagrad[lr=1.5],adam[lr=0.3]"
NETWORK_OPT = "sgd[lr=0.1],momentum[lr=0.01],adagrad[lr=0.01],rmsprop[lr=0.001],adam[lr=0.001]"
MODEL_OPTIONS = ("hidden", "channels", "activation", "batchnorm", "dropout", "init",
                 "stochastic_depth", "dropconnect", "pool")
# how --data (--dataset, --source, --target) names the user's own loader
LOADER_HELP = ("write path/to/file.py:load or package.module:load, with its parameters in "
               "brackets: file.py:load[n=500,noise=0.1]")
FUNCTION_ONLY = ("steps", "start", "tol", "starts")
# `optimize --function` takes these; any other option given with it is refused
FUNCTION_OPTIONS = ("opt", "lr", "weight_decay", "schedule", "warmup", "function", *FUNCTION_ONLY,
                    "seed", "allow_large", "out", "fmt")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# --- the commands ----------------------------------------------------------------------------


def cv_config(options: Mapping[str, Any], given: Collection[str]):
    """The frozen config of `dlbench cv`."""
    from dlbench.data.splits import SplitConfig
    from dlbench.runners.cv import CVConfig

    o = _checked_numbers(options)
    _refuse(given, "k", "repeats", unless=o["protocol"] == "kfold",
            why="applies to --protocol kfold")
    _refuse(given, "val_fraction", "holdout_seeds", unless=o["protocol"] == "holdout",
            why="applies to --protocol holdout")
    _refuse(given, "stratify", unless=not o["time_order"],
            why="does not apply to --time-order, whose cut is fixed by time")
    [model] = _models(o, given, [o["model"]], [_ints("--hidden", o["hidden"])],
                      _names("--init", o["init"]), _names("--activation", o["activation"]),
                      (o["batchnorm"],))
    train = replace(_train(o, _one_optimizer(o, given)), missing=_one("--missing", _missing(o)),
                    features=_one("--features", _features(o)))
    return CVConfig(
        data=_data(o, given), model=model, train=train,
        split=SplitConfig(o["protocol"], o["k"], o["repeats"], o["val_fraction"],
                          o["holdout_seeds"], o["stratify"], o["time_order"], o["seed"]),
        seeds=o["seeds"], test_fraction=o["test_fraction"],
        metrics=_metrics(o), allow_large=o["allow_large"])


def optimize_config(options: Mapping[str, Any], given: Collection[str]):
    """The frozen config of `dlbench optimize` (2-D functions or networks)."""
    from dlbench.optim.optimizers import parse_optimizers
    from dlbench.runners.optimize import OptimizeConfig

    o = _checked_numbers(options)
    function = o["function"] is not None
    network = [name for name in options if name not in FUNCTION_OPTIONS]
    _refuse(given, *(network if function else FUNCTION_ONLY),
            why="applies to networks, not --function" if function else "applies to --function only")
    _refuse(given, "budget", unless=o["tune"] is not None, why="applies to --tune")
    _refuse(given, "seed", unless=not function or o["starts"] > 1,
            why="draws --starts above 1 on --function; one start is the function's own")
    entries = o["opt"] or (FUNCTION_OPT if function else NETWORK_OPT)
    for option in ("lr_grid", "tune"):
        if o[option] is not None and (o["lr"] is not None or "lr=" in (o["opt"] or "")):
            raise DlbenchError(f"{flag(option)} sets every entry's learning rate; drop --lr and "
                               "the entries' own lr=")
    optimizers = _distinct("--opt", parse_optimizers(entries, o["lr"], o["weight_decay"]))
    _check_fills(entries, given)
    for option in ("missing", "features"):
        if o[option] is not None and o["init"] is not None:
            raise DlbenchError(f"--init records activations at initialisation on the "
                               f"preprocessed rows, without {flag(option)}; drop one of them")
    depths = _distinct("--hidden", [_ints("--hidden", h) for h in o["hidden"]]) \
        if o["hidden"] else [(100,) * 5 if o["init"] else (128,)]
    models = _models(o, given, _model_names(o["model"]), depths,
                     _names("--init", o["init"] or "default"),
                     _names("--activation", o["activation"]),
                     _switches("--batchnorm", o["batchnorm"]))
    return OptimizeConfig(
        optimizers=optimizers, function=o["function"], steps=o["steps"],
        start=_point(o["start"]), tol=o["tol"], starts=o["starts"] if function else None,
        data=_data(o, given), models=models,
        preprocess=_names("--preprocess", o["preprocess"]), missing=_missing(o),
        features=_features(o), batch_sizes=_batch_sizes(o["batch_size"], optimizers),
        losses=_names("--loss", o["loss"] or "default"), train=_train(o, None),
        lr_grid=_lr_grid(o["lr_grid"]), tune_budget=_tune_budget(o["tune"], o["budget"]),
        seeds=o["seeds"], seed=o["seed"], val_fraction=o["val_fraction"],
        test_fraction=o["test_fraction"], stratify=o["stratify"],
        target=o["target_accuracy"], activations=o["init"] is not None,
        metrics=_metrics(o), margin=o["margin"],
        allow_large=o["allow_large"])


def overfit_config(options: Mapping[str, Any], given: Collection[str]):
    """The frozen config of `dlbench overfit`."""
    from dlbench.runners.overfit import OverfitConfig

    o = _checked_numbers(options) | {"dropout": 0.0}  # these are --reg entries here
    # a capacity sweep's models are W wide (--width) and D deep (--depth); --hidden gives
    # only what the sweep leaves: the depth for --width, the width for --depth
    _refuse(given, "hidden", unless="width" not in given,
            why="is replaced by --width, which sets every hidden layer's width (the number of "
                "layers comes from --depth)")
    if "depth" in given and "hidden" in given and len(_ints("--hidden", o["hidden"])) > 1:
        raise DlbenchError("--depth sets the number of hidden layers, so --hidden gives their "
                           "one width: give --hidden a single width, such as 64")
    [model] = _models(o, given, [o["model"]], [_ints("--hidden", o["hidden"])],
                      _names("--init", o["init"]), _names("--activation", o["activation"]),
                      (False,))
    return OverfitConfig(
        regularizers=_regularizers(o["reg"], "reg" in given, model), data=_data(o, given),
        model=model,
        widths=_distinct("--width", _ints("--width", o["width"])) if o["width"] else (),
        depths=_distinct("--depth", _ints("--depth", o["depth"])) if o["depth"] else (),
        train_rows=_train_rows(o["train_rows"]), train_rows_given="train_rows" in given,
        train_fractions=_fractions(o["train_fraction"]) if o["train_fraction"] else (1.0,),
        train=_train(o, _one_optimizer(o, given, "overfit")), missing=_missing(o),
        features=_features(o), seeds=o["seeds"], seed=o["seed"],
        val_fraction=o["val_fraction"], test_fraction=o["test_fraction"],
        stratify=o["stratify"], metrics=_metrics(o),
        allow_large=o["allow_large"])


def _regularizers(text: str, given: bool, model) -> tuple:
    """--reg's entries; for a model of the user's own, the default list without the entries
    that edit a built-in architecture (dropout: it has no such switch). Given, they are
    refused with the entries that apply (the runner)."""
    from dlbench.engine.regularizers import edits_model, parse_regularizers

    entries = parse_regularizers(text)
    if model.plugged and not given:
        entries = [r for r in entries if not edits_model(r)]
    return tuple(entries)


def transfer_config(options: Mapping[str, Any], given: Collection[str]):
    """The frozen config of `dlbench transfer`."""
    from dlbench.data.datasets import DataSpec
    from dlbench.runners.transfer import TransferConfig

    o = _checked_numbers(options) | {"dropout": 0.0}
    [model] = _models(o, given, [o["model"]], [_ints("--hidden", o["hidden"])],
                      _names("--init", o["init"]), _names("--activation", o["activation"]),
                      (o["batchnorm"],))
    _refuse(given, "top", unless=o["preset"] is not None or any(
        s in (o["strategy"] or "") for s in ("finetune-top", "probe-early")),
            why="applies to --strategy finetune-top and probe-early")
    _refuse(given, "body_lr_scale", unless="finetune-all" in (o["strategy"] or ""),
            why="applies to --strategy finetune-all")
    _refuse(given, "source_epochs", unless=o["source_checkpoint"] is None,
            why="trains the source model, and --source-checkpoint loads it instead")
    similarity = _names("--similarity", o["similarity"])
    _refuse(given, "different", unless="different" in similarity,
            why="names the different target of --similarity similar,different")
    if o["preset"] is not None:
        if o["preset"] != "quadrants":
            raise DlbenchError(f"unknown --preset '{o['preset']}'; choose one of: quadrants")
        _refuse(given, "similarity", "strategy", why="is set by --preset")
        similarity = ("similar", "different")
        o |= {"strategy": "scratch,linear-probe,finetune-top,finetune-all,probe-early"}
        if "target_size" not in given:
            o["target_size"] = "25,1000"
        elif len(_distinct("--target-size", _ints("--target-size", o["target_size"]))) != 2:
            raise DlbenchError("--preset quadrants takes two --target-size values: a small "
                               "and a large one, such as 25,1000")
    return TransferConfig(
        source=DataSpec(_dataset_name(o["source"], "--source")),
        target=DataSpec(_dataset_name(o["target"], "--target")), model=model,
        strategies=_names("--strategy", o["strategy"]),
        target_sizes=_distinct("--target-size", _ints("--target-size", o["target_size"])),
        top=o["top"],
        body_lr_scale=o["body_lr_scale"], source_epochs=o["source_epochs"],
        source_checkpoint=None if o["source_checkpoint"] is None
        else str(o["source_checkpoint"]),
        train=_train(o, _one_optimizer(o, given, "transfer")), seeds=o["seeds"], seed=o["seed"],
        similarity=similarity,
        different=None if o["different"] is None
        else DataSpec(_dataset_name(o["different"], "--different")),
        metrics=_metrics(o), allow_large=o["allow_large"])


# --- shared pieces ---------------------------------------------------------------------------


def execution_config(o: Mapping[str, Any]):
    """Where the cells run (never part of a run's config: it changes no number)."""
    from dlbench.engine.execution import ExecutionConfig

    return ExecutionConfig(workers=o["workers"], scheduler=o["scheduler"],
                           dask_local=o["dask_local"], threads=o["threads"])


def _data(o: Mapping[str, Any], given: Collection[str]):
    from dlbench.data.datasets import DataSpec

    if o["data"] is not None and "dataset" in given:
        raise DlbenchError("--data and --dataset both name the data; give one of them")
    path = None if o["data"] is None else str(o["data"])
    if path is not None and _loader(path):  # the user's loader: named as a built-in is
        name, path = _dataset_name(path, "--data"), None
    else:
        name = None if path is not None else _dataset_name(o["dataset"], "--dataset")
    return DataSpec(name, path, o.get("target"), o.get("group"), o.get("time"),
                    o.get("dedupe", False), missing=o.get("missing") is not None)


def _loader(path: str) -> bool:
    """--data names the user's loader ('file.py:load[...]'), not a data file: a file of that
    name (however odd) stays a file."""
    from pathlib import Path

    from dlbench import plugins

    return plugins.is_reference(path) and not Path(path).expanduser().exists()


def _dataset_name(text: str | None, option: str) -> str | None:
    """A built-in dataset's name as given; the user's loader ('file.py:load[k=v]') with its
    file's path resolved (the same loader from any directory), checked to be a function."""
    from dlbench import grammar, plugins
    from dlbench.data.datasets import DATASETS, KIND

    if text is None:
        return text
    base = text.partition("[")[0].strip()  # an installed entry point's name: its loader
    text = DATASETS.lookup(base) + text[text.index(base) + len(base):]
    if not plugins.is_reference(text):
        return text
    name, body = grammar.read_entry(text, option, LOADER_HELP)
    reference = plugins.resolve(name, option)
    plugins.get(reference, KIND)
    return reference if body is None else f"{reference}[{body}]"


def _train(o: Mapping[str, Any], optimizer):
    """The training options; `optimizer` None: every cell sets its own."""
    from dlbench.engine.members import TrainConfig

    base = TrainConfig()
    if optimizer is None:  # the grid sets these per cell
        return TrainConfig(base.optimizer, o["epochs"], schedule=o["schedule"],
                           warmup=o["warmup"], device=o["device"])
    return TrainConfig(optimizer, o["epochs"], o["batch_size"], o["preprocess"], o["schedule"],
                       o["warmup"], o["device"])


def _models(o: Mapping[str, Any], given: Collection[str], names, depths, inits, activations,
            batchnorms) -> tuple:
    """Every model of the grid; an option none of the models uses is refused when given. A
    model is a registry name or a plugged one, path/to/file.py:Name[k=v,...]."""
    from dlbench.nn.models import ModelSpec, model_info, normalize, parse_model

    parsed = [parse_model(name) for name in names]  # (name or reference, its k=v)
    infos = [model_info(name) for name, _ in parsed]
    for option in MODEL_OPTIONS:
        if option in given and not any(option in info.uses for info in infos):
            raise DlbenchError(_unused_option(option, parsed, infos))
    channels = _ints("--channels", o["channels"])
    return tuple(dict.fromkeys(  # a model ignoring an option is not multiplied by it
        normalize(ModelSpec(name, widths, channels, act, bn, o["dropout"], init,
                            o.get("stochastic_depth", 0.0), o.get("dropconnect", 0.0),
                            o.get("pool", "max"), params))
        for name, params in parsed for widths in depths for init in inits
        for act in activations for bn in batchnorms))


def _unused_option(option: str, parsed: list, infos: list) -> str:
    """Why a model option given explicitly is refused: no model of the grid uses it."""
    from dlbench.plugins import is_reference, short

    if all(is_reference(name) for name, _ in parsed):
        shown = ", ".join(short(name) for name, _ in parsed)
        return (f"{flag(option)} does not apply to {shown}: a model of your own builds its own "
                f"layers (give its own parameters as {short(parsed[0][0])}[k=v]); drop it")
    return (f"{flag(option)} does not apply to model {', '.join(n for n, _ in parsed)} (it "
            f"takes: {', '.join(sorted({flag(u) for i in infos for u in i.uses}))}); drop it")


def _model_names(text: str) -> tuple[str, ...]:
    """optimize's --model list: names, or plugged models whose [k=v,...] hold commas."""
    from dlbench import grammar

    if "[" not in text:
        return _names("--model", text)
    return _distinct("--model", tuple(e.strip() for e in grammar.split_entries(
        text, "--model", "write e.g. 'mlp,path/to/net.py:Net[width=64]'")))


def _metrics(o: Mapping[str, Any]) -> tuple[str, ...]:
    """--metrics: built-in names as given; the user's own ('file.py:name') with its file's
    path resolved, checked to be a function that declares its direction."""
    from dlbench import plugins
    from dlbench.evaluate.metrics import METRICS, plugged

    found = [METRICS.lookup(name) for name in _names("--metrics", o["metrics"])]  # entry points
    names = tuple(plugins.resolve(name, "--metrics") if plugins.is_reference(name) else name
                  for name in found)
    for name in filter(plugins.is_reference, names):
        plugged(name)
    return _distinct("--metrics", names)


def _one_optimizer(o: Mapping[str, Any], given: Collection[str], command: str = "cv"):
    from dlbench.optim.optimizers import parse_optimizers

    specs = parse_optimizers(o["opt"], o["lr"], o["weight_decay"])
    if len(specs) > 1:
        raise DlbenchError(f"{command} trains one optimizer: give one --opt entry "
                           "(dlbench optimize compares several)")
    _check_fills(o["opt"], given)
    return specs[0]


def _check_fills(entries: str, given: Collection[str]) -> None:
    """--lr / --weight-decay fill the entries that set none: refused when given and none is
    left. Whether it was given decides, never its value: `--lr 1e-3` is adam's default lr."""
    from dlbench.optim.optimizers import entry_keys

    for key in ("lr", "weight_decay"):
        if key in given and all(key in keys for keys in entry_keys(entries)):
            raise DlbenchError(f"{flag(key)} fills --opt entries that set no {key}=, and every "
                               f"entry sets its own; drop {flag(key)}")


def _missing(o: Mapping[str, Any]) -> tuple[str, ...]:
    """--missing 'mean,median' -> its fills; not given: ("none",), complete data only."""
    from dlbench.data.preprocess import IMPUTERS

    if o.get("missing") is None:
        return ("none",)
    names = _names("--missing", o["missing"])
    for name in names:
        if name not in IMPUTERS:
            raise DlbenchError(f"unknown --missing '{name}'; choose one of: "
                               f"{', '.join(IMPUTERS.names())}")
    return names


def _features(o: Mapping[str, Any]) -> tuple[int, ...]:
    """--features '4,8' -> its counts; not given: (0,), every feature."""
    if o.get("features") is None:
        return (0,)
    return _distinct("--features", _ints("--features", o["features"]))


def _one(option: str, values: tuple) -> Any:
    if len(values) > 1:
        raise DlbenchError(f"cv trains one configuration: give one {option} value "
                           "(dlbench optimize and overfit compare several)")
    return values[0]


def _refuse(given: Collection[str], *names: str, unless: bool = False, why: str) -> None:
    if unless:
        return
    for name in names:
        if name in given:
            raise DlbenchError(f"{flag(name)} {why}; drop it")


def _checked_numbers(options: Mapping[str, Any]) -> dict[str, Any]:
    """NaN and ±inf are no value for any numeric option."""
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise DlbenchError(f"{flag(name)} must be a finite number, got {value}")
    return dict(options)


def _ints(option: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise DlbenchError(f"{option} takes comma-separated integers, e.g. 128,64; "
                           f"got '{text}'") from None
    if any(v < 1 for v in values):
        raise DlbenchError(f"{option} values must be positive, got '{text}'")
    return values


def _names(option: str, text: str | None) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b'); an empty item (a doubled or trailing comma) is an error."""
    if text is None:
        return ()
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise DlbenchError(f"{option} '{text}' has an empty item; list names separated by "
                           "single commas")
    return _distinct(option, names)


def _distinct(option: str, values) -> tuple:
    """The values, refused when one is repeated: it would train the same cell twice (or, as
    before, be dropped without a word); the same rule as --reg's entries."""
    seen = set()
    for value in values:
        if value in seen:
            text = ",".join(map(str, value)) if isinstance(value, tuple) else f"{value}"
            raise DlbenchError(f"{option} lists {text} twice; give each value once")
        seen.add(value)
    return tuple(values)


def _batch_sizes(text: str, optimizers) -> tuple[int, ...]:
    sizes = _distinct("--batch-size", _ints("--batch-size", text))
    full = [o.name for o in optimizers if o.info.full_batch]
    if len(sizes) > 1 and full:
        raise DlbenchError(f"full-batch optimizers ({', '.join(dict.fromkeys(full))}) take "
                           "every training row in each step: a --batch-size list would train "
                           "them once per size to the same numbers; compare batch sizes with "
                           "elementwise optimizers")
    return sizes


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in _names("--train-fraction", text))
    except ValueError:
        raise DlbenchError(f"--train-fraction takes comma-separated shares such as "
                           f"0.1,0.25,0.5,1; got '{text}'") from None
    if not all(0 < v <= 1 for v in values):
        raise DlbenchError(f"--train-fraction values must be in (0, 1], got '{text}'")
    return _distinct("--train-fraction", values)


def _train_rows(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise DlbenchError(f"--train-rows takes a number of rows or 'all', got '{text}'"
                           ) from None


def _switches(option: str, text: str) -> tuple[bool, ...]:
    values = {"on": True, "off": False}
    try:
        return tuple(values[v] for v in _names(option, text))
    except KeyError:
        raise DlbenchError(f"{option} takes on, off or on,off; got '{text}'") from None


def _point(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise DlbenchError(f"--start takes a point X,Y such as -7,2; got '{text}'") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise DlbenchError(f"--start takes finite coordinates, got '{text}'")
    return x, y


def _lr_grid(text: str | None) -> tuple[float, ...]:
    if text is None:
        return ()
    import numpy as np

    try:
        low, high, n = text.split(":")
        low, high, count = float(low), float(high), int(n)
    except ValueError:
        raise DlbenchError(f"--lr-grid takes LOW:HIGH:N such as 1e-4:1:9; got '{text}'") from None
    if not (0 < low < high < math.inf) or count < 2:
        raise DlbenchError(f"--lr-grid needs 0 < LOW < HIGH (finite) and N >= 2; got '{text}'")
    return tuple(float(v) for v in np.geomspace(low, high, count))


def _tune_budget(tune: str | None, budget: int) -> int:
    if tune is None:
        return 0
    if tune != "lr":
        raise DlbenchError(f"unknown --tune '{tune}'; choose one of: lr")
    if budget < 3:  # with 2 rates every choice lies at an end of the range searched
        raise DlbenchError(f"--budget must be at least 3 trials, got {budget}")
    return budget
