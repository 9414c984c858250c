import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def softmax_columns_kernel(x_ptr, y_ptr, n_rows, n_cols, BLOCK: tl.constexpr):
    # Bug: normalizes each column (dim 0) instead of each row (dim 1).
    cols = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    cmask = cols < n_cols
    m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for r in range(0, n_rows):
        m = tl.maximum(m, tl.load(x_ptr + r * n_cols + cols, mask=cmask, other=float("-inf")))
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for r in range(0, n_rows):
        total += tl.exp(tl.load(x_ptr + r * n_cols + cols, mask=cmask, other=0.0) - m)
    for r in range(0, n_rows):
        x = tl.load(x_ptr + r * n_cols + cols, mask=cmask, other=0.0)
        tl.store(y_ptr + r * n_cols + cols, tl.exp(x - m) / total, mask=cmask)


def softmax(x):
    x = x.contiguous()
    n_rows, n_cols = x.shape
    y = torch.empty_like(x)
    softmax_columns_kernel[(triton.cdiv(n_cols, 256),)](x, y, n_rows, n_cols, BLOCK=256)
    return y


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return softmax(x)
