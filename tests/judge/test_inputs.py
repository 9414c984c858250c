"""Inputs drawn from seeds and laid out as a call asks; the fills of fresh allocations."""

import pytest
import torch

from builder.judge.inputs import GUARD_VALUES, LAYOUTS, Placed, PlacedInputs, draw, payload_of
from builder.judge.poison import Poison, untouched

SPEC = {"shape": [3, 5, 7], "dtype": "float32", "low": -1.0, "high": 1.0}


def test_a_draw_is_its_seeds_and_ranges_are_kept():
    a, b, c = draw(SPEC, 5), draw(SPEC, 5), draw(SPEC, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= -1 and float(a.max()) < 1
    ints = draw({"shape": [1000], "dtype": "int64", "low": 3, "high": 9}, 1)
    assert ints.dtype == torch.int64 and set(ints.tolist()) == set(range(3, 9))


@pytest.mark.parametrize(
    ("values", "check"),
    [
        ("signed", lambda t: -1 <= float(t.min()) < 0 < float(t.max()) < 1),
        ("negative", lambda t: float(t.max()) < 0),
        ("large", lambda t: float(t.abs().max()) > 100),
        ("tiny", lambda t: float(t.abs().max()) < 1e-6),
        ("bursts", lambda t: int((t.abs() >= 1e4).sum()) >= 1 and float(t.min()) > -1e6 - 1),
        ("special", lambda t: int(torch.isnan(t).sum()) >= 1 and int((t == float("inf")).sum()) >= 1
         and int((t == float("-inf")).sum()) >= 1),
    ],
)
def test_value_classes(values, check):
    tensor = draw({**SPEC, "shape": [2, 300], "low": 0.0, "values": values}, 3)
    assert check(tensor)


def test_bursts_take_one_sign_per_tensor_and_both_magnitudes():
    signs = set()
    for seed in range(20):
        tensor = draw({**SPEC, "shape": [2, 300], "low": 0.0, "values": "bursts"}, seed)
        big = {abs(v) for v in tensor[tensor.abs() >= 1e4].tolist()}
        assert big == {1e4, 1e6}
        signs.add(float(tensor[tensor.abs() >= 1e4].sign().unique().item()))
    assert signs == {1.0, -1.0}
    for seed in range(20):  # 1e6 is past float16's range: its bursts are 1e4
        half = draw({"shape": [2, 300], "dtype": "float16", "low": 0.0, "high": 1.0, "values": "bursts"}, seed)
        assert bool(torch.isfinite(half).all()) and float(half.abs().max()) == 1e4


def test_every_layout_holds_the_same_values():
    values = draw(SPEC, 11)
    for layout in LAYOUTS:
        placed = Placed(tuple(SPEC["shape"]), torch.float32, "cpu", layout)
        placed.fill(SPEC, 11)
        assert torch.equal(placed.x, values) and placed.bands_intact(), layout
    plain = Placed((3, 5, 7), torch.float32, "cpu", "plain")
    assert plain.x.storage_offset() == 0 and plain.x.is_contiguous() and plain.x.untyped_storage().nbytes() == 3 * 5 * 7 * 4
    assert not Placed((3, 5, 7), torch.float32, "cpu", "transposed").x.is_contiguous()
    strided = Placed((3, 5, 7), torch.float32, "cpu", "strided")
    assert strided.x.stride()[-1] == 2 and strided.x.storage_offset() > 0


def test_a_write_into_the_gaps_of_a_strided_input_shows():
    placed = Placed((2, 4), torch.float32, "cpu", "strided")
    placed.fill(SPEC, 1)
    assert placed.bands_intact()
    torch.as_strided(placed.x, (1,), (1,), placed.x.storage_offset() + 1).fill_(0.0)
    assert not placed.bands_intact()


def test_inputs_of_mixed_dtypes_travel_as_bytes():
    specs = [{"shape": [3], "dtype": "float16", "low": 0.0, "high": 1.0},
             {"shape": [5], "dtype": "int64", "low": 0, "high": 9}, {"shape": [], "dtype": "float32"}]
    tensors = [draw(s, i) for i, s in enumerate(specs)]
    placed = PlacedInputs(specs, "guarded", "cpu", payload_of(tensors))
    assert all(torch.equal(a, b) for a, b in zip(placed.tensors, tensors))
    assert torch.equal(placed.contents(), payload_of(tensors))
    hashes = placed.fingerprints(7)
    assert len(set(hashes)) == 3 and hashes == PlacedInputs(specs, "plain", "cpu", payload_of(tensors)).fingerprints(7)


def test_int_inputs_keep_a_guard_band_of_their_own():
    placed = Placed((4,), torch.int64, "cpu", "guarded")
    assert placed.bands_intact() and int(placed._buffer[0]) == GUARD_VALUES[torch.int64]


def test_fills_vary_by_kind_and_from_call_to_call():
    def filled(pattern):
        tensor = torch.zeros(64)
        pattern(tensor)
        return tensor

    assert untouched(filled(Poison("sentinel"))) == 64
    bits, again, other = Poison("bits", 1), Poison("bits", 1), Poison("bits", 2)
    first = filled(bits)
    assert untouched(first) == 0 and torch.equal(first.view(torch.int32), filled(again).view(torch.int32))
    assert not torch.equal(filled(bits).view(torch.int32), first.view(torch.int32))  # the next fill differs
    assert not torch.equal(filled(other).view(torch.int32), first.view(torch.int32))
    finite = filled(Poison("finite", 3))
    assert bool(torch.isfinite(finite).all()) and float(finite.abs().max()) > 0
    ints = torch.zeros(16, dtype=torch.int64)
    Poison("finite", 3)(ints)
    assert bool((ints != 0).any())
    zeros = torch.ones(8)
    Poison("zeros", 4)(zeros)
    assert not bool(zeros.any())  # as fresh pages often are: a zero cannot mean "not yet written"


def test_a_fresh_allocation_gets_a_band_after_its_end_and_a_write_there_shows(monkeypatch):
    import torch

    from builder.judge import poison
    from builder.judge.poison import Tails

    tails = Tails(seed=11)
    plain = torch.empty(5, 7).t()  # strides (1, 7)
    moved = tails.add(plain)
    assert (moved.shape, moved.stride(), moved.dtype) == (plain.shape, plain.stride(), plain.dtype)
    assert moved.storage_offset() == 0 and moved._base is None
    assert moved.untyped_storage().nbytes() == 35 * 4 + poison.TAIL_BYTES
    moved.fill_(1.0)
    assert not tails.written()
    flat = torch.empty(0).set_(moved.untyped_storage(), 0, (36,), (1,))
    flat[35] = 2.0  # one element past the end
    assert tails.written()
    monkeypatch.setattr(poison, "TAIL_MAX_BYTES", 64)
    big = torch.empty(100)
    assert tails.add(big) is big  # too large for a band: left as it is
    del moved, flat
    assert not Tails(seed=11).written()
