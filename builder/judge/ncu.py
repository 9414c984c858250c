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


def parse_csv(text: str, metrics: list[str]) -> dict[str, dict[str, Any]]:
    """Parse `ncu --csv --page raw` output into {kernel_name: {metric: value}}.

    ncu prints its own lines (==PROF== ...) around the table, a header row, then a units row.
    With several launches of one kernel the last one wins. Values ncu left empty or marked
    'n/a' become None.
    """
    lines = [l for l in text.splitlines() if l.startswith('"')]
    if not lines:
        return {}
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = rows[0]
    if "Kernel Name" not in header:
        return {}
    name_col = header.index("Kernel Name")
    result: dict[str, dict[str, Any]] = {}
    for row in rows[1:]:
        if len(row) != len(header) or not row[name_col] or row[0] == "":
            continue  # the units row has an empty ID
        kernel = row[name_col].split("(")[0].strip()
        values: dict[str, Any] = {}
        for metric in metrics:
            raw = row[header.index(metric)] if metric in header else ""
            values[metric] = _number(raw)
        result[kernel] = values
    return result


def _number(raw: str) -> float | int | None:
    raw = raw.strip().replace(",", "")
    if raw in ("", "n/a", "N/A"):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in raw else value


def profile_job(params: dict[str, Any]) -> dict[str, Any]:
    """Child job under ncu: warm the code up, then run it once inside the NVTX range."""
    import torch

    from builder.judge.loader import load_code
    from builder.seeds import load_problem

    problem = load_problem(Path(params["problem_dir"]))
    module = load_code(params["code"], Path(params["workdir"]), params.get("label", "candidate"))
    model = module.ModelNew(**problem.init).cuda().eval()
    gen = torch.Generator(device="cuda").manual_seed(int(params.get("seed", 0)))
    x = torch.rand(problem.shape, generator=gen, device="cuda", dtype=getattr(torch, problem.dtype))
    with torch.no_grad():
        for _ in range(int(params.get("warmup", 3))):
            model(x)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push(NVTX_RANGE)
        model(x)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
    return {}
