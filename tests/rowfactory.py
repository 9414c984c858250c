"""Schema-valid synthetic dataset rows for tests: small, deterministic, varied."""

from __future__ import annotations

from typing import Any

STAGES = ("grid_and_parallel", "block_tiling", "memory_access", "advanced_memory")
PROBLEMS = {"avgpool1d": (44, "44_Average_Pooling_1D"), "avgpool2d": (45, "45_Average_Pooling_2D")}
_METRICS = ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "launch__grid_size")


def _timing(median: float) -> dict[str, Any]:
    return {"median_ms": median, "min_ms": round(median * 0.97, 4), "max_ms": round(median * 1.05, 4), "runs": 20}


def _stats(median: float, bytes_moved: int, copy_gbps: float, kernel: str) -> dict[str, Any]:
    gbps = bytes_moved / median / 1e6
    return {
        "timing": _timing(median),
        "gbps": gbps,
        "roofline_pct": 100.0 * gbps / copy_gbps,
        "metrics": [
            {"kernel": kernel, "metric": _METRICS[0], "value": 61.5, "note": None},
            {"kernel": kernel, "metric": _METRICS[1], "value": None, "note": "not reported by ncu"},
        ],
    }


def make_row(problem: str = "avgpool1d", stage: int = 1, gpu: str = "h100") -> dict[str, Any]:
    """One valid row for `problem` at stage number `stage` (1-4) measured on `gpu`."""
    kb_id, name = PROBLEMS[problem]
    stage_key = STAGES[stage - 1]
    bytes_moved = 4_295_032_832 + kb_id
    copy_gbps = 3023.0
    current_ms, solution_ms = 4.0 / stage, 3.2 / stage
    prompt = f"You are optimizing {name} for stage {stage_key}.\n```python\n# current {stage}\n```\n"
    completion = f"```python\n# solution for {problem} stage {stage}\n```"
    return {
        "id": f"{problem}/{stage_key}/{gpu}",
        "problem": {"key": problem, "level": 1, "kernelbench_id": kb_id, "name": name},
        "gpu": {"key": gpu, "name": f"NVIDIA {gpu.upper()} 80GB HBM3"},
        "stage": {"key": stage_key, "number": stage, "variant": "default"},
        "exit_criterion_met": stage == 4,
        "kept": False,
        "prompt": prompt,
        "completion": completion,
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
        "code": {"reference": "class Model: ...\n", "current": f"# current {stage}\n", "solution": f"# solution {stage}\n"},
        "current": _stats(current_ms, bytes_moved, copy_gbps, "avg_pool_kernel"),
        "solution": _stats(solution_ms, bytes_moved, copy_gbps, "avg_pool_fast"),
        "baselines": {"eager": _timing(5.45), "compile": _timing(1.92), "copy_gbps": copy_gbps},
        "bytes_moved": bytes_moved,
        "speedup": {
            "vs_current": current_ms / solution_ms,
            "vs_eager": 5.45 / solution_ms,
            "vs_compile": 1.92 / solution_ms,
        },
        "verification": {
            "passed": True, "cases": 3, "max_abs_err": 2.4e-7, "max_rel_err": 1.1e-6,
            "atol": 1e-4, "rtol": 1e-4, "device": "cpu-interpreter",
        },
        "env": {
            "gpu_name": f"NVIDIA {gpu.upper()} 80GB HBM3", "sm_count": 132, "driver": "570.86.15",
            "torch": "2.11.0", "triton": "3.6.0", "cuda": "12.8", "ncu": None if stage == 4 else "2025.1.0",
            "measured_at": f"2026-11-21T10:0{stage}:00+00:00",
        },
        "hashes": {
            "manifest_sha256": "a" * 64,
            "current_sha256": f"{stage:x}" * 64,
            "solution_sha256": f"{stage + 1:x}" * 64,
        },
    }


def make_rows() -> list[dict[str, Any]]:
    """Rows for two problems, three stages of one and one of the other, in a scrambled order."""
    return [make_row("avgpool2d", 1), make_row("avgpool1d", 3), make_row("avgpool1d", 1), make_row("avgpool1d", 2)]
