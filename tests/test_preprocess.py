"""Preprocessing is fitted on each member's training rows only (no leakage)."""

import numpy as np
import pytest

from dlbench.data.datasets import Dataset
from dlbench.data.preprocess import PREPROCESSORS, fit_affine
from dlbench.engine.members import Member, TrainConfig
from dlbench.engine.trainer import train
from dlbench.nn.models import ModelSpec


def test_scalers_transform_training_rows_as_documented():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, size=(200, 4)) * [1, 10, 1e-3, 1e4]
    X[:, 3] = 7.0  # a constant feature must not divide by zero
    scale, shift = fit_affine("standardize", X)
    Z = X * scale + shift
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z[:, :3].std(0), 1, rtol=1e-4)
    scale, shift = fit_affine("minmax", X)
    Z = X * scale + shift
    np.testing.assert_allclose(Z[:, :3].min(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :3].max(0), 1, rtol=1e-5)
    scale, shift = fit_affine("none", X)
    np.testing.assert_array_equal(X * scale + shift, X)


@pytest.mark.parametrize("preprocess", PREPROCESSORS.names())
def test_evaluation_rows_never_influence_training(preprocess):
    """Change only the validation rows (even to huge outliers): training must not move at all."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    rows = rng.permutation(120)
    member = Member({"m": 0}, 3, np.sort(rows[:80]), {"val": np.sort(rows[80:])})
    poisoned = X.copy()
    poisoned[member.evals["val"]] = rng.normal(1000, 500, size=(40, 5))
    runs = []
    for features in (X, poisoned):
        ds = Dataset("toy", features, y, "classification", classes=("0", "1"))
        runs.append(train(ds, ModelSpec("mlp", hidden=(8,)),
                          TrainConfig(epochs=3, batch_size=16, preprocess=preprocess), [member]))
    clean, dirty = runs[0][0], runs[1][0]
    train_curve = [c for c in clean.curves if c[1] == "train"]
    assert train_curve == [c for c in dirty.curves if c[1] == "train"]
    for name, value in clean.weights.items():
        np.testing.assert_array_equal(value, dirty.weights[name])
    assert not np.allclose(clean.predictions["val"].proba, dirty.predictions["val"].proba)
