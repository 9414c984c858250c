import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def rmsnorm_column_kernel(
    x_ptr, y_ptr,
    C, S, tiles_per_sample, eps,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
    WIDE: tl.constexpr,
):
    # Every channel fits the tile (C <= BLOCK_C): one program owns BLOCK_S spatial
    # positions of one sample and all C channels above them. The tile is loaded
    # once, reduced over channels in registers and normalised from the same
    # registers: each byte crosses the memory hierarchy once each way. The previous
    # stage swept the channels twice (sum of squares, then normalise) and read
    # every line a second time from L2; here the second sweep is gone.
    pid = tl.program_id(0)
    n = pid // tiles_per_sample
    s0 = (pid - n * tiles_per_sample) * BLOCK_S
    cs = tl.arange(0, BLOCK_C)
    ss = s0 + tl.arange(0, BLOCK_S)
    mask = (cs < C)[:, None] & (ss < S)[None, :]
    # Channel rows are S apart; each row segment of BLOCK_S floats is contiguous,
    # so the load is BLOCK_C coalesced bursts. The sample base is int64; offsets
    # within a sample are int32 unless C * S passes 2**31.
    base = n.to(tl.int64) * C * S
    if WIDE:
        offs = cs[:, None].to(tl.int64) * S + ss[None, :]
    else:
        offs = cs[:, None] * S + ss[None, :]
    x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
    ms = tl.sum(x * x, axis=0) / C
    r = 1.0 / tl.sqrt(ms + eps)
    tl.store(y_ptr + base + offs, x * r[None, :], mask=mask)


@triton.jit
def rmsnorm_looped_kernel(
    x_ptr, y_ptr,
    C, S, tiles_per_sample, eps,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    # More channels than a register tile holds (C > 256): the previous stage's two
    # sweeps over the channels, the first sums squares, the second normalises. A
    # program's column block (C x BLOCK_S floats) was just read, so the second
    # sweep hits L2.
    pid = tl.program_id(0)
    n = pid // tiles_per_sample
    s0 = (pid - n * tiles_per_sample) * BLOCK_S
    ss = s0 + tl.arange(0, BLOCK_S)
    smask = ss < S
    base = n.to(tl.int64) * C * S
    acc = tl.zeros([BLOCK_S], dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cs = c0 + tl.arange(0, BLOCK_C)
        mask = (cs < C)[:, None] & smask[None, :]
        offs = cs[:, None].to(tl.int64) * S + ss[None, :]
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
        acc += tl.sum(x * x, axis=0)
    r = 1.0 / tl.sqrt(acc / C + eps)
    for c0 in range(0, C, BLOCK_C):
        cs = c0 + tl.arange(0, BLOCK_C)
        mask = (cs < C)[:, None] & smask[None, :]
        offs = cs[:, None].to(tl.int64) * S + ss[None, :]
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + base + offs, x * r[None, :], mask=mask)


# Register tile: up to TILE_CAP elements per program (8192 = 32 floats per thread with
# 8 warps). The whole channel column is held when next_pow2(C) * 32 <= TILE_CAP,
# i.e. C <= 256; BLOCK_S is what is left of the tile, at most BLOCK_S_CAP (at the
# benchmark 64 x 128: 512-byte runs per channel row). On an H100 this reached 97%
# of the copy rate (5.11 ms against 5.81 for the previous stage's two sweeps);
# 64 x 256 tiles ran within 0.2%, 64 x 32 tiles 6% slower.
TILE_CAP = 8192
BLOCK_S_CAP = 128
MIN_BLOCK_S = 32
LOOP_BLOCK_C = 32
NUM_WARPS = 8


def triton_rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x ** 2, dim=1, keepdim=True) + eps) for x of shape (N, C, *)."""
    assert x.is_cuda, "Input must be a CUDA tensor"
    assert x.dim() >= 2, "expected (N, C, *)"
    x = x.contiguous()
    N, C = x.shape[0], x.shape[1]
    S = x.numel() // max(N * C, 1)
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y

    block_c = triton.next_power_of_2(C)
    block_s = min(BLOCK_S_CAP, triton.next_power_of_2(S))
    if block_c * min(block_s, MIN_BLOCK_S) <= TILE_CAP:
        block_s = min(block_s, TILE_CAP // block_c)
        tiles = triton.cdiv(S, block_s)
        rmsnorm_column_kernel[(N * tiles,)](
            x, y, C, S, tiles, eps,
            BLOCK_C=block_c, BLOCK_S=block_s, WIDE=C * S >= 2**31,
            num_warps=NUM_WARPS,
        )
    else:
        tiles = triton.cdiv(S, block_s)
        rmsnorm_looped_kernel[(N * tiles,)](
            x, y, C, S, tiles, eps,
            BLOCK_C=LOOP_BLOCK_C, BLOCK_S=block_s,
            num_warps=NUM_WARPS,
        )
    return y


class ModelNew(nn.Module):
    """RMS normalization over dim 1 with Triton kernels (num_features is kept but, as in the
    reference, the reduction runs over the input's own dim 1)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return triton_rms_norm(x, self.eps)
