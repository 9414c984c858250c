"""The conditions of checked calls, and the cases drawn from a problem's input space."""

import random
from pathlib import Path

import pytest

from builder.judge.inputs import LAYOUTS
from builder.judge.plan import rotation, trial_conditions, value_classes
from builder.judge.space import draw_case
from builder.seeds import load_problem

FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"


@pytest.mark.parametrize("seed", range(5))
def test_any_four_consecutive_calls_see_every_layout_both_modes_and_both_autograd_settings(seed):
    calls = rotation(9, random.Random(seed))
    for start in range(len(calls) - 3):
        window = calls[start:start + 4]
        assert {c.layout for c in window} == set(LAYOUTS)
        assert {c.mode for c in window} == {"train", "eval"} and {c.grad for c in window} == {True, False}
    assert {c.poison for c in calls[:3]} == {"sentinel", "bits", "finite"}


def test_benchmark_trials_alternate_plain_and_guarded_inputs_in_training_mode():
    trials = trial_conditions(4, random.Random(1))
    assert {t.layout for t in trials[:2]} == {"plain", "guarded"} and {t.mode for t in trials} == {"train"}


@pytest.mark.parametrize("seed", range(20))
def test_special_values_come_early_whenever_listed(seed):
    classes = value_classes(("signed", "large", "tiny", "bursts", "special"), 8, 4, random.Random(seed))
    assert "special" in classes[:4] and "uniform" in classes and len(classes) == 8


def test_the_first_draw_stretches_the_widest_dim_and_init_choices_follow_the_dims():
    problem = load_problem(FIXTURES / "affine_rows")
    case = draw_case(problem, "space_0", "signed", random.Random(0), lambda c: True, stretch=True)
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
    stretched = draw_case(problem, "s", "uniform", random.Random(0), lambda c: True, stretch=True, max_elements=500)
    assert stretched.inputs[0].shape == (1, 3000)
