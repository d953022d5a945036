"""What a cell's cost columns mean: the same Adam cell trained alone and inside a grid.

    python benchmarks/bench_cost.py [--repeats 3] [--epochs 10]

Runs `dlbench optimize --dataset digits --opt adam --seeds 3` (the cell alone) and the same
command with `--opt sgd,rmsprop,adam,adagrad` (the cell in a grid that shares its stack),
alternating, through the optimize runner as the CLI drives it. For the Adam cell it prints, side
by side, medians over the runs:

- grad_evals and passes: counted, so they must be identical alone and in the grid (checked);
- seconds_per_model: its own share — the stack's shared work (data, forward, backward,
  evaluation) split evenly over the stack's members, plus its own optimizer's step time split
  over its own members. A bigger stack shares its forward/backward better, so this moves with
  the grid, by the ratio printed here; the counts never do;
- the old accounting (the stack's wall seconds / its members), which gave every cell of a grid
  the same seconds whatever its optimizer costs, for comparison;
- per optimizer in the grid: its seconds per model, so an optimizer whose step costs more shows
  it (Adam's step does more work than SGD's).
"""

from __future__ import annotations

import statistics

import harness
import typer
from rich.table import Table

from dlbench.runners import optimize as runner

ALONE = "adam"
GRID = "sgd,rmsprop,adam,adagrad"


def config(opt: str, epochs: int) -> runner.OptimizeConfig:
    """The config the CLI builds for `dlbench optimize --dataset digits --opt OPT ...`: its
    options dataclass through the command table's builder, as the command line goes."""
    from dlbench.cli.commands import COMMANDS, values
    from dlbench.cli.options import OptimizeOptions

    given = {"dataset": "digits", "opt": opt, "seeds": 3, "epochs": epochs}
    return COMMANDS["optimize"].build(values(OptimizeOptions(**given)), set(given))


def cell_rows(opt: str, epochs: int) -> tuple[dict, float]:
    """One run -> (each cell's summary row by optimizer, the run's wall seconds)."""
    plan = runner.prepare(config(opt, epochs))
    seconds, result = harness.timed(runner.run, plan)
    return result.summary.set_index("optimizer").to_dict("index"), seconds


def main(repeats: harness.Repeats = 3, epochs: harness.Epochs = 10,
         threads: harness.Threads = 1) -> None:
    console = harness.start(repeats, epochs, threads)
    load = harness.load_average()
    console.print(f"bench_cost: digits, mlp 128, Adam alone vs in `--opt {GRID}`, 3 seeds, "
                  f"{epochs} epochs; {harness.machine_line(load, repeats)}", highlight=False)
    harness.warm_up()
    runs: dict[str, list] = {"alone": [], "grid": []}
    for _ in range(repeats):
        for side, opt in (("alone", ALONE), ("grid", GRID)):
            runs[side].append(cell_rows(opt, epochs))
    alone = [rows[ALONE] for rows, _ in runs["alone"]]
    grid = [rows[ALONE] for rows, _ in runs["grid"]]
    for a, g in zip(alone, grid, strict=True):
        if (a["grad_evals"], a["passes"]) != (g["grad_evals"], g["passes"]):
            raise SystemExit("the Adam cell's counted cost differs alone and in the grid")

    def median(rows, key):
        return statistics.median(r[key] for r in rows)

    table = Table(title="the Adam cell (medians over runs)")
    for column in ("", "alone", "in the grid", "grid / alone"):
        table.add_column(column, justify="right")
    for key in ("grad_evals", "passes"):
        table.add_row(key, f"{median(alone, key):g}", f"{median(grid, key):g}", "1 (counted)")
    own = median(alone, "seconds_per_model"), median(grid, "seconds_per_model")
    table.add_row("seconds_per_model (own share)", f"{own[0]:.3f}", f"{own[1]:.3f}",
                  f"{own[1] / own[0]:.2f}")
    # the stack's wall seconds / its members: the mean of every cell's own share
    wall = tuple(statistics.median(statistics.mean(r["seconds_per_model"] for r in rows.values())
                                   for rows, _ in runs[side]) for side in ("alone", "grid"))
    table.add_row("stack seconds / members (old basis)", f"{wall[0]:.3f}", f"{wall[1]:.3f}",
                  f"{wall[1] / wall[0]:.2f}")
    console.print(table)

    per_opt = Table(title="every cell of the grid: seconds per model (own share, median)")
    per_opt.add_column("optimizer")
    per_opt.add_column("seconds_per_model", justify="right")
    per_opt.add_column("grad_evals", justify="right")
    for name in runs["grid"][0][0]:
        rows = [r[name] for r, _ in runs["grid"]]
        per_opt.add_row(name, f"{median(rows, 'seconds_per_model'):.3f}",
                        f"{median(rows, 'grad_evals'):g}")
    console.print(per_opt)
    caution = harness.load_average()
    if max(load, caution) > 1.0:
        console.print(f"caution: load average {max(load, caution):.2f} on "
                      f"{harness.os.cpu_count()} CPUs: timings are noisy", style="yellow")


if __name__ == "__main__":
    typer.run(main)
