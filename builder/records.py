"""Measurement records: one JSON file per measured code per GPU, checked against the current files.

A record lives at outputs/measurements/<gpu>/<problem>/<label>.json, where label is "seed" or a
stage key. It holds what it was measured with: the sha256 of the code and the reference, and of
the two parts of the manifest that matter, the benchmark (shape, inputs, init) and the checks
(tolerances, cases, input space). A record has three parts: the verification, the timing and
the ncu metrics. A changed code, reference or benchmark makes all three stale; changed checks
(a case added, say) make only the verification stale, and measure then re-runs only that.
A stale record is never used for a row.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from builder import PROJECT_ROOT
from builder.errors import RecordError
from builder.schema import check_file_data
from builder.seeds import Problem, sha256_file

MEASUREMENTS_DIR = PROJECT_ROOT / "outputs" / "measurements"


@dataclass(frozen=True)
class Record:
    """What was measured for one piece of code on one GPU."""

    gpu: str  # GPU registry key
    problem: str  # problem key (seed folder name)
    label: str  # "seed" or the stage key whose solution this is
    code_sha256: str  # sha256 of the measured code file
    manifest_sha256: str  # sha256 of the problem's manifest.toml
    reference_sha256: str  # sha256 of the problem's reference.py
    run_id: str  # timing run shared by every code of the problem measured side by side
    measured_at: str  # ISO 8601 UTC time the timing run started
    env: dict[str, Any]  # gpu_name, sm_count, driver, torch, triton, cuda, ncu versions
    timing: dict[str, Any]  # median_ms, min_ms, max_ms, runs of this code
    gbps: float  # bytes_moved over the median time
    roofline_pct: float  # gbps as a percentage of the problem's ceiling (copy bandwidth for older runs)
    bytes_moved: int  # input bytes read once plus output bytes written once
    baselines: dict[str, Any]  # eager and compile timings, copy bandwidth, from the same run
    metrics: dict[str, dict[str, Any]]  # ncu metrics {kernel_name: {metric: value or None}}
    metric_notes: dict[str, str]  # why a metric is None (ncu absent, not reported, ...)
    verification: dict[str, Any]  # passed, cases, max_abs_err, max_rel_err, atol, rtol, device
    noise: float | None = None  # largest A-B-A spread of a code timed twice in this run (None: older runs)
    benchmark_sha256: str = ""  # sha256 of the manifest's benchmark table ("": older records, see stale_parts)
    checks_sha256: str = ""  # sha256 of the manifest's verification tables ("": older records)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def record_path(gpu: str, problem: str, label: str, root: Path | None = None) -> Path:
    return (root or MEASUREMENTS_DIR) / gpu / problem / f"{label}.json"


def code_path(problem: Problem, label: str) -> Path:
    """The file measured under `label`: the seed kernel or a stage's solution."""
    if label == "seed":
        return problem.kernel_path
    if label not in problem.solutions:
        raise RecordError(f"{problem.key}: no solution for stage '{label}' in {problem.dir / 'solutions'}")
    return problem.solutions[label]


def current_hashes(problem: Problem, label: str) -> dict[str, str]:
    """The hashes a record of `label` measured now carries."""
    return {
        "code_sha256": sha256_file(code_path(problem, label)),
        "manifest_sha256": problem.manifest_sha256,
        "reference_sha256": sha256_file(problem.reference_path),
        "benchmark_sha256": problem.benchmark_sha256,
        "checks_sha256": problem.checks_sha256,
    }


#: The parts of a record, each measured by its own job.
PARTS = frozenset({"verification", "timing", "ncu"})


def stale_parts(problem: Problem, record: Record) -> frozenset[str]:
    """The parts of `record` that no longer hold for the problem's current files (see the module
    doc). A record older than the split hashes is fresh only while the manifest is unchanged."""
    now = current_hashes(problem, record.label)
    if record.code_sha256 != now["code_sha256"] or record.reference_sha256 != now["reference_sha256"]:
        return PARTS
    if not (record.benchmark_sha256 and record.checks_sha256):
        return frozenset() if record.manifest_sha256 == now["manifest_sha256"] else PARTS
    if record.benchmark_sha256 != now["benchmark_sha256"]:
        return PARTS
    return frozenset({"verification"}) if record.checks_sha256 != now["checks_sha256"] else frozenset()


def write_record(record: Record, root: Path | None = None) -> Path:
    """Write atomically: a crash leaves either the old file or the new one."""
    path = record_path(record.gpu, record.problem, record.label, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(record.to_json())
    os.replace(tmp, path)
    return path


def read_record(path: Path) -> Record:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON: {exc}") from exc
    found = check_file_data(data, "record", path)
    if found:
        raise RecordError("\n".join(found))
    return Record(**{f.name: data[f.name] for f in fields(Record) if f.name in data})


def lookup(problem: Problem, label: str, gpu: str, root: Path | None = None) -> tuple[str, Record | None]:
    """("fresh", record), ("stale", None) or ("missing", None) for `label` on `gpu`."""
    record = stored(problem, label, gpu, root)
    if record is None:
        return "missing", None
    return ("stale", None) if stale_parts(problem, record) else ("fresh", record)


def stored(problem: Problem, label: str, gpu: str, root: Path | None = None) -> Record | None:
    """The record of `label` on `gpu` as stored, fresh or not; None when there is none."""
    path = record_path(gpu, problem.key, label, root)
    return read_record(path) if path.exists() else None


def measured_gpus(root: Path | None = None) -> list[str]:
    """GPU keys that have a measurements folder."""
    base = root or MEASUREMENTS_DIR
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []
