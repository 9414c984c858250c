"""The static layer on the fixture answers: known-bad ones under seeds/<problem>/wrong/ and
unusual but legitimate ones under seeds/<problem>/accepted/.

A wrong fixture whose `reason` is a static code (one of rules.PRECEDENCE) must get that reason
from the static layer; one whose reason is a runtime code must pass it untouched, so that the
runtime has something to catch. Running the fixtures is the runtime tests' job.
"""

import tomllib

import pytest

from builder.judge.reasons import REASONS
from builder.judge.rules import FORMAT_REASONS, PRECEDENCE, check_answer, first_finding
from builder.judge.score import benchmark_sizes, read_answer
from builder.seeds import load_problems

PROBLEMS = load_problems()
STATIC = frozenset(PRECEDENCE)
#: Keys an entry of wrong/expected.toml may have.
WRONG_KEYS = frozenset({"reason", "runtime", "gpu", "cases", "timeout_s"})


def listing(problem, folder):
    path = problem.dir / folder / "expected.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def answers_in(problem, folder):
    path = problem.dir / folder
    return {p.name for p in path.iterdir() if p.suffix in (".py", ".md")} if path.is_dir() else set()


def runtime_codes(spec):
    runtime = spec.get("runtime", [])
    return [runtime] if isinstance(runtime, str) else list(runtime)


def static_verdict(problem, folder, name):
    _, findings = check_answer(read_answer(problem.dir / folder / name), benchmark_sizes(problem))
    found = first_finding(findings)
    return (found.reason if found else None), findings


def params(folder):
    for problem in PROBLEMS:
        for name, spec in listing(problem, folder).items():
            yield pytest.param(problem, name, spec, id=f"{problem.key}/{name}")


@pytest.mark.parametrize("folder", ["wrong", "accepted"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.key)
def test_every_fixture_is_listed(problem, folder):
    assert answers_in(problem, folder) == set(listing(problem, folder)), f"{problem.key}/{folder}/expected.toml"


@pytest.mark.parametrize("problem,name,spec", params("wrong"))
def test_wrong_entries_are_well_formed(problem, name, spec):
    where = f"{problem.key}/wrong/expected.toml [{name}]"
    assert set(spec) <= WRONG_KEYS, f"{where}: unknown keys {set(spec) - WRONG_KEYS}"
    assert spec["reason"] in REASONS, f"{where}: unknown reason {spec['reason']}"
    assert set(runtime_codes(spec)) <= set(REASONS), f"{where}: unknown runtime code"
    if "cases" in spec:  # without cases a runtime check runs the whole verification, drawn checks included
        assert spec["cases"], f"{where}: cases, when given, name what a runtime check runs"
    if spec["reason"] not in STATIC:
        assert spec["reason"] in runtime_codes(spec), f"{where}: a runtime reason must be a runtime code too"


@pytest.mark.parametrize("problem,name,spec", params("wrong"))
def test_static_verdict_of_a_wrong_answer(problem, name, spec):
    got, findings = static_verdict(problem, "wrong", name)
    reason = spec["reason"]
    if reason in STATIC:
        assert got == reason, findings
    else:
        assert got is None, findings


#: Keys an entry of accepted/expected.toml may have.
ACCEPTED_KEYS = frozenset({"note", "cpu", "format"})


@pytest.mark.parametrize("problem,name,spec", params("accepted"))
def test_accepted_answers_have_no_static_finding(problem, name, spec):
    """No finding, or only the output-rule finding its entry names (`format`): the code runs."""
    where = f"{problem.key}/accepted/expected.toml [{name}]"
    assert spec.get("note"), f"{where}: a note says what is unusual"
    assert set(spec) <= ACCEPTED_KEYS, f"{where}: unknown keys {set(spec) - ACCEPTED_KEYS}"
    assert spec.get("format", "rule_order") in FORMAT_REASONS and spec.get("cpu", "cpu_unverifiable") in REASONS
    got, findings = static_verdict(problem, "accepted", name)
    assert [f.reason for f in findings] == ([spec["format"]] if "format" in spec else []), findings


def test_there_are_enough_fixtures():
    wrong = sum(len(listing(p, "wrong")) for p in PROBLEMS)
    accepted = sum(len(listing(p, "accepted")) for p in PROBLEMS)
    assert wrong >= 30 and accepted >= 8, (wrong, accepted)
