"""Schema-valid measurement records for tests."""

import dataclasses

from builder.records import Record, current_hashes, write_record
from builder.stages import catalog


def make_record(problem, label="seed", **changes):
    """A fresh record of `label` with plausible numbers; `changes` override fields."""
    timing = {"median_ms": 2.0, "min_ms": 1.9, "max_ms": 2.5, "runs": 100}
    record = Record(
        gpu="h100_sxm", problem=problem.key, label=label, **current_hashes(problem, label), run_id="r1",
        measured_at="2026-11-21T10:00:00+00:00",
        env={"gpu_name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "driver": "580", "torch": "2.11", "triton": "3.6",
             "cuda": "13.0", "ncu": "2025.3.1.0"},
        timing=timing, gbps=2000.0, roofline_pct=66.0, bytes_moved=4_000_000_000,
        baselines={"eager": timing, "compile": timing, "copy_gbps": 3000.0},
        metrics={"k": {"launch__grid_size": 12, "lts__t_sector_hit_rate.pct": None}},
        metric_notes={"lts__t_sector_hit_rate.pct": "not reported by ncu"},
        verification={"passed": True, "cases": 14, "max_abs_err": 1e-7, "max_rel_err": 1e-7, "atol": 1e-4,
                      "rtol": 1e-4, "device": "cuda"},
    )
    return dataclasses.replace(record, **changes)


def write_chain(problem, root, gpu="h100_sxm", run_id="r1", seed_ms=4.0):
    """Records for the seed and every stage solution of `problem`, from one timing run, each
    stage twice as fast as the one before."""
    labels = ["seed"] + [s.key for s in catalog().stages if s.key in problem.solutions]
    for i, label in enumerate(labels):
        ms = seed_ms / 2**i
        timing = {"median_ms": ms, "min_ms": ms * 0.99, "max_ms": ms * 1.1, "runs": 100}
        write_record(make_record(problem, label, gpu=gpu, run_id=run_id, timing=timing), root)
    return labels
