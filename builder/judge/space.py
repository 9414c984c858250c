"""Draw verification cases from a problem's input space ([space] in its manifest).

Each draw picks every dim of the space (its low end, its high end, uniformly, or log-uniformly
between them), every init argument the space lists (a string naming a dim becomes its size;
arguments it does not list keep the benchmark's values), each input's dtype and bounds, and the
value class of the floating inputs. The first draw stretches the dim of the widest range to its
top and keeps the others at their bottom: a row longer than any block cap, at a cost the CPU
interpreter affords. A draw the reference itself raises on is discarded and drawn again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from builder.manifest import Case, Input, Space, resolve
from builder.seeds import Problem

#: Draws tried per check before giving up on it (the reference refuses the others).
ATTEMPTS = 60


def _dim(low: int, high: int, rng: random.Random) -> int:
    how = rng.randrange(4)
    if how == 0 or low == high:
        return low
    if how == 1:
        return high
    if how == 2:
        return rng.randint(low, high)
    return min(high, max(low, round(math.exp(rng.uniform(math.log(max(low, 1)), math.log(high + 1))) - 0.5)))


def _dims(space: Space, rng: random.Random, stretch: bool) -> dict[str, int]:
    if not stretch or not space.dims:
        return {name: _dim(lo, hi, rng) for name, (lo, hi) in space.dims.items()}
    widest = max(space.dims, key=lambda name: space.dims[name][1] - space.dims[name][0])
    return {name: (hi if name == widest else lo) for name, (lo, hi) in space.dims.items()}


def _bound(value: float | str | None, dims: dict[str, int], default: Any) -> Any:
    if value is None:
        return default
    return dims[value] if isinstance(value, str) else value


def draw_case(problem: Problem, name: str, values: str, rng: random.Random, accepts: Callable[[Case], bool], *,
              stretch: bool = False, max_elements: int | None = None) -> Case | None:
    """One case drawn from `problem.space` whose floating inputs take value class `values`, or None
    when ATTEMPTS draws all failed `accepts` (the reference raised on each). A draw whose inputs
    hold more than `max_elements` elements in all is drawn again (the stretched one excepted: its
    other dims sit at their low end)."""
    space = problem.space
    assert space is not None
    for attempt in range(ATTEMPTS):
        dims = _dims(space, rng, stretch and attempt < ATTEMPTS // 2)
        init = dict(problem.init)
        init.update({arg: resolve(rng.choice(choices), dims) for arg, choices in space.init.items()})
        inputs = []
        for base in problem.inputs:
            where = space.inputs[base.name]
            shape = tuple(dims[d] if isinstance(d, str) else d for d in where.shape)
            dtype = rng.choice(where.dtypes) if where.dtypes else base.dtype
            low, high = _bound(where.low, dims, base.low), _bound(where.high, dims, base.high)
            floating = base.is_float
            inputs.append(Input(base.name, shape, dtype, float(low) if floating else int(low),
                                float(high) if floating else int(high), values if floating else "uniform"))
        if any(i.low >= i.high for i in inputs):
            continue
        size = sum(math.prod(i.shape) for i in inputs)
        if max_elements is not None and size > max_elements and not (stretch and attempt < ATTEMPTS // 2):
            continue
        case = Case(name, init, tuple(inputs))
        if accepts(case):
            return case
    return None
