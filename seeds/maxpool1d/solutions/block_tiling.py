import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool1d_row_tile_kernel(
    x_ptr, y_ptr,
    L_in, L_out, tiles_per_row,
    stride, padding, dilation,
    KERNEL_SIZE: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    # Flat, row-major grid as in the previous stage.  The tile grows from 256
    # to 1024 outputs: the (K - 1) * dilation halo each tile re-reads is then
    # 2% of its loads instead of 8%, and there are 4x fewer programs to
    # schedule, each with more independent loads in flight per thread.
    pid = tl.program_id(0)
    row = pid // tiles_per_row
    tile = pid - row * tiles_per_row

    # Row bases in int64 (N * C * L may pass 2**31); positions inside a row
    # stay in int32 unless a row is that long.
    row64 = row.to(tl.int64)
    x_row = x_ptr + row64 * L_in
    y_row = y_ptr + row64 * L_out

    offs = tile * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    if WIDE_INDEX:
        offs = offs.to(tl.int64)
    out_mask = offs < L_out
    start = offs * stride - padding

    # Padded taps load -inf, so they never win the max.  A NaN tap makes the
    # window NaN, as in PyTorch (tl.maximum alone would return the other operand).
    acc = tl.full([BLOCK_OUT], float("-inf"), dtype=tl.float32)
    for k in tl.static_range(KERNEL_SIZE):
        pos = start + k * dilation
        m = out_mask & (pos >= 0) & (pos < L_in)
        v = tl.load(x_row + pos, mask=m, other=float("-inf"))
        acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)

    tl.store(y_row + offs, acc, mask=out_mask)


def triton_maxpool1d(x: torch.Tensor, kernel_size: int, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """nn.MaxPool1d(kernel_size, stride, padding, dilation) with ceil_mode=False."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() == 3, "Input must have shape (N, C, L)"
    assert x.dtype == torch.float32, "float32 input expected"
    x = x.contiguous()

    N, C, L_in = x.shape
    L_out = (L_in + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    assert L_out > 0, "Invalid output length for MaxPool1d"
    y = torch.empty((N, C, L_out), device=x.device, dtype=x.dtype)

    BLOCK_OUT = 1024
    tiles_per_row = triton.cdiv(L_out, BLOCK_OUT)
    wide_index = (L_out + BLOCK_OUT) * stride + dilation * kernel_size >= 2**31

    grid = (N * C * tiles_per_row,)
    maxpool1d_row_tile_kernel[grid](
        x, y,
        L_in, L_out, tiles_per_row,
        stride, padding, dilation,
        KERNEL_SIZE=kernel_size,
        BLOCK_OUT=BLOCK_OUT,
        WIDE_INDEX=wide_index,
        num_warps=4,
    )
    return y


class ModelNew(nn.Module):
    """1D max pooling computed by a Triton kernel (indices are not returned)."""

    def __init__(self, kernel_size: int, stride: int = None, padding: int = 0, dilation: int = 1,
                 return_indices: bool = False):
        super().__init__()
        assert not return_indices, "return_indices=True is not supported"
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self.dilation = int(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_maxpool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)
