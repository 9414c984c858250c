import torch
import torch.nn as nn
import triton
import triton.language as tl

@triton.autotune(configs=[triton.Config({"BLOCK": 32}), triton.Config({"BLOCK": 64})], key=["L_out"])
@triton.jit
def avg_pool1d_kernel(x_ptr, y_ptr, L_in, L_out, stride, padding,
                      KERNEL_SIZE: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L_out
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for k in tl.static_range(KERNEL_SIZE):
        pos = offs * stride - padding + k
        m = mask & (pos >= 0) & (pos < L_in)
        acc += tl.load(x_ptr + row * L_in + pos, mask=m, other=0.0)
    tl.store(y_ptr + row * L_out + offs, acc / KERNEL_SIZE, mask=mask)


def output_length(length, kernel_size, stride, padding):
    return (length + 2 * padding - kernel_size) // stride + 1


def launch(x, kernel_size, stride, padding):
    assert x.dim() == 3
    x = x.contiguous()
    n, c, length = x.shape
    lo = output_length(length, kernel_size, stride, padding)
    y = x.new_empty((n, c, lo))
    grid = lambda meta: (n * c, triton.cdiv(lo, meta["BLOCK"]))
    avg_pool1d_kernel[grid](x, y, length, lo, stride, padding, KERNEL_SIZE=kernel_size)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return launch(x, self.kernel_size, self.stride, self.padding)
