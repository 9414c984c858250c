"""Entry point of a judge child process: `python -m builder.judge.child KIND JOB_JSON RESULT_JSON`.

It prepares the process (the Triton interpreter for CPU runs), runs the job function registered
for KIND and writes {"status", "reason", "detail", "payload"} to RESULT_JSON. Such jobs run only
trusted code (the referee, and measure's jobs, which start sandboxes of their own); code under
test runs only in a sandbox (builder.judge.sandbox). A worker of the local executor that hosts
jobs (builder.executors.host) calls `run` in its own process instead, one job after another.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

#: Job kinds and the functions that run them (params -> payload), as "module:function", imported
#: only once the process is prepared (the interpreter must be set before triton is imported).
#: A kind that itself has the form "module:function" names its function directly (the tests use
#: this).
JOBS: dict[str, str] = {
    "verify": "builder.judge.jobs:VerifyJob.execute",
    "time": "builder.judge.jobs:TimeJob.execute",
    "profile": "builder.judge.jobs:ProfileJob.execute",
}


#: Words of an exception that mean the device or its memory failed, not the Python code.
DEVICE_FAILURES = ("out of memory", "illegal memory access", "misaligned address", "launch failure",
                   "illegal instruction", "device-side assert", "cuda error", "[cuda]")


def prepare_cpu() -> None:
    """Run Triton kernels on CPU tensors (builder.judge.interpreter.prepare_cpu), with autotuners
    whose configs all tie where no guards are installed (a sandbox's guards check every config:
    builder.judge.guards.Guards._benchmarker).

    TRITON_INTERPRET must be set before triton is first imported. An autotuner with several
    configs would time them with a GPU benchmarker, which the interpreter lacks.
    """
    from builder.judge.interpreter import prepare_cpu as interpret

    interpret()
    from triton.runtime.autotuner import Autotuner

    Autotuner.do_bench = property(lambda self: _tie)  # type: ignore[method-assign, assignment]


def _tie(kernel_call: Any, quantiles: Any = None) -> list[float]:
    """A benchmarker that runs nothing and gives every config the same time."""
    return [1.0, 1.0, 1.0] if quantiles else [1.0]


#: Environment variable: cap every judge process's PyTorch allocator at this many GiB, to act as a
#: smaller GPU (22 for the seeds' 24 GB RTX 4090).
MEMORY_CAP_ENV = "KP_GPU_MEMORY_GIB"


def apply_memory_cap() -> float | None:
    """Cap the CUDA caching allocator when MEMORY_CAP_ENV is set; return the fraction used."""
    cap = os.environ.get(MEMORY_CAP_ENV)
    if not cap:
        return None
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    fraction = min(1.0, float(cap) * 1024**3 / total)
    torch.cuda.set_per_process_memory_fraction(fraction)
    return fraction


def is_device_failure(exc: BaseException) -> bool:
    """Whether `exc` says the device failed (bad access, launch failure, out of memory): after
    such an error the process's CUDA context is unusable, so the run counts as a crash."""
    return says_device_failed(f"{type(exc).__name__}: {exc}")


def says_device_failed(text: str) -> bool:
    """Whether an error's text names a device failure (DEVICE_FAILURES)."""
    return any(sign in text.lower() for sign in DEVICE_FAILURES)


def _classify(exc: BaseException) -> str:
    """A reason code for an exception that escaped a job."""
    return "crash" if is_device_failure(exc) else "runtime_error"


def job_device(kind: str, params: dict[str, Any]) -> str:
    """The device kind ("cpu" or "cuda") a process must be prepared for to run job `kind`: a typed
    job's own (builder.judge.jobs.TypedJob.device_of), else params["device"], the CPU by default."""
    if kind in JOBS:
        from builder.judge.jobs import JOB_TYPES

        return JOB_TYPES[kind].device_of(params)
    return str(params.get("device", "cpu"))


#: The device kind this process was prepared for by `prepare`; None until then.
_prepared_for: str | None = None


def prepare(device: str) -> None:
    """Prepare this process for jobs on `device`, once: the interpreter for the CPU (before triton
    is first imported), the memory cap for a GPU. A process prepared for one kind cannot run jobs
    of the other: the interpreter cannot be turned off once triton is imported."""
    global _prepared_for
    if _prepared_for == device:
        return
    if _prepared_for is not None:
        raise RuntimeError(f"this process runs {_prepared_for} jobs; a {device} job needs a process of its own")
    if device == "cpu":
        prepare_cpu()
    else:
        apply_memory_cap()
    _prepared_for = device


def run(kind: str, params: dict[str, Any], *, started: float | None = None) -> dict[str, Any]:
    """Run job `kind`; its result dict, with the seconds spent before the job itself began as its
    "start" phase: since `started` (a time.time()), by default since the parent spawned this
    process (imports included). The process is prepared for the job's device first (`prepare`)."""
    from builder.judge.runner import SPAWNED_AT_ENV, JobFailure

    target = JOBS.get(kind, kind)
    if ":" not in target:
        return {"status": "failed", "reason": "runtime_error", "detail": f"unknown job kind '{kind}'"}
    if started is None and os.environ.get(SPAWNED_AT_ENV):
        started = float(os.environ[SPAWNED_AT_ENV])
    prepare(job_device(kind, params))
    module_name, func_name = target.split(":")
    try:
        func: Any = importlib.import_module(module_name)
        for name in func_name.split("."):
            func = getattr(func, name)
        phases = {"start": max(0.0, time.time() - started)} if started is not None else {}
        return {"status": "ok", "payload": func(params), "phases": phases}
    except JobFailure as exc:
        return {"status": "failed", "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # any failure of the job becomes data for the parent
        return {"status": "failed", "reason": _classify(exc), "detail": traceback.format_exc(limit=8)}


def main(argv: list[str]) -> int:
    kind, job_file, result_file = argv
    params = json.loads(Path(job_file).read_text())
    result = run(kind, params)
    tmp = Path(result_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(result_file)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
