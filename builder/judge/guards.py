"""Dynamic anti-cheat guards, run inside the sandbox process around a candidate's forward.

The sandbox is the candidate's own process, so nothing here is proof against code that wants to
get around it: these guards are one layer, and the judge decides from what it checks outside
that process (outputs against its own reference, input bytes, kernel lists, wall-clock time).

- `Guards` logs every aten op forward calls, including ops run by host code that Triton calls
  back (grid callables, autotune and pre-run hooks, heuristics); only the interpreter's own
  argument copying is left out. It counts kernel launches, poisons fresh allocations so that
  unwritten elements show, notes launches on a side stream, trips when forward reaches the
  switches that turn dispatch modes off or reads tensor values on the host, or when a kernel gets
  an argument that is no plain tensor, scalar or Triton type, or an op reaches a tensor
  subclass's own dispatch (whose ops no mode sees). After each call it checks that the mode
  stack, the timers, the launch wrappers and the PROTECTED namespaces (plus the sandbox's own
  modules and classes) are as the judge left them, that no trace or profile function is set
  and that no second thread runs.
- `plain_outputs` says why outputs are not plain tensors of their own.

The inputs' layouts and guard bands are builder.judge.inputs', the fills of fresh allocations
builder.judge.poison's; outputs are compared with their references in the judge's process
(builder.judge.compare).
"""

from __future__ import annotations

import builtins
import os
import sys
import time
from types import ModuleType
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import triton
import triton.testing
from torch.utils import _mode_utils, _python_dispatch
from torch.utils._python_dispatch import TorchDispatchMode
from triton.runtime.autotuner import Autotuner
from triton.runtime.jit import JITFunction

from builder.judge import inputs as inputs_module
from builder.judge import poison as poison_module
from builder.judge.anticheat import Finding
from builder.judge.inputs import Placed, PlacedInputs
from builder.judge.poison import Poison, Tails

#: How the op log names an op on one-element integer tensors only (a step counter's update).
COUNTER = "counter update"
#: aten ops that allocate, fill, view, copy, pad with a constant or describe tensors, and counter
#: updates: all that forward may call.
ALLOWED_OPS = frozenset(
    {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros",
     "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full",
     "fill", "fill_", "zero_", "arange", "view", "_unsafe_view", "reshape", "_reshape_alias",
     "as_strided", "contiguous", "clone", "copy_", "_to_copy", "to", "permute", "expand",
     "squeeze", "unsqueeze", "transpose", "t", "flatten", "unflatten", "select", "slice", "narrow",
     "detach", "alias", "lift_fresh", "lift_fresh_copy", "view_as", "expand_as", "split",
     "split_with_sizes", "unbind", "chunk", "_local_scalar_dense", "is_same_size", "sym_size",
     "sym_stride", "sym_numel", "sym_storage_offset", "size", "stride", "numel", "dim",
     "is_contiguous", "_has_compatible_shallow_copy_type", "set_", "movedim", "swapaxes",
     "constant_pad_nd", COUNTER}
)
#: aten ops that read tensor values into Python: computing on the host.
HOST_READ_OPS = frozenset({"_local_scalar_dense", "item", "tolist"})
#: aten ops that make a tensor of Python values (torch.tensor): what they hold must not depend on
#: the input's values (see `lifted_change`), or the host computed it.
LIFT_OPS = frozenset({"lift_fresh", "lift_fresh_copy"})
#: aten ops that copy data and so may move it between devices.
COPY_OPS = frozenset({"copy_", "_to_copy", "to", "clone"})
#: More aten ops than this in one forward is a Python loop doing the work.
MAX_OPS_PER_FORWARD = 256
#: aten ops that return uninitialized memory; their results get the sentinel.
FRESH_OPS = frozenset({"empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided"})
#: Ops that make new memory with values in it (a band follows it too, builder.judge.poison.Tails).
FILLED_OPS = frozenset({"zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like",
                        "new_full", "clone"})
#: Callables the judge relies on after the candidate ran; replacing any is tampering.
TIMERS: dict[str, tuple[Any, str]] = {
    "torch.cuda.synchronize": (torch.cuda, "synchronize"),
    "torch.cuda.Event": (torch.cuda, "Event"),
    "torch.cuda.Event.record": (torch.cuda.Event, "record"),
    "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time"),
    "torch.cuda.Event.synchronize": (torch.cuda.Event, "synchronize"),
    "torch.cuda.current_stream": (torch.cuda, "current_stream"),
    "time.perf_counter": (time, "perf_counter"),
    "time.time": (time, "time"),
    "time.monotonic": (time, "monotonic"),
    "triton.testing.do_bench": (triton.testing, "do_bench"),
}
JUDGE_TOOLS: dict[str, tuple[Any, str]] = {
    f"torch.{name}": (torch, name)
    for name in ("allclose", "isclose", "equal", "isnan", "isfinite", "isinf", "abs", "where", "rand")
} | {
    f"torch.Tensor.{name}": (torch.Tensor, name)
    for name in ("__sub__", "__eq__", "__truediv__", "abs", "max", "any", "all", "clone", "copy_",
                 "uniform_", "data_ptr", "untyped_storage", "view", "float", "double")
}


#: Namespaces whose callables (and submodules) the code under test may not rebind or delete; a
#: class may not gain attributes either. Compared by identity after every call.
PROTECTED: dict[str, Any] = {
    "torch": torch, "torch.Tensor": torch.Tensor, "torch._C.TensorBase": torch._C.TensorBase,
    "torch.nn.Module": torch.nn.Module, "torch.nn.functional": torch.nn.functional,
    "torch.cuda": torch.cuda, "torch.cuda.Event": torch.cuda.Event, "time": time, "builtins": builtins,
    "triton.testing": triton.testing, "torch._ops.OpOverload": torch._ops.OpOverload,
    "torch._ops.OpOverloadPacket": torch._ops.OpOverloadPacket, "sys": sys,
}
TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
TRITON_DIR = os.path.dirname(triton.__file__) + os.sep
#: Types a Triton launch may take as an argument, exactly (tuples of them too); anything else, an
#: object with a data_ptr of its own above all, could run the candidate's code inside the launch.
KERNEL_ARG_TYPES = frozenset({torch.Tensor, torch.nn.Parameter, int, float, bool, str, type(None), torch.dtype})
#: Triton's own dtype and constexpr classes (exactly these: a subclass or a spoofed __class__ is
#: the answer's own object).
TRITON_ARG_TYPES = frozenset(
    cls for module in (triton.language, triton.language.core) for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, (triton.language.dtype, triton.language.constexpr))
)
try:
    from triton.tools.tensor_descriptor import TensorDescriptor

    KERNEL_ARG_TYPES |= {TensorDescriptor}
except ImportError:
    pass


def _namespace_state(spaces: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each namespace holds, by name: every attribute of a class, the callables and modules
    of a module (its plain values, flags say, may change)."""
    return {name: {attr: value for attr, value in vars(space).items()
                   if isinstance(space, type) or callable(value) or isinstance(value, ModuleType)}
            for name, space in spaces.items()}


def _namespace_change(spaces: dict[str, Any], before: dict[str, dict[str, Any]]) -> str | None:
    """The first change of the namespaces since `before`, in words, or None."""
    for name, space in spaces.items():
        now = vars(space)
        for attr, value in before[name].items():
            if now.get(attr) is not value and not _torch_wrapper(now.get(attr), value):
                return f"{name}.{attr} was {'deleted' if attr not in now else 'replaced'}"
        if isinstance(space, type):
            added = [attr for attr in now if attr not in before[name]]
            if added:
                return f"{name}.{added[0]} was added"
    return None


def _torch_wrapper(new: Any, old: Any) -> bool:
    """Whether `new` is torch's own wrapper of `old`: torch._dynamo, when something first imports
    it, wraps a few torch functions (torch.manual_seed) with code of torch's own files."""
    code = getattr(new, "__code__", None)
    return getattr(new, "__wrapped__", None) is old and code is not None and code.co_filename.startswith(TORCH_DIR)


def _plain_argument(value: Any) -> bool:
    if type(value) is tuple:
        return all(_plain_argument(v) for v in value)
    if type(value) is triton.language.constexpr:  # what it wraps, a function say, reaches the kernel
        return _plain_argument(value.value)
    return type(value) in KERNEL_ARG_TYPES or type(value) in TRITON_ARG_TYPES


def _interpreter() -> tuple[type | None, type | None]:
    """The interpreter's launch class and grid executor, when this triton has them."""
    try:
        from triton.runtime.interpreter import GridExecutor, InterpretedFunction
    except ImportError:
        return None, None
    return InterpretedFunction, GridExecutor


@dataclass
class CallRecord:
    """What one guarded forward did."""

    ops: list[str] = field(default_factory=list)  # aten op names, in call order
    launches: int = 0  # Triton kernel launches
    side_stream: bool = False  # a launch or the stream at exit was not the default stream
    host_reads: list[str] = field(default_factory=list)  # value reads on the host, and cross-device copies
    tripped: list[str] = field(default_factory=list)  # guard switches forward reached for
    lifted: int = 0  # values forward made into tensors from Python (torch.tensor)
    lifted_digests: list[str] = field(default_factory=list)  # what each such tensor held (sha256)
    tuning_ops: list[str] = field(default_factory=list)  # ops of the configs an autotuner benchmarked
    tuning_peak: int = 0  # the most ops one benchmarked config run called
    config_mismatch: list[str] = field(default_factory=list)  # autotune configs that disagree (CPU)

    def computing_ops(self) -> list[str]:
        """Ops outside ALLOWED_OPS, each once, in first-call order (benchmarked configs' too)."""
        return list(dict.fromkeys(op for op in self.ops + self.tuning_ops
                                  if op not in ALLOWED_OPS and op not in HOST_READ_OPS))


def _leaves(value: Any) -> Iterator[Any]:
    """What lists, tuples and dicts (an op's args, kwargs and results) hold, however nested."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        yield from _leaves(list(value.values()))
    else:
        yield value


def _counter(value: Any) -> bool:
    """Whether an op's tensors (arguments and results) are all integer tensors of at most one
    element: a step counter (BatchNorm's `num_batches_tracked += 1`), not work on the data."""
    tensors = [t for t in _leaves(value) if isinstance(t, torch.Tensor)]
    return bool(tensors) and all(not (t.is_floating_point() or t.is_complex()) and t.numel() <= 1 for t in tensors)


def _devices(value: Any) -> set[str]:
    found: set[str] = set()
    for leaf in _leaves(value):
        if isinstance(leaf, torch.Tensor):
            found.add(leaf.device.type)
        elif isinstance(leaf, torch.device):
            found.add(leaf.type)
        elif isinstance(leaf, str) and leaf.split(":")[0] in ("cpu", "cuda", "meta"):
            found.add(leaf.split(":")[0])
    return found


_PLAIN_DISPATCH = torch.Tensor.__torch_dispatch__


class _OpLog(TorchDispatchMode):
    """Records aten ops into the current CallRecord and poisons fresh allocations."""

    def __init__(self, guards: Guards) -> None:
        super().__init__()
        self.guards = guards

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        record = self.guards.record
        if record is not None and not self.guards.paused:
            own = [t.__name__ for t in types if getattr(t, "__torch_dispatch__", None) is not _PLAIN_DISPATCH]
            if own:  # its handler runs with this mode popped: every op it calls would go unseen
                record.tripped.append(f"the __torch_dispatch__ of tensor subclass {own[0]}")
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if record is not None and not self.guards.paused:
            (record.tuning_ops if self.guards.tuning else record.ops).append(COUNTER if _counter([args, kwargs, out]) else name)
            if name in HOST_READ_OPS:
                record.host_reads.append(name)
            elif name in COPY_OPS and len(_devices([args, kwargs, out]) - {"meta"}) > 1:
                record.host_reads.append(f"{name} between devices")
            elif name in LIFT_OPS and isinstance(out, torch.Tensor):
                record.lifted += out.numel()
                record.lifted_digests.append(self.guards.digest(out))
        if isinstance(out, torch.Tensor) and self.guards.tails is not None and record is not None \
                and not self.guards.paused and (name in FRESH_OPS or name in FILLED_OPS):
            out = self.guards.tails.add(out, keep_values=name in FILLED_OPS)
        if name in FRESH_OPS and self.guards.poison_fresh and isinstance(out, torch.Tensor):
            self.guards.pattern(out)
        return out


#: Switches that turn dispatch modes or torch-function handling off, by where they live.
SWITCHES: dict[str, tuple[Any, str]] = {
    f"torch._C.{name}": (torch._C, name)
    for name in ("_DisableTorchDispatch", "_DisableTorchFunction", "_DisableTorchFunctionSubclass",
                 "_unset_dispatch_mode", "_pop_torch_dispatch_stack", "_set_dispatch_mode",
                 "_push_on_torch_dispatch_stack", "_ExcludeDispatchKeyGuard", "_IncludeDispatchKeyGuard",
                 "_ForceDispatchKeyGuard", "_DisablePythonDispatcher", "_dispatch_tls_set_dispatch_key_excluded",
                 "_dispatch_tls_set_dispatch_key_included")
    if hasattr(torch._C, name)
} | {
    f"torch.utils._python_dispatch.{name}": (_python_dispatch, name)
    for name in ("_disable_current_modes", "_pop_mode", "_pop_mode_temporarily", "_push_mode")
    if hasattr(_python_dispatch, name)
} | {
    f"torch.utils._mode_utils.{name}": (_mode_utils, name) for name in ("no_dispatch",) if hasattr(_mode_utils, name)
}
#: Tensor methods that hand values to the host without an aten op.
HOST_EXITS = ("numpy", "tolist", "__array__", "__dlpack__", "item")


class Guards:
    """Patches installed for the life of a sandbox; `install` before importing any candidate."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.record: CallRecord | None = None
        self.paused = False  # True while the interpreter copies kernel arguments, or Triton benchmarks
        self.poison_fresh = True
        self.tuning = 0  # > 0 while an autotuner runs one of its configs for its benchmark
        self.on_launch: Callable[[Any, tuple[Any, ...], dict[str, Any]], None] | None = None  # sees each launch
        self.cpu_benchmark: Callable[[Any, Callable[[], Any]], list[float]] | None = None  # autotuners' on the CPU
        self.pattern = Poison()  # how fresh allocations are filled during the current call
        self.tails: Tails | None = None  # the current checked call's allocations, each with a band after it
        self._timers = {name: getattr(obj, attr) for name, (obj, attr) in TIMERS.items()}
        self._tools = {name: getattr(obj, attr) for name, (obj, attr) in JUDGE_TOOLS.items()}
        self._patched: dict[str, tuple[Any, str, Any, Any]] = {}  # name -> (owner, attr, original, wrapper)
        self._current_frames = sys._current_frames
        self._threads = set(self._current_frames())  # threads that ran before any candidate code
        self._protected: dict[str, Any] = {**PROTECTED, "builder.judge.guards": sys.modules[__name__],
                                           "Guards": Guards, "builder.judge.inputs": inputs_module,
                                           "Placed": Placed, "PlacedInputs": PlacedInputs,
                                           "builder.judge.poison": poison_module, "Poison": Poison}
        self._namespaces = _namespace_state(self._protected)  # taken again once installed

    def __enter__(self) -> Guards:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def install(self) -> None:
        """Wrap Triton's launch paths, the interpreter's argument copying, the mode switches and
        the Tensor methods that leave the device."""
        interpreted, grid_executor = _interpreter()
        for cls in (JITFunction, Autotuner, interpreted):
            if cls is not None:
                self._patch(cls, "run", self._launch(cls.run, counts=cls is not Autotuner))
        self._patch(Autotuner, "do_bench", property(self._benchmarker))
        if grid_executor is not None:
            for name in ("_init_args_hst", "_restore_args_dev"):
                if hasattr(grid_executor, name):
                    self._patch(grid_executor, name, self._unlogged(getattr(grid_executor, name)))
        for name, (owner, attr) in SWITCHES.items():
            self._patch(owner, attr, self._tripwire(getattr(owner, attr), name, "tripped"))
        import _thread
        import threading

        for owner, attr in ((threading.Thread, "start"), (threading, "_start_new_thread"),
                            (_thread, "start_new_thread"), (_thread, "start_joinable_thread")):
            if hasattr(owner, attr):  # the op log is per thread: work in another thread is unseen
                self._patch(owner, attr, self._tripwire(getattr(owner, attr), f"{owner.__name__}.{attr}", "tripped"))
        for attr in HOST_EXITS:
            if hasattr(torch.Tensor, attr):
                self._patch(torch.Tensor, attr, self._tripwire(getattr(torch.Tensor, attr), f"Tensor.{attr}", "host_reads"))
        self.trust_current_state()

    def protect(self, name: str, space: Any) -> None:
        """Hold one more namespace (a class or module the sandbox relies on) to its present state."""
        self._protected[name] = space
        self.trust_current_state()

    def trust_current_state(self) -> None:
        """Take the protected namespaces as they are now as the state to hold them to (done after
        installing, and again after trusted code ran, never once code under test was loaded)."""
        self._namespaces = _namespace_state(self._protected)

    def _patch(self, owner: Any, attr: str, wrapper: Any) -> None:
        name = f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{attr}"
        self._patched[name] = (owner, attr, getattr(owner, attr), wrapper)
        setattr(owner, attr, wrapper)

    def restore(self) -> None:
        """Put everything back (a sandbox never needs to; tests do)."""
        for owner, attr, original, _ in reversed(list(self._patched.values())):
            setattr(owner, attr, original)
        self._patched.clear()

    def _launch(self, original: Callable[..., Any], counts: bool) -> Callable[..., Any]:
        guards = self

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            record = guards.record
            if record is not None and counts and not kwargs.get("warmup", False):
                record.launches += 1
                record.side_stream |= guards._off_default_stream()
            guards._check_arguments([v for k, v in (*enumerate(args), *kwargs.items()) if k != "grid"])
            if counts and guards.on_launch is not None:
                with guards._paused():
                    guards.on_launch(self, args, kwargs)
            return original(self, *args, **kwargs)

        return run

    def _benchmarker(self, autotuner: Any) -> Callable[..., Any]:
        """What an autotuner benchmarks its configs with. Triton's own benchmarker is the judge's
        business: its work (events, cache flushes, statistics) is not logged, and the configs it
        runs are logged apart (`tuning_ops`: checked for what they are, not counted against the
        forward's op limit, each run held to the limit on its own). A benchmarker the answer
        passed (`do_bench=`) is the answer's code and is logged like forward. On the CPU every
        config is run and checked (`cpu_benchmark`)."""
        own = autotuner._do_bench
        if own is not None and not _triton_code(own):
            return own
        if self.cuda:
            from triton.runtime.driver import driver

            base = own or driver.active.get_benchmarker()
        elif self.cpu_benchmark is not None:
            check = self.cpu_benchmark
            base = lambda kernel_call, quantiles=None: check(autotuner, kernel_call)  # noqa: E731
        else:
            base = lambda kernel_call, quantiles=None: [1.0, 1.0, 1.0] if quantiles else [1.0]  # noqa: E731
        return lambda kernel_call, quantiles=None: self._tune(base, kernel_call, quantiles)

    def _tune(self, base: Callable[..., Any], kernel_call: Callable[[], Any], quantiles: Any) -> Any:
        record = self.record
        if record is None:
            return base(kernel_call, quantiles=quantiles)

        def logged_call() -> Any:
            before, self.paused = self.paused, False
            self.tuning += 1
            seen = len(record.tuning_ops)
            try:
                return kernel_call()
            finally:
                self.tuning -= 1
                self.paused = before
                record.tuning_peak = max(record.tuning_peak, len(record.tuning_ops) - seen)

        with self._paused():
            return base(logged_call, quantiles=quantiles)

    @contextmanager
    def _paused(self) -> Iterator[None]:
        before, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = before

    def digest(self, tensor: torch.Tensor) -> str:
        """A digest of what a tensor holds (taken unlogged)."""
        import hashlib

        with self._paused():
            data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            return hashlib.sha256(data.numpy().tobytes()).hexdigest()

    def _unlogged(self, original: Callable[..., Any]) -> Callable[..., Any]:
        guards = self

        def copy_args(self: Any, *args: Any, **kwargs: Any) -> Any:
            guards._check_arguments([v for a in (*args, *kwargs.values())  # the copy runs unlogged
                                     for v in (a.values() if type(a) is dict else a if type(a) in (tuple, list) else (a,))])
            before, guards.paused = guards.paused, True
            try:
                return original(self, *args, **kwargs)
            finally:
                guards.paused = before

        return copy_args

    def _tripwire(self, original: Any, name: str, field_name: str) -> Any:
        guards = self

        class Tripwire:
            """Notes that forward reached `name`, then behaves as the original."""

            def __new__(cls, *args: Any, **kwargs: Any) -> Any:
                record = guards.record
                if record is not None and not guards.paused:
                    getattr(record, field_name).append(name)
                return original(*args, **kwargs)

        if isinstance(original, type) or not callable(original):
            return Tripwire

        def wire(*args: Any, **kwargs: Any) -> Any:
            record = guards.record
            if record is not None and not guards.paused:
                getattr(record, field_name).append(name)
            return original(*args, **kwargs)

        return wire

    def _check_arguments(self, values: list[Any]) -> None:
        """Note, once per call, a kernel argument that is no plain tensor, scalar or Triton type."""
        odd = [f"a kernel argument of type {type(v).__name__}" for v in values if not _plain_argument(v)]
        if odd and self.record is not None and odd[0] not in self.record.tripped:
            self.record.tripped.append(odd[0])

    def _off_default_stream(self) -> bool:
        return self.cuda and torch.cuda.current_stream() != torch.cuda.default_stream()

    @contextmanager
    def unpoisoned(self) -> Iterator[None]:
        """Leave fresh allocations unfilled: inside a timed or profiled call the fill would count as
        the answer's work. The timing loop poisons each output itself once its end event is recorded."""
        self.poison_fresh = False
        try:
            yield
        finally:
            self.poison_fresh = True

    @contextmanager
    def poisoning(self, pattern: Poison) -> Iterator[Tails]:
        """Fill fresh allocations with `pattern` (the judge picks one per call) until the end, and
        give those of the watched call a band after their end (the Tails it yields)."""
        tails = Tails(pattern.seed)
        before, self.pattern, self.tails = self.pattern, pattern, tails
        try:
            yield tails
        finally:
            self.pattern, self.tails = before, None

    @contextmanager
    def allocations(self) -> Iterator[None]:
        """Poison what the candidate allocates (its constructor, say) without recording ops."""
        with _OpLog(self):
            yield

    @contextmanager
    def watch(self) -> Iterator[CallRecord]:
        """Record one forward: its aten ops, its launches, and the stream it leaves behind.

        After the call, a canary op must still reach the op log: if forward left dispatch
        switched off, it does not, and the record says so.
        """
        record = CallRecord()
        with _OpLog(self):
            self.record = record
            try:
                yield record
                seen = len(record.ops)
                torch.empty(0)
                if len(record.ops) == seen:
                    record.tripped.append("the op log stopped receiving ops")
                else:
                    record.ops.pop()
            finally:
                self.record = None
        record.side_stream |= self._off_default_stream()

    def second_threads(self) -> list[str]:
        """Where each Python thread that did not run when the guards were made is now (file:line)."""
        frames = self._current_frames()
        return [f"{frames[t].f_code.co_filename}:{frames[t].f_lineno}" for t in sorted(set(frames) - self._threads)]

    def tampering(self) -> Finding | None:
        """A finding when timers, the judge's tools, the guards' own wrappers or the mode stack
        were changed, or when a second Python thread runs."""
        for name, (obj, attr) in TIMERS.items():
            if getattr(obj, attr, None) is not self._timers[name]:
                return Finding("timer_patch", f"{name} was replaced")
        for name, (obj, attr) in JUDGE_TOOLS.items():
            if getattr(obj, attr, None) is not self._tools[name]:
                return Finding("monkey_patch", f"{name} was replaced")
        for name, (owner, attr, _, wrapper) in self._patched.items():
            if getattr(owner, attr, None) is not wrapper:
                return Finding("guard_disabled", f"{name} was replaced")
        changed = _namespace_change(self._protected, self._namespaces)
        if changed:
            return Finding("monkey_patch", changed)
        if sys.gettrace() is not None or sys.getprofile() is not None:
            return Finding("guard_disabled", "a trace or profile function is set (it would run inside the judge's code)")
        if _python_dispatch._get_current_dispatch_mode_stack():
            return Finding("guard_disabled", "a dispatch mode was left on the mode stack")
        threads = self.second_threads()
        if threads:
            return Finding("guard_disabled", f"a second Python thread is running (at {', '.join(threads[:3])})")
        return None

    def verdict(self, record: CallRecord) -> Finding | None:
        """The finding one forward's record earns, if any, in order of gravity."""
        tampered = self.tampering()
        if tampered:
            return tampered
        if record.tripped:
            return Finding("guard_disabled", f"forward reached {', '.join(dict.fromkeys(record.tripped))}")
        if record.host_reads:
            return Finding("host_compute", f"forward read values on the host: {', '.join(dict.fromkeys(record.host_reads))}")
        computing = record.computing_ops()
        if computing:
            return Finding("torch_op", f"forward called aten ops {', '.join(computing[:5])}")
        if len(record.ops) > MAX_OPS_PER_FORWARD:
            return Finding("host_compute", f"forward called {len(record.ops)} aten ops: a Python loop does the work")
        if record.tuning_peak > MAX_OPS_PER_FORWARD:
            return Finding("host_compute", f"one benchmarked autotune config called {record.tuning_peak} aten ops: "
                                           "a Python loop does the work")
        if record.config_mismatch:
            return Finding("mismatch", record.config_mismatch[0])
        if record.launches == 0:
            return Finding("no_kernel_launched", "forward launched no Triton kernel")
        if record.side_stream:
            return Finding("side_stream", "a kernel ran on a non-default stream")
        return None


def lifted_change(before: list[str] | None, now: list[str]) -> Finding | None:
    """Tensors made from Python values must hold the same for two inputs of one shape: values that
    follow the input's were computed on the host (the host cannot read them without tripping a
    guard, but in the CPU interpreter a kernel could hand them over)."""
    if before is None or before == now:
        return None
    return Finding("host_compute", "tensors made from Python values differ between two inputs of the same shape: "
                                   "they hold values computed on the host")


def _triton_code(fn: Any) -> bool:
    """Whether `fn` is a function of Triton's own files (its benchmarkers and their wrappers)."""
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename.startswith(TRITON_DIR)


def plain_outputs(outs: list[Any], placed: PlacedInputs) -> Finding | None:
    """Why the outputs are not plain tensors that own their memory, or the inputs or outputs carry
    attributes of their own (one named like a method would run in its place); None when fine."""
    shadowed = placed.attributes()
    if shadowed:
        return Finding("monkey_patch", f"forward set attributes on its input tensor: {', '.join(shadowed[:3])}")
    inputs = placed.storage_ptrs()
    for out in outs:
        if not isinstance(out, torch.Tensor):
            continue  # the judge reports a wrong type from the missing output
        if type(out) is not torch.Tensor:
            return Finding("output_not_plain", f"forward returned a {type(out).__name__}, a Tensor subclass")
        if vars(out):
            named = ", ".join(sorted(vars(out))[:3])
            return Finding("output_not_plain", f"the output tensor carries attributes of its own: {named}")
        if out.untyped_storage().data_ptr() in inputs:
            return Finding("output_not_plain", "forward returned a view of its input")
    return None
