"""Re-verify the reference solutions of a built dataset, row by row.

Each row's completion goes through the judge: output rules, static anti-cheat checks and
correctness on the problem's cases (on the GPU when there is one, else the CPU interpreter).
On a GPU whose registry key is the row's, each problem's codes are also timed side by side in one
child process: a solution whose median drifts more than 10% from the recorded one, or that is
slower than its current code beyond the noise, is rejected.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.errors import DatasetError
from builder.judge.score import score_answer
from builder.bench import time_now
from builder.rows import required_speedup
from builder.seeds import get_problem

#: Largest allowed relative difference between a re-measured and a recorded median.
DRIFT_LIMIT = 0.10


@dataclass(frozen=True)
class RowResult:
    """The verdict on one row."""

    row_id: str  # the row's id
    ok: bool  # every check passed
    reasons: tuple[str, ...]  # reason codes of the failed checks (builder.judge.reasons)
    detail: str  # sentences about the failures; "" when ok
    solution_ms: float | None  # re-measured median, when timed
    recorded_ms: float  # the row's recorded median
    speedup_vs_current: float | None  # re-measured, when timed


def read_rows(source: str) -> list[dict[str, Any]]:
    """Rows of a dataset folder (read with pyarrow, so no `datasets` is needed) or a Hub repo id."""
    folder = Path(source)
    if folder.is_dir():
        import pyarrow.parquet as pq

        files = sorted((folder / "data" / "sft").glob("*.parquet"))
        if not files:
            raise DatasetError(f"{folder}: no data/sft/*.parquet files")
        return [row for f in files for row in pq.read_table(f).to_pylist()]
    if folder.exists() or not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise DatasetError(f"{source}: not a dataset folder or a Hub repo id (namespace/name)")
    try:
        import datasets

        return list(datasets.load_dataset(source, split="train"))
    except Exception as exc:  # any load failure is reported with its cause
        raise DatasetError(f"could not load {source} from the Hub: {exc}") from exc


def timing_findings(row: dict[str, Any], times: dict[str, float], noise: float | None = None
                    ) -> tuple[list[str], list[str], float, float]:
    """Reasons and details from re-measured times of a row's solution and current code."""
    solution_ms, current_ms = times[f"{row['id']}:solution"], times[f"{row['id']}:current"]
    recorded = row["solution"]["timing"]["median_ms"]
    reasons, details = [], []
    drift = abs(solution_ms - recorded) / recorded
    if drift > DRIFT_LIMIT:
        reasons.append("timing_drift")
        details.append(f"median {solution_ms:.3f} ms vs recorded {recorded:.3f} ms ({100 * drift:.0f}% apart)")
    speedup = current_ms / solution_ms
    needed = required_speedup(noise)
    if speedup < needed:
        reasons.append("slower")
        details.append(f"{speedup:.3f}x the current code's speed (needs {needed:.3f}x)")
    return reasons, details, solution_ms, speedup


def validate_rows(rows: list[dict[str, Any]], *, device: str, gpu_key: str | None = None,
                  progress: Callable[[str], None] = lambda _: None) -> list[RowResult]:
    """Judge every row; time on `device == "cuda"` the rows measured on `gpu_key`."""
    times: dict[str, float] = {}
    noise: dict[str, float] = {}
    if device == "cuda":
        by_problem: dict[str, dict[str, str]] = {}
        for row in rows:
            if row["gpu"]["key"] == gpu_key:
                codes = by_problem.setdefault(row["problem"]["key"], {})
                codes[f"{row['id']}:solution"] = row["code"]["solution"]
                codes[f"{row['id']}:current"] = row["code"]["current"]
        for key, codes in by_problem.items():
            progress(f"timing {key}: {len(codes)} codes side by side")
            out = time_now(get_problem(key), codes, baselines=False)
            times.update({label: out[label]["median_ms"] for label in codes})
            noise[key] = out["ceiling"]["noise"]
    results = []
    for i, row in enumerate(rows, 1):
        progress(f"[{i}/{len(rows)}] {row['id']}")
        problem = get_problem(row["problem"]["key"])
        verdict = score_answer(row["completion"], problem, device=device, strict=True)  # rows must follow the rules
        reasons = [] if verdict.ok else [verdict.reason or "crash"]
        details = [] if verdict.ok else [verdict.detail.strip()[-300:]]
        solution_ms = speedup = None
        if f"{row['id']}:solution" in times:
            more, why, solution_ms, speedup = timing_findings(row, times, noise.get(row["problem"]["key"]))
            reasons += more
            details += why
        results.append(RowResult(row["id"], not reasons, tuple(reasons), "; ".join(details), solution_ms,
                                 row["solution"]["timing"]["median_ms"], speedup))
    return results


def reason_counts(results: list[RowResult]) -> Counter[str]:
    return Counter(reason for r in results for reason in r.reasons)


def format_results(results: list[RowResult]) -> str:
    """The per-row table, then how many rows pass and a count per reason."""
    lines = [f"{'row':<42} {'verdict':<8} {'ms now':>8} {'ms rec':>8} {'vs cur':>7}  reasons"]
    for r in results:
        now = f"{r.solution_ms:.3f}" if r.solution_ms is not None else "-"
        cur = f"{r.speedup_vs_current:.2f}x" if r.speedup_vs_current is not None else "-"
        lines.append(f"{r.row_id:<42} {'ok' if r.ok else 'REJECT':<8} {now:>8} {r.recorded_ms:>8.3f} {cur:>7}  "
                     f"{', '.join(r.reasons)}{': ' + r.detail if r.detail else ''}")
    counts = reason_counts(results)
    lines.append(f"{sum(r.ok for r in results)}/{len(results)} rows pass"
                 + ("; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) if counts else ""))
    return "\n".join(lines)


def write_rejects(results: list[RowResult], path: Path) -> int:
    """Write the rejected rows as JSON lines; return how many."""
    rejects = [r for r in results if not r.ok]
    path.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rejects))
    return len(rejects)
