import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.heuristics({
    "BLOCK_W": lambda args: min(triton.next_power_of_2(args["OW"]), 256),
    # Wide input rows get more warps: a threshold that happens to equal the benchmark width.
    "num_warps": lambda args: 8 if args["W"] >= 2048 else 4,
})
@triton.jit
def avg_pool2d_kernel(x_ptr, y_ptr, H, W, OH, OW, stride, padding,
                      KERNEL: tl.constexpr, BLOCK_W: tl.constexpr):
    row = tl.program_id(0)
    oh = row % OH
    plane = (row // OH).to(tl.int64)
    ow = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    out_mask = ow < OW
    acc = tl.zeros([BLOCK_W], dtype=tl.float32)
    for kh in range(KERNEL):
        ih = oh * stride - padding + kh
        for kw in range(KERNEL):
            iw = ow * stride - padding + kw
            ok = out_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            acc += tl.load(x_ptr + (plane * H + ih) * W + iw, mask=ok, other=0.0)
    tl.store(y_ptr + row.to(tl.int64) * OW + ow, acc / (KERNEL * KERNEL), mask=out_mask)


def avg_pool2d(x, kernel_size, stride, padding):
    n, c, h, w = x.shape
    oh = (h + 2 * padding - kernel_size) // stride + 1
    ow = (w + 2 * padding - kernel_size) // stride + 1
    y = torch.empty((n, c, oh, ow), device=x.device, dtype=x.dtype)
    grid = lambda meta: (n * c * oh, triton.cdiv(ow, meta["BLOCK_W"]))
    avg_pool2d_kernel[grid](x, y, h, w, oh, ow, stride, padding, KERNEL=kernel_size)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.padding = padding

    def forward(self, x):
        return avg_pool2d(x.contiguous(), self.kernel_size, self.stride, self.padding)
