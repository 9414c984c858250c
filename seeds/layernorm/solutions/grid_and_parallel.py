import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def layer_norm_partial_stats_kernel(
    x_ptr, mean_ptr, m2_ptr,
    n_cols, n_chunks, CHUNK,
    BLOCK: tl.constexpr,
):
    # One flat axis of n_rows * n_chunks programs.  The seed ran one program
    # per row: 16 programs for the benchmark, 116 of 132 SMs idle, each
    # streaming 16 MB alone.  Cutting every row into chunks gives 2,048
    # programs there.
    pid = tl.program_id(0)
    row = pid // n_chunks
    chunk = pid - row * n_chunks
    # Row base in int64: n_rows * n_cols can pass 2**31.
    x_row = x_ptr + row.to(tl.int64) * n_cols
    start = chunk * CHUNK
    end = tl.minimum(start + CHUNK, n_cols)

    # Mean and sum of squared deviations (M2) of the chunk.  Each tile is
    # centred on its own mean (exact two-pass in registers) and merged into
    # the running (count, mean, M2) with Chan's formula.  The seed's
    # E[x^2] - E[x]^2 cancels catastrophically once the mean is large
    # against the spread.
    count = tl.zeros((), tl.float32)
    mean = tl.zeros((), tl.float32)
    m2 = tl.zeros((), tl.float32)
    for off in range(start, end, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        mask = cols < end
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        n_t = tl.minimum(end - off, BLOCK).to(tl.float32)
        mean_t = tl.sum(x, 0) / n_t
        d = tl.where(mask, x - mean_t, 0.0)
        m2_t = tl.sum(d * d, 0)
        total = count + n_t
        delta = mean_t - mean
        mean = mean + delta * (n_t / total)
        m2 = m2 + m2_t + delta * delta * (count * n_t / total)
        count = total
    tl.store(mean_ptr + pid, mean)
    tl.store(m2_ptr + pid, m2)


@triton.jit
def layer_norm_apply_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, m2_ptr,
    n_cols, n_chunks, CHUNK, eps,
    BLOCK: tl.constexpr,
    CHUNKS_P2: tl.constexpr,
):
    # Same flat grid.  Each program merges its row's partials (a short
    # vector from L2), then normalizes its own chunk.
    pid = tl.program_id(0)
    row = pid // n_chunks
    chunk = pid - row * n_chunks
    parts = tl.arange(0, CHUNKS_P2)
    pmask = parts < n_chunks
    # Every chunk holds CHUNK elements but the last: the counts need no
    # storage (and stay exact: no float count past 2**24 is summed).
    n_i = tl.where(pmask, tl.minimum(n_cols - parts * CHUNK, CHUNK), 0).to(tl.float32)
    mean_i = tl.load(mean_ptr + row * n_chunks + parts, mask=pmask, other=0.0)
    m2_i = tl.load(m2_ptr + row * n_chunks + parts, mask=pmask, other=0.0)
    mean = tl.sum(n_i * mean_i, 0) / n_cols
    d = tl.where(pmask, mean_i - mean, 0.0)
    var = (tl.sum(m2_i, 0) + tl.sum(n_i * d * d, 0)) / n_cols
    # Biased variance and eps inside the square root, as nn.LayerNorm.
    rstd = 1.0 / tl.sqrt(var + eps)

    x_row = x_ptr + row.to(tl.int64) * n_cols
    y_row = y_ptr + row.to(tl.int64) * n_cols
    start = chunk * CHUNK
    end = tl.minimum(start + CHUNK, n_cols)
    for off in range(start, end, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        mask = cols < end
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        w = tl.load(w_ptr + cols, mask=mask, other=0.0)
        b = tl.load(b_ptr + cols, mask=mask, other=0.0)
        tl.store(y_row + cols, (x - mean) * rstd * w + b, mask=mask)


def triton_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """F.layer_norm(x, weight.shape, weight, bias, eps) for float32 tensors."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dtype == torch.float32, "float32 input expected"
    n_cols = weight.numel()
    assert tuple(x.shape[x.dim() - weight.dim():]) == tuple(weight.shape), "trailing dims must match"
    xc = x.contiguous()
    w = weight.contiguous()
    b = bias.contiguous()
    y = torch.empty_like(xc)
    if xc.numel() == 0:
        return y
    n_rows = xc.numel() // n_cols

    # Chunks of 32 tiles of 1024: 2,048 programs for the benchmark's 16 rows
    # of 4.2M.  Very long rows take longer chunks so a row's partials stay a
    # short vector (at most 1024).
    BLOCK = 1024
    CHUNK = BLOCK * 32
    while triton.cdiv(n_cols, CHUNK) > 1024:
        CHUNK *= 2
    n_chunks = triton.cdiv(n_cols, CHUNK)
    mean_part = torch.empty((n_rows * n_chunks,), device=x.device, dtype=torch.float32)
    m2_part = torch.empty((n_rows * n_chunks,), device=x.device, dtype=torch.float32)
    grid = (n_rows * n_chunks,)
    layer_norm_partial_stats_kernel[grid](xc, mean_part, m2_part, n_cols, n_chunks, CHUNK, BLOCK=BLOCK,
                                          num_warps=4)
    layer_norm_apply_kernel[grid](xc, w, b, y, mean_part, m2_part, n_cols, n_chunks, CHUNK, eps, BLOCK=BLOCK,
                                  CHUNKS_P2=triton.next_power_of_2(n_chunks), num_warps=4)
    return y


class ModelNew(nn.Module):
    """nn.LayerNorm(normalized_shape) (eps 1e-5, affine) computed by Triton kernels."""

    def __init__(self, normalized_shape: tuple):
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = 1e-5
        # Same names and shapes as the reference's ln.weight / ln.bias.
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_layer_norm(x, self.weight, self.bias, self.eps)
