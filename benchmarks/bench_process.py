"""Benchmark: `dlbench cv` against a plain per-fold PyTorch loop, each timed as a whole process.

What is measured
    What a user waits for: the wall clock from launching a command to its exit, start-up
    (interpreter, imports, torch's one-off costs) and teardown included. The job is

        dlbench cv --dataset digits --hidden 128 --k 4 --repeats 3 --epochs 60 --out DIR

    i.e. 12 MLPs (64-128-10, ReLU, Adam lr 1e-3, batch 32) on sklearn's digits, one per split
    of a stratified 4-fold × 3-repeat k-fold, done two ways, each as its own process:

    dlbench  the command above, with a fresh results directory every run;
             its mean validation accuracy is read back from that directory's scores.csv.
    plain    `python plain.py EPOCHS`, a script this benchmark writes to a temporary file
             (PLAIN_SCRIPT below): what a typical user writes — load digits, take the *same* 12
             splits from `dlbench.data.splits.make_splits` (the SplitConfig the CLI builds for those
             options), and per split fit a StandardScaler on the training rows, build
             nn.Sequential(Linear(64, 128), ReLU, Linear(128, 10)), torch.optim.Adam(lr=1e-3),
             DataLoader(TensorDataset(...), batch_size=32, shuffle=True), train for the epochs,
             score accuracy on the validation rows; it prints its mean validation accuracy (and
             a digest of its validation rows) as JSON on stdout.

    The two sides alternate which goes first, `--repeats` runs each; the figures are the medians
    and the ratio of medians (plain / dlbench), the best runs and their ratio, the load average
    before and after. Once, untimed, the plain script's validation rows are checked against the
    splits.csv dlbench wrote. As a reference floor for process start-up, `python -c 'import
    torch'` is timed `--repeats` times too (median, best).

    Both processes inherit this environment; their output goes to pipes, so dlbench draws no
    live progress bar. Torch keeps its default thread count in the plain script; dlbench runs
    with its own default (--threads 1).

    Verdict: PASS when the dlbench process is at least 4× faster than the plain one (ratio of
    medians) and the two mean validation accuracies are within 1 point of each other; exit code
    0 on PASS, 1 on FAIL (also 1 when the splits differ).

How to run
    .venv/bin/python benchmarks/bench_process.py
    .venv/bin/python benchmarks/bench_process.py --repeats 5 --epochs 60 --json process.json
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import harness
import typer
from bench_cv import BATCH_SIZE, CV_REPEATS, DATASET, HIDDEN, LR, SEED, K  # the same job

REQUIRED_SPEEDUP = 4.0  # whole-process plain seconds / dlbench seconds, at least

PLAIN_SCRIPT = f'''\
"""A plain per-fold PyTorch loop (written by benchmarks/bench_process.py): python plain.py EPOCHS"""
import hashlib
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlbench.data.splits import SplitConfig, make_splits

EPOCHS = int(sys.argv[1])
X, y = load_digits(return_X_y=True)
X, y = X.astype(np.float32), y.astype(np.int64)
config = SplitConfig(protocol="kfold", k={K}, repeats={CV_REPEATS}, stratify=True, seed={SEED})
splits = make_splits(y, config, task="classification")
accuracies, digest = [], hashlib.sha256()
for i, split in enumerate(splits):
    digest.update(np.sort(np.asarray(split.val, dtype=np.int64)).tobytes())
    torch.manual_seed(i)  # this fold's initial weights and shuffling
    scaler = StandardScaler().fit(X[split.train])
    x_train = torch.as_tensor(scaler.transform(X[split.train]), dtype=torch.float32)
    x_val = torch.as_tensor(scaler.transform(X[split.val]), dtype=torch.float32)
    y_train, y_val = torch.as_tensor(y[split.train]), torch.as_tensor(y[split.val])
    model = nn.Sequential(nn.Linear(X.shape[1], {HIDDEN}), nn.ReLU(), nn.Linear({HIDDEN}, 10))
    opt = torch.optim.Adam(model.parameters(), lr={LR!r})
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size={BATCH_SIZE}, shuffle=True)
    model.train()
    for _ in range(EPOCHS):
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracies.append((model(x_val).argmax(1) == y_val).float().mean().item())
print(json.dumps({{"mean_val_accuracy": float(np.mean(accuracies)), "splits": len(splits),
                  "val_digest": digest.hexdigest()}}))
'''


@dataclass(frozen=True)
class Finished:
    """A timed process that exited 0: its stdout, and its results directory (dlbench)."""

    stdout: str
    out: Path | None = None


def dlbench_command(epochs: int, out: Path) -> list[str]:
    """The dlbench command line of the job, writing to `out`."""
    exe = Path(sys.executable).with_name("dlbench")
    program = str(exe) if exe.exists() else (shutil.which("dlbench") or "dlbench")
    return [program, "cv", "--dataset", DATASET, "--hidden", str(HIDDEN), "--k", str(K),
            "--repeats", str(CV_REPEATS), "--epochs", str(epochs), "--out", str(out)]


def launch(command: list[str], out: Path | None = None) -> Finished:
    """Run `command` to its exit (the timed part); a failure stops the benchmark."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return Finished(done.stdout, out)


def plain_accuracy(run: Finished) -> float:
    """The plain script's mean validation accuracy, from its JSON line."""
    return float(json.loads(run.stdout.strip().splitlines()[-1])["mean_val_accuracy"])


def dlbench_accuracy(run: Finished) -> float:
    """dlbench's mean validation accuracy of the trained model, from its scores.csv."""
    assert run.out is not None
    with open(run.out / "scores.csv", newline="") as f:
        values = [float(row["value"]) for row in csv.DictReader(f)
                  if (row["model"], row["split"], row["metric"]) == ("mlp", "val", "accuracy")]
    if len(values) != K * CV_REPEATS:
        raise SystemExit(f"{run.out / 'scores.csv'}: {len(values)} validation accuracies, "
                         f"expected {K * CV_REPEATS}")
    return statistics.fmean(values)


def accuracy(run: Finished) -> float:
    return plain_accuracy(run) if run.out is None else dlbench_accuracy(run)


def dlbench_val_digest(out: Path) -> str | None:
    """The digest the plain script prints, of the validation rows in dlbench's splits.csv
    (None when the run wrote no splits.csv)."""
    path = out / "splits.csv"
    if not path.exists():
        return None
    import numpy as np

    rows: dict[tuple[int, int], list[int]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["role"] == "val":
                rows.setdefault((int(row["repeat"]), int(row["fold"])), []).append(
                    int(row["sample"]))
    digest = hashlib.sha256()
    for key in sorted(rows):
        digest.update(np.sort(np.asarray(rows[key], dtype=np.int64)).tobytes())
    return digest.hexdigest()


def check_same_splits(plain: Finished, ours: Finished) -> str:
    """The plain script's validation rows are dlbench's (checked once, untimed) -> a note."""
    assert ours.out is not None
    theirs = dlbench_val_digest(ours.out)
    if theirs is None:
        return "splits not checked: dlbench wrote no splits.csv"
    mine = json.loads(plain.stdout.strip().splitlines()[-1])["val_digest"]
    if mine != theirs:
        raise SystemExit("the plain script's validation rows differ from dlbench's splits.csv")
    return f"same {K * CV_REPEATS} validation splits (checked against dlbench's splits.csv)"


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 60,
         json_path: harness.JsonPath = None) -> None:
    """Time the `dlbench cv` process against a plain per-fold PyTorch loop's, launch to exit."""
    console = harness.start(repeats, epochs)
    harness.REQUIRED_SPEEDUP = REQUIRED_SPEEDUP  # this benchmark's target: read at call time
    load_before = harness.load_average()
    console.print(f"bench_process: {DATASET}, mlp {HIDDEN}, {K}-fold × {CV_REPEATS}, {epochs} "
                  f"epochs, batch {BATCH_SIZE}, adam lr={LR:g}, whole processes; dlbench "
                  "at its default threads (1), the plain loop at torch's; "
                  f"{harness.machine_line(load_before, repeats)}", highlight=False)

    with tempfile.TemporaryDirectory(prefix="bench_process-") as work:
        script = Path(work) / "plain.py"
        script.write_text(PLAIN_SCRIPT)
        outs = (Path(work) / f"out-{n}" for n in itertools.count())  # a fresh one per run

        def run_plain() -> Finished:
            return launch([sys.executable, str(script), str(epochs)])

        def run_dlbench() -> Finished:
            out = next(outs)
            return launch(dlbench_command(epochs, out), out)

        sides = {"plain": run_plain, "dlbench": run_dlbench}
        times, runs = harness.alternate(
            sides, repeats, lambda line: console.print(line, highlight=False), score=accuracy)
        floor = [harness.timed(launch, [sys.executable, "-c", "import torch"])[0]
                 for _ in range(repeats)]
        load_after = harness.load_average()
        splits_note = check_same_splits(runs["plain"][0], runs["dlbench"][0])
        mean_acc = {name: statistics.fmean(accuracy(r) for r in rs) for name, rs in runs.items()}

    summary = harness.summarise(times, mean_acc, (load_before, load_after))
    console.print(splits_note, highlight=False)
    floor_median = statistics.median(floor)
    console.print(f"reference floor, python -c 'import torch': median {floor_median:.3f} s, best "
                  f"{min(floor):.3f} s ({', '.join(f'{t:.3f}' for t in floor)}); above it, "
                  f"dlbench {summary.median['dlbench'] - floor_median:.3f} s, plain "
                  f"{summary.median['plain'] - floor_median:.3f} s (medians)", highlight=False)
    above = {name: summary.median[name] - floor_median for name in harness.SIDES}
    console.print(f"above the floor, plain / dlbench = "
                  f"{above['plain'] / max(above['dlbench'], 1e-9):.1f}×", highlight=False)
    harness.report(console, "dlbench cv vs plain PyTorch loop, whole processes (12 models)",
                   summary)

    if json_path is not None:
        harness.write_json(
            json_path, summary, repeats=repeats, epochs=epochs,
            command=" ".join(["dlbench", *dlbench_command(epochs, Path("DIR"))[1:]]),
            setup={"timing": "whole process, launch to exit", "dlbench_threads": "default (1)",
                   "import_torch_seconds": floor, "import_torch_median_seconds": floor_median,
                   "splits": splits_note})
    raise typer.Exit(0 if summary.passed else 1)


if __name__ == "__main__":
    typer.run(main)
