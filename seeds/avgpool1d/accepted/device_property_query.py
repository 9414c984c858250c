import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def avg_pool1d_persistent_kernel(x_ptr, y_ptr, rows, L_in, L_out, stride, padding,
                                 KERNEL: tl.constexpr, BLOCK: tl.constexpr):
    # A persistent grid: one program per SM walks the tiles of every row.
    tiles = tl.cdiv(L_out, BLOCK)
    total = rows * tiles
    for t in range(tl.program_id(0), total, tl.num_programs(0)):
        row = (t // tiles).to(tl.int64)
        offs = (t % tiles) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < L_out
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for k in range(KERNEL):
            pos = offs * stride - padding + k
            acc += tl.load(x_ptr + row * L_in + pos, mask=mask & (pos >= 0) & (pos < L_in), other=0.0)
        tl.store(y_ptr + row * L_out + offs, acc / KERNEL, mask=mask)


def sm_count():
    device = torch.cuda.current_device()
    return triton.runtime.driver.active.utils.get_device_properties(device)["multiprocessor_count"]


def avg_pool1d(x, kernel_size, stride, padding):
    n, c, length = x.shape
    out_len = (length + 2 * padding - kernel_size) // stride + 1
    y = torch.empty((n, c, out_len), device=x.device, dtype=x.dtype)
    block = 128
    programs = min(sm_count() * 4, n * c * triton.cdiv(out_len, block))
    avg_pool1d_persistent_kernel[(programs,)](x, y, n * c, length, out_len, stride, padding,
                                              KERNEL=kernel_size, BLOCK=block)
    return y


class ModelNew(nn.Module):
    def __init__(self, kernel_size, stride=1, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return avg_pool1d(x.contiguous(), self.kernel_size, self.stride, self.padding)
