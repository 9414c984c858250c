"""Hold an output against its reference, in the judge's own process: a reason code and error figures.

The rule: an element passes when |out - ref| <= atol * min(1, max|ref|) + rtol * |ref|, where
max|ref| is taken over the reference's finite elements. The absolute part shrinks with tiny
outputs (an all-zero softmax row of 393,216 columns is caught) and never grows past atol. Where
the reference is NaN the output must be NaN, where it is +inf or -inf the output must be the
same infinity; NaN or an infinity where the reference is finite is `nan_inf`. Elements that
still hold the sentinel a fresh allocation was poisoned with were never written; elements whose
size betrays a read of an input's guard band are `out_of_bounds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from builder.judge.inputs import guard_seen
from builder.judge.poison import untouched

#: Elements compared per step, so that checking a benchmark-size output needs little memory.
COMPARE_CHUNK = 1 << 24
#: The tolerances below which a miss counts as lowered precision rather than a wrong result.
LOOSE_TOL = 1e-2


@dataclass(frozen=True)
class Comparison:
    """An output held against its reference."""

    reason: str | None  # None when within tolerance
    detail: str
    max_abs_err: float | None
    max_rel_err: float | None


def compare_device(numel: int) -> torch.device:
    """Where the judge compares an output of `numel` elements: on its own GPU when it has one and the
    output is large (the CPU needs minutes for a few GB), else on the CPU."""
    if numel > COMPARE_CHUNK and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _chunks(out: torch.Tensor, ref: torch.Tensor, device: torch.device) -> Any:
    for start in range(0, out.numel(), COMPARE_CHUNK):
        yield out[start:start + COMPARE_CHUNK].to(device), ref[start:start + COMPARE_CHUNK].to(device)


def reference_scale(ref: torch.Tensor) -> float:
    """max|ref| over the finite elements (0 when there are none)."""
    flat = ref.reshape(-1)
    scale = 0.0
    device = compare_device(flat.numel())
    for start in range(0, flat.numel(), COMPARE_CHUNK):
        r = flat[start:start + COMPARE_CHUNK].to(device)
        finite = torch.isfinite(r)
        if bool(finite.any()):
            scale = max(scale, float(r[finite].double().abs().max()))
    return scale


def compare(out: Any, ref: torch.Tensor, atol: float, rtol: float, *, guard_reads: bool = True,
            scale: float | None = None) -> Comparison:
    """Shape, dtype, never-written elements, guard reads, NaN/Inf, then tolerance (see the module
    doc), chunk by chunk on the device compare_device picks. Without `guard_reads` huge outputs
    are not taken for reads of a guard band (after a fill of random bits, an unwritten element
    may be as large). `scale` is the reference's max|ref| when its maker already knows it (the
    referee, where the reference is on its GPU): a benchmark-size reference then crosses to the
    judge's GPU once, not twice."""
    if not isinstance(out, torch.Tensor):
        return Comparison("wrong_shape", f"forward returned {type(out).__name__}, not a tensor", None, None)
    if out.shape != ref.shape:
        return Comparison("wrong_shape", f"shape {tuple(out.shape)}, expected {tuple(ref.shape)}", None, None)
    if out.dtype != ref.dtype:
        return Comparison("wrong_dtype", f"dtype {out.dtype}, expected {ref.dtype}", None, None)
    out_flat, ref_flat = out.reshape(-1), ref.reshape(-1)
    device = compare_device(out_flat.numel())
    small = min(1.0, reference_scale(ref_flat) if scale is None else scale)
    seen = guard_seen(out.dtype) if guard_reads else None
    counts = {"missing": 0, "huge": 0, "bad": 0, "special": 0, "far": 0, "loose": 0}
    max_abs = max_rel = 0.0
    for o, r in _chunks(out_flat, ref_flat, device):
        counts["missing"] += untouched(o)
        finite_ref, finite_out = torch.isfinite(r), torch.isfinite(o)
        if seen is not None:
            counts["huge"] += int(((o.abs() >= seen) & finite_out & finite_ref).sum())
        counts["bad"] += int((~finite_out & finite_ref).sum())
        same_special = (torch.isnan(r) & torch.isnan(o)) | (o == r)
        counts["special"] += int((~finite_ref & ~same_special).sum())
        both = finite_ref & finite_out
        diff = (o.double() - r.double()).abs()
        size = r.double().abs()
        if bool(both.any()):
            max_abs = max(max_abs, float(diff[both].max()))
        sized = both & (size > atol)  # a relative error means little where the reference is ~0
        if bool(sized.any()):
            max_rel = max(max_rel, float((diff[sized] / size[sized]).max()))
        counts["far"] += int((both & (diff > atol * small + rtol * size)).sum())
        counts["loose"] += int((both & (diff > LOOSE_TOL * small + LOOSE_TOL * size)).sum())
    numel = out_flat.numel()
    if counts["missing"]:
        return Comparison("uninitialized_output", f"{counts['missing']} of {numel} elements never written", None, None)
    if counts["huge"]:
        return Comparison("out_of_bounds", f"{counts['huge']} elements read from outside the input", None, None)
    if counts["bad"]:
        return Comparison("nan_inf", f"{counts['bad']} elements are NaN or Inf", None, None)
    if counts["special"]:
        return Comparison("mismatch", f"{counts['special']} of {numel} elements differ where the reference is NaN "
                                      "or infinite (the same NaN and infinities are expected there)", max_abs, max_rel)
    if not counts["far"]:
        return Comparison(None, "", max_abs, max_rel)
    reason = "precision_loss" if not counts["loose"] else "mismatch"
    allowed = f"atol {atol:g} * min(1, max|ref|) = {atol * small:.3g}, plus rtol {rtol:g} * |ref|"
    return Comparison(reason, f"{counts['far']} of {numel} elements off; max abs error {max_abs:.3g} (allowed: {allowed})",
                      max_abs, max_rel)
