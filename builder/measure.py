"""Measure every code of every problem on the current GPU and write records.

For one problem the codes are the seed kernel and the stage solutions present. Each is checked
for correctness on the GPU, then all of them are timed side by side with the eager and compiled
reference and the copy bandwidth in one child process, then each is profiled once under ncu.
Every finished job is kept in a job cache keyed by the hashes of what it ran, so a killed run
loses only the job in flight; records are written once a problem's jobs are all done.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.errors import NoGpuError, RecordError
from builder.gpus import Gpu, current_device, match_device
from builder.judge import JUDGE_VERSION, correctness, ncu
from builder.judge.runner import JobResult, SandboxDied
from builder.judge.timing import TIMING_KEYS, Subject, bandwidth, run_side_by_side
from builder.records import MEASUREMENTS_DIR, Record, code_path, current_hashes, lookup, write_record
from builder.seeds import Problem
from builder.stages import catalog

TIMEOUTS_S = {"verify": 900, "time": 1800, "profile": 600}
BENCHMARK_TRIALS = 2

Progress = Callable[[str], None]


def timing_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The median/min/max/runs part of one subject's timing stats."""
    return {k: stats[k] for k in TIMING_KEYS}


def verify_failure(result: JobResult) -> tuple[str, str] | None:
    """(reason, detail) when a verify job crashed or its code was rejected; None when it passed."""
    if result.ok and result.payload.get("ok"):
        return None
    reason = result.reason or result.payload.get("reason") or "crash"
    return reason, (result.detail or result.payload.get("detail", "")).strip()


def labels_of(problem: Problem) -> list[str]:
    """'seed' then the stages that have a solution, in chain order."""
    return ["seed"] + [s.key for s in catalog().stages if s.key in problem.solutions]


def verify_code(problem: Problem, code: str, *, device: str, trials: int = 0, timeout_s: float = TIMEOUTS_S["verify"]
                ) -> JobResult:
    """Check `code` in a sandbox; the verdict as a JobResult whose payload the job cache can keep."""
    import time

    start = time.monotonic()
    result = correctness.verify(problem, code, device=device, timeout_s=timeout_s, trials=trials)
    return JobResult("ok", None, "", result.to_payload(), time.monotonic() - start)


class JobCache:
    """Finished job results on disk, keyed by a hash of everything the job depends on."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder, self.enabled = folder, enabled

    def key(self, *parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def run(self, key: str, kind: str, job: Callable[[], JobResult]) -> JobResult:
        """The cached result of `kind` under `key`, else `job()`, kept when it succeeded."""
        path = self.folder / f"{kind}-{key}.json"
        if self.enabled and path.exists():
            try:
                return JobResult(**json.loads(path.read_text()))
            except (json.JSONDecodeError, TypeError):
                path.unlink(missing_ok=True)
        result = job()
        if result.ok:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(asdict(result)))
            os.replace(tmp, path)
        return result


def require_gpu() -> Gpu:
    import torch

    if not torch.cuda.is_available():
        raise NoGpuError("measure needs a CUDA GPU; this machine has none (builds use the committed records)")
    return match_device(current_device())


def checked_metrics(gpu: Gpu, ncu_bin: str | None, root: Path, force: bool) -> dict[str, bool]:
    """Which catalog metrics this GPU's ncu lists, checked once per GPU with --query-metrics."""
    path = root / gpu.key / "ncu_metrics.json"
    wanted = list(catalog().all_metrics())
    if path.exists() and not force:
        saved = json.loads(path.read_text())
        if set(saved["metrics"]) == set(wanted):
            return saved["metrics"]
    if ncu_bin is None:
        return {m: False for m in wanted}
    listed = ncu.available_metrics(ncu_bin)
    result = {m: m in listed or ncu.is_launch_attribute(m) for m in wanted}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ncu": ncu.ncu_version(ncu_bin), "metrics": result}, indent=2) + "\n")
    return result


def verification_summary(result: JobResult, device: str) -> dict[str, Any]:
    cases = result.payload.get("cases", []) if result.ok else []
    abs_errs = [c["max_abs_err"] for c in cases if c.get("max_abs_err") is not None]
    rel_errs = [c["max_rel_err"] for c in cases if c.get("max_rel_err") is not None]
    return {
        "passed": verify_failure(result) is None,
        "cases": len(cases),
        "max_abs_err": max(abs_errs) if abs_errs else None,
        "max_rel_err": max(rel_errs) if rel_errs else None,
        "atol": result.payload.get("atol", 0.0),
        "rtol": result.payload.get("rtol", 0.0),
        "device": device,
    }


def profile(problem: Problem, code: str, cache: JobCache, key: str, ncu_bin: str | None,
            available: dict[str, bool]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """ncu metrics of one code, with a note for every metric that has no value."""
    wanted = list(catalog().all_metrics())
    notes = {m: "not listed by this GPU's ncu --query-metrics" for m in wanted if not available.get(m)}
    if ncu_bin is None:
        return {}, {m: "ncu not found on PATH" for m in wanted}
    asked = [m for m in wanted if available.get(m)]

    def job() -> JobResult:
        seen = ncu.profile(problem, code, asked, ncu_bin, timeout_s=TIMEOUTS_S["profile"], log_dir=cache.folder)
        if not seen.ok:
            return JobResult("failed", seen.reason, seen.detail)
        return JobResult("ok", None, "", {"metrics": seen.metrics()})

    result = cache.run(key, "profile", job)
    if not result.ok:
        why = f"ncu run failed: {result.reason}: {result.detail.strip()[-300:]}"
        return {}, {**notes, **{m: why for m in asked}}
    metrics = result.payload["metrics"]
    for values in metrics.values():
        for m in wanted:
            values.setdefault(m, None)
            if values[m] is None and m not in notes:
                notes[m] = "not reported by ncu"
    return metrics, notes


def timing_job(problem: Problem, codes: dict[str, str], *, baselines: bool = True) -> JobResult:
    """All `codes` (trusted project code) side by side, with eager, torch.compile and the ceiling."""
    subjects = [Subject(label, "code", code) for label, code in codes.items()]
    if baselines:
        subjects += [Subject("eager", "eager"), Subject("compile", "compile"), Subject("ceiling", "ceiling")]
    try:
        run = run_side_by_side(problem, subjects, timeout_s=TIMEOUTS_S["time"])
    except SandboxDied as exc:
        return JobResult("failed", exc.reason, exc.detail)
    payload = {"subjects": {label: dict(stats) for label, stats in run.stats.items()},
               "errors": {label: list(e) for label, e in run.errors.items()}, "noise": run.noise,
               "ceiling": run.ceiling, "env": run.env}
    return JobResult("ok", None, "", payload)


def bytes_moved(problem: Problem) -> int:
    """Input bytes read once plus output bytes written once, at the benchmark shape."""
    import torch

    from builder.judge.loader import load_module

    model = load_module(problem.reference_path).Model(**problem.init)
    out = model(torch.empty(problem.shape, device="meta"))
    size = getattr(torch, problem.dtype).itemsize
    return (torch.Size(problem.shape).numel() + out.numel()) * size


def measure_problem(problem: Problem, gpu: Gpu, *, force: bool, root: Path, progress: Progress) -> list[str]:
    """Measure one problem's codes; return the labels whose records were written.

    Raises RecordError naming the codes left without a record (failed verification or timing).
    """
    labels = labels_of(problem)
    state = {label: lookup(problem, label, gpu.key, root)[0] for label in labels}
    if not force and all(s == "fresh" for s in state.values()):
        progress(f"{problem.key}: all {len(labels)} records fresh, skipped")
        return []
    cache = JobCache(root / gpu.key / ".jobs", enabled=not force)
    ncu_bin = ncu.ncu_path()
    available = checked_metrics(gpu, ncu_bin, root, force)
    hashes = {label: current_hashes(problem, label) for label in labels}
    codes = {label: code_path(problem, label).read_text() for label in labels}

    verified: dict[str, dict[str, Any]] = {}
    for i, label in enumerate(labels, 1):
        progress(f"{problem.key}: verify {label} [{i}/{len(labels)}]")
        result = cache.run(cache.key("verify", gpu.key, hashes[label], JUDGE_VERSION), "verify",
                           lambda code=codes[label]: verify_code(problem, code, device="cuda",
                                                                 trials=BENCHMARK_TRIALS))
        verified[label] = verification_summary(result, "cuda")
        failure = verify_failure(result)
        if failure:
            progress(f"{problem.key}: {label} FAILED verification: {failure[0]}: {failure[1][-300:]}")
    good = [label for label in labels if verified[label]["passed"]]

    progress(f"{problem.key}: timing {', '.join(good)}, eager, compile, ceiling side by side (twice)")
    timing = cache.run(cache.key("time", gpu.key, [hashes[l] for l in good], JUDGE_VERSION), "time",
                       lambda: timing_job(problem, {label: codes[label] for label in good}))
    if not timing.ok:
        raise RecordError(f"{problem.key}: timing run failed ({timing.reason}): {timing.detail[-500:]}")
    payload = timing.payload
    for base in ("eager", "compile", "ceiling"):
        if base in payload["errors"]:
            raise RecordError(f"{problem.key}: {base} baseline failed: {payload['errors'][base]}")
    run_id = uuid.uuid4().hex[:12]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    moved = bytes_moved(problem)
    ceiling_gbps = payload["ceiling"]["ceiling"]["gbps"]
    rates = payload["ceiling"]["rates"]

    written = []
    env = {k: payload["env"][k] for k in ("gpu_name", "sm_count", "driver", "torch", "triton", "cuda")}
    env["ncu"] = ncu.ncu_version(ncu_bin) if ncu_bin else None
    for i, label in enumerate(good, 1):
        if label in payload["errors"]:
            progress(f"{problem.key}: {label} failed while timed: {payload['errors'][label]}")
            continue
        stats = payload["subjects"][label]
        progress(f"{problem.key}: ncu {label} [{i}/{len(good)}]")
        metrics, notes = profile(problem, codes[label], cache, cache.key("profile", gpu.key, hashes[label]),
                                 ncu_bin, available)
        gbps = bandwidth(moved, stats["median_ms"])
        record = Record(
            gpu=gpu.key, problem=problem.key, label=label, **hashes[label], run_id=run_id, measured_at=measured_at,
            env=env, timing={**timing_summary(stats), "repeat_median_ms": stats.get("repeat_median_ms")},
            gbps=gbps, roofline_pct=100.0 * gbps / ceiling_gbps, bytes_moved=moved,
            baselines={
                "eager": timing_summary(payload["subjects"]["eager"]),
                "compile": timing_summary(payload["subjects"]["compile"]),
                "copy_gbps": rates["copy_gbps"],
                "ceiling_gbps": ceiling_gbps,
                "ceiling_kernel": payload["ceiling"]["ceiling"]["best"],
                "read_gbps": rates["read_gbps"],
                "write_gbps": rates["write_gbps"],
            },
            metrics=metrics, metric_notes=notes, verification=verified[label], noise=payload["noise"],
        )
        write_record(record, root)
        written.append(label)
    failed = sorted(set(labels) - set(written))
    if failed:
        raise RecordError(f"{problem.key}: no record for {', '.join(failed)} (see the messages above)")
    return written


def measure(problems: list[Problem], *, force: bool = False, root: Path | None = None,
            progress: Progress = print) -> dict[str, list[str]]:
    """Measure `problems` on the current GPU; return the labels written per problem.

    Every problem is attempted; the failures of all of them are raised together at the end.
    """
    gpu = require_gpu()
    root = root or MEASUREMENTS_DIR
    progress(f"GPU: {gpu.key} ({gpu.name})")
    written: dict[str, list[str]] = {}
    failures: list[str] = []
    for problem in problems:
        try:
            written[problem.key] = measure_problem(problem, gpu, force=force, root=root, progress=progress)
        except RecordError as exc:
            failures.append(str(exc))
    if failures:
        raise RecordError("\n".join(failures))
    return written
