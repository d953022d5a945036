"""Sweep: the exactness contract over every optimizer of pytorch-optimizer (the optional extra).

What is checked
    Each name of `pytorch_optimizer.get_supported_optimizers()` that dlbench reaches by that
    name (a built-in of the same name wins: those are the built-ins' own check), read as
    `--opt NAME` reads it (its class's defaults, its default lr), is trained by
    `dlbench.engine.contract` on the convex linear model of tests/test_contract.py: member 0
    alone against member 0 in a stack of 4 (another seed, half the lr), 2 epochs of 3 steps,
    float32, 1 thread.

Outcomes, one line per optimizer, then the counts:
    exact     alone = in the stack within rtol 1e-5, atol 1e-6 (its path said: leaf views, or
              each member alone when its step asks for a closure);
    refused   dlbench says no in one line before or during training (the constructor rejects
              its defaults, no default lr, a step that replaced parameter storage);
    diverged  trained, but member 0's loss is NaN/inf at the default lr, so the numbers say
              nothing of stacking (compared anyway; counted here);
    differs   trained, not exact: a finding (exit 1);
    error     anything else the optimizer raised (its own requirements: CUDA, a Hessian
              backward with create_graph, a wrapped base optimizer).

Run: `python benchmarks/sweep_pytorch_optimizer.py` (needs the extra: pip install
'dlbench[pytorch-optimizer]'); about a minute on 2 cores. Exit 0 when no optimizer differs, 1
otherwise.

Last run (pytorch-optimizer 4.1.0, CPU, torch 2.13): 123 names reached (adam, adamw, lbfgs,
rmsprop and sgd are the built-ins'); exact 104, differs 0, refused 19, error 0 (bsam[num_data=40]
and ranger21[num_iterations=6] are exact too once given their required argument; bsam trains
each member alone, as it needs a closure). Refused, in one line each:
    no default lr (a2grad, sara), no lr at all (alig, magma), a required argument (bsam:
    num_data, ranger21: num_iterations), parameter groups it must be given (muon, muonclip,
    normuon, adamuon, adago, distributedmuon: 'use_muon' groups), a model instead of parameters
    (lomo, adalomo, adammini), a missing dependency (demo: einops), a step that fails in a
    stack: a Hessian-vector product from a backward with create_graph, which the stack's is
    not (adahessian, sophiah), LoRA-shaped parameters (lorarite).
Fixed by this sweep: gravity and kron differed until each member's optimizer drew from a random
stream of its own (stepper.Rng); splus failed until no eval() switch came before the first
step; flashadamw failed until dlbench stopped forcing `fused=True` on a user's class.
"""

from __future__ import annotations

import sys
import warnings
from collections import Counter

import numpy as np
import torch


def outcome(name: str) -> tuple[str, str]:
    """(outcome, why) of one name."""
    from dlbench.engine import contract
    from dlbench.engine.members import TrainConfig
    from dlbench.errors import DlbenchError
    from dlbench.nn.models import ModelSpec
    from dlbench.optim.optimizers import parse_optimizers

    try:
        [spec] = parse_optimizers(name)
        config = TrainConfig(spec, epochs=contract.EPOCHS, batch_size=contract.BATCH)
        case = contract.Case(contract.make_data(), ModelSpec("linear"), config,
                             contract.halved_lr(config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package's own deprecation notes
            verdict = contract.verdict(case, warmup=False)
    except DlbenchError as e:
        return "refused", str(e)
    except Exception as e:  # the optimizer's own requirement, in its words
        return "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if verdict.exact:
        return "exact", verdict.how
    if "nan" in verdict.difference.lower() or not np.isfinite(verdict.alone_seconds):
        return "diverged", verdict.difference
    return "differs", verdict.difference


def main() -> int:
    from dlbench.optim import collection
    from dlbench.optim.optimizers import OPTIMIZERS

    if not collection.installed():
        print("pytorch-optimizer is not installed: pip install 'dlbench[pytorch-optimizer]'")
        return 0
    torch.set_num_threads(1)
    names = [n for n in collection.names() if n not in OPTIMIZERS]
    counts: Counter[str] = Counter()
    for name in names:
        found, why = outcome(name)
        counts[found] += 1
        print(f"{name:20s} {found:8s} {why[:150]}", flush=True)
    print(f"pytorch-optimizer {collection.version()}: {len(names)} names reached (built-ins "
          f"win: {', '.join(n for n in collection.names() if n in OPTIMIZERS)}); "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 1 if counts["differs"] else 0


if __name__ == "__main__":
    sys.exit(main())
