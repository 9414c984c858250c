"""The local executor with stand-in runners: worker processes on fake GPU labels, no GPU needed."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from builder import PROJECT_ROOT
from builder.executors import ExecutorError, Job, JobCache, LocalExecutor, default_runner
from builder.executors.local import pick_devices
from tests.executors.standins import jobs_for, standin


def starts(log: Path) -> Counter:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def test_every_job_runs_once_and_maps_back(tmp_path):
    log = tmp_path / "log"
    jobs = jobs_for(log, 6)
    seen = []
    outcomes = LocalExecutor(2, runner=standin).run(jobs, on_result=seen.append)
    assert starts(log) == Counter(job.key for job in jobs)
    assert [o.job for o in outcomes] == jobs
    assert [o.result["payload"]["key"] for o in outcomes] == [job.key for job in jobs]
    assert sorted(o.job.key for o in seen) == sorted(job.key for job in jobs)
    assert all(o.ok and o.attempts == 1 and not o.cached for o in outcomes)


def test_each_worker_has_its_own_gpu(tmp_path):
    log = tmp_path / "log"
    jobs = jobs_for(log, 2, mode="meet", group_dir=str(tmp_path / "group"), group_size=2)
    outcomes = LocalExecutor(2, runner=standin).run(jobs)
    payloads = [o.result["payload"] for o in outcomes]
    assert sorted(p["env_cvd"] for p in payloads) == ["0", "1"]
    assert all(p["env_cvd"] == p["os_cvd"] for p in payloads)
    assert len({p["pid"] for p in payloads}) == 2
    assert sorted(o.worker for o in outcomes) == ["local:gpu0", "local:gpu1"]


def test_workers_sharing_a_gpu_run_at_once_on_that_gpu(tmp_path):
    log = tmp_path / "log"
    # "meet" waits until both jobs have started: it finishes only if they run at the same time.
    jobs = jobs_for(log, 2, exclusive=False, mode="meet", group_dir=str(tmp_path / "group"), group_size=2)
    outcomes = LocalExecutor(devices=["5"], per_gpu=2, runner=standin).run(jobs)
    payloads = [o.result["payload"] for o in outcomes]
    assert all(o.ok for o in outcomes), [o.result for o in outcomes]
    assert [p["env_cvd"] for p in payloads] == ["5", "5"]
    assert len({p["pid"] for p in payloads}) == 2


def spans(outcomes):
    return {o.job.key: (o.result["payload"]["start"], o.result["payload"]["end"]) for o in outcomes}


def test_an_exclusive_job_has_its_gpu_alone_and_goes_first(tmp_path):
    log = tmp_path / "log"
    shared = jobs_for(log, 3, exclusive=False, prefix="shared", sleep=0.5)
    alone = jobs_for(log, 1, prefix="alone", sleep=0.5)
    outcomes = LocalExecutor(devices=["0"], per_gpu=2, runner=standin).run(shared + alone)
    times = spans(outcomes)
    start, end = times.pop("alone00")
    assert all(s >= end for s, _ in times.values()), "a shared job started before or beside the exclusive one"
    (s0, e0), (s1, e1) = times["shared00"], times["shared01"]
    assert s0 < e1 and s1 < e0, "two shared jobs did not share the GPU"


def test_an_exclusive_follow_up_waits_for_the_shared_jobs_and_blocks_new_ones(tmp_path):
    log = tmp_path / "log"
    shared = jobs_for(log, 3, exclusive=False, prefix="shared", sleep=0.6)
    quick = jobs_for(log, 1, exclusive=False, prefix="quick")

    def next_job(outcome):
        return jobs_for(log, 1, prefix="alone", sleep=0.3) if outcome.job.key == "quick00" else None

    outcomes = LocalExecutor(devices=["0"], per_gpu=2, runner=standin).run(quick + shared, on_result=next_job)
    times = spans(outcomes)
    start, end = times.pop("alone00")
    assert all(e <= start or s >= end for s, e in times.values()), "a shared job ran beside the exclusive one"
    assert [k for k, (s, _) in times.items() if s >= end] == ["shared01", "shared02"]  # held back for it


def test_a_gpus_exclusive_jobs_all_run_in_one_of_its_workers(tmp_path):
    """A timing job and the profile after it meet in one process: what the first starts ahead for
    the second (measure's ncu sandbox) is there for it."""
    log = tmp_path / "log"
    shared = jobs_for(log, 4, exclusive=False, prefix="v", sleep=0.2)

    def next_job(outcome):
        step = {"v": "t", "t": "p"}.get(outcome.job.key[0])
        return [Job("time", step + outcome.job.key[1:], {"log": str(log)}, timeout_s=30)] if step else None

    outcomes = LocalExecutor(devices=["0"], per_gpu=3, runner=standin).run(shared, on_result=next_job)
    pids = {o.job.key: o.result["payload"]["pid"] for o in outcomes}
    assert len({pid for key, pid in pids.items() if key[0] == "v"}) > 1  # the shared ones spread out
    assert len({pid for key, pid in pids.items() if key[0] in "tp"}) == 1, pids


def test_follow_up_jobs_run_next_and_come_back_in_order(tmp_path):
    log = tmp_path / "log"
    first = jobs_for(log, 3, exclusive=False, prefix="v")

    def next_job(outcome):
        if outcome.job.key.startswith("v"):
            return [Job("time", "t" + outcome.job.key[1:], {"log": str(log)}, timeout_s=30)]
        return None

    outcomes = LocalExecutor(devices=["0"], per_gpu=1, runner=standin).run(first, on_result=next_job)
    assert [o.job.key for o in outcomes] == ["v00", "v01", "v02", "t00", "t01", "t02"]
    assert log.read_text().split() == ["v00", "t00", "v01", "t01", "v02", "t02"]  # depth first


def test_cached_jobs_still_get_their_follow_ups(tmp_path):
    log = tmp_path / "log"
    cache = JobCache(tmp_path / "cache")
    first = jobs_for(log, 2, exclusive=False, prefix="v")
    LocalExecutor(devices=["0"], runner=standin, cache=cache).run(first)
    follow = []

    def next_job(outcome):
        follow.append(outcome.job.key)
        return [Job("time", "t" + outcome.job.key[1:], {"log": str(log)}, timeout_s=30)] if outcome.cached else None

    outcomes = LocalExecutor(devices=["0"], runner=standin, cache=cache).run(first, on_result=next_job)
    assert [o.job.key for o in outcomes] == ["v00", "t00", "v01", "t01"]
    assert [o.cached for o in outcomes] == [True, False, True, False]


def test_jobs_per_gpu_must_be_positive():
    from builder.executors import make_executor

    with pytest.raises(ExecutorError, match="at least 1"):
        make_executor("local", gpus=1, per_gpu=0)


def test_the_default_runner_hands_the_gpu_and_the_outputs_to_the_child(tmp_path):
    out = tmp_path / "made" / "here.txt"
    job = Job("tests.executors.standins:child_job", "k1", {"device": "cuda", "out": str(out)}, timeout_s=60,
              outputs=(str(out),))
    [outcome] = LocalExecutor(devices=["3"], runner=default_runner).run([job])
    assert outcome.ok, outcome.result
    assert outcome.result["payload"] == {"cvd": "3"}
    assert outcome.result["files"] == {str(out): out.read_text()}


def test_a_runner_that_raises_or_answers_badly_is_a_recorded_failure(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("verify", "boom", {"log": str(log), "mode": "raise"}, 30),
            Job("verify", "half", {"log": str(log), "mode": "not_a_result"}, 30),
            Job("verify", "fine", {"log": str(log)}, 30)]
    outcomes = LocalExecutor(1, runner=standin).run(jobs)
    assert [o.result["reason"] for o in outcomes] == ["runner_error", "runner_error", None]
    assert "stand-in runner broke" in outcomes[0].result["detail"]
    assert "payload" in outcomes[1].result["detail"]
    assert starts(log) == Counter({"boom": 1, "half": 1, "fine": 1})


def test_a_worker_that_dies_is_replaced_and_its_job_retried_once(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("verify", "flaky", {"log": str(log), "mode": "exit_first", "marker": str(tmp_path / "m")}, 30),
            Job("verify", "doomed", {"log": str(log), "mode": "exit_always"}, 30),
            *jobs_for(log, 3)]
    outcomes = {o.job.key: o for o in LocalExecutor(2, runner=standin, poll_s=0.1).run(jobs)}
    assert outcomes["flaky"].ok and outcomes["flaky"].attempts == 2
    assert outcomes["doomed"].result["reason"] == "worker_lost"
    assert outcomes["doomed"].attempts == 2 and "exit code 3" in outcomes["doomed"].result["detail"]
    assert all(outcomes[f"job0{i}"].ok for i in range(3))
    assert starts(log) == Counter({"flaky": 2, "doomed": 2, "job00": 1, "job01": 1, "job02": 1})


def test_a_hung_runner_is_killed_after_its_limit_and_grace(tmp_path):
    log = tmp_path / "log"
    cleanup = tmp_path / "cleaned-up"
    jobs = [Job("time", "stuck", {"log": str(log), "mode": "hang", "cleanup": str(cleanup)}, timeout_s=0.5),
            *jobs_for(log, 1)]
    start = time.monotonic()
    outcomes = LocalExecutor(1, runner=standin, grace_s=0.5, poll_s=0.1).run(jobs)
    assert time.monotonic() - start < 30
    assert outcomes[0].result["reason"] == "worker_timeout"
    assert cleanup.exists()
    assert outcomes[1].ok


def test_jobs_go_to_workers_of_their_gpu_kind(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("time", f"{kind}{i}", {"log": str(log)}, 30, gpu=kind) for kind in ("h100_sxm", "h200") for i in range(2)]
    jobs.append(Job("time", "b200", {"log": str(log)}, 30, gpu="b200"))
    executor = LocalExecutor(devices=["0", "1"], gpu_kinds=["h100_sxm", "h200"], runner=standin)
    outcomes = {o.job.key: o for o in executor.run(jobs)}
    for i in range(2):
        assert outcomes[f"h100_sxm{i}"].result["payload"]["os_cvd"] == "0"
        assert outcomes[f"h200{i}"].result["payload"]["os_cvd"] == "1"
    assert outcomes["b200"].result["reason"] == "no_gpu_kind"
    assert "b200" not in starts(log)


def test_cached_jobs_are_not_run_again(tmp_path):
    log, cache = tmp_path / "log", JobCache(tmp_path / "cache")
    jobs = jobs_for(log, 3)
    LocalExecutor(1, runner=standin, cache=cache).run(jobs[:2])
    outcomes = LocalExecutor(1, runner=standin, cache=cache).run(jobs)
    assert [o.cached for o in outcomes] == [True, True, False]
    assert starts(log) == Counter(job.key for job in jobs)


def test_a_killed_run_resumes_with_only_the_rest(tmp_path):
    log, folder = tmp_path / "log", tmp_path / "cache"
    count = 8
    proc = subprocess.Popen([sys.executable, "-m", "tests.executors.standins", str(folder), str(log), str(count)],
                            cwd=PROJECT_ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(list(folder.glob("*.json"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cache, jobs = JobCache(folder), jobs_for(log, count, sleep=0.3)
    done = {job.key for job in jobs if cache.get(job) is not None}
    assert 3 <= len(done) < count, "the run was not killed part-way"
    log.write_text("")
    outcomes = LocalExecutor(2, runner=standin, cache=cache).run(jobs)
    assert set(starts(log)) == {job.key for job in jobs} - done
    assert max(starts(log).values()) == 1
    assert {o.job.key for o in outcomes if o.cached} == done and all(o.ok for o in outcomes)


def test_an_exception_in_on_result_stops_the_run_and_keeps_what_finished(tmp_path):
    log, cache = tmp_path / "log", JobCache(tmp_path / "cache")
    jobs = jobs_for(log, 4)

    def stop(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(1, runner=standin, cache=cache).run(jobs, on_result=stop)
    assert cache.get(jobs[0]) is not None
    assert sum(cache.get(job) is not None for job in jobs) < len(jobs)


def test_pick_devices():
    assert pick_devices(None, ["0", "1", "2"]) == ["0", "1", "2"]
    assert pick_devices(2, ["4", "5", "6"]) == ["4", "5"]
    assert pick_devices(3, []) == ["0", "1", "2"]
    with pytest.raises(ExecutorError, match="--gpus 3 asks for more GPUs than the 2 visible"):
        pick_devices(3, ["0", "1"])
    with pytest.raises(ExecutorError, match="pass --gpus N"):
        pick_devices(None, [])


def test_duplicate_job_keys_are_refused(tmp_path):
    jobs = jobs_for(tmp_path / "log", 1) * 2
    with pytest.raises(ExecutorError, match="job00"):
        LocalExecutor(1, runner=standin).run(jobs)
