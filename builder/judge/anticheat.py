"""Static anti-cheat checks: what the code names and does, read from its syntax tree, never run.

Names are resolved to dotted paths through the file's imports and through local names bound to
such paths (assignments, unpacking, walrus, loops, parameter defaults), so `F = torch.nn.functional`
and `def f(m=torch.nn)` are seen for what they are. The checks, by family:

- routes: a path that names a system module or a root package again (`typing.sys`,
  `torch.backends.torch`), a private name, Triton beyond its kernel API, or a module that lives
  elsewhere than the path says (resolved in the installed packages); blocked built-ins, used or
  rebound; dunders, frame attributes, special methods, metaclasses, tensor subclasses;
- dynamic code: evaluated annotations (get_type_hints, ForwardRef, annotations that call);
- patches: any write to an attribute of anything but `self`, hooks, attribute copiers;
- torch work: torch paths, computing methods, host callables run by Triton (grids, hooks,
  heuristics) that do more than index arithmetic, and operators or methods on values that a
  simple flow analysis knows to be tensors;
- fallbacks, inheritance from the reference, and exact-size branches: a literal equal to a
  benchmark size used other than as a threshold (`n >= 2048` in a heuristic) or a tile cap;
- faithfulness: host code that branches on the device type, or reads tensor addresses (the CPU
  judge would check a path, or a cache, no GPU run takes).

Names are resolved by scope (builder.judge.scopes): a parameter or local that shadows a built-in
or an imported name is that local, not the built-in (`def avg_pool1d(input, ...)`).

Each check is one function of `CHECKS`, with the reason codes it gives and the known-bad
fixtures (`seeds/<problem>/wrong/`) that show it. The runtime (sandboxed child, guards, trusted
reference) backs these checks up.
"""

from __future__ import annotations

import ast
import importlib
import operator
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from math import prod
from typing import NamedTuple

from builder.judge.scopes import Scopes


class Finding(NamedTuple):
    """One rule broken: a reason code from builder.judge.reasons and a sentence for people."""

    reason: str
    detail: str


#: Modules candidate code may import besides these, any import is a finding. Besides torch and
#: triton, plain-Python helpers that reach no process, file, code or object by name: `operator`
#: (but for PURE_MODULE_DENIED), `bisect`, `heapq`, `cmath`, `fractions` compute on the values they
#: are given. Left out on purpose: `string` (its Formatter looks attributes up by name), `copy`
#: (runs reduction hooks), `random` (a result that changes from run to run), `re` (a pattern can
#: run for hours).
ALLOWED_MODULES = frozenset(
    {"torch", "triton", "math", "typing", "typing_extensions", "functools", "dataclasses",
     "__future__", "itertools", "collections", "numbers", "enum", "abc", "operator", "bisect", "heapq",
     "cmath", "fractions"}
)
#: Names of allowed modules that reach attributes or methods by name, as getattr does.
PURE_MODULE_DENIED = {"operator": frozenset({"attrgetter", "methodcaller"})}
#: Modules that reach the process, the file system, the network or native code.
SYSTEM_MODULES = frozenset(
    {"os", "sys", "subprocess", "socket", "ctypes", "cffi", "importlib", "shutil", "pathlib",
     "builtins", "signal", "multiprocessing", "threading", "_thread", "concurrent", "asyncio",
     "io", "tempfile", "glob", "pickle", "marshal", "shelve", "gc", "inspect", "urllib", "http",
     "ftplib", "smtplib", "ssl", "requests", "platform", "resource", "mmap", "fcntl", "pty",
     "runpy", "code", "codeop", "atexit", "faulthandler", "sysconfig", "site", "zipimport",
     "pkgutil", "webbrowser", "select", "selectors", "weakref", "linecache"}
)
#: Built-in functions that execute strings, open files or reach objects by name.
SYSTEM_BUILTINS = frozenset(
    {"open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr",
     "globals", "locals", "vars", "breakpoint", "__builtins__", "__loader__", "__spec__"}
)
#: Dunder attributes that plain kernel code has a use for.
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__doc__"})
#: Special methods a class in an answer may define: none of them changes how torch or the judge
#: sees an object.
DEFINABLE_DUNDERS = frozenset({"__init__", "__post_init__", "__repr__", "__str__"})
#: Those a plain class (no base but object, no metaclass) may define too: a launcher called as a
#: function, a table indexed or iterated. Its objects are not tensors, modules or the judge's.
PLAIN_CLASS_DUNDERS = frozenset({"__call__", "__len__", "__iter__", "__getitem__", "__contains__"})

#: torch.X names that allocate, describe or view tensors without computing.
TORCH_OK = frozenset(
    {"Tensor", "Size", "device", "dtype", "float16", "float32", "float64", "bfloat16", "half",
     "float", "double", "int8", "int16", "int32", "int64", "uint8", "long", "int", "bool",
     "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
     "full_like", "arange", "tensor", "is_tensor", "no_grad", "inference_mode", "finfo", "iinfo",
     "is_floating_point", "get_default_dtype", "set_grad_enabled", "backends", "nn", "cuda",
     "channels_last", "channels_last_3d", "contiguous_format", "preserve_format", "memory_format",
     "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "movedim", "moveaxis",
     "squeeze", "unsqueeze", "narrow", "t"}
)
#: torch.X names that reach native code, files or processes.
TORCH_SYSTEM = frozenset(
    {"_C", "utils", "library", "hub", "multiprocessing", "distributed", "classes", "_ops",
     "save", "load", "from_file", "serialization", "package", "profiler", "testing", "overrides"}
)
#: torch.nn.X names a kernel module may use (and torch.nn.functional.pad: a copy with a margin).
#: Beside them: torch.nn.init (setting parameters at construction; the judge sets its own values
#: anyway) and every layer class (nn.LayerNorm as the holder of a weight, a bias and eps, under
#: the reference's own names). A layer called in forward computes with aten ops, and the runtime
#: guard refuses it there.
NN_OK = frozenset({"Module", "Parameter", "Buffer", "ModuleList", "ModuleDict", "functional", "init"})
#: torch.cuda.X names that neither compute nor change streams.
CUDA_OK = frozenset(
    {"is_available", "current_device", "device_count", "get_device_properties", "get_device_name",
     "get_device_capability", "synchronize", "Event", "current_stream", "default_stream", "device"}
)
#: torch.cuda.X names that queue work away from the default stream.
CUDA_STREAMS = frozenset(
    {"Stream", "stream", "ExternalStream", "StreamContext", "set_stream", "streams", "graph",
     "graphs", "CUDAGraph", "make_graphed_callables"}
)
#: Tensor methods that compute (outside @triton.jit bodies, where Triton tensors have some too).
COMPUTE_METHODS = frozenset(
    {"mean", "sum", "nansum", "nanmean", "cumsum", "cumprod", "prod", "unfold", "avg_pool1d",
     "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "max_pool1d",
     "max_pool2d", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "convolution",
     "matmul", "mm", "bmm", "baddbmm", "addbmm", "mv", "dot", "outer", "tensordot", "kron",
     "einsum", "addmm", "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide",
     "floor_divide", "fmod", "remainder", "pow", "pow_", "exp", "exp_", "sqrt", "rsqrt",
     "reciprocal", "neg", "abs", "clamp", "clip", "lerp", "addcmul", "addcdiv", "where",
     "masked_fill", "masked_fill_", "index_put", "index_put_", "put_", "index_copy", "median",
     "var", "std", "amax", "amin", "argmax", "argmin", "cummax", "cummin", "logcumsumexp",
     "logsumexp", "softmax", "log_softmax", "sigmoid", "tanh", "relu", "sort", "topk", "gather",
     "scatter", "scatter_", "scatter_add", "scatter_add_", "scatter_reduce", "index_add",
     "index_add_", "index_select", "masked_select", "diff", "flip", "roll", "repeat_interleave",
     "trapz", "trapezoid", "numpy", "tolist", "apply_", "map_", "sum_to_size", "unfold_copy",
     "set_", "untyped_storage", "storage"}
)
#: Attribute names that, when reassigned, tamper with timing.
TIMER_NAMES = frozenset(
    {"synchronize", "Event", "elapsed_time", "record", "perf_counter", "perf_counter_ns", "time",
     "monotonic", "monotonic_ns", "do_bench", "Timer", "current_stream"}
)
#: Module aliases that must only be used to reach a name, never passed around bare.
TORCH_MODULES = frozenset({"torch", "torch.nn", "torch.nn.functional", "torch.cuda"})
#: Integers at most this large that are powers of two pass the hard-coded size check.
BLOCK_SIZE_LIMIT = 1024
#: triton.X names of the kernel-writing API; the rest (compiler, knobs, backends, tools) reach native code.
TRITON_OK = frozenset(
    {"jit", "autotune", "heuristics", "Config", "cdiv", "next_power_of_2", "language", "runtime"}
)
#: Built-ins that end the process, read input or build classes; reaching them is system access too.
PROCESS_BUILTINS = frozenset({"exit", "quit", "input", "help", "memoryview", "__build_class__"})
#: Built-in names an answer may neither use nor rebind.
BLOCKED_BUILTINS = SYSTEM_BUILTINS | PROCESS_BUILTINS
#: Names that evaluate string annotations (or dispatch on them) at run time.
DYNAMIC_NAMES = frozenset(
    {"get_type_hints", "ForwardRef", "_eval_type", "evaluate_forward_ref", "get_annotations",
     "singledispatch", "singledispatchmethod"}
)
#: Attributes of frames, generators, code and tracebacks: each is a way back to globals and built-ins.
FRAME_ATTRS = frozenset(
    {"gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_globals", "f_locals",
     "f_builtins", "f_back", "f_code", "tb_frame", "tb_next", "co_code", "co_consts", "co_names",
     "func_globals", "mro"}
)
#: Attribute names that are routes on any object: system modules and root packages (tensor
#: methods named like a module, `select` and `code`, are left out).
ROUTE_ATTRS = (SYSTEM_MODULES - {"select", "code"}) | {"torch", "triton", "np"}
#: Calls that copy attributes from one object onto another (a setattr in disguise).
ATTRIBUTE_COPIERS = frozenset({"update_wrapper", "wraps"})
#: Methods that turn a tensor into an instance of another class.
SUBCLASSING_METHODS = frozenset({"as_subclass", "_make_subclass", "_make_wrapper_subclass"})
#: Tensor methods a known tensor may call outside a kernel: sizes, views, allocation, copies and
#: fills. Reading single values (item, select) is left to the runtime's host-compute check.
TENSOR_SAFE_METHODS = frozenset(
    {"numel", "size", "stride", "dim", "data_ptr", "element_size", "is_contiguous",
     "storage_offset", "nelement", "new_empty", "new_zeros", "new_ones", "new_full",
     "new_tensor", "zero_", "fill_", "copy_", "item", "type", "get_device", "is_floating_point",
     "requires_grad_", "unbind", "split", "chunk"}
)
#: Methods that install hooks on modules, tensors or Triton launchers.
HOOK_METHODS = frozenset(
    {"register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
     "register_backward_hook", "register_hook", "register_module_forward_hook",
     "register_module_forward_pre_hook", "add_pre_run_hook", "register_post_accumulate_grad_hook"}
)
#: Keyword arguments whose values Triton calls on the host around a launch.
HOST_CALLABLE_KEYWORDS = frozenset({"pre_hook", "post_hook", "prune_configs_by", "perf_model",
                                    "early_config_prune", "launch_metadata", "do_bench"})
#: What may follow triton.runtime.driver: reading the active device, stream and its properties.
DRIVER_OK = frozenset({"active", "get_current_device", "get_current_stream", "get_device_capability",
                       "get_active_torch_device", "get_current_target", "utils", "get_device_properties"})
#: What a host callable run by Triton (grid, hook, heuristic) may call: index arithmetic only.
PURE_CALLS = frozenset(
    {"min", "max", "int", "len", "abs", "range", "tuple", "list", "sorted", "float", "bool", "round",
     "isinstance", "enumerate", "zip", "dict", "divmod", "sum", "triton.cdiv", "triton.next_power_of_2",
     "functools.reduce"}
)
#: Methods a host callable may call: reading the launch arguments or tensor sizes, or clearing an output.
PURE_METHODS = frozenset(
    {"get", "items", "keys", "values", "zero_", "fill_", "numel", "size", "stride", "dim",
     "element_size", "nelement"}
)
#: Calls that build a plain Python container (never a tensor).
CONTAINER_CALLS = frozenset({"list", "sorted", "set", "dict", "tuple", "reversed"})
#: Literals and comprehensions that build a plain Python container.
CONTAINER_NODES = (ast.List, ast.ListComp, ast.Set, ast.SetComp, ast.Dict, ast.DictComp, ast.Tuple)
#: torch.X calls that return a new tensor.
TENSOR_MAKERS = frozenset(
    {"empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
     "full_like", "arange", "tensor"}
)
#: Tensor methods that return a tensor without computing a result (views, copies, casts).
TENSOR_VIEWS = frozenset(
    {"view", "reshape", "contiguous", "clone", "flatten", "permute", "transpose", "squeeze",
     "unsqueeze", "expand", "narrow", "select", "float", "half", "to", "as_strided", "view_as",
     "reshape_as", "detach", "t", "cuda", "cpu", "as_subclass", "movedim", "moveaxis", "swapaxes",
     "swapdims", "unflatten", "expand_as", "type_as", "double", "bfloat16", "long", "int", "bool"}
)
#: Tensor attributes that describe it (reading one computes nothing).
TENSOR_DATA_ATTRS = frozenset(
    {"shape", "dtype", "device", "is_cuda", "ndim", "layout", "requires_grad", "grad", "T", "mT",
     "data", "real", "names", "is_leaf", "itemsize", "nbytes"}
)
#: Safe tensor methods whose result is a tensor again (the others return sizes or numbers).
TENSOR_RETURNING_SAFE = frozenset(
    {"new_empty", "new_zeros", "new_ones", "new_full", "new_tensor", "zero_", "fill_", "copy_",
     "requires_grad_", "unbind", "split", "chunk"}
)
#: Arithmetic and bitwise operators, which on tensors dispatch to PyTorch kernels.
TENSOR_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult,
                    ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift)
#: Python built-ins and helpers that, given tensors, add or compare them with PyTorch kernels.
TENSOR_BUILTINS = frozenset({"sum", "max", "min", "abs", "pow", "round", "divmod", "reduce",
                             "accumulate", "fsum", "prod"})
#: Nodes that define a function.
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
#: Operators folded when literals are combined into a size (`256 * 256`, `1 << 16`).
CONSTANT_OPERATIONS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                       ast.LShift: operator.lshift, ast.Pow: operator.pow}
#: Names whose literal values are tile sizes, not problem sizes.
BLOCK_WORDS = ("BLOCK", "TILE", "CAP", "CHUNK", "WARPS", "STAGES", "MAX", "LIMIT")


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted module path, from every import in the file."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def bindings(tree: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, value) pairs of every simple binding: assignments, tuple unpacking, walrus,
    for-loops over literal sequences, and parameter defaults (the parameter is the target)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _pair(target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            yield from _pair(node.target, node.value)
        elif isinstance(node, ast.For) and isinstance(node.iter, (ast.Tuple, ast.List, ast.Set)):
            for element in node.iter.elts:
                yield from _pair(node.target, element)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            yield from _pair(node.optional_vars, node.context_expr)
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            pairs = list(zip(positional[len(positional) - len(node.defaults):], node.defaults))
            pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
            for arg, default in pairs:
                yield ast.Name(id=arg.arg, ctx=ast.Store()), default


def _pair(target: ast.expr, value: ast.expr) -> Iterator[tuple[ast.expr, ast.expr]]:
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
            and len(target.elts) == len(value.elts):
        for t, v in zip(target.elts, value.elts):
            yield from _pair(t, v)
    else:
        yield target, value


class Aliases(dict[str, str]):
    """Name -> dotted path, with the Name nodes that do not take it (`shadowed`): a function's
    local that is bound to no path there (a parameter `F`, a loop variable `torch`)."""

    shadowed: frozenset[int] = frozenset()


def name_aliases(tree: ast.AST, scopes: Scopes | None = None) -> Aliases:
    """Import aliases, plus local names bound (directly or through other locals) to such a path.
    With `scopes`, a function's local that no binding in that function ties to a path is shadowed."""
    aliases = Aliases(import_aliases(tree))
    pairs = [(t, v) for t, v in bindings(tree) if isinstance(t, ast.Name)]
    for _ in range(4):  # enough passes for chains of local aliases
        for target, value in pairs:
            path = dotted(value, aliases)
            if path is not None:
                aliases[target.id] = path
    if scopes is not None:
        aliases.shadowed = _shadowed(tree, scopes, aliases, pairs)
    return aliases


def _shadowed(tree: ast.AST, scopes: Scopes, aliases: Aliases,
              pairs: list[tuple[ast.Name, ast.expr]]) -> frozenset[int]:
    """Name nodes that resolve to a function's local which that function binds to no path."""
    tied: set[tuple[int, str]] = set()  # (function, name) bound to a path in that function
    for target, value in pairs:
        owner = scopes.local(target) if id(target) in scopes.scope_of else None
        if owner is not None and dotted(value, aliases) is not None:
            tied.add((id(owner), target.id))
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            positional = fn.args.posonlyargs + fn.args.args
            defaults = list(zip(positional[len(positional) - len(fn.args.defaults):], fn.args.defaults))
            defaults += [(a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None]
            tied |= {(id(fn), a.arg) for a, d in defaults if dotted(d, aliases) is not None}
        if isinstance(fn, (ast.Import, ast.ImportFrom)) and scopes.in_function(fn):
            owner = scopes.scope_of[id(fn)]
            tied |= {(id(owner), a.asname or a.name.split(".")[0]) for a in fn.names}
    shadowed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases:
            owner = scopes.local(node)
            if owner is not None and (id(owner), node.id) not in tied:
                shadowed.add(id(node))
    return frozenset(shadowed)


def dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted path of a Name/Attribute chain rooted at an imported name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases and id(node) not in getattr(aliases, "shadowed", ()):
        return ".".join([aliases[node.id], *reversed(parts)])
    return None


def is_triton_kernel(fn: ast.AST, aliases: dict[str, str]) -> bool:
    """True for a function decorated with triton.jit (bare or called)."""
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for deco in fn.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        path = dotted(target, aliases) or ""
        if path.startswith("triton") and path.endswith(".jit"):
            return True
    return False


def forbidden_sizes(input_shape: Iterable[int], output_shape: Iterable[int]) -> frozenset[int]:
    """Benchmark dims, and products of several dims that are not powers of two (those double as
    tile budgets); small powers of two are block sizes and always pass."""
    sizes: set[int] = set()
    for shape in (tuple(input_shape), tuple(output_shape)):
        sizes.update(shape)
        for count in range(2, len(shape) + 1):
            sizes.update(p for p in (prod(g) for g in combinations(shape, count)) if not _power_of_two(p))
    return frozenset(s for s in sizes if s > 1 and not (s <= BLOCK_SIZE_LIMIT and _power_of_two(s)))


def _power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


@dataclass(frozen=True)
class Source:
    """The answer's syntax tree, read once for every check."""

    tree: ast.Module
    aliases: Aliases  # names -> dotted paths (scope-aware)
    scopes: Scopes  # which function binds each name
    kernels: list[ast.AST]  # the @triton.jit functions
    in_kernel: set[int]  # ids of every node inside one
    receivers: set[int]  # ids of the `self`/`cls` names that are a method's own
    sizes: frozenset[int]  # the benchmark's sizes

    @classmethod
    def of(cls, tree: ast.Module, sizes: frozenset[int] = frozenset()) -> Source:
        scopes = Scopes(tree)
        aliases = name_aliases(tree, scopes)
        kernels = [n for n in ast.walk(tree) if is_triton_kernel(n, aliases)]
        return cls(tree, aliases, scopes, kernels, {id(sub) for k in kernels for sub in ast.walk(k)},
                   _receivers(tree, aliases), sizes)

    def host(self) -> Iterator[ast.AST]:
        """Every node outside the kernels."""
        return (n for n in ast.walk(self.tree) if id(n) not in self.in_kernel)


class Check(NamedTuple):
    """One static check: a function of the source, the reason codes it gives, and the known-bad
    fixtures that show it (paths under seeds/)."""

    run: Callable[[Source], Iterable[Finding]]
    reasons: tuple[str, ...]
    fixtures: tuple[str, ...] = ()


def scan(tree: ast.Module, sizes: frozenset[int] = frozenset()) -> list[Finding]:
    """Every anti-cheat finding in `tree`, check by check (CHECKS)."""
    source = Source.of(tree, sizes)
    return [finding for check in CHECKS for finding in check.run(source)]


#: Static methods of a torch.autograd.Function whose first parameter is the call's own context.
CTX_METHODS = frozenset({"forward", "backward", "setup_context"})
#: Decorators that leave a method's first parameter its own instance (or class).
RECEIVER_DECORATORS = frozenset({"property", "classmethod", "torch.no_grad", "torch.inference_mode"})


def _receivers(tree: ast.AST, aliases: Aliases) -> set[int]:
    """The `self` and `cls` names that are a method's own first parameter and are never rebound
    in it, and the `ctx` of a torch.autograd.Function's static forward and backward: only through
    these may an answer write attributes or read private ones. A function outside a class, or a
    loop variable, named `self` could be any object, torch.Tensor included."""
    found: set[int] = set()
    for owner in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        function = any(dotted(base, aliases) == "torch.autograd.Function" for base in owner.bases)
        for method in owner.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = method.args.posonlyargs + method.args.args
            decorators = [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in method.decorator_list]
            if function and method.name in CTX_METHODS and decorators == ["staticmethod"]:
                own = ("ctx",)
            else:
                own = ("self", "cls")
                if any(d not in RECEIVER_DECORATORS for d in decorators):  # it may hand the method any first argument
                    continue
            if not params or params[0].arg not in own:
                continue
            name = params[0].arg
            inside = list(ast.walk(method))
            rebound = any(isinstance(n, ast.arg) and n.arg == name and n is not params[0] for n in inside) or any(
                isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load) for n in inside) or any(
                isinstance(n, (ast.Global, ast.Nonlocal)) and name in n.names for n in inside)
            if not rebound:
                found |= {id(n) for n in inside if isinstance(n, ast.Name) and n.id == name}
    return found


def _unbound_methods(src: Source) -> Iterator[Finding]:
    """A method of a class of the file taken through the class (`Box.put`, `type(b).put`): its
    `self` is then whatever the caller passes, torch.Tensor included."""
    tree = src.tree
    methods: dict[str, set[str]] = {}
    for owner in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        methods[owner.name] = {m.name for m in owner.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                               and not any(ast.unparse(d) in ("staticmethod", "classmethod") for d in m.decorator_list)}
    every = set().union(*methods.values()) if methods else set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        through_class = isinstance(base, ast.Name) and node.attr in methods.get(base.id, ())
        through_type = (isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "type"
                        and node.attr in every)
        if through_class or through_type:
            yield Finding("monkey_patch", f"line {node.lineno}: takes the method {node.attr} through its class, "
                                          "so any object can be its self")


#: Built-ins a @triton.jit body may use.
KERNEL_BUILTINS = frozenset({"range", "min", "max", "len", "int", "float", "bool", "abs", "print", "isinstance",
                             "tuple", "zip", "enumerate", "getattr", "hasattr", "type", "AssertionError"})


def _kernel_globals(src: Source) -> Iterator[Finding]:
    """Module-level names a @triton.jit body reads that Triton's compiler would refuse: anything
    but imports, other kernels and constants (on the CPU the interpreter runs the body as Python,
    so a list or a helper function there would carry values to the host). Anywhere in the file:
    `.handle`, the interpreter's own buffer behind a Triton tensor, and a tl.constexpr of anything
    but constants (a function in one reaches the kernel the same way)."""
    tree, kernels = src.tree, src.kernels
    allowed = set(import_aliases(tree)) | KERNEL_BUILTINS
    constant = lambda value: _constant_value(value, src)  # noqa: E731
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in kernels:
            allowed.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and constant(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            allowed |= {t.id for t in targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "handle":
            yield Finding("kernel_host_access", f"line {node.lineno}: reaches .handle, the buffer behind a Triton tensor")
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("constexpr") and not all(
                map(constant, node.args)):
            yield Finding("kernel_host_access", f"line {node.lineno}: makes a constexpr of "
                                                f"{ast.unparse(node)[:60]}, which is no constant")
    for kernel in kernels:
        body = [node for statement in kernel.body for node in ast.walk(statement)]
        local = {a.arg for a in ast.walk(kernel.args) if isinstance(a, ast.arg)}
        local |= {n.id for n in body if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        for node in body:
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local | allowed:
                yield Finding("kernel_host_access", f"line {node.lineno}: kernel {kernel.name} reads {node.id}, "
                                                    "which is no constant, import or kernel")


#: Built-ins that make a constant of constants (`float("-inf")`), and constants of modules.
CONSTANT_BUILTINS = frozenset({"float", "int", "bool"})
CONSTANT_PATHS = frozenset({"math.inf", "math.nan", "math.pi", "math.e", "math.tau"})
#: Pure functions of the math module: of constants, a constant (`math.log2(math.e)`).
CONSTANT_FUNCTIONS = frozenset({"math.log", "math.log2", "math.log10", "math.exp", "math.sqrt", "math.pow"})


def _constant_value(node: ast.AST, src: Source) -> bool:
    """A constant: literals (numbers, strings, tuples of them, arithmetic on them), `float("-inf")`
    and the like (the built-in itself, never a rebound name), `math.inf`, `math.log2(math.e)`, Triton's dtypes
    (`tl.float32`), or a tl.constexpr(...) of one of these. Never a name of the file's own."""
    if isinstance(node, ast.Call):
        if node.keywords or not all(_constant_value(a, src) for a in node.args):
            return False
        func = node.func
        if isinstance(func, ast.Name) and func.id in CONSTANT_BUILTINS:
            return src.scopes.surely_builtin(func)
        if dotted(func, src.aliases) in CONSTANT_FUNCTIONS:
            return True
        return ast.unparse(func).endswith("constexpr") and len(node.args) == 1
    if isinstance(node, (ast.Attribute, ast.Name)):
        path = dotted(node, src.aliases) or ""
        return path in CONSTANT_PATHS or _triton_dtype(path)
    if isinstance(node, ast.Tuple):
        return all(_constant_value(e, src) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _constant_value(node.left, src) and _constant_value(node.right, src)
    if isinstance(node, ast.UnaryOp):
        return _constant_value(node.operand, src)
    return isinstance(node, ast.Constant)


def _triton_dtype(path: str) -> bool:
    """Whether a dotted path names one of triton.language's dtypes (tl.float32, tl.int64)."""
    parts = path.split(".")
    if parts[:2] != ["triton", "language"] or len(parts) != 3:
        return False
    import triton.language as tl

    return isinstance(getattr(tl, parts[2], None), tl.dtype)


def _imports(src: Source) -> Iterator[Finding]:
    tree = src.tree
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield Finding("forbidden_import", f"line {node.lineno}: relative import")
                continue
            modules = [node.module or ""]
            if any(a.name == "*" for a in node.names):
                yield Finding("forbidden_import", f"line {node.lineno}: star import from {modules[0]}")
        else:
            continue
        for module in modules:
            root = module.split(".")[0]
            if root in SYSTEM_MODULES:
                yield Finding("system_access", f"line {node.lineno}: imports {module}")
            elif root not in ALLOWED_MODULES:
                yield Finding("forbidden_import", f"line {node.lineno}: imports {module}")


def route(path: str) -> str | None:
    """Why a dotted path leaves the allowed surface of its root module, else None.

    A path is a route when one of its names is a system module or a root module again
    (`typing.sys`, `torch.backends.torch`), a private or special name (`torch._dynamo`), a part
    of Triton beyond its kernel API (`triton.runtime.build`), or when it resolves, in the
    installed packages, to a module living elsewhere than the path says (`F` inside a torch module).
    """
    parts = path.split(".")
    if len(parts) > 1 and parts[1] in PURE_MODULE_DENIED.get(parts[0], ()):
        return f"{path} reaches attributes or methods by name"
    for i, part in enumerate(parts[1:], start=1):
        shown = ".".join(parts[: i + 1])
        if part in SYSTEM_MODULES or part in ("torch", "triton"):
            return f"{shown} reaches the module {part} through {'.'.join(parts[:i])}"
        if part.startswith("_") and part not in ALLOWED_DUNDERS:
            return f"{shown} is private to {'.'.join(parts[:i])}"
    if parts[0] == "triton" and len(parts) > 1:
        if parts[1] not in TRITON_OK or (parts[1] == "runtime" and (
                parts[2:3] not in ([], ["driver"]) or not set(parts[3:]) <= DRIVER_OK)):
            return f"{path} is outside Triton's kernel API"
    elsewhere = _module_elsewhere(tuple(parts))
    if elsewhere:
        return f"{path} is the module {elsewhere}, reached through another module's attribute"
    return None


@lru_cache(maxsize=4096)
def _module_elsewhere(parts: tuple[str, ...]) -> str | None:
    """The real name of a module that `parts` reaches under another name (installed packages,
    attributes already set; nothing is imported beyond the allowed root)."""
    if parts[0] not in ALLOWED_MODULES:
        return None
    try:
        current: object = importlib.import_module(parts[0])
    except ImportError:
        return None
    for i, part in enumerate(parts[1:], start=1):
        if not isinstance(current, types.ModuleType):
            return None
        current = vars(current).get(part)
        if isinstance(current, types.ModuleType) and current.__name__ != ".".join(parts[: i + 1]):
            return current.__name__
    return None


def _is_module(path: str) -> bool:
    """True when `path` names a module in the installed packages."""
    parts = path.split(".")
    if parts[0] not in ALLOWED_MODULES:
        return False
    try:
        current: object = importlib.import_module(parts[0])
    except ImportError:
        return False
    for part in parts[1:]:
        if not isinstance(current, types.ModuleType):
            return False
        current = vars(current).get(part)
    return isinstance(current, types.ModuleType)


@lru_cache(maxsize=256)
def _nn_layer(name: str) -> bool:
    """True when torch.nn.`name` is a layer class (a subclass of torch.nn.Module)."""
    import torch.nn

    value = vars(torch.nn).get(name)
    return isinstance(value, type) and issubclass(value, torch.nn.Module)


def _torch_path(path: str) -> Finding | None:
    """What a torch.* path means for the verdict; None when it is harmless."""
    parts = path.split(".")
    if parts[0] != "torch" or len(parts) == 1:
        return None
    head, rest = parts[1], parts[2:]
    if head == "nn":
        if rest and rest[0] == "functional" and len(rest) > 1 and rest[1:] != ["pad"]:
            return Finding("torch_op", f"uses {path}")
        if rest and rest[0] not in NN_OK and not _nn_layer(rest[0]):
            return Finding("torch_op", f"uses {path}")
        if rest[:1] == ["Module"] and len(rest) > 1 and rest[1] not in ALLOWED_DUNDERS:
            return Finding("monkey_patch", f"reaches {path} of every module")
        return None
    if head == "cuda":
        if rest and rest[0] in CUDA_STREAMS:
            return Finding("side_stream", f"uses {path}")
        if rest and rest[0] not in CUDA_OK:
            return Finding("torch_op", f"uses {path}")
        return None
    if head == "autograd":  # a custom autograd.Function: its forward runs under the same watch
        return None if rest in ([], ["Function"]) else Finding("torch_op", f"uses {path}")
    if head == "Tensor" and rest and rest[0] in COMPUTE_METHODS:
        return Finding("torch_op", f"uses {path}")
    if head in TORCH_SYSTEM:
        return Finding("system_access", f"uses {path}")
    if head not in TORCH_OK:
        return Finding("torch_op", f"uses {path}")
    return None


def _path_findings(path: str, line: int) -> Iterator[Finding]:
    """Findings for one resolved path, wherever it appears (import, name, attribute chain)."""
    why = route(path)
    if why:
        yield Finding("system_access", f"line {line}: {why}")
    if path.split(".")[-1] in DYNAMIC_NAMES:
        yield Finding("dynamic_code", f"line {line}: {path} evaluates annotations or dispatches on them")
    finding = _torch_path(path)
    if finding:
        yield Finding(finding.reason, f"line {line}: {finding.detail}")


def _names(src: Source) -> Iterator[Finding]:
    """Imported paths, built-ins, dunders, torch names and computing method calls."""
    tree, aliases, in_kernel, receivers = src.tree, src.aliases, src.in_kernel, src.receivers
    bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    containers = _containers(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from _import_paths(node)
            if not src.scopes.in_function(node):  # an import in a function binds a local
                for shadow in sorted({a.asname or a.name for a in node.names} & BLOCKED_BUILTINS):
                    yield Finding("dynamic_code", f"line {line}: an import shadows the built-in {shadow}")
        elif isinstance(node, ast.Name):
            if node.id in BLOCKED_BUILTINS and src.scopes.maybe_builtin(node):  # a function's local is not it
                if isinstance(node.ctx, ast.Load):
                    yield Finding("system_access", f"line {line}: uses built-in {node.id}")
                else:
                    yield Finding("dynamic_code", f"line {line}: rebinds the built-in name {node.id}")
            if id(node) not in bases:
                yield from _chain(node, aliases, in_kernel, id(node) in called)
        elif isinstance(node, ast.Attribute):
            if _dunder(node.attr) and node.attr not in ALLOWED_DUNDERS:
                yield Finding("system_access", f"line {line}: reaches attribute {node.attr}")
            elif node.attr in FRAME_ATTRS or node.attr in ROUTE_ATTRS:
                yield Finding("system_access", f"line {line}: reaches attribute {node.attr}")
            elif node.attr.startswith("_") and not _dunder(node.attr) and id(node.value) not in receivers:
                yield Finding("system_access", f"line {line}: reaches the private attribute {node.attr}")
            elif node.attr in DYNAMIC_NAMES:
                yield Finding("dynamic_code", f"line {line}: uses {node.attr}")
            elif (node.attr in COMPUTE_METHODS and id(node) not in in_kernel
                    and not _is_container(node.value, containers)
                    and id(node.value) not in receivers
                    and (dotted(node, aliases) or "torch").startswith("torch")):
                yield Finding("torch_op", f"line {line}: uses .{node.attr} outside a kernel")
            if id(node) not in bases:
                yield from _chain(node, aliases, in_kernel, id(node) in called)
        elif isinstance(node, ast.Call):
            yield from _call(node, src)


def _call(node: ast.Call, src: Source) -> Iterator[Finding]:
    """Calls that copy attributes, build classes, make tensor subclasses, install hooks or load a
    file as a kernel's code."""
    line, aliases = node.lineno, src.aliases
    if _copies_attributes(node, aliases):
        shown = ast.unparse(node.func)
        yield Finding("monkey_patch", f"line {line}: {shown}() copies attributes onto another object")
    if isinstance(node.func, ast.Name) and node.func.id == "type" and len(node.args) == 3 \
            and src.scopes.maybe_builtin(node.func):
        yield Finding("dynamic_code", f"line {line}: type() with three arguments builds a class at run time")
    if any(k.arg == "ir_override" for k in node.keywords) or (
            (dotted(node.func, aliases) or "").endswith("Config") and len(node.args) > 6):
        yield Finding("system_access", f"line {line}: ir_override loads a file as the kernel's compiled code")
    if not isinstance(node.func, ast.Attribute):
        return
    if node.func.attr in SUBCLASSING_METHODS:
        yield Finding("system_access", f"line {line}: .{node.func.attr}() makes a tensor of another class")
    elif node.func.attr in HOOK_METHODS:
        yield Finding("monkey_patch", f"line {line}: installs a hook with .{node.func.attr}()")


def _copies_attributes(call: ast.Call, aliases: dict[str, str]) -> bool:
    """functools.update_wrapper, or functools.wraps told which attributes to copy."""
    name = (dotted(call.func, aliases) or ast.unparse(call.func)).split(".")[-1]
    if name not in ATTRIBUTE_COPIERS:
        return False
    return name == "update_wrapper" or any(k.arg in ("assigned", "updated") for k in call.keywords)


def _import_paths(node: ast.Import | ast.ImportFrom) -> Iterator[Finding]:
    if isinstance(node, ast.Import):
        paths = [a.name for a in node.names]
    else:
        paths = [f"{node.module}.{a.name}" for a in node.names if node.module and a.name != "*"]
    for path in paths:
        if path.split(".")[0] in ALLOWED_MODULES:
            for finding in _path_findings(path, node.lineno):
                yield Finding(finding.reason, finding.detail.replace(": ", f": imports {path}: ", 1))


def _chain(node: ast.Name | ast.Attribute, aliases: dict[str, str], in_kernel: set[int],
           called: bool) -> Iterator[Finding]:
    """Findings for a whole Name/Attribute chain that resolves through the file's aliases."""
    path = dotted(node, aliases)
    if not path or path.split(".")[0] not in ALLOWED_MODULES:
        return
    line = node.lineno
    if id(node) in in_kernel and path.startswith("torch"):
        yield Finding("torch_op", f"line {line}: a Triton kernel uses {path}")
        return
    if path in TORCH_MODULES and isinstance(node, ast.Name):
        yield Finding("torch_op", f"line {line}: passes the module {path} around")
    elif not called and path != "__future__.annotations" and _is_module(path):
        reason = "torch_op" if path.startswith("torch") else "system_access"
        yield Finding(reason, f"line {line}: passes the module {path} around")
    yield from _path_findings(path, line)


def _containers(tree: ast.AST) -> set[str]:
    """Names (and self attributes) that every binding sets to a plain list, set, dict or tuple."""
    kinds: dict[str, bool] = {}
    for target, value in bindings(tree):
        if isinstance(target, (ast.Name, ast.Attribute)):
            key = ast.unparse(target)
            kinds[key] = kinds.get(key, True) and _is_container(value, set())
    return {key for key, plain in kinds.items() if plain}


def _is_container(node: ast.AST, containers: set[str]) -> bool:
    if isinstance(node, CONTAINER_NODES):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONTAINER_CALLS:
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_container(node.left, containers) and _is_container(node.right, containers)
    return isinstance(node, (ast.Name, ast.Attribute)) and ast.unparse(node) in containers


def _definitions(src: Source) -> Iterator[Finding]:
    """Special methods, metaclasses, tensor subclasses and annotations that run or hold code."""
    tree, aliases = src.tree, src.aliases
    plain = {id(item) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) and not cls.keywords
             and all(isinstance(base, ast.Name) and base.id == "object" for base in cls.bases)
             for item in cls.body if isinstance(item, ast.FunctionDef) and item.name in PLAIN_CLASS_DUNDERS}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name in BLOCKED_BUILTINS and not src.scopes.in_function(node):
                yield Finding("dynamic_code", f"line {node.lineno}: {node.name} shadows a built-in")
            elif _dunder(node.name) and node.name not in DEFINABLE_DUNDERS and id(node) not in plain:
                yield Finding("system_access", f"line {node.lineno}: defines the special method {node.name}")
        if isinstance(node, ast.ClassDef):
            if node.keywords:
                detail = f"class {node.name} takes a metaclass or class arguments"
                yield Finding("system_access", f"line {node.lineno}: {detail}")
            for base in node.bases:
                path = dotted(base, aliases) or ""
                if path in ("torch.Tensor", "torch.nn.Parameter"):
                    yield Finding("system_access", f"line {node.lineno}: class {node.name} subclasses {path}")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            notes = [a.annotation for a in every if a.annotation] + [r for r in [node.returns] if r]
        elif isinstance(node, ast.AnnAssign):
            notes = [node.annotation]
        else:
            continue
        for note in notes:
            if not _plain_annotation(note):
                yield Finding("dynamic_code", f"line {note.lineno}: annotation {ast.unparse(note)} holds code")


def _plain_annotation(note: ast.expr) -> bool:
    """An annotation made of names, subscripts and literals only (a string one must parse so too)."""
    allowed = (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List, ast.Constant, ast.Load,
               ast.BinOp, ast.BitOr, ast.Expression, ast.Index if hasattr(ast, "Index") else ast.Load)
    for sub in ast.walk(note):
        if not isinstance(sub, allowed):
            return False
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                inner = ast.parse(sub.value, mode="eval")
            except SyntaxError:
                return False
            if any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(inner)):
                return False
            if not _plain_annotation(inner.body):
                return False
    return True


def _attribute_targets(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, (ast.Tuple, ast.List)):
        for element in node.elts:
            yield from _attribute_targets(element)
    elif isinstance(node, ast.Starred):
        yield from _attribute_targets(node.value)
    elif isinstance(node, (ast.Attribute, ast.Subscript)):
        yield node


def _patches(src: Source) -> Iterator[Finding]:
    """Writes to attributes of anything but a method's own `self` (and to items of imported objects)."""
    tree, aliases, receivers = src.tree, src.aliases, src.receivers
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets = [node.optional_vars]
        else:
            continue
        for target in (t for raw in targets for t in _attribute_targets(raw)):
            if isinstance(target, ast.Subscript):
                base = target.value
                while isinstance(base, ast.Subscript):
                    base = base.value
                path = dotted(base, aliases)
                if path is not None and path.split(".")[0] in ALLOWED_MODULES:
                    yield Finding("monkey_patch", f"line {node.lineno}: writes into {path}")
                continue
            if id(target.value) in receivers and not _dunder(target.attr):
                continue
            path = dotted(target, aliases) or ast.unparse(target)
            parts = set(path.split("."))
            if path.split(".")[0] in ("time", "timeit") or parts & TIMER_NAMES:
                yield Finding("timer_patch", f"line {node.lineno}: reassigns {path}")
            else:
                yield Finding("monkey_patch", f"line {node.lineno}: reassigns {path}")


def _host_callables(src: Source) -> Iterator[Finding]:
    """Grid functions, autotune hooks and heuristics run by Triton on the host must only do index
    arithmetic: torch work there would run outside any kernel. They may call pure helpers: the
    file's own module-level functions (bound once, by their definition) that are pure in turn."""
    tree, aliases, kernels = src.tree, src.aliases, {k.name for k in src.kernels}
    defined: dict[str, list[ast.AST]] = {}
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.setdefault(n.name, []).append(n)
    for target, value in bindings(tree):
        if isinstance(target, ast.Name) and isinstance(value, ast.Lambda):
            defined.setdefault(target.id, []).append(value)
    callables: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in kernels:
            callables.append(("grid", node.slice))
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in HOST_CALLABLE_KEYWORDS:
                    callables.append((keyword.arg, keyword.value))
            if (dotted(node.func, aliases) or "").endswith("heuristics"):
                callables += [("heuristic", arg) for arg in node.args]
    helpers = _module_helpers(tree)
    for role, value in callables:
        for fn in _callables_in(value, defined):
            yield from _impure(fn, f"the {role} callable run by Triton", src, helpers, set())


def _layer_calls(src: Source) -> Iterator[Finding]:
    """A torch.nn layer may hold parameters (nn.LayerNorm for weight, bias and eps, under the
    reference's names); calling it, or its forward, computes with PyTorch. Layers bound to a name
    or an attribute anywhere; any call through that name (the runtime guard sees the rest)."""
    def layer(value: ast.AST) -> str | None:
        path = dotted(value.func, src.aliases) if isinstance(value, ast.Call) else None
        parts = (path or "").split(".")
        return path if len(parts) == 3 and parts[:2] == ["torch", "nn"] and _nn_layer(parts[2]) else None

    layers: dict[str, str] = {}
    for target, value in bindings(src.tree):
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name and (path := layer(value)):
            layers[name] = path
    for node in ast.walk(src.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "forward":
            func = func.value
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        built = layer(func) or layers.get(name or "")
        if built:
            yield Finding("torch_op", f"line {node.lineno}: calls a layer ({built}): PyTorch computes")


def _module_helpers(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level functions (and lambdas) whose name nothing else binds at module level."""
    counts: dict[str, int] = {}
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        names = list(_statement_names(node))
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.decorator_list:
            found[node.name] = node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and len(names) == 1:
            found[names[0]] = node.value
    globals_declared = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    return {name: fn for name, fn in found.items() if counts[name] == 1 and name not in globals_declared}


def _statement_names(node: ast.stmt) -> Iterator[str]:
    """Names a top-level statement binds."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        yield from (a.asname or a.name.split(".")[0] for a in node.names)
    else:
        yield from (n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load))


def _callables_in(value: ast.AST, defined: dict[str, list[ast.AST]]) -> Iterator[ast.AST]:
    if isinstance(value, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
        yield value
    elif isinstance(value, ast.Name) and value.id in defined:
        yield from defined[value.id]
    elif isinstance(value, ast.Dict):
        for item in value.values:
            yield from _callables_in(item, defined)
    elif isinstance(value, (ast.Tuple, ast.List)):
        for item in value.elts:
            yield from _callables_in(item, defined)


#: Paths a host callable may call besides PURE_CALLS: pure arithmetic of the allowed modules.
PURE_PREFIXES = ("math.", "operator.", "cmath.")


def _impure(fn: ast.AST, role: str, src: Source, helpers: dict[str, ast.AST], seen: set[int]) -> Iterator[Finding]:
    """Why `fn` does more than index arithmetic: each call that is no pure built-in (the built-in
    itself, never a name of the file), pure module function, size-reading method or pure helper
    of the file, and each slice."""
    seen.add(id(fn))
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            func, path = node.func, dotted(node.func, src.aliases)
            if isinstance(func, ast.Name) and func.id in PURE_CALLS and src.scopes.surely_builtin(func):
                continue
            if path in PURE_CALLS or (path or "").startswith(PURE_PREFIXES):
                continue
            if path is None and isinstance(func, ast.Attribute) and func.attr in PURE_METHODS:
                continue
            helper = helpers.get(func.id) if isinstance(func, ast.Name) and src.scopes.local(func) is None else None
            if helper is not None:
                if id(helper) not in seen:
                    yield from _impure(helper, f"{role} (through {func.id})", src, helpers, seen)
                continue
            what = f"calls {ast.unparse(func)}"
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, (ast.Slice, ast.Tuple)):
            what = f"slices {ast.unparse(node.value)}"
        else:
            continue
        yield Finding("torch_op", f"line {node.lineno}: {role} {what}")


class _Tensors:
    """Which host-side names hold tensors, by simple flow: forward's inputs; torch allocations;
    slices, views and arithmetic of tensors; containers holding them and loops over those;
    `self.<name>` set to one anywhere; parameters of local functions called with one; and calls
    to local functions that return one."""

    def __init__(self, tree: ast.AST, aliases: dict[str, str], in_kernel: set[int]) -> None:
        self.aliases = aliases
        self.functions = [n for n in ast.walk(tree) if isinstance(n, FUNCTION_NODES) and id(n) not in in_kernel]
        self.by_name: dict[str, ast.AST] = {n.name: n for n in self.functions if not isinstance(n, ast.Lambda)}
        self.by_name.update(
            {t.id: v for t, v in bindings(tree) if isinstance(t, ast.Name) and isinstance(v, ast.Lambda)})
        self.names: dict[int, set[str]] = {id(fn): set() for fn in self.functions}
        self.parent: dict[int, ast.AST] = {}  # a nested function sees its enclosing function's tensors
        for fn in self.functions:  # outer functions come first, so the closest enclosing one wins
            for sub in ast.walk(fn):
                if sub is not fn and isinstance(sub, FUNCTION_NODES):
                    self.parent[id(sub)] = fn
        self.shared: set[str] = set()  # "self.<attr>" keys, shared by every method
        self.returning: set[str] = set()  # local functions that return a tensor
        for fn in self.functions:
            if getattr(fn, "name", "") == "forward":
                # forward's inputs are tensors; not its `self`, nor an autograd.Function's `ctx`
                self.names[id(fn)] |= {a.arg for a in fn.args.posonlyargs + fn.args.args if a.arg not in ("self", "ctx")}
        for _ in range(4):  # enough passes for tensors to flow through a few calls and names
            for fn in self.functions:
                self._flow(fn)

    def known(self, fn: ast.AST) -> set[str]:
        names = self.names[id(fn)] | self.shared
        parent = self.parent.get(id(fn))
        return names | self.known(parent) if parent is not None else names

    def _flow(self, fn: ast.AST) -> None:
        known = self.known(fn)
        for target, value in list(bindings(fn)) + list(_loop_bindings(fn)):
            if self.is_tensor(value, known):
                for name in _bound_keys(target):
                    (self.shared if name.startswith("self.") else self.names[id(fn)]).add(name)
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None and self.is_tensor(node.value, known):
                self.returning.add(getattr(fn, "name", ""))
            elif isinstance(node, ast.Call):
                callee = self._local_callee(node)
                if callee is None:
                    continue
                params = callee.args.posonlyargs + callee.args.args
                if params and params[0].arg in ("self", "cls") and isinstance(node.func, ast.Attribute):
                    params = params[1:]
                for param, arg in zip(params, node.args):
                    if self.is_tensor(arg, known):
                        self.names[id(callee)].add(param.arg)
                for keyword in node.keywords:
                    if keyword.arg and self.is_tensor(keyword.value, known):
                        self.names[id(callee)].add(keyword.arg)

    def _local_callee(self, call: ast.Call) -> ast.AST | None:
        func = call.func
        if isinstance(func, ast.Lambda):
            return func
        if isinstance(func, ast.Name):
            return self.by_name.get(func.id)
        if isinstance(func, ast.Attribute):  # a method of a class in the file, on any object
            method = self.by_name.get(func.attr)
            params = getattr(method, "args", None)
            if params is not None and (params.posonlyargs + params.args)[:1] and \
                    (params.posonlyargs + params.args)[0].arg in ("self", "cls"):
                return method
        return None

    def is_tensor(self, node: ast.AST, known: set[str]) -> bool:
        if isinstance(node, ast.Name):
            return node.id in known
        if isinstance(node, ast.Attribute):
            return ast.unparse(node) in known or (
                node.attr in ("T", "mT", "data", "real") and self.is_tensor(node.value, known))
        if isinstance(node, ast.Subscript) and _tensor_index(node.slice):
            return True
        if isinstance(node, (ast.Subscript, ast.Starred, ast.NamedExpr)):
            return self.is_tensor(node.value, known)
        if isinstance(node, ast.BinOp):
            return self.is_tensor(node.left, known) or self.is_tensor(node.right, known)
        if isinstance(node, ast.UnaryOp):
            return self.is_tensor(node.operand, known)
        if isinstance(node, ast.IfExp):
            return self.is_tensor(node.body, known) or self.is_tensor(node.orelse, known)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return any(self.is_tensor(e, known) for e in node.elts)
        if isinstance(node, ast.Dict):
            return any(self.is_tensor(v, known) for v in node.values)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self.is_tensor(node.elt, known | _comprehension_names(node, self, known))
        if isinstance(node, ast.Call):
            return self._returns_tensor(node, known)
        return False

    def _returns_tensor(self, call: ast.Call, known: set[str]) -> bool:
        func = call.func
        path = dotted(func, self.aliases) or ""
        if path.startswith("torch.") and path.split(".")[-1] in TENSOR_MAKERS:
            return True
        if isinstance(func, ast.Attribute) and self.is_tensor(func.value, known):
            return func.attr not in TENSOR_SAFE_METHODS - TENSOR_RETURNING_SAFE
        if isinstance(func, ast.Name):
            if func.id in ("list", "tuple", "sorted", "reversed"):
                return any(self.is_tensor(a, known) for a in call.args)
            return func.id in self.returning
        callee = self._local_callee(call)
        return callee is not None and getattr(callee, "name", "") in self.returning


def _tensor_index(index: ast.AST) -> bool:
    """An index only arrays take: an Ellipsis, or a tuple holding a slice, an Ellipsis or None
    (a list refuses tuple indices)."""
    def special(node: ast.AST) -> bool:
        return isinstance(node, ast.Slice) or (isinstance(node, ast.Constant) and node.value in (Ellipsis, None))
    if isinstance(index, ast.Tuple):
        return any(special(e) for e in index.elts)
    return isinstance(index, ast.Constant) and index.value is Ellipsis


def _bound_keys(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        yield ast.unparse(target)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _bound_keys(element)
    elif isinstance(target, ast.Starred):
        yield from _bound_keys(target.value)


def _loop_bindings(fn: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    """(target, element) for loops and comprehensions: an element of `seq` is `seq[...]`."""
    for node in ast.walk(fn):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            yield node.target, ast.Subscript(value=node.iter, slice=ast.Constant(0), ctx=ast.Load())


def _comprehension_names(node: ast.AST, tensors: _Tensors, known: set[str]) -> set[str]:
    names: set[str] = set()
    for generator in node.generators:
        if tensors.is_tensor(generator.iter, known | names):
            names |= set(_bound_keys(generator.target))
    return names


def _tensor_arithmetic(src: Source) -> Iterator[Finding]:
    """Host-side work on values known to be tensors: operators, comparisons, computing methods,
    and Python built-ins (sum, max, functools.reduce) over them."""
    tree, aliases, in_kernel = src.tree, src.aliases, src.in_kernel
    tensors = _Tensors(tree, aliases, in_kernel)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for fn in tensors.functions:
        known = tensors.known(fn)
        for node in ast.walk(fn):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.BinOp) and isinstance(node.op, TENSOR_OPERATORS):
                operands = [node.left, node.right]
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, TENSOR_OPERATORS):
                operands = [node.target, node.value]
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Invert)):
                operands = [node.operand]
            elif isinstance(node, ast.Compare) and not any(
                    isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
                operands = [node.left, *node.comparators]
            elif isinstance(node, ast.Call):
                yield from _tensor_call(node, tensors, known)
                continue
            elif (isinstance(node, ast.Attribute) and id(node) not in called
                    and node.attr not in TENSOR_DATA_ATTRS and tensors.is_tensor(node.value, known)):
                yield Finding("torch_op", f"line {line}: takes the method .{node.attr} of a tensor")
                continue
            else:
                continue
            if any(tensors.is_tensor(o, known) for o in operands):
                yield Finding("torch_op", f"line {line}: tensor arithmetic outside a kernel: {ast.unparse(node)}")


def _tensor_call(call: ast.Call, tensors: _Tensors, known: set[str]) -> Iterator[Finding]:
    func = call.func
    line = call.lineno
    if isinstance(func, ast.Attribute) and func.attr not in TENSOR_SAFE_METHODS | TENSOR_VIEWS \
            and tensors.is_tensor(func.value, known):
        yield Finding("torch_op", f"line {line}: calls .{func.attr}() on a tensor outside a kernel")
    path = dotted(func, tensors.aliases) or (func.id if isinstance(func, ast.Name) else "")
    name = path.split(".")[-1]
    if (name in TENSOR_BUILTINS or path.startswith("operator.")) and any(tensors.is_tensor(a, known) for a in call.args):
        yield Finding("torch_op", f"line {line}: {ast.unparse(func)}() over tensors outside a kernel")


def _fallbacks(src: Source) -> Iterator[Finding]:
    tree = src.tree
    try_nodes = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
    shims = {id(node) for node in tree.body if import_shim(node, src.scopes)}
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in ast.walk(tree):
        if isinstance(node, try_nodes) and node.handlers and id(node) not in shims and not _harmless_try(node, own, src):
            yield Finding("fallback", f"line {node.lineno}: try/except can route around the kernel")


def _harmless_try(node: ast.AST, own: set[str], src: Source) -> bool:
    """A try whose handlers only give constants (pass, or return or bind a constant) and whose
    other blocks call no kernel and nothing the file defines: a device query with a default."""
    for handler in node.handlers:
        for stmt in handler.body:
            if isinstance(stmt, ast.Return) and (stmt.value is None or _constant_value(stmt.value, src)):
                continue
            if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets) \
                    and _constant_value(stmt.value, src):
                continue
            if not isinstance(stmt, ast.Pass):
                return False
    for block in (node.body, node.orelse, node.finalbody):
        for sub in (n for stmt in block for n in ast.walk(stmt)):
            if isinstance(sub, ast.Call) and (isinstance(sub.func, ast.Subscript)
                                             or (isinstance(sub.func, ast.Name) and sub.func.id in own)):
                return False
    return True


#: Exceptions an import shim catches.
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


def import_shim(node: ast.AST, scopes: Scopes) -> bool:
    """A top-level `try: import ... except ImportError: <imports, pass, or names set to constants>`:
    both branches only import (what the import rules allow) or set constants, so neither can
    route around a kernel. It breaks the output rules' plain imports (a format finding, rules.py)."""
    if not isinstance(node, ast.Try) or node.orelse or node.finalbody or not node.handlers:
        return False
    if not all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in node.body):
        return False
    for handler in node.handlers:
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.name or not all(isinstance(c, ast.Name) and c.id in IMPORT_ERRORS and scopes.surely_builtin(c)
                                   for c in caught):
            return False
        for statement in handler.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom, ast.Pass)):
                continue
            if not (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
                    and all(isinstance(t, ast.Name) for t in statement.targets)):
                return False
    return True


def _inheritance(src: Source) -> Iterator[Finding]:
    tree, aliases = src.tree, src.aliases
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "ModelNew" for t in node.targets):
            yield Finding("inherits_reference", f"line {node.lineno}: ModelNew is bound to another object")
    if "ModelNew" not in classes:
        return
    seen: set[str] = set()
    pending = [classes["ModelNew"]]
    while pending:
        cls = pending.pop()
        seen.add(cls.name)
        for base in cls.bases:
            path = dotted(base, aliases)
            if path == "torch.nn.Module":
                continue
            if isinstance(base, ast.Name) and base.id in classes and base.id not in seen:
                pending.append(classes[base.id])
                continue
            shown = path or ast.unparse(base)
            yield Finding("inherits_reference", f"line {cls.lineno}: {cls.name} inherits {shown}")


def _hardcoded(src: Source) -> Iterator[Finding]:
    """Literals, and constant expressions of literals (`256 * 256`, `1 << 16`), equal to a benchmark
    size, except powers of two that only cap or name a tile size."""
    tree, sizes = src.tree, src.sizes
    if not sizes:
        return
    parents = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(parents.get(id(node)), ast.BinOp):
            continue  # judged as part of the outermost constant expression
        value = _constant_int(node) if isinstance(node, (ast.Constant, ast.BinOp)) else None
        if value is None or value not in sizes:
            continue
        if (_power_of_two(value) and _caps_a_tile(node, parents)) or _threshold(node, parents):
            continue
        shown = ast.unparse(node)
        yield Finding("hardcoded_shape", f"line {node.lineno}: {shown} is the benchmark size {value}")


def _threshold(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """True when a literal is one side of an ordering comparison (`n >= 2048`): a threshold of a
    heuristic. Equality with a benchmark size (`n == 65536`) picks that size's own path, and so
    does a pinch of two thresholds on one value (`n >= 65536 and n <= 65536`, `65536 <= n <= 65536`);
    behaviour at the benchmark size is the GPU's benchmark trials' to check."""
    parent = parents.get(id(node))
    while isinstance(parent, (ast.BinOp, ast.UnaryOp)):
        node, parent = parent, parents.get(id(parent))
    if not isinstance(parent, ast.Compare) or not all(
            isinstance(op, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)) for op in parent.ops):
        return False
    return not _pinched(parent, node, parents)


def _pinched(compare: ast.Compare, literal: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """Whether a threshold is bounded on both sides by the same value: a chained comparison
    naming it twice, or another comparison of an `and` that holds the same operands."""
    value = _constant_int(literal)
    sides = [compare.left, *compare.comparators]
    if sum(_constant_int(side) == value for side in sides) > 1:
        return True
    other = [n for n in sides if n is not literal]
    siblings = parents.get(id(compare))
    if not (isinstance(siblings, ast.BoolOp) and isinstance(siblings.op, ast.And)):
        return False
    for sibling in siblings.values:
        if sibling is compare or not isinstance(sibling, ast.Compare):
            continue
        names = [ast.dump(n) for n in [sibling.left, *sibling.comparators]]
        if any(_constant_int(n) == value for n in [sibling.left, *sibling.comparators]) and all(
                ast.dump(o) in names for o in other):
            return True
    return False


def _constant_int(node: ast.AST) -> int | None:
    """The integer value of a literal or of arithmetic on literals, else None."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return int(node.value) if float(node.value).is_integer() else None
    if isinstance(node, ast.BinOp) and type(node.op) in CONSTANT_OPERATIONS:
        left, right = _constant_int(node.left), _constant_int(node.right)
        if left is None or right is None or abs(left) > 2**40 or abs(right) > 2**40:
            return None
        if isinstance(node.op, (ast.LShift, ast.Pow)) and not 0 <= right <= 64:
            return None  # keeps the folded value small
        return CONSTANT_OPERATIONS[type(node.op)](left, right)
    return None


def _caps_a_tile(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """True when a literal is an argument of min/max, or is bound, passed, iterated or compared as a
    tile size (directly or as an element of a tuple or list of candidates)."""
    parent = parents.get(id(node))
    while isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
        node, parent = parent, parents.get(id(parent))
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in ("min", "max"):
        return True
    if isinstance(parent, ast.keyword):
        return _tile_word(parent.arg or "")
    if isinstance(parent, (ast.Assign, ast.AnnAssign)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        return all(_tile_word(_target_name(t)) for t in targets)
    if isinstance(parent, (ast.For, ast.comprehension)) and node is parent.iter:
        return _tile_word(_target_name(parent.target))
    if isinstance(parent, ast.Dict):
        keys = [k for k, v in zip(parent.keys, parent.values) if v is node]
        return bool(keys) and all(isinstance(k, ast.Constant) and _tile_word(str(k.value)) for k in keys)
    if isinstance(parent, ast.Compare):
        return any(_tile_word(_target_name(side)) for side in [parent.left, *parent.comparators])
    return False


def _target_name(node: ast.AST) -> str:
    """The name a simple target or operand goes by: `BLOCK`, `self.BLOCK_W`; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _tile_word(name: str) -> bool:
    return any(word in name.upper() for word in BLOCK_WORDS)


#: Tensor attributes and methods that tell its device type (`get_device()` is -1 on the CPU).
DEVICE_TYPE_ATTRS = frozenset({"is_cuda", "is_cpu", "is_meta", "is_mps", "is_xpu", "get_device"})
#: torch calls that tell which devices exist.
DEVICE_QUERIES = frozenset({"torch.cuda.is_available", "torch.cuda.device_count", "torch.cuda.is_initialized"})


def _device_branches(src: Source) -> Iterator[Finding]:
    """Host code that reads the device type other than to assert it: `x.device.type`, `x.is_cpu`,
    `torch.cuda.is_available()`, `str(x.device)`, a comparison with `x.device`. The CPU judge runs
    CPU tensors that claim `is_cuda`, so a path the device type picks is one that either the
    judge or every GPU user never runs. `assert x.is_cuda` and an `if` that only raises are checks,
    not paths."""
    exempt = {id(sub) for node in ast.walk(src.tree) for sub in ast.walk(_check_part(node))}
    for node in src.host():
        if id(node) in exempt:
            continue
        what = _device_read(node, src)
        if what:
            yield Finding("device_branch", f"line {node.lineno}: host code reads {what}: the CPU judge and a GPU "
                                           "would run different paths")
    yield from _import_branches(src)


def _import_branches(src: Source) -> Iterator[Finding]:
    """A test (if, while, conditional expression, assert excepted) that reads a name an import
    shim's handler sets: which imports succeed differs between the CPU judge's Triton and a
    GPU's, so the test picks a path per machine."""
    shimmed = {t.id for node in src.tree.body if import_shim(node, src.scopes)
               for handler in node.handlers for statement in handler.body if isinstance(statement, ast.Assign)
               for t in statement.targets if isinstance(t, ast.Name)}
    if not shimmed:
        return
    for node in ast.walk(src.tree):
        tests = [node.test] if isinstance(node, (ast.If, ast.IfExp, ast.While)) else \
            [*node.ifs] if isinstance(node, ast.comprehension) else []
        for test in tests:
            read = sorted({n.id for n in ast.walk(test) if isinstance(n, ast.Name) and n.id in shimmed
                           and src.scopes.local(n) is None})
            if read:
                yield Finding("device_branch", f"line {test.lineno}: branches on {read[0]}, which an import shim sets: "
                                               "the CPU judge's Triton and a GPU's may take different paths")


def _check_part(node: ast.AST) -> ast.AST:
    """What of `node` only checks a condition: an assert, the test of an `if` that only raises."""
    if isinstance(node, ast.Assert):
        return node
    if isinstance(node, ast.If) and not node.orelse and all(isinstance(s, ast.Raise) for s in node.body):
        return node.test
    return ast.Pass()


def _device_read(node: ast.AST, src: Source) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr in DEVICE_TYPE_ATTRS:
        return f".{node.attr}"
    if isinstance(node, ast.Attribute) and node.attr == "type" and isinstance(node.value, ast.Attribute) \
            and node.value.attr == "device":
        return ast.unparse(node)
    if isinstance(node, ast.Call):
        path = dotted(node.func, src.aliases) or ""
        if path in DEVICE_QUERIES:
            return f"{path}()"
        if isinstance(node.func, ast.Name) and node.func.id in ("str", "repr", "format") and any(
                isinstance(a, ast.Attribute) and a.attr == "device" for a in node.args):
            return ast.unparse(node)
    if isinstance(node, ast.Compare) and any(
            isinstance(side, ast.Attribute) and side.attr == "device" for side in [node.left, *node.comparators]):
        return ast.unparse(node)
    return None


def _address_reads(src: Source) -> Iterator[Finding]:
    """Host code that reads where a tensor lives: `data_ptr()`, `storage_offset()`, `id()`, or
    `hash()` of an object (a tensor hashes by identity). An output keyed on an address is
    wrong whenever the allocator hands the address out again (about 1 call in 40 on a GPU), and
    the CPU judge's allocator is not the GPU's."""
    for node in src.host():
        if isinstance(node, ast.Attribute) and node.attr in ("data_ptr", "storage_offset"):
            yield Finding("address_read", f"line {node.lineno}: host code reads .{node.attr}, a tensor's address")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("id", "hash") \
                and src.scopes.maybe_builtin(node.func) \
                and not all(isinstance(a, (ast.Tuple, ast.Constant)) for a in node.args):
            yield Finding("address_read", f"line {node.lineno}: host code calls {node.func.id}(), an object's identity")


#: The static checks, in the order they run; each names the reasons it gives and known-bad
#: fixtures that show it (tests/judge/test_anticheat.py runs each check alone on its fixtures).
CHECKS: list[Check] = [
    Check(_imports, ("system_access", "forbidden_import"),
          ("avgpool1d/wrong/os_system.py", "avgpool1d/wrong/numpy_compute.py")),
    Check(_names, ("system_access", "dynamic_code", "torch_op", "side_stream", "monkey_patch"),
          ("avgpool2d/wrong/getattr_trick.py", "avgpool1d/wrong/route_typing_sys.py",
           "maxpool1d/wrong/torch_pool_decoy.py", "avgpool1d/wrong/redteam_shadow_default_is_builtin.py",
           "avgpool1d/wrong/redteam_operator_attrgetter.py", "avgpool1d/wrong/redteam_host_table.py")),
    Check(_definitions, ("system_access", "dynamic_code"),
          ("avgpool1d/wrong/hook_metaclass.py", "avgpool2d/wrong/route_annotation_call.py")),
    Check(_patches, ("monkey_patch", "timer_patch"),
          ("avgpool1d/wrong/patch_through_self_param.py", "avgpool1d/wrong/timer_patch.py")),
    Check(_kernel_globals, ("kernel_host_access",),
          ("avgpool1d/wrong/kernel_leaks_to_host.py", "avgpool1d/wrong/kernel_constexpr_host_function.py",
           "avgpool1d/wrong/redteam_constexpr_rebound_float.py")),
    Check(_unbound_methods, ("monkey_patch",), ("avgpool1d/wrong/unbound_method_contiguous.py",)),
    Check(_host_callables, ("torch_op",),
          ("avgpool1d/wrong/host_grid_lambda.py", "avgpool1d/wrong/host_heuristics.py")),
    Check(_tensor_arithmetic, ("torch_op",), ("avgpool1d/wrong/guards_tensor_operators.py",)),
    Check(_layer_calls, ("torch_op",), ("layernorm/wrong/holder_called.py",)),
    Check(_fallbacks, ("fallback",), ("avgpool2d/wrong/fallback_try_except.py",)),
    Check(_inheritance, ("inherits_reference",), ("avgpool1d/wrong/inherits_model.py",)),
    Check(_hardcoded, ("hardcoded_shape",),
          ("avgpool2d/wrong/hardcoded_shape.py", "avgpool1d/wrong/redteam_threshold_pinch.py")),
    Check(_device_branches, ("device_branch",),
          ("avgpool1d/wrong/device_type_branch.py", "avgpool1d/wrong/redteam_import_shim_branch.py")),
    Check(_address_reads, ("address_read",),
          ("avgpool1d/wrong/address_keyed_cache.py", "avgpool1d/wrong/disarmed_storage_offset_check.py")),
]
