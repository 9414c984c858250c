"""measure's orchestration, with the child runner swapped for a fake (no GPU needed)."""

from pathlib import Path

import pytest

from builder import measure as M
from builder.errors import NoGpuError, RecordError
from builder.gpus import get_gpu
from builder.judge.ncu import Profile, parse_launches
from builder.judge.runner import JobResult
from builder.records import lookup
from builder.seeds import load_problem
from builder.stages import catalog

FIXTURE = Path(__file__).parent / "fixtures" / "ncu_raw_h200_avgpool2d.csv"


class FakeRunner:
    """Stands in for the sandboxed verify, the side-by-side timing run and the ncu profile."""

    def __init__(self, fail=(), crash_on=None):
        self.calls = []
        self.fail = set(fail)
        self.crash_on = crash_on

    def _call(self, kind):
        self.calls.append(kind)
        if self.crash_on == len(self.calls):
            raise KeyboardInterrupt("killed")

    def verify(self, problem, code, *, device, trials=0, timeout_s=0):
        self._call("verify")
        bad = code in self.fail
        return JobResult("ok", None, "", {"ok": not bad, "reason": "mismatch" if bad else None, "atol": 1e-4,
                                          "rtol": 1e-4, "cases": [{"name": "c", "max_abs_err": 1e-7, "max_rel_err": 2e-7}]})

    def time(self, problem, codes, *, baselines=True):
        self._call("time")
        stats = {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.2, "runs": 100, "repeat_median_ms": 2.01}
        subjects = {label: dict(stats) for label in [*codes, "eager", "compile"]}
        env = {"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "driver": "580", "torch": "2.11",
               "triton": "3.6", "cuda": "13.0"}
        ceiling = {"ceiling": {"gbps": 3100.0, "best": "stream_4096", "variants": {}},
                   "rates": {"read_gbps": 3150.0, "write_gbps": 3280.0, "copy_gbps": 3000.0}}
        return JobResult("ok", None, "", {"subjects": subjects, "errors": {}, "noise": 0.005, "ceiling": ceiling,
                                          "env": env})

    def profile(self, problem, code, metrics, ncu_bin, *, timeout_s, log_dir, seed=0):
        self._call("profile")
        launches = parse_launches(FIXTURE.read_text(), list(metrics))
        return Profile(True, None, "", tuple(launches), 1)


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
        monkeypatch.setattr(M, "verify_code", runner.verify)
        monkeypatch.setattr(M, "timing_job", runner.time)
        monkeypatch.setattr(M.ncu, "profile", runner.profile)
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
        assert record.noise == 0.005 and record.baselines["ceiling_gbps"] == 3100.0
        assert record.roofline_pct == pytest.approx(100 * record.gbps / 3100.0)


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
