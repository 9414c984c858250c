"""The judge's calls on problems of every shape (fixture problems under tests/fixtures/problems):
several inputs, integer inputs, a 0-dim output, learned parameters and a running buffer; inputs
laid out as a user's, fills that vary, both modes, autograd on and off, long rows, NaN. Each
known-bad answer must get its reason; each correct one must pass."""

import tomllib
from pathlib import Path

import pytest

from builder.judge.correctness import verify
from builder.judge.reasons import REASONS
from builder.seeds import load_problem

FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"
PROBLEMS = {folder.name: load_problem(folder) for folder in sorted(FIXTURES.iterdir()) if folder.is_dir()}

pytestmark = pytest.mark.slow


def expected(problem):
    return tomllib.loads((problem.dir / "wrong" / "expected.toml").read_text())


def reasons(spec):
    return {spec["reason"]} if isinstance(spec["reason"], str) else set(spec["reason"])


@pytest.mark.parametrize("key", sorted(PROBLEMS))
def test_a_correct_answer_passes_every_check(key):
    problem = PROBLEMS[key]
    result = verify(problem, problem.kernel_path.read_text(), device="cpu", timeout_s=300)
    assert result.ok, (result.reason, result.detail)
    names = [c.name for c in result.cases]
    assert names[:2] == [problem.cases[0].name, f"{problem.cases[0].name} (second input)"]
    assert sum(name.startswith("space_") for name in names) >= 4


def wrong_answers():
    for key, problem in PROBLEMS.items():
        for name, spec in expected(problem).items():
            yield pytest.param(problem, name, spec, id=f"{key}/{name}")


@pytest.mark.parametrize("problem,name,spec", wrong_answers())
def test_a_known_bad_answer_gets_its_reason(problem, name, spec):
    assert reasons(spec) <= set(REASONS)
    result = verify(problem, (problem.dir / "wrong" / name).read_text(), device="cpu", timeout_s=300)
    assert not result.ok and result.reason in reasons(spec), (result.reason, result.detail)
