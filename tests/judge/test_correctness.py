"""verify_job, run the way the judge runs it: in a child process through run_job."""

import pytest

from builder.judge.runner import run_job
from builder.seeds import get_problem

P1 = get_problem("avgpool1d")
P2 = get_problem("avgpool2d")


def verify(problem, code, cases, device="cpu", **extra):
    params = {"problem_dir": str(problem.dir), "code": code, "device": device, "cases": cases, "seed": 0}
    result = run_job("verify", {**params, **extra}, timeout_s=120)
    assert result.ok, result
    return result.payload


def test_seed_kernel_passes_with_per_case_records():
    payload = verify(P1, P1.kernel_path.read_text(), ["padded_stride1", "stride_gt_kernel"])
    assert payload["ok"] and payload["reason"] is None
    assert (payload["atol"], payload["rtol"]) == (P1.atol, P1.rtol)
    assert [c["name"] for c in payload["cases"]] == ["padded_stride1", "stride_gt_kernel"]
    assert all(c["ok"] and c["max_abs_err"] <= P1.atol for c in payload["cases"])
    assert payload["cases"][0]["shape"] == [2, 3, 37]


def test_failing_case_stops_the_run_and_names_the_case():
    code = (P1.wrong_dir / "count_include_pad.py").read_text()
    payload = verify(P1, code, ["no_padding", "padded_stride1", "long_row"])
    assert not payload["ok"] and payload["reason"] == "mismatch"
    assert [c["ok"] for c in payload["cases"]] == [True, False]
    assert payload["detail"].startswith("padded_stride1:")
    assert payload["cases"][1]["max_abs_err"] > 0.01


@pytest.mark.parametrize(
    "code,reason",
    [
        (P1.kernel_path.read_text() + "\nraise ValueError('at import')\n", "import_error"),
        (P1.kernel_path.read_text().replace("super().__init__()", "raise ValueError('init')"), "import_error"),
        (P1.kernel_path.read_text().replace("class ModelNew", "class Renamed"), "no_model_new"),
    ],
    ids=["import", "constructor", "no_model_new"],
)
def test_import_and_construction_failures(code, reason):
    payload = verify(P1, code, ["kernel_1"])
    assert not payload["ok"] and payload["reason"] == reason


# Static rules catch these first; run alone, the dynamic guards must still catch them.
BACKUPS = [
    (P1, "torch_op_decoy.py", "torch_op"),
    (P1, "timer_patch.py", "timer_patch"),
    (P2, "unfold_mean.py", "torch_op"),
    (P2, "inherits_pool.py", "torch_op"),
    (P2, "getattr_trick.py", "torch_op"),
    (P2, "launch_patch.py", "monkey_patch"),
]


@pytest.mark.parametrize("problem,name,reason", BACKUPS, ids=[f"{p.key}/{n}" for p, n, _ in BACKUPS])
def test_dynamic_guards_back_up_static_rules(problem, name, reason):
    payload = verify(problem, (problem.wrong_dir / name).read_text(), [problem.cases[0].name])
    assert not payload["ok"] and payload["reason"] == reason, payload["detail"]


@pytest.mark.gpu
@pytest.mark.parametrize("problem", [P1, P2], ids=["avgpool1d", "avgpool2d"])
def test_seed_kernel_passes_benchmark_trials_on_gpu(problem):
    payload = verify(problem, problem.kernel_path.read_text(), [problem.cases[0].name], "cuda", benchmark_trials=2)
    assert payload["ok"], payload["detail"]
    assert [c["name"] for c in payload["cases"]][1:] == ["benchmark_0", "benchmark_1"]


@pytest.mark.gpu
def test_side_stream_is_caught_on_gpu():
    payload = verify(P2, (P2.wrong_dir / "side_stream.py").read_text(), ["padded"], "cuda")
    assert payload["reason"] == "side_stream", payload["detail"]


@pytest.mark.gpu
def test_timer_patch_is_caught_on_gpu():
    payload = verify(P1, (P1.wrong_dir / "timer_patch.py").read_text(), ["padded_stride1"], "cuda")
    assert payload["reason"] == "timer_patch"
