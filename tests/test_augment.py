"""Augmentation: identity when off, the requested noise, exact shifts, members independent."""

from __future__ import annotations

import pytest
import torch

from dlbench.data.augment import AUGMENT_KEY, Augment, augment_batch, check, generators
from dlbench.errors import DlbenchError
from dlbench.seeding import derive_seed

SHAPES = {"tabular": None, "sequence": (2, 9), "image": (3, 7, 6)}


def batch(input_shape: tuple[int, ...] | None, M: int = 3, B: int = 5, seed: int = 0):
    d = 4 if input_shape is None else int(torch.tensor(input_shape).prod())
    return torch.randn(M, B, d, generator=torch.Generator().manual_seed(seed))


def spec_for(input_shape: tuple[int, ...] | None) -> Augment:
    return Augment(noise=0.3, shift=0 if input_shape is None else 2)


@pytest.mark.parametrize("shape", SHAPES)
def test_zero_spec_is_identity_and_draws_nothing(shape):
    x = batch(SHAPES[shape])
    gens = generators([1, 2, 3], "cpu")
    states = [g.get_state() for g in gens]
    assert not Augment().active
    assert augment_batch(x, SHAPES[shape], Augment(), gens) is x
    assert all(torch.equal(g.get_state(), s) for g, s in zip(gens, states, strict=True))


def test_noise_has_the_requested_std_and_zero_mean():
    x = torch.full((2, 1000, 200), 5.0)
    out = augment_batch(x, None, Augment(noise=0.25), generators([0, 1], "cpu"))
    noise = (out - x).double()
    assert noise.mean().item() == pytest.approx(0.0, abs=5 * 0.25 / 400_000**0.5)  # 5 SEs
    assert noise.std().item() == pytest.approx(0.25, rel=0.01)
    assert noise[0].std().item() == pytest.approx(0.25, rel=0.01)  # per member too


def shifts_drawn(gens: list[torch.Generator], B: int, shift: int, axes: int) -> torch.Tensor:
    """The shifts augment_batch draws: each member's first draw from its own generator."""
    return torch.stack([torch.randint(-shift, shift + 1, (B, axes), generator=g) for g in gens])


def test_sequence_shift_is_torch_roll_of_the_drawn_shift():
    x = batch(SHAPES["sequence"], M=2, B=50)
    out = augment_batch(x, (2, 9), Augment(shift=4), generators([7, 8], "cpu"))
    drawn = shifts_drawn(generators([7, 8], "cpu"), 50, 4, 1)[..., 0]
    assert drawn.unique().numel() == 9  # every shift in [-4, 4] is exercised
    seq, rolled = x.reshape(2, 50, 2, 9), out.reshape(2, 50, 2, 9)
    for m in range(2):
        for b in range(50):
            expected = torch.roll(seq[m, b], int(drawn[m, b]), dims=-1)
            assert torch.equal(rolled[m, b], expected)
    # A circular shift permutes each channel's values: sums and sorted values are kept.
    torch.testing.assert_close(rolled.sum(-1), seq.sum(-1))
    assert torch.equal(rolled.sort(-1).values, seq.sort(-1).values)


def test_image_translation_moves_a_bright_pixel_exactly_and_zero_fills():
    M, B, (C, H, W) = 2, 40, SHAPES["image"]
    x = torch.zeros(M, B, C, H, W)
    x[:, :, :, 3, 2] = 1.0  # one bright pixel per channel
    out = augment_batch(x.reshape(M, B, -1), (C, H, W), Augment(shift=2),
                        generators([3, 4], "cpu")).reshape(M, B, C, H, W)
    drawn = shifts_drawn(generators([3, 4], "cpu"), B, 2, 2)
    assert drawn.unique().numel() == 5
    for m in range(M):
        for b in range(B):
            dy, dx = drawn[m, b].tolist()
            expected = torch.zeros(C, H, W)
            expected[:, 3 + dy, 2 + dx] = 1.0
            assert torch.equal(out[m, b], expected)


def test_image_translation_zero_fills_what_moves_in():
    C, H, W = SHAPES["image"]
    x = torch.ones(1, 30, C * H * W)
    out = augment_batch(x, (C, H, W), Augment(shift=2), generators([5], "cpu"))
    dy, dx = shifts_drawn(generators([5], "cpu"), 30, 2, 2)[0].abs().unbind(-1)
    kept = (H - dy) * (W - dx) * C  # pixels whose source lies inside the image
    assert torch.equal(out.sum(-1)[0], kept.float())
    assert set(out.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_member_is_augmented_as_if_alone(shape):
    input_shape, spec = SHAPES[shape], spec_for(SHAPES[shape])
    x, seeds = batch(input_shape), [11, 12, 13]
    stacked = generators(seeds, "cpu")
    augment_batch(x, input_shape, spec, stacked)  # a first batch: the streams move on
    together = augment_batch(x, input_shape, spec, stacked)
    for m, seed in enumerate(seeds):
        alone = generators([seed], "cpu")
        augment_batch(x[m : m + 1], input_shape, spec, alone)
        assert torch.equal(augment_batch(x[m : m + 1], input_shape, spec, alone)[0], together[m])


@pytest.mark.parametrize("shape", SHAPES)
def test_same_seeds_reproduce_and_members_differ(shape):
    input_shape, spec = SHAPES[shape], spec_for(SHAPES[shape])
    x = batch(input_shape, M=1).expand(2, -1, -1)  # both members see the same rows
    first = augment_batch(x, input_shape, spec, generators([1, 2], "cpu"))
    again = augment_batch(x, input_shape, spec, generators([1, 2], "cpu"))
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])  # different seeds, different draws
    assert not torch.equal(first, x)


def test_generators_are_seeded_from_the_member_seed_and_the_augment_key():
    g = generators([42], "cpu")[0]
    expected = torch.Generator().manual_seed(derive_seed(42, AUGMENT_KEY))
    assert torch.equal(torch.rand(8, generator=g), torch.rand(8, generator=expected))


@pytest.mark.parametrize(
    "spec,input_shape,match",
    [
        (Augment(noise=-0.1), None, "noise must be"),
        (Augment(noise=float("nan")), None, "noise must be"),
        (Augment(shift=-1), (1, 8), "shift must be"),
        (Augment(shift=1.5), (1, 8), "shift must be"),  # type: ignore[arg-type]
        (Augment(shift=1), None, r"use augment\[noise=...\] on tabular data"),
        (Augment(shift=8), (1, 8), r"below the sequence length \(8\)"),
        (Augment(shift=6), (1, 6, 9), r"below the image height and width \(6\)"),
        (Augment(shift=1), (8,), r"\(C, L\) or \(C, H, W\)"),
    ],
)
def test_bad_specs_are_one_line_errors(spec, input_shape, match):
    with pytest.raises(DlbenchError, match=match) as caught:
        check(spec, input_shape)
    assert "\n" not in str(caught.value)
    d = 8 if input_shape is None else int(torch.tensor(input_shape).prod())
    with pytest.raises(DlbenchError, match=match):  # augment_batch checks too
        augment_batch(torch.zeros(1, 2, d), input_shape, spec, generators([0], "cpu"))


@pytest.mark.parametrize("input_shape", [None, (1, 8), (1, 6, 9)])
def test_largest_valid_specs_pass(input_shape):
    shift = 0 if input_shape is None else min(input_shape[1:]) - 1
    check(Augment(noise=1.0, shift=shift), input_shape)
