"""What fresh allocations are filled with inside the sandbox, so that unwritten output shows.

A pattern is chosen per call by the judge: the fixed sentinel (a quiet NaN with a payload, for
floating dtypes; the judge then counts never-written elements exactly), a random bit pattern,
random finite values, each from a seed that changes from call to call, or zeros (what fresh
pages and a new device allocation often hold: an answer that takes a zero for "not yet written"
shows). An answer cannot rely
on what a fresh allocation holds: a user's allocation holds whatever memory held before.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

#: Sentinel bit patterns (quiet NaNs with a payload) by floating dtype, as (int view, bits).
SENTINELS: dict[torch.dtype, tuple[torch.dtype, int]] = {
    torch.float32: (torch.int32, 0x7FC0BAD0),
    torch.float64: (torch.int64, 0x7FF8BAD0BAD0BAD0),
    torch.float16: (torch.int16, 0x7E5D),
    torch.bfloat16: (torch.int16, 0x7FDD),
}
#: The pattern kinds: the fixed sentinel, random bits, random finite values, zeros.
KINDS = ("sentinel", "bits", "finite", "zeros")
#: Random finite fills are drawn from [-FINITE_SPAN, FINITE_SPAN).
FINITE_SPAN = 4.0
#: Integer views of each element size, for bit patterns.
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass
class Poison:
    """One call's fill: `kind` from KINDS, and the seed random fills start from (each fill of the
    call gets the next one)."""

    kind: str = "sentinel"
    seed: int = 0
    fills: int = 0  # fills done so far with this pattern

    def __call__(self, tensor: torch.Tensor) -> None:
        """Fill `tensor` as the pattern says (a sentinel fill touches floating dtypes only)."""
        if not tensor.numel() or tensor.dtype == torch.bool:
            return
        if self.kind == "sentinel":
            poison(tensor)
            return
        if self.kind == "zeros":
            tensor.zero_()
            return
        self.fills += 1
        generator = torch.Generator(device=tensor.device).manual_seed((self.seed * 1_000_003 + self.fills) % (1 << 62))
        if self.kind == "finite" and tensor.is_floating_point():
            tensor.uniform_(-FINITE_SPAN, FINITE_SPAN, generator=generator)
            return
        bits = tensor.view(_INT_OF_SIZE[tensor.element_size()])
        info = torch.iinfo(bits.dtype)
        bits.random_(info.min, info.max, generator=generator)


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


#: Bytes of the band after each tensor forward allocates in a checked call (Tails).
TAIL_BYTES = 1 << 16
#: Allocations larger than this get no band: the band means a second allocation of the same size
#: while the first is still held (a benchmark-size output would need twice its memory).
TAIL_MAX_BYTES = 1 << 28


class Tails:
    """The fresh allocations of one checked call, each moved into storage TAIL_BYTES longer than
    it needs, the excess filled with seeded random bytes: a store past the tensor's end (a mask
    one block too wide) lands there, and `written` finds it. The tensor is no view (its storage
    offset is 0, as a user's allocation's is)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.bands: list[tuple[Any, int, int]] = []  # (weak reference to the storage, bytes used, band seed)

    def add(self, out: torch.Tensor, keep_values: bool = False) -> torch.Tensor:
        """`out`, or a tensor of its shape, strides and dtype with a band after it (holding its
        values with `keep_values`)."""
        if out.layout != torch.strided or not out.numel() or out.device.type == "meta":
            return out
        span = 1 + sum((n - 1) * s for n, s in zip(out.shape, out.stride()))
        used = span * out.element_size()
        if used > TAIL_MAX_BYTES:
            return out
        storage = torch.empty(used + TAIL_BYTES, dtype=torch.uint8, device=out.device).untyped_storage()
        seed = (self.seed * 1_000_003 + len(self.bands)) % (1 << 62)
        _band(storage, used).copy_(_band_bytes(seed, out.device))
        self.bands.append((weakref.ref(storage), used, seed))
        moved = torch.empty(0, dtype=out.dtype, device=out.device).set_(storage, 0, out.shape, out.stride())
        return moved.copy_(out) if keep_values else moved

    def written(self) -> bool:
        """Whether a band of an allocation still alive (an output, a buffer kept) was written."""
        for ref, used, seed in self.bands:
            storage = ref()
            if storage is not None and not torch.equal(_band(storage, used), _band_bytes(seed, storage.device)):
                return True
        return False


def _band(storage: Any, used: int) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage, used, (TAIL_BYTES,), (1,))


def _band_bytes(seed: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randint(0, 256, (TAIL_BYTES,), dtype=torch.uint8, device=device, generator=generator)
