"""Workers that host the judge's typed jobs (builder.executors.host): CPU verify jobs of the ReLU
fixture problem in the Triton interpreter, no GPU needed.

The fixture's copy here has a reference that prints the id of the process that loads it. The
judge loads the reference in its own process, so a job's log names the process that ran the job:
the worker itself when it hosts the job, a child of it when it does not.
"""

import multiprocessing as mp
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from builder import PROJECT_ROOT
from builder.executors import Job, LocalExecutor, default_runner
from builder.executors.host import HOST_ENV, HostSettings, JobHost
from builder.executors.local import _Running, _Slot
from builder.judge.jobs import VerifyJob
from builder.judge.runner import JobResult, run_job
from tests.executors.standins import standin

RELU = PROJECT_ROOT / "tests" / "fixtures" / "problems" / "relu"
LOADED = re.compile(r"reference loaded by process (\d+)")


@pytest.fixture(autouse=True)
def hosting_on(monkeypatch):
    monkeypatch.delenv(HOST_ENV, raising=False)


@pytest.fixture
def relu(tmp_path: Path) -> Path:
    folder = tmp_path / "relu"
    shutil.copytree(RELU, folder)
    reference = folder / "reference.py"
    said = 'print(f"reference loaded by process {__import__(\'os\').getpid()}")'
    reference.write_text(f"{reference.read_text()}\n\n{said}\n")
    return folder


def verify(folder: Path, label: str, device: str = "cpu") -> Job:
    typed = VerifyJob(str(folder), {label: (RELU / "kernel.py").read_text()}, device=device)
    return Job(typed.kind, f"{label}-{device}", typed.params(), typed.timeout_s, exclusive=typed.exclusive)


def loaded_by(outcome) -> set[int]:
    """The processes that loaded the reference during the job."""
    return {int(pid) for pid in LOADED.findall(outcome.result["log"])}


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent id) of a process; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    """Every live process below `root`."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None and stat[0] not in ("Z", "X"):
            parents[int(entry.name)] = stat[1]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def sandboxes_below(root: int) -> set[int]:
    found = set()
    for pid in descendants(root):
        try:
            if b"builder.judge.sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def test_typed_jobs_run_one_after_another_in_the_worker_as_a_child_would_run_them(relu):
    jobs = [verify(relu, label) for label in ("a", "b", "c")]
    helpers: set[int] = set()

    def look(outcome):
        for pid in loaded_by(outcome):
            helpers.update(descendants(pid))

    outcomes = LocalExecutor(1).run(jobs, on_result=look)
    assert all(o.ok for o in outcomes), [o.result for o in outcomes]
    served = [loaded_by(o) for o in outcomes]
    assert len(served[0]) == 1 and served[0] == served[1] == served[2], served
    first, second = (o.result["phases"]["start"] for o in outcomes[:2])
    assert second < first and second < 0.5, (first, second)  # the second job waited for no start
    sandbox_starts = [o.result["payload"]["phases"]["start"] for o in outcomes]
    assert sandbox_starts[1] < sandbox_starts[0]  # the zygote was still there

    child = asdict(run_job("verify", jobs[0].params, jobs[0].timeout_s))
    hosted = outcomes[0].result
    assert set(hosted) == set(child)
    assert (hosted["status"], hosted["reason"], hosted["detail"]) == (child["status"], child["reason"], child["detail"])
    assert set(hosted["payload"]) == set(child["payload"])
    for label, verdict in child["payload"]["results"].items():
        mine = hosted["payload"]["results"][label]
        assert mine["ok"] and verdict["ok"]
        assert [c["name"] for c in mine["cases"]] == [c["name"] for c in verdict["cases"]]
    assert loaded_by(outcomes[0]).isdisjoint(int(p) for p in LOADED.findall(child["log"]))

    assert helpers, "the worker kept no process between jobs (the CPU sandboxes' zygote)"
    time.sleep(0.2)
    assert not [pid for pid in helpers if alive(pid)], "processes outlived the executor"


def test_without_hosting_each_job_runs_in_a_child_of_its_own(relu, monkeypatch):
    monkeypatch.setenv(HOST_ENV, "0")
    outcomes = LocalExecutor(1).run([verify(relu, label) for label in ("a", "b")])
    assert all(o.ok for o in outcomes)
    first, second = (loaded_by(o) for o in outcomes)
    assert len(first) == len(second) == 1 and first != second


def test_hosting_is_for_the_default_runner_and_can_be_turned_off(monkeypatch):
    assert LocalExecutor(1).host_jobs
    assert not LocalExecutor(1, host_jobs=False).host_jobs
    assert not LocalExecutor(1, runner=standin).host_jobs
    monkeypatch.setenv(HOST_ENV, "0")
    assert not LocalExecutor(1).host_jobs
    assert LocalExecutor(1, host_jobs=True).host_jobs


def test_a_hosted_job_that_raises_is_a_failure_and_the_next_job_runs_in_the_same_worker(relu, tmp_path):
    broken = VerifyJob(str(tmp_path / "nowhere"), {"a": "x = 1\n"}, device="cpu")
    jobs = [verify(relu, "a"), Job("verify", "broken", broken.params(), 60, exclusive=False), verify(relu, "b")]
    outcomes = LocalExecutor(1).run(jobs)
    failed = outcomes[1].result
    assert failed["status"] == "failed" and failed["reason"] == "runtime_error"
    assert "missing manifest.toml" in failed["detail"]
    assert outcomes[0].ok and outcomes[2].ok
    assert len(loaded_by(outcomes[0])) == 1 and loaded_by(outcomes[0]) == loaded_by(outcomes[2])
    assert failed["phases"] == {} and outcomes[2].result["phases"]["start"] < 0.5


def test_a_job_of_the_other_device_kind_runs_in_a_child(relu):
    outcomes = LocalExecutor(1).run([verify(relu, "a"), verify(relu, "a", device="cuda"), verify(relu, "b")])
    hosted, other, again = (loaded_by(o) for o in outcomes)
    assert len(hosted) == 1 and hosted == again
    assert len(other) == 1 and other != hosted
    assert outcomes[1].result["phases"]["start"] > outcomes[2].result["phases"]["start"]


def test_a_worker_whose_gpu_failed_is_replaced_and_the_next_job_is_hosted_again(relu, tmp_path):
    # The job's error names "[CUDA]", which reads as a device failure: the process that hosts GPU
    # jobs counts as broken, says so with its result and exits.
    failing = VerifyJob(str(tmp_path / "[CUDA] gone"), {"a": "x = 1\n"}, device="cuda")
    jobs = [Job("verify", "gpu", failing.params(), 60, exclusive=False), verify(relu, "a"), verify(relu, "b")]
    outcomes = LocalExecutor(1).run(jobs)
    assert outcomes[0].result["reason"] == "crash" and outcomes[0].attempts == 1
    assert outcomes[1].ok and outcomes[2].ok
    # A worker still hosting GPU jobs would run both CPU jobs in children of their own.
    assert len(loaded_by(outcomes[1])) == 1 and loaded_by(outcomes[1]) == loaded_by(outcomes[2])


def run_on(slot: _Slot, job: Job, timeout_s: float = 300) -> dict:
    slot.send(_Running(0, job, 1, time.monotonic()))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = slot.receive()
        if message is not None:
            slot.running = None
            result, stops = message
            assert not stops
            return result
        assert slot.process.is_alive()
        time.sleep(0.05)
    raise AssertionError(f"no result for {job.key} within {timeout_s} s")


def wait_for(probe, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("waited in vain")


def test_a_worker_keeps_a_spare_sandbox_the_next_job_takes_and_a_sigterm_ends_them_all(relu, monkeypatch):
    monkeypatch.setenv("KP_SANDBOX_ZYGOTE", "0")  # CPU sandboxes start as new processes: a spare pays
    slot = _Slot(mp.get_context("spawn"), default_runner, "0", None, HostSettings(spares=1))
    try:
        assert run_on(slot, verify(relu, "a"))["status"] == "ok"
        [spare] = wait_for(lambda: sandboxes_below(slot.process.pid))
        assert run_on(slot, verify(relu, "b"))["status"] == "ok"
        assert not alive(spare), "the second job did not take the spare"
        [behind] = wait_for(lambda: sandboxes_below(slot.process.pid))
        assert behind != spare
        below = descendants(slot.process.pid)
    finally:
        slot.kill()  # SIGTERM first: the worker ends what it kept
    assert slot.process.exitcode == 128 + 15
    assert not [pid for pid in below if alive(pid)]


def test_a_failing_gpu_ends_the_hosting(monkeypatch):
    import torch

    def lost() -> None:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lost)
    quiet = {"status": "ok", "reason": None, "detail": "", "payload": {}}
    host = JobHost(HostSettings())
    host.device = "cuda"
    host.settle(quiet)
    assert not host.usable
    cpu = JobHost(HostSettings())
    cpu.device = "cpu"
    cpu.settle(quiet)
    assert cpu.usable
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    crashed = JobHost(HostSettings())
    crashed.device = "cuda"
    crashed.settle({**quiet, "status": "failed", "reason": "crash",
                    "detail": "RuntimeError: CUDA error: misaligned address"})
    assert not crashed.usable
    fine = JobHost(HostSettings())
    fine.device = "cuda"
    fine.settle({**quiet, "status": "failed", "reason": "timeout", "detail": "no answer within 60 s"})
    assert fine.usable


def test_a_job_result_from_a_child_keeps_its_fields():
    data = {"status": "failed", "reason": "mismatch", "detail": "off", "payload": {"x": 1}, "phases": {"start": 1.0}}
    result = JobResult.from_child(data, 2.0, "printed")
    assert asdict(result) == {**data, "wall_s": 2.0, "log": "printed"}


@pytest.mark.gpu
def test_a_gpu_worker_hosts_a_problems_jobs_and_leaves_nothing_behind(relu):
    """On a GPU: verify (with a benchmark-size trial), time and, where ncu is installed, profile
    jobs all run in the worker; the second verify and the timing wait for no process start, and
    the profile takes the ncu sandbox the timing job started (ncu's start took 8.8 to 10.2 s of
    each profile on an H100)."""
    from builder.judge.jobs import ProfileJob, TimeJob
    from builder.judge.ncu import ncu_path

    code = (RELU / "kernel.py").read_text()

    def envelope(typed, key):
        return Job(typed.kind, key, typed.params(), typed.timeout_s, exclusive=typed.exclusive)

    jobs = [envelope(VerifyJob(str(relu), {"a": code}, trials=1), "a"),
            envelope(VerifyJob(str(relu), {"b": code}, trials=1), "b"),
            envelope(TimeJob(str(relu), {"a": code}, baselines=False, ncu=ncu_path()), "t")]
    if ncu_path() is not None:
        jobs.append(envelope(ProfileJob(str(relu), {"a": code}, metrics=[], ncu=ncu_path()), "p"))
    helpers: set[int] = set()

    def look(outcome):
        for pid in loaded_by(outcome):
            helpers.update(descendants(pid))

    outcomes = LocalExecutor(1).run(jobs, on_result=look)
    assert all(o.ok for o in outcomes), [o.result for o in outcomes if not o.ok]
    assert all(o.result["payload"]["results"]["a" if o.job.key == "a" else "b"]["ok"] for o in outcomes[:2])
    assert len(loaded_by(outcomes[0])) == 1 and loaded_by(outcomes[0]) == loaded_by(outcomes[1])
    for outcome in outcomes[1:]:
        assert outcome.result["phases"].get("start", 0.0) < 1.0, (outcome.job.kind, outcome.result["phases"])
    print({o.job.key: (o.result["phases"], o.result["payload"].get("phases")) for o in outcomes})
    if ncu_path() is not None:
        profiled = outcomes[3].result["payload"]["phases"]
        assert profiled.get("start", 0.0) < 5.0, profiled
    time.sleep(0.2)
    assert not [pid for pid in helpers if alive(pid)], "processes outlived the executor"
