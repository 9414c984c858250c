"""How each checked call is made: its inputs' layout, the module's mode, autograd, the fill of
fresh allocations; chosen by the judge from secret randomness, so an answer cannot tell a checked
call from a user's.

The fixed cases run as the judge always ran them (guarded inputs, the sentinel fill, training
mode, autograd off), so their verdicts keep their precise reasons (`uninitialized_output`,
`out_of_bounds`). Every other check drawn from the input space is a plain call (a tensor at
offset 0, exactly as a user passes it), its first two a user's inference call (eval mode,
autograd off) and training call (train mode, autograd on); the checks between rotate through the
guarded, transposed, strided and sliced layouts; modes, autograd and every kind of fill rotate too, from
a secret starting point. Benchmark-size trials on a GPU alternate plain and guarded
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


#: A module's mode and autograd, as a user calls it: inference (eval, autograd off) and training
#: (train, autograd on) first, then the two mixed ones.
USER_CALLS = (("eval", False), ("train", True), ("train", False), ("eval", True))
#: The same four in an order whose neighbours differ in mode, for the other layouts.
MIXED_CALLS = (("eval", False), ("train", True), ("eval", True), ("train", False))


def rotation(count: int, rng: random.Random, layouts: tuple[str, ...] = LAYOUTS) -> list[Conditions]:
    """Conditions for `count` calls. Every other call is a plain one, exactly as a user passes
    its inputs; its first two are a user's inference and training calls (in a random order), the
    next ones the mixed modes. The calls between cycle through the other layouts from a random
    start, with mode and autograd cycling on their own. Fills cycle through every kind from a
    random start (any len(KINDS) consecutive calls see each)."""
    others = [layout for layout in layouts if layout != "plain"]
    user = list(USER_CALLS[:2])
    rng.shuffle(user)
    user += USER_CALLS[2:]
    starts = [rng.randrange(n) for n in (2, len(others), len(MIXED_CALLS), len(KINDS))]
    calls: list[Conditions] = []
    plain = other = 0
    for k in range(count):
        fill = KINDS[(starts[3] + k) % len(KINDS)]
        if "plain" in layouts and (not others or (k + starts[0]) % 2 == 0):
            mode, grad = user[plain % len(user)]
            calls.append(Conditions("plain", mode, grad, fill))
            plain += 1
        else:
            mode, grad = MIXED_CALLS[(starts[2] + other) % len(MIXED_CALLS)]
            calls.append(Conditions(others[(starts[1] + other) % len(others)], mode, grad, fill))
            other += 1
    return calls


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
