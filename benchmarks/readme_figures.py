"""Rerun every measured figure the README quotes and print it in the README's own form.

    python benchmarks/readme_figures.py            (or: make figures)
    python benchmarks/readme_figures.py --claims results/textbook     (the claims table only)

Each figure is one `dlbench` command line, run exactly as a user would type it (in this process,
into a temporary results directory); what is printed here is read back from the files it wrote.
When a figure here no longer matches the README, the README is wrong: update it from this
output. Speed figures come from `make bench` instead (they need a quiet machine and repeats).

The README's claims table is not copied by hand: the textbook suite's claims.csv is kept in
benchmarks/figures/claims.csv and the table between the README's claims markers is rewritten
from it (dlbench's own renderer, the words of the terminal and the HTML report);
tests/test_readme_claims.py holds the README to that file. `--claims DIR` does only this, from
a finished full run of the textbook suite in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from dlbench.cli.app import app
from dlbench.evaluate import claims
from dlbench.output import report

RUNNER = CliRunner(env={"COLUMNS": "80"})

CV_EXAMPLE = "cv --k 4 --repeats 3"
ONE_SPLIT = ("cv --dataset breast-cancer --protocol holdout --seeds 10 --test-fraction 0.2 "
             "--epochs 5")
INIT_STUDY = ("optimize --dataset digits --init std1,std0.01,xavier,he "
              "--activation sigmoid,tanh,relu --opt adam[lr=0.001] --epochs 5 --seeds 2")
BOWL = "optimize --function anisotropic"
ROSENBROCK = ("optimize --function rosenbrock --steps 60 "
              "--opt lbfgs,newton,adam[lr=0.05],momentum[lr=0.001]")
XOR = ("optimize --dataset xor --model perceptron,mlp --hidden 8 --opt adam[lr=0.05] "
       "--epochs 300 --batch-size 4")
LR_GRID = "optimize --dataset digits --opt sgd,adam --lr-grid 1e-5:10:7 --epochs 5"
FAST_RATES = "optimize --dataset digits --opt sgd,adam --lr-grid 0.3:3:3 --seeds 4 --epochs 3"
BATCH = "optimize --dataset digits --opt adam --batch-size 16,64,1437 --epochs 5"
LOSSES = "optimize --dataset digits --opt sgd[lr=0.1] --loss cross-entropy,mse --epochs 5"
OVERFIT = "overfit"
TRANSFER = "transfer"
QUADRANTS = "transfer --preset quadrants"
CAPACITY = "overfit --reg none --width 32,512 --depth 1,3"
FIGURES = Path(__file__).parent / "figures"  # the PNGs the README shows
INIT_ROWS = [("std1", "sigmoid"), ("std1", "tanh"), ("std0.01", "sigmoid"), ("std0.01", "relu"),
             ("xavier", "tanh"), ("he", "relu")]


def dlbench(command: str, root: Path) -> tuple[str, Path]:
    """Run `dlbench COMMAND` into a fresh directory -> (its stdout, the directory)."""
    out = root / str(len(list(root.iterdir())))
    result = RUNNER.invoke(app, [*shlex.split(command), "--out", str(out)])
    if result.exit_code != 0:
        raise SystemExit(f"`dlbench {command}` failed: {result.stderr}")
    return result.stdout, out


def section(title: str, command: str) -> None:
    print(f"\n## {title}\n$ dlbench {command}")


def cv_example(root: Path) -> None:
    section("cv example (README top)", CV_EXAMPLE)
    print(dlbench(CV_EXAMPLE, root)[0])


def one_split(root: Path) -> None:
    section("one split: what an interval covers", ONE_SPLIT)
    stdout, out = dlbench(ONE_SPLIT, root)
    summary = pd.read_csv(out / "summary.csv")
    for r in summary[summary.metric == "accuracy"].itertuples():
        if r.split == "train":
            continue
        print(f"{r.split}: accuracy {r.mean:.4f}, 95% CI {r.ci_low:.4f}–{r.ci_high:.4f} "
              f"(width {r.ci_high - r.ci_low:.3f}); seeds ranged {r.min:.4f}–{r.max:.4f}")
    print(stdout)


def init_study(root: Path) -> None:
    section("initialisation study table", INIT_STUDY)
    _, out = dlbench(INIT_STUDY, root)
    acts = pd.read_csv(out / "activations.csv")
    summary = pd.read_csv(out / "summary.csv")
    print("| init · activation | layer-5 std | layer-5 saturated | val accuracy after 5 epochs |")
    print("|---|---|---|---|")
    for init, activation in INIT_ROWS:
        layer = acts[(acts.init == init) & (acts.activation == activation) & (acts.layer == 5)]
        cell = summary[(summary.init == init) & (summary.activation == activation)].iloc[0]
        status = "" if cell.status == "ok" else f" ({cell.status})"
        print(f"| {init} · {activation} | {layer['std'].item():.3f} | "
              f"{layer['saturated'].item():.3g} | {cell.val_mean:.3f}{status} |")


def summaries(root: Path, figures: tuple[tuple[str, str], ...]):
    """Each (command, title): its section header, then its summary.csv to print from."""
    for command, title in figures:
        section(title, command)
        yield pd.read_csv(dlbench(command, root)[1] / "summary.csv")


def functions(root: Path) -> None:
    for summary in summaries(root, ((BOWL, "the bowl: steps to f − f* ≤ 1e-3"),
                                    (ROSENBROCK, "Rosenbrock, 60 steps: final f"))):
        for r in summary.itertuples():
            print(f"{r.cell}: f = {r.f:.3g}, steps / gradient evaluations to tol "
                  f"{r.steps_to_tol} / {r.grad_evals_to_tol}, {r.status}")


def networks(root: Path) -> None:
    section("XOR: accuracy per model (mean over seeds)", XOR)
    _, out = dlbench(XOR, root)
    scores = pd.read_csv(out / "scores.csv")
    val = scores[(scores.split == "val") & (scores.metric == "accuracy")]
    for model, rows in val.groupby("model", sort=False):
        print(f"{model}: mean {rows.value.mean():.2f}, per seed {rows.value.round(2).tolist()}")

    for summary in summaries(root, ((LR_GRID, "learning-rate sweep: status per rate"),
                                    (FAST_RATES, "fast rates: the issue's Adam cases"))):
        for optimizer, rows in summary.groupby("optimizer", sort=False):
            cells = ", ".join(f"{r.lr:g}: {r.val_mean:.3f} {r.statuses}"
                              for r in rows.sort_values("lr").itertuples())
            print(f"{optimizer}: {cells}")


def hyperparameters(root: Path) -> None:
    for summary in summaries(root, ((BATCH, "batch size: accuracy and counted cost"),
                                    (LOSSES, "loss: cross-entropy against mse"))):
        for r in summary.itertuples():
            print(f"{r.cell}: val {r.val_mean:.3f}, {r.passes:g} passes, "
                  f"{r.grad_evals:g} gradient evaluations")


def overfit(root: Path) -> None:
    section("overfit: the defaults (the README's table and figure)", OVERFIT)
    stdout, out = dlbench(OVERFIT, root)
    print(stdout)
    FIGURES.mkdir(exist_ok=True)
    (FIGURES / "overfit.png").write_bytes((out / "overfit.png").read_bytes())
    curves = pd.read_csv(out / "curves.csv")
    val = curves[(curves.split == "val") & (curves.metric == "loss")]
    for reg, rows in val.groupby("regularizer", sort=False):
        per_epoch = rows.groupby("epoch")["value"].mean()
        print(f"{reg}: mean validation loss lowest {per_epoch.min():.2f} at epoch "
              f"{per_epoch.idxmin()}, {per_epoch.iloc[-1]:.2f} at its last epoch "
              f"({per_epoch.index[-1]})")
    print(f"(figure copied to {FIGURES / 'overfit.png'})")
    section("overfit: capacity", CAPACITY)
    print(dlbench(CAPACITY, root)[0])


def transfer(root: Path) -> None:
    section("transfer: the defaults", TRANSFER)
    print(dlbench(TRANSFER, root)[0])
    section("transfer: the quadrants", QUADRANTS)
    _, out = dlbench(QUADRANTS, root)
    for q in pd.read_csv(out / "quadrants.csv").itertuples():
        print(f"{q.quadrant}: advised {q.advised}, winner {q.winner}: {q.verdict} "
              f"(diff {q.diff:+.3f} ± {q.diff_ci_half:.3f}, p {q.p:.3f})")


TEXTBOOK = Path(__file__).parent / "textbook.toml"
TEXTBOOK_COLUMNS = ("cell", "f", "steps_to_tol", "grad_evals_to_tol", "val_mean", "val_ci_half",
                    "statuses", "onset_epoch", "gap_final", "test_mean", "diff_none",
                    "diff_none_ci_half", "vs_none")


def textbook(root: Path) -> None:
    """The README's "Textbook claims, measured": every entry's summary, its key columns."""
    section("textbook claims", f"run {TEXTBOOK}")
    out = root / "textbook"
    result = RUNNER.invoke(app, ["run", str(TEXTBOOK), "--out", str(out)])
    if result.exit_code != 0:
        raise SystemExit(f"the textbook suite failed: {result.stderr}")
    for entry in sorted(p for p in out.iterdir() if (p / "summary.csv").exists()):
        summary = pd.read_csv(entry / "summary.csv")
        print(f"-- {entry.name}")
        if "split" in summary:  # cv: the validation accuracy over splits
            summary = summary[(summary.split == "val") & (summary.metric == "accuracy")]
            print(summary[["n", "mean", "std", "min", "max", "ci_low", "ci_high"]].to_string(
                index=False))
            continue
        columns = [c for c in TEXTBOOK_COLUMNS if c in summary]
        print(summary[columns].to_string(index=False, float_format="%.4g"))
    for entry in ("init-histograms",):
        activations = pd.read_csv(out / entry / "activations.csv")
        print(f"-- {entry}: activations per layer at initialisation")
        print(activations[["init", "layer", "std", "saturated"]].to_string(
            index=False, float_format="%.3g"))
    if (out / "transfer-quadrants" / "quadrants.csv").exists():
        print(pd.read_csv(out / "transfer-quadrants" / "quadrants.csv")[
            ["quadrant", "advised", "winner", "diff", "diff_ci_half", "verdict"]].to_string(
            index=False))
    write_claims(out)


README = Path(__file__).resolve().parent.parent / "README.md"
CLAIMS_BEGIN = ("<!-- claims:begin (generated by make figures from benchmarks/figures/claims.csv;"
                " do not edit) -->\n")
CLAIMS_END = "<!-- claims:end -->"


def claims_table() -> str:
    """The README's claims table, rendered from the kept benchmarks/figures/claims.csv."""
    found = claims.read(FIGURES)
    if found is None:
        raise SystemExit(f"no {FIGURES / 'claims.csv'}: run `make figures` (or --claims DIR)")
    return report.claims_markdown(found)


def readme_claims(text: str) -> tuple[str, str, str]:
    """README's text -> (before the table, the table between the markers, after it)."""
    if text.count(CLAIMS_BEGIN) != 1 or text.count(CLAIMS_END) != 1:
        raise SystemExit(f"README.md must hold the claims markers once each: {CLAIMS_BEGIN!r} "
                         f"and {CLAIMS_END!r}")
    head, rest = text.split(CLAIMS_BEGIN)
    table, tail = rest.split(CLAIMS_END)
    return head, table, tail


def write_claims(run: Path) -> None:
    """A full textbook run's claims.csv kept in benchmarks/figures/, and README's claims table
    rewritten from it."""
    try:
        suite = json.loads((run / "suite.json").read_text())
    except (OSError, ValueError):
        raise SystemExit(f"{run} is not a suite's results directory (no suite.json)") from None
    if (suite.get("suite"), suite.get("profile", "full")) != (TEXTBOOK.stem, "full") or \
            not (run / "claims.csv").is_file():
        raise SystemExit(f"{run} is not a finished full run of {TEXTBOOK.name}; run "
                         f"`dlbench run {TEXTBOOK} --out DIR` (without --quick)")
    FIGURES.mkdir(exist_ok=True)
    shutil.copyfile(run / "claims.csv", FIGURES / "claims.csv")
    head, _, tail = readme_claims(README.read_text())
    README.write_text(f"{head}{CLAIMS_BEGIN}{claims_table()}{CLAIMS_END}{tail}")
    print(f"(claims.csv kept in {FIGURES / 'claims.csv'}; README's claims table rewritten)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=Path, metavar="DIR",
                        help="only the README's claims table, from the full textbook run in DIR")
    given = parser.parse_args()
    if given.claims is not None:
        write_claims(given.claims)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"readme figures: dlbench commands, CPU, {os.cpu_count()} CPUs")
        for figure in (cv_example, one_split, init_study, functions, networks,
                       hyperparameters, overfit, transfer, textbook):
            figure(root)


if __name__ == "__main__":
    main()
