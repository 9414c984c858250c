"""measure's orchestration, with the child runner swapped for a fake (no GPU needed)."""

import json
from pathlib import Path

import pytest

from builder import measure as M
from builder.errors import NoGpuError, RecordError
from builder.gpus import get_gpu
from builder.judge.ncu import Profile, parse_launches
from builder.records import lookup
from builder.seeds import load_problem
from builder.stages import catalog

FIXTURE = Path(__file__).parent / "fixtures" / "ncu_raw_h200_avgpool2d.csv"


def fake_runner(job, env):
    """Stands in for the job children: answers verify, time and profile jobs from the job alone.

    It appends each job it runs to the file $FAKE_LOG; a code containing "# FAIL" fails verification,
    one containing "# TIMED_FAIL" fails in the timing run, and with $FAKE_BREAK set, the first
    verify job of the seed breaks the runner."""
    import json
    import os

    log = Path(os.environ["FAKE_LOG"])
    params = job["params"]
    with log.open("a") as f:
        f.write(json.dumps([job["kind"], params.get("label")]) + "\n")
    if job["kind"] == "verify":
        if os.environ.get("FAKE_BREAK") and params["label"] == "seed":
            raise RuntimeError("worker broke")
        bad = "# FAIL" in params["code"]
        payload = {"ok": not bad, "reason": "mismatch" if bad else None, "atol": 1e-4, "rtol": 1e-4,
                   "cases": [{"name": "c", "max_abs_err": 1e-7, "max_rel_err": 2e-7}]}
    elif job["kind"] == "time":
        stats = {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.2, "runs": 100, "repeat_median_ms": 2.01}
        subjects = {label: dict(stats) for label in [*params["codes"], "eager", "compile"]}
        env_facts = {"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "driver": "580", "torch": "2.11",
                     "triton": "3.6", "cuda": "13.0"}
        ceiling = {"ceiling": {"gbps": 3100.0, "best": "stream_4096", "variants": {}},
                   "rates": {"read_gbps": 3150.0, "write_gbps": 3280.0, "copy_gbps": 3000.0}}
        errors = {label: ["guard_disabled", "a second Python thread is running"]
                  for label, code in params["codes"].items() if "# TIMED_FAIL" in code}
        payload = {"subjects": subjects, "errors": errors, "noise": 0.005, "ceiling": ceiling, "env": env_facts}
    else:
        launches = parse_launches(FIXTURE.read_text(), params["metrics"])
        payload = {"metrics": Profile(True, None, "", tuple(launches), 1).metrics()}
    return {"status": "ok", "reason": None, "detail": "", "payload": payload}


@pytest.fixture
def setup(monkeypatch, seed_copy, tmp_path):
    monkeypatch.setattr(M, "require_gpu", lambda: get_gpu("h100_sxm"))
    monkeypatch.setattr(M.ncu, "ncu_path", lambda: "ncu")
    monkeypatch.setattr(M.ncu, "ncu_version", lambda path: "2025.3.1.0")
    monkeypatch.setattr(M.ncu, "available_metrics", lambda path, chip=None: {"dram__throughput.avg.pct_of_peak_sustained_elapsed"})
    log = tmp_path / "jobs.log"
    monkeypatch.setenv("FAKE_LOG", str(log))
    folder = seed_copy / "avgpool2d"
    (folder / "solutions").mkdir(exist_ok=True)
    for stage in catalog().stages:  # stand-ins: the fake runner never runs them
        (folder / "solutions" / f"{stage.key}.py").write_text(f"{folder.joinpath('kernel.py').read_text()}# {stage.key}\n")
    problem = load_problem(folder)
    root = tmp_path / "measurements"

    def run(**kw):
        start = len(log.read_text().splitlines()) if log.exists() else 0
        try:
            return M.measure([problem], root=root, progress=lambda m: None, gpus=1, runner=fake_runner, **kw)
        finally:
            ran.clear()
            ran.extend(json.loads(line)[0] for line in (log.read_text().splitlines() if log.exists() else [])[start:])

    ran: list[str] = []
    return problem, root, run, ran


def test_writes_a_fresh_record_per_code(setup):
    problem, root, run, ran = setup
    written = run()
    labels = M.labels_of(problem)
    assert written == {problem.key: labels}
    assert ran.count("verify") == len(labels) and ran.count("time") == 1 and ran.count("profile") == len(labels)
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


def test_a_kept_stage_shares_its_codes_jobs_and_gets_its_own_record(setup):
    problem, root, run, ran = setup
    solutions = problem.dir / "solutions"
    (solutions / "advanced_memory.py").write_text((solutions / "memory_access.py").read_text())
    problem = load_problem(problem.dir)
    labels = M.labels_of(problem)
    written = run()
    assert written[problem.key] == labels
    assert ran.count("verify") == ran.count("profile") == len(labels) - 1 and ran.count("time") == 1
    kept = lookup(problem, "advanced_memory", "h100_sxm", root)[1]
    assert kept is not None and kept.verification == lookup(problem, "memory_access", "h100_sxm", root)[1].verification


def test_fresh_records_are_skipped_unless_forced(setup):
    _, _, run, ran = setup
    run()
    assert run() == {"avgpool2d": []} and ran == []
    run(force=True)
    assert "time" in ran


def test_a_failed_run_resumes_with_only_the_unfinished_jobs(setup, monkeypatch):
    problem, root, run, ran = setup
    monkeypatch.setenv("FAKE_BREAK", "1")
    with pytest.raises(RecordError, match="no record for seed"):
        run()
    monkeypatch.delenv("FAKE_BREAK")
    run()
    assert ran.count("verify") == 1  # only the seed's verify ran again
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "fresh"


def test_code_failing_verification_gets_no_record_and_an_error(setup):
    problem, root, run, _ = setup
    problem.kernel_path.write_text(problem.kernel_path.read_text() + "# FAIL\n")
    with pytest.raises(RecordError, match="no record for seed"):
        run()
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "missing"


def test_a_code_failing_while_timed_gets_no_record_and_the_error_says_why(setup):
    problem, root, run, _ = setup
    problem.kernel_path.write_text(problem.kernel_path.read_text() + "# TIMED_FAIL\n")
    with pytest.raises(RecordError, match=r"no record for seed \(failed while timed: guard_disabled: a second"):
        run()
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "missing"
    assert lookup(problem, "grid_and_parallel", "h100_sxm", root)[0] == "fresh"


def test_no_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGpuError, match="needs a CUDA GPU"):
        M.require_gpu()
