"""How each checked call is made: its inputs' layout, the module's mode, autograd, the fill of
fresh allocations; chosen by the judge from secret randomness, so an answer cannot tell a checked
call from a user's.

The fixed cases run as the judge always ran them (guarded inputs, the sentinel fill, training
mode, autograd off), so their verdicts keep their precise reasons (`uninitialized_output`,
`out_of_bounds`). The checks drawn from the input space rotate through every layout (a plain
tensor at offset 0 exactly as a user passes it, transposed and strided views), both modes,
autograd on and off and every kind of fill, from a secret starting point: any four consecutive
drawn checks cover every layout. Benchmark-size trials on a GPU alternate plain and guarded
inputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from builder.judge.inputs import LAYOUTS, mix
from builder.judge.poison import KINDS
from builder.manifest import Case, Input

#: The layouts of benchmark-size inputs (a second copy for a transposed or strided view would not fit).
TRIAL_LAYOUTS = ("guarded", "plain")
MODES = ("train", "eval")


@dataclass(frozen=True)
class Conditions:
    """How one checked call is made."""

    layout: str = "guarded"  # builder.judge.inputs.LAYOUTS
    mode: str = "train"  # "train" or "eval": the module's mode for the call
    grad: bool = False  # autograd on
    poison: str = "sentinel"  # builder.judge.poison.KINDS: the fill of fresh allocations

    def describe(self) -> str:
        return f"{self.layout} inputs, {self.mode} mode, autograd {'on' if self.grad else 'off'}"


#: The conditions of the fixed cases.
STANDARD = Conditions()


def rotation(count: int, rng: random.Random, layouts: tuple[str, ...] = LAYOUTS) -> list[Conditions]:
    """Conditions for `count` calls: layouts, modes, autograd and fills each cycling from a random
    start (so any len(layouts) consecutive calls see every layout, any four both modes and both
    autograd settings)."""
    starts = [rng.randrange(n) for n in (len(layouts), len(MODES), 2, len(KINDS))]
    return [Conditions(layouts[(starts[0] + k) % len(layouts)], MODES[(starts[1] + k) % len(MODES)],
                       (starts[2] + k // 2) % 2 == 0, KINDS[(starts[3] + k) % len(KINDS)]) for k in range(count)]


def trial_conditions(count: int, rng: random.Random) -> list[Conditions]:
    """Benchmark-size trials: plain and guarded inputs in turn, training mode (the benchmark's, as
    KernelBench calls the model), autograd on and off in turn, any fill."""
    start = rng.randrange(2)
    return [Conditions(TRIAL_LAYOUTS[(start + k) % 2], "train", (start + k) % 2 == 0, rng.choice(KINDS))
            for k in range(count)]


def seeded_specs(inputs: tuple[Input, ...], seed: int) -> list[dict[str, Any]]:
    """The inputs' specs as a sandbox or the referee draws them, each with a seed of its own."""
    return [{**i.to_spec(), "seed": mix(seed, k)} for k, i in enumerate(inputs)]


def value_classes(listed: tuple[str, ...], count: int, within: int, rng: random.Random) -> list[str]:
    """The value class of each of `count` drawn checks: the declared range ("uniform") and every
    class the space lists, shuffled and repeated; "special" (NaN and infinities), when listed,
    lands among the first `within`, which every verification runs."""
    order = ["uniform", *listed]
    rng.shuffle(order)
    if "special" in order and order.index("special") >= within > 0:
        order.remove("special")
        order.insert(rng.randrange(within), "special")
    return [order[k % len(order)] for k in range(count)]


def describe_call(case: Case, conditions: Conditions) -> str:
    return f"{case.describe()}; {conditions.describe()}"
