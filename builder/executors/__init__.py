"""Executors: run measurement jobs on one GPU, on all of a machine's GPUs, or on a Ray cluster.

    executor = make_executor("local", gpus=4, cache=JobCache(folder))
    outcomes = executor.run(jobs, on_result=lambda o: print(o.job.key, o.result["status"]))
"""

from __future__ import annotations

from builder.executors.base import (
    EXECUTOR_REASONS,
    Executor,
    ExecutorError,
    Job,
    JobRunner,
    OnResult,
    Outcome,
    default_runner,
)
from builder.executors.cache import JobCache
from builder.executors.local import LocalExecutor

EXECUTORS = ("local", "ray")

__all__ = [
    "EXECUTORS",
    "EXECUTOR_REASONS",
    "Executor",
    "ExecutorError",
    "Job",
    "JobCache",
    "JobRunner",
    "LocalExecutor",
    "OnResult",
    "Outcome",
    "default_runner",
    "make_executor",
]


def make_executor(
    name: str = "local",
    *,
    gpus: int | None = None,
    address: str | None = None,
    cache: JobCache | None = None,
    runner: JobRunner = default_runner,
    per_gpu: int = 1,
) -> Executor:
    """The executor the CLI options pick: `--executor local --gpus N` or `--executor ray --address A`.

    `per_gpu` jobs share a GPU at once: only for jobs that time nothing (verification).
    """
    if per_gpu < 1:
        raise ExecutorError(f"jobs per GPU must be at least 1, got {per_gpu}")
    if name == "local":
        if address is not None:
            raise ExecutorError("--address applies to --executor ray only")
        return LocalExecutor(gpus, runner=runner, cache=cache, per_gpu=per_gpu)
    if name == "ray":
        if gpus is not None:
            raise ExecutorError("--gpus applies to --executor local only; Ray uses every GPU of the cluster")
        from builder.executors.ray import RayExecutor, import_ray

        import_ray()
        return RayExecutor(address, runner=runner, cache=cache, per_gpu=per_gpu)
    raise ExecutorError(f"--executor: unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
