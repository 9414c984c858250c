import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool3d_row_stream_kernel(
    x_ptr, y_ptr,
    D, H, W, OD, OH, OW, tiles_h, tiles_w,
    padding,
    KERNEL_SIZE: tl.constexpr,
    STRIDE: tl.constexpr,
    DILATION: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    # Same flat grid as the previous stage, two output rows per tile (see
    # _tile_config); the reads change.
    # The max is separable: for each depth tap, every input row of the tile's
    # footprint is loaded once (K shifted loads of one row segment, the shifts
    # hitting L1), reduced to its row maximum, and merged into every output
    # row of the tile whose window holds that row.  Per depth tap the tile
    # issues (BLOCK_H - 1) * STRIDE + (K - 1) * DILATION + 1 row loads per
    # column instead of BLOCK_H * K.  Stride and dilation are compile-time
    # constants, so the loops unroll and the row-to-output masks are constants.
    pid = tl.program_id(0)
    tiles = tiles_h * tiles_w
    slab = pid // tiles
    rest = pid - slab * tiles
    th = rest // tiles_w
    tw = rest - th * tiles_w
    vol = slab // OD
    od = slab - vol * OD

    vol64 = vol.to(tl.int64)
    x_vol = x_ptr + vol64 * D * H * W
    y_slice = y_ptr + (vol64 * OD + od) * OH * OW

    rows = tl.arange(0, BLOCK_H)
    oh = th * BLOCK_H + rows
    ow = tw * BLOCK_W + tl.arange(0, BLOCK_W)
    ow_ok = ow < OW
    w0 = ow * STRIDE - padding

    d_first = od * STRIDE - padding
    h_first = th * BLOCK_H * STRIDE - padding
    N_ROWS: tl.constexpr = (BLOCK_H - 1) * STRIDE + (KERNEL_SIZE - 1) * DILATION + 1

    # Padded taps load -inf and never win; every max propagates NaN, so a window
    # holding a NaN is NaN, as in PyTorch.
    acc = tl.full([BLOCK_H, BLOCK_W], float("-inf"), dtype=tl.float32)
    for kd in tl.static_range(KERNEL_SIZE):
        d = d_first + kd * DILATION
        d_ok = (d >= 0) & (d < D)
        for t in tl.static_range(N_ROWS):
            h = h_first + t
            row_ok = d_ok & (h >= 0) & (h < H)
            x_line = x_vol + (d * H + h) * W
            row_max = tl.full([BLOCK_W], float("-inf"), dtype=tl.float32)
            for kw in tl.static_range(KERNEL_SIZE):
                w = w0 + kw * DILATION
                v = tl.load(x_line + w, mask=ow_ok & (w >= 0) & (w < W) & row_ok, other=float("-inf"))
                row_max = tl.maximum(row_max, v, propagate_nan=tl.PropagateNan.ALL)
            # Output row r uses input rows r * STRIDE - padding + i * DILATION, i < K.
            rel = t - rows * STRIDE
            hit = (rel >= 0) & (rel < KERNEL_SIZE * DILATION) & (rel % DILATION == 0)
            merged = tl.maximum(acc, row_max[None, :], propagate_nan=tl.PropagateNan.ALL)
            acc = tl.where(hit[:, None], merged, acc)

    out_mask = (oh < OH)[:, None] & ow_ok[None, :]
    tl.store(y_slice + oh[:, None] * OW + ow[None, :], acc, mask=out_mask)


def _tile_config(OH: int, OW: int):
    """Tile shape: a whole output row (up to 128 lanes) by 2 rows, 2 outputs per thread.

    Two output rows share the input rows between them (stride < dilation * K),
    so the row-streaming loop below reads (2 - 1) * stride + (K - 1) * dilation + 1
    rows per depth tap for 2 output rows instead of 2 * K.
    """
    block_w = min(128, max(16, triton.next_power_of_2(OW)))
    block_h = min(2, triton.next_power_of_2(OH))
    num_warps = max(1, block_w // 32)
    return block_h, block_w, num_warps


def triton_maxpool3d(x: torch.Tensor, kernel_size: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool = False) -> torch.Tensor:
    """nn.MaxPool3d with cubic int kernel/stride/padding/dilation and ceil_mode (taps past the input
    are masked, so ceil_mode changes only the output size)."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() == 5, "Input must have shape (N, C, D, H, W)"
    assert x.dtype == torch.float32, "float32 input expected"
    x = x.contiguous()

    N, C, D, H, W = x.shape

    def out_size(n):
        span = n + 2 * padding - dilation * (kernel_size - 1) - 1
        if not ceil_mode:
            return span // stride + 1
        out = -(-span // stride) + 1
        if (out - 1) * stride >= n + padding:  # PyTorch drops a last window that starts in the right padding
            out -= 1
        return out

    OD, OH, OW = out_size(D), out_size(H), out_size(W)
    assert OD > 0 and OH > 0 and OW > 0, "Invalid output size for MaxPool3d"
    assert D * H * W < 2**31, "one volume must fit int32 offsets"
    y = torch.empty((N, C, OD, OH, OW), device=x.device, dtype=x.dtype)

    BLOCK_H, BLOCK_W, num_warps = _tile_config(OH, OW)
    tiles_h = triton.cdiv(OH, BLOCK_H)
    tiles_w = triton.cdiv(OW, BLOCK_W)
    grid = (N * C * OD * tiles_h * tiles_w,)
    maxpool3d_row_stream_kernel[grid](
        x, y,
        D, H, W, OD, OH, OW, tiles_h, tiles_w,
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
    """3D max pooling computed by a Triton kernel (indices are not returned)."""

    def __init__(self, kernel_size: int, stride: int = None, padding: int = 0, dilation: int = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        assert not return_indices, "return_indices=True is not supported"
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self.dilation = int(dilation)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_maxpool3d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
