"""Options declared once: the options dataclasses are the commands' flags, defaults and help,
the registries fill the help's lists, and one table routes every command to its runner."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import MISSING, fields

import pytest
from cli_helpers import invoke

from dlbench.cli import options, suites
from dlbench.cli.commands import COMMANDS, values
from dlbench.cli.execute import click_command
from dlbench.evaluate.metrics import METRICS
from dlbench.runners.base import Runner

GROUPS = [cls for cls in vars(options).values()
          if isinstance(cls, type) and cls.__name__.endswith("Options")
          and cls.__module__ == options.__name__]


@pytest.mark.parametrize("cls", GROUPS, ids=lambda c: c.__name__)
def test_every_option_has_a_help_text_from_its_comment(cls):
    missing = [f.name for f in fields(cls) if not options.help_template(cls, f.name)]
    assert not missing, f"{cls.__name__}: fields without a comment above them: {missing}"


def test_the_help_is_the_comment_block_right_above_a_field(tmp_path, monkeypatch):
    """A block of comment lines joins into one help text; a comment above an earlier field, or
    a field without one, gives none of its words to the next."""
    path = tmp_path / "declared.py"
    path.write_text(textwrap.dedent('''\
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Declared:
            # First line,
            # second line.
            a: int = 1
            b: int = 2  # a trailing remark is not help
            # Only c's.
            c: int = 3
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import declared

    assert [options.help_template(declared.Declared, n) for n in "abc"] == [
        "First line, second line.", "", "Only c's."]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_help_placeholder_is_filled(command):
    """No `{name}` reaches the user: each placeholder names a registry (or a default)."""
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert not options.PLACEHOLDER.search(result.stdout), result.stdout
    for cls in GROUPS:
        for f in fields(cls):
            for name, _ in options.PLACEHOLDER.findall(options.help_template(cls, f.name)):
                assert name in options.FILLS, f"{cls.__name__}.{f.name}: {{{name}}}"


def test_a_metric_registered_later_appears_in_the_help(monkeypatch):
    """The --metrics help lists the registry as it is when the help is shown."""
    accuracy = METRICS.get("accuracy")
    new = type(accuracy)(**{f.name: getattr(accuracy, f.name) for f in fields(accuracy)}
                         | {"name": "my_new_metric"})
    monkeypatch.setitem(METRICS._entries, new.name, new)
    result = invoke("cv", "--help")
    assert result.exit_code == 0, result.output
    assert "my_new_metric" in result.stdout
    monkeypatch.delitem(METRICS._entries, new.name)
    assert "my_new_metric" not in invoke("cv", "--help").stdout


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, dlbench.cli.app; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=lambda c: c.name)
def test_each_option_is_a_field_with_its_default(command):
    """The parser's options are the dataclass's fields, in order, with the same defaults."""
    params = [p for p in click_command(command).params if p.name != "ctx"]
    declared = fields(command.options)
    assert [p.name for p in params] == [f.name for f in declared]
    for param, f in zip(params, declared, strict=True):
        default = f.default if f.default is not MISSING else f.default_factory()
        assert param.default == default, f.name


@pytest.mark.parametrize(("command", "name", "flags", "negated"), [
    ("cv", "fmt", ["--format"], []),
    ("cv", "target", ["--target", "--target-column"], []),
    ("cv", "allow_large", ["--allow-large"], []),
    ("cv", "resume", ["--resume"], []),
    ("cv", "stratify", ["--stratify"], ["--no-stratify"]),
    ("cv", "holdout_seeds", ["--holdout-seeds"], []),
    ("optimize", "opt", ["--opt"], []),
    ("overfit", "reg", ["--reg"], []),
    ("transfer", "target", ["--target"], []),
])
def test_flags_named_in_the_metadata(command, name, flags, negated):
    [param] = [p for p in click_command(COMMANDS[command]).params if p.name == name]
    assert (param.opts, param.secondary_opts) == (flags, negated)


def test_optimize_hidden_is_repeated():
    [hidden] = [p for p in click_command(COMMANDS["optimize"]).params if p.name == "hidden"]
    assert hidden.multiple


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=lambda c: c.name)
def test_the_options_defaults_build_the_command_lines_config(command):
    """What a Python call with no arguments would build equals a bare command line's config."""
    parsed = click_command(command).make_context(command.name, []).params
    assert command.build(values(command.options()), set()) == command.build(parsed, set())


def test_every_route_is_a_runner():
    routes = [r for c in COMMANDS.values() for r in c.routes]
    assert {r.runner for r in routes} == {"cv", "optimize", "functions", "overfit", "transfer"}
    for route in routes:
        assert isinstance(route.module(), Runner), route.runner


def test_every_route_shows_its_run_with_a_table_function_of_the_report():
    """A route names its table function by a string (read when a run is shown): a typo would
    only fail after a run trained, so it is checked here."""
    from dlbench.output import report

    for route in (r for c in COMMANDS.values() for r in c.routes):
        assert route.table is None or callable(getattr(report, route.table, None)), route.table


def test_optimize_routes_a_function_to_its_paths():
    command = COMMANDS["optimize"]
    with_function = command.build(values(options.OptimizeOptions(function="rosenbrock")),
                                  {"function"})
    assert command.route(with_function).runner == "functions"
    assert command.route(command.build(values(command.options()), set())).runner == "optimize"


def test_a_function_run_offers_what_every_runner_does():
    """functions.prepare/run: a plan and a result of the Runner protocol's shape."""
    command = COMMANDS["optimize"]
    config = command.build(values(options.OptimizeOptions(function="beale", steps=5)),
                           {"function", "steps"})
    runner = command.route(config).module()
    plan = runner.prepare(config)
    assert (plan.total_epochs, plan.warnings) == (0, [])
    result = runner.run(plan)
    assert set(result.tables) == {"trajectories", "summary", "scores"}
    assert len(result.summary) == len(config.optimizer_grid())
    assert result.info["seconds"] >= 0 and result.plan is plan


def test_suites_accept_the_commands_of_the_table():
    assert list(suites.COMMANDS) == ["cv", "optimize", "overfit", "transfer"]
