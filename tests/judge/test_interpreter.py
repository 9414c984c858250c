"""The CPU judge's faithfulness to a GPU: program order, every autotune config, which stages of
a GPU compile each specialisation gets (the whole compile check runs through the sandbox: the
wrong fixtures compile_* and the accepted ones), and the interpreter's work left out or looked up."""

import os
import subprocess
import sys

import torch

from builder.judge.interpreter import ConfigCheck, ProgramOrder, needs_gpu


def run_script(script: str, *args: str, timeout: int = 120, **env: str) -> str:
    """A script's stdout, run in a Python of its own (the interpreter is turned on before triton is
    first imported, and a patch of Triton's stays in that process)."""
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def planned(dims, launches):
    ProgramOrder.reseed(1234)
    orders = []
    for _ in range(launches):
        ProgramOrder._plan(*dims)
        orders.append(list(ProgramOrder.permutation))
    return orders


def test_the_first_launch_runs_backwards_and_later_ones_shuffled_by_the_seed():
    first, second, third = planned((4, 3, 2), 3)
    assert first == list(range(23, -1, -1))
    assert sorted(second) == sorted(third) == list(range(24))
    assert second != list(range(24)) and second != third
    assert planned((4, 3, 2), 3) == [first, second, third]  # the judge's seed decides


class _Tuner:
    def __init__(self, nargs, configs=("BLOCK: 32", "BLOCK: 64")):
        self.nargs, self.configs = nargs, list(configs)


def run_configs(check, tuner, calls):
    return [check.bench(tuner, call) for call in calls]


def test_every_config_runs_from_the_same_state_and_must_agree_with_the_first():
    notes = []
    x, y = torch.rand(8), torch.full((8,), float("nan"))
    tuner = _Tuner({"x_ptr": x, "y_ptr": y})
    check = ConfigCheck(1e-4, 1e-4, notes.append)
    starts = []

    def right():
        starts.append(y.clone())
        y.copy_(x * 2)

    def half():  # writes half the output: the rest keeps the starting state
        starts.append(y.clone())
        y[:4] = x[:4] * 2

    assert run_configs(check, tuner, [right, right]) == [[1.0, 1.0, 1.0]] * 2 and notes == []
    assert all(torch.isnan(s).all() for s in starts) and torch.isnan(y).all()  # restored after each
    tuner = _Tuner({"x_ptr": x, "y_ptr": y})
    run_configs(check, tuner, [right, half])
    assert len(notes) == 1 and notes[0].startswith("autotune config 2 (BLOCK: 64)")


def test_config_checks_stop_past_the_budget():
    notes, ran = [], []
    check = ConfigCheck(1e-4, 1e-4, notes.append, budget_s=0.0)
    check.spent = 1.0
    y = torch.zeros(2)
    run_configs(check, _Tuner({"y_ptr": y}), [lambda: ran.append(1), lambda: ran.append(2)])
    assert ran == [] and notes == []


def test_what_the_cpu_lacks_is_told_from_a_bug():
    assert needs_gpu(AssertionError("Torch not compiled with CUDA enabled"))
    assert needs_gpu(RuntimeError("0 active drivers ([]). There should only be one."))
    assert not needs_gpu(ValueError("shapes do not match"))



GRID_SCRIPT = """
import os
os.environ["TRITON_INTERPRET"] = "1"
import torch, triton, triton.language as tl
from builder.judge.interpreter import GRID_LIMITS, ProgramOrder
ProgramOrder.install()

@triton.jit
def touch(x_ptr):
    tl.store(x_ptr + tl.program_id(1) * 0, 1.0)

x = torch.zeros(1)
touch[(2, 3, 1)](x)
assert float(x[0]) == 1.0
try:
    touch[(1, GRID_LIMITS[1] + 1, 1)](x)
except ValueError as exc:
    print(exc)
"""


def test_a_grid_past_cudas_limits_fails_as_on_a_gpu():
    """The interpreter has no grid limits of its own: 65,536 programs on axis 1 would run there."""
    assert "axis 1 holds 65536 programs, past CUDA's limit of 65535" in run_script(GRID_SCRIPT)


def test_torch_cuda_device_of_a_cpu_tensor_changes_nothing_in_the_interpreter():
    import contextlib

    import torch

    from builder.judge.interpreter import _device_context

    calls = []
    device = _device_context(lambda where: calls.append(where) or "real")
    assert isinstance(device(torch.zeros(1).device), contextlib.nullcontext)
    assert isinstance(device(None), contextlib.nullcontext) and isinstance(device("cpu"), contextlib.nullcontext)
    assert device(0) == "real" and device("cuda:1") == "real" and calls == [0, "cuda:1"]


HELPER_SCRIPT = """
import sys
from builder.judge.interpreter import prepare_cpu
prepare_cpu()
import torch, triton, triton.language as tl
from triton.runtime import interpreter

assert interpreter.interpreter_builder.options.sanitize_overflow is False
assert interpreter.interpreter_builder.options.debug is False
patches = []
patch_lang = interpreter._patch_lang
interpreter._patch_lang = lambda fn: patches.append(fn.__name__) or patch_lang(fn)
sys.path.insert(0, sys.argv[1])
from kernels import core_kernel, wrap_add

x = torch.arange(4, dtype=torch.int32)
wrap_add[(4,)](x, 2**30)
assert x.tolist() == [-2**31 + 2 * i for i in range(4)], x  # 2**30 + 2**30 wraps in int32, as on a GPU
assert patches == ["wrap_add"], patches  # the launch patches the language; the helper's call does not
assert tl.core.is_builtin(tl.load)  # and the launch's patches are undone
core_kernel[(4,)](x)
assert x.tolist() == [4 * i for i in range(4)], x  # doubled, wrapping in int32
assert patches[1:] == ["core_kernel", "core_twice"], patches  # its helper's tl.core is patched once
"""

KERNELS = """
import triton
import triton.language as tl
from helpers import core_twice


@triton.jit
def twice(v):
    return v * 2


@triton.jit
def wrap_add(x_ptr, big):
    i = tl.program_id(0)
    tl.store(x_ptr + i, twice(tl.load(x_ptr + i)) + big + big)


@triton.jit
def core_kernel(x_ptr):
    i = tl.program_id(0)
    tl.store(x_ptr + i, core_twice(tl.load(x_ptr + i)))
"""

HELPERS = """
import triton
from triton.language import core


@triton.jit
def core_twice(v):  # reads triton.language.core, which the launch of a kernel that reads tl leaves as it is
    return core.mul(v, 2)
"""


def test_the_interpreter_skips_the_overflow_check_and_the_helpers_second_patch_and_computes_the_same(tmp_path):
    """Integer arithmetic wraps as on a GPU without the int64 re-check whose result nothing read,
    and a `@triton.jit` helper called from a kernel runs in the language its launch patched."""
    (tmp_path / "kernels.py").write_text(KERNELS)
    (tmp_path / "helpers.py").write_text(HELPERS)
    run_script(HELPER_SCRIPT, str(tmp_path))  # the script asserts


COMPILE_SCRIPT = """
from builder.judge.interpreter import prepare_cpu
prepare_cpu()
import torch, triton, triton.language as tl
from triton import knobs
from triton.backends.nvidia.compiler import CUDABackend
from builder.judge.gpu_compile import GpuCompiler

lowered = []
make_ttgir = CUDABackend.make_ttgir
CUDABackend.make_ttgir = staticmethod(lambda src, metadata, options, capability: (
    lowered.append(options.num_warps) or make_ttgir(src, metadata, options, capability)))

import sys
sys.path.insert(0, sys.argv[1])
from fill import fill

compiler = GpuCompiler()
x = torch.zeros(64)
def launch(**kwargs):
    compiler.record(fill, (x,), kwargs)
    finding = compiler.compile_pending()
    return None if finding is None else finding.detail

assert launch(BLOCK=16) is None and lowered == [4], lowered  # the first: frontend and backend
assert launch(BLOCK=32) is None and lowered == [4], lowered  # other constexprs: the frontend alone
assert launch(BLOCK=16, num_warps=8) is None and lowered == [4, 8], lowered  # other options: the backend again
assert knobs.runtime.add_stages_inspection_hook is None
detail = launch(BLOCK=64)
assert detail is not None and "does not compile for sm_90" in detail, detail  # the frontend refuses the break
print(detail)
"""

FILL = """
import triton
import triton.language as tl


@triton.jit
def fill(x_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    if BLOCK > 32:  # a branch the code generator sees only for these constexprs
        for i in range(4):
            if i == 2:
                break
    tl.store(x_ptr + offs, tl.zeros([BLOCK], tl.float32))
"""


def test_every_specialisation_goes_through_the_frontend_and_the_backend_once_per_kernel_and_options(tmp_path):
    """A GPU compile's refusal of a kernel's Python shows for whichever constexprs reach it, while
    NVIDIA's backend lowers a kernel once per argument types and launch options."""
    (tmp_path / "fill.py").write_text(FILL)
    # A fresh compile cache, as each sandbox has: a cached kernel would skip the backend's stages.
    out = run_script(COMPILE_SCRIPT, str(tmp_path), timeout=300, TRITON_CACHE_DIR=str(tmp_path / "cache"))
    assert "does not compile for sm_90" in out


DTYPE_SCRIPT = """
import os
os.environ["TRITON_INTERPRET"] = "1"
import triton.language as tl
from triton.runtime import interpreter
original = interpreter._get_np_dtype
from builder.judge.interpreter import prepare_cpu
prepare_cpu()
assert interpreter._get_np_dtype is not original
names = ["int1", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "bfloat16",
         "float32", "float64", "float8e5", "float8e4nv"]
scalars = [getattr(tl, name) for name in names]
types = scalars + [tl.pointer_type(t) for t in scalars] + [tl.block_type(t, [4, 2]) for t in scalars]
types += [tl.block_type(tl.pointer_type(tl.float32), [8])]
for _ in range(2):  # the second time from the table
    for t in types:
        assert interpreter._get_np_dtype(t) == original(t), t
for f in (original, interpreter._get_np_dtype):
    try:
        f(tl.void)
    except KeyError:
        pass
    else:
        raise AssertionError("a dtype with no NumPy twin must raise as before")
print(len(types))
"""


def test_the_dtype_table_answers_as_the_interpreters_own_function():
    assert run_script(DTYPE_SCRIPT).split() == ["46"]


SHARED_TYPES_SCRIPT = """
import copy, sys
from builder.judge.interpreter import prepare_cpu
prepare_cpu()
import torch, triton, triton.language as tl

bt = tl.block_type(tl.float32, [4, 8])
assert bt is tl.block_type(tl.float32, [tl.constexpr(4), 8]) and list(bt.shape) == [4, 8] and bt.numel == 32
assert bt is not tl.block_type(tl.float32, [8, 4]) and bt is not tl.block_type(tl.int32, [4, 8])
assert tl.block_type(tl.pointer_type(tl.float32), [4]) is not tl.block_type(tl.pointer_type(tl.float32, const=True), [4])
assert copy.copy(bt) == bt and copy.copy(bt) is not bt
for bad in ([3], [0], []):
    try:
        tl.block_type(tl.float32, bad)
    except (ValueError, TypeError):
        pass
    else:
        raise AssertionError(f"a block type of shape {bad} was made")
for t, shape, numel in ((tl.tensor(None, bt), [4, 8], 32), (tl.tensor(None, tl.block_type(tl.int8, [16])), [16], 16),
                        (tl.tensor(None, tl.float16), [], 1), (tl.tensor(None, copy.copy(bt)), [4, 8], 32)):
    assert [int(s) for s in t.shape] == shape and t.numel.value == numel and t.dtype is t.type.scalar, (t.shape, t.numel)


@triton.jit
def shapes(x_ptr, y_ptr, out_ptr, n, B: tl.constexpr):
    rows = tl.arange(0, B)[:, None]
    cols = tl.arange(0, B)[None, :]
    x = tl.load(x_ptr + rows * n + cols, mask=(rows < n) & (cols < n), other=0.0)  # [B, B] with [B, 1] and [1, B]
    y = tl.load(y_ptr + tl.arange(0, B), mask=tl.arange(0, B) < n, other=0.0)  # [B]
    wide = x * 2 + y  # [B, B] with [B]: a rank added, then broadcast
    same = wide - x.to(tl.float64).to(tl.float32)  # two blocks of the same dims
    lifted = same + rows.to(tl.int64) + 0.5  # int64 against float32, then a scalar
    tl.store(out_ptr + rows * n + cols, lifted, mask=(rows < n) & (cols < n))


x, y, out = torch.rand(6, 6), torch.rand(6), torch.zeros(6, 6)
shapes[(1,)](x, y, out, 6, B=8)
rows = torch.arange(6, dtype=torch.float32)[:, None]
expected = x * 2 + y - x + rows + 0.5
assert torch.allclose(out, expected), (out - expected).abs().max()
print("ok")
"""

OTHER_TENSOR_SCRIPT = """
import triton.language as tl
make = tl.tensor.__init__
def init(self, handle, type):
    make(self, handle, type)
    self.extra = True
tl.tensor.__init__ = init
from builder.judge.interpreter import prepare_cpu
prepare_cpu()
assert tl.tensor.__init__ is init  # a tensor of another make: made as it was
assert tl.tensor(None, tl.block_type(tl.float32, [2])).extra
print("ok")
"""


def test_block_types_and_tensor_shapes_are_made_once_and_compute_the_same():
    """One block type per element type and dims; a tensor's shape and numel from its type, as
    Triton's own tensor has them; broadcasts of equal, added and unit dims as before."""
    assert run_script(SHARED_TYPES_SCRIPT).strip() == "ok"


def test_a_tensor_that_sets_more_than_its_shape_is_made_as_before():
    assert run_script(OTHER_TENSOR_SCRIPT).strip() == "ok"
