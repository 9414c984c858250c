"""Measure every code of every problem on this machine's GPUs (or a Ray cluster's) and write records.

A problem's codes are the seed kernel and the stage solutions present. Its measurement is three
typed jobs (builder.judge.jobs), one after another: the verification of every code in one
sandbox session (verifications of several problems may share a GPU, `verify_per_gpu`), one
side-by-side timing run with the baselines and the ceiling probes, and one ncu process that
profiles every code. Timing and profiling need their GPU alone. Each job is handed to the
executor the moment the problem's previous one is in, ahead of the verifications still queued,
so a problem's records are written as soon as its own jobs are done, not after the others'.

Only what is stale is measured again (builder.records): a changed case re-runs the verification
alone, and the records keep their timings and metrics. Every finished job is kept in a job cache
keyed by what it ran and the judge's version, so a killed run loses only the jobs in flight and
a rerun does only what is missing. The jobs of a problem share compiler caches on their machine.
Each job reports where its time went (builder.judge.phases); the run ends with the sum.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from builder.errors import NoGpuError, RecordError
from builder.executors import Job, JobCache, Outcome, make_executor
from builder.executors.base import JobRunner, default_runner
from builder.gpus import Gpu, current_device, match_device
from builder.judge import judge_version, ncu
from builder.judge.correctness import VerifyResult
from builder.judge.jobs import ProfileJob, TimeJob, TypedJob, VerifyJob
from builder.judge.phases import Phases
from builder.judge.timing import TIMING_KEYS, TimingRun, bandwidth
from builder.records import (
    MEASUREMENTS_DIR,
    PARTS,
    Record,
    code_path,
    current_hashes,
    measured_gpus,
    stale_parts,
    stored,
    write_record,
)
from builder.seeds import Problem
from builder.stages import catalog

BENCHMARK_TRIALS = 2
#: Seconds an executor waits past a job's own time limit before it gives up on the worker.
GRACE_S = 120

Progress = Callable[[str], None]


def labels_of(problem: Problem) -> list[str]:
    """'seed' then the stages that have a solution, in chain order."""
    return ["seed"] + [s.key for s in catalog().stages if s.key in problem.solutions]


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


def verification_summary(result: VerifyResult, device: str) -> dict[str, Any]:
    """A record's verification part."""
    max_abs, max_rel = result.errors()
    summary = {"passed": result.ok, "cases": len(result.cases), "max_abs_err": max_abs, "max_rel_err": max_rel,
               "atol": result.atol, "rtol": result.rtol, "device": device}
    if not result.ok:
        summary.update(reason=result.reason, detail=result.detail[-500:])
    return summary


def bytes_moved(problem: Problem) -> int:
    """Every input read once plus every output written once, at the benchmark: the reference's
    inputs and outputs with their own dtypes (outputs found on the meta device)."""
    from builder.judge.loader import load_module
    from builder.judge.reference import meta_outputs, nbytes

    outputs = meta_outputs(load_module(problem.reference_path), problem.init, problem.inputs)
    return nbytes([(i.shape, i.dtype) for i in problem.inputs]) + nbytes(outputs)


def job_failure(outcome: Outcome) -> tuple[str, str] | None:
    """(reason, detail) of a job that did not return a result of its own; None when it did."""
    if outcome.ok:
        return None
    return outcome.result.get("reason") or "crash", str(outcome.result.get("detail") or "").strip()


@dataclass
class _Plan:
    """One problem's codes, what of its records is stale, and the results as its jobs come back."""

    problem: Problem
    gpu: Gpu
    force: bool
    root: Path
    labels: list[str] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    old: dict[str, Record | None] = field(default_factory=dict)  # the stored records, fresh or not
    stale: dict[str, frozenset[str]] = field(default_factory=dict)  # label -> parts to measure again
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> verification part
    timing: TimingRun | None = None
    metrics: dict[str, tuple[dict[str, Any], dict[str, str]]] = field(default_factory=dict)
    profiled: dict[str, str] = field(default_factory=dict)  # label -> the label its code was profiled as
    failures: dict[str, str] = field(default_factory=dict)  # label -> why it gets no record
    phases: Phases = field(default_factory=Phases)

    def __post_init__(self) -> None:
        self.labels = labels_of(self.problem)
        self.codes = {label: code_path(self.problem, label).read_text() for label in self.labels}
        for label in self.labels:
            record = stored(self.problem, label, self.gpu.key, self.root)
            self.old[label] = record
            self.stale[label] = PARTS if self.force or record is None else stale_parts(self.problem, record)
            if "verification" not in self.stale[label]:
                self.verified[label] = record.verification  # type: ignore[union-attr]

    @property
    def needed(self) -> bool:
        return any(self.stale.values())

    @property
    def timed(self) -> list[str]:
        """The codes that are timed and profiled: those that passed verification, and the seed
        whatever its verification says (the origin's code is data: a seed that fails the broader
        checks is still the code stage 1 improves on, and its timing run checks its benchmark
        outputs)."""
        return [label for label in self.labels
                if label in self.verified and (label == "seed" or self.verified[label].get("passed"))]

    def distinct(self, labels: list[str]) -> dict[str, str]:
        """label -> code for the first label of each distinct code (a kept stage shares its
        current code's jobs and still gets its own record)."""
        seen: dict[str, str] = {}
        for label in labels:
            seen.setdefault(self.codes[label], label)
        return {label: code for code, label in seen.items()}

    def envelope(self, job: TypedJob) -> Job:
        """The executor's job: keyed by everything its result depends on (the codes, the problem's
        hashes, the job's other parameters, the GPU and the judge's version), not by paths."""
        params = job.params()
        shown = {k: v for k, v in params.items() if k != "problem_dir"}
        hashes = {k: v for k, v in current_hashes(self.problem, "seed").items() if k != "code_sha256"}
        key = JobCache.key(job.kind, self.gpu.key, shown, hashes, judge_version())
        return Job(job.kind, key, params, job.timeout_s + GRACE_S, gpu=self.gpu.key, exclusive=job.exclusive)


class _Run:
    """The driver's side of one measure call: plans, follow-up jobs, records, progress."""

    def __init__(self, plans: list[_Plan], root: Path, progress: Progress, ncu_bin: str | None,
                 available: dict[str, bool], ahead: bool = False) -> None:
        """`ahead`: a timing job starts the ncu sandbox of the profile after it (Executor.host_jobs)."""
        self.plans, self.root, self.progress, self.ncu_bin = plans, root, progress, ncu_bin
        self.available, self.ahead = available, ahead
        self.by_key: dict[str, _Plan] = {}
        self.sent: dict[str, float] = {}
        self.started = time.monotonic()
        self.written: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.phases = Phases()

    def first_jobs(self) -> list[Job]:
        jobs = []
        for plan in self.plans:
            job = self._verify(plan) or self._time(plan)
            if job is None:
                self._finish(plan)
            else:
                jobs.append(job)
        return jobs

    def _send(self, plan: _Plan, job: TypedJob) -> Job:
        envelope = plan.envelope(job)
        self.by_key[envelope.key] = plan
        self.sent[envelope.key] = time.monotonic()
        return envelope

    def _verify(self, plan: _Plan) -> Job | None:
        todo = [label for label in plan.labels if "verification" in plan.stale[label]]
        if not todo:
            return None
        needs_timing = any("timing" in plan.stale[label] for label in plan.labels)
        return self._send(plan, VerifyJob(str(plan.problem.dir), plan.distinct(todo), trials=BENCHMARK_TRIALS,
                                          warm=True, warm_compile=needs_timing))

    def _time(self, plan: _Plan) -> Job | None:
        if not any("timing" in plan.stale[label] for label in plan.labels) or not plan.timed:
            return None
        then = self.ncu_bin if self.ahead and self._to_profile(plan) else None  # its sandbox starts during the timing
        return self._send(plan, TimeJob(str(plan.problem.dir), {label: plan.codes[label] for label in plan.timed},
                                        warm=True, ncu=then, metrics=self._metrics() if then else []))

    def _metrics(self) -> list[str]:
        """The metrics a profile asks ncu for: those this GPU's ncu lists."""
        return [m for m in catalog().all_metrics() if self.available.get(m)]

    @staticmethod
    def _to_profile(plan: _Plan) -> list[str]:
        return [label for label in plan.timed if "ncu" in plan.stale[label] and label not in plan.failures]

    def _profile(self, plan: _Plan) -> Job | None:
        wanted = self._metrics()
        todo = self._to_profile(plan)
        if self.ncu_bin is None:
            plan.metrics.update({label: ({}, {m: "ncu not found on PATH" for m in catalog().all_metrics()})
                                 for label in todo})
            return None
        if not todo:
            return None
        codes = plan.distinct(todo)
        plan.profiled = {label: next(shown for shown in codes if plan.codes[shown] == plan.codes[label])
                         for label in todo}
        return self._send(plan, ProfileJob(str(plan.problem.dir), codes, metrics=wanted, ncu=self.ncu_bin, warm=True))

    def on_result(self, outcome: Outcome) -> list[Job]:
        """Take one job's outcome into its problem's plan; return the problem's next job."""
        plan = self.by_key[outcome.job.key]
        self._account(plan, outcome)
        failed = job_failure(outcome)
        kind = outcome.job.kind
        if kind == "verify":
            if failed:
                for label in plan.labels:
                    if "verification" in plan.stale[label]:
                        plan.failures[label] = f"verification job failed: {failed[0]}: {failed[1][-300:]}"
            else:
                self._take_verification(plan, VerifyJob.decode(outcome.result["payload"]))
            nxt = self._time(plan)
        elif kind == "time":
            if failed:
                self.errors.append(f"{plan.problem.key}: timing run failed ({failed[0]}): {failed[1][-500:]}")
                plan.failures.update({label: "timing run failed" for label in plan.timed})
            else:
                plan.timing = TimeJob.decode(outcome.result["payload"])
            nxt = self._profile(plan) if plan.timing is not None else None
        else:
            self._take_profiles(plan, outcome, failed)
            nxt = None
        if nxt is None:
            self._finish(plan)
            return []
        return [nxt]

    def _account(self, plan: _Plan, outcome: Outcome) -> None:
        result = outcome.result
        phases = Phases(result.get("phases"))
        phases.merge((result.get("payload") or {}).get("phases"))
        if not outcome.cached:
            waited = time.monotonic() - self.sent[outcome.job.key] - float(result.get("wall_s") or 0.0)
            phases.add("wait", waited)
        plan.phases.merge(phases)
        self.phases.merge(phases)
        where = "cached" if outcome.cached else f"on {outcome.worker}"
        failed = job_failure(outcome)
        status = "ok" if failed is None else f"FAILED {failed[0]}: {failed[1][-300:]}"
        spent = ", ".join(f"{name} {s:.1f}" for name, s in phases.to_dict().items())
        self.progress(f"{self._clock()} {outcome.job.kind} {plan.problem.key}: {status} ({where}; {spent or 'no time'})")

    def _clock(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return f"[{elapsed // 60}m{elapsed % 60:02d}s]"

    def _take_verification(self, plan: _Plan, batch: Any) -> None:
        for label, result in batch.results.items():
            for same in [other for other in plan.labels if plan.codes[other] == plan.codes[label]]:
                plan.verified[same] = verification_summary(result, "cuda")
                if not result.ok:
                    if same != "seed":  # the seed is timed and recorded all the same (see _Plan.timed)
                        plan.failures[same] = f"failed verification: {result.reason}: {result.detail[-300:]}"
                    self.progress(f"{plan.problem.key}: {same} FAILED verification: {result.reason}: "
                                  f"{result.detail[-300:]}")

    def _take_profiles(self, plan: _Plan, outcome: Outcome, failed: tuple[str, str] | None) -> None:
        wanted = list(catalog().all_metrics())
        notes = {m: "not listed by this GPU's ncu --query-metrics" for m in wanted if not self.available.get(m)}
        asked = [m for m in wanted if self.available.get(m)]
        profiles = {} if failed else ProfileJob.decode(outcome.result["payload"]).profiles
        for label, shown_as in plan.profiled.items():
            seen = profiles.get(shown_as)
            if seen is None or not seen.ok:
                reason, detail = failed or ((seen.reason or "crash", seen.detail) if seen else ("crash", "no profile"))
                plan.metrics[label] = ({}, {**notes, **{m: f"ncu run failed: {reason}: {detail[-300:]}" for m in asked}})
                continue
            metrics = seen.metrics()
            found = dict(notes)
            for values in metrics.values():
                for m in wanted:
                    values.setdefault(m, None)
                    if values[m] is None and m not in found:
                        found[m] = "not reported by ncu"
            plan.metrics[label] = (metrics, found)

    def _finish(self, plan: _Plan) -> None:
        """Write the problem's records from what its jobs brought back, and say what is left out."""
        key = plan.problem.key
        with self.phases.span("other"):
            try:
                labels, missing = _write(plan, self.ncu_bin, self.root)
            except RecordError as exc:
                labels, missing = [], str(exc)
        self.written[key] = labels
        if missing:
            self.errors.append(f"{key}: {missing}")
        self.progress(f"{self._clock()} {key}: wrote {len(labels)} record(s)"
                      + (f": {', '.join(labels)}" if labels else "") + (f"; {missing}" if missing else ""))


def measure(problems: list[Problem], *, force: bool = False, root: Path | None = None, progress: Progress = print,
            executor: str = "local", gpus: int | None = None, address: str | None = None,
            runner: JobRunner = default_runner, verify_per_gpu: int = 1) -> dict[str, list[str]]:
    """Measure what is stale of `problems`; return the labels written per problem. Every problem is
    attempted; the failures of all of them are raised together at the end. Up to `verify_per_gpu`
    verifications share a GPU; timing and profiling always have their GPU to themselves."""
    gpu = require_gpu()
    root = root or MEASUREMENTS_DIR
    progress(f"GPU: {gpu.key} ({gpu.name})")
    written: dict[str, list[str]] = {}
    plans = []
    for problem in problems:
        plan = _Plan(problem, gpu, force, root)
        if plan.needed:
            plans.append(plan)
        else:
            progress(f"{problem.key}: all {len(plan.labels)} records fresh, skipped")
            written[problem.key] = []
    if not plans:
        return written
    cache = JobCache(root / gpu.key / ".jobs", enabled=not force)
    pool = make_executor(executor, gpus=gpus, address=address, cache=cache, runner=runner, per_gpu=verify_per_gpu)
    ncu_bin = ncu.ncu_path()
    run = _Run(plans, root, progress, ncu_bin, checked_metrics(gpu, ncu_bin, root, force), ahead=pool.host_jobs)
    first = run.first_jobs()
    if first:
        pool.run(first, run.on_result)
    wall = time.monotonic() - run.started
    progress("where the time went (seconds summed over jobs):\n" + run.phases.table(wall))
    written.update(run.written)
    if run.errors:
        raise RecordError("\n".join(run.errors))
    return written


def refresh_checks(problems: list[Problem], *, root: Path | None = None, progress: Progress = print) -> dict[str, list[str]]:
    """Without a GPU: bring back to fresh the records whose verification alone is stale (the
    manifest's checks changed, the benchmark did not), on every GPU measured. Each problem's codes
    are checked once in the CPU interpreter against the current cases, and each such record's
    verification part is rewritten with `device: "cpu"` (a code that fails is recorded as failed,
    with the reason: no row is built on a failed solution, and a failed seed is still the code
    stage 1 improves on); its timings, metrics and the benchmark trials of its GPU run still hold,
    as the code and the benchmark are unchanged. Returns the records rewritten per
    "<gpu>/<problem>"; what needs a GPU is left as it is and listed."""
    root = root or MEASUREMENTS_DIR
    refreshed: dict[str, list[str]] = {}
    needs_gpu = []
    for problem in problems:
        todo: dict[str, list[Record]] = {}
        for gpu in measured_gpus(root):
            for label in labels_of(problem):
                record = stored(problem, label, gpu, root)
                parts = stale_parts(problem, record) if record is not None else PARTS
                if parts == {"verification"}:
                    todo.setdefault(label, []).append(record)  # type: ignore[arg-type]
                elif parts:
                    needs_gpu.append(f"{gpu}/{problem.key}/{label}")
        if not todo:
            continue
        codes = {label: code_path(problem, label).read_text() for label in todo}
        progress(f"{problem.key}: checking {len(codes)} code(s) against the new cases in the CPU interpreter")
        batch = VerifyJob(str(problem.dir), codes, device="cpu").run()
        for label, records in todo.items():
            result = batch.results[label]
            if not result.ok:
                progress(f"{problem.key}: {label} FAILED the new checks (recorded as failed): {result.reason}: "
                         f"{result.detail[-300:]}")
            for record in records:
                write_record(replace(record, **current_hashes(problem, label),
                                     verification=verification_summary(result, "cpu")), root)
                refreshed.setdefault(f"{record.gpu}/{problem.key}", []).append(label)
    if needs_gpu:
        progress(f"{len(needs_gpu)} record(s) are missing or stale beyond their verification and need a GPU "
                 f"(`kernel-prompts measure` on a GPU machine): {', '.join(needs_gpu[:12])}"
                 f"{' ...' if len(needs_gpu) > 12 else ''}")
    return refreshed


def _write(plan: _Plan, ncu_bin: str | None, root: Path) -> tuple[list[str], str]:
    """Write the records of one problem: new parts from this run's jobs, fresh parts kept from the
    stored records. Returns the labels written and why the others have none ("" when none is left
    out); when a baseline failed, nothing is written."""
    problem, timing = plan.problem, plan.timing
    why_not = {label: plan.failures[label] for label in plan.labels if label in plan.failures}
    why_not.update({label: "failed verification" for label in plan.labels
                    if label not in plan.timed and label not in why_not})
    written = []
    if timing is not None:
        for base in ("eager", "compile", "ceiling"):
            if base in timing.errors:
                return [], f"{base} baseline failed: {timing.errors[base]}"
        new_run = _run_parts(problem, timing, ncu_bin)
    for label in plan.timed:
        if label in why_not:
            continue
        old = plan.old[label]
        parts: dict[str, Any] = {**current_hashes(problem, label), "verification": plan.verified[label]}
        if timing is not None:
            if label in timing.errors:
                reason, detail = timing.errors[label]
                why_not[label] = f"failed while timed: {reason}: {detail[:200]}"
                continue
            if "ncu" in plan.stale[label] and label not in plan.metrics:
                why_not[label] = "not profiled"
                continue
            metrics, notes = plan.metrics[label] if label in plan.metrics else (old.metrics, old.metric_notes)
            parts.update(_timing_parts(new_run, timing.stats[label]), metrics=metrics, metric_notes=notes)
            record = Record(gpu=plan.gpu.key, problem=problem.key, label=label, **parts)
        elif old is not None and plan.stale[label] <= {"verification"}:
            record = replace(old, **parts)
        else:
            why_not[label] = "not timed"
            continue
        write_record(record, root)
        written.append(label)
    missing = "; ".join(f"{label} ({why})" for label, why in sorted(why_not.items()))
    return written, f"no record for {missing}" if missing else ""


def _run_parts(problem: Problem, timing: TimingRun, ncu_bin: str | None) -> dict[str, Any]:
    """What every record of one timing run shares."""
    ceiling_gbps = timing.ceiling["ceiling"]["gbps"]
    rates = timing.ceiling["rates"]
    env = {k: timing.env[k] for k in ("gpu_name", "sm_count", "driver", "torch", "triton", "cuda")}
    env["ncu"] = ncu.ncu_version(ncu_bin) if ncu_bin else None
    return {
        "run_id": uuid.uuid4().hex[:12],
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "env": env,
        "bytes_moved": bytes_moved(problem),
        "ceiling_gbps": ceiling_gbps,
        "noise": timing.noise,
        "baselines": {
            "eager": {k: timing.stats["eager"][k] for k in TIMING_KEYS},
            "compile": {k: timing.stats["compile"][k] for k in TIMING_KEYS},
            "copy_gbps": rates["copy_gbps"],
            "ceiling_gbps": ceiling_gbps,
            "ceiling_kernel": timing.ceiling["ceiling"]["best"],
            "read_gbps": rates["read_gbps"],
            "write_gbps": rates["write_gbps"],
        },
    }


def _timing_parts(run: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """One code's timing part of a record, in the run `run`."""
    gbps = bandwidth(run["bytes_moved"], stats["median_ms"])
    return {
        "run_id": run["run_id"], "measured_at": run["measured_at"], "env": run["env"],
        "timing": {**{k: stats[k] for k in TIMING_KEYS}, "repeat_median_ms": stats.get("repeat_median_ms")},
        "gbps": gbps, "roofline_pct": 100.0 * gbps / run["ceiling_gbps"], "bytes_moved": run["bytes_moved"],
        "baselines": run["baselines"], "noise": run["noise"],
    }
