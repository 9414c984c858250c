"""Draw verification cases from a problem's input space ([space] in its manifest).

Each draw picks every dim of the space (its low end, its high end, uniformly, or log-uniformly
between them), every init argument the space lists (a string naming a dim becomes its size;
arguments it does not list keep the benchmark's values), each input's dtype and bounds, and the
value class of the floating inputs. The first draws stretch one dim each, the widest range
first (twice, as a user's inference and training calls), to its size in the benchmark (or its
top in the space, if higher), with the others at their bottom: a row, a batch or a plane larger
than any cap an answer may have put on it, cut back to STRETCH_ELEMENTS input elements so the
CPU interpreter affords it (and halved again for a call the interpreter could not finish in
time, builder.judge.correctness.SpaceChecks). A draw the reference itself raises on is discarded
and drawn again.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from builder.judge.inputs import shows
from builder.manifest import Case, Input, Space, resolve
from builder.seeds import Problem

#: Draws tried per check before giving up on it (the reference refuses the others).
ATTEMPTS = 60
#: Input elements a stretched draw holds at most, unless the space's own top of its dim is more.
STRETCH_ELEMENTS = 1 << 14


def _dim(low: int, high: int, rng: random.Random) -> int:
    how = rng.randrange(4)
    if how == 0 or low == high:
        return low
    if how == 1:
        return high
    if how == 2:
        return rng.randint(low, high)
    return min(high, max(low, round(math.exp(rng.uniform(math.log(max(low, 1)), math.log(high + 1))) - 0.5)))


def _dims(space: Space, rng: random.Random, stretch: str | None, top: int) -> dict[str, int]:
    if stretch is None:
        return {name: _dim(lo, hi, rng) for name, (lo, hi) in space.dims.items()}
    return {name: (top if name == stretch else lo) for name, (lo, hi) in space.dims.items()}


def benchmark_dims(problem: Problem) -> dict[str, int]:
    """Each dim of the space at its size in the benchmark's inputs (the largest where it occurs
    more than once); dims the benchmark's inputs do not show are left out."""
    space = problem.space
    assert space is not None
    sizes: dict[str, int] = {}
    for base in problem.inputs:
        shape = space.inputs[base.name].shape
        if len(shape) != len(base.shape):
            continue  # the space draws this input with another rank: its dims do not line up
        for dim, size in zip(shape, base.shape):
            if isinstance(dim, str):
                sizes[dim] = max(size, sizes.get(dim, 0))
    return sizes


def stretch_order(problem: Problem, rng: random.Random) -> list[str]:
    """The dims drawn checks stretch, one per check: the widest range first, the others in a
    random order."""
    space = problem.space
    assert space is not None
    dims = sorted(space.dims, key=lambda name: space.dims[name][0] - space.dims[name][1])
    rest = dims[1:]
    rng.shuffle(rest)
    return dims[:1] + rest


def stretch_top(problem: Problem, name: str, halvings: int = 0) -> int:
    """Where a stretched draw puts dim `name`: its benchmark size, or its top in the space if that
    is higher, halved until the inputs (every other dim at its low end) hold at most
    STRETCH_ELEMENTS elements and then `halvings` times more, but never below its top in the space."""
    space = problem.space
    assert space is not None
    low, high = space.dims[name]
    top = max(high, benchmark_dims(problem).get(name, high))
    dims = {other: lo for other, (lo, _) in space.dims.items()}

    def size(value: int) -> int:
        dims[name] = value
        return sum(math.prod(dims[d] if isinstance(d, str) else d for d in space.inputs[i.name].shape)
                   for i in problem.inputs)

    while top > high and size(top) > STRETCH_ELEMENTS:
        top = max(high, top // 2)
    return max(high, top >> halvings)


def _bound(value: float | str | None, dims: dict[str, int], default: Any) -> Any:
    if value is None:
        return default
    return dims[value] if isinstance(value, str) else value


def _shows(layout: str, space: Space, dims: dict[str, int]) -> bool:
    """Whether an input of the space at `dims` shows `layout` (builder.judge.inputs.shows)."""
    return any(shows(layout, tuple(dims[d] if isinstance(d, str) else d for d in where.shape))
               for where in space.inputs.values())


def _init(problem: Problem, dims: dict[str, int], rng: random.Random) -> dict[str, Any]:
    """The benchmark's init with every argument the space lists drawn from its choices at `dims`."""
    assert problem.space is not None
    init = dict(problem.init)
    init.update({arg: resolve(rng.choice(choices), dims) for arg, choices in problem.space.init.items()})
    return init


def draw_case(problem: Problem, name: str, values: str, rng: random.Random, accepts: Callable[[Case], bool], *,
              stretch: str | None = None, halvings: int = 0, max_elements: int | None = None,
              layout: str = "plain") -> Case | None:
    """One case drawn from `problem.space` whose floating inputs take value class `values`, or None
    when ATTEMPTS draws all failed `accepts` (the reference raised on each). With `stretch`, the
    first half of the attempts put that dim at `stretch_top` (halved `halvings` times) and the
    others at their low end. A
    draw whose inputs hold more than `max_elements` elements in all is drawn again (a stretched
    one excepted). An input of the draw shows `layout` (builder.judge.inputs.shows), where the
    space's largest shapes can: a stretched draw that does not sets another dim to 2 and halves
    its stretched one."""
    space = problem.space
    assert space is not None
    top = stretch_top(problem, stretch, halvings) if stretch is not None else 0
    layout = layout if _shows(layout, space, {d: hi for d, (_, hi) in space.dims.items()}) else "plain"
    for attempt in range(ATTEMPTS):
        stretched = stretch is not None and attempt < ATTEMPTS // 2
        dims = _dims(space, rng, stretch if stretched else None, top)
        if stretched and not _shows(layout, space, dims):
            second = [d for d, (lo, hi) in space.dims.items() if d != stretch and lo < 2 <= hi]
            if second:
                dims[rng.choice(second)] = 2
                dims[stretch] = max(space.dims[stretch][1], top // 2) if top > space.dims[stretch][1] else top
        if not _shows(layout, space, dims):
            continue
        init = _init(problem, dims, rng)
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
        if max_elements is not None and size > max_elements and not stretched:
            continue
        case = Case(name, init, tuple(inputs))
        if accepts(case):
            return case
    return None


def draw_twin(problem: Problem, base: Case, rng: random.Random, accepts: Callable[[Case], bool]) -> Case | None:
    """`base`'s inputs with another init drawn from the space's choices at base's dims, one that
    `accepts` (the reference gives other outputs of base's shapes there, say), or None when
    ATTEMPTS draws found none or the space has no init choices."""
    space = problem.space
    assert space is not None
    dims: dict[str, int] = {}
    for given in base.inputs:
        for dim, size in zip(space.inputs[given.name].shape, given.shape):
            if isinstance(dim, str):
                dims[dim] = size
    if not space.init or set(dims) != set(space.dims):
        return None
    for _ in range(ATTEMPTS):
        init = _init(problem, dims, rng)
        case = Case(f"{base.name}, another model", init, base.inputs)
        if init != base.init and accepts(case):
            return case
    return None

