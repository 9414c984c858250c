"""measure's orchestration, with the child runner swapped for a fake (no GPU needed)."""

from pathlib import Path

import pytest

from builder import measure as M
from builder.errors import NoGpuError, RecordError
from builder.gpus import get_gpu
from builder.judge.runner import JobResult
from builder.records import lookup
from builder.seeds import load_problem
from builder.stages import catalog

FIXTURE = Path(__file__).parent / "fixtures" / "ncu_raw_h200_avgpool2d.csv"


class FakeRunner:
    def __init__(self, fail=(), crash_on=None):
        self.calls = []
        self.fail = set(fail)
        self.crash_on = crash_on

    def __call__(self, kind, params, timeout_s, wrap=()):
        self.calls.append(kind)
        if self.crash_on == len(self.calls):
            raise KeyboardInterrupt("killed")
        if kind == "verify":
            bad = params["code"] in self.fail
            return JobResult("ok", None, "", {"ok": not bad, "reason": "mismatch" if bad else None, "atol": 1e-4,
                                              "rtol": 1e-4, "cases": [{"name": "c", "max_abs_err": 1e-7, "max_rel_err": 2e-7}]})
        if kind == "time":
            subjects = {s["label"]: {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.2, "runs": 100, "gbps": 2000.0,
                                     "roofline_pct": 66.0} for s in params["subjects"]}
            env = {"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "driver": "580", "torch": "2.11",
                   "triton": "3.6", "cuda": "13.0"}
            return JobResult("ok", None, "", {"copy": {"gbps": 3000.0}, "bytes_moved": 4_000_000_000,
                                              "subjects": subjects, "env": env})
        log = Path(wrap[wrap.index("--log-file") + 1])
        log.write_text(FIXTURE.read_text())
        return JobResult("ok", None, "", {})


@pytest.fixture
def setup(monkeypatch, seed_copy, tmp_path):
    monkeypatch.setattr(M, "require_gpu", lambda: get_gpu("h100_sxm"))
    monkeypatch.setattr(M.ncu, "ncu_path", lambda: "ncu")
    monkeypatch.setattr(M.ncu, "ncu_version", lambda path: "2025.3.1.0")
    monkeypatch.setattr(M.ncu, "available_metrics", lambda path, chip=None: {"dram__throughput.avg.pct_of_peak_sustained_elapsed"})
    folder = seed_copy / "avgpool2d"
    (folder / "solutions").mkdir(exist_ok=True)
    for stage in catalog().stages:  # stand-ins: the fake runner never runs them
        (folder / "solutions" / f"{stage.key}.py").write_text(f"{folder.joinpath('kernel.py').read_text()}# {stage.key}\n")
    problem = load_problem(folder)
    root = tmp_path / "measurements"

    def run(runner, **kw):
        monkeypatch.setattr(M, "run_job", runner)
        return M.measure([problem], root=root, progress=lambda m: None, **kw)

    return problem, root, run


def test_writes_a_fresh_record_per_code(setup):
    problem, root, run = setup
    written = run(FakeRunner())
    labels = M.labels_of(problem)
    assert written == {problem.key: labels}
    for label in labels:
        state, record = lookup(problem, label, "h100_sxm", root)
        assert state == "fresh"
        assert record.metrics["avgpool2d_kernel"]["dram__throughput.avg.pct_of_peak_sustained_elapsed"] == 86.16
        unlisted = "sm__warps_active.avg.pct_of_peak_sustained_active"
        assert record.metrics["avgpool2d_kernel"][unlisted] is None
        assert "not listed" in record.metric_notes[unlisted]
        assert record.metrics["avgpool2d_kernel"]["launch__grid_size"] == 380928


def test_fresh_records_are_skipped_unless_forced(setup):
    _, _, run = setup
    run(FakeRunner())
    again = FakeRunner()
    assert run(again) == {"avgpool2d": []} and again.calls == []
    forced = FakeRunner()
    run(forced, force=True)
    assert "time" in forced.calls


def test_a_killed_run_loses_only_the_job_in_flight(setup):
    problem, _, run = setup
    first = FakeRunner(crash_on=3)  # two verify jobs finish, the third is killed
    with pytest.raises(KeyboardInterrupt):
        run(first)
    resumed = FakeRunner()
    run(resumed)
    codes = len(M.labels_of(problem))
    assert resumed.calls.count("verify") == codes - 2
    assert resumed.calls.count("time") == 1 and resumed.calls.count("profile") == codes


def test_code_failing_verification_gets_no_record_and_an_error(setup):
    problem, root, run = setup
    with pytest.raises(RecordError, match="no record for seed"):
        run(FakeRunner(fail={problem.kernel_path.read_text()}))
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "missing"


def test_no_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGpuError, match="needs a CUDA GPU"):
        M.require_gpu()
