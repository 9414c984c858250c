"""The inputs of a checked call: drawn from seeds, then laid out in memory as the call asks.

Drawing is deterministic: the same spec and seed give the same values on the same device, so the
sandbox and the referee, each drawing a benchmark-size input on the GPU, hold the same tensor,
and the judge, drawing a small one on the CPU, sends it as bytes. Floats are uniform in the
input's [low, high), integers uniform in [low, high); a value class replaces or sprinkles the
range (VALUE_RANGES, SPRINKLES).

Layouts (how the tensor handed to forward sits in memory):
- `guarded`: contiguous, between two guard bands of a huge value: a kernel that reads past the
  input produces huge outputs, one that writes past it changes the bands;
- `plain`: a fresh contiguous allocation at storage offset 0, no bands: exactly a user's tensor;
- `transposed`: the same values as a view whose last two axes longer than 1 are swapped in memory;
- `strided`: the same values as every other element of the last axis longer than 1; the gaps
  hold the guard value (a kernel that ignores the strides reads them) and must stay unwritten;
- `sliced`: the same values as a slice of a tensor one longer on every axis (`x[..., :L]`, a
  channel slice: every axis's pitch exceeds its size while the last axis stays unit-stride); the
  margins hold the guard value and must stay unwritten.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

#: Layouts a checked call's inputs may take (see the module doc).
LAYOUTS = ("guarded", "plain", "transposed", "strided", "sliced")
#: Value of the guard bands by dtype, and the output magnitude that betrays a read from them.
GUARD_VALUES: dict[torch.dtype, float | int] = {
    torch.float32: 2.0**100, torch.float64: 2.0**100, torch.bfloat16: 2.0**100, torch.float16: 65504.0,
    torch.int64: -(2**62), torch.int32: -(2**30),
}
GUARD_SEEN: dict[torch.dtype, float] = {torch.float32: 2.0**80, torch.float64: 2.0**80, torch.bfloat16: 2.0**80}
#: Elements of guard band on each side of an input.
GUARD_ELEMENTS = 1 << 16
#: Value classes that replace a floating input's range.
VALUE_RANGES = {"signed": (-1.0, 1.0), "negative": (-1.0, 0.0), "large": (-1e4, 1e4), "tiny": (-1e-6, 1e-6)}
#: Value classes that keep the range and set a share of the elements (each value of the list at
#: least once, where the tensor has room and its dtype holds it) to values of a list drawn per
#: tensor: bursts of large magnitude (one sign per tensor, so that two bursts never cancel in a
#: sum, where float32 itself would miss the tolerance; 1e4 and 1e6, so that an answer that
#: saturates or scales its inputs below either shows), or NaN and infinities.
SPRINKLES = {"bursts": (0.01, ((1e4, 1e6), (-1e4, -1e6))),
             "special": (0.005, ((float("nan"), float("inf"), float("-inf")),))}


def shows(layout: str, shape: tuple[int, ...]) -> bool:
    """Whether `layout` lays an input of `shape` out other than contiguously (a kernel that
    ignores the strides reads it wrongly); the plain and guarded layouts always count."""
    wide = sum(1 for dim in shape if dim > 1)
    if layout == "transposed":
        return wide >= 2
    if layout == "strided":
        return wide >= 1
    if layout == "sliced":
        return any(dim > 1 for dim in shape[:-1])
    return True


def mix(seed: int, index: int) -> int:
    """The seed of item `index` of something drawn from `seed` (an input of a trial, say)."""
    return (seed * 1_000_003 + index * 7919 + 1) % (1 << 62)


def guard_value(dtype: torch.dtype) -> float | int:
    return GUARD_VALUES.get(dtype, 0)


def guard_seen(dtype: torch.dtype) -> float | None:
    """Outputs of this magnitude were read from a guard band (None: the dtype cannot tell)."""
    return GUARD_SEEN.get(dtype)


def draw_into(tensor: torch.Tensor, spec: dict[str, Any], seed: int) -> None:
    """Fill the contiguous `tensor` with the values `spec` (low, high, values) and `seed` give."""
    if not tensor.numel():
        return
    generator = torch.Generator(device=tensor.device).manual_seed(seed)
    values = spec.get("values", "uniform")
    if not tensor.is_floating_point():
        tensor.random_(int(spec["low"]), int(spec["high"]), generator=generator)
        return
    low, high = VALUE_RANGES.get(values, (float(spec.get("low", 0.0)), float(spec.get("high", 1.0))))
    tensor.uniform_(low, high, generator=generator)
    if values in SPRINKLES:
        share, lists = SPRINKLES[values]
        flat = tensor.view(-1)
        picks = random.Random(seed)
        top = torch.finfo(tensor.dtype).max
        choices = [v for v in picks.choice(lists) if math.isnan(v) or math.isinf(v) or abs(v) <= top]
        count = min(flat.numel(), max(len(choices), round(share * flat.numel())))  # every choice at least once
        start = picks.randrange(len(choices))
        where = torch.tensor(picks.sample(range(flat.numel()), count), dtype=torch.int64)
        chosen = torch.tensor([choices[(start + k) % len(choices)] for k in range(count)], dtype=torch.float64)
        flat[where.to(tensor.device)] = chosen.to(tensor.dtype).to(tensor.device)


def draw(spec: dict[str, Any], seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """A fresh contiguous tensor of `spec` (shape, dtype, low, high, values) drawn from `seed`."""
    tensor = torch.empty(tuple(spec["shape"]), dtype=getattr(torch, spec["dtype"]), device=device)
    draw_into(tensor, spec, seed)
    return tensor


def flat_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor's values as a flat uint8 tensor on its own device (in logical, contiguous order):
    what builder.judge.channel sends."""
    flat = tensor.detach().contiguous().reshape(-1)
    if flat.numel() and flat.stride(0) != 1:  # one element, or size-1 dims, may keep any stride
        flat = torch.empty(flat.numel(), dtype=flat.dtype, device=flat.device).copy_(flat)
    return flat.view(torch.uint8)


def as_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor's values as a flat uint8 CPU tensor (in logical, contiguous order)."""
    return flat_bytes(tensor.detach().to("cpu"))


def host_buffer(shape: Any, dtype: torch.dtype, *, pinned: bool) -> torch.Tensor:
    """An empty host tensor; with `pinned`, in pinned memory (copies from a GPU into it need not
    wait) where the machine lets memory be pinned, else in plain memory (they wait, and are as right)."""
    if pinned:
        try:
            return torch.empty(shape, dtype=dtype, pin_memory=True)
        except RuntimeError:
            pass
    return torch.empty(shape, dtype=dtype)


def from_bytes(raw: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The inverse of as_bytes (`raw` may be a slice at any offset)."""
    if raw.storage_offset() % dtype.itemsize:
        raw = raw.clone()
    return raw.view(dtype).reshape(shape)


def _prod(dims: list[int]) -> int:
    total = 1
    for dim in dims:
        total *= dim
    return total


class Placed:
    """One input laid out as `layout` says (see the module doc); `x` is what forward gets."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, device: str, layout: str) -> None:
        numel = _prod(list(shape))
        wide = [axis for axis, dim in enumerate(shape) if dim > 1]  # axes a view can make non-contiguous
        if layout == "transposed" and len(wide) < 2:
            layout = "strided"
        if layout in ("strided", "sliced") and (not numel or not shape):
            layout = "guarded"
        self.layout, self.shape, self.dtype = layout, tuple(shape), dtype
        self._gaps: Any = None  # gives the values of the gaps between the input's elements
        if layout == "plain":
            self._buffer = None
            self.x = torch.empty(shape, dtype=dtype, device=device)
            self._storage = self.x.untyped_storage().data_ptr()
            return
        band = GUARD_ELEMENTS
        wider = [dim + 1 for dim in shape]
        inner = 2 * numel if layout == "strided" else _prod(wider) if layout == "sliced" else numel
        self._band = band
        self._buffer = torch.full((inner + 2 * band,), guard_value(dtype), dtype=dtype, device=device)
        body = self._buffer[band:band + inner]
        if layout == "guarded":
            self.x = body.view(shape)
        elif layout == "sliced":  # the last `dim` entries of each axis of a tensor one longer on each
            wide_view = body.view(wider)
            inside = tuple(slice(1, None) for _ in shape)
            self.x = wide_view[inside]
            margin = torch.ones(wider, dtype=torch.bool, device=device)
            margin[inside] = False
            self._gaps = lambda: wide_view[margin]
        elif layout == "transposed":  # the last two axes longer than 1 swapped in memory
            order = list(range(len(shape)))
            order[wide[-2]], order[wide[-1]] = order[wide[-1]], order[wide[-2]]
            self.x = body.view([shape[a] for a in order]).permute(order)
        else:  # every other element along the last axis longer than 1 (the last axis when none is)
            axis = wide[-1] if wide else len(shape) - 1
            doubled = body.view(*shape[:axis], 2 * shape[axis], *shape[axis + 1:])
            pick = [slice(None)] * len(shape)
            pick[axis] = slice(0, None, 2)
            self.x = doubled[tuple(pick)]
            pick[axis] = slice(1, None, 2)
            gaps = doubled[tuple(pick)]
            self._gaps = lambda: gaps
        self._storage = self._buffer.untyped_storage().data_ptr()

    def fill(self, spec: dict[str, Any], seed: int) -> None:
        """Draw the values of `spec` (its range and value class) and `seed` into the input, in place
        where it is contiguous."""
        if self.x.is_contiguous():
            draw_into(self.x, spec, seed)
        else:
            dtype = str(self.dtype).removeprefix("torch.")
            self.x.copy_(draw({**spec, "shape": list(self.shape), "dtype": dtype}, seed, self.x.device))

    def load(self, values: torch.Tensor) -> None:
        """Copy given values (any device) into the input."""
        self.x.copy_(values.to(self.x.device))

    def storage_ptr(self) -> int:
        """Where the input's storage (bands included) starts."""
        return self._storage

    def attributes(self) -> list[str]:
        """Attributes code under test set on the input or its buffer (`x._base`)."""
        return sorted({*vars(self.x), *(vars(self._buffer) if self._buffer is not None else ())})

    def bands_intact(self) -> bool:
        """True when nothing was written into the guard bands or the gaps of a strided layout."""
        if self._buffer is None:
            return True
        value = guard_value(self.dtype)
        head, tail = self._buffer[: self._band], self._buffer[-self._band:]
        intact = bool((head == value).all()) and bool((tail == value).all())
        return intact and (self._gaps is None or bool((self._gaps() == value).all()))

    def fingerprint(self, key: int) -> int:
        return keyed_hash(self.x, key)


class PlacedInputs:
    """The inputs of one call, in forward's order, each a Placed of the same layout."""

    def __init__(self, specs: list[dict[str, Any]], layout: str, device: str, payload: torch.Tensor | None = None) -> None:
        """Each spec has shape and dtype; the values come from `payload` (every input's bytes, in
        order, as as_bytes gives them) when given, else from each spec's range and seed."""
        self.items = [Placed(tuple(s["shape"]), getattr(torch, s["dtype"]), device, layout) for s in specs]
        if payload is not None:
            self.load(payload)
            return
        for spec, item in zip(specs, self.items):
            item.fill(spec, int(spec.get("seed", 0)))

    def load(self, payload: torch.Tensor) -> None:
        """Copy every input's bytes (in order, as payload_of gives them) into the inputs, in place."""
        offset = 0
        for item in self.items:
            size = item.x.numel() * item.x.element_size()
            item.load(from_bytes(payload[offset:offset + size], item.shape, item.dtype))
            offset += size

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [item.x for item in self.items]

    def storage_ptrs(self) -> set[int]:
        return {item.storage_ptr() for item in self.items}

    def attributes(self) -> list[str]:
        return sorted({attr for item in self.items for attr in item.attributes()})

    def bands_intact(self) -> bool:
        return all(item.bands_intact() for item in self.items)

    def fingerprints(self, key: int) -> list[str]:
        """Keyed hashes of the inputs, one per input (as strings: JSON keeps them exact)."""
        return [str(keyed_hash(item.x, mix(key, i))) for i, item in enumerate(self.items)]

    def contents(self) -> torch.Tensor:
        """Every input's bytes, in order (what the judge compares with what it sent)."""
        return torch.cat([as_bytes(item.x) for item in self.items]) if self.items else torch.empty(0, dtype=torch.uint8)


def payload_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The bytes the judge sends for `tensors` (PlacedInputs reads them back)."""
    return torch.cat([as_bytes(t) for t in tensors]) if tensors else torch.empty(0, dtype=torch.uint8)


#: Elements hashed per step by keyed_hash (bounds its scratch memory).
HASH_CHUNK = 1 << 25
_MASK64 = (1 << 64) - 1


def keyed_hash(tensor: torch.Tensor, key: int) -> int:
    """sum_i bits_i * w_i mod 2**64, with odd 64-bit weights w_i drawn from `key` and i.

    Any change of the bytes, a swap of two elements that keeps their sum included, changes the
    hash unless the change happens to be orthogonal to weights the changer cannot know.
    """
    flat = tensor.detach().reshape(-1)
    int_dtype = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()]
    bits = flat.view(int_dtype)
    a, b, c = _weights_of(key)
    total = 0
    for start in range(0, bits.numel(), HASH_CHUNK):
        chunk = bits[start:start + HASH_CHUNK].to(torch.int64)
        weights = torch.arange(start, start + chunk.numel(), dtype=torch.int64, device=chunk.device)
        weights = weights * a + b
        weights = (weights ^ (weights >> 29)) * c
        weights = weights | 1
        total = (total + int((chunk * weights).sum())) & _MASK64
    return total


def _weights_of(key: int) -> tuple[int, int, int]:
    """Three 63-bit odd constants from `key` (signed int64 products wrap, as wanted)."""
    rng = random.Random(key)
    return tuple(rng.getrandbits(62) | 1 for _ in range(3))  # type: ignore[return-value]
