"""Measure every code of every problem on this machine's GPUs (or a Ray cluster's) and write records.

For one problem the codes are the seed kernel and the stage solutions present. Each is checked
for correctness on the GPU, then all of them are timed side by side (twice, for the noise) with
the eager and compiled reference and the problem's ceiling probes in one sandbox on one GPU, then
each is profiled once under ncu. These are typed jobs (builder.executors.Job) handed to an
executor in three waves (verify, time, profile) across all problems: one worker per GPU runs
them, each job in a fresh child process that has its GPU to itself. Every finished job is kept
in a job cache keyed by the hashes of what it ran and the judge's version, so a killed run loses
only the jobs in flight; the records are written here, in the driver, once a problem's jobs are done.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.errors import NoGpuError, RecordError
from builder.executors import Executor, Job, JobCache, Outcome, make_executor
from builder.executors.base import JobRunner, default_runner
from builder.gpus import Gpu, current_device, match_device
from builder.judge import JUDGE_VERSION, correctness, ncu
from builder.judge.runner import JobFailure, JobResult, SandboxDied
from builder.judge.timing import TIMING_KEYS, Subject, bandwidth, run_side_by_side
from builder.records import MEASUREMENTS_DIR, Record, code_path, current_hashes, lookup, write_record
from builder.seeds import Problem, load_problem
from builder.stages import catalog

TIMEOUTS_S = {"verify": 900, "time": 1800, "profile": 600}
BENCHMARK_TRIALS = 2

Progress = Callable[[str], None]


# -- the jobs, as run in a child process with one GPU (builder.judge.child) -----------------

def verify_job(params: dict[str, Any]) -> dict[str, Any]:
    """Check one code in a sandbox; the verdict's plain form."""
    problem = load_problem(Path(params["problem_dir"]))
    return correctness.verify(problem, params["code"], device=params.get("device", "cuda"),
                              timeout_s=TIMEOUTS_S["verify"], trials=int(params.get("trials", 0))).to_payload()


def time_job(params: dict[str, Any]) -> dict[str, Any]:
    """Time a problem's codes (trusted project code) side by side, with the baselines when asked."""
    problem = load_problem(Path(params["problem_dir"]))
    subjects = [Subject(label, "code", code) for label, code in params["codes"].items()]
    if params.get("baselines", True):
        subjects += [Subject("eager", "eager"), Subject("compile", "compile"), Subject("ceiling", "ceiling")]
    try:
        run = run_side_by_side(problem, subjects, timeout_s=TIMEOUTS_S["time"])
    except SandboxDied as exc:
        raise JobFailure(exc.reason, exc.detail) from None
    return {"subjects": {label: dict(stats) for label, stats in run.stats.items()},
            "errors": {label: list(e) for label, e in run.errors.items()}, "noise": run.noise,
            "ceiling": run.ceiling, "env": run.env, "walls": run.walls}


def profile_job(params: dict[str, Any]) -> dict[str, Any]:
    """One code's ncu metrics at the benchmark shape."""
    problem = load_problem(Path(params["problem_dir"]))
    seen = ncu.profile(problem, params["code"], params["metrics"], params["ncu"], timeout_s=TIMEOUTS_S["profile"])
    if not seen.ok:
        raise JobFailure(seen.reason or "crash", seen.detail)
    return {"metrics": seen.metrics()}


# -- the driver ----------------------------------------------------------------------------

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
    """Check `code` in a sandbox, here; the verdict as a JobResult whose payload a cache can keep."""
    import time

    start = time.monotonic()
    result = correctness.verify(problem, code, device=device, timeout_s=timeout_s, trials=trials)
    return JobResult("ok", None, "", result.to_payload(), time.monotonic() - start)


def timing_job(problem: Problem, codes: dict[str, str], *, baselines: bool = True) -> JobResult:
    """`time_job` run here (bench and validate time on this process's GPU)."""
    try:
        payload = time_job({"problem_dir": str(problem.dir), "codes": codes, "baselines": baselines})
    except JobFailure as exc:
        return JobResult("failed", exc.reason, exc.detail)
    return JobResult("ok", None, "", payload)


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


def bytes_moved(problem: Problem) -> int:
    """Input bytes read once plus output bytes written once, at the benchmark shape."""
    import torch

    from builder.judge.loader import load_module

    model = load_module(problem.reference_path).Model(**problem.init)
    out = model(torch.empty(problem.shape, device="meta"))
    size = getattr(torch, problem.dtype).itemsize
    return (torch.Size(problem.shape).numel() + out.numel()) * size


def job_result(data: dict[str, Any]) -> JobResult:
    """A job's plain result dict (from an executor or a cache) as a JobResult."""
    return JobResult(data["status"], data.get("reason"), data.get("detail", ""), data.get("payload") or {})


class _Plan:
    """One problem's codes, hashes and results as the waves come back."""

    def __init__(self, problem: Problem, gpu: Gpu) -> None:
        self.problem, self.gpu = problem, gpu
        self.labels = labels_of(problem)
        self.hashes = {label: current_hashes(problem, label) for label in self.labels}
        self.codes = {label: code_path(problem, label).read_text() for label in self.labels}
        self.verified: dict[str, dict[str, Any]] = {}
        self.timing: JobResult | None = None
        self.metrics: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}

    def job(self, kind: str, label_or_labels: Any, params: dict[str, Any]) -> Job:
        """The job's key is all its result depends on: the hashes of its codes, manifest and
        reference, and its other parameters. A verify or profile job's label is only shown, so
        stages that share a code (a kept stage) share its job; a timing job's labels name its
        subjects."""
        labels = label_or_labels if isinstance(label_or_labels, list) else [label_or_labels]
        shown = {k: v for k, v in params.items() if k not in ("code", "codes", "label")}
        named = labels if kind == "time" else []
        key = JobCache.key(kind, self.gpu.key, named, [self.hashes[l] for l in labels], shown, JUDGE_VERSION)
        return Job(kind, key, {"problem_dir": str(self.problem.dir), "device": "cuda", **params},
                   TIMEOUTS_S[kind] + 120, gpu=self.gpu.key)

    @property
    def good(self) -> list[str]:
        return [label for label in self.labels if self.verified.get(label, {}).get("passed")]


def measure(problems: list[Problem], *, force: bool = False, root: Path | None = None, progress: Progress = print,
            executor: str = "local", gpus: int | None = None, address: str | None = None,
            runner: JobRunner = default_runner, verify_per_gpu: int = 1) -> dict[str, list[str]]:
    """Measure `problems`; return the labels written per problem. Every problem is attempted; the
    failures of all of them are raised together at the end. Verification runs `verify_per_gpu` jobs
    on a GPU at once; timing and profiling always have their GPU to themselves."""
    gpu = require_gpu()
    root = root or MEASUREMENTS_DIR
    progress(f"GPU: {gpu.key} ({gpu.name})")
    plans = []
    written: dict[str, list[str]] = {}
    for problem in problems:
        states = [lookup(problem, label, gpu.key, root)[0] for label in labels_of(problem)]
        if not force and all(s == "fresh" for s in states):
            progress(f"{problem.key}: all {len(states)} records fresh, skipped")
            written[problem.key] = []
        else:
            plans.append(_Plan(problem, gpu))
    if not plans:
        return written
    cache = JobCache(root / gpu.key / ".jobs", enabled=not force)
    pool = make_executor(executor, gpus=gpus, address=address, cache=cache, runner=runner)
    shared = make_executor(executor, gpus=gpus, address=address, cache=cache, runner=runner, per_gpu=verify_per_gpu)
    ncu_bin = ncu.ncu_path()
    available = checked_metrics(gpu, ncu_bin, root, force)
    _verify(shared, plans, progress)
    _time(pool, plans, progress)
    _profile(pool, plans, ncu_bin, available, progress)
    failures = []
    for plan in plans:
        try:
            written[plan.problem.key] = _write(plan, ncu_bin, root)
        except RecordError as exc:
            failures.append(str(exc))
    if failures:
        raise RecordError("\n".join(failures))
    return written


def _announce(progress: Progress, total: int) -> Callable[[Outcome], None]:
    """A progress line per finished job, with the time since the wave started."""
    done = [0]
    start = time.monotonic()

    def show(outcome: Outcome) -> None:
        done[0] += 1
        where = "cached" if outcome.cached else f"ran on {outcome.worker}"
        detail = str(outcome.result.get("detail") or "")
        status = "ok" if outcome.ok else f"FAILED {outcome.result.get('reason')}" + (f": {detail[-300:]}" if detail else "")
        elapsed = int(time.monotonic() - start)
        progress(f"[{done[0]}/{total}] {outcome.job.kind} {outcome.job.params.get('label', '')} "
                 f"{Path(outcome.job.params['problem_dir']).name}: {status} ({where}, "
                 f"{elapsed // 60}m{elapsed % 60:02d}s into the wave)")

    return show


def _per_code(pool: Executor, jobs: list[tuple[_Plan, str, Job]], progress: Progress) -> list[Outcome]:
    """Run each distinct job once (codes shared by stages share a job); one outcome per entry."""
    distinct: dict[str, Job] = {}
    for _, _, job in jobs:
        distinct.setdefault(job.key, job)
    ran = dict(zip(distinct, pool.run(list(distinct.values()), _announce(progress, len(distinct)))))
    return [ran[job.key] for _, _, job in jobs]


def _verify(pool: Executor, plans: list[_Plan], progress: Progress) -> None:
    jobs = [(plan, label, plan.job("verify", label, {"label": label, "code": plan.codes[label],
                                                     "trials": BENCHMARK_TRIALS}))
            for plan in plans for label in plan.labels]
    for (plan, label, _), outcome in zip(jobs, _per_code(pool, jobs, progress)):
        result = job_result(outcome.result)
        plan.verified[label] = verification_summary(result, "cuda")
        failure = verify_failure(result)
        if failure:
            progress(f"{plan.problem.key}: {label} FAILED verification: {failure[0]}: {failure[1][-300:]}")


def _time(pool: Executor, plans: list[_Plan], progress: Progress) -> None:
    jobs = [(plan, plan.job("time", plan.good, {"label": "side by side",
                                               "codes": {l: plan.codes[l] for l in plan.good}}))
            for plan in plans if plan.good]
    outcomes = pool.run([job for _, job in jobs], _announce(progress, len(jobs)))
    for (plan, _), outcome in zip(jobs, outcomes):
        plan.timing = job_result(outcome.result)


def _profile(pool: Executor, plans: list[_Plan], ncu_bin: str | None, available: dict[str, bool],
             progress: Progress) -> None:
    wanted = list(catalog().all_metrics())
    notes = {m: "not listed by this GPU's ncu --query-metrics" for m in wanted if not available.get(m)}
    asked = [m for m in wanted if available.get(m)]
    targets = [(plan, label) for plan in plans if plan.timing is not None and plan.timing.ok for label in plan.good]
    if ncu_bin is None:
        for plan, label in targets:
            plan.metrics[label] = ({}, {m: "ncu not found on PATH" for m in wanted})
        return
    jobs = [(plan, label, plan.job("profile", label, {"label": label, "code": plan.codes[label], "metrics": asked,
                                                      "ncu": ncu_bin}))
            for plan, label in targets]
    for (plan, label, _), outcome in zip(jobs, _per_code(pool, jobs, progress)):
        result = job_result(outcome.result)
        if not result.ok:
            why = f"ncu run failed: {result.reason}: {result.detail.strip()[-300:]}"
            plan.metrics[label] = ({}, {**notes, **{m: why for m in asked}})
            continue
        metrics = result.payload["metrics"]
        found = dict(notes)
        for values in metrics.values():
            for m in wanted:
                values.setdefault(m, None)
                if values[m] is None and m not in found:
                    found[m] = "not reported by ncu"
        plan.metrics[label] = (metrics, found)


def _write(plan: _Plan, ncu_bin: str | None, root: Path) -> list[str]:
    """The records of one problem, from its three waves; RecordError names the codes left without one."""
    problem, timing = plan.problem, plan.timing
    if timing is None or not timing.ok:
        why = f"({timing.reason}): {timing.detail[-500:]}" if timing else "(no code passed verification)"
        raise RecordError(f"{problem.key}: timing run failed {why}")
    payload = timing.payload
    for base in ("eager", "compile", "ceiling"):
        if base in payload["errors"]:
            raise RecordError(f"{problem.key}: {base} baseline failed: {payload['errors'][base]}")
    run_id = uuid.uuid4().hex[:12]
    measured_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    moved = bytes_moved(problem)
    ceiling_gbps = payload["ceiling"]["ceiling"]["gbps"]
    rates = payload["ceiling"]["rates"]
    env = {k: payload["env"][k] for k in ("gpu_name", "sm_count", "driver", "torch", "triton", "cuda")}
    env["ncu"] = ncu.ncu_version(ncu_bin) if ncu_bin else None
    written = []
    why_not = {label: "failed verification" for label in plan.labels if label not in plan.good}
    for label in plan.good:
        if label in payload["errors"]:
            reason, detail = payload["errors"][label]
            why_not[label] = f"failed while timed: {reason}: {detail[:200]}"
            continue
        if label not in plan.metrics:
            why_not[label] = "not profiled"
            continue
        stats = payload["subjects"][label]
        metrics, notes = plan.metrics[label]
        gbps = bandwidth(moved, stats["median_ms"])
        record = Record(
            gpu=plan.gpu.key, problem=problem.key, label=label, **plan.hashes[label], run_id=run_id,
            measured_at=measured_at, env=env,
            timing={**timing_summary(stats), "repeat_median_ms": stats.get("repeat_median_ms")},
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
            metrics=metrics, metric_notes=notes, verification=plan.verified[label], noise=payload["noise"],
        )
        write_record(record, root)
        written.append(label)
    if why_not:
        raise RecordError(f"{problem.key}: no record for " + "; ".join(f"{label} ({why})" for label, why in
                                                                     sorted(why_not.items())))
    return written
