"""Nsight Compute: profile one launch of the code under test and parse its metrics.

The parent wraps the ordinary child command in ncu; the child (`profile_job`) warms the code up,
then runs it once inside the NVTX range "profiled", which is the only range ncu collects.
Metrics come back as {kernel_name: {metric: value}}; a metric ncu did not report is None with a
note saying so. No number is ever made up.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVTX_RANGE = "profiled"


def ncu_path() -> str | None:
    return shutil.which("ncu")


def ncu_version(ncu: str) -> str | None:
    out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"Version\s+([\w.\-]+)", out)
    return found.group(1) if found else None


def wrap_command(ncu: str, metrics: list[str], log_file: Path) -> list[str]:
    """The ncu prefix for the child command: one NVTX range, fixed clocks left alone, raw CSV."""
    return [
        ncu,
        "--clock-control", "none",
        "--nvtx", "--nvtx-include", f"{NVTX_RANGE}/",
        "--csv", "--page", "raw",
        "--metrics", ",".join(metrics),
        "--log-file", str(log_file),
    ]


def is_launch_attribute(metric: str) -> bool:
    """launch__* values describe the launch itself: ncu reports them for every kernel, but
    --query-metrics lists only hardware counters, so they never appear there."""
    return metric.startswith("launch__")


def available_metrics(ncu: str, chip: str | None = None) -> set[str]:
    """Every metric name (with suffixes) ncu lists for this GPU, or for `chip` (e.g. 'ad102')."""
    cmd = [ncu, "--query-metrics", "--query-metrics-mode", "all"]
    if chip:
        cmd += ["--chip", chip]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    return {line.split()[0] for line in out.splitlines() if re.match(r"^[a-z][\w.]*__[\w.]+", line)}


def parse_launches(text: str, metrics: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every profiled launch of `ncu --csv --page raw` output, in order, as (kernel name, metrics).

    ncu prints its own lines (==PROF== ...) around the table, a header row, then a units row.
    Values ncu left empty or marked 'n/a' become None.
    """
    lines = [l for l in text.splitlines() if l.startswith('"')]
    if not lines:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = rows[0]
    if "Kernel Name" not in header:
        return []
    name_col = header.index("Kernel Name")
    launches = []
    for row in rows[1:]:
        if len(row) != len(header) or not row[name_col] or row[0] == "":
            continue  # the units row has an empty ID
        kernel = row[name_col].split("(")[0].strip()
        launches.append((kernel, {m: _number(row[header.index(m)]) if m in header else None for m in metrics}))
    return launches


def parse_csv(text: str, metrics: list[str]) -> dict[str, dict[str, Any]]:
    """{kernel_name: {metric: value}}; with several launches of one kernel the last one wins."""
    return {kernel: values for kernel, values in parse_launches(text, metrics)}


def _number(raw: str) -> float | int | None:
    raw = raw.strip().replace(",", "")
    if raw in ("", "n/a", "N/A"):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in raw else value


#: Metric whose sum over a forward's kernels is the GPU time the profiler saw.
DURATION = "gpu__time_duration.sum"
#: Kernels forward may launch besides the answer's own: PyTorch's fills and copies.
ALLOWED_KERNEL_SIGNS = ("FillFunctor", "fill_kernel", "copy_kernel", "direct_copy_kernel", "CatArrayBatchedCopy")


@dataclass(frozen=True)
class Profile:
    """What ncu saw of one forward at the benchmark shape."""

    ok: bool  # the run worked and ncu reported launches
    reason: str | None  # reason code when not
    detail: str  # sentence about a failure
    launches: tuple[tuple[str, dict[str, Any]], ...] = ()  # (kernel name, metrics) per launch, in order
    guard_launches: int = 0  # Triton launches the sandbox's guards counted in the same forward
    guard_finding: tuple[str, str] | None = None  # what the sandbox's guards saw in that forward, if anything

    def metrics(self) -> dict[str, dict[str, Any]]:
        """{kernel_name: {metric: value}}, the last launch of a kernel winning (as records keep them)."""
        return {kernel: {m: v for m, v in values.items() if m != DURATION} for kernel, values in self.launches}

    def gpu_ms(self) -> float | None:
        """The summed kernel time of the forward, in ms, or None when ncu reported none."""
        times = [v.get(DURATION) for _, v in self.launches]
        return sum(times) / 1e6 if times and all(t is not None for t in times) else None


def foreign_kernels(launches: Iterable[tuple[str, Any]], own: Iterable[str]) -> list[str]:
    """Kernel names that are neither one of `own` (the answer's @triton.jit functions) nor an
    allowed fill or copy."""
    own = set(own)
    return sorted({name for name, _ in launches
                   if name not in own and not any(sign in name for sign in ALLOWED_KERNEL_SIGNS)})


def profile(problem: Any, code: str, metrics: list[str], ncu: str, *, timeout_s: float,
            log_dir: Path, seed: int = 0) -> Profile:
    """Profile one forward of `code` at the benchmark shape, after warm-up, in a sandbox under ncu."""
    from builder.judge.runner import SandboxDied, SandboxSession

    asked = list(dict.fromkeys([*metrics, DURATION]))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"ncu-{uuid.uuid4().hex}.csv"
    session = SandboxSession("cuda", problem.dir, timeout_s=timeout_s, wrap=wrap_command(ncu, asked, log))
    try:
        session.start()
        path = session.write_code("candidate", code)
        steps = [{"op": "load", "label": "candidate", "path": str(path)},
                 {"op": "build", "label": "candidate", "name": "m", "init": problem.init}]
        for step in steps:
            reply = session.request(step)
            if not reply.get("ok"):
                return Profile(False, reply.get("reason") or "import_error", reply.get("detail", ""))
        spec = {"shape": list(problem.shape), "seed": seed, "low": problem.low, "high": problem.high}
        reply = session.request({"op": "profile", "name": "m", "input": spec})
        if not reply.get("ok"):
            return Profile(False, reply.get("reason") or "runtime_error", reply.get("detail", ""))
        guard_launches = int(reply.get("launches", 0))
        finding = tuple(reply["finding"]) if reply.get("finding") else None
    except SandboxDied as exc:
        return Profile(False, exc.reason, exc.detail)
    finally:
        session.close()
    text = log.read_text(errors="replace") if log.exists() else ""
    log.unlink(missing_ok=True)
    launches = tuple(parse_launches(text, asked))
    if not launches:
        reason = "guard_disabled" if guard_launches else "crash"
        return Profile(False, reason, f"ncu profiled no kernel in the NVTX range, the guards counted "
                                      f"{guard_launches} launch(es): {text[-300:]}", (), guard_launches)
    return Profile(True, None, "", launches, guard_launches, finding)  # type: ignore[arg-type]
