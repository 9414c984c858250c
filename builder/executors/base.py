"""What every executor shares: the job it is given, the outcome it hands back, the runner it calls.

An executor knows jobs, not problems. It reads only a job's `kind`, `key`, `timeout_s` and `gpu`
and sends `to_dict()` to whatever runs it; the runner turns that dict into a result dict. Only
plain data (what `json.dumps` accepts) crosses a process or node boundary.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import KernelPromptsError

if TYPE_CHECKING:
    from builder.executors.cache import JobCache

#: Runs one job: (job dict, extra environment for the child) -> result dict with at least
#: `status`, `reason`, `detail` and `payload`, as builder.judge.runner.JobResult has them.
JobRunner = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]

#: Reasons an executor gives when a job did not run to a result of its own. They describe the
#: machinery, not the code under test, so they live apart from builder.judge.reasons.
EXECUTOR_REASONS: dict[str, str] = {
    "worker_lost": "the worker process or node died while running the job, also on the retry",
    "worker_timeout": "the runner did not return within the job's time limit plus the grace period",
    "runner_error": "the runner raised or returned something that is not a plain result dict",
    "no_gpu_kind": "no worker or node offers the GPU kind the job asks for",
}

RESULT_FIELDS = ("status", "reason", "detail", "payload")


class ExecutorError(KernelPromptsError):
    """A job or executor is set up wrongly: the message names the field or option to fix."""


@dataclass(frozen=True)
class Job:
    """One unit of work for an executor; the judge's typed jobs take this shape."""

    kind: str  # the job kind the child runs: "verify", "time", "profile" (or "module:function")
    key: str  # cache key: a hash of everything the result depends on; unique per kind in one run
    params: dict[str, Any]  # the job's parameters, plain data only
    timeout_s: float  # the child's time limit in seconds
    gpu: str | None = None  # the GPU kind the job needs (a registry key such as "h100_sxm"); None = any
    wrap: tuple[str, ...] = ()  # command prefix for the child (ncu's), empty for none
    outputs: tuple[str, ...] = ()  # files the job writes (ncu's log): carried back to the driver
    exclusive: bool = True  # needs its GPU alone (timing, profiling); False: may share it (verification)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "wrap": list(self.wrap), "outputs": list(self.outputs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        for name in ("kind", "key", "params", "timeout_s"):
            if name not in data:
                raise ExecutorError(f"job dict: missing field {name!r}")
        if not isinstance(data["params"], dict):
            raise ExecutorError(f"job dict: field 'params' must be a dict, got {type(data['params']).__name__}")
        return cls(
            kind=str(data["kind"]),
            key=str(data["key"]),
            params=dict(data["params"]),
            timeout_s=float(data["timeout_s"]),
            gpu=data.get("gpu"),
            wrap=tuple(data.get("wrap", ())),
            outputs=tuple(data.get("outputs", ())),
            exclusive=bool(data.get("exclusive", True)),
        )


@dataclass(frozen=True)
class Outcome:
    """What an executor hands back for one job."""

    job: Job  # the job this outcome belongs to
    result: dict[str, Any]  # the runner's result dict: status, reason, detail, payload (and more)
    worker: str  # where it ran, e.g. "local:gpu1" or "ray:<node>:gpu0"; "cache" when read from the cache
    attempts: int  # how often the job was started; 0 when it came from the cache

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok"

    @property
    def cached(self) -> bool:
        return self.worker == "cache"


#: Called with each outcome as it arrives; it may return follow-up jobs, which run next, ahead of
#: the jobs still queued (a problem's timing once its verification is in, say).
OnResult = Callable[[Outcome], "Sequence[Job] | None"]
#: Hands an outcome to the caller; returns the (index, job) entries of its follow-ups to execute.
Deliver = Callable[[int, Outcome], "list[tuple[int, Job]]"]


def failure(reason: str, detail: str) -> dict[str, Any]:
    """A result dict for a job that did not produce one of its own."""
    return {"status": "failed", "reason": reason, "detail": detail, "payload": {}}


def default_runner(job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run one job through builder.judge.runner.run_job and return its result as a dict, with
    the job's outputs (`with_outputs`)."""
    from builder.judge.runner import run_job

    return with_outputs(job, lambda: asdict(run_job(job["kind"], job["params"], job["timeout_s"],
                                                    wrap=tuple(job.get("wrap", ())), env=env)))


def with_outputs(job: dict[str, Any], run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Call `run` for `job` and return its result dict with the job's outputs.

    The folders of the job's `outputs` are created first (a fresh node may lack them), and the
    text of every output the job wrote comes back under `files`, so a driver on another machine
    gets them too.
    """
    for path in job.get("outputs", ()):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    result = run()
    files = {p: Path(p).read_text(errors="replace") for p in job.get("outputs", ()) if Path(p).is_file()}
    if files:
        result["files"] = files
    return result


def run_safely(runner: JobRunner, job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Call `runner`; a raise or a malformed answer becomes a `runner_error` result, never lost."""
    try:
        result = runner(job, env)
    except Exception as exc:  # the runner is pluggable: any failure of it is the job's result
        last = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return failure("runner_error", f"runner raised {type(exc).__name__}: {exc} ({last})")
    if not isinstance(result, dict) or any(name not in result for name in RESULT_FIELDS):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        return failure("runner_error", f"runner returned {got}; a result needs {', '.join(RESULT_FIELDS)}")
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        return failure("runner_error", f"runner returned data that is not plain JSON: {exc}")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a uniquely named temp file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Executor(ABC):
    """Runs jobs somewhere and streams their outcomes back, one per job, in the driver.

    The cache lives in the driver: cached jobs are answered without running, and each finished
    `ok` result is written the moment it arrives, before `on_result` sees it, so a run killed
    at any point resumes with only the unfinished jobs. `on_result` may return follow-up jobs:
    they are run as well (exclusive jobs before shared ones, follow-ups before the jobs still
    queued), and their outcomes are in the returned list too.
    """

    #: Whether a GPU's exclusive jobs run one after another in one long-lived process, so that what
    #: one starts ahead (measure's timing job: the profile's ncu sandbox) the next can take.
    host_jobs: bool = False

    def __init__(self, runner: JobRunner = default_runner, cache: JobCache | None = None) -> None:
        self.runner = runner
        self.cache = cache

    def run(self, jobs: Sequence[Job], on_result: OnResult | None = None) -> list[Outcome]:
        """Run `jobs` and their follow-ups; return one Outcome per job: first `jobs`' in their order, each
        follow-up after the job whose outcome asked for it."""
        seen: set[tuple[str, str]] = set()
        order: list[Job] = []
        outcomes: dict[int, Outcome] = {}

        def admit(new: Sequence[Job]) -> list[tuple[int, Job]]:
            """Number new jobs and answer the cached ones; return the ones to execute."""
            todo: list[tuple[int, Job]] = []
            for job in new:
                if (job.kind, job.key) in seen:
                    raise ExecutorError(f"two jobs share kind {job.kind!r} and key {job.key!r}; each job's key must be unique")
                seen.add((job.kind, job.key))
                order.append(job)
                index = len(order) - 1
                hit = self.cache.get(job) if self.cache is not None else None
                if hit is None:
                    todo.append((index, job))
                else:
                    todo += deliver(index, Outcome(job, hit, "cache", 0))
            return todo

        def deliver(index: int, outcome: Outcome) -> list[tuple[int, Job]]:
            for path, text in outcome.result.get("files", {}).items():
                write_atomically(Path(path), text)
            if self.cache is not None and outcome.ok and not outcome.cached:
                self.cache.put(outcome.job, outcome.result)
            outcomes[index] = outcome
            more = on_result(outcome) if on_result is not None else None
            return admit(list(more or []))

        todo = admit(list(jobs))
        if todo:
            self._execute(todo, deliver)
        missing = [job.key for i, job in enumerate(order) if i not in outcomes]
        if missing:
            raise ExecutorError(f"{type(self).__name__} returned no outcome for jobs {', '.join(missing)}")
        return [outcomes[i] for i in range(len(order))]

    @abstractmethod
    def _execute(self, todo: list[tuple[int, Job]], deliver: Deliver) -> None:
        """Run every (index, job) of `todo`, and every follow-up `deliver` returns, calling
        `deliver(index, outcome)` once for each."""
