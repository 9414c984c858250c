"""Jobs as plain data, the runner guard, and choosing an executor."""

import sys
from types import SimpleNamespace

import pytest

from builder.executors import ExecutorError, Job, LocalExecutor, make_executor
from builder.executors.base import run_safely
from builder.executors.ray import RayExecutor, gpu_resource


def test_a_job_round_trips_through_a_plain_dict():
    job = Job("profile", "abc", {"code": "x", "n": [1, 2]}, 600.0, gpu="h100_sxm", wrap=("ncu", "--csv"),
              outputs=("/tmp/ncu.csv",))
    data = job.to_dict()
    assert data["wrap"] == ["ncu", "--csv"] and data["outputs"] == ["/tmp/ncu.csv"]
    assert Job.from_dict(data) == job
    assert Job.from_dict({"kind": "verify", "key": "k", "params": {}, "timeout_s": 5}).gpu is None


@pytest.mark.parametrize("drop", ["kind", "key", "params", "timeout_s"])
def test_a_job_dict_missing_a_field_is_named(drop):
    data = Job("verify", "k", {}, 5).to_dict()
    del data[drop]
    with pytest.raises(ExecutorError, match=f"missing field '{drop}'"):
        Job.from_dict(data)


def test_run_safely_turns_bad_answers_into_failures():
    def returns(value):
        return lambda job, env: value

    ok = {"status": "ok", "reason": None, "detail": "", "payload": {"x": 1}}
    assert run_safely(returns(ok), {}, {}) == ok
    assert run_safely(returns([1]), {}, {})["reason"] == "runner_error"
    odd = run_safely(returns({**ok, "payload": {"x": object()}}), {}, {})
    assert odd["reason"] == "runner_error" and "not plain JSON" in odd["detail"]


def test_make_executor_checks_its_options(monkeypatch):
    assert isinstance(make_executor("local", gpus=2), LocalExecutor)
    with pytest.raises(ExecutorError, match="unknown executor 'slurm'"):
        make_executor("slurm")
    with pytest.raises(ExecutorError, match="--address applies to --executor ray only"):
        make_executor("local", gpus=1, address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(ExecutorError, match=r"pip install 'kernel-prompts\[ray\]'"):
        make_executor("ray", address="auto")


def test_gpu_kinds_become_ray_resource_names():
    assert gpu_resource("h100_sxm") == "gpu_h100_sxm"
    assert gpu_resource("NVIDIA H100 80GB HBM3") == "gpu_nvidia_h100_80gb_hbm3"
    with pytest.raises(ExecutorError, match="field 'gpu'"):
        gpu_resource("--")


def test_a_ray_cluster_without_gpus_is_refused_before_anything_is_sent():
    fake_ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 2.0})
    with pytest.raises(ExecutorError, match="--address auto: the Ray cluster offers no GPU"):
        RayExecutor("auto")._run_tasks(fake_ray, [(0, Job("verify", "k", {}, 5))], lambda i, o: None)
