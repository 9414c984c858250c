"""Run one judge job in a fresh child process with a time limit.

All GPU work and all untrusted code go through `run_job`. The parent never imports the code
under test: a hang, a crash, an illegal memory access or running out of memory in the child
comes back as a JobResult with a status and a reason, and the next job runs in a new process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import PROJECT_ROOT

#: Lines of child output kept on a JobResult.
LOG_TAIL_CHARS = 4000


class JobFailure(Exception):
    """Raised inside a job to fail it with a reason code from builder.judge.reasons."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class JobResult:
    """What came back from one child run."""

    status: str  # "ok", "failed" (the job raised), "timeout" or "crash" (the process died)
    reason: str | None  # a reason code for anything but "ok"
    detail: str  # a human sentence about a failure; "" when ok
    payload: dict[str, Any] = field(default_factory=dict)  # the job's returned data when ok
    wall_s: float = 0.0  # seconds the child ran, start to exit
    log: str = ""  # tail of the child's stdout and stderr

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def child_command(kind: str, job_file: Path, result_file: Path) -> list[str]:
    """The command that runs one job; ncu wraps this same command."""
    return [sys.executable, "-m", "builder.judge.child", kind, str(job_file), str(result_file)]


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop("TRITON_INTERPRET", None)  # the child decides from params["device"]
    env.update(extra or {})
    return env


def run_job(
    kind: str,
    params: dict[str, Any],
    timeout_s: float,
    *,
    wrap: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> JobResult:
    """Run job `kind` with `params` in a fresh process group; kill the group after `timeout_s`.

    `wrap` prefixes the child command (ncu uses it). The child's scratch directory, where the
    code under test is written and imported from, is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix=f"kp-{kind}-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps({**params, "workdir": tmp}))
        cmd = [*wrap, *child_command(kind, job_file, result_file)]
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=_child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            wall = time.monotonic() - start
            return JobResult("timeout", "timeout", f"no result after {timeout_s:.0f} s", {}, wall, _tail(out))
        wall = time.monotonic() - start
        if not result_file.exists():
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            return JobResult("crash", "crash", f"child died with {how} before writing a result", {}, wall, _tail(out))
        data = json.loads(result_file.read_text())
    return JobResult(
        status=data["status"],
        reason=data.get("reason"),
        detail=data.get("detail", ""),
        payload=data.get("payload", {}),
        wall_s=wall,
        log=_tail(out),
    )


def _tail(text: str | None) -> str:
    return (text or "")[-LOG_TAIL_CHARS:]
