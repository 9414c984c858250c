"""measure's orchestration, with the child runner swapped for a fake (no GPU needed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder import measure as M
from builder.errors import NoGpuError, RecordError
from builder.gpus import get_gpu
from builder.judge.correctness import CaseResult, VerifyBatch, VerifyResult
from builder.judge.jobs import JOB_TYPES
from builder.judge.ncu import Profile, ProfileBatch, parse_launches
from builder.judge.timing import TimingRun
from builder.records import lookup, stored
from builder.seeds import load_problem
from builder.stages import catalog

FIXTURE = Path(__file__).parent / "fixtures" / "ncu_raw_h200_avgpool2d.csv"


def fake_runner(job, env):
    """Stands in for the job children: answers the typed verify, time and profile jobs from the job
    alone, with the judge's own result types.

    It appends [kind, labels] of each job it runs to the file $FAKE_LOG; a code containing "# FAIL"
    fails verification, one containing "# TIMED_FAIL" fails in the timing run; with $FAKE_BREAK
    set, a verify job holding the seed breaks the runner. With $FAKE_PARAMS set, it appends each
    job's parameters but its codes there."""
    typed = JOB_TYPES[job["kind"]].from_params(job["params"])
    with Path(os.environ["FAKE_LOG"]).open("a") as f:
        f.write(json.dumps([typed.kind, sorted(typed.codes)]) + "\n")
    if os.environ.get("FAKE_PARAMS"):
        with Path(os.environ["FAKE_PARAMS"]).open("a") as f:
            f.write(json.dumps({k: v for k, v in job["params"].items() if k != "codes"} | {"kind": typed.kind}) + "\n")
    phases = {"checks": 1.5}
    if typed.kind == "verify":
        if os.environ.get("FAKE_BREAK") and "seed" in typed.codes:
            raise RuntimeError("worker broke")
        case = CaseResult("c", (2, 3), True, None, "", 1e-7, 2e-7)
        result = VerifyBatch({label: VerifyResult("# FAIL" not in code, None if "# FAIL" not in code else "mismatch",
                                                  "", 1e-4, 1e-4, (case,))
                              for label, code in typed.codes.items()}, phases)
    elif typed.kind == "time":
        stats = {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.2, "runs": 100, "repeat_median_ms": 2.01}
        env_facts = {"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "driver": "580", "torch": "2.11",
                     "triton": "3.6", "cuda": "13.0"}
        ceiling = {"ceiling": {"gbps": 3100.0, "best": "stream_4096", "variants": {}},
                   "rates": {"read_gbps": 3150.0, "write_gbps": 3280.0, "copy_gbps": 3000.0}}
        errors = {label: ("guard_disabled", "a second Python thread is running")
                  for label, code in typed.codes.items() if "# TIMED_FAIL" in code}
        result = TimingRun({label: dict(stats) for label in [*typed.codes, "eager", "compile"]}, errors, 0.005,
                           ceiling, env_facts, phases={"timing": 9.0})
    else:
        launches = tuple(parse_launches(FIXTURE.read_text(), typed.metrics))
        result = ProfileBatch({label: Profile(True, None, "", launches, 1) for label in typed.codes}, {"ncu": 3.0})
    return {"status": "ok", "reason": None, "detail": "", "payload": result.to_payload(), "wall_s": 1.0}


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
    root = tmp_path / "measurements"
    lines: list[str] = []

    def run(problem=None, **kw):
        start = len(log.read_text().splitlines()) if log.exists() else 0
        try:
            return M.measure([problem or load_problem(folder)], root=root, progress=lines.append, gpus=1,
                             runner=fake_runner, **kw)
        finally:
            ran.clear()
            ran.extend(json.loads(line) for line in (log.read_text().splitlines() if log.exists() else [])[start:])

    ran: list[list] = []
    return load_problem(folder), root, run, ran, lines


def kinds(ran):
    return [kind for kind, _ in ran]


def test_writes_a_fresh_record_per_code_with_one_job_of_each_kind(setup):
    problem, root, run, ran, lines = setup
    written = run()
    labels = M.labels_of(problem)
    assert written == {problem.key: labels}
    assert kinds(ran) == ["verify", "time", "profile"]
    assert all(codes == sorted(labels) for _, codes in ran)
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
        assert record.benchmark_sha256 == problem.benchmark_sha256 and record.checks_sha256 == problem.checks_sha256
    report = "\n".join(lines)
    assert "where the time went" in report and "timing" in report and "ncu" in report


def test_a_kept_stage_shares_its_codes_jobs_and_gets_its_own_record(setup):
    problem, root, run, ran, _ = setup
    solutions = problem.dir / "solutions"
    (solutions / "advanced_memory.py").write_text((solutions / "memory_access.py").read_text())
    problem = load_problem(problem.dir)
    labels = M.labels_of(problem)
    written = run(problem)
    assert written[problem.key] == labels
    verify, profile = ran[0][1], ran[2][1]
    assert "advanced_memory" not in verify and "advanced_memory" not in profile and len(verify) == len(labels) - 1
    kept = lookup(problem, "advanced_memory", "h100_sxm", root)[1]
    assert kept is not None and kept.verification == lookup(problem, "memory_access", "h100_sxm", root)[1].verification
    assert kept.metrics == lookup(problem, "memory_access", "h100_sxm", root)[1].metrics


def test_a_timing_job_starts_the_ncu_sandbox_of_the_profile_that_follows_it(setup, monkeypatch, tmp_path):
    problem, root, run, ran, _ = setup
    params = tmp_path / "params.log"
    monkeypatch.setenv("FAKE_PARAMS", str(params))
    run()
    sent = {p["kind"]: p for p in map(json.loads, params.read_text().splitlines())}
    assert sent["time"]["ncu"] is None  # a child per job: the profile's process is another one
    params.unlink()

    class Hosted(M._Run):  # as with the default runner, whose workers host the jobs
        def __init__(self, *args, ahead=False, **kwargs):
            super().__init__(*args, ahead=True, **kwargs)

    monkeypatch.setattr(M, "_Run", Hosted)
    run(force=True)
    sent = {p["kind"]: p for p in map(json.loads, params.read_text().splitlines())}
    assert sent["time"]["ncu"] == sent["profile"]["ncu"] == "ncu"
    assert sent["time"]["metrics"] == sent["profile"]["metrics"]  # an equal recipe: the profile takes that sandbox
    assert "dram__throughput.avg.pct_of_peak_sustained_elapsed" in sent["time"]["metrics"]
    params.unlink()
    monkeypatch.setattr(M.ncu, "ncu_path", lambda: None)  # no profile follows: none starts ahead
    run(force=True)
    sent = [json.loads(line) for line in params.read_text().splitlines()]
    assert [p["kind"] for p in sent] == ["verify", "time"] and sent[1]["ncu"] is None and sent[1]["metrics"] == []


def test_fresh_records_are_skipped_unless_forced(setup):
    _, _, run, ran, _ = setup
    run()
    assert run() == {"avgpool2d": []} and ran == []
    run(force=True)
    assert kinds(ran) == ["verify", "time", "profile"]


def test_a_new_case_re_runs_the_verification_and_nothing_else(setup):
    problem, root, run, ran, _ = setup
    run()
    before = stored(problem, "seed", "h100_sxm", root)
    manifest = problem.dir / "manifest.toml"
    manifest.write_text(manifest.read_text() + '\n[[cases]]\nname = "added"\ninit = { kernel_size = 2 }\n'
                                               'shape = [1, 2, 9, 9]\n')
    written = run()
    assert kinds(ran) == ["verify"]
    assert written["avgpool2d"] == M.labels_of(problem)
    after = stored(load_problem(problem.dir), "seed", "h100_sxm", root)
    assert after.run_id == before.run_id and after.timing == before.timing and after.metrics == before.metrics
    assert after.checks_sha256 != before.checks_sha256
    assert lookup(load_problem(problem.dir), "seed", "h100_sxm", root)[0] == "fresh"


def test_a_changed_solution_is_re_verified_and_profiled_alone_and_every_code_re_timed(setup):
    problem, root, run, ran, _ = setup
    run()
    path = problem.dir / "solutions" / "block_tiling.py"
    path.write_text(path.read_text() + "# changed\n")
    run()
    assert ran == [["verify", ["block_tiling"]], ["time", sorted(M.labels_of(problem))], ["profile", ["block_tiling"]]]
    run_ids = {stored(problem, label, "h100_sxm", root).run_id for label in M.labels_of(problem)}
    assert len(run_ids) == 1


def test_a_failed_run_resumes_with_only_the_unfinished_jobs(setup, monkeypatch):
    problem, root, run, ran, _ = setup
    monkeypatch.setenv("FAKE_BREAK", "1")
    with pytest.raises(RecordError, match="no record for"):
        run()
    monkeypatch.delenv("FAKE_BREAK")
    run()
    assert kinds(ran) == ["verify", "time", "profile"]
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "fresh"


def test_records_of_a_problem_land_before_the_next_problem_is_measured(setup, seed_copy):
    problem, root, run, ran, lines = setup
    other = load_problem(seed_copy / "avgpool1d")
    M.measure([problem, other], root=root, progress=lines.append, gpus=1, runner=fake_runner)
    wrote = [i for i, line in enumerate(lines) if "wrote" in line]
    second_time = [i for i, line in enumerate(lines) if " time avgpool1d" in line]
    assert len(wrote) == 2 and wrote[0] < second_time[0]


def test_a_solution_failing_verification_gets_no_record_and_an_error(setup):
    problem, root, run, ran, _ = setup
    path = problem.solutions["block_tiling"]
    path.write_text(path.read_text() + "# FAIL\n")
    with pytest.raises(RecordError, match=r"no record for block_tiling \(failed verification: mismatch"):
        run(load_problem(problem.dir))
    assert lookup(problem, "block_tiling", "h100_sxm", root)[0] == "missing"
    assert all("block_tiling" not in labels for kind, labels in ran if kind != "verify")


def test_a_seed_failing_verification_is_still_timed_and_recorded_as_failed(setup):
    """The seed is the origin's code: stage 1 improves on it whatever the broader checks say."""
    problem, root, run, ran, _ = setup
    problem.kernel_path.write_text(problem.kernel_path.read_text() + "# FAIL\n")
    run(load_problem(problem.dir))
    state, record = lookup(problem, "seed", "h100_sxm", root)
    assert state == "fresh" and record.verification["passed"] is False
    assert record.verification["reason"] == "mismatch" and record.timing["median_ms"] == 2.0
    assert all("seed" in labels for _, labels in ran)


def test_a_code_failing_while_timed_gets_no_record_and_the_error_says_why(setup):
    problem, root, run, _, lines = setup
    problem.kernel_path.write_text(problem.kernel_path.read_text() + "# TIMED_FAIL\n")
    with pytest.raises(RecordError, match=r"no record for seed \(failed while timed: guard_disabled: a second"):
        run(load_problem(problem.dir))
    assert lookup(problem, "seed", "h100_sxm", root)[0] == "missing"
    assert lookup(problem, "grid_and_parallel", "h100_sxm", root)[0] == "fresh"
    # The progress line counts the records on disk and says at once why one is missing.
    wrote = next(line for line in lines if f"{problem.key}: wrote" in line)
    others = [label for label in M.labels_of(problem) if label != "seed"]
    assert f"wrote {len(others)} record(s): {', '.join(others)}" in wrote
    assert "no record for seed (failed while timed" in wrote


KILL_SCRIPT = """
import json, os, sys, time
from pathlib import Path
from builder import measure as M
from builder.gpus import get_gpu
from builder.seeds import load_problem
from tests.test_measure import fake_runner

M.require_gpu = lambda: get_gpu("h100_sxm")
M.ncu.ncu_path = lambda: "ncu"
M.ncu.ncu_version = lambda path: "2025.3.1.0"
M.ncu.available_metrics = lambda path, chip=None: set()

def slow(job, env):
    time.sleep(0.4)
    return fake_runner(job, env)

if __name__ == "__main__":
    problems = [load_problem(Path(p)) for p in sys.argv[2:]]
    M.measure(problems, root=Path(sys.argv[1]), progress=lambda m: print(m, flush=True), gpus=1, runner=slow)
"""


def test_a_run_killed_mid_way_keeps_its_records_and_a_rerun_writes_each_record_once(setup, seed_copy, tmp_path):
    problem, root, run, ran, _ = setup
    others = [seed_copy / "avgpool1d", seed_copy / "maxpool1d"]
    folders = [problem.dir, *others]
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, str(script), str(root), *map(str, folders)], env=env,
                            stdout=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "wrote" in line:  # the first problem's records are on disk: kill the run now
            proc.kill()
            break
    proc.wait()
    proc.stdout.close()
    first = [load_problem(f) for f in folders]
    fresh = {p.key for p in first if all(lookup(p, l, "h100_sxm", root)[0] == "fresh" for l in M.labels_of(p))}
    assert fresh == {problem.key}
    stamps = {label: stored(problem, label, "h100_sxm", root).run_id for label in M.labels_of(problem)}
    written = M.measure(first, root=root, progress=lambda m: None, gpus=1, runner=fake_runner)
    assert written[problem.key] == []  # its records were already written: not again
    assert {label: stored(problem, label, "h100_sxm", root).run_id for label in M.labels_of(problem)} == stamps
    assert all(written[p.key] == M.labels_of(p) for p in first[1:])


def test_no_gpu_is_a_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(NoGpuError, match="needs a CUDA GPU"):
        M.require_gpu()


def test_without_a_gpu_a_new_case_is_checked_on_the_cpu_and_only_the_verification_is_rewritten(seed_copy, tmp_path,
                                                                                                 monkeypatch):
    from tests.recordfactory import write_chain

    problem = load_problem(seed_copy / "avgpool2d")
    root = tmp_path / "measurements"
    labels = write_chain(problem, root)
    ran = []

    class CpuCheck:
        def __init__(self, problem_dir, codes, device):
            ran.append((device, sorted(codes)))
            self.codes = codes

        def run(self):
            case = CaseResult("added", (1, 2, 9, 9), True, None, "", 2e-7, 3e-7)
            return VerifyBatch({label: VerifyResult(label != "seed", None if label != "seed" else "mismatch",
                                                    "", 1e-4, 1e-4, (case,)) for label in self.codes})

    monkeypatch.setattr(M, "VerifyJob", CpuCheck)
    manifest = problem.dir / "manifest.toml"
    manifest.write_text(manifest.read_text() + '\n[[cases]]\nname = "added"\ninit = { kernel_size = 2 }\n'
                                               'shape = [1, 2, 9, 9]\n')
    changed = load_problem(problem.dir)
    assert all(lookup(changed, label, "h100_sxm", root)[0] == "stale" for label in labels)
    lines = []
    refreshed = M.refresh_checks([changed], root=root, progress=lines.append)
    assert ran == [("cpu", sorted(labels))] and refreshed == {"h100_sxm/avgpool2d": labels}
    for label in labels:
        state, record = lookup(changed, label, "h100_sxm", root)
        assert state == "fresh" and record.verification["device"] == "cpu" and record.run_id == "r1"
        assert record.verification["passed"] == (label != "seed")
    assert lookup(changed, "seed", "h100_sxm", root)[1].verification["reason"] == "mismatch"
    assert any("seed FAILED the new checks (recorded as failed): mismatch" in line for line in lines)
    (problem.dir / "reference.py").write_text((problem.dir / "reference.py").read_text() + "\n# changed\n")
    assert M.refresh_checks([load_problem(problem.dir)], root=root, progress=lines.append) == {}
    assert "need a GPU" in lines[-1]
def test_bytes_moved_reads_every_input_and_writes_every_output_once():
    from pathlib import Path

    from builder.measure import bytes_moved
    from builder.seeds import get_problem, load_problem

    rowloss = load_problem(Path(__file__).parent / "fixtures" / "problems" / "rowloss")
    assert bytes_moved(rowloss) == 32768 * 4096 * 4 + 32768 * 8 + 4  # float logits, int64 targets, a 0-dim loss
    assert bytes_moved(get_problem("avgpool1d")) == (64 * 128 * 65536 + 64 * 128 * 65537) * 4
