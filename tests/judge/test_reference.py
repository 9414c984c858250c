"""How ModelNew's arguments are passed: positionally as KernelBench does, by keyword, or without
those at the reference's defaults, each falling back to positional where ModelNew cannot take it."""

import inspect

import pytest

from builder.judge.reference import STYLES, new_arguments


class Pool:
    def __init__(self, kernel_size: int, stride: int = None, padding: int = 0, dilation: int = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        pass


class Norm:
    def __init__(self, features: int, *, eps: float = 1e-5):
        pass


BENCH = {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 3}


def test_positional_follows_the_references_order_and_fills_a_gap_with_its_default():
    assert new_arguments(Pool, BENCH, "positional") == {"args": [3, 2, 1, 3], "init": {}}
    gap = {"kernel_size": 2, "padding": 0, "dilation": 1}
    assert new_arguments(Pool, gap, "positional") == {"args": [2, None, 0, 1], "init": {}}
    assert new_arguments(Norm, {"features": 8, "eps": 1e-3}, "positional") == {"args": [8], "init": {"eps": 1e-3}}


def test_keywords_fall_back_to_positional():
    built = new_arguments(Pool, BENCH, "keywords")
    assert built["args"] == [] and built["init"] == BENCH
    assert built["fallback"] == new_arguments(Pool, BENCH, "positional")


def test_defaults_leave_out_every_argument_at_the_references_default():
    init = {"kernel_size": 3, "stride": 2, "padding": 0, "dilation": 1, "ceil_mode": True}
    built = new_arguments(Pool, init, "defaults")
    assert (built["args"], built["init"]) == ([3, 2], {"ceil_mode": True})
    assert new_arguments(Pool, {"kernel_size": 2, "padding": 0, "dilation": 1}, "defaults")["args"] == [2]
    # A value equal to the default but of another type (True for 1) is passed.
    assert new_arguments(Pool, {"kernel_size": 2, "dilation": True}, "defaults")["init"] == {"dilation": True}


@pytest.mark.parametrize("style", STYLES)
def test_every_style_calls_the_reference_with_the_same_values(style):
    init = {"kernel_size": 3, "stride": 1, "padding": 0, "ceil_mode": True}
    built = new_arguments(Pool, init, style)
    bound = inspect.signature(Pool).bind(*built["args"], **built["init"])
    bound.apply_defaults()
    expected = inspect.signature(Pool).bind(**init)
    expected.apply_defaults()
    assert bound.arguments == expected.arguments


def test_an_unknown_style_is_refused():
    with pytest.raises(ValueError, match="construction style"):
        new_arguments(Pool, BENCH, "sideways")
