"""The layer rule: a module imports dlbench only from layers below its own or its own folder."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dlbench"
FOUNDATION = 0
LAYERS = {"data": 1, "nn": 2, "optim": 2, "engine": 3, "evaluate": 4, "runners": 5, "output": 5,
          "cli": 6}
# the package's own __init__ re-exports the Python API (dlbench.cv, ...) from the top layer,
# imported inside its module __getattr__ on first use: `import dlbench` loads no layer above 0
REEXPORTS = {"dlbench.__init__": {"dlbench.cli"}}


def _folder(module: str) -> str | None:
    """The layer folder of a dotted module name under dlbench, None for a foundation module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def _rank(module: str) -> int:
    folder = _folder(module)
    return FOUNDATION if folder is None else LAYERS[folder]


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every dlbench module this file imports (at any depth, lazily or not), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dlbench.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "dlbench":  # from dlbench import x: x is a module or __version__
                found += [(node.lineno, f"dlbench.{a.name}") for a in node.names
                          if a.name != "__version__"]
            elif node.module.startswith("dlbench."):
                found.append((node.lineno, node.module))
    return found


def _module(path: Path) -> str:
    return ".".join(("dlbench", *path.relative_to(PACKAGE).with_suffix("").parts))


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def test_every_folder_is_a_known_layer_with_a_docstring():
    folders = {p.parent.name for p in MODULES if p.parent != PACKAGE}
    assert folders == set(LAYERS)
    for folder in folders:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc and "Layer" in doc, f"{folder}/__init__.py must say what it owns and may import"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_it(path):
    importer = _module(path)
    wrong = [f"line {line}: {name}" for line, name in _imports(path)
             if _folder(name) != _folder(importer) and _rank(name) >= _rank(importer)
             and not (_folder(name) is None and _folder(importer) is None)
             and name not in REEXPORTS.get(importer, ())]
    assert not wrong, f"{importer} imports from its own layer or above: {wrong}"


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check itself can fail: an engine module importing evaluate is named."""
    path = PACKAGE / "engine" / "trainer.py"
    fake = tmp_path / "trainer.py"
    fake.write_text("from dlbench.evaluate.metrics import METRICS\n")
    names = [name for _, name in _imports(fake)]
    assert names == ["dlbench.evaluate.metrics"]
    assert _rank(names[0]) > _rank(_module(path))


def test_importing_the_package_loads_no_layer_and_no_torch():
    """The API's re-export stays lazy: `import dlbench` is instant, `dlbench.cv` loads the API
    module, and torch and pandas wait for a call."""
    code = ("import sys, dlbench; loaded = sorted(m for m in sys.modules if m.startswith("
            "'dlbench') or m in ('torch', 'pandas')); print(loaded); dlbench.cv; "
            "print([m in sys.modules for m in ('dlbench.cli.api', 'torch', 'pandas')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent).stdout.splitlines()
    assert out == ["['dlbench', 'dlbench.errors']", "[True, False, False]"]
