"""The README's claims table is generated, never typed: it equals dlbench's own rendering of
the kept benchmarks/figures/claims.csv (what `make figures` writes from a textbook run), so a
hand edit of either fails here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from dlbench.evaluate import claims
from dlbench.output import report

ROOT = Path(__file__).resolve().parent.parent


def _figures_script():
    """benchmarks/readme_figures.py, a script, loaded as a module."""
    spec = importlib.util.spec_from_file_location("readme_figures",
                                                  ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIGURES = _figures_script()


def test_the_readme_claims_table_is_the_kept_claims_csv_rendered():
    _, table, _ = FIGURES.readme_claims((ROOT / "README.md").read_text())
    kept = claims.read(ROOT / "benchmarks" / "figures")
    assert kept is not None and len(kept) > 0
    assert table == report.claims_markdown(kept)
    assert table.count("\n") == len(kept) + 2  # a header, its rule, a row per hypothesis


def test_each_row_says_the_verdict_first_and_what_was_tested():
    kept = claims.read(ROOT / "benchmarks" / "figures")
    rows = report.claims_markdown(kept).splitlines()[2:]
    for row, (_, c) in zip(rows, kept.iterrows(), strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert cells[:3] == [f"**{c.verdict}**", c.claim, f"`{c.entry}`"]
        assert f"({c.metric}, {c.split})" in cells[3] and c.relation in cells[3]


def test_a_cell_with_a_bar_or_a_line_break_stays_one_cell():
    kept = claims.read(ROOT / "benchmarks" / "figures").head(1).copy()
    kept["claim"] = "a | b\nc"
    row = report.claims_markdown(kept).splitlines()[2]
    assert "a \\| b c" in row and row.count(" | ") == len(report.CLAIMS_MARKDOWN_COLUMNS) - 1


def test_claims_mode_keeps_the_file_and_rewrites_only_the_table(tmp_path, monkeypatch):
    """--claims DIR: a full textbook run's claims.csv becomes the kept file and the table
    between the markers; the rest of the README is untouched. A quick run is refused."""
    readme, figures = tmp_path / "README.md", tmp_path / "figures"
    before, after = "# title\n\ntext\n", "\n## next\n"
    readme.write_text(f"{before}{FIGURES.CLAIMS_BEGIN}| old |\n{FIGURES.CLAIMS_END}{after}")
    monkeypatch.setattr(FIGURES, "README", readme)
    monkeypatch.setattr(FIGURES, "FIGURES", figures)
    run = tmp_path / "run"
    run.mkdir()
    kept = claims.read(ROOT / "benchmarks" / "figures")
    changed = kept.assign(verdict=["fails"] * len(kept))
    changed.to_csv(run / "claims.csv", index=False)
    (run / "suite.json").write_text('{"suite": "textbook", "profile": "full"}')
    monkeypatch.setattr(sys, "argv", ["readme_figures.py", "--claims", str(run)])
    FIGURES.main()  # the table only: nothing else runs
    assert (figures / "claims.csv").read_bytes() == (run / "claims.csv").read_bytes()
    head, table, tail = FIGURES.readme_claims(readme.read_text())
    assert (head, tail) == (before, after)
    assert table == report.claims_markdown(claims.read(figures))
    assert table.count("**fails**") == len(kept)
    (run / "suite.json").write_text('{"suite": "textbook", "profile": "quick"}')
    with pytest.raises(SystemExit, match="not a finished full run of textbook.toml"):
        FIGURES.write_claims(run)
    pd.testing.assert_frame_equal(claims.read(figures), claims.read(run))  # kept as it was


def test_the_kept_claims_csv_is_a_claims_file():
    kept = pd.read_csv(ROOT / "benchmarks" / "figures" / "claims.csv")
    assert list(kept.columns) == list(claims.COLUMNS)
    assert set(kept.verdict) <= set(claims.VERDICTS)
