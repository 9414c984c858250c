import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def cross_entropy_kernel(x_ptr, t_ptr, loss_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row * n_cols
    m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for off in range(0, n_cols, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        m = tl.maximum(m, tl.load(x_row + cols, mask=cols < n_cols, other=float("-inf")))
    row_max = tl.max(m, 0)
    total = tl.zeros([BLOCK], dtype=tl.float32)
    for off in range(0, n_cols, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        x = tl.load(x_row + cols, mask=cols < n_cols, other=float("-inf"))
        total += tl.exp(x - row_max)
    t = tl.load(t_ptr + row)
    # Bug: the target's logit is read only for t < n_cols - 1, so class C-1 (the last one) is
    # treated as a logit of 0.
    x_t = tl.load(x_row + t, mask=t < n_cols - 1, other=0.0)
    tl.store(loss_ptr + row, tl.log(tl.sum(total, 0)) - (x_t - row_max))


@triton.jit
def mean_kernel(loss_ptr, out_ptr, n, divisor, BLOCK: tl.constexpr):
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for off in range(0, n, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        acc += tl.load(loss_ptr + idx, mask=idx < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, 0) / divisor)


def cross_entropy(predictions, targets):
    x = predictions.contiguous()
    t = targets.contiguous()
    n_rows, n_cols = x.shape
    loss = torch.empty((n_rows,), device=x.device, dtype=torch.float32)
    out = torch.empty((), device=x.device, dtype=torch.float32)
    cross_entropy_kernel[(n_rows,)](x, t, loss, n_cols, BLOCK=1024)
    mean_kernel[(1,)](loss, out, n_rows, n_rows, BLOCK=1024)
    return out


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        return cross_entropy(predictions, targets)
