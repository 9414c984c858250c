"""The input model of a manifest (format version 2): the inputs of forward, the fixed cases and
the input space the judge draws extra checks from.

A problem's forward takes one or more inputs, each with a shape, a dtype and a range to draw
from. The single-input form of the pooling manifests (`shape`, `dtype`, `low`, `high` written
directly under [benchmark] and under a case) is shorthand for one input named "x". Everything
here is plain data; the judge draws tensors from it (builder.judge.inputs). Errors name the file
and the field (ManifestError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import ManifestError

FLOAT_DTYPES = ("float32", "float16", "bfloat16")
INT_DTYPES = ("int64", "int32")
#: Value classes a space may list (floating inputs only), beyond the declared range ("uniform").
VALUE_CLASSES = ("signed", "negative", "large", "tiny", "bursts", "special")
#: The name of the one input of a single-input (shorthand) manifest.
SHORTHAND_INPUT = "x"


@dataclass(frozen=True)
class Input:
    """One argument of forward: a tensor of `shape` and `dtype` drawn from [low, high)."""

    name: str  # the argument's name (forward's order is the manifest's)
    shape: tuple[int, ...]  # its shape
    dtype: str = "float32"  # one of FLOAT_DTYPES or INT_DTYPES
    low: float = 0.0  # floats: uniform in [low, high); integers: uniform integers in [low, high)
    high: float = 1.0
    values: str = "uniform"  # value class: "uniform" (the range above) or one of VALUE_CLASSES

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def to_spec(self) -> dict[str, Any]:
        """The plain-dict form the judge sends to a sandbox or the referee (with a seed added)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "low": self.low,
                "high": self.high, "values": self.values}


@dataclass(frozen=True)
class Case:
    """One verification case: Model(**init) applied to inputs drawn as each Input says."""

    name: str  # unique within the problem
    init: dict[str, Any]  # keyword arguments of Model and ModelNew
    inputs: tuple[Input, ...]  # forward's arguments, in order

    @property
    def shape(self) -> tuple[int, ...]:
        """The first input's shape (the only one of a single-input problem)."""
        return self.inputs[0].shape

    @property
    def low(self) -> float:
        return self.inputs[0].low

    @property
    def high(self) -> float:
        return self.inputs[0].high

    def describe(self) -> str:
        """The inputs and init in words, enough to reproduce the case by hand."""
        shapes = ", ".join(f"{i.name} {list(i.shape)} {i.dtype} [{i.low:g}, {i.high:g})"
                           + (f" {i.values}" if i.values != "uniform" else "") for i in self.inputs)
        return f"init {self.init}; {shapes}"


@dataclass(frozen=True)
class SpaceInput:
    """How one input's shape and range follow the space's dims."""

    shape: tuple[str | int, ...]  # a dim name or a fixed size per axis
    dtypes: tuple[str, ...] = ()  # dtype choices; empty: the benchmark's dtype
    low: float | str | None = None  # a bound, or a dim name; None: the benchmark input's
    high: float | str | None = None


@dataclass(frozen=True)
class Space:
    """What the reference accepts, as far as the manifest declares it: the judge draws checks here."""

    dims: dict[str, tuple[int, int]]  # named sizes, inclusive ranges
    init: dict[str, tuple[Any, ...]]  # argument -> choices (strings naming a dim become its value)
    values: tuple[str, ...]  # value classes beyond the declared ranges
    out_of_scope: dict[str, str]  # what is not checked, and why
    inputs: dict[str, SpaceInput] = field(default_factory=dict)  # input name -> its shape in dims


def _where(path: Path, field_name: str) -> str:
    return f"{path}: {field_name}"


def _range(path: Path, where: str, table: dict[str, Any], dtype: str, default: Input | None) -> tuple[float, float]:
    """The [low, high) of an input table, checked."""
    is_float = dtype in FLOAT_DTYPES
    low = table.get("low", default.low if default is not None else 0.0 if is_float else 0)
    high = table.get("high", default.high if default is not None else 1.0 if is_float else None)
    if high is None:
        raise ManifestError(f"{_where(path, where)}.high: an integer input needs `high` (values are drawn from [low, high))")
    if not is_float and not (_integer(low) and _integer(high)):
        raise ManifestError(f"{_where(path, where)}: the bounds of a {dtype} input must be integers, got {low!r}, {high!r}")
    if low >= high:
        raise ManifestError(f"{_where(path, where)}: low ({low:g}) must be below high ({high:g})")
    return (float(low), float(high)) if is_float else (int(low), int(high))


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _values(path: Path, where: str, table: dict[str, Any], dtype: str) -> str:
    values = table.get("values", "uniform")
    if values != "uniform" and values not in VALUE_CLASSES:
        raise ManifestError(f"{_where(path, where)}.values: {values!r} is not 'uniform' or one of {list(VALUE_CLASSES)}")
    if values != "uniform" and dtype not in FLOAT_DTYPES:
        raise ManifestError(f"{_where(path, where)}.values: value classes apply to floating inputs, not {dtype}")
    return values


def benchmark_inputs(path: Path, bench: dict[str, Any]) -> tuple[Input, ...]:
    """The benchmark's inputs: [[benchmark.inputs]], or the single-input shorthand."""
    shorthand = [key for key in ("shape", "dtype", "low", "high") if key in bench]
    if "inputs" in bench:
        if shorthand:
            raise ManifestError(f"{_where(path, 'benchmark')}: give the inputs either as [[benchmark.inputs]] or as "
                                f"shape/dtype/low/high of one input, not both (found {', '.join(shorthand)})")
        tables = list(enumerate(bench["inputs"]))
        if not tables:
            raise ManifestError(f"{_where(path, 'benchmark.inputs')}: needs at least one input")
    elif "shape" in bench:
        tables = [(None, {"name": SHORTHAND_INPUT, **{k: bench[k] for k in shorthand}})]
    else:
        raise ManifestError(f"{_where(path, 'benchmark')}: missing the inputs: [[benchmark.inputs]] tables, or "
                            "`shape` and `dtype` of a single input")
    inputs: list[Input] = []
    for index, table in tables:
        where = "benchmark" if index is None else f"benchmark.inputs[{index}]"
        if "dtype" not in table:
            raise ManifestError(f"{_where(path, where)}: missing required field 'dtype'")
        dtype = table["dtype"]
        low, high = _range(path, where, table, dtype, None)
        inputs.append(Input(table["name"], tuple(table["shape"]), dtype, low, high))
    names = [i.name for i in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ManifestError(f"{_where(path, 'benchmark.inputs')}: duplicate input names {dupes}")
    return tuple(inputs)


def case_of(path: Path, index: int, table: dict[str, Any], bench: tuple[Input, ...]) -> Case:
    """One [[cases]] table: `inputs = {name = {shape, ...}}`, or shape/low/high/values of a
    single-input problem's one input. Unset fields come from the benchmark input of that name."""
    where = f"cases[{index}]"
    direct = [key for key in ("shape", "low", "high", "values", "dtype") if key in table]
    if "inputs" in table:
        if direct:
            raise ManifestError(f"{_where(path, where)}: give either `inputs` or {', '.join(direct)}, not both")
        given = table["inputs"]
        unknown = sorted(set(given) - {i.name for i in bench})
        if unknown:
            raise ManifestError(f"{_where(path, where)}.inputs: unknown input(s) {unknown}; "
                                f"the benchmark's are {[i.name for i in bench]}")
        missing = [i.name for i in bench if i.name not in given]
        if missing:
            raise ManifestError(f"{_where(path, where)}.inputs: missing input(s) {missing} (each needs a shape)")
    elif "shape" in table:
        if len(bench) != 1:
            raise ManifestError(f"{_where(path, where)}: `shape` alone names no input of a problem with "
                                f"{len(bench)} inputs; use inputs = {{ name = {{ shape = [...] }} }}")
        given = {bench[0].name: {k: table[k] for k in direct}}
    else:
        raise ManifestError(f"{_where(path, where)}: missing the input shapes: `shape`, or `inputs`")
    inputs = []
    for base in bench:
        spec = given[base.name]
        sub = f"{where}.inputs.{base.name}" if "inputs" in table else where
        if "shape" not in spec:
            raise ManifestError(f"{_where(path, sub)}: missing required field 'shape'")
        dtype = spec.get("dtype", base.dtype)
        same_kind = (dtype in FLOAT_DTYPES) == base.is_float
        low, high = _range(path, sub, spec, dtype, base if same_kind else None)
        inputs.append(Input(base.name, tuple(spec["shape"]), dtype, low, high, _values(path, sub, spec, dtype)))
    return Case(table["name"], dict(table["init"]), tuple(inputs))


def space_of(path: Path, table: dict[str, Any], bench: tuple[Input, ...]) -> Space:
    """The [space] table, checked: dims used exist, every input has a shape, bounds make sense."""
    dims: dict[str, tuple[int, int]] = {}
    for name, bounds in table.get("dims", {}).items():
        if (not isinstance(bounds, list) or len(bounds) != 2 or not all(_integer(b) for b in bounds)
                or not 0 <= bounds[0] <= bounds[1]):
            raise ManifestError(f"{_where(path, f'space.dims.{name}')}: expected [low, high], two integers with "
                                f"0 <= low <= high, got {bounds!r}")
        dims[name] = (bounds[0], bounds[1])
    init: dict[str, tuple[Any, ...]] = {}
    for name, choices in table.get("init", {}).items():
        if not isinstance(choices, list) or not choices:
            raise ManifestError(f"{_where(path, f'space.init.{name}')}: expected a non-empty list of choices")
        init[name] = tuple(choices)
    values = tuple(table.get("values", ()))
    unknown = [v for v in values if v not in VALUE_CLASSES]
    if unknown:
        raise ManifestError(f"{_where(path, 'space.values')}: unknown value class(es) {unknown}; "
                            f"known: {list(VALUE_CLASSES)}")
    given = table.get("inputs", {})
    extra = sorted(set(given) - {i.name for i in bench})
    if extra:
        raise ManifestError(f"{_where(path, 'space.inputs')}: unknown input(s) {extra}")
    inputs: dict[str, SpaceInput] = {}
    for base in bench:
        where = f"space.inputs.{base.name}"
        if base.name not in given:
            raise ManifestError(f"{_where(path, where)}: missing: every input needs its shape in the space's dims")
        spec = given[base.name]
        shape = tuple(spec.get("shape", ()))
        bad = [d for d in shape if not (_integer(d) and d >= 0) and d not in dims]
        if "shape" not in spec or bad:
            raise ManifestError(f"{_where(path, where)}.shape: each axis is a dim of space.dims ({sorted(dims)}) or a "
                                f"size; {'missing' if 'shape' not in spec else f'unknown {bad}'}")
        dtypes = tuple(spec.get("dtypes", ()))
        kind = FLOAT_DTYPES if base.is_float else INT_DTYPES
        wrong = [d for d in dtypes if d not in kind]
        if wrong:
            kind_name = "floating" if base.is_float else "integer"
            raise ManifestError(f"{_where(path, where)}.dtypes: {wrong} are not {kind_name} dtypes like the "
                                f"benchmark's {base.dtype}")
        for bound in ("low", "high"):
            value = spec.get(bound)
            if isinstance(value, str) and value not in dims:
                raise ManifestError(f"{_where(path, where)}.{bound}: {value!r} is no dim of space.dims")
        inputs[base.name] = SpaceInput(shape, dtypes, spec.get("low"), spec.get("high"))
    return Space(dims, init, values, dict(table.get("out_of_scope", {})), inputs)


def resolve(value: Any, dims: dict[str, int]) -> Any:
    """`value` with every string that names a dim replaced by the dim's size (inside lists too)."""
    if isinstance(value, str) and value in dims:
        return dims[value]
    if isinstance(value, list):
        return [resolve(v, dims) for v in value]
    return value
