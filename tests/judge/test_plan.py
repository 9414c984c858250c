"""The conditions of checked calls, and the cases drawn from a problem's input space."""

import random
from pathlib import Path

import pytest

import torch

from builder.judge.inputs import LAYOUTS, Placed, shows
from builder.judge.plan import ANY_SIZE_LAYOUTS, both_user_calls, rotation, trial_conditions, value_classes
from builder.judge.poison import KINDS
from builder.judge.space import benchmark_dims, draw_case, draw_twin, stretch_order, stretch_top
from builder.seeds import load_problem

FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"


@pytest.mark.parametrize("seed", range(12))
def test_the_first_calls_see_every_layout_and_a_users_two_calls_then_every_other_is_plain(seed):
    calls = rotation(13, random.Random(seed))
    block = len(LAYOUTS) + 1
    assert {c.layout for c in calls[:block]} == set(LAYOUTS)
    plain = [c for c in calls if c.layout == "plain"]
    assert [k for k, c in enumerate(calls[:block]) if c.layout == "plain"] in ([0, 2], [1, 3])
    assert {(c.mode, c.grad) for c in plain[:2]} == {("eval", False), ("train", True)}
    assert {(c.mode, c.grad) for c in plain[:4]} == {("eval", False), ("train", True), ("train", False), ("eval", True)}
    assert all((calls[k].layout == "plain") == (k % 2 == block % 2) for k in range(block, len(calls)))
    assert {calls[0].layout, calls[1].layout} >= {"plain"}  # the widest dim's two stretches: one plain, one not
    for start in range(len(calls) - len(KINDS) + 1):
        assert {c.poison for c in calls[start:start + len(KINDS)]} == set(KINDS)
    others = [c for c in calls if c.layout != "plain"]
    assert all(a.mode != b.mode for a, b in zip(others, others[1:]))


@pytest.mark.parametrize("seed", range(24))
def test_the_widest_dims_two_stretches_are_a_users_inference_and_training_calls_at_one_size(seed):
    """An answer right only with autograd off (or only in eval mode) is checked at the largest size
    in the other call as well: neither of the two takes a layout that halves the stretch. The plain
    calls stay a user's calls, and the first calls still see every layout."""
    calls = rotation(8, random.Random(seed))
    made = both_user_calls(calls)
    assert {(c.mode, c.grad) for c in made[:2]} == {("eval", False), ("train", True)}
    assert {c.layout for c in made[:2]} - {"plain"} <= set(ANY_SIZE_LAYOUTS)
    block = len(LAYOUTS) + 1
    assert sorted(c.layout for c in made[:block]) == sorted(c.layout for c in calls[:block])
    assert made[block:] == calls[block:]
    assert [c.layout == "plain" for c in made] == [c.layout == "plain" for c in calls]
    assert {(c.mode, c.grad) for c in made if c.layout == "plain"} == {(c.mode, c.grad) for c in calls if c.layout == "plain"}


@pytest.mark.parametrize("layout", ["transposed", "strided", "sliced"])
def test_a_check_is_drawn_so_that_its_layout_is_not_contiguous(layout):
    """A sliced row, or a transposed tensor of one wide axis, is contiguous: a kernel that ignores
    the strides would read it rightly. Stretched draws widen a second dim where they must."""
    for key, stretch in (("relu", "L"), ("relu", "N"), ("affine_rows", None), ("rowloss", None)):
        problem = load_problem(FIXTURES / key)
        for seed in range(6):
            case = draw_case(problem, "s", "uniform", random.Random(seed), lambda c: True, stretch=stretch, layout=layout)
            placed = [Placed(i.shape, torch.float32, "cpu", layout) for i in case.inputs]
            assert any(not p.x.is_contiguous() for p in placed), (key, case.inputs)


def test_which_layouts_a_shape_shows_matches_the_inputs_laid_out():
    rng = random.Random(0)
    for _ in range(60):
        shape = tuple(rng.choice((1, 1, 2, 3)) for _ in range(rng.randrange(1, 5)))
        for layout in ("strided", "sliced"):
            assert shows(layout, shape) == (not Placed(shape, torch.float32, "cpu", layout).x.is_contiguous()), (layout, shape)
        if shows("transposed", shape):  # else Placed falls back to a strided view
            x = Placed(shape, torch.float32, "cpu", "transposed").x
            assert not x.is_contiguous() and sorted(x.stride()) != list(x.stride())[::-1], shape


def test_benchmark_trials_alternate_plain_and_guarded_inputs_in_training_mode():
    trials = trial_conditions(4, random.Random(1))
    assert {t.layout for t in trials[:2]} == {"plain", "guarded"} and {t.mode for t in trials} == {"train"}


@pytest.mark.parametrize("seed", range(20))
def test_special_values_come_early_whenever_listed(seed):
    classes = value_classes(("signed", "large", "tiny", "bursts", "special"), 8, 4, random.Random(seed))
    assert "special" in classes[:4] and "uniform" in classes and len(classes) == 8


def test_the_first_draw_stretches_the_widest_dim_and_init_choices_follow_the_dims():
    problem = load_problem(FIXTURES / "affine_rows")
    rng = random.Random(0)
    case = draw_case(problem, "space_0", "signed", rng, lambda c: True, stretch=stretch_order(problem, rng)[0])
    assert case.inputs[0].shape == (1, 1, 40) and case.inputs[0].values == "signed"
    assert case.init["normalized_shape"] in ([1, 40], [40])


def test_draws_the_reference_refuses_are_drawn_again():
    problem = load_problem(FIXTURES / "affine_rows")
    seen = []

    def accepts(case):
        seen.append(case)
        return case.init["normalized_shape"] == [case.inputs[0].shape[-1]] and len(seen) > 3

    case = draw_case(problem, "space_1", "uniform", random.Random(2), accepts)
    assert case is seen[-1] and len(seen) > 3
    assert draw_case(problem, "space_2", "uniform", random.Random(2), lambda c: False) is None


def test_integer_inputs_take_their_bounds_from_the_dims():
    problem = load_problem(FIXTURES / "rowloss")
    for seed in range(10):
        case = draw_case(problem, "s", "large", random.Random(seed), lambda c: True)
        predictions, targets = case.inputs
        assert targets.high == predictions.shape[1] and targets.dtype == "int64" and targets.values == "uniform"
        assert predictions.values == "large" and targets.shape == predictions.shape[:1]


def test_draws_past_the_element_cap_are_drawn_again_but_the_stretched_one():
    problem = load_problem(FIXTURES / "relu")
    for seed in range(10):
        case = draw_case(problem, "s", "uniform", random.Random(seed), lambda c: True, max_elements=500)
        assert case is None or case.inputs[0].shape[0] * case.inputs[0].shape[1] <= 500
    stretched = draw_case(problem, "s", "uniform", random.Random(0), lambda c: True, stretch="L", max_elements=500)
    assert stretched.inputs[0].shape == (1, 3001)  # the benchmark's row, past the space's top


def test_each_dim_is_stretched_in_turn_to_its_benchmark_size_within_the_element_budget():
    """An answer that caps a batch, a plane or a row below the benchmark's size shows on the CPU."""
    from builder.judge.space import STRETCH_ELEMENTS
    from builder.seeds import get_problem

    problem = get_problem("avgpool1d")
    assert benchmark_dims(problem) == {"N": 64, "C": 128, "L": 65536}
    order = stretch_order(problem, random.Random(3))
    assert order[0] == "L" and sorted(order) == ["C", "L", "N"]
    assert [stretch_top(problem, d) for d in ("N", "C", "L")] == [64, 128, STRETCH_ELEMENTS]
    case = draw_case(problem, "space_0", "uniform", random.Random(1), lambda c: True, stretch="N")
    assert case.inputs[0].shape == (64, 1, 1)


def test_a_twin_keeps_the_inputs_and_draws_another_init_that_the_caller_accepts():
    problem = load_problem(FIXTURES / "affine_rows")
    base = draw_case(problem, "space_3", "uniform", random.Random(0), lambda c: c.inputs[0].shape[1] > 1)
    twin = draw_twin(problem, base, random.Random(1), lambda c: True)
    assert twin.inputs == base.inputs and twin.init != base.init and twin.name == "space_3, another model"
    assert draw_twin(problem, base, random.Random(1), lambda c: False) is None
    assert draw_twin(load_problem(FIXTURES / "relu"), draw_case(load_problem(FIXTURES / "relu"), "s", "uniform",
                                                                random.Random(0), lambda c: True),
                     random.Random(0), lambda c: True) is None  # no init choices: no other model
