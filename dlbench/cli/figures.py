"""What each run draws: its figures (and extra files such as source.pt), by file name.

A figure is a function of the finished run's result, written by results.write_run; the command
table (cli/commands.py) names each runner's. Plotting is imported only when a run has finished.
"""

from __future__ import annotations


def no_figures(result) -> dict:
    """cv draws nothing: its table is the answer."""
    return {}


def function_figures(result) -> dict:
    """optimize --function: every optimizer's path over the function's contours."""
    from dlbench.optim.functions import FUNCTIONS
    from dlbench.output import plots

    info = FUNCTIONS.get(result.plan.config.function)
    return {"trajectories.png": lambda p: plots.trajectories_plot(p, info, result.trajectories)}


def optimize_figures(result) -> dict:
    from dlbench.output import plots

    final = result.curves[result.curves.phase == "final"]
    seeds = result.info["seeds"]
    title = f"{result.info['dataset']['name']}: {seeds} seed{'s' if seeds > 1 else ''} per cell"
    figures = {"curves.png": lambda p: plots.curves_plot(p, final, title)}
    if result.plan.config.lr_grid or result.plan.config.tune_budget:
        figures["lr_sweep.png"] = lambda p: plots.lr_sweep_plot(p, result.sweep,
                                                                _sweep_title(result))
    if result.histograms:
        figures["activations.png"] = lambda p: plots.activations_plot(p, result.histograms)
    return figures


def overfit_figures(result) -> dict:
    import pandas as pd

    from dlbench.output import plots

    info, config = result.info, result.plan.config
    seeds = f"{config.seeds} seed{'s' if config.seeds > 1 else ''}"
    summary = result.summary
    marks = pd.DataFrame({"cell": summary["cell"], "best_epoch": summary["best_epoch"],
                          "onset": summary["onset_epoch"]})
    title = (f"{info['dataset']['name']}: training vs validation loss (eval mode, after each "
             f"epoch; {seeds})")
    figures = {"overfit.png": lambda p: plots.overfit_plot(p, result.curves, marks, title)}
    if len(result.learning):
        figures["learning_curve.png"] = lambda p: plots.learning_curve_plot(
            p, result.learning, f"{info['dataset']['name']}: learning curve ({seeds}, 95% "
            "intervals)", info["primary_metric"])
    return figures


def transfer_figures(result) -> dict:
    import pandas as pd

    from dlbench.engine import checkpoints
    from dlbench.output import plots

    s, info = result.summary, result.info
    points = pd.DataFrame({"cell": s["strategy"], "train_rows": s["target_size"],
                           "split": "test", "metric": s["metric"], "mean": s["test_mean"],
                           "ci_low": s["test_ci_low"], "ci_high": s["test_ci_high"]})
    if (s["similarity"] != "").any():  # the quadrants: a panel per target, sizes along x
        points["panel"] = s["similarity"] + " target"
    target = "similar/different" if len(info["targets"]) > 1 else info["dataset"]["name"]
    title = (f"{info['source']['name']} → {target}: test {s['metric'].iloc[0]} "
             f"against target rows ({info['seeds']} seeds, 95% intervals)")
    return {"transfer.png": lambda p: plots.learning_curve_plot(p, points, title,
                                                                s["metric"].iloc[0]),
            "source.pt": lambda p: checkpoints.save(p, result.source_weights)}


def _sweep_title(result) -> str:
    name, seeds = result.info["dataset"]["name"], result.info["seeds"]
    if result.info["trials"]:
        return (f"{name}: --tune trials (one run each, validation only); the finals "
                f"rerun the chosen rates over {seeds} seed{'s' if seeds > 1 else ''}")
    return f"{name}: {seeds} seed{'s' if seeds > 1 else ''} per learning rate"
