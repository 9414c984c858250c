"""The CPU judge: Triton's interpreter, made as faithful to a GPU as it can be.

- `prepare_cpu` turns the interpreter on (before triton is first imported), lets every tensor
  claim to be on CUDA (seed kernels assert `x.is_cuda`), and runs a grid's programs in an order
  drawn from the judge's seed instead of one after another: the first launch of a session runs
  them backwards, later ones shuffled, so a kernel whose programs depend on each other's writes
  (a race on a GPU) shows. A grid past CUDA's limits on an axis (65,535 programs on axes 1
  and 2) raises, as the launch fails on a GPU. It also leaves out work of the interpreter whose
  result nothing reads (`_skip_dead_work`), looks up a dtype's NumPy twin in a table made
  once (`_dtype_table`), and makes each block type, and each tensor's shape, once
  (`_shared_types`).
- `Deadline` ends a call whose programs run past the seconds the judge gave it (PastDeadline):
  the interpreter runs a GPU's thousands of programs one after another, so a drawn check that a
  GPU runs in microseconds can take minutes here (a long plane, one program per output row, a
  window of 121 taps in each).
- `ConfigCheck` is what an autotuner benchmarks with on the CPU: it runs each config once on the
  launch's own arguments, each from the same starting state, and holds every config's results to
  the first one's. The autotuner then takes the first config (all tie), whose output the judge
  compares with its reference; so every config is checked, not only the first.
- `needs_gpu` tells an error of the CPU environment (no CUDA, no active Triton driver, the
  interpreter unable to run a construct) from an error of the code.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Words of an exception raised where the CPU lacks what a GPU has: CUDA in torch, an active
#: Triton driver.
NO_GPU_SIGNS = ("torch not compiled with cuda enabled", "active drivers", "found no nvidia driver",
                "no cuda gpus are available")


def prepare_cpu() -> None:
    """Run Triton kernels on CPU tensors: the interpreter, `is_cuda` reporting True,
    `torch.cuda.device` of a CPU tensor's device a no-op, programs in a seeded order.
    TRITON_INTERPRET must be set before triton is first imported."""
    os.environ["TRITON_INTERPRET"] = "1"
    import torch

    torch.Tensor.is_cuda = property(lambda self: True)  # type: ignore[method-assign, assignment]
    torch.cuda.device = _device_context(torch.cuda.device)  # type: ignore[assignment]
    ProgramOrder.install()
    _skip_dead_work()
    _dtype_table()
    _shared_types()


def _skip_dead_work() -> None:
    """Leave out two parts of the interpreter's work whose results nothing reads.

    - The overflow check of integer arithmetic: Triton's semantic layer computes each add, sub
      and mul again in int64 and compares it with the type's range, then drops the result
      unless `debug` is on (device_assert); a GPU compile drops it as dead code. In the
      interpreter it ran for every op of every program: 13% of a verification's time.
    - Patching `triton.language` again at each call of a `@triton.jit` helper from a kernel:
      the kernel's launch patched those modules already, and finding that out by walking every
      member of `tl`, `tl.tensor` and `tl.math` took another 11%. A helper whose modules are
      not patched yet (one that reads `tl.core` where its kernel read `tl`) is patched as before.
    """
    import dataclasses
    import inspect

    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.interpreter_builder
    if not builder.options.debug:
        builder.options = dataclasses.replace(builder.options, sanitize_overflow=False)
    device_call = interpreter.InterpretedFunction.__call__

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        langs = [v for v in self.fn.__globals__.values() if inspect.ismodule(v) and v in (tl, tl.core)]
        if not langs or any(tl.core.is_builtin(getattr(lang, "load", None)) for lang in langs):
            return device_call(self, *args, **kwargs)
        try:
            return self.rewrite()(*args, **kwargs)
        except Exception as exc:
            raise interpreter.InterpreterError(repr(exc)) from exc

    interpreter.InterpretedFunction.__call__ = call  # type: ignore[method-assign]


def _dtype_table() -> None:
    """The interpreter's `_get_np_dtype`, whose answer for a dtype never changes, from a table
    filled by the interpreter's own function: that function builds a dict of nineteen NumPy
    dtypes at every call, and it is called for nearly every op of every program (12% of a
    profile of an avg-pool 2D verification whose programs each do little work). Dtypes are
    equal by name."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    compute = interpreter._get_np_dtype
    pointer = np.dtype(np.uint64)
    table: dict[str, Any] = {}

    def get(tt_dtype: Any) -> Any:
        scalar = tt_dtype.element_ty if isinstance(tt_dtype, tl.block_type) else tt_dtype
        if isinstance(scalar, tl.pointer_type):
            return pointer
        found = table.get(scalar.name)
        if found is None:
            found = table[scalar.name] = compute(scalar)
        return found

    interpreter._get_np_dtype = get


def _shared_types() -> None:
    """Make each block type once and derive a tensor's shape from its type once, where the
    interpreter made them anew for every op of every program (a block type's shape is one of
    Triton's tuples, whose own type is built from each of its values), and tell at once that a
    broadcast of two blocks of the same dims, the most common, has nothing to do. Together they
    take nearly half off the time the interpreter spends running the reference solutions' kernels.

    - `block_type(element_ty, shape)` returns the one block type of that element type and those
      dims, made by Triton's own `__init__` the first time (so a shape Triton refuses is
      refused as before). Types are values: nothing changes one once made.
    - A tensor of a block type takes its `shape` and `numel` from the first tensor of that type;
      one of a scalar type from the first scalar tensor (its shape is `()` whatever the type).
      Where Triton's tensor sets other attributes than these (another Triton version), tensors
      are made as before.
    - The interpreter's broadcast of two blocks whose dims are equal returns them as they are,
      which is what Triton's does after comparing the dims one by one.
    """
    import triton.language as tl
    from triton.runtime import interpreter

    core = tl.core
    block_type, tensor = core.block_type, core.tensor
    made: dict[Any, Any] = {}
    dims_of: dict[int, tuple[Any, tuple[int, ...]]] = {}  # id(a made type's shape) -> (the shape, its dims)
    make_block = block_type.__init__

    def new(cls: Any, element_ty: Any = _ABSENT, shape: Any = _ABSENT) -> Any:
        if cls is not block_type or shape is _ABSENT:  # a subclass, or a copy being made
            return object.__new__(cls)
        known = dims_of.get(id(shape))  # most often another made type's shape (a cast, a splat)
        dims = known[1] if known is not None and known[0] is shape else tuple(core._unwrap_shape(shape))
        key = (type(element_ty), str(element_ty), getattr(element_ty, "address_space", None), dims)
        found = made.get(key)
        if found is None:
            found = object.__new__(cls)
            make_block(found, element_ty, shape)
            made[key] = found
            dims_of[id(found.shape)] = (found.shape, dims)
        return found

    def init(self: Any, element_ty: Any = _ABSENT, shape: Any = _ABSENT) -> None:
        if "name" not in vars(self):  # not made by `new`
            make_block(self, element_ty, shape)

    block_type.__new__, block_type.__init__ = new, init

    make_tensor = tensor.__init__
    probe = object.__new__(tensor)
    make_tensor(probe, None, block_type(tl.float32, [2]))
    if set(vars(probe)) == {"handle", "type", "dtype", "shape", "numel"}:
        shapes: dict[int, tuple[Any, Any, Any]] = {}  # id(block type) -> (the type, shape, numel)
        scalar: list[Any] = []

        def tensor_init(self: Any, handle: Any, type: Any) -> None:
            if type.is_block():
                found = shapes.get(id(type))
                if found is None or found[0] is not type:
                    make_tensor(self, handle, type)
                    shapes[id(type)] = (type, self.shape, self.numel)
                    return
                _, self.shape, self.numel = found
            elif not scalar:
                make_tensor(self, handle, type)
                scalar.extend((self.shape, self.numel))
                return
            else:
                self.shape, self.numel = scalar
            self.handle, self.type, self.dtype = handle, type, type.scalar

        tensor.__init__ = tensor_init

    semantic = interpreter.interpreter_semantic
    broadcast = semantic.broadcast_impl_value

    def same_dims_first(lhs: Any, rhs: Any) -> Any:
        if lhs.type.is_block() and rhs.type.is_block() and list(lhs.type.shape) == list(rhs.type.shape):
            return lhs, rhs
        return broadcast(lhs, rhs)

    semantic.broadcast_impl_value = same_dims_first


_ABSENT = object()


def _device_context(real: Any) -> Any:
    """torch.cuda.device that, for a CPU tensor's device (or its index, None), changes nothing,
    as it changes nothing on a GPU for the device already current."""
    import contextlib

    import torch

    def device(where: Any) -> Any:
        if where is None or (isinstance(where, (torch.device, str)) and torch.device(where).type == "cpu"):
            return contextlib.nullcontext()
        return real(where)

    return device


#: CUDA's limits on a grid's three axes: the interpreter has none of its own.
GRID_LIMITS = (2**31 - 1, 65535, 65535)


class ProgramOrder:
    """Visits a grid's programs in a permuted order: the interpreter's loop asks for program
    (x, y, z) in row-major order, and the builder is told another one, each exactly once."""

    seed = int.from_bytes(os.urandom(8), "little")  # the judge's seed replaces it (`reseed`)
    launches = 0
    permutation: list[int] = []
    dims = (1, 1, 1)

    @classmethod
    def install(cls) -> None:
        from triton.runtime.interpreter import interpreter_builder

        set_dim, set_idx = interpreter_builder.set_grid_dim, interpreter_builder.set_grid_idx

        def set_grid_dim(nx: int, ny: int, nz: int) -> None:
            for axis, (size, limit) in enumerate(zip((nx, ny, nz), GRID_LIMITS)):
                if size > limit:
                    raise ValueError(f"the grid's axis {axis} holds {size} programs, past CUDA's limit of {limit} "
                                     "for that axis: the launch fails on a GPU")
            cls._plan(nx, ny, nz)
            set_dim(nx, ny, nz)

        def set_grid_idx(x: int, y: int, z: int) -> None:
            Deadline.check()
            _, ny, nz = cls.dims
            index = cls.permutation[(x * ny + y) * nz + z]
            set_idx(index // (ny * nz), index // nz % ny, index % nz)

        interpreter_builder.set_grid_dim = set_grid_dim
        interpreter_builder.set_grid_idx = set_grid_idx

    @classmethod
    def reseed(cls, seed: int) -> None:
        cls.seed, cls.launches = seed, 0

    @classmethod
    def _plan(cls, nx: int, ny: int, nz: int) -> None:
        count = nx * ny * nz
        order = list(range(count))
        if cls.launches == 0:
            order.reverse()
        else:
            random.Random(cls.seed * 1_000_003 + cls.launches).shuffle(order)
        cls.launches += 1
        cls.dims, cls.permutation = (nx, ny, nz), order


class PastDeadline(BaseException):
    """A call ran past its Deadline. A BaseException: code under test that catches Exception
    does not swallow it."""


class Deadline:
    """The time by which the current call's programs must be done, checked before each program."""

    at: float | None = None

    @classmethod
    def start(cls, seconds: float | None) -> None:
        cls.at = None if seconds is None else time.monotonic() + seconds

    @classmethod
    def check(cls) -> None:
        if cls.at is not None and time.monotonic() > cls.at:
            cls.at = None
            raise PastDeadline("the call's programs ran past the time the judge gave it")


def needs_gpu(exc: BaseException) -> bool:
    """Whether `exc` says the CPU lacks the GPU the code was written for (not a bug of the code)."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(sign in text for sign in NO_GPU_SIGNS)


def in_interpreter(exc: BaseException) -> bool:
    """Whether `exc` was raised while the interpreter ran a kernel's body."""
    from triton.runtime.errors import InterpreterError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InterpreterError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


#: Seconds a sandbox spends at most running autotune configs beyond the first (checks of configs
#: start only while under it; the first config is always checked, it is the one the autotuner runs).
CONFIG_CHECK_BUDGET_S = 60.0


@dataclass
class _Round:
    """One tuning: the arguments it runs on, their starting state and each config's results."""

    nargs: dict[str, Any]
    tensors: list[Any]
    start: list[Any]
    first: list[Any] = field(default_factory=list)
    count: int = 0


class ConfigCheck:
    """A CPU benchmarker for autotuners: every config runs once on the launch's arguments from the
    same starting state, and its results must match the first config's within the tolerances.
    Every config ties, so the autotuner then runs the first one, which the judge checks."""

    def __init__(self, atol: float, rtol: float, note: Callable[[str], None],
                 budget_s: float = CONFIG_CHECK_BUDGET_S) -> None:
        self.atol, self.rtol, self.note, self.budget_s = atol, rtol, note, budget_s
        self.spent = 0.0
        self.round: _Round | None = None
        self.skipped: Any = None  # the arguments of a tuning begun over budget

    def bench(self, autotuner: Any, kernel_call: Callable[[], Any]) -> list[float]:
        """Run one config (the autotuner calls this once per config, in order)."""
        import torch

        nargs = autotuner.nargs
        if self.round is None or self.round.nargs is not nargs:
            if self.spent > self.budget_s or self.skipped is nargs:
                self.skipped = nargs
                return [1.0, 1.0, 1.0]
            tensors = [v for v in (nargs or {}).values() if type(v) in (torch.Tensor, torch.nn.Parameter)]
            self.round = _Round(nargs, tensors, [t.detach().clone() for t in tensors])
        round_ = self.round
        began = time.monotonic()
        try:
            kernel_call()
            results = [t.detach().clone() for t in round_.tensors]
        finally:
            for tensor, state in zip(round_.tensors, round_.start):
                tensor.detach().copy_(state)  # the next config, and the autotuner's own run, start alike
            self.spent += time.monotonic() - began
        if round_.count == 0:
            round_.first = results
        else:
            self._compare(autotuner, round_.count, round_.first, results)
        round_.count += 1
        return [1.0, 1.0, 1.0]

    def _compare(self, autotuner: Any, index: int, first: list[Any], results: list[Any]) -> None:
        import torch

        for a, b in zip(first, results):
            same = (torch.allclose(a, b, atol=self.atol, rtol=self.rtol, equal_nan=True)
                    if a.dtype.is_floating_point else torch.equal(a, b))
            if not same:
                config = autotuner.configs[index] if index < len(autotuner.configs) else f"#{index + 1}"
                self.note(f"autotune config {index + 1} ({config}) computes another result than config 1 "
                          "on the same arguments")
                return
