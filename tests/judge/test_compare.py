"""The comparison rule: |out - ref| <= atol * min(1, max|ref|) + rtol * |ref|, the reference's NaN
and infinities required where it has them."""

import pytest
import torch

from builder.judge.compare import compare, reference_scale

NAN, INF = float("nan"), float("inf")


def test_the_absolute_part_shrinks_with_tiny_outputs():
    ref = torch.rand(1000, generator=torch.Generator().manual_seed(0)) * 1e-6
    assert compare(ref * (1 + 1e-6), ref, 1e-4, 1e-4).reason is None
    zeros = compare(torch.zeros_like(ref), ref, 1e-4, 1e-4)
    assert zeros.reason == "mismatch" and "atol 0.0001 * min(1, max|ref|)" in zeros.detail


def test_the_absolute_part_never_grows_past_atol():
    ref = torch.tensor([1e4, 0.0, -3.0])
    assert reference_scale(ref) == 1e4
    assert compare(ref + torch.tensor([0.5, 1.5e-4, 0.0]), ref, 1e-4, 1e-4).reason == "precision_loss"
    assert compare(ref + torch.tensor([0.5, 0.9e-4, 0.0]), ref, 1e-4, 1e-4).reason is None


@pytest.mark.parametrize(
    ("out", "ref", "reason"),
    [
        ([NAN, 1.0, INF, -INF], [NAN, 1.0, INF, -INF], None),
        ([0.0, 1.0], [NAN, 1.0], "mismatch"),
        ([INF, 1.0], [-INF, 1.0], "mismatch"),
        ([NAN, 1.0], [INF, 1.0], "mismatch"),
        ([1.0, NAN], [1.0, 2.0], "nan_inf"),
        ([1.0, INF], [1.0, 2.0], "nan_inf"),
    ],
    ids=["same specials", "NaN dropped", "wrong infinity", "NaN for inf", "NaN for finite", "inf for finite"],
)
def test_nan_and_infinities_only_where_the_reference_has_them(out, ref, reason):
    result = compare(torch.tensor(out), torch.tensor(ref), 1e-4, 1e-4)
    assert result.reason == reason, result.detail


def test_integer_and_zero_dim_outputs():
    assert compare(torch.tensor([3, 4]), torch.tensor([3, 4]), 1e-4, 1e-4).reason is None
    assert compare(torch.tensor([3, 5]), torch.tensor([3, 4]), 1e-4, 1e-4).reason == "mismatch"
    assert compare(torch.tensor(2.5), torch.tensor(2.5), 1e-4, 1e-4).reason is None
    assert compare(torch.tensor([2.5]), torch.tensor(2.5), 1e-4, 1e-4).reason == "wrong_shape"


def test_a_known_scale_stands_for_the_references_own():
    ref = torch.tensor([4.0, 0.0, -2.0, NAN])
    out = ref + torch.tensor([0.0, 0.9e-4, 0.0, 0.0])
    assert compare(out, ref, 1e-4, 1e-4, scale=reference_scale(ref)) == compare(out, ref, 1e-4, 1e-4)
    assert compare(out, ref, 1e-4, 1e-4).reason is None
    assert compare(out, ref, 1e-4, 1e-4, scale=0.5).reason == "precision_loss"  # the scale given is the one used
