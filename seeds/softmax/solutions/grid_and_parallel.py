import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def softmax_partial_stats_kernel(
    x_ptr, m_ptr, s_ptr,
    n_cols, n_chunks, CHUNK,
    BLOCK: tl.constexpr,
):
    # One flat axis of n_rows * n_chunks programs: a row is cut into chunks,
    # one program each, so a short batch still fills every SM and a long row
    # is read by many SMs at once (axis 0 takes 2**31 - 1 programs; the other
    # axes stop at 65535).  The seed ran one program per row through three
    # kernels (max, sum, output); here the max and the sum come from one
    # online pass over x.
    pid = tl.program_id(0)
    row = pid // n_chunks
    chunk = pid - row * n_chunks
    # Row base in int64: n_rows * n_cols can pass 2**31.
    x_row = x_ptr + row.to(tl.int64) * n_cols
    start = chunk * CHUNK
    end = tl.minimum(start + CHUNK, n_cols)

    # Online max / sum of exp over the chunk, one tile at a time: when the
    # running max grows, the sum so far is rescaled by exp(m_old - m_new).
    # While every value seen is -inf the max stays -inf and the sum 0 (the
    # where() keeps exp(-inf - -inf) = NaN out of it).
    m = tl.full((), float("-inf"), tl.float32)
    s = tl.zeros((), tl.float32)
    for off in range(start, end, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        x = tl.load(x_row + cols, mask=cols < end, other=float("-inf"))
        m_new = tl.maximum(m, tl.max(x, 0))
        seen = m_new != float("-inf")
        alpha = tl.where(seen, tl.exp(m - m_new), 0.0)
        p = tl.where(seen, tl.sum(tl.exp(x - m_new), 0), 0.0)
        s = s * alpha + p
        m = m_new
    tl.store(m_ptr + row * n_chunks + chunk, m)
    tl.store(s_ptr + row * n_chunks + chunk, s)


@triton.jit
def softmax_output_kernel(
    x_ptr, y_ptr, m_ptr, s_ptr,
    n_cols, n_chunks, CHUNK,
    BLOCK: tl.constexpr,
    CHUNKS_P2: tl.constexpr,
):
    # Same flat grid.  Each program first merges its row's partials (a few
    # floats, from L2), then writes its own chunk.
    pid = tl.program_id(0)
    row = pid // n_chunks
    chunk = pid - row * n_chunks
    parts = tl.arange(0, CHUNKS_P2)
    pmask = parts < n_chunks
    mi = tl.load(m_ptr + row * n_chunks + parts, mask=pmask, other=float("-inf"))
    si = tl.load(s_ptr + row * n_chunks + parts, mask=pmask, other=0.0)
    row_max = tl.max(mi, 0)
    # A chunk of -inf only (or padding) adds nothing.  A row of -inf only
    # keeps row_max = -inf and gives NaN below, as PyTorch does; a NaN or
    # +inf anywhere makes the row NaN through the sum, as in PyTorch.
    row_sum = tl.sum(tl.where(mi != float("-inf"), si * tl.exp(mi - row_max), 0.0), 0)
    inv_sum = 1.0 / row_sum

    x_row = x_ptr + row.to(tl.int64) * n_cols
    y_row = y_ptr + row.to(tl.int64) * n_cols
    start = chunk * CHUNK
    end = tl.minimum(start + CHUNK, n_cols)
    for off in range(start, end, BLOCK):
        cols = off + tl.arange(0, BLOCK)
        mask = cols < end
        x = tl.load(x_row + cols, mask=mask, other=0.0)
        tl.store(y_row + cols, tl.exp(x - row_max) * inv_sum, mask=mask)


def _chunking(n_cols: int, block: int):
    """Columns per program: 32 tiles by default, more for very long rows so
    that the partials of one row stay a short vector (at most 1024)."""
    chunk = block * 32
    while triton.cdiv(n_cols, chunk) > 1024:
        chunk *= 2
    n_chunks = triton.cdiv(n_cols, chunk)
    return chunk, n_chunks


def triton_softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """torch.softmax(x, dim) for float32 x of any rank."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dtype == torch.float32, "float32 input expected"
    dim = dim % x.dim()
    last = x.dim() - 1
    # The kernels reduce along contiguous rows: move `dim` last (a copy only
    # when it is not last already or x is a strided view).
    xt = x.transpose(dim, last) if dim != last else x
    xt = xt.contiguous()
    y = torch.empty_like(xt)
    n_cols = xt.shape[-1]
    if xt.numel() == 0:
        return y.transpose(dim, last) if dim != last else y
    n_rows = xt.numel() // n_cols

    BLOCK = 1024
    CHUNK, n_chunks = _chunking(n_cols, BLOCK)
    m_part = torch.empty((n_rows, n_chunks), device=x.device, dtype=torch.float32)
    s_part = torch.empty((n_rows, n_chunks), device=x.device, dtype=torch.float32)
    grid = (n_rows * n_chunks,)
    softmax_partial_stats_kernel[grid](xt, m_part, s_part, n_cols, n_chunks, CHUNK, BLOCK=BLOCK, num_warps=4)
    softmax_output_kernel[grid](xt, y, m_part, s_part, n_cols, n_chunks, CHUNK, BLOCK=BLOCK,
                                CHUNKS_P2=triton.next_power_of_2(n_chunks), num_warps=4)
    return y.transpose(dim, last) if dim != last else y


class ModelNew(nn.Module):
    """Softmax over dim 1 computed by Triton kernels."""

    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_softmax(x, 1)
