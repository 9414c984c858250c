import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def cross_entropy_tile_kernel(
    x_ptr, t_ptr, part_ptr,
    n_rows, n_cols, ignore_index,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # A program takes BLOCK_M rows as a [BLOCK_M, BLOCK_N] tile.  When a
    # row fits in BLOCK_N columns (the benchmark's 4096 do) the loop runs
    # once: each row is one wide load, reduced in registers.  Longer rows
    # loop over column tiles with per-row online max / sum.
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * n_cols

    m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    s = tl.zeros((BLOCK_M,), tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        mask = row_ok[:, None] & (cols[None, :] < n_cols)
        x = tl.load(x_rows + cols[None, :], mask=mask, other=float("-inf"))
        m_new = tl.maximum(m, tl.max(x, 1))
        seen = m_new != float("-inf")
        alpha = tl.where(seen, tl.exp(m - m_new), 0.0)
        p = tl.where(seen, tl.sum(tl.exp(x - m_new[:, None]), 1), 0.0)
        s = s * alpha + p
        m = m_new

    # loss = log(sum) - (x[target] - max), as PyTorch computes it; targets
    # equal to ignore_index count for nothing and are not read.
    t = tl.load(t_ptr + rows, mask=row_ok, other=ignore_index)
    valid = row_ok & (t != ignore_index)
    x_t = tl.load(x_ptr + rows.to(tl.int64) * n_cols + t, mask=valid, other=0.0)
    loss = tl.where(valid, tl.log(s) - (x_t - m), 0.0)
    # One partial (loss sum, rows counted) per program instead of one per
    # row: a quarter of the small writes and of the final kernel's reads.
    tl.store(part_ptr + pid * 2, tl.sum(loss, 0))
    tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(tl.float32), 0))


@triton.jit
def mean_kernel(
    part_ptr, out_ptr, n_parts,
    BLOCK: tl.constexpr,
):
    # One program sums the partials in a fixed order (the same result on
    # every run), then divides by the rows counted.
    acc = tl.zeros((BLOCK,), tl.float32)
    cnt = tl.zeros((BLOCK,), tl.float32)
    for off in range(0, n_parts, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        mask = idx < n_parts
        acc += tl.load(part_ptr + idx * 2, mask=mask, other=0.0)
        cnt += tl.load(part_ptr + idx * 2 + 1, mask=mask, other=0.0)
    tl.store(out_ptr, tl.sum(acc, 0) / tl.sum(cnt, 0))


def triton_cross_entropy(predictions: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """F.cross_entropy(predictions, targets) for (N, C) float32 logits and (N,) class indices, mean
    over the rows whose target is not ignore_index; returns a 0-dim tensor like PyTorch."""
    assert predictions.is_cuda, "Input must be a CUDA tensor"
    assert predictions.dim() == 2 and targets.dim() == 1, "expected (N, C) logits and (N,) targets"
    assert predictions.dtype == torch.float32, "float32 logits expected"
    x = predictions.contiguous()
    t = targets.contiguous()
    n_rows, n_cols = x.shape

    # Tiles of about 8K floats (32 KB) on 8 warps: 32 floats per thread,
    # eight 128-bit loads in flight each.  Whole rows up to 8192 columns;
    # short rows are packed several to a tile (up to 64).
    ROW_TILE_CAP = 8192
    TILE_ELEMS = 8192
    BLOCK_N = min(triton.next_power_of_2(n_cols), ROW_TILE_CAP)
    BLOCK_M = max(1, min(64, TILE_ELEMS // BLOCK_N, triton.next_power_of_2(n_rows)))
    n_parts = triton.cdiv(n_rows, BLOCK_M)
    parts = torch.empty((n_parts * 2,), device=x.device, dtype=torch.float32)
    out = torch.empty((), device=x.device, dtype=torch.float32)
    cross_entropy_tile_kernel[(n_parts,)](x, t, parts, n_rows, n_cols, ignore_index,
                                          BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, num_warps=8)
    mean_kernel[(1,)](parts, out, n_parts, BLOCK=1024, num_warps=4)
    return out


class ModelNew(nn.Module):
    """Cross-entropy loss (mean over the batch) computed by Triton kernels."""

    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        return triton_cross_entropy(predictions, targets)
