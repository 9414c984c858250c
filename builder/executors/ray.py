"""Run jobs as Ray tasks, one GPU each, on a running cluster or a local one.

Ray is an optional extra and is imported only when this executor runs. Each job is a task with
`num_gpus=1`; Ray sets CUDA_VISIBLE_DEVICES in the task's worker, and the runner passes it on to
the child. A job whose `gpu` is set also asks for one unit of the custom resource
`gpu_<kind>` (see `gpu_resource`), which the nodes of that GPU kind declare when they start,
e.g. `ray start --num-gpus 8 --resources '{"gpu_h100_sxm": 8}'`. Results come back to the
driver, which writes the cache and any files the job produced. A task lost with its worker or
node is retried once, then recorded as `worker_lost`. Time limits are the runner's: the default
runner kills a job's child after the job's `timeout_s` (a queued task has not started, so the
driver cannot time it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from builder.executors.base import (
    Deliver,
    Executor,
    ExecutorError,
    Job,
    JobRunner,
    Outcome,
    default_runner,
    failure,
    run_safely,
)
from builder.executors.cache import JobCache

INSTALL_HINT = "pip install 'kernel-prompts[ray]'"


def import_ray() -> Any:
    """The ray module, or an error that names the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def gpu_resource(kind: str) -> str:
    """The custom Ray resource that marks nodes of GPU kind `kind` ("h100_sxm" -> "gpu_h100_sxm")."""
    name = re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")
    if not name:
        raise ExecutorError(f"job field 'gpu': {kind!r} gives no usable Ray resource name")
    return f"gpu_{name}"


def _task(runner: JobRunner, job: dict[str, Any]) -> dict[str, Any]:
    """Body of one Ray task: run the job on the GPU Ray gave this worker."""
    import ray

    device = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    node = ray.get_runtime_context().get_node_id()[:12]
    return {"result": run_safely(runner, job, {"CUDA_VISIBLE_DEVICES": device}), "worker": f"ray:{node}:gpu{device}"}


class RayExecutor(Executor):
    """Jobs as Ray tasks with one GPU each."""

    def __init__(
        self,
        address: str | None = None,
        *,
        runner: JobRunner = default_runner,
        cache: JobCache | None = None,
        retries: int = 1,
        runtime_env: dict[str, Any] | None = None,
        per_gpu: int = 1,
    ) -> None:
        """`address` is a cluster's ("auto" for the one `ray start` runs here); None starts a local one.

        An already initialised Ray (ray.init called by the caller) is used as it is; otherwise
        `runtime_env` goes to ray.init as given.
        """
        super().__init__(runner, cache)
        self.address, self.runtime_env = address, runtime_env
        self.retries = retries
        self.gpu_share = 1 / per_gpu  # each task's fraction of a GPU

    def _execute(self, todo: list[tuple[int, Job]], deliver: Deliver) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, runtime_env=self.runtime_env, log_to_driver=False)
        try:
            self._run_tasks(ray, todo, deliver)
        finally:
            if started_here:
                ray.shutdown()

    def _run_tasks(self, ray: Any, todo: list[tuple[int, Job]], deliver: Deliver) -> None:
        offered = ray.cluster_resources()
        if offered.get("GPU", 0) < 1:  # every task asks for a GPU: none would ever start
            where = self.address or "the local Ray"
            raise ExecutorError(f"--address {where}: the Ray cluster offers no GPU (start nodes with --num-gpus)")
        from ray.exceptions import (
            NodeDiedError,
            ObjectLostError,
            OwnerDiedError,
            RayError,
            WorkerCrashedError,
        )

        lost_errors = (WorkerCrashedError, NodeDiedError, ObjectLostError, OwnerDiedError)
        task = ray.remote(_task)
        runner = ray.put(self.runner)
        flight: dict[Any, tuple[int, Job, int]] = {}

        def submit(index: int, job: Job, attempt: int) -> None:
            share = 1.0 if job.exclusive else self.gpu_share
            options: dict[str, Any] = {"num_gpus": share, "max_retries": 0}
            if job.gpu is not None:
                resource = gpu_resource(job.gpu)
                if offered.get(resource, 0) < 1:
                    kinds = ", ".join(sorted(k for k in offered if k.startswith("gpu_"))) or "none"
                    detail = f"job wants GPU {job.gpu!r} (resource {resource}); the cluster offers {kinds}"
                    hand_back(index, Outcome(job, failure("no_gpu_kind", detail), "ray", 0))
                    return
                options["resources"] = {resource: share}
            flight[task.options(**options).remote(runner, job.to_dict())] = (index, job, attempt)

        def hand_back(index: int, outcome: Outcome) -> None:
            for more_index, more in deliver(index, outcome):
                submit(more_index, more, 1)

        for index, job in todo:
            submit(index, job, 1)
        try:
            while flight:
                ready, _ = ray.wait(list(flight), num_returns=1)
                for ref in ready:
                    index, job, attempt = flight.pop(ref)
                    try:
                        answer = ray.get(ref)
                    except lost_errors as exc:
                        if attempt <= self.retries:
                            submit(index, job, attempt + 1)
                        else:
                            detail = f"{type(exc).__name__} on each of {attempt} attempts: {str(exc)[-300:]}"
                            hand_back(index, Outcome(job, failure("worker_lost", detail), "ray", attempt))
                    except RayError as exc:
                        detail = f"{type(exc).__name__}: {str(exc)[-300:]}"
                        hand_back(index, Outcome(job, failure("runner_error", detail), "ray", attempt))
                    else:
                        hand_back(index, Outcome(job, answer["result"], answer["worker"], attempt))
        finally:
            self._cancel(ray, list(flight))

    @staticmethod
    def _cancel(ray: Any, refs: list[Any], wait_s: float = 30.0) -> None:
        """Stop the tasks still out (when the caller interrupts) and wait until they have stopped."""
        for ref in refs:
            ray.cancel(ref, force=True)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=wait_s)
