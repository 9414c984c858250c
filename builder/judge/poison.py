"""What fresh allocations are filled with inside the sandbox, so that unwritten output shows.

A pattern is chosen per call by the judge: the fixed sentinel (a quiet NaN with a payload, for
floating dtypes; the judge then counts never-written elements exactly), a random bit pattern,
or random finite values, each from a seed that changes from call to call. An answer cannot rely
on what a fresh allocation holds: a user's allocation holds whatever memory held before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Sentinel bit patterns (quiet NaNs with a payload) by floating dtype, as (int view, bits).
SENTINELS: dict[torch.dtype, tuple[torch.dtype, int]] = {
    torch.float32: (torch.int32, 0x7FC0BAD0),
    torch.float64: (torch.int64, 0x7FF8BAD0BAD0BAD0),
    torch.float16: (torch.int16, 0x7E5D),
    torch.bfloat16: (torch.int16, 0x7FDD),
}
#: The pattern kinds: the fixed sentinel, random bits, random finite values.
KINDS = ("sentinel", "bits", "finite")
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
