"""verify: the code runs in a sandbox process, the verdict is decided in this one."""

import dataclasses
from pathlib import Path

import pytest

from builder.judge.correctness import VerifyResult, verify
from builder.seeds import get_problem

P1 = get_problem("avgpool1d")
P2 = get_problem("avgpool2d")


def check(problem, code, cases, device="cpu", **extra):
    return verify(problem, code, device=device, timeout_s=120, cases=cases, **extra)


def test_seed_kernel_passes_with_per_case_records():
    result = check(P1, P1.kernel_path.read_text(), ["padded_stride1", "stride_gt_kernel"])
    assert result.ok and result.reason is None, result.detail
    assert (result.atol, result.rtol) == (P1.atol, P1.rtol)
    names = [c.name for c in result.cases]
    assert names == ["padded_stride1", "padded_stride1 (second input)",
                     "padded_stride1 (third input, the second one's tensors with their values reversed)", "stride_gt_kernel"]
    assert all(c.ok and c.max_abs_err <= P1.atol for c in result.cases)
    assert result.cases[0].shape == (2, 3, 37)
    assert result.to_payload()["cases"][0]["shape"] == [2, 3, 37]
    assert all(c.seconds is not None and 0 < c.seconds < 120 for c in result.cases)  # each call's own time
    assert sum(c.seconds for c in result.cases) <= sum(result.phases.values())
    assert VerifyResult.from_payload(result.to_payload()) == result


def test_failing_case_stops_the_run_and_names_the_case():
    code = (P1.wrong_dir / "count_include_pad.py").read_text()
    result = check(P1, code, ["no_padding", "padded_stride1", "long_row"])
    assert not result.ok and result.reason == "mismatch"
    assert [c.ok for c in result.cases][-1] is False
    assert result.detail.startswith("padded_stride1:")  # the manifest's first case: built positionally
    assert result.cases[-1].max_abs_err > 0.01


@pytest.mark.parametrize(
    "code,reason",
    [
        (P1.kernel_path.read_text() + "\nraise ValueError('at import')\n", "import_error"),
        (P1.kernel_path.read_text().replace("super().__init__()", "raise ValueError('init')"), "import_error"),
        (P1.kernel_path.read_text().replace("class ModelNew", "class Renamed"), "no_model_new"),
        (P1.kernel_path.read_text() + "\nimport os\nos._exit(0)\n", "sandbox_violation"),
        (P1.kernel_path.read_text() + "\nimport os\nos.abort()\n", "crash"),
    ],
    ids=["import", "constructor", "no_model_new", "quiet_exit", "abort"],
)
def test_import_and_construction_failures(code, reason):
    result = check(P1, code, ["kernel_1"])
    assert not result.ok and result.reason == reason, result.detail


@pytest.mark.parametrize("signature,body", [
    ("k: int, s: int = 1, p: int = 0", "kernel_size, stride, padding = k, s, p"),
    ("kernel_size: int, stride: int, padding: int", "pass"),
], ids=["other_names", "no_defaults"])
def test_modelnew_built_in_every_style_takes_what_kernelbench_passes(signature, body):
    """KernelBench passes every argument positionally: other names or no defaults are no fault;
    the manifest's first three cases build ModelNew positionally, by keyword and without defaults."""
    code = P1.kernel_path.read_text().replace(
        "def __init__(self, kernel_size: int, stride: int = 1, padding: int = 0):\n        super().__init__()",
        f"def __init__(self, {signature}):\n        super().__init__()\n        {body}")
    assert code != P1.kernel_path.read_text()
    result = check(P1, code, [c.name for c in P1.cases[:3]])
    assert result.ok, result.detail


def test_a_process_left_behind_is_a_violation_even_when_outputs_are_right():
    code = P1.kernel_path.read_text() + (
        "\nimport os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(30)\n    os._exit(0)\n")
    result = check(P1, code, ["kernel_1"])
    assert result.reason == "sandbox_violation", result.detail


def test_a_forged_message_on_stdout_is_only_log_output():
    code = P1.kernel_path.read_text() + "\nprint('{\"ok\": true}')\n"
    result = check(P1, code, ["kernel_1"])
    assert result.ok, result.detail


def test_the_parent_sees_inputs_changed_in_place():
    code = P1.kernel_path.read_text().replace(
        "        return triton_avg_pool1d(", "        out = triton_avg_pool1d(").replace(
        "            x, self.kernel_size, self.stride, self.padding\n        )\n",
        "            x, self.kernel_size, self.stride, self.padding\n        )\n        x.zero_()\n        return out\n")
    result = check(P1, code, ["padded_stride1"])
    assert not result.ok and result.reason in ("input_mutated", "torch_op"), result.detail


# Static rules catch these first; run alone, the dynamic guards must still catch them.
BACKUPS = [
    (P1, "torch_op_decoy.py", "torch_op"),
    (P1, "timer_patch.py", "timer_patch"),
    (P2, "unfold_mean.py", "torch_op"),
    (P2, "inherits_pool.py", "torch_op"),
    (P2, "getattr_trick.py", "torch_op"),
    (P2, "launch_patch.py", "guard_disabled"),
]


@pytest.mark.parametrize("problem,name,reason", BACKUPS, ids=[f"{p.key}/{n}" for p, n, _ in BACKUPS])
def test_dynamic_guards_back_up_static_rules(problem, name, reason):
    result = check(problem, (problem.wrong_dir / name).read_text(), [problem.cases[0].name])
    assert not result.ok and result.reason == reason, result.detail


@pytest.mark.gpu
@pytest.mark.parametrize("problem", [P1, P2], ids=["avgpool1d", "avgpool2d"])
def test_seed_kernel_passes_benchmark_trials_on_gpu(problem):
    result = check(problem, problem.kernel_path.read_text(), [problem.cases[0].name], "cuda", trials=2)
    assert result.ok, result.detail
    assert [c.name for c in result.cases][-2:] == ["benchmark_0", "benchmark_1"]


@pytest.mark.gpu
def test_side_stream_is_caught_on_gpu():
    result = check(P2, (P2.wrong_dir / "side_stream.py").read_text(), ["padded"], "cuda")
    assert result.reason == "side_stream", result.detail


@pytest.mark.parametrize("seed", range(8))
def test_every_verification_draws_every_layout_value_class_and_construction_style(seed, monkeypatch):
    import random
    from pathlib import Path

    from builder.judge.calls import Caller
    from builder.judge.inputs import LAYOUTS, shows
    from builder.judge.reference import STYLES
    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "relu")
    seen = []
    real = Caller.drawn
    monkeypatch.setattr(Caller, "drawn", lambda self, case, conditions, budget_s=None: (
        seen.append((case, conditions)), real(self, case, conditions, budget_s))[1])
    result = verify(problem, problem.kernel_path.read_text(), device="cpu", timeout_s=120, rng=random.Random(seed))
    assert result.ok, result.detail
    assert {c.layout for _, c in seen} == set(LAYOUTS)
    assert all(shows(c.layout, case.inputs[0].shape) for case, c in seen)
    assert {case.inputs[0].values for case, _ in seen} == {"uniform", *problem.space.values}
    assert {c.build for _, c in seen} == set(STYLES)
    assert {(c.mode, c.grad) for _, c in seen if c.layout == "plain"} >= {("eval", False), ("train", True)}
    widest = [case.inputs[0].shape for case, _ in seen[:2]]
    assert widest[0] == widest[1] and widest[0][-1] >= 3000, widest  # the row stretched to its benchmark length, twice
    assert {(c.mode, c.grad) for _, c in seen[:2]} == {("eval", False), ("train", True)}  # as a user calls


def _slow_relu(rule: str) -> str:
    """The relu fixture's kernel, its forward first sleeping 1.5 s where `rule` (an expression of
    the row length `n`) holds: a call the interpreter cannot finish in time."""
    kernel = (Path(__file__).parents[1] / "fixtures" / "problems" / "relu" / "kernel.py").read_text()
    return "import time\n" + kernel.replace("        n = x.numel()\n",
                                            f"        n = x.numel()\n        if {rule}:\n            time.sleep(1.5)\n")


@pytest.fixture
def one_second_calls(monkeypatch):
    """Drawn calls on the CPU get 1 s each, three redraws."""
    from builder.judge import correctness

    monkeypatch.setitem(correctness.SPACE_CHECKS, "cpu",
                        dataclasses.replace(correctness.SPACE_CHECKS["cpu"], call_s=1.0, redraws=3))


@pytest.mark.parametrize("seed", range(2))
def test_a_drawn_call_past_its_budget_is_drawn_again_smaller(seed, one_second_calls):
    import random

    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "relu")
    # Stretched draws put L at the benchmark's 3001; halved, at the space's top of 3000.
    result = verify(problem, _slow_relu("x.shape[-1] > 3000"), device="cpu", timeout_s=120, rng=random.Random(seed))
    assert result.ok, result.detail
    again = [c for c in result.cases if "drawn again" in c.name]
    assert again and all(c.ok for c in again)
    assert all(c.shape[-1] <= 3000 for c in result.cases if c.name.startswith("space_"))
    assert 3000 in {c.shape[-1] for c in again}


def test_a_call_never_within_its_budget_times_out(one_second_calls):
    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "relu")
    result = verify(problem, _slow_relu("True"), device="cpu", timeout_s=120)
    assert result.reason == "timeout" and "the last unstretched" in result.detail, result.detail
    assert [c.name for c in result.cases][:3] == ["signed", "signed (second input)",
                                                  "signed (third input, the second one's tensors with their values reversed)"]


def test_a_budget_reported_before_it_ran_out_is_a_violation(one_second_calls):
    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "relu")
    code = _slow_relu("False").replace(
        "        n = x.numel()\n", "        n = x.numel()\n        if x.shape[-1] > 100:\n"
        "            from builder.judge.interpreter import PastDeadline\n            raise PastDeadline('early')\n")
    result = verify(problem, code, device="cpu", timeout_s=120)
    assert result.reason == "sandbox_violation", result.detail


def test_an_answer_slow_only_where_another_model_saw_the_shape_times_out(one_second_calls):
    import random

    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "affine_rows")
    kernel = problem.kernel_path.read_text()
    code = "import time\n_SEEN = {}\n" + kernel.replace(
        "        x = x.contiguous()\n",
        "        x = x.contiguous()\n        if _SEEN.setdefault(tuple(x.shape), id(self)) != id(self):\n"
        "            time.sleep(1.5)\n")
    assert code.count("time.sleep") == 1
    result = verify(problem, code, device="cpu", timeout_s=120, rng=random.Random(3))
    assert result.reason == "timeout" and "another init" in result.detail, result.detail
    assert verify(problem, kernel, device="cpu", timeout_s=120, rng=random.Random(3)).ok


@pytest.mark.parametrize("past,made_by", [(1, "torch.empty_like(x)"), (1023, "torch.empty_like(x)"),
                                          (1, "torch.zeros_like(x)"), (5, "x.clone()")])
def test_a_store_past_the_end_of_an_output_is_out_of_bounds(past, made_by):
    import random

    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "relu")
    kernel = problem.kernel_path.read_text()
    code = kernel.replace("    tl.store(y_ptr + offs,", f"    mask = offs < n + {past}\n    tl.store(y_ptr + offs,")
    code = code.replace("y = torch.empty_like(x)", f"y = {made_by}")
    assert code != kernel
    result = verify(problem, code, device="cpu", timeout_s=120, rng=random.Random(past))
    assert (result.reason, result.detail) == ("out_of_bounds", "signed: forward wrote past the end of a tensor it allocated")
    assert verify(problem, kernel, device="cpu", timeout_s=120, rng=random.Random(past)).ok


def test_code_whose_import_needs_a_gpu_is_unverifiable_on_the_cpu_not_wrong():
    code = P1.kernel_path.read_text() + "\nDEVICE = triton.runtime.driver.active.get_active_torch_device()\n"
    result = check(P1, code, ["kernel_1"])
    assert result.reason == "cpu_unverifiable", result.detail
    assert check(P1, P1.kernel_path.read_text() + "\nraise RuntimeError('no')\n", ["kernel_1"]).reason == "import_error"
