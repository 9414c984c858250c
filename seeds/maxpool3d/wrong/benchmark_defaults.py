"""__init__ defaults padding=1, dilation=3 (the benchmark's values) instead of nn.MaxPool3d's 0 and 1:
ModelNew(kernel_size=2) or ModelNew(3, 2) pools with the wrong window."""
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool3d_kernel(x_ptr, y_ptr, D, H, W, D_out, H_out, W_out, stride, padding, dilation, kernel,
                     BH: tl.constexpr, BW: tl.constexpr):
    pid = tl.program_id(0)
    plane = pid // D_out
    od = pid - plane * D_out
    oh = tl.program_id(1) * BH + tl.arange(0, BH)
    ow = tl.program_id(2) * BW + tl.arange(0, BW)
    keep = (oh[:, None] < H_out) & (ow[None, :] < W_out)
    x_vol = x_ptr + plane.to(tl.int64) * D * H * W
    acc = tl.full([BH, BW], float("-inf"), tl.float32)
    for kd in range(kernel):
        idd = od * stride - padding + kd * dilation
        okd = (idd >= 0) & (idd < D)
        for kh in range(kernel):
            ih = oh * stride - padding + kh * dilation
            okh = (ih >= 0) & (ih < H)
            for kw in range(kernel):
                iw = ow * stride - padding + kw * dilation
                ok = keep & okd & okh[:, None] & ((iw >= 0) & (iw < W))[None, :]
                v = tl.load(x_vol + (idd * H + ih[:, None]) * W + iw[None, :], mask=ok, other=float("-inf"))
                acc = tl.where((v > acc) | (v != v), v, acc)
    y_ptrs = y_ptr + pid.to(tl.int64) * H_out * W_out + oh[:, None] * W_out + ow[None, :]
    tl.store(y_ptrs, acc, mask=keep)


def _out_size(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


class ModelNew(nn.Module):
    def __init__(self, kernel_size: int, stride: int = None, padding: int = 1, dilation: int = 3,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        self.padding = int(padding)
        self.dilation = int(dilation)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        n, c, d, h, w = x.shape
        k, s, p, dl = self.kernel_size, self.stride, self.padding, self.dilation
        d_out, h_out, w_out = (_out_size(size, k, s, p, dl, self.ceil_mode) for size in (d, h, w))
        y = torch.empty((n, c, d_out, h_out, w_out), device=x.device, dtype=x.dtype)
        bh = min(16, triton.next_power_of_2(h_out))
        bw = min(64, triton.next_power_of_2(w_out))
        grid = (n * c * d_out, triton.cdiv(h_out, bh), triton.cdiv(w_out, bw))
        maxpool3d_kernel[grid](x, y, d, h, w, d_out, h_out, w_out, s, p, dl, k, BH=bh, BW=bw)
        return y
