"""Dynamic anti-cheat guards, run inside the judge child around a candidate's forward.

- `Guards` logs every aten op the candidate calls (the log is off while a Triton kernel runs:
  the interpreter itself calls torch), counts kernel launches, fills every tensor the candidate
  allocates with a sentinel so elements it never writes show up, notes launches made away from
  the default CUDA stream, and checks that timers and the judge's own tools were not replaced.
- `GuardedInput` puts the input inside guard bands of a huge value, so a kernel that reads past
  its input produces huge outputs and one that writes past it changes the bands.
- `compare` turns an output and its reference into a reason code and error figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import triton
import triton.testing
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

from builder.judge.anticheat import Finding

#: aten ops that allocate, fill, view, copy or describe tensors: all that forward may call.
ALLOWED_OPS = frozenset(
    {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros",
     "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full",
     "fill", "fill_", "zero_", "arange", "view", "_unsafe_view", "reshape", "_reshape_alias",
     "as_strided", "contiguous", "clone", "copy_", "_to_copy", "to", "permute", "expand",
     "squeeze", "unsqueeze", "transpose", "t", "flatten", "unflatten", "select", "slice", "narrow",
     "detach", "alias", "lift_fresh", "lift_fresh_copy", "view_as", "expand_as", "split",
     "split_with_sizes", "unbind", "chunk", "_local_scalar_dense", "is_same_size", "sym_size",
     "sym_stride", "sym_numel", "sym_storage_offset", "size", "stride", "numel", "dim",
     "is_contiguous", "_has_compatible_shallow_copy_type", "item"}
)
#: aten ops that return uninitialized memory; their results get the sentinel.
FRESH_OPS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})
#: Sentinel bit patterns (quiet NaNs with a payload) by floating dtype, as (int view, bits).
SENTINELS: dict[torch.dtype, tuple[torch.dtype, int]] = {
    torch.float32: (torch.int32, 0x7FC0BAD0),
    torch.float64: (torch.int64, 0x7FF8BAD0BAD0BAD0),
    torch.float16: (torch.int16, 0x7E5D),
    torch.bfloat16: (torch.int16, 0x7FDD),
}
#: Value of the guard bands, and the output magnitude that betrays a read from them.
GUARD_VALUE = 2.0**100
GUARD_SEEN = 2.0**80
#: Elements of guard band on each side of an input.
GUARD_ELEMENTS = 1 << 16
#: Callables the judge relies on after the candidate ran; replacing any is tampering.
TIMERS: dict[str, tuple[Any, str]] = {
    "torch.cuda.synchronize": (torch.cuda, "synchronize"),
    "torch.cuda.Event": (torch.cuda, "Event"),
    "torch.cuda.Event.record": (torch.cuda.Event, "record"),
    "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time"),
    "torch.cuda.Event.synchronize": (torch.cuda.Event, "synchronize"),
    "torch.cuda.current_stream": (torch.cuda, "current_stream"),
    "time.perf_counter": (time, "perf_counter"),
    "time.time": (time, "time"),
    "time.monotonic": (time, "monotonic"),
    "triton.testing.do_bench": (triton.testing, "do_bench"),
}
JUDGE_TOOLS: dict[str, tuple[Any, str]] = {
    f"torch.{name}": (torch, name)
    for name in ("allclose", "isclose", "equal", "isnan", "isfinite", "isinf", "abs", "where", "rand")
} | {
    f"torch.Tensor.{name}": (torch.Tensor, name)
    for name in ("__sub__", "__eq__", "__truediv__", "abs", "max", "any", "all", "clone", "copy_",
                 "uniform_", "data_ptr", "untyped_storage", "view", "float", "double")
}


def _interpreted_function() -> type | None:
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:
        return None
    return InterpretedFunction


@dataclass
class CallRecord:
    """What one guarded forward did."""

    ops: list[str] = field(default_factory=list)  # aten op names, in call order
    launches: int = 0  # Triton kernel launches
    side_stream: bool = False  # a launch or the stream at exit was not the default stream

    def computing_ops(self) -> list[str]:
        """Ops outside ALLOWED_OPS, each once, in first-call order."""
        return list(dict.fromkeys(op for op in self.ops if op not in ALLOWED_OPS))


class _OpLog(TorchDispatchMode):
    """Records aten ops into the current CallRecord and poisons fresh allocations."""

    def __init__(self, guards: Guards) -> None:
        super().__init__()
        self.guards = guards

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if self.guards.record is not None:
            self.guards.record.ops.append(name)
        if name in FRESH_OPS and isinstance(out, torch.Tensor):
            poison(out)
        return out


class Guards:
    """Patches installed for the life of a judge child; `install` before importing the candidate."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.record: CallRecord | None = None
        self._timers = {name: getattr(obj, attr) for name, (obj, attr) in TIMERS.items()}
        self._tools = {name: getattr(obj, attr) for name, (obj, attr) in JUDGE_TOOLS.items()}
        self._launchers: dict[str, tuple[type, Callable[..., Any]]] = {}
        self._originals: dict[type, Callable[..., Any]] = {}

    def __enter__(self) -> Guards:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        """Wrap Triton's launch paths: count launches, hide the interpreter's own torch calls."""
        classes: list[tuple[type, bool]] = [(JITFunction, True), (Autotuner, False)]
        interpreted = _interpreted_function()
        if interpreted is not None:
            classes.append((interpreted, True))
        for cls, counts in classes:
            self._originals[cls] = cls.run
            cls.run = self._wrap(cls.run, counts)  # type: ignore[method-assign]
            self._launchers[f"{cls.__module__}.{cls.__qualname__}.run"] = (cls, cls.run)

    def restore(self) -> None:
        """Put Triton's launch paths back (the child never needs to; tests do)."""
        for cls, original in self._originals.items():
            cls.run = original  # type: ignore[method-assign]
        self._originals.clear()
        self._launchers.clear()

    def _wrap(self, original: Callable[..., Any], counts: bool) -> Callable[..., Any]:
        guards = self

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            record = guards.record
            if record is not None and counts and not kwargs.get("warmup", False):
                record.launches += 1
                record.side_stream |= guards._off_default_stream()
            with _disable_current_modes():
                return original(self, *args, **kwargs)

        return run

    def _off_default_stream(self) -> bool:
        return self.cuda and torch.cuda.current_stream() != torch.cuda.default_stream()

    @contextmanager
    def allocations(self) -> Iterator[None]:
        """Poison what the candidate allocates (its constructor, say) without recording ops."""
        with _OpLog(self):
            yield

    @contextmanager
    def watch(self) -> Iterator[CallRecord]:
        """Record one forward: its aten ops, its launches, and the stream it leaves behind."""
        record = CallRecord()
        self.record = record
        try:
            with _OpLog(self):
                yield record
        finally:
            self.record = None
            record.side_stream |= self._off_default_stream()

    def tampering(self) -> Finding | None:
        """A finding when timers, the judge's tools or the launch wrappers were replaced."""
        for name, (obj, attr) in TIMERS.items():
            if getattr(obj, attr, None) is not self._timers[name]:
                return Finding("timer_patch", f"{name} was replaced")
        for name, (obj, attr) in JUDGE_TOOLS.items():
            if getattr(obj, attr, None) is not self._tools[name]:
                return Finding("monkey_patch", f"{name} was replaced")
        for name, (cls, wrapper) in self._launchers.items():
            if cls.run is not wrapper:
                return Finding("monkey_patch", f"{name} was replaced")
        return None


def poison(tensor: torch.Tensor) -> None:
    """Fill `tensor` with its dtype's sentinel (floating dtypes only)."""
    if tensor.dtype in SENTINELS and tensor.numel():
        int_dtype, bits = SENTINELS[tensor.dtype]
        tensor.view(int_dtype).fill_(bits)


def untouched(tensor: torch.Tensor) -> int:
    """How many elements of `tensor` still hold the sentinel."""
    if tensor.dtype not in SENTINELS:
        return 0
    int_dtype, bits = SENTINELS[tensor.dtype]
    return int((tensor.view(int_dtype) == bits).sum())


class GuardedInput:
    """A seeded uniform [low, high) input living between two guard bands of GUARD_VALUE."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int,
                 low: float = 0.0, high: float = 1.0) -> None:
        numel = 1
        for dim in shape:
            numel *= dim
        band = GUARD_ELEMENTS
        self._buffer = torch.full((numel + 2 * band,), GUARD_VALUE, dtype=dtype, device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        self.x = self._buffer[band:band + numel].view(shape)
        self.x.uniform_(low, high, generator=generator)
        self._band = band

    def bands_intact(self) -> bool:
        """True when nothing was written into the guard bands."""
        head, tail = self._buffer[: self._band], self._buffer[-self._band:]
        return bool((head == GUARD_VALUE).all()) and bool((tail == GUARD_VALUE).all())

    def fingerprint(self) -> tuple[int, float]:
        """A cheap digest of the input (bit-pattern sum, value sum) for inputs too big to clone."""
        bits = 0
        total = 0.0
        for row in self.x.reshape(self.x.shape[0], -1):
            int_dtype = SENTINELS.get(row.dtype, (torch.int32, 0))[0]
            bits += int(row.view(int_dtype).sum(dtype=torch.int64))
            total += float(row.sum(dtype=torch.float64))
        return bits, total


@dataclass(frozen=True)
class Comparison:
    """An output held against its reference."""

    reason: str | None  # None when within tolerance
    detail: str
    max_abs_err: float | None
    max_rel_err: float | None


def compare(out: Any, ref: torch.Tensor, atol: float, rtol: float) -> Comparison:
    """Shape, dtype, never-written elements, guard reads, NaN/Inf, then tolerance."""
    if not isinstance(out, torch.Tensor):
        return Comparison("wrong_shape", f"forward returned {type(out).__name__}, not a tensor", None, None)
    if out.shape != ref.shape:
        return Comparison("wrong_shape", f"shape {tuple(out.shape)}, expected {tuple(ref.shape)}", None, None)
    if out.dtype != ref.dtype:
        return Comparison("wrong_dtype", f"dtype {out.dtype}, expected {ref.dtype}", None, None)
    out = out.to(ref.device)
    missing = untouched(out)
    if missing:
        return Comparison("uninitialized_output", f"{missing} of {out.numel()} elements never written", None, None)
    finite_ref = torch.isfinite(ref)
    huge = (out.abs() >= GUARD_SEEN) & torch.isfinite(out) & finite_ref
    if bool(huge.any()):
        return Comparison("out_of_bounds", f"{int(huge.sum())} elements read from outside the input", None, None)
    bad = ~torch.isfinite(out) & finite_ref
    if bool(bad.any()):
        return Comparison("nan_inf", f"{int(bad.sum())} elements are NaN or Inf", None, None)
    diff = (out.double() - ref.double()).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    max_rel = float((diff / ref.double().abs().clamp_min(1e-12)).max()) if diff.numel() else 0.0
    if torch.allclose(out, ref, atol=atol, rtol=rtol):
        return Comparison(None, "", max_abs, max_rel)
    loose = torch.allclose(out, ref, atol=1e-2, rtol=1e-2)
    reason = "precision_loss" if loose else "mismatch"
    return Comparison(reason, f"max abs error {max_abs:.3g} (atol {atol:g}, rtol {rtol:g})", max_abs, max_rel)
