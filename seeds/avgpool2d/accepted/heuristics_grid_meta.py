import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.heuristics({"BLOCK_W": lambda args: min(triton.next_power_of_2(args["OW"]), 2048)})
@triton.jit
def avg_pool2d_heuristic_kernel(x_ptr, y_ptr, H, W, OH, OW, stride, padding,
                                KERNEL: tl.constexpr, BLOCK_W: tl.constexpr):
    out_row = tl.program_id(0).to(tl.int64)
    plane = out_row // OH
    oh = out_row % OH
    ow = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    mask = ow < OW
    x_plane = x_ptr + plane * H * W
    acc = tl.zeros([BLOCK_W], dtype=tl.float32)
    for kh in range(KERNEL):
        ih = oh * stride - padding + kh
        for kw in range(KERNEL):
            iw = ow * stride - padding + kw
            ok = mask & (iw >= 0) & (iw < W) & (ih >= 0) & (ih < H)
            acc += tl.load(x_plane + ih * W + iw, mask=ok, other=0.0)
    tl.store(y_ptr + out_row * OW + ow, acc / (KERNEL * KERNEL), mask=mask)


def avg_pool2d(x, kernel_size, stride, padding):
    n, c, h, w = x.shape
    oh = (h + 2 * padding - kernel_size) // stride + 1
    ow = (w + 2 * padding - kernel_size) // stride + 1
    y = torch.empty((n, c, oh, ow), device=x.device, dtype=x.dtype)
    grid = lambda META: (n * c * oh, triton.cdiv(ow, META["BLOCK_W"]))
    avg_pool2d_heuristic_kernel[grid](x, y, h, w, oh, ow, stride, padding, KERNEL=kernel_size)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.padding = padding

    def forward(self, x):
        return avg_pool2d(x.contiguous(), self.kernel_size, self.stride, self.padding)
