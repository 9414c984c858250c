import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool3d_slab_tile_kernel(
    x_ptr, y_ptr,
    D, H, W, OD, OH, OW, tiles_h, tiles_w,
    stride, padding, dilation,
    KERNEL_SIZE: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    # Flat grid over (volume, output depth, tile row, tile column) as in the
    # previous stage.  The tile is now sized by _tile_config: one whole output
    # row instead of 2 x 64.  Every thread holds one output, so its K**3
    # unrolled tap loads are all in flight at once with few registers, and
    # twice as many small programs fill the SMs more evenly.
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

    oh = th * BLOCK_H + tl.arange(0, BLOCK_H)
    ow = tw * BLOCK_W + tl.arange(0, BLOCK_W)
    out_mask = (oh < OH)[:, None] & (ow < OW)[None, :]
    d0 = od * stride - padding
    h0 = oh * stride - padding
    w0 = ow * stride - padding

    # Padded taps load -inf, so they never win the max.  A NaN tap makes the
    # window NaN, as in PyTorch (tl.maximum alone would return the other operand).
    acc = tl.full([BLOCK_H, BLOCK_W], float("-inf"), dtype=tl.float32)
    for kd in tl.static_range(KERNEL_SIZE):
        d = d0 + kd * dilation
        d_ok = (d >= 0) & (d < D)
        for kh in tl.static_range(KERNEL_SIZE):
            h = h0 + kh * dilation
            row_ok = out_mask & ((h >= 0) & (h < H) & d_ok)[:, None]
            x_rows = x_vol + (d * H + h)[:, None] * W
            for kw in tl.static_range(KERNEL_SIZE):
                w = w0 + kw * dilation
                m = row_ok & ((w >= 0) & (w < W))[None, :]
                v = tl.load(x_rows + w[None, :], mask=m, other=float("-inf"))
                acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)

    tl.store(y_slice + oh[:, None] * OW + ow[None, :], acc, mask=out_mask)


def _tile_config(OH: int, OW: int):
    """Tile shape: one whole output row (up to 128 lanes), one output per thread."""
    block_w = min(128, max(16, triton.next_power_of_2(OW)))
    block_h = 1
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
    maxpool3d_slab_tile_kernel[grid](
        x, y,
        D, H, W, OD, OH, OW, tiles_h, tiles_w,
        stride, padding, dilation,
        KERNEL_SIZE=kernel_size,
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
