import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def avg_pool2d_window_row_kernel(
    x_ptr, y_ptr,
    H, W, OH, OW, w_blocks,
    stride_h, stride_w, pad_h, pad_w,
    KERNEL_H: tl.constexpr,
    KERNEL_W: tl.constexpr,
    KERNEL_W_P2: tl.constexpr,
    BLOCK_OW: tl.constexpr,
    HAS_PAD: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    # The previous stage issued KERNEL_H * KERNEL_W separate 1-D gathers of
    # BLOCK_W outputs at stride `stride_w`.  Here the tile is 2-D: BLOCK_OW
    # outputs x KERNEL_W_P2 taps, so one load fetches a whole window row for
    # the block (adjacent lanes read adjacent addresses, one contiguous stretch
    # of the input row when stride == kernel) and a window takes KERNEL_H loads
    # instead of KERNEL_H * KERNEL_W.  The KERNEL_H row loads are unrolled so
    # they are all in flight together.  The tile holds one output row, so the
    # grid stays flat and row-major over (plane, oh, w-block), w-block fastest.
    pid = tl.program_id(0)
    out_row = pid // w_blocks
    wb = pid - out_row * w_blocks
    plane = out_row // OH
    oh = out_row - plane * OH

    x_plane = x_ptr + plane.to(tl.int64) * H * W
    y_row = y_ptr + out_row.to(tl.int64) * OW

    ow = wb * BLOCK_OW + tl.arange(0, BLOCK_OW)
    if WIDE_INDEX:
        ow = ow.to(tl.int64)
    taps = tl.arange(0, KERNEL_W_P2)
    ow_mask = ow < OW
    iw = (ow * stride_w - pad_w)[:, None] + taps[None, :]
    mask = ow_mask[:, None] & (taps < KERNEL_W)[None, :]
    # Without padding every window lies inside the plane (floor-mode output
    # size), so the per-element bounds tests are dropped: the mask depends on
    # the tile shape only and is computed once, not once per window row.
    if HAS_PAD:
        mask = mask & (iw >= 0) & (iw < W)

    ih0 = oh * stride_h - pad_h
    if WIDE_INDEX:
        ih0 = ih0.to(tl.int64)
    # Walk down the window by pointer increments: no per-row multiply.
    line = x_plane + ih0 * W + iw

    # All KERNEL_H window-row loads are unrolled and independent, so a program
    # keeps them all in flight at once instead of one row per loop trip.
    acc = tl.zeros([BLOCK_OW, KERNEL_W_P2], dtype=tl.float32)
    for kh in tl.static_range(KERNEL_H):
        if HAS_PAD:
            ih = ih0 + kh
            row_mask = mask & (ih >= 0) & (ih < H)
        else:
            row_mask = mask
        acc += tl.load(line, mask=row_mask, other=0.0).to(tl.float32)
        line += W

    out = tl.sum(acc, axis=1) / (KERNEL_H * KERNEL_W)
    tl.store(y_row + ow, out, mask=ow_mask)


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _launch_config(OW: int, kernel_w: int):
    """Window-row tile of ~512 window elements: BLOCK_OW outputs x next_pow2(KW) taps,
    one window element per thread and load.

    For the benchmark (OW = 186, KW = 11 -> 16 taps) that is 32 outputs and six
    programs per output row (3% idle lanes).  Measured on the H100 at the
    benchmark shape: 32 x 16 tiles beat 64 x 16 by 3% and the previous 1-D
    gathers by 1.2%; 16 warps beat 8 by 1.3-1.7% and 4 by 5% (more independent
    loads in flight on each SM), and 32 warps was 47% slower.  The kernel has no
    loop (the KERNEL_H loads are unrolled), so num_stages has nothing to pipeline
    (1 to 4 measured within 0.1%) and stays at 1.  Narrow rows shrink the tile
    and the warps with it.
    """
    kernel_w_p2 = triton.next_power_of_2(kernel_w)
    block_ow = max(1, 512 // kernel_w_p2)
    block_ow = min(block_ow, triton.next_power_of_2(OW))
    num_warps = max(1, min(16, block_ow * kernel_w_p2 // 32))
    return dict(BLOCK_OW=block_ow, KERNEL_W_P2=kernel_w_p2, num_warps=num_warps, num_stages=1)


def triton_avg_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """nn.AvgPool2d(kernel_size, stride, padding), count_include_pad=True, ceil_mode=False (NCHW)."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() == 4, "Input must be NCHW"
    assert x.dtype == torch.float32, "float32 input expected"
    x = x.contiguous()
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)

    N, C, H, W = x.shape
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    assert OH > 0 and OW > 0, "Invalid output size for AvgPool2d"
    y = torch.empty((N, C, OH, OW), device=x.device, dtype=x.dtype)

    cfg = _launch_config(OW, kw)
    w_blocks = triton.cdiv(OW, cfg["BLOCK_OW"])
    wide_index = (H + kh) * W + (w_blocks * cfg["BLOCK_OW"] + 1) * sw + cfg["KERNEL_W_P2"] >= 2**31

    grid = (N * C * OH * w_blocks,)
    avg_pool2d_window_row_kernel[grid](
        x, y,
        H, W, OH, OW, w_blocks,
        sh, sw, ph, pw,
        KERNEL_H=kh,
        KERNEL_W=kw,
        HAS_PAD=(ph > 0 or pw > 0),
        WIDE_INDEX=wide_index,
        **cfg,
    )
    return y


class ModelNew(nn.Module):
    """2D average pooling (count_include_pad=True) computed by a Triton kernel."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_avg_pool2d(x, self.kernel_size, self.stride, self.padding)
