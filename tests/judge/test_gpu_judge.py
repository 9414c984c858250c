"""The judge's GPU paths: checked timing, the profiler's kernel list and the reward's speed bonus."""

from pathlib import Path

import pytest

from builder.judge.ncu import foreign_kernels, ncu_path, profile
from builder.judge.score import GpuTimer, jit_function_names, make_reward_fn, read_answer, score_answer
from builder.judge.timing import Subject, run_side_by_side
from builder.seeds import get_problem
from tests.judge.test_score import accepted_answers

pytestmark = pytest.mark.gpu

P1 = get_problem("avgpool1d")
P2 = get_problem("avgpool2d")


def test_side_by_side_run_has_noise_ceiling_and_checked_untrusted_code():
    seed, final = P1.kernel_path.read_text(), P1.solutions["memory_access"].read_text()
    run = run_side_by_side(P1, [Subject("seed", "code", seed), Subject("eager", "eager"), Subject("compile", "compile"),
                                Subject("ceiling", "ceiling"), Subject("final", "code", final, trusted=False)],
                           runs=30)
    assert run.errors == {}, run.errors  # torch.compile's threads are not the candidate's
    assert 0 <= run.noise < 0.05
    assert run.stats["final"]["median_ms"] < run.stats["seed"]["median_ms"]
    assert run.ceiling["ceiling"]["gbps"] > 1000 and set(run.ceiling["rates"]) == {"read_gbps", "write_gbps", "copy_gbps"}
    # The checked run times the kernels, not the guards: as a bare event-timed loop does.
    bare = bare_ms(P1, P1.solutions["memory_access"])
    print({k: round(v["median_ms"], 4) for k, v in run.stats.items()}, "noise", run.noise, "bare", bare)
    assert abs(run.stats["final"]["median_ms"] / bare - 1) < 0.03, run.stats


def bare_ms(problem, path, runs=30):
    """Median of a plain loop: flush L2, then events around the call (no guards, no sandbox)."""
    import statistics

    import torch

    from builder.judge.loader import load_module

    model = load_module(path).ModelNew(**problem.init)
    x = torch.rand(problem.shape, device="cuda")
    flush = torch.empty(256 * 1024**2 // 4, device="cuda")
    model(x)
    times = []
    for _ in range(runs):
        flush.zero_()
        torch.cuda._sleep(10_000_000)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


@pytest.mark.parametrize("stage", ["block_tiling", "memory_access", "advanced_memory"])
def test_an_honest_answer_timed_as_the_reward_times_it_is_no_timing_mismatch(stage):
    """The reward's run (eager, torch.compile, the current code, then the answer, 100 timed runs
    each, two of the answer's outputs kept and checked): an honest solution passes. On 2026-12-07,
    8 of 15 correct avg-pool 1D answers failed here, two of these solutions among them."""
    current, answer = P1.solutions["grid_and_parallel"].read_text(), P1.solutions[stage].read_text()
    run = run_side_by_side(P1, [Subject("current", "code", current), Subject("eager", "eager"),
                                Subject("compile", "compile"), Subject("answer", "code", answer, trusted=False)])
    print({label: {k: round(v, 1) for k, v in wall.items()} for label, wall in run.walls.items()})
    assert run.errors == {}, run.errors


def test_an_answer_that_caches_while_timed_is_caught():
    code = P1.solutions["grid_and_parallel"].read_text().replace(
        "class ModelNew(nn.Module):", "_seen = {}\n\n\nclass ModelNew(nn.Module):").replace(
        "    def forward(self, x", "    def forward_real(self, x")
    code += ("\n    def forward(self, x):\n        key = x.data_ptr()\n        if key not in _seen:\n"
             "            _seen[key] = self.forward_real(x)\n        return _seen[key]\n")
    run = run_side_by_side(P1, [Subject("seed", "code", P1.kernel_path.read_text()),
                                Subject("cheat", "code", code, trusted=False)], runs=20)
    assert run.errors["cheat"][0] in ("wrong_while_timed", "no_kernel_launched"), run.errors


@pytest.mark.skipif(ncu_path() is None, reason="needs ncu")
def test_profiler_lists_the_answers_kernels_and_catches_a_torch_kernel():
    code = P2.solutions["grid_and_parallel"].read_text()
    seen = profile(P2, code, [], ncu_path(), timeout_s=600)
    assert seen.ok, seen.detail
    assert foreign_kernels(seen.launches, jit_function_names(code)) == []
    assert seen.gpu_ms() and seen.gpu_ms() > 1.0
    cheat = code.replace("class ModelNew(nn.Module):", "import torch.nn.functional as F\n\n\nclass ModelNew(nn.Module):")
    cheat = cheat.replace("    def forward(self, x", "    def forward_real(self, x")
    cheat += "\n    def forward(self, x):\n        self.forward_real(x)\n        return F.avg_pool2d(x, self.kernel_size)\n"
    seen = profile(P2, cheat, [], ncu_path(), timeout_s=600)
    assert seen.ok and seen.guard_finding[0] == "torch_op"  # the guards inside see it ...
    assert foreign_kernels(seen.launches, jit_function_names(cheat))  # ... and so does the profiler, outside


def test_reward_gives_a_bonus_to_a_solution_and_none_to_its_current_code():
    current = P1.solutions["block_tiling"].read_text()
    reward = make_reward_fn(profile=True)
    solution = read_answer(P1.solutions["memory_access"])
    got = reward([solution, read_answer(P1.solutions["block_tiling"])], problem_key="avgpool1d",
                 current_code=current)
    assert got[0] > 1.05 and 0.99 <= got[1] < 1.02, got


@pytest.mark.skipif(ncu_path() is None, reason="needs ncu")
def test_a_profile_takes_the_ncu_sandbox_started_ahead_and_sees_the_kernels():
    """The reward's and score's profiles start under ncu ahead of time; the one taken profiles as a
    new one does (its CUDA context, which ncu watches, comes at its first request)."""
    import time

    from builder.judge import ncu
    from builder.judge.runner import _spares, keep_spares

    kind = ("cuda", ncu.profiler(ncu_path(), []))
    GpuTimer(P1.kernel_path.read_text()).keep_ahead()
    try:
        waiting = _spares.ready[kind][0]
        time.sleep(10)  # it starts while nobody waits for it
        code = P1.solutions["memory_access"].read_text()
        batch = ncu.profile_codes(P1, {"candidate": code}, [], ncu_path(), timeout_s=600, trusted=False)
        seen = batch.profiles["candidate"]
        assert seen.ok and seen.gpu_ms() and not foreign_kernels(seen.launches, jit_function_names(code)), seen.detail
        assert waiting.proc.poll() is not None and waiting not in _spares.ready[kind]  # taken, ended with its session
        print("phases with the sandbox started ahead:", batch.phases)
    finally:
        keep_spares("cuda", 0, wrap=kind[1])
        _spares.stop()


def test_score_times_against_the_current_code():
    timer = GpuTimer(P2.kernel_path.read_text())
    verdict = score_answer(read_answer(P2.solutions["grid_and_parallel"]), P2, device="cuda", timer=timer)
    assert verdict.ok, (verdict.reason, verdict.detail)
    assert verdict.speedups["current"] > 1.0 and verdict.speedups["eager"] > 1.0


def test_the_whole_check_of_the_largest_outputs_fits_a_24_gb_card(monkeypatch):
    monkeypatch.setenv("KP_GPU_MEMORY_GIB", "22")
    from builder.judge.correctness import verify

    for problem in (P1, P2):
        code = problem.solutions["advanced_memory"].read_text()
        result = verify(problem, code, device="cuda", timeout_s=900, cases=[problem.cases[0].name], trials=2)
        assert result.ok, (problem.key, result.reason, result.detail)
        run = run_side_by_side(problem, [Subject("final", "code", code), Subject("eager", "eager"),
                                         Subject("ceiling", "ceiling")], runs=10)
        assert run.errors == {}, run.errors


def test_the_rewards_timed_run_of_the_largest_outputs_fits_a_24_gb_card(monkeypatch):
    """Group norm's 7 GiB input and output, with two of the answer's outputs checked. On an H100
    on 2026-12-07, with the checked outputs held on the GPU until the batch ended, the answer ran
    out of memory; they now leave the GPU for host buffers right after their run."""
    monkeypatch.setenv("KP_GPU_MEMORY_GIB", "22")
    problem = get_problem("groupnorm")
    current, answer = (problem.solutions[stage].read_text() for stage in ("grid_and_parallel", "advanced_memory"))
    run = run_side_by_side(problem, [Subject("current", "code", current), Subject("eager", "eager"),
                                     Subject("answer", "code", answer, trusted=False)], runs=10)
    assert run.errors == {}, run.errors


def test_a_large_comparison_runs_on_the_gpu_and_counts_as_on_the_cpu():
    import torch

    from builder.judge.compare import COMPARE_CHUNK, compare, compare_device

    ref = torch.rand(3 * COMPARE_CHUNK + 5)
    assert compare_device(ref.numel()).type == "cuda" and compare_device(1000).type == "cpu"
    assert compare(ref.clone(), ref, 1e-4, 1e-4).reason is None
    out = ref.clone()
    out[2 * COMPARE_CHUNK + 7] += 0.5
    got = compare(out, ref, 1e-4, 1e-4)
    assert got.reason == "mismatch" and got.detail.startswith("1 of ") and abs(got.max_abs_err - 0.5) < 1e-6
    out[-1] = float("nan")
    assert compare(out, ref, 1e-4, 1e-4).reason == "nan_inf"


def test_a_candidate_that_crashes_the_device_while_timed_gets_crash():
    """A kernel with 32-bit offsets reads out of bounds on the 4.3-billion-element benchmark input:
    the sandbox ends after its crash reply, and the run's verdict is that crash, not a protocol fault."""
    code = (P2.dir / "wrong" / "timed_pointer_cache.py").read_text().replace(
        "plane = (row // OH).to(tl.int64)", "plane = row // OH")
    assert "plane = row // OH" in code
    timed = GpuTimer(P2.kernel_path.read_text(), baselines=(), runs=5, profile=False)(code, P2)
    assert timed.reason == "crash" and timed.detail.startswith("candidate:"), (timed.reason, timed.detail)


def test_one_ncu_process_profiles_every_code_of_a_problem_and_tells_them_apart():
    from builder.judge.ncu import profile_codes
    from builder.measure import labels_of
    from builder.records import code_path

    codes = {label: code_path(P2, label).read_text() for label in labels_of(P2)}
    batch = profile_codes(P2, codes, ["dram__throughput.avg.pct_of_peak_sustained_elapsed"], ncu_path(),
                          timeout_s=600)
    print({label: [name for name, _ in p.launches] for label, p in batch.profiles.items()}, batch.phases)
    for label, seen in batch.profiles.items():
        assert seen.ok, (label, seen.detail)
        assert not foreign_kernels(seen.launches, jit_function_names(codes[label])), label
        assert all(values["dram__throughput.avg.pct_of_peak_sustained_elapsed"] for _, values in seen.launches)


def test_one_referee_serves_many_requests_with_the_same_answers():
    from builder.judge import referee
    from builder.judge.plan import seeded_specs

    spec = [{"inputs": seeded_specs(P1.inputs, 11), "layout": "plain", "mode": "train", "grad": False}]
    build = {"init": P1.init, "seed": 1, "state_seed": 2}
    first = referee.ask_referee(P1, 5, build=build, trials=spec)
    pid = referee._service.proc.pid
    again = referee.ask_referee(P1, 5, build=build, trials=spec)
    assert referee._service.proc.pid == pid
    assert first["trials"] == again["trials"] and first["outputs"][0].equal(again["outputs"][0])


def test_the_autotuners_benchmarking_is_logged_apart_on_a_gpu():
    """Why multi-config autotune passes now: the autotuner benchmarks its configs inside the first
    watched forward. Triton's benchmarker (events, the L2 flush with its zero_(), the statistics)
    is the judge's business and runs unlogged; the config runs it makes (each one's pre-hook and
    launch) are logged apart, checked for what they call and held to the op limit one run at a
    time. Before, every repetition's zero_() counted against forward's 256 ops (1536 on the H100)."""
    import torch

    from builder.judge.guards import MAX_OPS_PER_FORWARD, Guards
    from builder.judge.loader import load_module

    module = load_module(P1.dir / "accepted" / "autotune_two_configs.py")
    model = module.ModelNew(**P1.init)
    x = torch.rand(4, 8, 4096, device="cuda")
    with Guards(cuda=True) as guards:
        with torch.no_grad(), guards.watch() as record:
            y = model(x)
        finding = guards.verdict(record)
    assert finding is None, finding
    assert len(record.ops) < MAX_OPS_PER_FORWARD and record.tuning_ops and record.launches >= 3
    assert 0 < record.tuning_peak < MAX_OPS_PER_FORWARD
    ref = torch.nn.functional.avg_pool1d(x, P1.init["kernel_size"], P1.init["stride"], P1.init["padding"])
    assert torch.allclose(y, ref, atol=1e-5)


def test_multi_config_autotune_passes_the_whole_judge_on_a_gpu():
    """seeds/avgpool1d/accepted/autotune_two_configs.py: checks with a benchmark-shape trial, then a
    checked timing run (the autotuner benchmarks again in the timing sandbox's warm-up)."""
    path = P1.dir / "accepted" / "autotune_two_configs.py"
    timer = GpuTimer(P1.kernel_path.read_text(), baselines=("eager",), runs=20, profile=False)
    verdict = score_answer(read_answer(path), P1, device="cuda", timer=timer, trials=1)
    assert verdict.ok and verdict.correct and verdict.follows_rules, (verdict.reason, verdict.detail)
    assert verdict.speedups["current"] > 0


@pytest.mark.parametrize("problem,path,spec", accepted_answers())
def test_every_accepted_answer_passes_on_a_gpu_with_a_benchmark_size_trial(problem, path, spec):
    """Those the CPU cannot check (`cpu` in their listing) included: on a GPU they are judged as
    usual. A correct answer that breaks the output rule `format` names passes with that finding."""
    verdict = score_answer(read_answer(path), problem, device="cuda", trials=1)
    assert verdict.ok and verdict.correct, (verdict.reason, verdict.detail)
    assert [f.reason for f in verdict.findings] == ([spec["format"]] if "format" in spec else [])


def test_a_race_between_programs_fails_on_a_gpu_too():
    from builder.judge.correctness import verify

    code = (P1.wrong_dir / "race_across_programs.py").read_text()
    result = verify(P1, code, device="cuda", timeout_s=600, trials=1)
    assert not result.ok, "the race did not show on the GPU either"
    print(result.reason, result.detail)
    assert first["trials"] == again["trials"] and first["outputs"][0][0].equal(again["outputs"][0][0])


FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"


@pytest.mark.parametrize("key", ["rowloss", "affine_rows", "shifted"])
def test_problems_of_every_shape_pass_benchmark_trials_and_a_checked_timing_run(key):
    """Several inputs, an int64 input, a 0-dim output, learned tensors and a running buffer: drawn
    in the sandbox and the referee from the same seeds, timed with every output checked."""
    from builder.judge.correctness import verify
    from builder.seeds import load_problem

    problem = load_problem(FIXTURES / key)
    code = problem.kernel_path.read_text()
    result = verify(problem, code, device="cuda", timeout_s=600, cases=[problem.cases[0].name], trials=2)
    assert result.ok, (result.reason, result.detail)
    assert [c.name for c in result.cases][-2:] == ["benchmark_0", "benchmark_1"]
    run = run_side_by_side(problem, [Subject("seed", "code", code), Subject("eager", "eager"),
                                     Subject("ceiling", "ceiling"), Subject("answer", "code", code, trusted=False)],
                           runs=10)
    assert run.errors == {}, run.errors
    assert run.ceiling["ceiling"]["gbps"] > 100


def test_an_answer_that_ignores_a_learned_tensor_fails_its_benchmark_trial():
    from builder.judge.correctness import verify
    from builder.seeds import load_problem

    problem = load_problem(FIXTURES / "affine_rows")
    code = (problem.dir / "wrong" / "ignores_bias.py").read_text()
    result = verify(problem, code, device="cuda", timeout_s=600, cases=[], trials=1)
    assert result.reason == "mismatch" and result.cases[-1].name == "benchmark_0", (result.reason, result.detail)
