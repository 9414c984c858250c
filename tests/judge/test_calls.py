"""The judge's calls on problems of every shape (fixture problems under tests/fixtures/problems):
several inputs, integer inputs, a 0-dim output, learned parameters and a running buffer; inputs
laid out as a user's, fills that vary, both modes, autograd on and off, long rows, NaN. Each
known-bad answer must get its reason; each correct one must pass."""

import math
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from builder.judge.correctness import verify
from builder.judge.reasons import REASONS
from builder.seeds import load_problem

FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"
PROBLEMS = {folder.name: load_problem(folder) for folder in sorted(FIXTURES.iterdir()) if folder.is_dir()}


def expected(problem):
    return tomllib.loads((problem.dir / "wrong" / "expected.toml").read_text())


def reasons(spec):
    return {spec["reason"]} if isinstance(spec["reason"], str) else set(spec["reason"])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PROBLEMS))
def test_a_correct_answer_passes_every_check(key):
    problem = PROBLEMS[key]
    result = verify(problem, problem.kernel_path.read_text(), device="cpu", timeout_s=300)
    assert result.ok, (result.reason, result.detail)
    names = [c.name for c in result.cases]
    first = problem.cases[0].name
    assert names[:3] == [first, f"{first} (second input)", f"{first} (third input, the second one's tensors with their values reversed)"]
    assert sum(name.startswith("space_") for name in names) >= 6


def wrong_answers():
    for key, problem in PROBLEMS.items():
        for name, spec in expected(problem).items():
            yield pytest.param(problem, name, spec, id=f"{key}/{name}")


def test_the_input_model_reasons_each_have_a_known_bad_answer_here():
    shown = {r for problem in PROBLEMS.values() for spec in expected(problem).values() for r in reasons(spec)}
    assert {"missing_parameter", "output_reused", "wrong_shape", "mismatch"} <= shown


@pytest.mark.slow
@pytest.mark.parametrize("problem,name,spec", wrong_answers())
def test_a_known_bad_answer_gets_its_reason(problem, name, spec):
    assert reasons(spec) <= set(REASONS)
    result = verify(problem, (problem.dir / "wrong" / name).read_text(), device="cpu", timeout_s=300)
    assert not result.ok and result.reason in reasons(spec), (result.reason, result.detail)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "reason"), [("kernel.py", None), ("wrong/offset_only.py", "mismatch")])
def test_benchmark_trials_draw_in_the_sandbox_and_the_referee_alike(name, reason):
    """Trials (on a GPU in production; here on the CPU, at the fixture's small benchmark size): the
    sandbox and the referee draw the inputs from the same seeds, in plain and guarded layouts in
    turn, so an answer right only at a storage offset fails one of two trials."""
    problem = PROBLEMS["relu"]
    result = verify(problem, (problem.dir / name).read_text(), device="cpu", timeout_s=300, cases=[], trials=2)
    if reason is None:
        assert result.ok, (result.reason, result.detail)
        assert [c.name for c in result.cases] == ["benchmark_0", "benchmark_1"]
    else:
        assert result.reason in (reason, "uninitialized_output", "nan_inf"), (result.reason, result.detail)


def test_benchmark_size_results_reach_the_judge_as_sealed_memory_files(monkeypatch):
    """The referee's references and the sandbox's outputs of two trials, each over 1 MiB, come as
    memory files the judge maps (builder.judge.channel), from processes started as in production."""
    from builder.judge import channel

    mapped = []
    take = channel._mapped
    monkeypatch.setattr(channel, "_mapped", lambda share, nbytes: mapped.append(nbytes) or take(share, nbytes))
    problem = PROBLEMS["relu"]
    result = verify(problem, problem.kernel_path.read_text(), device="cpu", timeout_s=300, cases=[], trials=2)
    assert result.ok, (result.reason, result.detail)
    size = 4 * math.prod(problem.benchmark_case.shape)
    assert size >= channel.SHARE_MIN_BYTES and mapped == [size] * 4


@pytest.mark.slow
def test_verifications_at_once_take_turns_at_their_trials_each_until_its_session_closed(monkeypatch):
    """A gate of one (a GPU with room for one benchmark input and output besides the checks):
    three verifications check at once, their trials one at a time."""
    import threading
    import time

    from builder.judge.calls import Caller
    from builder.judge.runner import SandboxSession

    problem = PROBLEMS["relu"]
    spans, lock = [], threading.Lock()
    real_trial, real_close = Caller.trial, SandboxSession.close

    def trial(self, index, *args):
        with lock:
            spans.append((threading.get_ident(), "trial", time.monotonic()))
        return real_trial(self, index, *args)

    def close(self):
        real_close(self)
        with lock:
            spans.append((threading.get_ident(), "closed", time.monotonic()))

    monkeypatch.setattr(Caller, "trial", trial)
    monkeypatch.setattr(SandboxSession, "close", close)
    gate = threading.BoundedSemaphore(1)
    code = problem.kernel_path.read_text()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: verify(problem, code, device="cpu", timeout_s=300, cases=[problem.cases[0].name],
                                                 trials=2, gate=gate), range(3)))
    assert all(r.ok for r in results), [(r.reason, r.detail) for r in results]
    turns = {}
    for thread, what, at in spans:
        turns.setdefault(thread, {}).setdefault(what, []).append(at)
    held = sorted((min(t["trial"]), max(t["closed"])) for t in turns.values())
    assert len(held) == 3 and all(end <= start for (_, end), (start, _) in zip(held, held[1:]))  # one at a time
    assert gate.acquire(blocking=False) and not gate.acquire(blocking=False)  # every turn given back, once
    gate.release()


def test_a_verification_that_ends_withdraws_its_request_still_waiting_for_the_referee():
    """Referee work for a verification that is over would run on into whatever follows it (a timing
    run): a request the referee has not taken up is dropped, and `end` returns once it is."""
    import random
    import time

    from builder.judge import referee
    from builder.judge.correctness import _Referral

    with referee._service.lock:  # the referee busy with another request
        referral = _Referral(PROBLEMS["relu"], 1, random.Random(0), "cpu")
        time.sleep(0.2)
        started = time.monotonic()
        referral.end()
        assert time.monotonic() - started < 2.0
    assert isinstance(referral.failure(), referee.Withdrawn)


def test_the_referee_computes_every_output_of_a_multi_input_reference_from_the_seeds():
    import torch

    from builder.judge.inputs import PlacedInputs
    from builder.judge.loader import load_module
    from builder.judge.plan import seeded_specs
    from builder.judge.reference import Build, build, call
    from builder.judge.referee import compute
    from builder.manifest import Input

    problem = PROBLEMS["rowloss"]
    inputs = (Input("predictions", (6, 50), "float32", -1.0, 1.0), Input("targets", (6,), "int64", 0, 50))
    specs = seeded_specs(inputs, 9)
    trials = [{"inputs": specs, "layout": layout, "mode": "train", "grad": grad}
              for layout, grad in (("plain", True), ("guarded", False))]
    groups, outputs = [], []
    reply = compute({"problem_dir": str(problem.dir), "hash_key": 3, "build": Build({}, 1, 2).to_spec(),
                     "trials": trials, "timing": None, "device": "cpu"},
                    lambda group, outs: (groups.append(group), outputs.extend(outs)))
    placed = PlacedInputs(specs, "plain", "cpu")
    assert bool((placed.tensors[1] < 50).all()) and placed.tensors[1].dtype == torch.int64
    model, _ = build(load_module(problem.reference_path), Build({}, 1, 2))
    expected, _ = call(model, placed.tensors)
    assert torch.equal(outputs[0].view(torch.float32).reshape(()), expected[0])
    scale = abs(float(expected[0]))  # what the judge's compare uses for the absolute part
    assert scale > 0
    assert groups == [{"sequence": False, "outputs": [{"shape": [], "dtype": "float32", "scale": scale}]}] * 2
    assert len(outputs) == 2 and torch.equal(outputs[0], outputs[1])
    assert reply["trials"][0]["input_hashes"] == placed.fingerprints(3) == reply["trials"][1]["input_hashes"]


def test_a_referee_that_fails_after_sending_some_outputs_fails_the_request_and_serves_the_next():
    """The referee sends each trial's outputs as it computes them: a later trial's failure is still
    the request's answer, read in step, and the referee goes on with the next request."""
    import torch

    from builder.judge.plan import seeded_specs
    from builder.judge.reference import Build
    from builder.judge.referee import ask_referee
    from builder.judge.runner import SandboxDied
    from builder.manifest import Input

    problem = PROBLEMS["rowloss"]
    good = {"inputs": seeded_specs((Input("predictions", (6, 50), "float32", -1.0, 1.0),
                                    Input("targets", (6,), "int64", 0, 50)), 9), "layout": "plain", "mode": "train"}
    bad = {**good, "inputs": good["inputs"][:1]}  # forward is missing its second input
    build = Build({}, 1, 2).to_spec()
    with pytest.raises(SandboxDied, match="the referee failed"):
        ask_referee(problem, 3, build=build, trials=[good, bad], device="cpu", timeout_s=120)
    reply = ask_referee(problem, 3, build=build, trials=[good, good], device="cpu", timeout_s=120)
    assert len(reply["groups"]) == len(reply["outputs"]) == 2 and reply["ok"]
    assert torch.equal(reply["outputs"][0][0], reply["outputs"][1][0]) and reply["outputs"][0][0].shape == ()


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "reason"), [("kernel", None), ("float32_output", "wrong_dtype")])
def test_where_the_space_lists_another_dtype_the_output_takes_the_references(tmp_path, answer, reason):
    import shutil

    folder = tmp_path / "relu"
    shutil.copytree(FIXTURES / "relu", folder)
    manifest = folder / "manifest.toml"
    manifest.write_text(manifest.read_text().replace('shape = ["N", "L"]', 'shape = ["N", "L"]\ndtypes = ["float16"]'))
    problem = load_problem(folder)
    code = problem.kernel_path.read_text()
    if answer == "float32_output":
        code = code.replace("y = torch.empty_like(x)", "y = torch.empty(x.shape, dtype=torch.float32, device=x.device)")
    result = verify(problem, code, device="cpu", timeout_s=300)
    assert result.reason == reason, (result.reason, result.detail)
    if reason is None:
        assert sum(c.name.startswith("space_") for c in result.cases) >= 4


def test_the_referee_computes_while_the_sandbox_runs_the_small_checks(monkeypatch):
    """The referee is asked as the verification starts and read when the first trial needs it: its
    request is still open when the sandbox loads the code. The trials count as `trials`."""
    import threading

    from builder.judge import correctness

    problem = PROBLEMS["relu"]
    loaded = threading.Event()
    real_ask, real_load = correctness.ask_referee, correctness._load

    def ask(*args, **kwargs):
        assert loaded.wait(60), "the sandbox loaded nothing while the referee's request was open"
        return real_ask(*args, **kwargs)

    def load(*args, **kwargs):
        loaded.set()
        return real_load(*args, **kwargs)

    monkeypatch.setattr(correctness, "ask_referee", ask)
    monkeypatch.setattr(correctness, "_load", load)
    result = verify(problem, (problem.dir / "kernel.py").read_text(), device="cpu", timeout_s=300,
                    cases=[problem.cases[0].name], trials=1)
    assert result.ok, (result.reason, result.detail)
    assert [c.name for c in result.cases][-1] == "benchmark_0"
    assert result.phases["trials"] > 0


def test_a_referee_failure_is_every_trusted_codes_verdict_without_more_sessions(monkeypatch):
    from builder.judge import correctness
    from builder.judge.runner import SandboxDied, SandboxSession

    problem = PROBLEMS["relu"]
    starts = []
    real_start = SandboxSession.start

    def start(self):
        starts.append(self)
        return real_start(self)

    def ask(*args, **kwargs):
        raise SandboxDied("crash", "the referee failed: out of memory")

    monkeypatch.setattr(correctness, "ask_referee", ask)
    monkeypatch.setattr(SandboxSession, "start", start)
    code = (problem.dir / "kernel.py").read_text()
    batch = correctness.verify_codes(problem, {"a": code, "b": code, "c": code}, device="cpu", timeout_s=300,
                                     cases=[problem.cases[0].name], trials=1)
    assert {label: (r.ok, r.reason, r.detail) for label, r in batch.results.items()} == {
        label: (False, "crash", "the referee failed: out of memory") for label in "abc"}
    assert len(starts) == 1


def test_a_trial_takes_its_references_scale_from_the_referee(monkeypatch):
    """The referee knows max|ref| where the reference lies (on a GPU, its own): the judge does not
    pass a benchmark-size reference over once more to find it."""
    from builder.judge import compare

    problem = PROBLEMS["relu"]
    scaled = []
    real = compare.reference_scale
    monkeypatch.setattr(compare, "reference_scale", lambda ref: scaled.append(ref.numel()) or real(ref))
    result = verify(problem, (problem.dir / "kernel.py").read_text(), device="cpu", timeout_s=300, cases=[], trials=2)
    assert result.ok, (result.reason, result.detail)
    assert [c.name for c in result.cases] == ["benchmark_0", "benchmark_1"]
    assert scaled == []


def test_trusted_codes_checked_at_once_keep_their_own_verdicts_and_take_turns_at_the_trials(monkeypatch):
    """With sessions above 1, each code has a session of its own and they run together; one code's
    benchmark-size trials at a time; each verdict is the one it gets alone."""
    import threading
    import time

    from builder.judge import correctness
    from builder.judge.calls import Caller
    from builder.judge.runner import SandboxSession

    problem = PROBLEMS["relu"]
    lock, live, most = threading.Lock(), {"sessions": 0, "trials": 0}, {"sessions": 0, "trials": 0}

    def counted(kind, real):
        def wrapper(*args, **kwargs):
            with lock:
                live[kind] += 1
                most[kind] = max(most[kind], live[kind])
            try:
                if kind == "trials":
                    time.sleep(0.5)  # long enough for another code's trial to start if nothing stopped it
                return real(*args, **kwargs)
            finally:
                with lock:
                    live[kind] -= 1
        return wrapper

    real_start, real_close = SandboxSession.start, SandboxSession.close

    def start(self):
        with lock:
            live["sessions"] += 1
            most["sessions"] = max(most["sessions"], live["sessions"])
        return real_start(self)

    def close(self):
        if self.proc is not None and getattr(self, "_counted_close", False) is False:
            self._counted_close = True
            with lock:
                live["sessions"] -= 1
        time.sleep(0.5)  # a slow close: another code's trials must not start during it
        result = real_close(self)
        events.append((time.monotonic(), "closed", id(self)))
        return result

    def trial(self, *args, **kwargs):
        events.append((time.monotonic(), "trial", id(self.session)))
        return real_trial(self, *args, **kwargs)

    events, real_trial = [], Caller.trial

    monkeypatch.setattr(SandboxSession, "start", start)
    monkeypatch.setattr(SandboxSession, "close", close)
    monkeypatch.setattr(Caller, "trial", counted("trials", trial))
    codes = {"kernel": (problem.dir / "kernel.py").read_text(),
             "offset_only": (problem.dir / "wrong" / "offset_only.py").read_text(),
             "drops_nan": (problem.dir / "wrong" / "drops_nan.py").read_text()}
    batch = correctness.verify_codes(problem, codes, device="cpu", timeout_s=300, cases=[problem.cases[0].name],
                                     trials=2, sessions=3)
    in_batch = sorted(events)  # the batch's: the checks alone below add their own
    alone = {label: verify(problem, code, device="cpu", timeout_s=300, cases=[problem.cases[0].name], trials=2)
             for label, code in codes.items()}
    assert {label: r.ok for label, r in batch.results.items()} == {label: r.ok for label, r in alone.items()}
    assert batch.results["kernel"].ok and not batch.results["offset_only"].ok
    assert batch.results["offset_only"].reason in ("mismatch", "uninitialized_output", "nan_inf")  # by the fill drawn
    assert [c.name for c in batch.results["kernel"].cases][-2:] == ["benchmark_0", "benchmark_1"]
    assert most["sessions"] >= 2 and most["trials"] == 1
    # A session's turn at the trials lasts from its first trial until it closed (its memory freed).
    spans = {}
    for when, what, session in in_batch:
        if what == "trial":
            spans.setdefault(session, [when, None])
        elif session in spans:
            spans[session][1] = when
    spans = sorted(spans.values())
    assert len(spans) >= 2 and all(a[1] is not None and a[1] <= b[0] for a, b in zip(spans, spans[1:]))
