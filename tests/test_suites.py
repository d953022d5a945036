"""Suites: TOML entries parsed by the commands' own code, run into one directory each, with what
finished kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dlbench.cli import run, suites
from dlbench.errors import DlbenchError
from tests.cli_helpers import assert_usage_error, invoke

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SUITE = """\
description = "two quick entries"

[entry.cv-iris]
claim = "a small MLP separates iris"
command = "cv"
dataset = "iris"
k = 2
epochs = 2
hidden = "8"
stratify = false

[entry.opt-iris]
command = "optimize"
dataset = "iris"
opt = "sgd[lr=0.1],adam"
epochs = 2
seeds = 2
hidden = ["8", "8,8"]
"""
# the same two runs as command lines
COMMAND_LINES = {
    "cv-iris": ["cv", "--dataset", "iris", "--k", "2", "--epochs", "2", "--hidden", "8",
                "--no-stratify"],
    "opt-iris": ["optimize", "--dataset", "iris", "--opt", "sgd[lr=0.1],adam", "--epochs", "2",
                 "--seeds", "2", "--hidden", "8", "--hidden", "8,8"],
}


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    result = invoke("run", write(root, SUITE), "--out", root / "out")
    assert result.exit_code == 0, result.output
    return root / "out"


def test_each_entry_gives_the_files_of_its_command_line(ran, tmp_path):
    assert sorted(p.name for p in ran.iterdir()) == ["cv-iris", "opt-iris", "suite.json"]
    for name, args in COMMAND_LINES.items():
        alone = tmp_path / name
        assert invoke(*args, "--out", alone).exit_code == 0
        for table in ("scores.csv", "curves.csv"):
            assert (ran / name / table).read_bytes() == (alone / table).read_bytes(), name
        assert (ran / name / "run.json").read_text() == (alone / "run.json").read_text()


def test_a_rerun_skips_what_finished_and_resumes_what_did_not(ran, tmp_path):
    suite = write(tmp_path, SUITE)
    again = invoke("run", suite, "--out", ran)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("already finished") == 2
    (ran / "opt-iris" / "manifest.json").unlink()  # as if stopped after its last cell
    before = (ran / "opt-iris" / "scores.csv").read_bytes()
    resumed = invoke("run", suite, "--out", ran)
    assert resumed.exit_code == 0, resumed.output
    [line] = [line for line in resumed.stdout.splitlines() if line.startswith("opt-iris")]
    assert line.split()[2:4] == ["resumed", "0"]  # resumed, no cell trained again
    assert (ran / "opt-iris" / "scores.csv").read_bytes() == before


def test_an_entry_whose_options_changed_is_refused_before_anything_runs(ran, tmp_path):
    changed = write(tmp_path, SUITE.replace('k = 2', 'k = 3'))
    result = invoke("run", changed, "--out", ran)
    message = assert_usage_error(result, tmp_path / "nothing")
    assert message == (f"error: suite entry 'cv-iris': {ran / 'cv-iris'} holds a run of another"
                       " configuration (config.split.k: 2 there, 3 now); run into a new --out, "
                       "or remove that directory")


@pytest.mark.parametrize("entry, says", [
    ('command = "cv"\nnope = 3', "suite entry 'bad': cv has no option --nope; its options: "
                                 "activation, "),
    ('command = "cv"\nk = "x"', "suite entry 'bad': Invalid value for '--k'"),
    ('command = "cv"\nk = 1', "suite entry 'bad': --k must be at least 2"),
    ('command = "cv"\nstratify = "no"', "--stratify is a switch: give true or false"),
    ('command = "cv"\ndataset = "nope"', "suite entry 'bad': unknown dataset 'nope'; choose one"),
    ('command = "transfer"\nstrategy = "probe"', "suite entry 'bad': unknown strategy"),
    ('command = "optimize"\nfunction = "nope"', "suite entry 'bad': unknown function 'nope'"),
    ('command = "cv"\nworkers = 2', "--workers is set for the whole suite by dlbench run"),
    ('command = "fit"', "command must be one of cv, optimize, overfit, transfer, got 'fit'"),
    ('command = "cv"\nhidden = [[8]]', "hidden must be a string, number or boolean"),
    ('command = "cv"\nk = [2, 3]', "suite entry 'bad': --k takes one value, got a list of 2"),
    ('command = "overfit"\nreg = ["none", "l2"]', "--reg takes one value, got a list of 2"),
    ('command = "cv"\nclaim = 3', "claim is a sentence in quotes"),
])
def test_a_bad_entry_is_one_line_naming_it_and_nothing_runs(entry, says, tmp_path):
    good = SUITE.split("[entry.opt-iris]")[0]  # a good entry first: it must not run either
    suite = write(tmp_path, f"{good}\n[entry.bad]\n{entry}\n")
    out = tmp_path / "out"
    message = assert_usage_error(invoke("run", suite, "--out", out), out)
    assert says in message, message


@pytest.mark.parametrize("text, says", [
    ("x = [", "suite {path}: "),
    ('description = "none"', "has no entries"),
    ('[suite]\nx = 1\n[entry.a]\ncommand = "cv"', "unknown key 'suite'"),
    ('[entry."a b"]\ncommand = "cv"', "entry 'a b': a name is letters"),
])
def test_a_malformed_suite_file_is_refused(text, says, tmp_path):
    path = write(tmp_path, text)
    with pytest.raises(DlbenchError, match=None) as caught:
        suites.load(path)
    assert says.format(path=path) in str(caught.value)


def test_shipped_suites_are_valid_before_anything_runs(tmp_path):
    """Every entry of every shipped suite parses, checks and prepares (data, sizes)."""
    for path in sorted(BENCHMARKS.glob("*.toml")):
        suite = suites.load(path)
        commands = {e.command for e in suite.entries}
        if path.name == "smoke.toml":
            assert commands == set(suites.COMMANDS)  # the smoke run touches every command
        for entry in [*suite.entries, *(e.profiled(True) for e in suite.entries if e.quick)]:
            prepared = run._prepared(entry, tmp_path / path.stem / entry.name)
            assert prepared.state == "new"
            assert prepared.plan.total_epochs > 0 if "function" not in entry.options \
                else prepared.plan is None


def test_the_suite_results_of_a_pool_equal_in_process_ones(ran, tmp_path):
    out = tmp_path / "pool"
    result = invoke("run", write(tmp_path, SUITE), "--out", out, "--workers", "2")
    assert result.exit_code == 0, result.output
    for name in COMMAND_LINES:
        a, b = (pd.read_csv(d / name / "scores.csv") for d in (ran, out))
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_gate_catches_a_deliberately_worse_smoke_run(tmp_path):
    """`make regress` compares a fresh smoke run with results/baseline/: one whose training is
    cut short (the same configurations, worse numbers) fails it with exit 1."""
    baseline = BENCHMARKS.parent / "results" / "baseline"
    worse = write(tmp_path, (BENCHMARKS / "smoke.toml").read_text()
                  .replace("epochs = 10", "epochs = 1").replace("epochs = 25", "epochs = 2"))
    assert invoke("run", worse, "--out", tmp_path / "worse").exit_code == 0
    result = invoke("compare", baseline, tmp_path / "worse", "--format", "json")
    assert result.exit_code == 1, result.output
    verdicts = pd.DataFrame(json.loads(result.stdout)["rows"])
    regressed = verdicts[verdicts.verdict == "regressed"]
    assert {"cv-digits", "optimize-digits", "overfit-mnist1d"} <= set(regressed.entry)


def test_paths_on_a_function_run_in_a_suite_and_are_kept(tmp_path):
    suite = write(tmp_path, '[entry.bowl]\ncommand = "optimize"\nfunction = "anisotropic"\n'
                            'steps = 20\n')
    first = invoke("run", suite, "--out", tmp_path / "out")
    assert first.exit_code == 0, first.output
    assert (tmp_path / "out" / "bowl" / "trajectories.png").exists()
    again = invoke("run", suite, "--out", tmp_path / "out")
    assert "already finished" in again.stdout


def test_the_suite_keeps_its_claims_and_the_report_shows_them(ran, tmp_path):
    suite = json.loads((ran / "suite.json").read_text())
    assert suite["description"] == "two quick entries"
    assert {e["name"]: e["claim"] for e in suite["entries"]} == {
        "cv-iris": "a small MLP separates iris", "opt-iris": ""}
    page = tmp_path / "report.html"
    assert invoke("report", ran, "--out", page).exit_code == 0
    text = page.read_text()
    assert "<b>Claim:</b> a small MLP separates iris" in text and text.count("Claim:") == 1


def test_timings_train_each_entry_again_and_are_kept(tmp_path):
    suite = write(tmp_path, SUITE)
    result = invoke("run", suite, "--out", tmp_path / "out", "--timings", "2")
    assert result.exit_code == 0, result.output
    kept = {}
    for name in ("cv-iris", "opt-iris"):
        kept[name] = (tmp_path / "out" / name / "timings.csv").read_text()
        timings = pd.read_csv(tmp_path / "out" / name / "timings.csv")
        assert timings.timing.tolist() == [0, 1] and (timings.seconds > 0).all()
    again = invoke("run", suite, "--out", tmp_path / "out", "--timings", "2")
    assert again.exit_code == 0  # the timings there suffice: none is taken again
    assert all((tmp_path / "out" / n / "timings.csv").read_text() == t for n, t in kept.items())


# --- the quick profile (dlbench run --quick) --------------------------------------------------

QUICK = SUITE.replace("[entry.opt-iris]", "[entry.cv-iris.quick]\nepochs = 1\nk = 3\n\n"
                      "[entry.opt-iris]")


def _config(out: Path, entry: str) -> dict:
    return json.loads((out / entry / "manifest.json").read_text())["config"]


def _budget(out: Path, entry: str) -> tuple[int, int | None]:
    """(epochs, k) of an entry's run, from its manifest."""
    config = _config(out, entry)
    return config["train"]["epochs"], config.get("split", {}).get("k")


def test_quick_runs_each_entry_with_its_quick_options_and_keeps_the_profile(tmp_path):
    suite = write(tmp_path, QUICK)
    result = invoke("run", suite, "--quick", "--out", tmp_path / "quick")
    assert result.exit_code == 0, result.output
    assert "suite suite (quick profile)" in result.stdout
    assert _budget(tmp_path / "quick", "cv-iris") == (1, 3)  # the quick table's
    assert _budget(tmp_path / "quick", "opt-iris") == (2, None)  # no quick table: as it is
    assert json.loads((tmp_path / "quick" / "suite.json").read_text())["profile"] == "quick"
    assert invoke("report", tmp_path / "quick", "--out", tmp_path / "r.html").exit_code == 0
    assert "<h2>suite: quick (quick profile)</h2>" in (tmp_path / "r.html").read_text()
    full = invoke("run", suite, "--out", tmp_path / "full")
    assert full.exit_code == 0, full.output
    assert _budget(tmp_path / "full", "cv-iris") == (2, 2)
    assert json.loads((tmp_path / "full" / "suite.json").read_text())["profile"] == "full"
    import dlbench  # the API's quick=True is the same run

    api = dlbench.run_suite(suite, out=tmp_path / "api", quick=True)
    assert api.quick and _config(api.out, "cv-iris") == _config(tmp_path / "quick", "cv-iris")
    pd.testing.assert_frame_equal(api.runs["cv-iris"].scores,
                                  pd.read_csv(tmp_path / "quick" / "cv-iris" / "scores.csv"))


def test_a_suite_directory_holds_one_profile(tmp_path):
    """A rerun under the same profile skips what finished; under the other it is refused in
    one line before anything runs (the entries without a quick table would mix into it)."""
    suite = write(tmp_path, QUICK)
    out = tmp_path / "out"
    assert invoke("run", suite, "--quick", "--out", out).exit_code == 0
    again = invoke("run", suite, "--quick", "--out", out)
    assert again.exit_code == 0 and again.stdout.count("already finished") == 2
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    message = assert_usage_error(invoke("run", suite, "--out", out), tmp_path / "nothing")
    assert message == (f"error: --out {out} holds the suite's quick profile; add --quick to "
                       "finish it, or choose a new --out")
    assert {p: p.read_bytes() for p in before} == before  # nothing touched
    full = tmp_path / "full"
    assert invoke("run", suite, "--out", full).exit_code == 0
    message = assert_usage_error(invoke("run", suite, "--quick", "--out", full),
                                 tmp_path / "nothing")
    assert "holds the suite's full profile; drop --quick" in message


@pytest.mark.parametrize("quick, says", [
    ("quick = 3", "quick is a table of options"),
    ("[entry.bad.quick]\nworkers = 2", "--workers is set for the whole suite"),
    ("[entry.bad.quick]\nhidden = [[8]]", "hidden must be a string, number or boolean"),
    ("[entry.bad.quick]\ncommand = \"optimize\"", "command is the entry's own, not an option"),
    ("[entry.bad.quick]\nnope = 1", "cv has no option --nope"),
    ("[entry.bad.quick]\nk = \"x\"", "Invalid value for '--k'"),
    ("[entry.bad.quick]\nk = 1", "--k must be at least 2"),
])
@pytest.mark.parametrize("profile", [[], ["--quick"]])
def test_a_bad_quick_table_is_one_line_before_anything_trains(quick, says, profile, tmp_path):
    """Under either profile: a full run parses the quick tables too."""
    good = SUITE.split("[entry.opt-iris]")[0]  # a good entry first: it must not run either
    suite = write(tmp_path, f'{good}\n[entry.bad]\ncommand = "cv"\ndataset = "iris"\n'
                            f'{quick}\n')
    out = tmp_path / "out"
    message = assert_usage_error(invoke("run", suite, *profile, "--out", out), out)
    assert "entry 'bad'" in message and says in message, message


def test_quick_on_a_suite_without_quick_tables_says_so(tmp_path):
    result = invoke("run", write(tmp_path, SUITE), "--quick", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "warning: --quick: suite suite has no [entry.NAME.quick] table; every entry runs " \
           "as it is" in result.stderr


def test_run_help_documents_quick():
    assert "--quick" in invoke("run", "--help").stdout
