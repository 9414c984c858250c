"""Jobs hosted by the local executor's workers: the judge stays loaded from one job to the next.

A worker of the local executor is a long-lived process per GPU slot, started fresh
(multiprocessing "spawn") with its GPU in CUDA_VISIBLE_DEVICES before anything imports torch.
A worker that hosts jobs runs each of the judge's typed jobs (builder.judge.jobs) in its own
process through builder.judge.child.run, as a job child would, instead of starting a child per
job: torch and the judge are imported once, and the judge's referee (builder.judge.referee) and
the sandboxes' zygote serve job after job. Between jobs the worker keeps one sandbox started
ahead where a start is slow (on a GPU, where even a fork of the zygote sets up its own CUDA
context, or without the zygote), so that the next job's session takes it ready. Code under test
still runs only in sandboxes, each of them fresh: a spare has run no code but the sandbox's
own, and ncu still wraps a sandbox process of its own (the worker's spares are unwrapped, and a
session under ncu takes only a spare started under the same ncu and metrics).

A process is prepared for one device kind (the CPU's interpreter must be on before triton is
first imported; a GPU's process must not have it), so a worker hosts the jobs of the first kind
it gets. A job of the other kind, one with a command prefix (`wrap`), a kind that is no typed
job, and the retry of a job whose worker died run through the worker's runner in a child
process, as without hosting. A hosted job's result is the dict run_job gives (JobResult's
fields, plus `files` for its outputs); its log is what the process printed while it ran.

Time limits stay with the job's own sandboxes and referee, each of which has a deadline; the
executor's kill of a worker past the job's limit and its grace period is the backstop
(`worker_timeout`). After a job that leaves the process's GPU failing, the worker ends its
helpers, sends the result and exits, and the executor starts a fresh one.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from contextlib import chdir
from dataclasses import asdict, dataclass
from typing import Any

from builder import PROJECT_ROOT
from builder.executors.base import JobRunner, run_safely, with_outputs
from builder.judge import child
from builder.judge.referee import stop_referee
from builder.judge.runner import LOG_TAIL_CHARS, JobResult, keep_spares, kill_orphans, stop_helpers
from builder.judge.zygote import ZYGOTE_ENV

#: Environment variable: "0" turns hosting off, so that every job runs in a child process of its
#: own (for debugging); LocalExecutor's `host_jobs` argument overrides it.
HOST_ENV = "KP_HOST_JOBS"


def hosting_enabled() -> bool:
    """Whether workers host jobs unless told otherwise: HOST_ENV is not "0"."""
    return os.environ.get(HOST_ENV, "1") != "0"


def slow_start(device: str) -> bool:
    """Whether a new sandbox on `device` takes seconds that a sandbox started ahead hides: on a GPU
    it sets up its CUDA context (and, without the zygote, imports torch); on the CPU it is a fork
    of the zygote, about 0.1 s."""
    return device != "cpu" or os.environ.get(ZYGOTE_ENV, "1") == "0"


@dataclass(frozen=True)
class HostSettings:
    """How a worker hosts jobs."""

    spares: int = 1  # sandboxes kept started ahead between jobs where a start is slow (0: none)


class JobHost:
    """The hosting side of one worker process: which jobs it runs itself, running them, and what it
    keeps between jobs and ends when the worker stops."""

    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.device: str | None = None  # the device kind it hosts: its first hosted job's
        self.usable = True  # False once the process's GPU failed: the worker must stop

    def takes(self, job: dict[str, Any]) -> bool:
        """Whether `job` runs in this process: a typed job without a command prefix, of the device
        kind this process hosts (any kind before its first hosted job)."""
        if job["kind"] not in child.JOBS or job.get("wrap"):
            return False
        return self.device in (None, child.job_device(job["kind"], job["params"]))

    def serve(self, job: dict[str, Any], env: dict[str, str], runner: JobRunner, attempt: int) -> dict[str, Any]:
        """The result of `job`: run here when this process takes it on its first attempt, else by
        `runner` (in a child process; then what that child left, such as its sandboxes when it
        died, is killed, so that no later session counts it as its own)."""
        if attempt == 1 and self.takes(job):
            return run_safely(self.run, job, env)
        result = run_safely(runner, job, env)
        kill_orphans()
        return result

    def run(self, job: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """Run a typed job in this process as a job child would (in the project's folder, with a
        scratch folder as `workdir`); return what default_runner would: run_job's result as a dict
        and the job's outputs. Its "start" phase is the time from the job's arrival to its start
        (the process's preparation and imports, on its first job)."""
        started, clock = time.time(), time.monotonic()
        if self.device is None:
            self.device = child.job_device(job["kind"], job["params"])
            if self.device != "cpu":
                os.environ.pop("TRITON_INTERPRET", None)  # as a job child's environment has it
        keep_spares(self.device, 0)  # the spares kept so far wait for this job; none start during it
        os.environ.update(env)

        def hosted() -> dict[str, Any]:
            with tempfile.TemporaryDirectory(prefix=f"kp-{job['kind']}-") as workdir, chdir(PROJECT_ROOT), \
                    _Output() as output:
                data = child.run(job["kind"], {**job["params"], "workdir": workdir}, started=started)
            data = json.loads(json.dumps(data, default=str))  # what the child's result file holds
            return asdict(JobResult.from_child(data, time.monotonic() - clock, output.text))

        result = with_outputs(job, hosted)
        self.settle(result)
        return result

    def settle(self, result: dict[str, Any]) -> None:
        """Free what the job left and check that the process's GPU still answers. A device failure
        (an illegal access, a launch failure) leaves a process's CUDA context unusable: the job's
        result naming one, or a GPU that fails to synchronise, ends the hosting."""
        gc.collect()
        if self.device == "cpu":
            return
        if result.get("reason") == "crash" and child.says_device_failed(result.get("detail", "")):
            self.usable = False
            return
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            try:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
            except Exception:  # any error of the device here means its context is lost
                self.usable = False

    def rest(self) -> None:
        """Between jobs: keep sandboxes started ahead for the next job where a start is slow."""
        if self.device is not None and self.settings.spares and slow_start(self.device):
            try:
                keep_spares(self.device, self.settings.spares)
            except Exception:  # no spare now: the next job's session starts a sandbox of its own
                keep_spares(self.device, 0)

    def close(self) -> None:
        """End what the hosted jobs keep running: the spares, the zygotes and the referee."""
        stop_helpers()
        stop_referee()


class _Output:
    """What this process prints while a hosted job runs, caught as a job child's pipe catches its
    output: descriptors 1 and 2 go to a temporary file (so C code's output counts too), and
    `text` holds the tail of it afterwards."""

    def __enter__(self) -> _Output:
        self.text = ""
        _flush()
        self.file = tempfile.TemporaryFile()
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            _flush()
        finally:
            for fd, saved in zip((1, 2), self.saved):
                os.dup2(saved, fd)
                os.close(saved)
        with self.file:
            size = self.file.seek(0, os.SEEK_END)
            self.file.seek(max(0, size - 4 * LOG_TAIL_CHARS))
            self.text = self.file.read().decode(errors="replace")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
