import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def cross_entropy_fused_kernel(
    x_ptr, t_ptr, part_ptr, ticket_ptr, out_ptr,
    n_rows, n_cols, ignore_index, n_parts,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    PARTS_BLOCK: tl.constexpr,
):
    # Tiles as in the previous stage: BLOCK_M rows of up to BLOCK_N columns,
    # one wide load per row when it fits.
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    x_rows = x_ptr + rows.to(tl.int64)[:, None] * n_cols
    t = tl.load(t_ptr + rows, mask=row_ok, other=ignore_index)
    valid = row_ok & (t != ignore_index)

    m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    s = tl.zeros((BLOCK_M,), tl.float32)
    x_t = tl.zeros((BLOCK_M,), tl.float32)
    for off in range(0, n_cols, BLOCK_N):
        cols = off + tl.arange(0, BLOCK_N)
        mask = row_ok[:, None] & (cols[None, :] < n_cols)
        # Every logit is read exactly once: let its lines leave L2 first so
        # they do not push out the partials and targets (evict_first).
        x = tl.load(x_rows + cols[None, :], mask=mask, other=float("-inf"), eviction_policy="evict_first")
        # The target's logit is taken from the tile already in registers
        # instead of a second, dependent load from memory.
        hit = cols[None, :] == t[:, None]
        x_t += tl.sum(tl.where(hit, x, 0.0), 1)
        m_new = tl.maximum(m, tl.max(x, 1))
        seen = m_new != float("-inf")
        alpha = tl.where(seen, tl.exp(m - m_new), 0.0)
        p = tl.where(seen, tl.sum(tl.exp(x - m_new[:, None]), 1), 0.0)
        s = s * alpha + p
        m = m_new

    loss = tl.where(valid, tl.log(s) - (x_t - m), 0.0)
    tl.store(part_ptr + pid * 2, tl.sum(loss, 0))
    tl.store(part_ptr + pid * 2 + 1, tl.sum(valid.to(tl.float32), 0))

    # One launch instead of two: the program that finishes last (its ticket
    # is n_parts - 1) sums every partial, in a fixed order, so the result is
    # the same on every run.  The barrier and the acq_rel ticket make each
    # program's partial visible before its ticket counts; .cg reads the
    # partials from L2, where the other SMs wrote them.
    tl.debug_barrier()
    ticket = tl.atomic_add(ticket_ptr, 1, sem="acq_rel")
    if ticket == n_parts - 1:
        acc = tl.zeros((PARTS_BLOCK,), tl.float32)
        cnt = tl.zeros((PARTS_BLOCK,), tl.float32)
        for off in range(0, n_parts, PARTS_BLOCK):
            idx = off + tl.arange(0, PARTS_BLOCK)
            pmask = idx < n_parts
            acc += tl.load(part_ptr + idx * 2, mask=pmask, other=0.0, cache_modifier=".cg")
            cnt += tl.load(part_ptr + idx * 2 + 1, mask=pmask, other=0.0, cache_modifier=".cg")
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
    ticket = torch.zeros((1,), device=x.device, dtype=torch.int32)
    out = torch.empty((), device=x.device, dtype=torch.float32)
    cross_entropy_fused_kernel[(n_parts,)](x, t, parts, ticket, out, n_rows, n_cols, ignore_index, n_parts,
                                           BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, PARTS_BLOCK=1024, num_warps=8)
    return out


class ModelNew(nn.Module):
    """Cross-entropy loss (mean over the batch) computed by Triton kernels."""

    def __init__(self):
        super().__init__()

    def forward(self, predictions, targets):
        return triton_cross_entropy(predictions, targets)
