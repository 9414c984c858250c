import contextlib
import types
from pathlib import Path

import pytest

from builder.judge.timing import HOST_PARTS, TIMING_KEYS, bandwidth, summarize


def test_summary_has_median_min_max_and_count():
    stats = summarize([3.0, 1.0, 2.0, 10.0])
    assert tuple(stats) == TIMING_KEYS
    assert stats == {"median_ms": 2.5, "min_ms": 1.0, "max_ms": 10.0, "runs": 4}


def test_bandwidth_is_gigabytes_per_second():
    assert bandwidth(3_000_000_000, 1.0) == 3000.0


def test_perturbation_rewrites_one_slab_the_same_way_in_every_replay():
    import torch

    from builder.judge.timing import PERTURB_ELEMENTS, perturb

    base = torch.zeros(50_000)
    first, again, other = base.clone(), base.clone(), base.clone()
    perturb(first, seed=7, index=3, low=1.0, high=2.0)
    perturb(again, seed=7, index=3, low=1.0, high=2.0)
    perturb(other, seed=7, index=4, low=1.0, high=2.0)
    assert torch.equal(first, again) and not torch.equal(first, other)
    changed = (first != 0).nonzero().flatten()
    assert len(changed) == PERTURB_ELEMENTS and int(changed[-1] - changed[0]) == PERTURB_ELEMENTS - 1


def test_the_timed_loop_spins_before_the_start_event_and_settles_after_the_end_event():
    from builder.judge.timing import Clock

    log: list[str] = []
    clock = Clock.__new__(Clock)  # the loop alone: its CUDA calls replaced by stand-ins that log
    clock.event = lambda: object()
    clock.record = lambda event: log.append("event")
    clock.synchronize = lambda: log.append("sync")
    clock.flush = lambda: log.append("flush")
    clock.spin = lambda ms: log.append(f"spin {ms:g}")
    clock.elapsed_ms = lambda start, end: 1.0
    times = clock.time(lambda: log.append("call"), warmup=1, runs=2, before=lambda i: log.append(f"before {i}"),
                       after=lambda i: log.append(f"after {i}"), lead_ms=5.0)
    assert times == [1.0, 1.0] and clock.leads == [1.0, 1.0]
    run = ["flush", "event", "spin 5", "event", "call", "event"]
    assert log == ["call", "after -1", "sync", "before 0", *run, "after 0", "before 1", *run, "after 1", "sync"]


def test_the_collector_frees_an_output_a_reference_cycle_holds_once_over_the_limit():
    import gc
    import weakref

    import torch

    from builder.judge.timing import CycleCollector

    class Frame:  # as a frame that a caught exception's traceback keeps: it refers to itself
        pass

    def make() -> weakref.ref:
        held = Frame()
        held.self, held.output = held, torch.ones(4)
        return weakref.ref(held.output)

    gc.disable()
    try:
        kept = make()
        CycleCollector(100, lambda: 50)()  # under the limit: nothing is collected
        assert kept() is not None
        CycleCollector(100, lambda: 150 if kept() is not None else 0)()
        assert kept() is None
    finally:
        gc.enable()


def test_a_collection_that_frees_nothing_raises_the_limit_instead_of_running_after_every_call(monkeypatch):
    from builder.judge import timing

    runs = []
    monkeypatch.setattr(timing.gc, "collect", lambda generation=2: runs.append(generation))
    held = [612]  # one output of 4 bytes, which the allocator counts as 512, over a limit of 100 + 4
    collect = timing.CycleCollector(104, lambda: held[0])
    for _ in range(5):
        collect()
    assert runs == [1, 2] and collect.limit == 612  # one futile collection, not one per call
    held[0] += 512  # one more output held: collected again
    collect()
    assert runs == [1, 2, 1, 2]


class _Guards:
    """The guards of a sandbox that finds nothing wrong."""

    @contextlib.contextmanager
    def watch(self):
        yield None

    @contextlib.contextmanager
    def unpoisoned(self):
        yield

    def verdict(self, record):
        return None


def _sandbox(model):
    """What time_subjects reads of a sandbox session on the CPU, with `model` built as "m"."""
    from builder.judge.timing import Clock

    return types.SimpleNamespace(clock=Clock("cpu"), device="cpu", guards=_Guards(), models={"m": model},
                                 baselines={}, bench=None, perturbed=0, kept={}, slots=[])


def test_a_checked_runs_outputs_leave_for_host_buffers_made_ahead_and_its_own_are_poisoned():
    """The outputs of the runs the judge checks are copied into host buffers made in the request
    before the batch, with the perturbation count they ran at and each copy's event time; the
    output the code returned is then poisoned like any other, so it holds nothing for the judge."""
    import torch

    from builder.judge.poison import untouched
    from builder.judge.timing import time_subjects

    seen, returned = [], []

    def model(x):
        seen.append(x.clone())
        returned.append(x * 2)
        return returned[-1]

    sandbox = _sandbox(model)
    header = {"inputs": [{"shape": [64], "dtype": "float32", "low": 0.0, "high": 1.0, "seed": 5}], "seed": 9,
              "expect": [{"shape": [64], "dtype": "float32"}], "poison": ["sentinel", 0],
              "subjects": [{"label": "answer", "kind": "code", "name": "m", "trusted": False}]}
    time_subjects(sandbox, {**header, "runs": 0, "warmup": 1, "perturb": False, "reserve": 2})
    made = [slot[0].data_ptr() for slot in sandbox.slots]
    assert len(made) == 2
    reply = time_subjects(sandbox, {**header, "runs": 4, "warmup": 0, "keep": [1, 3]})
    result = reply["subjects"]["answer"]
    assert len(result["kept_ms"]) == 2 and all(ms >= 0 for ms in result["kept_ms"]) and "keep" in result["host_ms"]
    assert sorted(sandbox.kept) == [1, 3] and [sandbox.kept[i][1] for i in (1, 3)] == [2, 4]
    inputs, outputs = seen[1:], returned[1:]  # the timed calls, after the warm-up call
    for run, slot in zip((1, 3), made):
        (kept,), _ = sandbox.kept[run]
        assert kept.data_ptr() == slot and kept.device.type == "cpu"
        assert torch.equal(kept, inputs[run] * 2)  # the output of that run, on its perturbed input
        assert untouched(outputs[run]) == 64  # the code's own output was poisoned after the copy
    assert not torch.equal(inputs[1], inputs[3])


def test_where_no_memory_can_be_pinned_a_gpus_checked_outputs_go_to_pageable_buffers(monkeypatch):
    """On a host that refuses to pin memory the buffers are plain host memory, of the reference
    outputs' shapes and dtypes."""
    import torch

    from builder.judge.timing import host_slots

    empty = torch.empty

    def refusing(*args, pin_memory=False, **kwargs):
        if pin_memory:
            raise RuntimeError("no pinned memory on this host")
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch, "empty", refusing)
    sandbox = types.SimpleNamespace(device="cuda", slots=[], out_meta=[([2, 3], "float16"), ([], "int64")])
    slots = host_slots(sandbox, 2)
    assert [[(list(b.shape), b.dtype, b.device.type) for b in slot] for slot in slots] == \
        [[([2, 3], torch.float16, "cpu"), ([], torch.int64, "cpu")]] * 2
    assert host_slots(sandbox, 1)[0] is slots[0] and len(sandbox.slots) == 2  # made once per session


def test_a_timed_code_peaks_at_its_input_and_two_outputs():
    from builder.judge.timing import cycle_limit

    gib = 1 << 30
    start, out = 7 * gib + gib // 4, 7 * gib  # group norm's benchmark input and the flush scratch
    held = out  # one output a reference cycle still holds after its run
    assert start + held <= cycle_limit(start, out)  # kept until the collector is needed
    assert start + 2 * held > cycle_limit(start, out)  # a second held output is collected
    assert cycle_limit(start, out) + out <= 22 * gib  # the next output still fits a 24 GB card


def test_a_trusted_code_is_timed_whatever_rule_it_breaks_and_an_answer_is_not():
    from builder.judge.anticheat import Finding
    from builder.judge.timing import timed_finding

    for reason in ("torch_op", "host_compute", "no_kernel_launched"):
        finding = Finding(reason, "forward called aten ops div")
        assert timed_finding(finding, trusted=True) is None
        assert timed_finding(finding, trusted=False) is finding
    for reason in ("side_stream", "guard_disabled", "monkey_patch"):
        finding = Finding(reason, "x")
        assert timed_finding(finding, trusted=True) is finding
    assert timed_finding(None, trusted=False) is None


def test_the_streaming_probe_reads_every_input_once_and_the_largest_writes_the_output(monkeypatch):
    import torch

    import builder.judge.timing as timing

    launches = []

    class Recorder:
        def __getitem__(self, grid):
            return lambda x, y, n_in, n_out, per_program, BLOCK, OUT_BLOCK: launches.append(
                (grid[0], x.numel(), n_in, n_out, per_program))

    monkeypatch.setattr(timing, "_stream_kernel", lambda: Recorder())
    logits, targets = torch.zeros(64, 100), torch.zeros(64, dtype=torch.int64)
    flats = [timing._streamable(t) for t in (logits, targets)]
    assert flats[1].dtype == torch.float32 and flats[1].numel() == 128  # the int64 bytes, read as words
    timing.stream_launch(flats, torch.empty(1), 1, 0, 1024)()
    assert launches == [(7, 6400, 6400, 1, 1), (1, 128, 128, 0, 0)]


RELU = Path(__file__).parents[1] / "fixtures" / "problems" / "relu"


def _late_wrong(code: str) -> str:
    """The fixture's kernel, made to write half its output from its second call on: right in the
    warm-up, wrong in every timed run, so whichever runs the judge checks show it."""
    return code.replace("        n = x.numel()\n", "        n = x.numel()\n        self.calls = getattr(self, 'calls', 0) + 1\n"
                        "        if self.calls > 1:\n            n = n // 2\n")


@pytest.mark.slow
def test_a_trusted_code_with_a_wrong_output_shape_is_timed_and_an_answer_is_not():
    """A seed kept verbatim whose output has another shape than the reference's (cross-entropy's
    (1,) for ()) is still timed: stage 1 improves on it. The same code under test is not."""
    from builder.judge.timing import Subject, run_side_by_side
    from builder.seeds import load_problem

    problem = load_problem(RELU)
    flat = problem.kernel_path.read_text().replace("        return y\n", "        return y.view(-1)\n")
    run = run_side_by_side(problem, [Subject("seed", "code", flat), Subject("answer", "code", flat, trusted=False)],
                           runs=3, warmup=1, timeout_s=300, device="cpu")
    assert run.errors.keys() == {"answer"} and run.errors["answer"][0] == "wrong_while_timed", run.errors
    assert run.stats["seed"]["runs"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("late_wrong", [False, True], ids=["honest", "late_wrong"])
def test_a_timed_run_on_the_cpu_times_trusted_code_twice_and_checks_the_answer(late_wrong):
    """The whole checked timing run (sandbox, referee replaying the perturbations, kept outputs
    compared, the input's keyed hash) on the CPU interpreter, on a fixture small enough for it.
    The lead and wall-time checks are the GPU's: a CPU's busy wait stretches with its load."""
    from builder.judge.timing import Subject, run_side_by_side
    from builder.seeds import load_problem

    problem = load_problem(RELU)
    seed = problem.kernel_path.read_text()
    answer = _late_wrong(seed) if late_wrong else seed
    assert answer != seed or not late_wrong
    run = run_side_by_side(problem, [Subject("seed", "code", seed), Subject("eager", "eager"),
                                     Subject("answer", "code", answer, trusted=False)],
                           runs=6, warmup=1, timeout_s=300, device="cpu")
    if late_wrong:
        assert run.errors.keys() == {"answer"} and run.errors["answer"][0] == "wrong_while_timed", run.errors
        return
    assert run.errors == {}, run.errors
    assert {"seed", "eager", "answer"} <= run.stats.keys()
    assert all(run.stats[label]["runs"] == 6 and run.stats[label]["median_ms"] > 0 for label in run.stats)
    assert "repeat_median_ms" in run.stats["seed"] and run.noise >= 0
    # The host time of each batch is split by part; the checks after each call count as checks.
    for label, checked in (("seed", False), ("answer", True)):
        wall = run.walls[label]
        parts = {part for part in HOST_PARTS if checked or part != "keep"}  # only checked runs copy outputs out
        assert {f"{part}_ms" for part in parts} <= wall.keys() and ("keep_ms" in wall) == checked, wall
        assert 0 < sum(wall[f"{part}_ms"] for part in parts) <= wall["sandbox_wall_ms"], wall
        assert (wall["copies_ms"] > 0) == checked, wall
    assert "call_ms" in run.walls["eager"] and "verdict_ms" not in run.walls["eager"]
    assert run.phases["checks"] > 0 and run.phases["timing"] > 0


def test_host_parts_keep_only_known_parts_as_finite_non_negative_milliseconds():
    from builder.judge.timing import host_parts

    reported = {"host_ms": {"call": 2, "verdict": 1.5, "fill": -3.0, "collect": float("nan"), "other": 9.0,
                            "perturb": "7"}}
    assert host_parts(reported) == {"call": 2.0, "verdict": 1.5, "fill": 0.0}
    assert host_parts({"host_ms": [1, 2]}) == {} and host_parts(None) == {}


def test_a_slow_subject_gets_as_many_runs_as_the_budget_holds_and_at_least_the_minimum():
    from builder.judge.timing import MIN_TIMED_RUNS, RUN_BUDGET_MS, runs_within_budget

    assert runs_within_budget([1.0, 1.2, 0.9], 100) == 100  # fast: every run
    assert runs_within_budget([RUN_BUDGET_MS / 40] * 3, 100) == 40
    assert runs_within_budget([2263.0] * 3, 100) == MIN_TIMED_RUNS  # batch norm's seed on an H100
    assert runs_within_budget([2263.0] * 3, 6) == 6  # never more than asked
    assert runs_within_budget([], 100) == 100


@pytest.mark.slow
def test_a_run_of_trusted_code_alone_times_a_slow_subject_fewer_times(monkeypatch):
    """Measure's timing run (no code under test) on the CPU interpreter: with a budget every
    call exceeds, each code and baseline gets the minimum number of runs, both times it is timed."""
    from builder.judge import timing
    from builder.seeds import load_problem

    monkeypatch.setattr(timing, "RUN_BUDGET_MS", 1e-3)
    monkeypatch.setattr(timing, "MIN_TIMED_RUNS", 2)
    problem = load_problem(RELU)
    seed = problem.kernel_path.read_text()
    run = timing.run_side_by_side(problem, [timing.Subject("seed", "code", seed), timing.Subject("eager", "eager")],
                                  runs=6, warmup=1, timeout_s=300, device="cpu")
    assert run.errors == {}, run.errors
    assert run.stats["seed"]["runs"] == 2 and run.stats["eager"]["runs"] == 2
    assert "repeat_median_ms" in run.stats["seed"]


def _pace(outside_ms: float, lead_ms: float = 5.0, events_ms: float = 1.5, checks_ms: float = 0.2):
    from builder.judge.timing import Pace

    return Pace(events_ms=events_ms, lead_ms=lead_ms, outside_ms=outside_ms, checks_ms=checks_ms)


def test_an_answer_is_held_against_the_most_any_trusted_batch_left_outside_its_events():
    from builder.judge.timing import wall_finding

    assert wall_finding(_pace(12.0), [_pace(3.0), _pace(6.5)]) is None
    assert wall_finding(_pace(12.0), [_pace(3.0)]) is not None


def test_the_trusted_codes_run_after_the_baselines_and_right_before_the_answer_whose_checks_count_them():
    """A trusted code's first batch runs where torch.compile is already imported, as the answer's
    does; the perturbations of every batch before a checked run are counted in that order."""
    from builder.judge.timing import Subject, plan_checkpoints, timing_order

    subjects = [Subject("seed", "code", "s"), Subject("b", "code", "b"), Subject("eager", "eager"),
                Subject("compile", "compile"), Subject("ceiling", "ceiling"), Subject("answer", "code", "a", trusted=False)]
    assert [s.label for s in timing_order(subjects)] == ["eager", "compile", "ceiling", "seed", "b", "answer", "seed", "b"]
    plan = plan_checkpoints(subjects, 10)
    assert plan.keys() == {"answer"} and len(plan["answer"]) == 2
    assert all(count == 4 * 10 + run + 1 for run, count in plan["answer"].items())  # eager, compile, seed, b


def test_work_hidden_outside_the_events_or_events_longer_than_the_wall_are_a_timing_mismatch():
    from builder.judge.timing import TIMING_FACTOR, TIMING_SLACK_MS, wall_finding

    trusted = [_pace(3.0), _pace(4.0)]
    limit = TIMING_FACTOR * 4.0 + TIMING_SLACK_MS
    assert wall_finding(_pace(limit - 0.01), trusted) is None
    found = wall_finding(_pace(limit + 0.01, checks_ms=0.7), trusted)
    assert found is not None and "at most 4.000 ms" in found and "0.700 ms" in found
    assert wall_finding(_pace(-0.5, events_ms=1.5), trusted) is not None  # its events claim more than the wall
    assert wall_finding(_pace(-0.05, events_ms=1.5), trusted) is None  # within 5% of the events, plus slack


def test_a_lead_that_strays_from_the_trusted_codes_spin_is_a_timing_mismatch_and_none_is_judged_alone():
    from builder.judge.timing import wall_finding

    trusted = [_pace(3.0, lead_ms=5.0), _pace(3.0, lead_ms=5.1)]
    assert wall_finding(_pace(3.0, lead_ms=5.2), trusted) is None
    found = wall_finding(_pace(3.0, lead_ms=4.0), trusted)
    assert found is not None and "lead" in found
    assert wall_finding(_pace(100.0), []) is None  # no trusted batch in the session: nothing to hold it against


def test_the_copies_of_the_checked_runs_outputs_are_not_taken_for_hidden_work_and_must_fit_the_wall():
    """Each copy to the host is timed by events of its own: the wall time they take is not counted
    outside the events. A report of copies that is not a list of times, or that outlasts the
    batch, is no report (the judge then takes the sandbox's timings for malformed)."""
    from builder.judge.timing import Pace, copy_times

    pace = Pace.of([1.0] * 10, [5.0] * 10, wall_ms=100.0, host={"verdict": 2.0}, copies_ms=20.0)
    assert pace.outside_ms == (100.0 - 10.0 - 50.0 - 20.0) / 10 and pace.checks_ms == 0.2
    assert copy_times({"kept_ms": [8.0, 12.0]}, 100.0) == [8.0, 12.0]
    assert copy_times({"kept_ms": []}, 100.0) == []
    for bad in ({"kept_ms": [60.0, 50.0]}, {"kept_ms": [-1.0]}, {"kept_ms": [float("nan")]}, {"kept_ms": "8"},
                {"kept_ms": [True]}, {}, None):
        assert copy_times(bad, 100.0) is None, bad
