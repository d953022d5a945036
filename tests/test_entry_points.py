"""Installed packages plug entries by entry point (plugins.GROUPS), `--plugin` imports a module
that adds entries through the registries' own API, and pytorch-optimizer's names reach --opt.
An installed distribution is a `*.dist-info` directory (METADATA, entry_points.txt) on sys.path
beside its package: what importlib.metadata reads of a pip-installed one."""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import (
    EXECUTOR_IDS,
    EXECUTORS,
    assert_scores_as_inline,
    assert_usage_error,
    invoke,
)
from test_contract import NormalizedSGD

from dlbench import plugins
from dlbench.engine.regularizers import REGULARIZERS
from dlbench.optim.optimizers import OPTIMIZERS, parse_optimizers

# the package's optimizer: test_contract's per-tensor-norm one, under the name its package gives
OPT = f"import torch\n\n\n{inspect.getsource(NormalizedSGD)}\n\nLion = NormalizedSGD\n"
REGS = '''
from dataclasses import replace

from dlbench.engine.regularizers import REGULARIZERS

REGULARIZERS.add(replace(REGULARIZERS.get("l2"), name="{name}",
                         description="l2, from a plugin"))
'''
ENTRY_POINTS = """[dlbench.optimizers]
lion = lion_pkg.opt:Lion
sgd = lion_pkg.opt:Lion

[dlbench.regularizers]
l2plugged = lion_pkg.regs

[dlbench.datasets]
twoblobs = lion_pkg.extras:two_blobs

[dlbench.metrics]
hits = lion_pkg.extras:hits

[dlbench.models]
tinynet = lion_pkg.extras:tiny_net
"""
EXTRAS = '''
import numpy as np


def two_blobs(n: int = 60):
    """Two Gaussian blobs in 4 features."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 4)) + 2.0 * y[:, None], y


def hits(y_true, proba):
    """The number of rows predicted right."""
    return float((np.asarray(proba).argmax(1) == y_true).sum())


hits.greater_is_better = True


def tiny_net(input_shape, n_outputs, width: int = 6):
    """One hidden layer of `width` units."""
    import torch

    return torch.nn.Sequential(torch.nn.Linear(input_shape[0], width), torch.nn.ReLU(),
                               torch.nn.Linear(width, n_outputs))
'''
CV = ["cv", "--dataset", "iris", "--epochs", "2", "--hidden", "8", "--k", "2"]
OPTIMIZE = ["optimize", "--dataset", "iris", "--epochs", "2", "--hidden", "8", "--seeds", "2"]


@pytest.fixture
def registries(monkeypatch):
    """The registries as they were before the test: entries a plugin adds are gone after it."""
    for registry in (OPTIMIZERS, REGULARIZERS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(plugins, "_added", {})


@pytest.fixture
def site(tmp_path, monkeypatch, registries) -> Path:
    """A distribution 'lion-bench' 1.2.3 installing the package lion_pkg, on sys.path."""
    root = tmp_path / "site"
    package = root / "lion_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "opt.py").write_text(OPT)
    (package / "regs.py").write_text(REGS.format(name="l2plugged"))
    (package / "extras.py").write_text(EXTRAS)
    info = root / "lion_bench-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lion-bench\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (info / "top_level.txt").write_text("lion_pkg\n")  # which packages it installs
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))  # pool workers
    for name in [m for m in sys.modules if m.startswith("lion_pkg")]:
        monkeypatch.delitem(sys.modules, name)
    plugins.refresh()
    plugins._import.cache_clear()  # lion_pkg of another test's site
    yield root
    plugins.refresh()
    plugins._import.cache_clear()


def _run(*args):
    result = invoke(*args)
    assert result.exit_code == 0, f"{result.output}{result.exception!r}"
    return result


def test_an_entry_point_name_reads_as_its_reference_and_built_in_names_win(site):
    assert "lion_pkg.opt" not in sys.modules  # finding entry points imports nothing
    [lion, sgd] = parse_optimizers("lion[lr=0.05],sgd")
    assert (lion.name, lion.lr, sgd.name) == ("lion_pkg.opt:Lion", 0.05, "sgd")
    assert plugins.record(lion) == {"plugins": [{
        "optimizer": "lion_pkg.opt:Lion", "module": "lion_pkg.opt", "package": "lion_pkg",
        "version": "1.2.3"}]}  # the distribution's version, though its name is not the module's


def test_cv_trains_an_entry_point_optimizer_and_the_listing_shows_it(site, tmp_path):
    out = tmp_path / "out"
    _run(*CV, "--opt", "lion[lr=0.01]", "--out", out)
    assert set(pd.read_csv(out / "scores.csv")["optimizer"].dropna()) == {"lion_pkg.opt:Lion"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plugins"][0]["version"] == "1.2.3"
    listed = _run("optimizers").stdout
    assert "dlbench.optimizers" in listed and "lion-bench 1.2.3" in listed
    [sgd_line] = [line for line in listed.splitlines()
                  if line.startswith("sgd ") and "lion" in line]
    assert "built-in of this name wins" in sgd_line


def test_dataset_and_metric_entry_points_read_as_their_references(site, tmp_path):
    out = tmp_path / "out"
    _run("cv", "--dataset", "twoblobs[n=40]", "--metrics", "hits,accuracy", "--epochs", "1",
         "--hidden", "8", "--k", "2", "--out", out)
    scores = pd.read_csv(out / "scores.csv")
    assert {"lion_pkg.extras:hits", "accuracy"} <= set(scores["metric"])
    records = json.loads((out / "manifest.json").read_text())["plugins"]
    assert {(r.get("dataset") or r.get("metric"), r["version"]) for r in records} == {
        ("lion_pkg.extras:two_blobs", "1.2.3"), ("lion_pkg.extras:hits", "1.2.3")}


def test_a_model_entry_point_reads_as_its_reference(site, tmp_path):
    out = tmp_path / "out"
    _run("cv", "--dataset", "iris", "--model", "tinynet[width=4]", "--epochs", "1", "--k", "2",
         "--out", out)
    assert "lion_pkg.extras:tiny_net[width=4]" in set(pd.read_csv(out / "scores.csv")["model"])
    [record] = json.loads((out / "manifest.json").read_text())["plugins"]
    assert (record["model"], record["version"]) == ("lion_pkg.extras:tiny_net", "1.2.3")


def test_a_regularizer_entry_point_names_a_module_that_adds_it(site):
    """An entry point without ':Name' is a plugin module: imported when its name is asked for,
    it adds the entry, which carries the package's version."""
    assert "l2plugged" not in REGULARIZERS
    info = REGULARIZERS.get("l2plugged")
    assert info.description == "l2, from a plugin"
    assert plugins.record({"reg": "l2plugged"}) == {"plugins": [{
        "regularizer": "l2plugged", "module": "lion_pkg.regs", "package": "lion_pkg",
        "version": "1.2.3"}]}


def test_an_entry_point_module_that_adds_nothing_of_its_name_is_a_one_line_error(site):
    (site / "lion_pkg" / "regs.py").write_text(REGS.format(name="other"))
    with pytest.raises(Exception, match="adds no regularizer 'l2plugged'"):
        REGULARIZERS.get("l2plugged")


# a plugin: test_contract's per-tensor-norm optimizer, added to OPTIMIZERS as the built-ins are
PLUGIN = f"""import torch

from dlbench.optim.optimizers import OPTIMIZERS, OptimInfo


{inspect.getsource(NormalizedSGD)}

OPTIMIZERS.add(OptimInfo("normsgd", NormalizedSGD, test_lr=0.05,
                         description="steps of length lr"))
"""


@pytest.fixture
def plugin(tmp_path, registries) -> Path:
    path = tmp_path / "mine" / "signs.py"
    path.parent.mkdir()
    path.write_text(PLUGIN)
    return path


def test_a_plugin_adds_an_entry_whose_file_is_in_the_manifest_and_the_keys(plugin, tmp_path):
    out = tmp_path / "out"
    args = [*OPTIMIZE, "--plugin", plugin, "--opt", "normsgd,sgd", "--out", out]
    _run(*args)
    assert set(pd.read_csv(out / "scores.csv")["optimizer"].dropna()) == {"normsgd", "sgd"}
    [record] = json.loads((out / "manifest.json").read_text())["plugins"]
    assert record == {"optimizer": "normsgd", "file": str(plugin),
                      "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}
    plugin.write_text(PLUGIN + "\n# edited\n")  # an edit of the plugin retrains its cells
    _run(*args, "--resume")
    execution = json.loads((out / "manifest.json").read_text())["execution"]
    assert (execution["cells_trained"], execution["cells_resumed"]) == (1, 1)  # sgd kept


@pytest.mark.parametrize("executor", EXECUTORS, ids=EXECUTOR_IDS)
def test_workers_import_the_plugin_and_score_as_inline(plugin, tmp_path, executor):
    """Spawned workers know no plugin's entries until their task's pins import it."""
    assert_scores_as_inline([*CV, "--plugin", plugin, "--opt", "normsgd"], tmp_path, executor)


def test_check_imports_a_plugin_and_checks_its_entry(plugin):
    result = invoke("check", "normsgd", "--plugin", plugin)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("exact: ") and "on its leaf views" in result.stdout


def test_a_suite_imports_its_plugins_relative_to_its_file(plugin, tmp_path):
    suite = plugin.parent / "suite.toml"
    suite.write_text('plugins = ["signs.py"]\n[entry.mine]\ncommand = "cv"\ndataset = "iris"\n'
                     'epochs = 2\nhidden = "8"\nk = 2\nopt = "normsgd"\n')
    _run("run", suite, "--out", tmp_path / "suite")
    scores = pd.read_csv(tmp_path / "suite" / "mine" / "scores.csv")
    assert set(scores["optimizer"].dropna()) == {"normsgd"}


@pytest.mark.parametrize("where, says", [
    ("{dir}/nope.py", "--plugin {dir}/nope.py: no such file"),
    ("no such module", "write path/to/file.py or package.module"),
    ("not_a_module_here", "cannot import not_a_module_here"),
])
def test_a_bad_plugin_is_a_one_line_error(plugin, tmp_path, where, says):
    out = tmp_path / "out"
    result = invoke(*CV, "--plugin", where.format(dir=tmp_path), "--out", out)
    assert says.format(dir=tmp_path) in assert_usage_error(result, out)


# --- pytorch-optimizer (the optional extra; `make install` installs it) ---------------------


@pytest.fixture
def pytorch_optimizer():
    return pytest.importorskip("pytorch_optimizer", reason="the pytorch-optimizer extra is not "
                               "installed: pip install 'dlbench[pytorch-optimizer]'")


@pytest.mark.parametrize("entry, alone", [
    ("lamb", False),  # a trust ratio per tensor
    ("lion", False),
    ("adan", False),
    ("bsam[num_data=40]", True),  # SAM-like: its step raises without a closure
    ("shampoo", False),  # matrix preconditioners per tensor
    ("soap", False),
    ("schedulefreeadamw", False),  # its own train()/eval() switch
    ("splus", False),  # an eval() that needs a step first
    ("flashadamw", False),  # a `fused` flag dlbench leaves to its default
    ("kron", False),  # draws random numbers in its steps (the member's own stream)
])
def test_pytorch_optimizer_names_reach_opt_and_keep_the_contract(pytorch_optimizer, entry,
                                                                 alone):
    """A representative subset (benchmarks/sweep_pytorch_optimizer.py sweeps them all): each
    never elementwise, so per member on leaf views (alone when it needs a closure), exact."""
    from dlbench.engine import contract
    from dlbench.engine.members import TrainConfig
    from dlbench.engine.stepper import stacking
    from dlbench.nn.models import ModelSpec

    [spec] = parse_optimizers(entry)
    assert spec.name.startswith("pytorch_optimizer") and not spec.info.elementwise
    assert (stacking(spec).alone, stacking(spec).leaves) == (alone, True)
    [record] = plugins.record(spec)["plugins"]
    assert (record["package"], record["version"]) == (
        "pytorch_optimizer", metadata.version("pytorch_optimizer"))
    config = TrainConfig(spec, epochs=contract.EPOCHS, batch_size=contract.BATCH)
    contract.check_stacking(contract.Case(contract.make_data(), ModelSpec("linear"), config,
                                          contract.halved_lr(config)))


def test_pytorch_optimizer_is_listed_compactly_and_built_in_names_win(pytorch_optimizer):
    assert parse_optimizers("adam")[0].name == "adam"  # the built-in, not the package's
    listed = _run("optimizers").stdout
    assert f"pytorch-optimizer {metadata.version('pytorch_optimizer')}" in listed
    section = listed.split("pytorch-optimizer ", 1)[1]
    assert "lion" in section and "adam, adamw, lbfgs, rmsprop, sgd (a built-in" in section


def test_an_unknown_name_points_to_the_collections_names_too(pytorch_optimizer, tmp_path):
    out = tmp_path / "out"
    said = assert_usage_error(invoke(*CV, "--opt", "nosuch", "--out", out), out)
    shadowed = {"adam", "adamw", "lbfgs", "rmsprop", "sgd"}
    reachable = set(pytorch_optimizer.get_supported_optimizers()) - shadowed
    assert said.startswith("error: unknown optimizer 'nosuch'; choose one of: sgd, momentum")
    assert said.endswith(f"or one of pytorch-optimizer's {len(reachable)} names (`dlbench "
                         "optimizers` lists them)")


def test_a_users_optimizer_that_fails_in_its_step_is_a_one_line_error(tmp_path):
    """As AdaHessian does in a stack: its step takes a Hessian-vector product from a backward
    with create_graph, which the stack's is not."""
    path = tmp_path / "broken.py"
    path.write_text(f"import torch\n\n\n{inspect.getsource(NormalizedSGD)}\n\n"
                    "class Broken(NormalizedSGD):\n"
                    "    def step(self, closure=None):\n"
                    "        raise RuntimeError('needs create_graph')\n")
    out = tmp_path / "out"
    result = invoke(*CV, "--opt", f"{path}:Broken", "--out", out)
    assert assert_usage_error(result, out) == (
        "error: optimizer broken.py:Broken failed in its step: RuntimeError: needs "
        "create_graph; it cannot train here as given")
    assert invoke("check", f"{path}:Broken").exit_code == 2
