import torch
import torch.nn as nn
import triton
import triton.language as tl

#: Candidate tile shapes, fastest first after sorting; only the first is used.
CANDIDATES = sorted([triton.Config({"BLOCK": b}, num_warps=w) for b, w in ((512, 4), (128, 2), (256, 4))],
                    key=lambda cfg: cfg.kwargs["BLOCK"])
BLOCK_CAP = 4096


@triton.autotune(configs=CANDIDATES[:1], key=["L_out"])
@triton.jit
def avg_pool1d_sorted_kernel(x_ptr, y_ptr, L_in, L_out, stride, padding,
                             KERNEL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < L_out
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for k in range(KERNEL):
        pos = offs * stride - padding + k
        acc += tl.load(x_ptr + row * L_in + pos, mask=mask & (pos >= 0) & (pos < L_in), other=0.0)
    tl.store(y_ptr + row * L_out + offs, acc / KERNEL, mask=mask)


def tile_order(out_len):
    sizes = [cfg.kwargs["BLOCK"] for cfg in CANDIDATES]
    sizes.sort(reverse=True)
    values = [s for s in sizes if s <= min(BLOCK_CAP, triton.next_power_of_2(out_len))]
    values.sort(key=lambda s: -s)
    return values


def avg_pool1d(x, kernel_size, stride, padding):
    n, c, length = x.shape
    out_len = (length + 2 * padding - kernel_size) // stride + 1
    y = torch.empty((n, c, out_len), device=x.device, dtype=x.dtype)
    grid = lambda meta: (n * c, triton.cdiv(out_len, meta["BLOCK"]))
    avg_pool1d_sorted_kernel[grid](x, y, length, out_len, stride, padding, KERNEL=kernel_size)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=1, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.order = tile_order(4096)

    def forward(self, x):
        return avg_pool1d(x.contiguous(), self.kernel_size, self.stride, self.padding)
