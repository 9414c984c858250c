import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def layer_norm_partial_stats_kernel(
    x_ptr, mean_ptr, m2_ptr,
    n_rows, n_cols, n_chunks,
    BLOCK: tl.constexpr,
    TILES: tl.constexpr,
):
    # One flat axis of n_rows * n_chunks programs; a chunk is TILES tiles of
    # BLOCK.  Chunk-major order (the row index varies fastest), as in the
    # apply kernel below: the programs that run last read the last chunks.
    pid = tl.program_id(0)
    chunk = pid // n_rows
    row = pid - chunk * n_rows
    # Row base in int64: n_rows * n_cols can pass 2**31.
    x_row = x_ptr + row.to(tl.int64) * n_cols
    start = chunk * (BLOCK * TILES)
    end = tl.minimum(start + BLOCK * TILES, n_cols)

    # Mean and sum of squared deviations (M2) of the chunk.  Each tile is
    # centred on its own mean (exact two-pass in registers) and merged into
    # the running (count, mean, M2) with Chan's formula.  The seed's
    # E[x^2] - E[x]^2 cancels catastrophically once the mean is large
    # against the spread.
    count = tl.zeros((), tl.float32)
    mean = tl.zeros((), tl.float32)
    m2 = tl.zeros((), tl.float32)
    for i in tl.static_range(TILES):
        off = start + i * BLOCK
        cols = off + tl.arange(0, BLOCK)
        mask = cols < end
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        # A tile past the row's end counts 0 elements and changes nothing
        # (the max() keeps 0 / 0 out).
        n_t = tl.maximum(tl.minimum(end - off, BLOCK), 0).to(tl.float32)
        mean_t = tl.sum(x, 0) / tl.maximum(n_t, 1.0)
        d = tl.where(mask, x - mean_t, 0.0)
        m2_t = tl.sum(d * d, 0)
        total = tl.maximum(count + n_t, 1.0)
        delta = mean_t - mean
        mean = mean + delta * (n_t / total)
        m2 = m2 + m2_t + delta * delta * (count * n_t / total)
        count = count + n_t
    tl.store(mean_ptr + row * n_chunks + chunk, mean)
    tl.store(m2_ptr + row * n_chunks + chunk, m2)


@triton.jit
def layer_norm_apply_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, m2_ptr,
    n_rows, n_cols, n_chunks, eps,
    BLOCK: tl.constexpr,
    TILES: tl.constexpr,
    CHUNKS_P2: tl.constexpr,
):
    # Two changes to the order of the work, none to what it computes:
    # - chunk-major (the row index varies fastest): the n_rows programs that
    #   need the same chunk of weight and bias run side by side, so those
    #   are read from DRAM once (not once per row: 16x the 33.5 MB of the
    #   affine parameters for the benchmark) and then hit L2;
    # - reversed: the first programs take the last chunks, which the stats
    #   kernel read last and which are still in L2 (up to its size, ~50 MB
    #   of the 268 MB of x, are not read from DRAM a second time).
    pid = tl.num_programs(0) - 1 - tl.program_id(0)
    chunk = pid // n_rows
    row = pid - chunk * n_rows
    parts = tl.arange(0, CHUNKS_P2)
    pmask = parts < n_chunks
    CHUNK: tl.constexpr = BLOCK * TILES
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
    for i in tl.static_range(TILES):
        cols = start + i * BLOCK + tl.arange(0, BLOCK)
        mask = cols < n_cols
        # Last read of x and y never read back: evict first.  The weight and
        # bias chunk is read by the n_rows programs of this chunk: keep it.
        x = tl.load(x_row + cols, mask=mask, other=0.0, eviction_policy="evict_first")
        w = tl.load(w_ptr + cols, mask=mask, other=0.0, eviction_policy="evict_last")
        b = tl.load(b_ptr + cols, mask=mask, other=0.0, eviction_policy="evict_last")
        tl.store(y_row + cols, (x - mean) * rstd * w + b, mask=mask, eviction_policy="evict_first")


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

    # Tiles of 4096 (8 warps, 16 floats per thread: four 128-bit loads per
    # thread per tile), 4 tiles per program: 64 KB of x per program and
    # 4,096 programs for the benchmark (31 per SM, against 2,048 programs of
    # 1024-wide tiles before), with fewer cross-warp reductions per byte.
    # Very long rows take more tiles per program so a row's partials stay a
    # short vector (at most 1024); short rows (normalized_shape of a few
    # hundred elements) get one tile of their own size, not 16K masked lanes.
    MAX_BLOCK = 4096
    BLOCK = min(MAX_BLOCK, triton.next_power_of_2(n_cols))
    TILES = min(4, triton.cdiv(n_cols, BLOCK))
    while triton.cdiv(n_cols, BLOCK * TILES) > 1024:
        TILES *= 2
    n_chunks = triton.cdiv(n_cols, BLOCK * TILES)
    mean_part = torch.empty((n_rows * n_chunks,), device=x.device, dtype=torch.float32)
    m2_part = torch.empty((n_rows * n_chunks,), device=x.device, dtype=torch.float32)
    grid = (n_rows * n_chunks,)
    layer_norm_partial_stats_kernel[grid](xc, mean_part, m2_part, n_rows, n_cols, n_chunks, BLOCK=BLOCK,
                                          TILES=TILES, num_warps=8)
    layer_norm_apply_kernel[grid](xc, w, b, y, mean_part, m2_part, n_rows, n_cols, n_chunks, eps, BLOCK=BLOCK,
                                  TILES=TILES, CHUNKS_P2=triton.next_power_of_2(n_chunks), num_warps=8)
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
