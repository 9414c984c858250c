"""The Ray executor on a local Ray with two fake GPUs and stand-in runners."""

from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from builder.executors import Job, JobCache  # noqa: E402
from builder.executors.ray import RayExecutor  # noqa: E402
from tests.executors import standins  # noqa: E402
from tests.executors.standins import jobs_for, standin  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module: 2 CPUs, 2 fake GPUs, both of kind h100_sxm."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(standins)  # Ray's workers need not import the tests
    ray.init(num_cpus=2, num_gpus=2, resources={"gpu_h100_sxm": 2}, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(standins)


def starts(log: Path) -> Counter:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def test_jobs_run_once_each_on_their_own_gpu(tmp_path):
    log, cache = tmp_path / "log", JobCache(tmp_path / "cache")
    jobs = jobs_for(log, 2, mode="meet", group_dir=str(tmp_path / "group"), group_size=2) + jobs_for(log, 4)[2:]
    seen = []
    outcomes = RayExecutor(runner=standin, cache=cache).run(jobs, on_result=seen.append)
    assert starts(log) == Counter(job.key for job in jobs)
    assert [o.result["payload"]["key"] for o in outcomes] == [job.key for job in jobs]
    assert sorted(o.job.key for o in seen) == sorted(job.key for job in jobs)
    met = [o.result["payload"] for o in outcomes[:2]]
    assert sorted(p["os_cvd"] for p in met) == ["0", "1"]  # both held a GPU at once: different ones
    assert all(p["env_cvd"] == p["os_cvd"] for p in met)
    assert all(cache.get(job) is not None for job in jobs)  # written by the driver


def test_jobs_of_a_gpu_kind_ask_for_its_resource(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("time", "h100", {"log": str(log)}, 30, gpu="h100_sxm"),
            Job("time", "any", {"log": str(log)}, 30),
            Job("time", "h200", {"log": str(log)}, 30, gpu="h200")]
    outcomes = RayExecutor(runner=standin).run(jobs)
    assert "gpu_h100_sxm" in outcomes[0].result["payload"]["resources"]
    assert "gpu_h100_sxm" not in outcomes[1].result["payload"]["resources"]
    assert outcomes[2].result["reason"] == "no_gpu_kind" and "gpu_h100_sxm" in outcomes[2].result["detail"]
    assert "h200" not in starts(log)


def test_a_task_whose_worker_dies_is_retried_once_then_recorded(tmp_path):
    log = tmp_path / "log"
    jobs = [Job("verify", "flaky", {"log": str(log), "mode": "exit_first", "marker": str(tmp_path / "m")}, 30),
            Job("verify", "doomed", {"log": str(log), "mode": "exit_always"}, 30),
            Job("verify", "boom", {"log": str(log), "mode": "raise"}, 30)]
    outcomes = {o.job.key: o for o in RayExecutor(runner=standin).run(jobs)}
    assert outcomes["flaky"].ok and outcomes["flaky"].attempts == 2
    assert outcomes["doomed"].result["reason"] == "worker_lost" and outcomes["doomed"].attempts == 2
    assert "WorkerCrashedError" in outcomes["doomed"].result["detail"]
    assert outcomes["boom"].result["reason"] == "runner_error" and outcomes["boom"].attempts == 1
    assert starts(log) == Counter({"flaky": 2, "doomed": 2, "boom": 1})


def test_cached_jobs_are_not_sent(tmp_path):
    log, cache = tmp_path / "log", JobCache(tmp_path / "cache")
    jobs = jobs_for(log, 3)
    RayExecutor(runner=standin, cache=cache).run(jobs[:1])
    outcomes = RayExecutor(runner=standin, cache=cache).run(jobs)
    assert [o.cached for o in outcomes] == [True, False, False]
    assert starts(log) == Counter(job.key for job in jobs)


def test_an_interrupted_run_resumes_with_only_the_rest(tmp_path):
    log, cache = tmp_path / "log", JobCache(tmp_path / "cache")
    jobs = jobs_for(log, 6, sleep=0.2)

    def interrupt(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        RayExecutor(runner=standin, cache=cache).run(jobs, on_result=interrupt)
    done = {job.key for job in jobs if cache.get(job) is not None}
    assert 1 <= len(done) < len(jobs)
    log.write_text("")
    outcomes = RayExecutor(runner=standin, cache=cache).run(jobs)
    assert starts(log) == Counter({job.key: 1 for job in jobs if job.key not in done})
    assert {o.job.key for o in outcomes if o.cached} == done and all(o.ok for o in outcomes)
