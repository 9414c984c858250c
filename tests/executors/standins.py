"""Stand-in runners and job functions for the executor tests: no GPU, no judge.

`standin` is a JobRunner whose behaviour the job's params pick (params["mode"]). It appends the
job's key to params["log"] each time it starts, so tests can count how often a job ran.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from builder.executors import Job, JobCache, LocalExecutor


def _log_start(params: dict[str, Any], key: str) -> None:
    with open(params["log"], "a") as handle:  # one short append per line: whole lines under concurrency
        handle.write(f"{key}\n")


def _meet(params: dict[str, Any], key: str) -> None:
    """Wait until `group_size` jobs of the group have started, so they surely run at once."""
    folder = Path(params["group_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / key).touch()
    deadline = time.monotonic() + 30
    while len(list(folder.iterdir())) < params["group_size"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.iterdir()))} of {params['group_size']} jobs started")
        time.sleep(0.05)


def standin(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """A runner: echo what it saw, or misbehave as params["mode"] says."""
    params, key = job["params"], job["key"]
    _log_start(params, key)
    mode = params.get("mode", "ok")
    if mode == "raise":
        raise RuntimeError("stand-in runner broke")
    if mode == "not_a_result":
        return {"status": "ok"}
    if mode == "exit_first":
        marker = Path(params["marker"])
        if not marker.exists():
            marker.touch()
            os._exit(3)
    if mode == "exit_always":
        os._exit(3)
    if mode == "hang":
        try:
            time.sleep(600)
        finally:  # the executor's SIGTERM lets this run, as run_job's own cleanup would
            Path(params["cleanup"]).touch()
    if mode == "meet":
        _meet(params, key)
    started = time.time()
    time.sleep(params.get("sleep", 0))
    payload = {
        "start": started,
        "end": time.time(),
        "key": key,
        "env_cvd": env.get("CUDA_VISIBLE_DEVICES"),
        "os_cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
    }
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            payload["resources"] = sorted(ray.get_runtime_context().get_assigned_resources())
    return {"status": "ok", "reason": None, "detail": "", "payload": payload}


def child_job(params: dict[str, Any]) -> dict[str, Any]:
    """A judge child job (kind "tests.executors.standins:child_job"): report the GPU it was given."""
    if "out" in params:
        Path(params["out"]).write_text(f"written by {os.getpid()}\n")
    return {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}


def gpu_job(params: dict[str, Any]) -> dict[str, Any]:
    """A judge child job for GPU machines: which GPUs it sees, and when it kept one busy."""
    import torch

    start = time.time()
    x = torch.randn(4096, 4096, device="cuda")
    while time.time() - start < params.get("busy_s", 2.0):
        x = (x @ x).clamp_(-1, 1)
    torch.cuda.synchronize()
    return {"count": torch.cuda.device_count(), "uuid": str(torch.cuda.get_device_properties(0).uuid),
            "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()}


def jobs_for(log: Path, count: int, *, exclusive: bool = True, prefix: str = "job", **params: Any) -> list[Job]:
    return [Job("time" if exclusive else "verify", f"{prefix}{i:02d}", {"log": str(log), **params}, timeout_s=30,
                exclusive=exclusive) for i in range(count)]


def main(argv: list[str]) -> None:
    """`python -m tests.executors.standins CACHE LOG COUNT`: a run the resume test kills part-way."""
    cache, log, count = Path(argv[0]), Path(argv[1]), int(argv[2])
    LocalExecutor(2, runner=standin, cache=JobCache(cache)).run(jobs_for(log, count, sleep=0.3))


if __name__ == "__main__":
    main(sys.argv[1:])
