import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def avg_pool3d_depth_stream_kernel(
    x_ptr, y_ptr,
    D, H, W, OD, OH, OW, w_blocks, od_chunks, od_per_chunk,
    stride_h, stride_w, pad_d, pad_h, pad_w,
    KERNEL_D: tl.constexpr,
    STRIDE_D: tl.constexpr,
    KERNEL_H: tl.constexpr,
    KERNEL_W: tl.constexpr,
    BLOCK_OW: tl.constexpr,
    CARRY: tl.constexpr,
    WIDE_INDEX: tl.constexpr,
):
    # The previous stage read KERNEL_D * KERNEL_H input rows for every output
    # row, so an input slice shared by two depth windows was fetched twice.
    # Here a program walks down the depth for one output row block (oh,
    # w-block) over a chunk of output depths, in order.  A depth slice's
    # window sum (KERNEL_H rows x KERNEL_W taps) is loaded once and, when
    # consecutive depth windows overlap by one slice (KERNEL_D == STRIDE_D + 1,
    # e.g. 3 and 2), carried in registers into the next window instead of
    # being read again: a third fewer loads for the benchmark's 3/2 window.
    # Grid: flat, (plane, depth chunk, oh, w-block), w-block fastest.
    pid = tl.program_id(0)
    col = pid // w_blocks
    wb = pid - col * w_blocks
    t = col // OH
    oh = col - t * OH
    plane = t // od_chunks
    chunk = t - plane * od_chunks
    od_lo = chunk * od_per_chunk
    od_hi = tl.minimum(od_lo + od_per_chunk, OD)

    x_plane = x_ptr + plane.to(tl.int64) * D * H * W
    y_col = y_ptr + plane.to(tl.int64) * OD * OH * OW + oh * OW

    ow = wb * BLOCK_OW + tl.arange(0, BLOCK_OW)
    ow_mask = ow < OW
    iw0 = ow * stride_w - pad_w
    h0 = oh * stride_h - pad_h

    # With a carry, the chunk's first window starts from its first slice's sum.
    carry = tl.zeros([BLOCK_OW], dtype=tl.float32)
    if CARRY:
        d = od_lo * STRIDE_D - pad_d
        if WIDE_INDEX:
            d = d.to(tl.int64)
        for kh in tl.static_range(KERNEL_H):
            h = h0 + kh
            ok = (d >= 0) & (d < D) & (h >= 0) & (h < H)
            for kw in tl.static_range(KERNEL_W):
                iw = iw0 + kw
                m = ow_mask & ok & (iw >= 0) & (iw < W)
                carry += tl.load(x_plane + (d * H + h) * W + iw, mask=m, other=0.0).to(tl.float32)

    for od in range(od_lo, od_hi):
        if WIDE_INDEX:
            od_i = od_lo.to(tl.int64) + (od - od_lo)
        else:
            od_i = od
        d0 = od_i * STRIDE_D - pad_d
        acc = carry
        for kd in tl.static_range(CARRY, KERNEL_D):
            d = d0 + kd
            s = tl.zeros([BLOCK_OW], dtype=tl.float32)
            for kh in tl.static_range(KERNEL_H):
                h = h0 + kh
                ok = (d >= 0) & (d < D) & (h >= 0) & (h < H)
                for kw in tl.static_range(KERNEL_W):
                    iw = iw0 + kw
                    m = ow_mask & ok & (iw >= 0) & (iw < W)
                    s += tl.load(x_plane + (d * H + h) * W + iw, mask=m, other=0.0).to(tl.float32)
            acc += s
            if CARRY:
                if kd == KERNEL_D - 1:
                    carry = s   # the next window starts with this slice
        # count_include_pad=True: divide by the full window volume.
        out = acc / (KERNEL_D * KERNEL_H * KERNEL_W)
        tl.store(y_col + od_i * OH * OW + ow, out, mask=ow_mask)


def _triple(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1]), int(v[2])
    return int(v), int(v), int(v)


def _launch_config(OD: int, OW: int):
    """Row block, depth chunk and launch of the depth-streaming kernel.

    Measured on the H100 at the benchmark shape: 128-output row blocks with
    per-tap loads beat 64-output blocks by 22% and one [BLOCK_OW, taps] load
    per window row by 9%; a program walks 64 output depths (16 was within
    0.4%), which still leaves 32K programs for the benchmark.
    """
    block_ow = min(128, triton.next_power_of_2(OW))
    od_per_chunk = min(64, OD)
    return dict(BLOCK_OW=block_ow, OD_PER_CHUNK=od_per_chunk, num_warps=4, num_stages=1)


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

    cfg = _launch_config(OD, OW)
    od_per_chunk = cfg.pop("OD_PER_CHUNK")
    od_chunks = triton.cdiv(OD, od_per_chunk)
    w_blocks = triton.cdiv(OW, cfg["BLOCK_OW"])
    wide_index = (
        (D + kd) * H * W + (w_blocks * cfg["BLOCK_OW"] + 1) * sw + kw >= 2**31
        or OD * OH * OW >= 2**31
    )

    grid = (N * C * od_chunks * OH * w_blocks,)
    avg_pool3d_depth_stream_kernel[grid](
        x, y,
        D, H, W, OD, OH, OW, w_blocks, od_chunks, od_per_chunk,
        sh, sw, pd, ph, pw,
        KERNEL_D=kd,
        STRIDE_D=sd,
        KERNEL_H=kh,
        KERNEL_W=kw,
        CARRY=int(kd == sd + 1),
        WIDE_INDEX=wide_index,
        **cfg,
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
