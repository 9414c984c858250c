import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool2d_row_stream_kernel(
    x_ptr, y_ptr,
    H, W, OH, OW, tiles_h, tiles_w,
    padding,
    KERNEL_SIZE: tl.constexpr,
    STRIDE: tl.constexpr,
    DILATION: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    # Grid, tile and loads as in the previous stage; only the launch changes
    # (see _tile_config).
    # The max is separable: each input row of the tile's footprint is read
    # once (K shifted loads of one row segment, the shifts hitting L1) and
    # reduced to its row maximum, which then goes into every output row of
    # the tile whose window contains it.  The tile issues
    # (BLOCK_H - 1) * STRIDE + (K - 1) * DILATION + 1 row loads per column
    # instead of BLOCK_H * K * K tap loads.  Stride and dilation are
    # compile-time constants, so the row loop unrolls, every row load of the
    # tile is in flight at once, and the row-to-output masks are constants.
    pid = tl.program_id(0)
    tiles = tiles_h * tiles_w
    plane = pid // tiles
    rest = pid - plane * tiles
    th = rest // tiles_w
    tw = rest - th * tiles_w

    plane64 = plane.to(tl.int64)
    x_plane = x_ptr + plane64 * H * W
    y_plane = y_ptr + plane64 * OH * OW

    rows = tl.arange(0, BLOCK_H)
    oh = th * BLOCK_H + rows
    ow = tw * BLOCK_W + tl.arange(0, BLOCK_W)
    ow_ok = ow < OW
    w0 = ow * STRIDE - padding

    h_first = th * BLOCK_H * STRIDE - padding
    N_ROWS: tl.constexpr = (BLOCK_H - 1) * STRIDE + (KERNEL_SIZE - 1) * DILATION + 1

    # Padded taps load -inf and never win; every max propagates NaN, so a window
    # holding a NaN is NaN, as in PyTorch.
    acc = tl.full([BLOCK_H, BLOCK_W], float("-inf"), dtype=tl.float32)
    for t in tl.static_range(N_ROWS):
        h = h_first + t
        h_ok = (h >= 0) & (h < H)
        x_line = x_plane + h * W
        row_max = tl.full([BLOCK_W], float("-inf"), dtype=tl.float32)
        for kw in tl.static_range(KERNEL_SIZE):
            w = w0 + kw * DILATION
            v = tl.load(x_line + w, mask=ow_ok & (w >= 0) & (w < W) & h_ok, other=float("-inf"))
            row_max = tl.maximum(row_max, v, propagate_nan=tl.PropagateNan.ALL)
        # Output row r uses input rows r * STRIDE - padding + i * DILATION, i < K.
        rel = t - rows * STRIDE
        hit = (rel >= 0) & (rel < KERNEL_SIZE * DILATION) & (rel % DILATION == 0)
        merged = tl.maximum(acc, row_max[None, :], propagate_nan=tl.PropagateNan.ALL)
        acc = tl.where(hit[:, None], merged, acc)

    out_mask = (oh < OH)[:, None] & ow_ok[None, :]
    tl.store(y_plane + oh[:, None] * OW + ow[None, :], acc, mask=out_mask)


def _tile_config(OH: int, OW: int):
    """Tile shape (unchanged): up to 8 x 128 outputs, shrunk for small planes.

    Warps: the previous stage used 8, one warp per 128 outputs.  But a
    128-wide tile row fills 4 warps, so 8 warps split the tile's 8 rows
    between two warp groups, and each group issues every row load of the
    tile: twice the loads for the same outputs.  With 4 warps one thread holds
    its column's 8 outputs and each row load is issued once; measured on the
    benchmark shape this is far faster.  The kernel has no loop, so
    num_stages stays at its default.
    """
    block_w = min(128, max(16, triton.next_power_of_2(OW)))
    block_h = min(8, max(1, triton.next_power_of_2(OH)))
    num_warps = max(1, min(4, block_h * block_w // 256))
    return block_h, block_w, num_warps


def triton_maxpool2d(x: torch.Tensor, kernel_size: int, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """nn.MaxPool2d with square int kernel/stride/padding/dilation and ceil_mode=False."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() == 4, "Input must have shape (N, C, H, W)"
    assert x.dtype == torch.float32, "float32 input expected"
    x = x.contiguous()

    N, C, H, W = x.shape
    OH = (H + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    OW = (W + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    assert OH > 0 and OW > 0, "Invalid output size for MaxPool2d"
    assert H * W < 2**31 and OH * OW < 2**31, "one plane must fit int32 offsets"
    y = torch.empty((N, C, OH, OW), device=x.device, dtype=x.dtype)

    BLOCK_H, BLOCK_W, num_warps = _tile_config(OH, OW)
    tiles_h = triton.cdiv(OH, BLOCK_H)
    tiles_w = triton.cdiv(OW, BLOCK_W)
    grid = (N * C * tiles_h * tiles_w,)
    maxpool2d_row_stream_kernel[grid](
        x, y,
        H, W, OH, OW, tiles_h, tiles_w,
        padding,
        KERNEL_SIZE=kernel_size,
        STRIDE=stride,
        DILATION=dilation,
        BLOCK_H=BLOCK_H,
        BLOCK_W=BLOCK_W,
        num_warps=num_warps,
    )
    return y


class ModelNew(nn.Module):
    """2D max pooling computed by a Triton kernel."""

    def __init__(self, kernel_size: int, stride: int, padding: int, dilation: int):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self.dilation = int(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_maxpool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)
