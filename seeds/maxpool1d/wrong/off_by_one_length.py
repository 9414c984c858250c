import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def maxpool1d_kernel(x_ptr, y_ptr, L_in, L_out, stride, padding, dilation,
                     KERNEL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L_out
    acc = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for k in range(KERNEL):
        pos = offs * stride - padding + k * dilation
        valid = mask & (pos >= 0) & (pos < L_in)
        acc = tl.maximum(acc, tl.load(x_ptr + row * L_in + pos, mask=valid, other=float("-inf")))
    tl.store(y_ptr + row * L_out + offs, acc, mask=mask)


def maxpool1d(x, kernel_size, stride, padding, dilation):
    n, c, length = x.shape
    # Bug: the output length misses the -1 of the window span (one output too many when stride is 1).
    out_len = (length + 2 * padding - dilation * (kernel_size - 1)) // stride + 1
    y = torch.empty((n, c, out_len), device=x.device, dtype=x.dtype)
    grid = (n * c, triton.cdiv(out_len, 128))
    maxpool1d_kernel[grid](x, y, length, out_len, stride, padding, dilation, KERNEL=kernel_size, BLOCK=128)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride or kernel_size
        self.padding = padding
        self.dilation = dilation

    def forward(self, x):
        return maxpool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)
