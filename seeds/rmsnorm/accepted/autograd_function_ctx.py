import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def _sum_of_squares(x_ptr, stride_c, n_channels, mask, C_BLOCK: tl.constexpr):
    # sum over the channel axis of x**2 for a tile of positions, fp32 accumulation
    acc = tl.zeros([C_BLOCK], dtype=tl.float32)
    for c in range(0, n_channels):
        v = tl.load(x_ptr + c * stride_c, mask=mask, other=0.0).to(tl.float32)
        acc += v * v
    return acc


@triton.jit
def _rms_norm_forward_kernel(
    Y_ptr, X_ptr, RSTD_ptr,
    n_channels, n_inner,
    stride_xn, stride_xc, stride_xi,
    eps,
    BLOCK_SIZE: tl.constexpr,
):
    # program (n, tile of inner positions); the norm runs over channels (dim 1)
    pid_n = tl.program_id(0).to(tl.int64)
    pid_i = tl.program_id(1)
    offs = pid_i * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offs < n_inner
    x_base = X_ptr + pid_n * stride_xn + offs.to(tl.int64) * stride_xi
    y_base = Y_ptr + pid_n * n_channels * n_inner + offs
    mean_square = _sum_of_squares(x_base, stride_xc, n_channels, mask, BLOCK_SIZE) / n_channels
    rstd = tl.math.rsqrt(mean_square + eps)
    tl.store(RSTD_ptr + pid_n * n_inner + offs, rstd, mask=mask)
    for c in range(0, n_channels):
        x = tl.load(x_base + c * stride_xc, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_base + c * n_inner, x * rstd, mask=mask)


def rms_norm_forward(X, eps):
    shape = X.shape
    n, c = shape[0], shape[1]
    X3 = X.reshape(n, c, -1)
    n_inner = X3.shape[2]
    Y = torch.empty((n, c, n_inner), dtype=X.dtype, device=X.device)
    RSTD = torch.empty((n, n_inner), dtype=torch.float32, device=X.device)
    BLOCK_SIZE = min(triton.next_power_of_2(n_inner), 256)
    grid = (n, triton.cdiv(n_inner, BLOCK_SIZE))
    _rms_norm_forward_kernel[grid](
        Y, X3, RSTD, c, n_inner,
        X3.stride(0), X3.stride(1), X3.stride(2),
        eps, BLOCK_SIZE=BLOCK_SIZE, num_warps=4,
    )
    return Y.view(shape), RSTD


class LigerRMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, X, eps):
        Y, RSTD = rms_norm_forward(X, eps)
        ctx.eps = eps
        ctx.save_for_backward(X, RSTD)
        return Y


class ModelNew(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LigerRMSNormFunction.apply(x, self.eps)
