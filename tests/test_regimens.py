"""Regimens in the stacked trainer: each does what it claims, and keeps the exactness contract
(a member with any regimen, in a stack with members of other regimens, equals its own plain
one-model loop)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbench.data.augment import Augment
from dlbench.data.preprocess import fit_affine
from dlbench.engine.loop import load_member
from dlbench.engine.members import Member, TrainConfig, epoch_order
from dlbench.engine.regimens import Regimen, cycle_ends, cyclic_factor
from dlbench.engine.trainer import check_train, train, train_grid
from dlbench.errors import DlbenchError
from dlbench.nn.models import ModelSpec, Shape, build_model
from dlbench.optim.optimizers import OptimSpec, build_optimizer
from tests.test_trainer import make_dataset, make_members, to_plain

SPEC = ModelSpec("mlp", hidden=(12, 8))


def plain_loop(ds, spec, cfg: TrainConfig, member: Member, optimizer=None,
               criterion=F.cross_entropy):
    """One model, one loop, every regimen written out by hand -> (net, running losses,
    validation losses after each epoch (epoch 0 first)); `criterion`: the data loss."""
    r = cfg.regimen
    net = to_plain(build_model(spec, Shape.of(ds), [member.seed]), 0)
    if member.init is not None:
        stacked = build_model(spec, Shape.of(ds), [member.seed])
        load_member(stacked, 0, member.init)
        net = to_plain(stacked, 0)
    named = dict(net.named_parameters())
    weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    scales = {n: r.lr_scale(_stacked_name(n)) for n in named}
    for n, p in named.items():
        p.requires_grad_(scales[n] > 0)
    groups = {}  # (lr multiplier, a weight?) -> parameters: the optimizer's own weight decay
    for n, p in named.items():  # acts on the weights only, never a bias
        if scales[n] > 0:
            groups.setdefault((scales[n], any(p is w for w in weights)), []).append(p)
    opt = optimizer(net) if optimizer else build_optimizer(
        cfg.optimizer, [{"params": ps, "lr": cfg.optimizer.lr * s}
                        | ({} if weight or not _decays(cfg) else {"weight_decay": 0.0})
                        for (s, weight), ps in groups.items()])
    scale, shift = fit_affine(cfg.preprocess, ds.X[member.train])
    X, y = torch.as_tensor(ds.X * scale + shift), torch.as_tensor(ds.y)
    val = torch.as_tensor(member.evals["val"])

    def val_loss():
        net.eval()
        with torch.no_grad():
            return float(F.cross_entropy(net(X[val]), y[val]))

    running, vals = [], [val_loss()]
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        rows = member.train[epoch_order(member.seed, epoch, len(member.train))]
        seen = 0.0
        for s in range(0, len(rows), cfg.batch_size):
            batch = torch.as_tensor(rows[s:s + cfg.batch_size])
            loss = criterion(net(X[batch]), y[batch])
            objective = loss + sum(r.l1 * w.abs().sum() + r.l2 * w.square().sum()
                                   for w in weights)
            opt.zero_grad()
            objective.backward()
            with torch.no_grad():
                for w in weights:
                    w.mul_(1 - cfg.optimizer.lr * r.decay)
            opt.step()
            if r.max_norm:
                with torch.no_grad():
                    for w in weights:  # torch's (out, in): a unit's incoming weights are a row
                        w.mul_((r.max_norm / w.norm(dim=1, keepdim=True)).clamp(max=1))
            seen += loss.item() * len(batch)
        running.append(seen / len(rows))
        vals.append(val_loss())
    return net, running, vals


def _decays(cfg: TrainConfig) -> bool:
    return "weight_decay" in cfg.optimizer.info.signature_defaults()


def _stacked_name(plain: str) -> str:
    """'0.weight' of the plain Sequential -> 'layers.0.weight' of the stacked model."""
    return f"layers.{plain}"


def assert_weights(result, spec, ds, net, rtol=1e-4, atol=1e-5):
    stacked = build_model(spec, Shape.of(ds), [0])
    stacked.load_state_dict({k: v.unsqueeze(0) for k, v in result.weights.items()})
    expected = to_plain(stacked, 0).state_dict()
    for name, value in net.state_dict().items():
        np.testing.assert_allclose(expected[name], value.detach(), rtol=rtol, atol=atol)


def running_loss(result):
    return result.curve("train", "running_loss")  # epochs 1..E


REGIMENS = {
    "l1": Regimen(l1=1e-3),
    "l2": Regimen(l2=1e-2),
    "l1l2": Regimen(l1=1e-3, l2=1e-2),
    "decay": Regimen(decay=0.05),
    "max-norm": Regimen(max_norm=0.5),
    "per-layer lr": Regimen(lr_scales=(("layers.0.", 0.1),)),
    "frozen": Regimen(lr_scales=(("layers.2.", 0.0),)),
}


def test_members_of_different_regimens_share_a_stack_and_each_equals_its_plain_loop():
    ds, members = make_dataset(), make_members()
    configs = [TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16, regimen=r)
               for r in REGIMENS.values()]
    grid = train_grid(ds, SPEC, configs, members)
    for cfg, results in zip(configs, grid, strict=True):
        for result, member in zip(results, members, strict=True):
            net, running, _ = plain_loop(ds, SPEC, cfg, member)
            np.testing.assert_allclose(running_loss(result), running, rtol=1e-4, atol=1e-6)
            assert_weights(result, SPEC, ds, net)


def test_l2_adds_its_penalty_and_its_gradient_is_two_lambda_w():
    """Member 0 (λ2 = 0.5) adds 0.5·Σw² and gets the gradient 2·0.5·w; member 1 (λ2 = 0)
    adds nothing and gets no gradient from it."""
    from dlbench.engine import regimens

    model = build_model(SPEC, Shape(8, None, 3), [1, 2])
    weights = [p for n, p in model.named_parameters() if n in regimens.weight_norm_dims(model)]
    lam = torch.tensor([0.5, 0.0])
    value = regimens.penalty(weights, torch.zeros(2), lam)
    expected = 0.5 * sum(float(w[0].detach().square().sum()) for w in weights)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    for w in weights:
        torch.testing.assert_close(w.grad[0], 2 * 0.5 * w[0].detach())
        assert not w.grad[1].any()  # the other member's strength is 0: its gradient is its own


def test_decoupled_decay_equals_torch_adamw_on_the_weights():
    ds, member = make_dataset(), make_members()[0]
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=3, batch_size=16,
                      regimen=Regimen(decay=0.1))
    [result] = train(ds, SPEC, cfg, [member])

    def adamw(net):
        weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
        others = [p for p in net.parameters() if all(p is not w for w in weights)]
        return torch.optim.AdamW([{"params": weights, "weight_decay": 0.1},
                                  {"params": others, "weight_decay": 0.0}], lr=0.01)

    net, _, _ = plain_loop(ds, SPEC, TrainConfig(OptimSpec("adam", 0.01), epochs=3,
                                                 batch_size=16), member, optimizer=adamw)
    assert_weights(result, SPEC, ds, net)


def test_max_norm_keeps_every_units_incoming_weights_within_the_norm():
    ds, members = make_dataset(), make_members()
    cfg = TrainConfig(OptimSpec("sgd", 0.5), epochs=3, batch_size=16,
                      regimen=Regimen(max_norm=0.3))
    for result in train(ds, SPEC, cfg, members):
        for name, w in result.weights.items():
            if name.endswith("weight"):  # (in, out): unit j's incoming weights are column j
                assert float(w.norm(dim=0).max()) <= 0.3 + 1e-5


def test_frozen_parameters_do_not_change_and_the_others_do():
    ds, members = make_dataset(), make_members()
    start = build_model(SPEC, Shape.of(ds), [m.seed for m in members]).state_dict()
    frozen = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16,
                         regimen=Regimen(lr_scales=(("layers.0.", 0.0),)))
    plain = TrainConfig(OptimSpec("sgd", 0.1), epochs=2, batch_size=16)
    for config, results in zip((frozen, plain), train_grid(ds, SPEC, [frozen, plain], members),
                               strict=True):
        for m, result in enumerate(results):
            for name, value in result.weights.items():
                same = torch.equal(value, start[name][m])
                assert same == (config is frozen and name.startswith("layers.0.")), name


def test_a_parameter_frozen_in_every_member_needs_no_gradient():
    """Frozen everywhere (a linear probe): no gradient is computed for it, nothing crashes."""
    ds, members = make_dataset(), make_members()
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16,
                      regimen=Regimen(lr_scales=(("layers.0.", 0.0), ("layers.2.", 0.0))))
    for result, member in zip(train(ds, SPEC, cfg, members), members, strict=True):
        net, running, _ = plain_loop(ds, SPEC, cfg, member)
        np.testing.assert_allclose(running_loss(result), running, rtol=1e-4, atol=1e-6)
        assert_weights(result, SPEC, ds, net)


def test_members_start_from_given_weights_and_keep_the_draw_elsewhere():
    ds, members = make_dataset(), make_members()
    donor = build_model(SPEC, Shape.of(ds), [999]).state_dict()
    given = {k: v[0] for k, v in donor.items() if k.startswith("layers.0.")}
    seeded = [Member(m.key, m.seed, m.train, m.evals, init=given if i == 1 else None)
              for i, m in enumerate(members)]
    cfg = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16)
    results = train(ds, SPEC, TrainConfig(OptimSpec("adam", 0.0), epochs=1, batch_size=16),
                    seeded)
    drawn = build_model(SPEC, Shape.of(ds), [m.seed for m in members]).state_dict()
    for name, value in results[1].weights.items():
        expected = given[name] if name in given else drawn[name][1]
        torch.testing.assert_close(value, expected)
    torch.testing.assert_close(results[0].weights["layers.0.weight"], drawn["layers.0.weight"][0])
    for result, member in zip(train(ds, SPEC, cfg, seeded), seeded, strict=True):
        net, running, _ = plain_loop(ds, SPEC, cfg, member)
        np.testing.assert_allclose(running_loss(result), running, rtol=1e-4, atol=1e-6)


def test_initial_weights_that_do_not_fit_name_the_first_difference():
    model = build_model(SPEC, Shape(8, None, 3), [0])
    with pytest.raises(DlbenchError, match="'layers.0.weight' is \\(8, 5\\)"):
        load_member(model, 0, {"layers.0.weight": torch.zeros(8, 5)})
    with pytest.raises(DlbenchError, match="'head.weight', which this model lacks"):
        load_member(model, 0, {"head.weight": torch.zeros(8, 5)})


def test_early_stopping_stops_at_patience_and_restores_the_best_epochs_weights():
    """Adam at a high rate on 40 rows overfits fast: the validation loss turns up early."""
    ds, members = make_dataset(), make_members()
    stop = TrainConfig(OptimSpec("adam", 0.05), epochs=30, batch_size=16,
                       regimen=Regimen(patience=3))
    free = TrainConfig(OptimSpec("adam", 0.05), epochs=30, batch_size=16)
    stopped, full = train_grid(ds, SPEC, [stop, free], members, best=True)
    for s, f, member in zip(stopped, full, members, strict=True):
        _, _, vals = plain_loop(ds, SPEC, free, member)
        best = int(np.argmin(vals))
        waited = [e for e in range(best + 1, 31) if e - best >= 3]
        assert s.best_epoch == f.best_epoch == best
        assert s.stopped_epoch == (waited[0] if waited else 30) < 30
        assert len(s.curve("val", "loss")) == s.stopped_epoch + 1  # its curve ends there
        assert len(s.cost) == s.stopped_epoch + 1
        np.testing.assert_allclose(s.curve("val", "loss"), f.curve("val", "loss")[:len(
            s.curve("val", "loss"))], rtol=1e-5)
        # restored: the final predictions are the best epoch's, and so are the weights
        np.testing.assert_allclose(s.predictions["val"].proba, f.at_best["val"].proba,
                                   rtol=1e-4, atol=1e-6)
        assert not np.allclose(f.predictions["val"].proba, f.at_best["val"].proba)
        net, _, _ = plain_loop(ds, SPEC, TrainConfig(OptimSpec("adam", 0.05), epochs=best,
                                                     batch_size=16), member)
        assert_weights(s, SPEC, ds, net)


def test_every_member_stopped_ends_the_stack_early_and_progress_still_completes():
    ds, members = make_dataset(), make_members()
    cfg = TrainConfig(OptimSpec("adam", 0.05), epochs=40, batch_size=16,
                      regimen=Regimen(patience=2))
    done = []
    results = train(ds, SPEC, cfg, members, progress=done.append)
    assert max(r.stopped_epoch for r in results) < 40
    assert sum(done) == 40 * len(members)


def test_the_snapshot_schedule_restarts_at_each_cycle_and_predictions_average_snapshots():
    assert cycle_ends(10, 3) == [3, 7, 10]
    factors = [cyclic_factor(s, 2, 10, 3) for s in range(20)]
    assert factors[0] == factors[6] == factors[14] == 1.0  # each cycle starts at the base rate
    assert factors[5] < 0.2 and factors[13] < 0.2 and factors[19] < 0.1
    ds, members = make_dataset(), make_members()
    epochs = 6
    snap = TrainConfig(OptimSpec("sgd", 0.2), epochs=epochs, batch_size=16,
                       regimen=Regimen(snapshots=2))
    [ensemble] = train(ds, SPEC, snap, members[:1])
    # the same training stopped at each cycle end gives the snapshots themselves
    probas = []
    for end in cycle_ends(epochs, 2):
        cut = TrainConfig(OptimSpec("sgd", 0.2), epochs=end, batch_size=16,
                          regimen=Regimen(snapshots=2))
        probas.append(_snapshot_at(ds, cut, members[0], end, epochs))
    np.testing.assert_allclose(ensemble.predictions["val"].proba, np.mean(probas, axis=0),
                               rtol=1e-4, atol=1e-6)


def _snapshot_at(ds, cfg, member, end, epochs):
    """Member's validation probabilities after `end` epochs of the `epochs`-long cycle."""
    net = to_plain(build_model(SPEC, Shape.of(ds), [member.seed]), 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.2)
    steps = math.ceil(len(member.train) / 16)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cyclic_factor(s, steps, epochs, 2))
    scale, shift = fit_affine("standardize", ds.X[member.train])
    X, y = torch.as_tensor(ds.X * scale + shift), torch.as_tensor(ds.y)
    for epoch in range(1, end + 1):
        rows = member.train[epoch_order(member.seed, epoch, len(member.train))]
        for s in range(0, len(rows), 16):
            batch = torch.as_tensor(rows[s:s + 16])
            loss = F.cross_entropy(net(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return net(X[torch.as_tensor(member.evals["val"])]).double().softmax(1).numpy()


def test_augmentation_is_a_members_own_whatever_its_stack():
    ds, members = make_dataset(), make_members()
    noisy = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16,
                        regimen=Regimen(augment=Augment(noise=0.3, shift=1)))
    clean = TrainConfig(OptimSpec("adam", 0.01), epochs=2, batch_size=16)
    grid = train_grid(ds, SPEC, [clean, noisy], members)
    alone = [train(ds, SPEC, noisy, [m])[0] for m in members]
    for together, single, plain in zip(grid[1], alone, grid[0], strict=True):
        np.testing.assert_allclose(running_loss(together), running_loss(single), rtol=1e-5)
        assert running_loss(together) != running_loss(plain)


def test_mse_loss_for_classes_trains_on_softmax_probabilities():
    ds, member = make_dataset(), make_members()[0]
    cfg = TrainConfig(OptimSpec("sgd", 0.5), epochs=2, batch_size=16, loss="mse")
    [result] = train(ds, SPEC, cfg, [member])
    net = to_plain(build_model(SPEC, Shape.of(ds), [member.seed]), 0)
    scale, shift = fit_affine("standardize", ds.X[member.train])
    X = torch.as_tensor(ds.X * scale + shift)
    y = F.one_hot(torch.as_tensor(ds.y), 3).float()
    rows = torch.as_tensor(member.train)
    with torch.no_grad():
        start = float((net(X[rows]).softmax(1) - y[rows]).square().sum(1).mean())
    assert result.curve("train", "loss")[0] == pytest.approx(start, rel=1e-5)


@pytest.mark.parametrize(("config", "fragment"), [
    (TrainConfig(regimen=Regimen(l2=-1.0)), "l2 strength must be"),
    (TrainConfig(regimen=Regimen(patience=-2)), "patience must be >= 0"),
    (TrainConfig(epochs=3, regimen=Regimen(snapshots=5)), "at least one epoch per snapshot"),
    (TrainConfig(schedule="cosine", regimen=Regimen(snapshots=2)), "drop --schedule"),
    (TrainConfig(OptimSpec("lbfgs", 1.0), regimen=Regimen(lr_scales=(("layers.0.", 0.1),))),
     "need a minibatch optimizer"),
    (TrainConfig(loss="hinge"), "unknown loss 'hinge'; choose one of: cross-entropy, mse"),
])
def test_bad_regimens_are_clear_errors_before_training(config, fragment):
    with pytest.raises(DlbenchError, match=fragment):
        check_train(config)


def test_an_augmented_member_equals_its_plain_loop_short_last_batches_included():
    """Noise drawn for a member's real rows only, from its own generator, in batch order."""
    from dlbench.data.augment import generators

    ds, members = make_dataset(), make_members()  # 40, 39, 41 rows: padded last batches
    cfg = TrainConfig(OptimSpec("sgd", 0.1), epochs=3, batch_size=16,
                      regimen=Regimen(augment=Augment(noise=0.5)))
    for result, member in zip(train(ds, SPEC, cfg, members), members, strict=True):
        net = to_plain(build_model(SPEC, Shape.of(ds), [member.seed]), 0)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        [g] = generators([member.seed], "cpu")
        scale, shift = fit_affine("standardize", ds.X[member.train])
        X, y = torch.as_tensor(ds.X * scale + shift), torch.as_tensor(ds.y)
        running = []
        for epoch in range(1, 4):
            rows = member.train[epoch_order(member.seed, epoch, len(member.train))]
            seen = 0.0
            for s in range(0, len(rows), 16):
                batch = torch.as_tensor(rows[s:s + 16])
                x = X[batch] + 0.5 * torch.randn((len(batch), X.shape[1]), generator=g)
                loss = F.cross_entropy(net(x), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                seen += loss.item() * len(batch)
            running.append(seen / len(rows))
        np.testing.assert_allclose(running_loss(result), running, rtol=1e-4, atol=1e-6)
