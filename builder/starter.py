"""The manifest `kernel-prompts new-problem` writes: the benchmark, default tolerances, one
starter case at a small size and a commented [space] to fill in.

Two forms, as the manifest format has (builder.manifest): the pooling shorthand (one float
input, `shape` under [benchmark]) and [[benchmark.inputs]] for any number of inputs. The starter
case of the general form maps every benchmark size above SMALL to a small size of its own, the
same one wherever the size appears (input shapes, integer bounds, init arguments), so that
sizes that must agree (targets of length N beside logits of N rows, normalized_shape beside the
input's trailing dims) still agree.
"""

from __future__ import annotations

import math
from typing import Any

from builder.manifest import Input

#: Tolerances of a new manifest (KernelBench's for fp32).
ATOL = RTOL = 1e-4
#: Benchmark sizes up to this stay as they are in the starter case.
SMALL = 16
#: The small sizes larger benchmark sizes map to, in order (odd: no power of two hides a mask bug).
STARTER_SIZES = (17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)
#: The value classes a new [space] lists.
ALL_VALUES = '["signed", "negative", "large", "tiny", "bursts", "special"]'


def starter_shape(shape: tuple[int, ...], init: dict[str, Any]) -> tuple[int, ...]:
    """A small input shape of the benchmark's rank that the Triton interpreter runs quickly.

    Batch and channels become at most 2 and 3; every further dimension is cut to twice the
    product of the two largest integer init arguments, plus one (at least 17): a window of
    kernel_size * dilation taps, with stride and padding of that size, still fits with
    outputs to spare.
    """
    ints = sorted(v for v in init.values() if isinstance(v, int) and not isinstance(v, bool) and v > 0)
    spatial = max(16, 2 * math.prod(ints[-2:])) + 1
    return tuple(min(dim, cap) for dim, cap in zip(shape, (2, 3, *[spatial] * max(0, len(shape) - 2))))


def size_map(inputs: tuple[Input, ...]) -> dict[int, int]:
    """Each input size above SMALL -> a small size of its own, keeping their order."""
    big = sorted({d for i in inputs for d in i.shape if d > SMALL})
    last = len(STARTER_SIZES) - 1
    return {size: STARTER_SIZES[k] if k <= last else STARTER_SIZES[last] + 2 * (k - last) for k, size in enumerate(big)}


def shrink(value: Any, sizes: dict[int, int]) -> Any:
    """`value` with every integer that is a mapped size replaced (inside lists too)."""
    if isinstance(value, list):
        return [shrink(v, sizes) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return sizes.get(value, value)
    return value


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return toml_table(value)
    return repr(value)


def toml_table(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in values.items()) + " }" if values else "{}"


def _header(level: int, kernelbench_id: int, name: str, variant_line: str) -> str:
    return (f"# {name}, KernelBench level {level} problem {kernelbench_id}.\n"
            "# Started by `kernel-prompts new-problem` from the seed prompt beside it.\n"
            "\n[problem]\n"
            f"level = {level}\nid = {kernelbench_id}\nname = \"{name}\"\n{variant_line}")


TOLERANCE = f"\n[tolerance]\natol = {ATOL!r}\nrtol = {RTOL!r}\n"
STARTER_NOTE = (
    "\n# Small cases for correctness checks (the CPU interpreter runs them).\n"
    "# STARTER: this one case only repeats the benchmark's init args at a small size. Add cases that\n"
    "# cover the other argument values, size-1 and odd dimensions, rows longer than a block and,\n"
    "# where signs matter, inputs drawn from a range with negatives (low = -1.0).\n"
)


def _space_template(names: list[str], ranks: list[int]) -> str:
    """A commented [space] with one dim per axis, to fill in (see the manifest format)."""
    lines = ["", "# What the reference accepts: the judge draws extra checks from it. Uncomment, name the",
             "# dims that must agree alike, set their ranges (the widest one is tried at its top on the",
             "# CPU too), list init choices, and say what is out of scope and why.",
             "# [space]"]
    dims = [f"D{k}" for k in range(max(ranks, default=0))]
    lines.append("# dims = { " + ", ".join(f"{d} = [1, 8]" for d in dims) + " }")
    lines += ["# init = { }", f"# values = {ALL_VALUES}", "# out_of_scope = { }"]
    for name, rank in zip(names, ranks):
        lines += ["#", f"# [space.inputs.{name}]", "# shape = [" + ", ".join(f'"{d}"' for d in dims[:rank]) + "]"]
    return "\n".join(lines) + "\n"


def shorthand_manifest(level: int, kernelbench_id: int, name: str, init: dict[str, Any], shape: tuple[int, ...],
                       variant_line: str) -> str:
    """The manifest of a single-float-input problem in the pooling shorthand."""
    init_table = toml_table(init)
    return (
        _header(level, kernelbench_id, name, variant_line)
        + "\n[benchmark]\n"
        "# Arguments of Model(...) in order, and the input shape, as in reference.py.\n"
        f"init = {init_table}\nshape = {toml_value(list(shape))}\ndtype = \"float32\"\n"
        + TOLERANCE + STARTER_NOTE
        + "[[cases]]\n"
        "name = \"starter\"\n"
        f"init = {init_table}\nshape = {toml_value(list(starter_shape(shape, init)))}\n"
        + _space_template(["x"], [len(shape)])
    )


def inputs_manifest(level: int, kernelbench_id: int, name: str, init: dict[str, Any], inputs: tuple[Input, ...],
                    variant_line: str) -> str:
    """The manifest of a problem with [[benchmark.inputs]] (any number, any dtype)."""
    tables = []
    for i in inputs:
        bounds = f"low = {toml_value(i.low)}\nhigh = {toml_value(i.high)}\n"
        tables.append(f"\n[[benchmark.inputs]]\nname = \"{i.name}\"\nshape = {toml_value(list(i.shape))}\n"
                      f"dtype = \"{i.dtype}\"\n{bounds}")
    sizes = size_map(inputs)
    small = []
    for i in inputs:
        fields = {"shape": shrink(list(i.shape), sizes)}
        if not i.is_float and shrink(i.high, sizes) != i.high:
            fields["high"] = shrink(i.high, sizes)
        small.append(f"{i.name} = {toml_table(fields)}")
    return (
        _header(level, kernelbench_id, name, variant_line)
        + "\n[benchmark]\n"
        "# Arguments of Model(...), then one table per argument of forward, in order, as in reference.py.\n"
        f"init = {toml_table(init)}\n" + "".join(tables)
        + TOLERANCE + STARTER_NOTE
        + "[[cases]]\n"
        "name = \"starter\"\n"
        f"init = {toml_table({k: shrink(v, sizes) for k, v in init.items()})}\n"
        f"inputs = {{ {', '.join(small)} }}\n"
        + _space_template([i.name for i in inputs], [len(i.shape) for i in inputs])
    )
