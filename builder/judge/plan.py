"""How each checked call is made: its inputs' layout, the module's mode, autograd, the fill of
fresh allocations; chosen by the judge from secret randomness, so an answer cannot tell a checked
call from a user's.

The fixed cases run as the judge always ran them (guarded inputs, the sentinel fill, training
mode, autograd off), so their verdicts keep their precise reasons (`uninitialized_output`,
`out_of_bounds`). The checks drawn from the input space begin with every layout once and two
plain calls (a tensor at offset 0, exactly as a user passes it): a user's inference call (eval
mode, autograd off) and training call (train mode, autograd on); after them every other check is
plain. Modes, autograd, the order of the layouts, every kind of fill and how ModelNew is built
(its arguments positional, by keyword, or without those at their defaults) rotate from a secret
starting point. Benchmark-size trials on a GPU alternate plain and guarded
inputs.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from builder.judge.inputs import LAYOUTS, mix
from builder.judge.poison import KINDS
from builder.judge.reference import STYLES
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
    build: str = "positional"  # builder.judge.reference.STYLES: how ModelNew's arguments are passed

    def describe(self) -> str:
        return (f"{self.layout} inputs, {self.mode} mode, autograd {'on' if self.grad else 'off'}, "
                f"built {BUILT[self.build]}")


#: How each construction style reads in a call's description.
BUILT = {"positional": "with positional arguments", "keywords": "with keyword arguments",
         "defaults": "without the arguments at their defaults"}


#: The conditions of the fixed cases.
STANDARD = Conditions()


#: A module's mode and autograd, as a user calls it: inference (eval, autograd off) and training
#: (train, autograd on) first, then the two mixed ones.
USER_CALLS = (("eval", False), ("train", True), ("train", False), ("eval", True))
#: The same four in an order whose neighbours differ in mode, for the other layouts.
MIXED_CALLS = (("eval", False), ("train", True), ("eval", True), ("train", False))


def rotation(count: int, rng: random.Random, layouts: tuple[str, ...] = LAYOUTS) -> list[Conditions]:
    """Conditions for `count` calls. The first len(layouts) + 1 see every layout: two plain calls,
    exactly as a user passes its inputs (a user's inference and training calls, in a random
    order), at two of the first four places, and every other layout once, in a random order.
    After them, every other call is plain (the mixed modes next), the rest cycle through the other
    layouts. Mode and autograd of the other layouts cycle on their own from a random start, each
    neighbour of another mode; fills and ModelNew's construction styles cycle through every kind
    from a random start (any len(KINDS) consecutive calls see each fill, any len(STYLES) each
    style)."""
    others = [layout for layout in layouts if layout != "plain"]
    rng.shuffle(others)
    user = list(USER_CALLS[:2])
    rng.shuffle(user)
    user += USER_CALLS[2:]
    first = rng.randrange(2)  # the first plain call's place
    block = len(others) + 2 if "plain" in layouts else len(others)
    mixed, fills, styles = rng.randrange(len(MIXED_CALLS)), rng.randrange(len(KINDS)), rng.randrange(len(STYLES))
    calls: list[Conditions] = []
    plain = other = 0
    for k in range(count):
        fill, style = KINDS[(fills + k) % len(KINDS)], STYLES[(styles + k) % len(STYLES)]
        if k < block:
            is_plain = k in (first, first + 2)
        else:
            is_plain = (k - block) % 2 == 0
        if "plain" in layouts and (is_plain or not others):
            mode, grad = user[plain % len(user)]
            calls.append(Conditions("plain", mode, grad, fill, style))
            plain += 1
        else:
            mode, grad = MIXED_CALLS[(mixed + other) % len(MIXED_CALLS)]
            calls.append(Conditions(others[other % len(others)], mode, grad, fill, style))
            other += 1
    return calls


#: Layouts that show at any size with one axis longer than 1 (builder.judge.inputs.shows): a
#: stretched check in one of them keeps its size (a transposed or sliced one halves it).
ANY_SIZE_LAYOUTS = ("guarded", "strided")


def both_user_calls(calls: list[Conditions]) -> list[Conditions]:
    """`calls` with its first two made a user's inference and training calls at one size: the
    plain one of them (builder.judge.plan.rotation puts one there) keeps its mode and autograd,
    the other takes the other call's, and a layout of ANY_SIZE_LAYOUTS, swapped with the first
    later call's where it had another. The largest drawn checks come first: an answer that
    branches on the module's mode or on autograd is checked at that size either way. (The
    mixed calls' alternation of modes, `rotation`'s, may then see one repeat.)"""
    calls = list(calls)
    plain = 0 if calls[0].layout == "plain" else 1
    other = 1 - plain
    mine = (calls[plain].mode, calls[plain].grad)
    mode, grad = next(c for c in USER_CALLS[:2] if c != mine)
    layout = calls[other].layout
    if layout not in ANY_SIZE_LAYOUTS:
        later = next((k for k in range(2, len(calls)) if calls[k].layout in ANY_SIZE_LAYOUTS), None)
        if later is not None:
            layout = calls[later].layout
            calls[later] = dataclasses.replace(calls[later], layout=calls[other].layout)
    calls[other] = dataclasses.replace(calls[other], layout=layout, mode=mode, grad=grad)
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
