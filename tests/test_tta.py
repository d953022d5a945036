"""Test-time augmentation: the copies, predictions averaged over them (final and best epoch),
curves left alone, and the exactness contract in a mixed stack."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import softmax

from dlbench.data.preprocess import fit_affine
from dlbench.engine import tta
from dlbench.engine.members import TrainConfig
from dlbench.engine.regularizers import parse_regularizers
from dlbench.engine.trainer import check_config, train, train_grid
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec, build_model
from dlbench.optim.optimizers import OptimSpec
from tests.cli_helpers import invoke
from tests.test_trainer import make_dataset, make_members, shape_of, to_plain

SPEC = ModelSpec("mlp", hidden=(12,))
CFG = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16)


def images(n=2, shape=(1, 4, 5)) -> torch.Tensor:
    return torch.arange(n * int(np.prod(shape)), dtype=torch.float32).reshape(n, -1) + 1


@pytest.mark.parametrize("shape", [(1, 4, 5), (2, 6)])
def test_copy_0_is_the_input_and_every_copy_differs(shape):
    x = images(shape=shape)
    assert tta.copy_of(x, shape, 0) is x
    copies = [tta.copy_of(x, shape, c) for c in range(tta.max_copies(shape))]
    assert len({tuple(c.flatten().tolist()) for c in copies}) == len(copies)


def test_image_copies_are_a_flip_then_shifts_and_sequences_shift_both_ways():
    shape = (1, 4, 5)
    x = images(1, shape)
    grid = x.reshape(4, 5)
    assert torch.equal(tta.copy_of(x, shape, 1).reshape(4, 5), grid.flip(-1))
    right = tta.copy_of(x, shape, 2).reshape(4, 5)  # one pixel right, zero-filled
    assert torch.equal(right[:, 1:], grid[:, :-1]) and (right[:, 0] == 0).all()
    up = tta.copy_of(x, shape, 5).reshape(4, 5)
    assert torch.equal(up[:-1], grid[1:]) and (up[-1] == 0).all()
    seq = torch.arange(6.0)[None]
    assert tta.copy_of(seq, (1, 6), 1).tolist() == [[5.0, 0, 1, 2, 3, 4]]
    assert tta.copy_of(seq, (1, 6), 2).tolist() == [[1.0, 2, 3, 4, 5, 0]]


def test_n_1_equals_no_tta_and_curves_never_see_the_copies():
    ds, members = make_dataset(), make_members()  # sequences (2, 4)
    plain, one, three = (train(ds, SPEC, replace(CFG, tta=n), members, best=True)
                         for n in (0, 1, 3))
    for p, o, f in zip(plain, one, three, strict=True):
        assert p.curves == o.curves == f.curves
        np.testing.assert_array_equal(o.predictions["val"].proba, p.predictions["val"].proba)
        assert not np.allclose(f.predictions["val"].proba, p.predictions["val"].proba)
        assert not np.allclose(f.at_best["val"].proba, p.at_best["val"].proba)


def test_predictions_are_the_mean_of_the_copies_probabilities():
    ds, member = make_dataset(), make_members()[0]
    n = 3  # every copy of a (2, 4) sequence: itself, rolled +1 and -1
    [result] = train(ds, SPEC, replace(CFG, tta=n), [member])
    stacked = build_model(SPEC, shape_of(ds), [0])
    stacked.load_state_dict({k: v.unsqueeze(0) for k, v in result.weights.items()})
    net = to_plain(stacked, 0).eval()
    scale, shift = fit_affine("standardize", ds.X[member.train])
    x = torch.as_tensor(ds.X[member.evals["val"]] * scale + shift)
    with torch.no_grad():
        probs = [softmax(net(tta.copy_of(x, ds.input_shape, c)).double().numpy(), axis=1)
                 for c in range(n)]
    np.testing.assert_allclose(result.predictions["val"].proba, np.mean(probs, axis=0),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(result.predictions["val"].y_pred,
                                  np.mean(probs, axis=0).argmax(1))


def test_a_tta_member_in_a_mixed_stack_equals_it_alone():
    ds, members = make_dataset(), make_members()
    configs = [CFG, replace(CFG, tta=3), replace(CFG, tta=2, features=3)]
    grid = train_grid(ds, SPEC, configs, members)
    for cfg, results in zip(configs, grid, strict=True):
        for result, member in zip(results, members, strict=True):
            [alone] = train(ds, SPEC, cfg, [member])
            np.testing.assert_allclose(result.predictions["val"].proba,
                                       alone.predictions["val"].proba, rtol=1e-5, atol=1e-7)


def test_the_tta_entry_sets_the_copies_and_tables_are_refused():
    [entry] = parse_regularizers("tta[n=3]")
    _, cfg = entry.apply(SPEC, CFG, True)
    assert cfg.tta == 3 and cfg.regimen == CFG.regimen
    table = replace(make_dataset(), input_shape=None)
    with pytest.raises(DlbenchError, match="tta .*needs sequences or images"):
        check_config(cfg, SPEC, table)
    with pytest.raises(DlbenchError, match=r"tta n=9: samples shaped \(2, 4\) have 3 distinct"):
        check_config(replace(cfg, tta=9), SPEC, make_dataset())
    with pytest.raises(DlbenchError, match=r"n must be >= 2"):  # one copy is no average
        parse_regularizers("tta[n=1]")


def test_overfit_compares_tta_with_none_on_digits(tmp_path):
    out = tmp_path / "out"
    result = invoke("overfit", "--dataset", "digits", "--train-rows", "200", "--hidden", "16",
                    "--epochs", "2", "--seeds", "2", "--reg", "none,tta[n=4]", "--out", out)
    assert result.exit_code == 0, f"{result.stderr}\n{result.exception!r}"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.regularizer) == ["none", "tta[n=4]"]
    curves = pd.read_csv(out / "curves.csv")
    by_reg = [part.sort_values(["seed", "epoch", "split", "metric"]).value.to_numpy()
              for _, part in curves.groupby("regularizer")]
    # the same training (stack mates at other positions: to float tolerance); only the
    # predictions differ
    np.testing.assert_allclose(*by_reg, rtol=1e-5, atol=1e-6)
    scores = pd.read_csv(out / "scores.csv")
    test = scores[(scores.split == "test") & (scores.metric == "log_loss")]
    assert test.groupby("regularizer").value.mean().nunique() == 2


def test_tta_and_snapshots_both_average_so_one_is_refused():
    from dlbench.engine.regimens import Regimen
    from dlbench.engine.trainer import check_train

    with pytest.raises(DlbenchError, match="use one of them"):
        check_train(replace(CFG, tta=2, regimen=Regimen(snapshots=2)))
