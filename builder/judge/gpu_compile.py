"""Compile an answer's kernels for a GPU without a GPU, as launched in the CPU interpreter.

The interpreter runs a kernel's body as Python, so it runs what Triton's compiler refuses (a
`break`, a global that is no `tl.constexpr`, a launch keyword no GPU backend knows). Inside the
sandbox, `GpuCompiler.record` sees every launch the interpreter makes and works out what a GPU
would compile for it as Triton's launcher does (argument types, the constexpr values, the
launch options; the general kernel, not specialised on an argument's value or alignment);
`compile_pending` then compiles each new one for sm_90, `triton.compile(ASTSource(fn,
signature, constexprs, attrs), target=GPUTarget("cuda", 90, 32))`, as a GPU would at its first
launch.

Each new specialisation goes through Triton's frontend (the code generator from the kernel's
AST and the TTIR passes): that is where a GPU compile refuses a kernel's Python (a `break`, a
plain global, a loop-carried value that changes type), and constexpr values decide which of
its branches the code generator sees. NVIDIA's backend (TTGIR, LLVM IR, PTX, ptxas) runs once
per kernel, argument types and launch options: it lowers what the frontend accepted, and its
passes took five times the frontend's time in a profile of a max-pool verification, whose
drawn checks launch the kernel with a dozen or more sets of constexprs (window, stride and
dilation).

Under TRITON_INTERPRET, `@triton.jit` makes interpreter objects, Triton's own library functions
included, and the interpreter leaves part of `triton.language` patched after a kernel ran. A
compile therefore runs with the language namespaces as they were before any kernel ran and
with a JITFunction twin of every interpreted function, in the answer's globals and Triton's.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from builder.judge.anticheat import Finding

#: The GPU the CPU judge compiles for: the H100's compute capability and warp size.
TARGET = ("cuda", 90, 32)
#: Keywords of a launch that are no kernel argument or option: the launcher's own (`grid`, `warmup`),
#: and `ir_override`, which names a file to load as the kernel (never passed on).
DROPPED_OPTIONS = frozenset({"grid", "warmup", "ir_override"})
_ABSENT = object()


@dataclass(frozen=True)
class Specialisation:
    """One kernel as the GPU would compile it for one launch."""

    name: str  # the kernel's name
    key: str  # tells specialisations apart
    backend: str  # tells apart what the backend compiles differently: the kernel, its argument types, its options
    twin: Any  # the JITFunction twin of the interpreted kernel
    signature: dict[str, str]
    constexprs: dict[Any, Any]
    attrs: dict[Any, Any]
    options: dict[str, Any]


class GpuCompiler:
    """Records the interpreter's launches and compiles each new specialisation once. Make it
    before any kernel runs: it keeps the language namespaces as they are then."""

    def __init__(self) -> None:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import make_backend

        self.target = GPUTarget(*TARGET)
        self.backend = make_backend(self.target)
        self.pristine = {id(space): (space, dict(vars(space))) for space in _language_spaces()}
        self.twins: dict[int, tuple[Any, Any]] = {}  # id(interpreted) -> (interpreted, twin)
        self.binders: dict[int, Any] = {}
        self.seen: set[str] = set()
        self.lowered: set[str] = set()  # Specialisation.backend of those the backend compiled
        self.pending: list[Specialisation] = []
        self.refused: list[Finding] = []  # launches the GPU launcher itself would refuse

    # -- launches -----------------------------------------------------------------------------

    def record(self, kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Note one interpreter launch (called by the guards inside the launch; never raises)."""
        from triton.runtime.interpreter import InterpretedFunction

        if not isinstance(kernel, InterpretedFunction):
            return
        name = kernel.fn.__name__
        try:
            spec = self._specialise(kernel, args, {k: v for k, v in kwargs.items() if k not in DROPPED_OPTIONS})
        except Exception as exc:  # what Triton's launcher raises on a GPU for these arguments
            self.refused.append(Finding("compile_error", f"kernel {name} cannot be launched on a GPU with these "
                                                         f"arguments: {_summary(exc)}"))
            return
        if spec.key not in self.seen:
            self.seen.add(spec.key)
            self.pending.append(spec)

    def _specialise(self, kernel: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Specialisation:
        from triton.runtime.jit import create_function_from_signature

        from triton.runtime.jit import KernelParam

        twin = self.twin(kernel)
        binder = self.binders.get(id(kernel))
        if binder is None:
            # The general kernel, as a GPU compiles it for most sizes: no argument specialised on
            # its value (an int of 1 made a constant) or its alignment. Those change the code's
            # constants and vector widths, hardly ever whether it compiles, and each would cost a
            # compile of its own.
            general = [p if p.is_constexpr else KernelParam(p.num, p._param, True, True) for p in twin.params]
            binder = self.binders[id(kernel)] = create_function_from_signature(twin.signature, general, self.backend)
        bound, specialization, options = binder(*args, **kwargs)
        options, signature, constexprs, attrs = twin._pack_args(self.backend, kwargs, bound, specialization, options)
        opts = dict(options.__dict__)
        backend = repr((id(kernel), sorted(signature.items()), sorted(opts.items(), key=repr)))
        key = repr((backend, sorted(constexprs.items(), key=repr), sorted(attrs.items(), key=repr)))
        return Specialisation(kernel.fn.__name__, key, backend, twin, signature, constexprs, attrs, opts)

    def twin(self, interpreted: Any) -> Any:
        """The JITFunction twin of an interpreted function: the same code, reading its globals
        through a copy in which every interpreted function is a twin too."""
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction

        known = self.twins.get(id(interpreted))
        if known is not None:
            return known[1]
        fn = interpreted.fn
        scope = dict(fn.__globals__)
        clone = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
        clone.__module__, clone.__qualname__ = fn.__module__, fn.__qualname__
        clone.__annotations__, clone.__kwdefaults__ = dict(fn.__annotations__), fn.__kwdefaults__
        twin = JITFunction(clone, **interpreted.kwargs)
        self.twins[id(interpreted)] = (interpreted, twin)
        for name, value in list(scope.items()):
            if isinstance(value, InterpretedFunction):
                scope[name] = self.twin(value)
        return twin

    # -- compiling ----------------------------------------------------------------------------

    def compile_pending(self) -> Finding | None:
        """Compile every specialisation recorded since the last call; the first that fails (or a
        launch the GPU launcher would refuse) as a compile_error finding, else None."""
        import triton
        from triton.compiler import ASTSource

        if self.refused:
            return self.refused[0]
        pending, self.pending = self.pending, []
        with self._compiling():
            for spec in pending:
                whole = spec.backend not in self.lowered
                try:
                    with contextlib.nullcontext() if whole else _frontend_only():
                        triton.compile(ASTSource(spec.twin, spec.signature, spec.constexprs, spec.attrs),
                                       target=self.target, options=spec.options)
                    self.lowered.add(spec.backend)
                except FrontendDone:
                    continue
                except OSError:
                    continue  # the judge's environment (a cache folder, the assembler), not the code
                except Exception as exc:
                    self.refused.append(Finding("compile_error", f"kernel {spec.name} does not compile for "
                                                                 f"sm_{TARGET[1]}: {_summary(exc)}"))
                    return self.refused[0]
        return None

    @contextmanager
    def _compiling(self) -> Iterator[None]:
        """The language namespaces as before any kernel ran, with twins of Triton's interpreted
        library functions (and tensor methods), for the length of a compile."""
        changes: list[tuple[Any, str, Any]] = []

        def put(space: Any, name: str, value: Any) -> None:
            changes.append((space, name, vars(space).get(name, _ABSENT)))
            if value is _ABSENT:
                delattr(space, name)
            else:
                setattr(space, name, value)

        try:
            for space, names in self.pristine.values():
                now = dict(vars(space))
                for name, value in names.items():  # what the interpreter patched and left so
                    if now.get(name, _ABSENT) is not value and name not in ("__dict__", "__weakref__"):
                        put(space, name, value)
            for space, name, interpreted in _interpreted_members():
                put(space, name, self.twin(interpreted))
            yield
        finally:
            for space, name, value in reversed(changes):
                if value is _ABSENT:
                    if name in vars(space):
                        delattr(space, name)
                else:
                    setattr(space, name, value)


class FrontendDone(Exception):
    """Raised where the backend's first stage would start: the frontend accepted the kernel."""


def _stop(src: Any, metadata: Any) -> Any:
    raise FrontendDone


@contextmanager
def _frontend_only() -> Iterator[None]:
    """Compiles that stop after the frontend, through Triton's hook on a backend's stages (a
    Triton without that hook compiles whole)."""
    try:
        from triton import knobs
    except ImportError:
        knobs = None
    before = getattr(getattr(knobs, "runtime", None), "add_stages_inspection_hook", _ABSENT)
    if before is _ABSENT:
        yield
        return

    def hook(*args: Any) -> Any:
        if not args:  # asked for its part of the compile's cache key
            return "frontend-only", "frontend-only"
        for stages in args:  # (backend, stages, options, language, capability) in Triton 3.8
            if isinstance(stages, dict) and "ttir" in stages:
                names = list(stages)
                for name in names[names.index("ttir") + 1:]:
                    stages[name] = _stop
                return

    knobs.runtime.add_stages_inspection_hook = hook
    try:
        yield
    finally:
        knobs.runtime.add_stages_inspection_hook = before


def warm_up() -> None:
    """Compile one trivial kernel for the target: the compiler's one-time set-up (about 0.6 s of
    a sandbox's first compile) done before code under test loads. No kernel runs: the language
    namespaces stay as they are."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def _one(x_ptr, BLOCK: tl.constexpr):
        tl.store(x_ptr + tl.arange(0, BLOCK), tl.zeros([BLOCK], dtype=tl.float32))

    compiler = GpuCompiler()
    compiler.record(_one, (torch.empty(16),), {"BLOCK": 16})
    finding = compiler.compile_pending()
    if finding is not None:
        raise RuntimeError(finding.detail)


def _language_spaces() -> list[Any]:
    """The modules of triton.language and the classes the interpreter patches."""
    import triton.language as tl

    modules = [m for name, m in sorted(sys.modules.items())
               if (name == "triton.language" or name.startswith("triton.language.")) and m is not None]
    return modules + [tl.tensor, tl.dtype, tl.core.tensor_descriptor_base]


def _interpreted_members() -> Iterator[tuple[Any, str, Any]]:
    """(namespace, name, interpreted function) for Triton's own interpreted library functions:
    module attributes, and tensor methods that forward to one."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    for space in _language_spaces():
        for name, value in list(vars(space).items()):
            if isinstance(value, InterpretedFunction):
                yield space, name, value
            elif space is tl.tensor and isinstance(value, types.FunctionType) and value.__closure__:
                inner = [c.cell_contents for c in value.__closure__ if isinstance(c.cell_contents, InterpretedFunction)]
                if inner:
                    yield space, name, inner[0]


def _summary(exc: BaseException) -> str:
    """The compiler's complaint in a line or two: its position and its last line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    where = lines[0] if lines and lines[0].startswith("at ") else ""
    last = lines[-1] if lines else type(exc).__name__
    text = f"{where} {last}".strip() if where and where != last else last
    return f"{type(exc).__name__}: {text}"[:400]
