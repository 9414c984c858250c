"""Time code side by side on the GPU, in one child process.

One `time_job` measures, in this order: the device's copy bandwidth, then for one benchmark
input (the only copy of it that exists) each subject: code under test, the reference in eager
mode, and torch.compile of the reference. Every timed run is preceded by an L2 flush; CUDA
events bracket the call alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

#: Bytes written to flush the L2 cache before each timed run.
FLUSH_BYTES = 256 * 1024**2
#: Bytes per buffer for the copy-bandwidth measurement (read + write counted).
COPY_BYTES = 2 * 1024**3


#: The keys of a timing summary.
TIMING_KEYS = ("median_ms", "min_ms", "max_ms", "runs")


def summarize(times_ms: list[float]) -> dict[str, Any]:
    """Median, min and max of run times, and how many runs."""
    values = (statistics.median(times_ms), min(times_ms), max(times_ms), len(times_ms))
    return dict(zip(TIMING_KEYS, values))


def bandwidth(bytes_moved: int, ms: float) -> float:
    """GB/s (1e9 bytes per second) for `bytes_moved` in `ms` milliseconds."""
    return bytes_moved / (ms * 1e-3) / 1e9


def time_cuda(fn: Callable[[], Any], *, warmup: int, runs: int, flush: bool = True) -> list[float]:
    """Milliseconds of `runs` calls of `fn`, each after an L2 flush, timed with CUDA events."""
    import torch

    scratch = torch.empty(FLUSH_BYTES // 4, dtype=torch.float32, device="cuda")
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
    for start, end in zip(starts, ends):
        if flush:
            scratch.zero_()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def copy_bandwidth(*, runs: int) -> dict[str, Any]:
    """Device-to-device copy rate, counting bytes read plus bytes written."""
    import torch

    src = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    times = time_cuda(partial(dst.copy_, src), warmup=3, runs=runs, flush=False)
    del src, dst
    torch.cuda.empty_cache()
    stats = summarize(times)
    return {**stats, "bytes": 2 * COPY_BYTES, "gbps": bandwidth(2 * COPY_BYTES, stats["median_ms"])}


def _build(subject: dict[str, Any], problem: Any, workdir: Path) -> Callable[[Any], Any]:
    """The callable for one subject: code under test, eager reference or compiled reference."""
    import torch

    from builder.judge.loader import load_code, load_module

    reference = load_module(problem.reference_path)
    if subject["kind"] == "eager":
        return reference.Model(**problem.init).cuda().eval()
    if subject["kind"] == "compile":
        return torch.compile(reference.Model(**problem.init).cuda().eval())
    module = load_code(subject["code"], workdir, subject["label"])
    return module.ModelNew(**problem.init).cuda().eval()


def time_job(params: dict[str, Any]) -> dict[str, Any]:
    """Child job: copy bandwidth, then every subject on one benchmark input.

    params: problem_dir, subjects [{label, kind: "code"|"eager"|"compile", code?}], runs,
    warmup, seed. A subject that fails is reported with its error; the others still run.
    """
    import torch

    from builder.seeds import load_problem

    problem = load_problem(Path(params["problem_dir"]))
    runs, warmup = int(params.get("runs", 100)), int(params.get("warmup", 5))
    workdir = Path(params["workdir"])
    copy = copy_bandwidth(runs=max(20, runs // 5))
    gen = torch.Generator(device="cuda").manual_seed(int(params.get("seed", 0)))
    x = torch.rand(problem.shape, generator=gen, device="cuda", dtype=getattr(torch, problem.dtype))
    results: dict[str, Any] = {}
    out_bytes = None
    with torch.no_grad():
        for subject in params["subjects"]:
            try:
                fn = _build(subject, problem, workdir)
                out = fn(x)
                out_bytes = out.numel() * out.element_size()
                del out
                results[subject["label"]] = summarize(time_cuda(lambda: fn(x), warmup=warmup, runs=runs))
            except Exception as exc:  # reported per subject; the others still run
                results[subject["label"]] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            finally:
                fn = None  # type: ignore[assignment]
                torch.cuda.empty_cache()
    bytes_moved = x.numel() * x.element_size() + (out_bytes or 0)
    for stats in results.values():
        if "median_ms" in stats:
            stats["gbps"] = bandwidth(bytes_moved, stats["median_ms"])
            stats["roofline_pct"] = 100.0 * stats["gbps"] / copy["gbps"]
    return {"copy": copy, "bytes_moved": bytes_moved, "subjects": results, "env": environment()}


def environment() -> dict[str, Any]:
    """Versions and device facts for a record."""
    import subprocess

    import torch
    import triton

    props = torch.cuda.get_device_properties(0)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )
        driver = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        driver = None
    return {
        "gpu_name": props.name,
        "sm_count": props.multi_processor_count,
        "l2_cache_bytes": props.L2_cache_size,
        "shared_memory_per_sm_bytes": props.shared_memory_per_multiprocessor,
        "shared_memory_per_block_optin_bytes": props.shared_memory_per_block_optin,
        "driver": driver,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
    }
