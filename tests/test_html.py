"""`dlbench report`: one self-contained HTML page, checked as text and in a real headless
browser (Debian's chromium: `apt-get install chromium`; the browser tests are skipped without
it)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import assert_usage_error, invoke

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium here: apt-get install chromium (Debian) to run the "
                             "report's browser tests")
# what a machine with a closed network needs (see the env notes): no background connections
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
LOADED = ("<script>window.addEventListener('load', () => { document.body.dataset.images = "
          "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });"
          "</script>")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A report of a compare directory (a worse run against a baseline), a run with figures,
    and a rank directory."""
    root = tmp_path_factory.mktemp("report")
    base = ["cv", "--dataset", "iris", "--k", "5", "--hidden", "16"]
    assert invoke(*base, "--epochs", "20", "--out", root / "base").exit_code == 0
    assert invoke(*base, "--epochs", "1", "--out", root / "worse").exit_code == 0
    assert invoke("compare", root / "base", root / "worse", "--out",
                  root / "verdicts").exit_code == 1
    run = root / "overfit"
    assert invoke("overfit", "--dataset", "digits", "--epochs", "3", "--width", "16",
                  "--reg", "none,dropout", "--seeds", "2", "--out", run).exit_code == 0
    out = root / "report.html"
    result = invoke("report", run, root / "verdicts", root / "base", "--out", out)
    assert result.exit_code == 0, result.output
    return out, {"run": run, "verdicts": root / "verdicts"}


def test_the_page_is_self_contained_with_every_table_and_figure(page):
    out, inputs = page
    text = out.read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:|//)""", text), "it must not fetch"
    images = re.findall(r"<img [^>]*src='([^']*)'", text)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert len(images) == len(list(inputs["run"].glob("*.png")))
    verdicts = pd.read_csv(inputs["verdicts"] / "compare.csv")
    changed = (verdicts.verdict != "unchanged").sum()
    assert text.count("<tr class='regressed'>") == (verdicts.verdict == "regressed").sum()
    assert text.count("<table>") == 3 and changed > 0  # the verdicts and two summaries
    # compare verdicts first, whatever the order given
    assert text.index("compare:") < text.index("overfit:") < text.index("cv:")


@needs_browser
def test_the_page_loads_in_chromium_without_console_errors(page, tmp_path):
    out, inputs = page
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", LOADED + "</body>"))
    dom, log = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe)
    images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert images == len(list(inputs["run"].glob("*.png"))) > 0  # every figure decoded
    assert dom.count("<table>") == 3
    assert "CONSOLE" not in log, log


@needs_browser
def test_the_console_check_sees_an_error_when_there_is_one(tmp_path):
    control = tmp_path / "control.html"
    control.write_text("<!DOCTYPE html><html><body><script>console.error('boom')</script>"
                       "</body></html>")
    _, log = chromium(tmp_path, "--dump-dom", control)
    assert "CONSOLE" in log and "boom" in log


@needs_browser
def test_a_screenshot_of_the_page_shows_content(page, tmp_path):
    import matplotlib.image

    out, _ = page
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", out)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1600, 1280)
    assert np.std(pixels[..., :3]) > 0.05  # text, tables and figures, not a blank page


def chromium(tmp_path: Path, *args) -> tuple[str, str]:
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           *map(str, args[:-1]), f"file://{Path(args[-1]).resolve()}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.mark.parametrize("args, says", [
    (["{nowhere}"], "does not exist"),
    (["{empty}"], "holds no finished results"),
    (["{empty}", "--out", "{empty}"], "is a directory"),
])
def test_report_bad_input_is_one_line(args, says, tmp_path):
    (tmp_path / "empty").mkdir()
    paths = {"nowhere": tmp_path / "nowhere", "empty": tmp_path / "empty"}
    result = invoke("report", *[a.format(**paths) for a in args])
    assert result.exit_code == 2 and says in result.stderr, result.output
    assert len(result.stderr.splitlines()) == 1


def fake_run(path: Path, summary: str = "cell,mean\na,0.9\n") -> Path:
    """A run directory as the report reads it: a dlbench manifest and a summary."""
    path.mkdir(parents=True)
    (path / "manifest.json").write_text('{"command": "cv", "seconds": 1.0}')
    (path / "summary.csv").write_text(summary)
    return path


def test_a_directory_of_stray_runs_is_not_a_suite(tmp_path):
    for name in ("a", "b"):
        fake_run(tmp_path / "stray" / name)
    (tmp_path / "stray" / "other").mkdir()  # not a run
    out = tmp_path / "report.html"
    line = assert_usage_error(invoke("report", tmp_path / "stray", "--out", out), out)
    assert "not a dlbench suite (no suite.json) but holds 2 run directories (a, b)" in line
    (tmp_path / "stray" / "suite.json").write_text('{"entries": []}')  # one dlbench wrote
    assert invoke("report", tmp_path / "stray", "--out", out).exit_code == 0
    assert "suite: stray" in out.read_text()


def test_other_programs_manifests_are_not_runs(tmp_path):
    for name in ("web", "app"):  # a web app's manifest.json names no dlbench command
        (tmp_path / "apps" / name).mkdir(parents=True)
        (tmp_path / "apps" / name / "manifest.json").write_text('{"name": "my app"}')
    out = tmp_path / "report.html"
    for path in (tmp_path / "apps", tmp_path / "apps" / "web"):
        assert "holds no finished results" in assert_usage_error(
            invoke("report", path, "--out", out), out)


def test_out_never_overwrites_a_file_that_is_not_a_report(tmp_path):
    run = fake_run(tmp_path / "run")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    result = invoke("report", run, "--out", notes)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert "is not a dlbench report" in result.stderr and result.stdout == ""
    assert notes.read_text() == "my notes"
    page = tmp_path / "report.html"  # an earlier report is replaced
    assert invoke("report", run, "--out", page).exit_code == 0
    assert invoke("report", run, run, "--out", page).exit_code == 0
    assert page.read_text().count("cv: run") == 2


def test_a_damaged_summary_is_one_line_naming_it(tmp_path):
    run = fake_run(tmp_path / "run", 'cell,mean\n"a,0.9\n')  # an unclosed quote
    out = tmp_path / "report.html"
    line = assert_usage_error(invoke("report", run, "--out", out), out)
    assert f"cannot read {run / 'summary.csv'}" in line and "rerun" in line


def test_a_summary_changed_after_its_run_is_refused_by_its_checksum(tmp_path):
    """Still a valid CSV, but not the bytes the run wrote: its numbers are not the run's."""
    run = tmp_path / "run"
    assert invoke("cv", "--dataset", "iris", "--k", "2", "--epochs", "1", "--out",
                  run).exit_code == 0
    text = (run / "summary.csv").read_text()
    digit = text.index(",0.") + 3
    (run / "summary.csv").write_text(text[:digit] + str((int(text[digit]) + 1) % 10)
                                     + text[digit + 1:])
    out = tmp_path / "report.html"
    line = assert_usage_error(invoke("report", run, "--out", out), out)
    assert f"{run / 'summary.csv'} is damaged: its sha256 differs" in line and "rerun" in line


def html_rows(text: str) -> list[list[str]]:
    """Every table row of the page, its cells as plain text (the header row first)."""
    return [[html.unescape(re.sub("<[^>]+>", "", cell)) for cell in
             re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", text, re.S)]


@pytest.mark.parametrize("args", [
    ["optimize", "--dataset", "iris", "--opt", "sgd[lr=0.1],adam[lr=0.01]", "--epochs", "3",
     "--hidden", "8", "--seeds", "2", "--target-accuracy", "0.5"],
    ["overfit", "--dataset", "iris", "--epochs", "4", "--width", "8", "--reg", "none,dropout",
     "--seeds", "2"],
    ["cv", "--dataset", "iris", "--k", "3", "--epochs", "2", "--hidden", "8"],
], ids=["optimize", "overfit", "cv"])
def test_a_runs_table_is_the_terminals(args, tmp_path):
    """The same columns and cells as the terminal's table, not summary.csv's 40 columns."""
    run = tmp_path / "run"
    result = invoke(*args, "--out", run)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    terminal = [lines[rule - 1], *lines[rule + 1:]]
    out = tmp_path / "report.html"
    assert invoke("report", run, "--out", out).exit_code == 0
    rows = html_rows(out.read_text())
    assert 3 <= len(rows) <= len(terminal)
    for cells, line in zip(rows, terminal, strict=False):  # 200 columns: a row is a line
        assert " ".join(cells).split() == line.split(), (cells, line)


def test_compare_verdicts_are_the_terminals_columns(page):
    out, _ = page
    header = html_rows(out.read_text())[0]  # the compare table comes first
    assert header == ["setting", "metric", "baseline", "current", "Δ ±95%", "p", "verdict"]


def test_a_rank_table_is_the_terminals(tmp_path):
    from tests.test_ranking import SCORES, fake_run

    runs = [fake_run(tmp_path / "in", p, SCORES.loc[p].to_dict(), {}) for p in SCORES.index]
    result = invoke("compare", "--rank", *runs, "--out", tmp_path / "rank")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    out = tmp_path / "report.html"
    assert invoke("report", tmp_path / "rank", "--out", out).exit_code == 0
    rows = html_rows(out.read_text())
    assert len(rows) == 1 + len(SCORES.columns)
    for cells, line in zip(rows, [lines[rule - 1], *lines[rule + 1:]], strict=False):
        assert " ".join(cells).split() == line.split(), (cells, line)
