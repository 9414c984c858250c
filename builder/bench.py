"""The benchmark table: every code of a problem against eager, torch.compile and the problem's ceiling.

The numbers of one problem always come from one timing run: either a fresh run on this GPU, or
the records of one `measure` run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.errors import RecordError
from builder.judge.jobs import TimeJob
from builder.judge.runner import JobFailure
from builder.judge.timing import bandwidth
from builder.measure import bytes_moved, labels_of, require_gpu
from builder.records import code_path, lookup
from builder.seeds import Problem


@dataclass(frozen=True)
class BenchLine:
    """One code's figures, relative to the others of its run."""

    problem: str  # problem key
    label: str  # "seed" or a stage key
    median_ms: float  # median of the timed runs
    gbps: float  # bytes moved over the median time
    roofline_pct: float  # gbps as % of the problem's ceiling (copy bandwidth for older runs), same run
    vs_current: float | None  # time of the code it improves over its own (None for the seed)
    vs_eager: float  # eager time over this code's time
    vs_compile: float  # torch.compile time over this code's time


def make_lines(problem: str, timings: dict[str, dict[str, Any]], eager_ms: float, compile_ms: float) -> list[BenchLine]:
    """Lines in chain order from {label: {median_ms, gbps, roofline_pct}}; each improves the one before."""
    lines, previous = [], None
    for label, t in timings.items():
        ms = t["median_ms"]
        lines.append(BenchLine(problem, label, ms, t["gbps"], t["roofline_pct"],
                               previous / ms if previous else None, eager_ms / ms, compile_ms / ms))
        previous = ms
    return lines


def from_records(problem: Problem, gpu: str, root: Path | None = None) -> tuple[list[BenchLine], float]:
    """The table lines of `problem` from its fresh records, and the copy bandwidth of their run."""
    found = {}
    for label in labels_of(problem):
        state, record = lookup(problem, label, gpu, root)
        if record is None:
            raise RecordError(f"{problem.key}/{label} on {gpu}: record is {state}; run `kernel-prompts measure`")
        found[label] = record
    if len({r.run_id for r in found.values()}) != 1:
        raise RecordError(f"{problem.key} on {gpu}: records come from different runs; run `kernel-prompts measure --force`")
    any_record = next(iter(found.values()))
    timings = {label: {"median_ms": r.timing["median_ms"], "gbps": r.gbps, "roofline_pct": r.roofline_pct}
               for label, r in found.items()}
    base = any_record.baselines
    lines = make_lines(problem.key, timings, base["eager"]["median_ms"], base["compile"]["median_ms"])
    return lines, base.get("ceiling_gbps", base["copy_gbps"])


def time_now(problem: Problem, codes: dict[str, str], *, baselines: bool = True) -> dict[str, dict[str, Any]]:
    """Time `codes` (by label), with eager, torch.compile and the ceiling unless `baselines` is
    False, side by side in one sandbox on this GPU. Returns {label: stats} plus "ceiling"."""
    require_gpu()
    try:
        run = TimeJob(str(problem.dir), codes, baselines=baselines).run()
    except JobFailure as exc:
        raise RecordError(f"{problem.key}: timing run failed ({exc.reason}): {exc.detail[-500:]}") from None
    if run.errors:
        raise RecordError(f"{problem.key}: " + "; ".join(f"{k}: {v[0]}: {v[1][:300]}" for k, v in run.errors.items()))
    moved = bytes_moved(problem)
    ceiling = run.ceiling["ceiling"]["gbps"] if baselines else None
    stats = {label: dict(run.stats[label]) for label in codes}
    for entry in stats.values():
        entry["gbps"] = bandwidth(moved, entry["median_ms"])
        entry["roofline_pct"] = 100.0 * entry["gbps"] / ceiling if ceiling else None
    stats.update({k: run.stats[k] for k in ("eager", "compile") if k in run.stats})
    return {**stats, "ceiling": {"gbps": ceiling, "noise": run.noise}}


def run_fresh(problem: Problem) -> tuple[list[BenchLine], float]:
    """Time every code of `problem` with the baselines now, in one child process on this GPU."""
    labels = labels_of(problem)
    out = time_now(problem, {label: code_path(problem, label).read_text() for label in labels})
    timings = {label: out[label] for label in labels}
    lines = make_lines(problem.key, timings, out["eager"]["median_ms"], out["compile"]["median_ms"])
    return lines, out["ceiling"]["gbps"]


def format_table(lines: list[BenchLine], copy_gbps: dict[str, float]) -> str:
    """A fixed-width table, one line per code, the copy bandwidth of each problem's run below."""
    head = f"{'problem':<10} {'stage':<18} {'median ms':>9} {'GB/s':>7} {'% ceil':>6} {'vs current':>10} {'vs eager':>8} {'vs compile':>10}"
    out = [head, "-" * len(head)]
    for l in lines:
        current = f"{l.vs_current:.2f}x" if l.vs_current else "-"
        out.append(f"{l.problem:<10} {l.label:<18} {l.median_ms:>9.3f} {l.gbps:>7.0f} {l.roofline_pct:>6.1f} "
                   f"{current:>10} {l.vs_eager:>7.2f}x {l.vs_compile:>9.2f}x")
    out += [f"ceiling ({key}): {gbps:.0f} GB/s" for key, gbps in copy_gbps.items()]
    return "\n".join(out)
