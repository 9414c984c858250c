import math
import re
import tomllib

import pytest

from builder.judge.reasons import REASONS
from builder.judge.rules import FORMAT_REASONS, PRECEDENCE
from builder.judge.correctness import CaseResult, VerifyResult
from builder.judge.score import (
    FORMAT_SHARE,
    GpuTimer,
    Timed,
    Verdict,
    read_answer,
    reward,
    reward_fn,
    score_answer,
)
from builder.seeds import get_problem, load_problems

PROBLEMS = load_problems()
P1 = get_problem("avgpool1d")
#: Reasons the issue asks the judge to tell apart, each shown by at least one fixture.
REQUIRED = {
    "no_code_block", "syntax_error", "no_model_new", "forbidden_section", "rule_order", "torch_op",
    "fallback", "inherits_reference", "no_kernel_launched", "mismatch", "wrong_shape",
    "hardcoded_shape", "out_of_bounds", "input_mutated", "output_cached", "uninitialized_output",
    "precision_loss", "system_access", "timer_patch", "side_stream", "timeout", "crash",
    "runtime_error", "output_reused",
}


def expected(problem):
    return tomllib.loads((problem.wrong_dir / "expected.toml").read_text())


def runtime_reasons(spec):
    value = spec.get("runtime", [])
    return {value} if isinstance(value, str) else set(value)


def fixture_params(runtime_only=False):
    """Every fixture; with `runtime_only`, those the static layer catches that also have a runtime
    verdict (a fixture whose whole-judge reason is a runtime one already runs the runtime there)."""
    for problem in PROBLEMS:
        for name, spec in expected(problem).items():
            if runtime_only and ("runtime" not in spec or spec["reason"] not in PRECEDENCE):
                continue
            static = spec["reason"] in PRECEDENCE
            marks = [pytest.mark.gpu] if spec.get("gpu") and (runtime_only or not static) else []
            if spec.get("timeout_s", 0) > 5 or not static or runtime_only:
                marks.append(pytest.mark.slow)
            yield pytest.param(problem, name, spec, id=f"{problem.key}/{name}", marks=marks)


def no_run(problem, code, **kwargs):
    raise AssertionError("a static reject must not start a sandbox")


def test_every_fixture_is_listed_with_a_known_reason():
    for problem in PROBLEMS:
        files = {p.name for p in problem.wrong_dir.iterdir() if p.suffix in (".py", ".md")}
        listed = expected(problem)
        assert files == set(listed), problem.key
        for spec in listed.values():
            assert {spec["reason"], *runtime_reasons(spec)} <= set(REASONS), spec


def test_fixtures_cover_every_required_reason():
    shown = {spec["reason"] for p in PROBLEMS for spec in expected(p).values()}
    shown |= {r for p in PROBLEMS for spec in expected(p).values() for r in runtime_reasons(spec)}
    assert REQUIRED <= shown, REQUIRED - shown


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize("problem,name,spec", fixture_params())
def test_fixture_gets_its_verdict(problem, name, spec):
    """The whole judge: static rules, the sandboxed run and, on a GPU, the checked timing."""
    answer = read_answer(problem.wrong_dir / name)
    static = spec["reason"] in PRECEDENCE
    device = _device() if spec.get("gpu") else "cpu"
    timer = GpuTimer(problem.kernel_path.read_text(), baselines=(), runs=30) if device == "cuda" else None
    kwargs = {"verifier": no_run} if static else {"timer": timer}
    # A format finding rejects in strict mode; without it the answer runs (test_format_apart_from_correctness).
    verdict = score_answer(answer, problem, device=device, timeout_s=spec.get("timeout_s", 120),
                           cases=spec.get("cases"), trials=1 if device == "cuda" else 0,
                           strict=spec["reason"] in FORMAT_REASONS, **kwargs)
    # A runtime cheat may be caught by any check its entry lists: which fires first depends on the cases.
    allowed = {spec["reason"]} if static else {spec["reason"]} | runtime_reasons(spec)
    assert not verdict.ok and verdict.reason in allowed, (verdict.reason, verdict.detail)
    assert verdict.reward == 0.0


@pytest.mark.parametrize("problem,name,spec", fixture_params(runtime_only=True))
def test_runtime_alone_catches_the_fixture(problem, name, spec):
    """The static layer skipped: the sandboxed run (and on a GPU the checked timing) must still reject."""
    from builder.judge.correctness import verify
    from builder.judge.rules import extract_code

    code = extract_code(read_answer(problem.wrong_dir / name)) or ""
    device = _device() if spec.get("gpu") else "cpu"
    result = verify(problem, code, device=device, timeout_s=spec.get("timeout_s", 120), cases=spec.get("cases"))
    reason = result.reason
    if result.ok and device == "cuda":
        timed = GpuTimer(problem.kernel_path.read_text(), baselines=(), runs=30, profile=False)(code, problem)
        reason = timed.reason
    assert reason in runtime_reasons(spec), (reason, result.detail if reason == result.reason else timed.detail)


def accepted_answers():
    for problem in PROBLEMS:
        folder = problem.dir / "accepted"
        if folder.is_dir():
            listing = tomllib.loads((folder / "expected.toml").read_text())
            for path in sorted(folder.iterdir()):
                if path.suffix in (".py", ".md"):
                    yield pytest.param(problem, path, listing[path.name], id=f"{problem.key}/accepted/{path.name}",
                                       marks=[pytest.mark.slow])


@pytest.mark.parametrize("problem,path,spec", accepted_answers())
def test_unusual_legitimate_answers_pass(problem, path, spec):
    """On the CPU: a pass, or the verdict `cpu` names (cpu_unverifiable: only a GPU can check it,
    reward 0); a correct answer that breaks the output rule `format` names is ok, reward reduced."""
    verdict = score_answer(read_answer(path), problem, device="cpu")
    if "cpu" in spec:
        assert (verdict.ok, verdict.reason, verdict.correct, verdict.reward) == (False, spec["cpu"], None, 0.0), \
            verdict.detail
        return
    assert verdict.ok and verdict.correct, (verdict.reason, verdict.detail)
    assert verdict.follows_rules == ("format" not in spec)
    assert verdict.reward == (FORMAT_SHARE if "format" in spec else 1.0)
    assert [f.reason for f in verdict.findings] == ([spec["format"]] if "format" in spec else [])


def accepted_params():
    """One param per distinct solution code: a kept stage's file is the same bytes as the stage
    before it, so one verdict covers both (the id names every stage that shares it)."""
    for problem in PROBLEMS:
        stages: dict[bytes, list[str]] = {}
        for stage, path in problem.solutions.items():
            stages.setdefault(path.read_bytes(), []).append(stage)
        for names in stages.values():
            slow = [pytest.mark.slow] if problem.key != "avgpool1d" else []
            yield pytest.param(problem, problem.solutions[names[0]], id=f"{problem.key}/{'+'.join(names)}", marks=slow)


@pytest.mark.parametrize("problem,path", accepted_params())
def test_solutions_are_accepted(problem, path):
    verdict = score_answer(read_answer(path), problem, device="cpu")
    assert verdict.ok, (verdict.reason, verdict.detail)
    assert verdict.reward == 1.0
    assert {c.name for c in problem.cases} <= set(verdict.errors)
    assert any(name.startswith("space_") for name in verdict.errors)  # checks drawn from the input space ran


@pytest.mark.slow
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.key)
def test_seed_kernels_are_correct_unless_their_manifest_says_why_not(problem):
    """A seed kernel is the origin's code, verbatim: data, not an answer, so it need not follow the
    output rules (the 3-D seed falls back to PyTorch off the GPU). It must compute the right thing,
    or its manifest must say why it does not (`seed_fails`), and then the judge must find it."""
    from builder.judge.correctness import verify

    result = verify(problem, problem.kernel_path.read_text(), device="cpu", timeout_s=300)
    if problem.seed_fails is None:
        assert result.ok, (result.reason, result.detail)
    else:
        assert not result.ok, f"{problem.key}: seed_fails says '{problem.seed_fails}', but the seed passed"


def fake(result):
    calls = []

    def check(problem, code, **kwargs):
        calls.append((problem, code, kwargs))
        return result

    return check, calls


def test_run_failures_become_verdicts():
    check, calls = fake(VerifyResult(False, "timeout", "no answer within 5 s", 1e-4, 1e-4))
    verdict = score_answer(read_answer(P1.kernel_path), P1, timeout_s=5, verifier=check)
    assert (verdict.ok, verdict.reason, verdict.reward) == (False, "timeout", 0.0)
    _, code, kwargs = calls[0]
    assert (kwargs["timeout_s"], kwargs["device"], kwargs["trials"]) == (5, "cpu", 0)
    assert code.startswith("import torch")


def test_cuda_runs_benchmark_trials_and_timer_adds_a_bonus():
    case = CaseResult("padded_stride1", (2, 3, 37), True, None, "", 1e-7, 1e-6, 0.25)
    check, calls = fake(VerifyResult(True, None, "", 1e-4, 1e-4, (case,)))
    verdict = score_answer(read_answer(P1.kernel_path), P1, device="cuda", verifier=check,
                           timer=lambda code, problem: Timed({"current": 2.0, "eager": 3.0}))
    assert calls[0][2]["trials"] == 5
    assert verdict.ok and verdict.speedups == {"current": 2.0, "eager": 3.0}
    assert verdict.reward == pytest.approx(1.0 + math.log10(2.0))
    assert verdict.errors == {"padded_stride1": {"max_abs_err": 1e-7, "max_rel_err": 1e-6, "seconds": 0.25}}


def test_a_timing_reject_is_a_reject():
    check, _ = fake(VerifyResult(True, None, "", 1e-4, 1e-4))
    verdict = score_answer(read_answer(P1.kernel_path), P1, device="cuda", verifier=check,
                           timer=lambda code, problem: Timed({"eager": 40.0}, "suspect_speedup", "40x"))
    assert (verdict.ok, verdict.reason, verdict.reward) == (False, "suspect_speedup", 0.0)


def test_reward_shape():
    assert reward(False, {"current": 5.0}) == 0.0
    assert reward(True, {}) == 1.0
    assert reward(True, {"current": 0.5}) == 1.0
    assert reward(True, {"current": 1000.0}) == pytest.approx(2.0)


@pytest.mark.parametrize("speedup", [None, 0.5, 2.0, 9.9, 1000.0])
def test_a_format_slip_scores_between_a_reject_and_any_compliant_answer(speedup):
    speedups = {} if speedup is None else {"current": speedup}
    slipped = reward(True, speedups, follows_rules=False)
    assert reward(False, speedups) < slipped < reward(True, {}) <= reward(True, speedups)
    assert slipped == pytest.approx(FORMAT_SHARE * reward(True, speedups))


def test_format_apart_from_correctness():
    """A correct answer whose helper sits above its kernel: ok and correct, follows_rules false, a
    reduced reward; with strict, a reject that never runs."""
    from builder.judge.correctness import VerifyResult

    code = read_answer(P1.kernel_path).replace("@triton.jit\n", "def helper():\n    return 1\n\n\n@triton.jit\n", 1)
    check, calls = fake(VerifyResult(True, None, "", 1e-4, 1e-4))
    lenient = score_answer(code, P1, verifier=check)
    assert (lenient.ok, lenient.correct, lenient.follows_rules, lenient.reason) == (True, True, False, None)
    assert lenient.reward == FORMAT_SHARE and [f.reason for f in lenient.findings] == ["rule_order"]
    strict = score_answer(code, P1, verifier=no_run, strict=True)
    assert (strict.ok, strict.reason, strict.correct, strict.reward) == (False, "rule_order", None, 0.0)
    wrong = score_answer(code, P1, verifier=fake(VerifyResult(False, "mismatch", "off", 1e-4, 1e-4))[0])
    assert (wrong.ok, wrong.correct, wrong.follows_rules, wrong.reward) == (False, False, False, 0.0)


def test_a_format_finding_never_lets_unchecked_code_run():
    """Forbidden sections are blanked from the code the judge runs, whatever they hold."""
    check, calls = fake(VerifyResult(True, None, "", 1e-4, 1e-4))
    code = read_answer(P1.kernel_path).replace("```\n", "\nif __name__ != '__main__':\n    import os\n"
                                                         "    os.system('echo hi')\n```\n")
    verdict = score_answer(code, P1, verifier=check)
    ran = calls[0][1]
    assert "os.system" not in ran and "__main__" not in ran and ran.count("\n") >= code.count("\n") - 3
    assert verdict.correct and not verdict.follows_rules


def test_a_cpu_unverifiable_answer_gets_the_unverifiable_reward():
    check, _ = fake(VerifyResult(False, "cpu_unverifiable", "no driver", 1e-4, 1e-4))
    verdict = score_answer(read_answer(P1.kernel_path), P1, verifier=check)
    assert (verdict.ok, verdict.reason, verdict.correct, verdict.reward) == (False, "cpu_unverifiable", None, 0.0)


def test_verdict_to_dict_is_json_ready():
    import json

    verdict = score_answer("no code", P1, verifier=no_run)
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["reason"] == "no_code_block" and data["findings"][0][0] == "no_code_block"
    assert isinstance(verdict, Verdict) and data["reward"] == 0.0


def test_reward_fn_takes_strings_messages_and_problem_columns():
    bad = read_answer(P1.wrong_dir / "os_system.py")
    messages = [{"role": "assistant", "content": bad}]
    assert reward_fn([bad, messages], problem=["avgpool1d", {"key": "avgpool2d"}]) == [0.0, 0.0]
    assert reward_fn([bad], problem_key="avgpool1d") == [0.0]
    assert reward_fn([bad], id=["avgpool1d/grid_and_parallel/h100"]) == [0.0]
    with pytest.raises(ValueError):
        reward_fn([bad])


def test_reward_fn_rewards_a_correct_answer():
    assert reward_fn([read_answer(P1.kernel_path)], problem_key=["avgpool1d"]) == [1.0]


def test_read_answers_from_jsonl(tmp_path):
    import json

    from builder.judge.score import read_answers

    path = tmp_path / "answers.jsonl"
    lines = ["plain text", {"completion": "a"}, {"messages": [{"role": "user", "content": "q"},
                                                            {"role": "assistant", "content": "b"}]},
             {"content": "c"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert read_answers(path) == ["plain text", "a", "b", "c"]
    path.write_text("{broken\n")
    with pytest.raises(ValueError, match="answers.jsonl:1"):
        read_answers(path)
    assert read_answers(P1.wrong_dir / "no_code_block.md")[0].startswith("The kernel")


@pytest.mark.slow
def test_a_batch_gets_the_verdicts_each_answer_gets_alone():
    from builder.judge.score import score_batch

    answers = [read_answer(P1.kernel_path), read_answer(P1.wrong_dir / "count_include_pad.py"),
               read_answer(P1.wrong_dir / "os_system.py")]
    alone = [score_answer(a, P1, device="cpu") for a in answers]
    together = score_batch(answers, [P1] * 3, device="cpu", timers=[None] * 3, parallel=3)
    expect = [(True, None), (False, "mismatch"), (False, "system_access")]
    assert [(v.ok, v.reason) for v in alone] == [(v.ok, v.reason) for v in together] == expect
    assert together[0].phases["start"] > 0 and together[0].phases["checks"] > 0


def test_a_batchs_timers_prepare_while_the_answers_are_checked_and_before_any_timing_run(monkeypatch):
    """The trusted codes' warm-up and an ncu sandbox started ahead overlap the checks; no timing
    run starts while a warm-up may use the GPU."""
    import threading
    import time

    from builder.judge import runner, score

    events = []
    lock = threading.Lock()

    def note(what):
        with lock:
            events.append((what, time.monotonic()))

    def checked(answer, problem, **kwargs):
        note("check")
        time.sleep(0.3)
        note("checked")
        return Verdict(True, None, "")

    def prepare(self, problem):
        note("prepare")
        time.sleep(0.6 if problem.key == P1.key else 0.1)
        note(f"prepared {problem.key}")
        return {}

    monkeypatch.setattr(score, "score_answer", checked)
    monkeypatch.setattr(score, "check_answer", lambda answer, sizes: (answer, []))
    monkeypatch.setattr(GpuTimer, "prepare", prepare)
    monkeypatch.setattr(GpuTimer, "keep_ahead", lambda self: note("ahead"))
    monkeypatch.setattr(runner, "keep_spares", lambda device, count, wrap=None: note(f"keep {device} {count}"))
    monkeypatch.setattr(GpuTimer, "__call__", lambda self, code, problem: (note("timed"), Timed({"current": 2.0}))[1])
    p2 = get_problem("avgpool2d")
    verdicts = score.score_batch(["a", "b", "c"], [P1, p2, P1], device="cuda", parallel=3,
                                 timers=[GpuTimer("current"), GpuTimer("current"), None])
    assert [v.speedups for v in verdicts] == [{"current": 2.0}, {"current": 2.0}, {}]
    when = {}
    for what, at in events:
        when.setdefault(what, []).append(at)
    assert len(when["ahead"]) == 2 and len(when["prepare"]) == 2 and len(when["timed"]) == 2
    assert min(when["prepare"]) < max(when["checked"])  # beside the checks, not after them
    assert min(when["timed"]) >= max(when[f"prepared {P1.key}"] + when[f"prepared {p2.key}"])
    assert max(when["checked"]) <= min(when["keep cuda 1"]) <= min(when["timed"])  # one spare between timing runs
    events.clear()
    score.score_batch(["a"], [P1], device="cuda", parallel=3, timers=[GpuTimer("current")])
    assert "keep cuda 1" not in {what for what, _ in events}  # one answer: its timing session would not find it ready


def test_a_batch_says_as_each_answers_checks_and_timing_run_end(monkeypatch):
    """A long batch shows progress: a line per answer checked, then per answer timed, with the
    seconds of its timing run by phase (not the checks' again)."""
    from builder.judge import runner, score

    def checked(answer, problem, **kwargs):
        if answer == "bad":
            return Verdict(False, "mismatch", "off", phases={"checks": 2.0})
        return Verdict(True, None, "", phases={"checks": 3.0})

    monkeypatch.setattr(score, "score_answer", checked)
    monkeypatch.setattr(score, "check_answer", lambda answer, sizes: (answer, []))
    monkeypatch.setattr(GpuTimer, "prepare", lambda self, problem: {})
    monkeypatch.setattr(GpuTimer, "keep_ahead", lambda self: None)
    monkeypatch.setattr(runner, "keep_spares", lambda device, count, wrap=None: None)
    monkeypatch.setattr(GpuTimer, "__call__", lambda self, code, problem: Timed({"current": 2.0},
                                                                               phases={"timing": 1.5, "ncu": 0.7}))
    lines = []
    score.score_batch(["good", "bad"], [P1, P1], device="cuda", parallel=2, timers=[GpuTimer("current")] * 2,
                      progress=lines.append)
    said = sorted(re.sub(r"^\[[0-9.]+s\] ", "", re.sub(r"\([0-9.]+ s", "(", line)) for line in lines)
    assert said == ["checked 1/2: ok ()", "checked 2/2: mismatch ()", "timed 1/2: ok (, timing 1.5, ncu 0.7)"], lines
    assert lines[-1].split("] ")[1].startswith("timed")  # after every check


def test_a_timers_warm_up_runs_once_per_problem_and_code_however_many_threads_ask(monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from builder.judge import score, timing

    calls = []
    monkeypatch.setattr(score, "_WARMED", set())
    monkeypatch.setattr(timing, "warm_up", lambda problem, warm, phases, **kw: (calls.append(problem.key), time.sleep(0.3)))
    timer = GpuTimer("current code", baselines=("eager",))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(timer.prepare, [P1] * 4))
    assert calls == [P1.key]
    GpuTimer("another current code").prepare(P1)
    assert calls == [P1.key, P1.key]


def test_a_failed_warm_up_is_tried_again_then_left_to_the_timing_sessions(monkeypatch):
    from builder.judge import score, timing

    calls = []
    monkeypatch.setattr(score, "_WARMED", set())
    monkeypatch.setattr(score, "_TRIED", {})
    monkeypatch.setattr(timing, "warm_up", lambda problem, warm, phases, **kw: calls.append(problem.key) and False)
    timer = GpuTimer("current code")
    for _ in range(4):
        timer.prepare(P1)
    assert calls == [P1.key] * score.WARM_UP_TRIES


def test_an_empty_batch_is_judged_without_a_look_at_the_gpu(monkeypatch):
    import torch

    from builder.judge import score

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: pytest.fail("no batch, no GPU"))
    assert score.judge_batch([], [], [], device="cuda") == [] == score.judge_batch([], [], [], device="cpu")


def test_a_gpu_judge_checks_by_its_cpus_and_lets_through_as_many_trials_as_its_memory_holds(monkeypatch):
    import torch

    from builder.judge import score
    from builder.measure import bytes_moved

    def sets(free_gib, checks, kept):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (free_gib * 1024**3, 80 * 1024**3))
        return score.trial_sets([P1], checks, kept=kept)

    assert bytes_moved(P1) > 4 * 1024**3  # avg-pool 1D's benchmark input and output: 4.3 GB
    assert sets(80, 8, 2) >= 8  # an H100: every answer checked at once may hold its trials' tensors
    assert sets(22, 8, 2) == 1  # a 24 GB card: one at a time, beside eight checking sandboxes
    assert sets(4, 8, 2) == 1  # never none
    monkeypatch.setenv("KP_GPU_MEMORY_GIB", "22")
    assert sets(80, 8, 2) == 1  # an H100 acting as the 24 GB card
    monkeypatch.delenv("KP_GPU_MEMORY_GIB")
    assert sets(80, 8, 1) > sets(80, 8, 2) and sets(80, 1, 2) > sets(80, 16, 2)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert score.gpu_checks(None) == 8 and score.gpu_checks(3) == 3
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert score.gpu_checks(None) == 1

    gates = []
    monkeypatch.setattr(score, "score_answer", lambda answer, problem, gate=None, **kw: (gates.append(gate),
                                                                                           Verdict(False, "x", ""))[1])
    score.score_batch(["a", "b"], [P1, P1], device="cuda", timers=[None, None], parallel=2, trial_sets=1)
    assert gates[0] is gates[1] is not None  # one gate for the batch
    gates.clear()
    score.score_batch(["a", "b"], [P1, P1], device="cuda", timers=[None, None], parallel=2, trial_sets=2)
    assert gates == [None, None]  # room for every answer's trials: no gate
