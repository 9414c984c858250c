import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def fill_zeros_kernel(y_ptr, n, BLOCK: tl.constexpr):
    # Bug: every output element is 0, whatever the input.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.zeros([BLOCK], dtype=tl.float32), mask=offs < n)


def zeros_like_input(x: torch.Tensor) -> torch.Tensor:
    y = torch.empty_like(x)
    n = y.numel()
    fill_zeros_kernel[(triton.cdiv(n, 1024),)](y, n, BLOCK=1024)
    return y


class ModelNew(nn.Module):
    def __init__(self, num_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return zeros_like_input(x)
