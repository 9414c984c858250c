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
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.errors import NoGpuError, RecordError
from builder.gpus import Gpu, current_device, match_device
from builder.judge import ncu
from builder.judge.runner import JobResult, run_job
from builder.judge.timing import TIMING_KEYS
from builder.records import MEASUREMENTS_DIR, Record, code_path, current_hashes, lookup, write_record
from builder.seeds import Problem
from builder.stages import catalog

TIMEOUTS_S = {"verify": 600, "time": 600, "profile": 600}
BENCHMARK_TRIALS = 5
TIMED_RUNS = 100

Progress = Callable[[str], None]


def timing_params(problem: Problem, codes: dict[str, str], *, baselines: bool = True) -> dict[str, Any]:
    """Params of one side-by-side timing job: the codes by label, then eager and torch.compile."""
    subjects = [{"label": label, "kind": "code", "code": code} for label, code in codes.items()]
    if baselines:
        subjects += [{"label": "eager", "kind": "eager"}, {"label": "compile", "kind": "compile"}]
    return {"problem_dir": str(problem.dir), "device": "cuda", "subjects": subjects, "runs": TIMED_RUNS, "seed": 0}


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


class JobCache:
    """Finished job results on disk, keyed by a hash of everything the job depends on."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder, self.enabled = folder, enabled

    def key(self, *parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def run(self, key: str, kind: str, params: dict[str, Any], **kwargs: Any) -> JobResult:
        path = self.folder / f"{kind}-{key}.json"
        if self.enabled and path.exists():
            data = json.loads(path.read_text())
            return JobResult(**data)
        result = run_job(kind, params, TIMEOUTS_S[kind], **kwargs)
        if result.ok:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(result)))
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


def profile(problem: Problem, label: str, code: str, cache: JobCache, key: str, ncu_bin: str | None,
            available: dict[str, bool]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """ncu metrics of one code, with a note for every metric that has no value."""
    wanted = list(catalog().all_metrics())
    notes = {m: "not listed by this GPU's ncu --query-metrics" for m in wanted if not available.get(m)}
    if ncu_bin is None:
        return {}, {m: "ncu not found on PATH" for m in wanted}
    asked = [m for m in wanted if available.get(m)]
    log = cache.folder / f"ncu-{key}.csv"
    cache.folder.mkdir(parents=True, exist_ok=True)
    params = {"problem_dir": str(problem.dir), "code": code, "label": label, "device": "cuda"}
    result = cache.run(key, "profile", params, wrap=ncu.wrap_command(ncu_bin, asked, log))
    if not result.ok or not log.exists():
        why = f"ncu run failed: {result.reason}: {result.detail.strip()[-300:]}"
        return {}, {**notes, **{m: why for m in asked}}
    metrics = ncu.parse_csv(log.read_text(), asked)
    if not metrics:
        return {}, {**notes, **{m: "ncu profiled no kernel in the NVTX range" for m in asked}}
    for kernel, values in metrics.items():
        for m in wanted:
            values.setdefault(m, None)
            if values[m] is None and m not in notes:
                notes[m] = "not reported by ncu"
    return metrics, notes


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
        params = {"problem_dir": str(problem.dir), "code": codes[label], "device": "cuda", "cases": None,
                  "benchmark_trials": BENCHMARK_TRIALS, "seed": 0}
        result = cache.run(cache.key("verify", gpu.key, hashes[label]), "verify", params)
        verified[label] = verification_summary(result, "cuda")
        failure = verify_failure(result)
        if failure:
            progress(f"{problem.key}: {label} FAILED verification: {failure[0]}: {failure[1][-300:]}")
    good = [label for label in labels if verified[label]["passed"]]

    progress(f"{problem.key}: timing {', '.join(good)}, eager, compile side by side")
    params = timing_params(problem, {label: codes[label] for label in good})
    timing = cache.run(cache.key("time", gpu.key, [hashes[l] for l in good]), "time", params)
    if not timing.ok:
        raise RecordError(f"{problem.key}: timing run failed ({timing.reason}): {timing.detail[-500:]}")
    run_id = uuid.uuid4().hex[:12]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    subjects_out = timing.payload["subjects"]
    for base in ("eager", "compile"):
        if "error" in subjects_out[base]:
            raise RecordError(f"{problem.key}: {base} baseline failed: {subjects_out[base]['error']}")

    written = []
    env = {k: timing.payload["env"][k] for k in ("gpu_name", "sm_count", "driver", "torch", "triton", "cuda")}
    env["ncu"] = ncu.ncu_version(ncu_bin) if ncu_bin else None
    for i, label in enumerate(good, 1):
        stats = subjects_out[label]
        if "error" in stats:
            progress(f"{problem.key}: {label} failed while timed: {stats['error'][:300]}")
            continue
        progress(f"{problem.key}: ncu {label} [{i}/{len(good)}]")
        metrics, notes = profile(problem, label, codes[label], cache, cache.key("profile", gpu.key, hashes[label]),
                                 ncu_bin, available)
        record = Record(
            gpu=gpu.key, problem=problem.key, label=label, **hashes[label], run_id=run_id, measured_at=measured_at,
            env=env, timing=timing_summary(stats),
            gbps=stats["gbps"], roofline_pct=stats["roofline_pct"], bytes_moved=timing.payload["bytes_moved"],
            baselines={
                "eager": timing_summary(subjects_out["eager"]),
                "compile": timing_summary(subjects_out["compile"]),
                "copy_gbps": timing.payload["copy"]["gbps"],
            },
            metrics=metrics, metric_notes=notes, verification=verified[label],
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
