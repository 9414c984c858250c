"""Static anti-cheat checks: what the code names and does, read from its syntax tree, never run.

Names are resolved through the file's own imports, so `import torch.nn.functional as F` and
`from torch.nn.functional import avg_pool1d as ap` are both seen as torch.nn.functional paths.
The dynamic guards (builder.judge.guards) back these checks up at run time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from itertools import combinations
from math import prod
from typing import NamedTuple


class Finding(NamedTuple):
    """One rule broken: a reason code from builder.judge.reasons and a sentence for people."""

    reason: str
    detail: str


#: Modules candidate code may import besides these, any import is a finding.
ALLOWED_MODULES = frozenset(
    {"torch", "triton", "math", "typing", "typing_extensions", "functools", "dataclasses",
     "__future__", "itertools", "collections", "numbers", "enum", "abc"}
)
#: Modules that reach the process, the file system, the network or native code.
SYSTEM_MODULES = frozenset(
    {"os", "sys", "subprocess", "socket", "ctypes", "cffi", "importlib", "shutil", "pathlib",
     "builtins", "signal", "multiprocessing", "threading", "_thread", "concurrent", "asyncio",
     "io", "tempfile", "glob", "pickle", "marshal", "shelve", "gc", "inspect", "urllib", "http",
     "ftplib", "smtplib", "ssl", "requests", "platform", "resource", "mmap", "fcntl", "pty",
     "runpy", "code", "codeop", "atexit", "faulthandler", "sysconfig", "site", "zipimport",
     "pkgutil", "webbrowser", "select", "selectors", "operator", "weakref", "linecache"}
)
#: Built-in functions that execute strings, open files or reach objects by name.
SYSTEM_BUILTINS = frozenset(
    {"open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr",
     "globals", "locals", "vars", "breakpoint", "__builtins__", "__loader__", "__spec__"}
)
#: Dunder attributes that plain kernel code has a use for.
ALLOWED_DUNDERS = frozenset({"__init__", "__name__", "__doc__"})

#: torch.X names that allocate, describe or view tensors without computing.
TORCH_OK = frozenset(
    {"Tensor", "Size", "device", "dtype", "float16", "float32", "float64", "bfloat16", "half",
     "float", "double", "int8", "int16", "int32", "int64", "uint8", "long", "int", "bool",
     "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
     "full_like", "arange", "tensor", "is_tensor", "no_grad", "inference_mode", "finfo", "iinfo",
     "is_floating_point", "get_default_dtype", "set_grad_enabled", "backends", "nn", "cuda"}
)
#: torch.X names that reach native code, files or processes.
TORCH_SYSTEM = frozenset(
    {"_C", "utils", "library", "hub", "multiprocessing", "distributed", "classes", "_ops",
     "save", "load", "from_file", "serialization", "package", "profiler", "testing", "overrides"}
)
#: torch.nn.X names a kernel module may use.
NN_OK = frozenset({"Module", "Parameter", "ModuleList", "ModuleDict", "functional"})
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
     "avg_pool2d", "conv1d", "conv2d", "matmul", "mm", "bmm", "einsum", "addmm", "add", "add_",
     "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "floor_divide", "median", "var",
     "std", "amax", "amin", "sort", "topk", "gather", "scatter", "scatter_", "scatter_add",
     "scatter_add_", "index_add", "index_add_", "index_select", "masked_select", "diff", "numpy",
     "tolist", "apply_", "map_", "sum_to_size", "unfold_copy"}
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


def dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """The dotted path of a Name/Attribute chain rooted at an imported name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in aliases:
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


def scan(tree: ast.Module, sizes: frozenset[int] = frozenset()) -> list[Finding]:
    """Every anti-cheat finding in `tree`, in source order."""
    aliases = import_aliases(tree)
    kernels = [n for n in ast.walk(tree) if is_triton_kernel(n, aliases)]
    in_kernel = {id(sub) for k in kernels for sub in ast.walk(k)}
    found: list[Finding] = []
    found += _imports(tree)
    found += _names(tree, aliases, in_kernel)
    found += _patches(tree, aliases)
    found += _fallbacks(tree)
    found += _inheritance(tree, aliases)
    found += _hardcoded(tree, sizes)
    return found


def _imports(tree: ast.AST) -> Iterator[Finding]:
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


def _torch_path(path: str) -> Finding | None:
    """What a torch.* path means for the verdict; None when it is harmless."""
    parts = path.split(".")
    if parts[0] != "torch" or len(parts) == 1:
        return None
    head, rest = parts[1], parts[2:]
    if head == "nn":
        if rest and rest[0] == "functional" and len(rest) > 1:
            return Finding("torch_op", f"uses {path}")
        if rest and rest[0] not in NN_OK:
            return Finding("torch_op", f"uses {path}")
        return None
    if head == "cuda":
        if rest and rest[0] in CUDA_STREAMS:
            return Finding("side_stream", f"uses {path}")
        if rest and rest[0] not in CUDA_OK:
            return Finding("torch_op", f"uses {path}")
        return None
    if head == "Tensor" and rest and rest[0] in COMPUTE_METHODS:
        return Finding("torch_op", f"uses {path}")
    if head in TORCH_SYSTEM:
        return Finding("system_access", f"uses {path}")
    if head not in TORCH_OK:
        return Finding("torch_op", f"uses {path}")
    return None


def _names(tree: ast.AST, aliases: dict[str, str], in_kernel: set[int]) -> Iterator[Finding]:
    """Imported paths, built-ins, dunders, torch names and computing method calls."""
    bound = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield from _import_paths(node)
        elif isinstance(node, ast.Name):
            if node.id in SYSTEM_BUILTINS and node.id not in bound:
                yield Finding("system_access", f"line {line}: uses built-in {node.id}")
            if id(node) not in bases:
                yield from _torch_use(node, aliases, in_kernel)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ALLOWED_DUNDERS:
                yield Finding("system_access", f"line {line}: reaches attribute {node.attr}")
            if id(node) not in bases:
                yield from _torch_use(node, aliases, in_kernel)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and id(node) not in in_kernel and node.func.attr in COMPUTE_METHODS
                and not (dotted(node.func, aliases) or "").startswith(("triton", "math"))):
            yield Finding("torch_op", f"line {line}: calls .{node.func.attr}() outside a kernel")


def _import_paths(node: ast.Import | ast.ImportFrom) -> Iterator[Finding]:
    if isinstance(node, ast.Import):
        paths = [a.name for a in node.names]
    else:
        paths = [f"{node.module}.{a.name}" for a in node.names if node.module]
    for path in paths:
        finding = _torch_path(path)
        if finding:
            yield Finding(finding.reason, f"line {node.lineno}: imports {path}")


def _torch_use(node: ast.Name | ast.Attribute, aliases: dict[str, str], in_kernel: set[int]) -> Iterator[Finding]:
    """Findings for a whole Name/Attribute chain that resolves to a torch path."""
    path = dotted(node, aliases)
    if not path or not path.startswith("torch"):
        return
    if id(node) in in_kernel:
        yield Finding("torch_op", f"line {node.lineno}: a Triton kernel uses {path}")
    elif isinstance(node, ast.Name) and path in TORCH_MODULES:
        yield Finding("torch_op", f"line {node.lineno}: passes the module {path} around")
    else:
        finding = _torch_path(path)
        if finding:
            yield Finding(finding.reason, f"line {node.lineno}: {finding.detail}")


def _patches(tree: ast.AST, aliases: dict[str, str]) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            continue
        for target in targets:
            path = dotted(target, aliases) if isinstance(target, ast.Attribute) else None
            if path is None:
                continue
            parts = set(path.split("."))
            if path.split(".")[0] in ("time", "timeit") or parts & TIMER_NAMES:
                yield Finding("timer_patch", f"line {node.lineno}: reassigns {path}")
            else:
                yield Finding("monkey_patch", f"line {node.lineno}: reassigns {path}")


def _fallbacks(tree: ast.AST) -> Iterator[Finding]:
    try_nodes = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
    for node in ast.walk(tree):
        if isinstance(node, try_nodes) and node.handlers:
            yield Finding("fallback", f"line {node.lineno}: try/except can route around the kernel")


def _inheritance(tree: ast.Module, aliases: dict[str, str]) -> Iterator[Finding]:
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


def _hardcoded(tree: ast.AST, sizes: frozenset[int]) -> Iterator[Finding]:
    if not sizes:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = node.value
            if float(value).is_integer() and int(value) in sizes:
                yield Finding("hardcoded_shape", f"line {node.lineno}: literal {value} is a benchmark size")
