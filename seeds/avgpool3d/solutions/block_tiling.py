import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def avg_pool3d_tile_kernel(
    x_ptr, y_ptr,
    D, H, W, OD, OH, OW, oh_blocks, w_blocks,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
    KERNEL_D: tl.constexpr,
    KERNEL_H: tl.constexpr,
    KERNEL_W: tl.constexpr,
    BLOCK_OH: tl.constexpr,
    BLOCK_OW: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    # Flat row-major grid as in the previous stage, now over 2-D output tiles
    # of BLOCK_OH rows x BLOCK_OW columns of one output depth slice:
    # (plane, od, oh-block, w-block), w-block fastest.  The tile is sized so
    # that each thread holds two outputs, twice the independent loads in
    # flight per thread; narrow outputs stack rows to keep programs full.
    pid = tl.program_id(0)
    tile_row = pid // w_blocks
    wb = pid - tile_row * w_blocks
    slab = tile_row // oh_blocks         # (n * C + c) * OD + od
    ohb = tile_row - slab * oh_blocks
    plane = slab // OD
    od = slab - plane * OD

    x_plane = x_ptr + plane.to(tl.int64) * D * H * W
    y_slab = y_ptr + slab.to(tl.int64) * OH * OW

    oh = ohb * BLOCK_OH + tl.arange(0, BLOCK_OH)
    ow = wb * BLOCK_OW + tl.arange(0, BLOCK_OW)
    out_mask = (oh < OH)[:, None] & (ow < OW)[None, :]
    ih0 = oh * stride_h - pad_h          # [BLOCK_OH]
    iw0 = ow * stride_w - pad_w          # [BLOCK_OW]

    acc = tl.zeros([BLOCK_OH, BLOCK_OW], dtype=tl.float32)
    for kd in tl.static_range(KERNEL_D):
        d = od * stride_d - pad_d + kd
        d_ok = (d >= 0) & (d < D)
        if WIDE_INDEX:
            d = d.to(tl.int64)
        for kh in tl.static_range(KERNEL_H):
            ih = ih0 + kh
            row_ok = d_ok & (ih >= 0) & (ih < H)
            x_lines = x_plane + (d * H + ih) * W     # one pointer per tile row
            for kw in tl.static_range(KERNEL_W):
                iw = iw0 + kw
                m = out_mask & row_ok[:, None] & ((iw >= 0) & (iw < W))[None, :]
                acc += tl.load(x_lines[:, None] + iw[None, :], mask=m, other=0.0).to(tl.float32)

    # count_include_pad=True: divide by the full window volume.
    out = acc / (KERNEL_D * KERNEL_H * KERNEL_W)
    tl.store(y_slab + oh[:, None] * OW + ow[None, :], out, mask=out_mask)


def _triple(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1]), int(v[2])
    return int(v), int(v), int(v)


def _tile_config(OH: int, OW: int):
    """Output tile (BLOCK_OH x BLOCK_OW outputs of one depth slice) and its warps.

    Two outputs per thread: 64-output row tiles on one warp.  Measured on the
    H100 at the benchmark shape: 1 x 64 on one warp beat the previous 128
    outputs on four warps (one output per thread) by 0.4-1.6%, and 64 outputs
    on two warps by 5%; taller tiles (2 or 4 rows) were 3-19% slower.  Narrow
    outputs stack rows instead, so that a program never runs mostly empty.
    """
    block_ow = min(64, triton.next_power_of_2(OW))
    block_oh = min(max(1, 64 // block_ow), triton.next_power_of_2(OH))
    num_warps = max(1, block_oh * block_ow // 64)
    return block_oh, block_ow, num_warps


def triton_avg_pool3d(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """nn.AvgPool3d(kernel_size, stride, padding), count_include_pad=True, ceil_mode=False (NCDHW)."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() == 5, "Input must be NCDHW"
    assert x.dtype == torch.float32, "float32 input expected"
    x = x.contiguous()
    kd, kh, kw = _triple(kernel_size)
    sd, sh, sw = _triple(kernel_size if stride is None else stride)
    pd, ph, pw = _triple(padding)

    N, C, D, H, W = x.shape
    OD = (D + 2 * pd - kd) // sd + 1
    OH = (H + 2 * ph - kh) // sh + 1
    OW = (W + 2 * pw - kw) // sw + 1
    assert OD > 0 and OH > 0 and OW > 0, "Invalid output size for AvgPool3d"
    y = torch.empty((N, C, OD, OH, OW), device=x.device, dtype=x.dtype)

    BLOCK_OH, BLOCK_OW, num_warps = _tile_config(OH, OW)
    oh_blocks = triton.cdiv(OH, BLOCK_OH)
    w_blocks = triton.cdiv(OW, BLOCK_OW)
    wide_index = (D + kd) * H * W + (w_blocks * BLOCK_OW + 1) * sw + kw >= 2**31

    grid = (N * C * OD * oh_blocks * w_blocks,)
    avg_pool3d_tile_kernel[grid](
        x, y,
        D, H, W, OD, OH, OW, oh_blocks, w_blocks,
        sd, sh, sw, pd, ph, pw,
        KERNEL_D=kd,
        KERNEL_H=kh,
        KERNEL_W=kw,
        BLOCK_OH=BLOCK_OH,
        BLOCK_OW=BLOCK_OW,
        WIDE_INDEX=wide_index,
        num_warps=num_warps,
    )
    return y


class ModelNew(nn.Module):
    """3D average pooling (count_include_pad=True) computed by a Triton kernel."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_avg_pool3d(x, self.kernel_size, self.stride, self.padding)
