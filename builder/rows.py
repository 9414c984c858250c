"""Join problems × stages × GPU records into dataset rows (see schemas/row.schema.json).

A row of stage S on GPU G needs two fresh records of one timing run: the current code (the seed
kernel for stage 1, else the previous stage's solution) and S's solution. The prompt shows the
current code and its measured metrics; the completion is the solution. A solution that failed
verification, or does not beat its current code beyond the noise and by MIN_GAIN, gives no row.
A stage whose solution is its current code unchanged (the stage has nothing left to gain there)
gives a `kept` row: its completion says so and returns the code as it is; it claims no speedup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.gpus import get_gpu
from builder.judge.timing import TIMING_KEYS
from builder.prompt import PromptSpec, render
from builder.records import Record, code_path, lookup, measured_gpus
from builder.seeds import Problem
from builder.stages import Stage, catalog

PROMPT_VARIANT = "default"
#: Without a measured noise (records of runs before the A-B-A timing), a solution may be this much
#: slower than its current code and still count as not slower.
NOISE = 0.03
#: A solution must beat its current code by at least this much, and beyond the run's noise.
MIN_GAIN = 0.01


#: The completion of a row whose stage has nothing left to gain opens with this, then the code unchanged.
KEPT_NOTE = ("This stage has nothing measurable left to gain on this kernel: every change tried ran within "
             "the noise or slower, so the code is kept as it is.\n\n")


def required_speedup(noise: float | None) -> float:
    """The speedup over its current code a solution needs to earn a row, in a timing run with this
    A-B-A `noise`: beyond the noise and by MIN_GAIN; runs without a noise figure keep 1 - NOISE."""
    if noise is None:
        return 1 - NOISE
    return 1 + max(noise, MIN_GAIN)


@dataclass(frozen=True)
class Skipped:
    """A row that could not be built, and why."""

    row_id: str  # "<problem>/<stage>/<gpu>"
    reason: str  # what is missing, stale or wrong
    missing: bool = True  # True: records are missing or stale; False: excluded for quality


def row_id(problem: Problem, stage: Stage, gpu: str) -> str:
    return f"{problem.key}/{stage.key}/{gpu}"


def current_label(stage: Stage) -> str:
    before = catalog().previous(stage)
    return before.key if before else "seed"


def prompt_metrics(record: Record, stage: Stage) -> dict[str, dict[str, Any]]:
    """The metrics a stage's prompt prints, in catalog order, for each profiled kernel."""
    names = catalog().prompt_metrics(stage)
    return {kernel: {m: values.get(m) for m in names} for kernel, values in record.metrics.items()}


def metric_list(record: Record) -> list[dict[str, Any]]:
    """A record's metrics as the row's list of {kernel, metric, value, note}."""
    return [
        {"kernel": kernel, "metric": m, "value": value, "note": record.metric_notes.get(m) if value is None else None}
        for kernel, values in sorted(record.metrics.items())
        for m, value in values.items()
    ]


def exit_met(stage: Stage, record: Record) -> bool:
    """Whether the stage's exit criterion held on every kernel the current code launched."""
    return bool(record.metrics) and all(stage.exit_met(values) for values in record.metrics.values())


def side(record: Record) -> dict[str, Any]:
    return {"timing": {k: record.timing[k] for k in TIMING_KEYS}, "gbps": record.gbps, "roofline_pct": record.roofline_pct,
            "metrics": metric_list(record)}


def make_row(problem: Problem, stage: Stage, gpu: str, current: Record, solution: Record) -> dict[str, Any]:
    current_code = code_path(problem, current.label).read_text()
    solution_code = code_path(problem, stage.key).read_text()
    prompt = render(PromptSpec(gpu, stage.key, PROMPT_VARIANT, current_code, prompt_metrics(current, stage)))
    kept = solution.code_sha256 == current.code_sha256
    completion = (KEPT_NOTE if kept else "") + f"```python\n{solution_code}```"
    best = solution.timing["median_ms"]
    return {
        "id": row_id(problem, stage, gpu),
        "problem": {"key": problem.key, "level": problem.level, "kernelbench_id": problem.id, "name": problem.name},
        "gpu": {"key": gpu, "name": get_gpu(gpu).name},
        "stage": {"key": stage.key, "number": stage.number, "variant": PROMPT_VARIANT},
        "exit_criterion_met": exit_met(stage, current),
        "kept": kept,
        "prompt": prompt,
        "completion": completion,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
        "code": {"reference": problem.reference_path.read_text(), "current": current_code, "solution": solution_code},
        "current": side(current),
        "solution": side(solution),
        "baselines": {k: solution.baselines[k] for k in ("eager", "compile", "copy_gbps")},
        "bytes_moved": solution.bytes_moved,
        "speedup": {
            "vs_current": current.timing["median_ms"] / best,
            "vs_eager": solution.baselines["eager"]["median_ms"] / best,
            "vs_compile": solution.baselines["compile"]["median_ms"] / best,
        },
        "verification": solution.verification,
        "env": {**solution.env, "measured_at": solution.measured_at},
        "hashes": {"manifest_sha256": problem.manifest_sha256, "current_sha256": current.code_sha256,
                   "solution_sha256": solution.code_sha256},
    }


def build_rows(problems: Iterable[Problem], gpus: list[str] | None = None,
               root: Path | None = None) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Every row the fresh records allow, and the rows skipped with their reasons."""
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for problem in problems:
        for gpu in gpus if gpus is not None else measured_gpus(root):
            for stage in catalog().stages:
                rid = row_id(problem, stage, gpu)
                if stage.key not in problem.solutions:
                    skipped.append(Skipped(rid, f"no solution file solutions/{stage.key}.py"))
                    continue
                found = {}
                for label in (current_label(stage), stage.key):
                    state, record = lookup(problem, label, gpu, root)
                    if record is None:
                        skipped.append(Skipped(rid, f"record of '{label}' is {state}"))
                        break
                    found[label] = record
                else:
                    current, solution = found[current_label(stage)], found[stage.key]
                    if current.run_id != solution.run_id:
                        skipped.append(Skipped(rid, "current and solution were not timed in the same run"))
                        continue
                    if not solution.verification["passed"]:
                        skipped.append(Skipped(rid, "the solution failed verification", missing=False))
                        continue
                    speedup = current.timing["median_ms"] / solution.timing["median_ms"]
                    kept = solution.code_sha256 == current.code_sha256
                    if not kept and speedup < required_speedup(solution.noise):
                        skipped.append(Skipped(rid, f"the solution runs at {speedup:.2f}x its current code's speed "
                                                    f"on this GPU", missing=False))
                        continue
                    rows.append(make_row(problem, stage, gpu, current, solution))
    return rows, skipped
