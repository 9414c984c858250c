"""The trusted reference Model, built and called the way the judge builds and calls ModelNew.

Used in the judge's process (small checks, on the CPU), in the referee (benchmark-size trials
and timing checkpoints, on the GPU) and, before any code under test is loaded, in the sandbox
(the eager and torch.compile baselines). A build is Model(**init) after torch.manual_seed(seed)
(ModelNew is built from the same arguments in one of STYLES),
with its learned tensors set from `state_seed` (builder.judge.params); a call runs in training or
eval mode (the reference with autograd off: its values are the same with it on, where ModelNew
is called both ways) and returns the outputs as a list (a tuple or list of tensors, or one
tensor).
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from builder.judge import params

#: torch's global generator is seeded right before a construction: one at a time per process.
_construct = threading.Lock()


@dataclass(frozen=True)
class Build:
    """How one model (reference and ModelNew alike) is constructed."""

    init: dict[str, Any]  # keyword arguments of Model / ModelNew
    seed: int  # torch.manual_seed before construction
    state_seed: int  # the reference's learned tensors are drawn from this

    def to_spec(self) -> dict[str, Any]:
        return {"init": self.init, "seed": self.seed, "state_seed": self.state_seed}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Build:
        return cls(dict(spec["init"]), int(spec["seed"]), int(spec["state_seed"]))


def construct(cls: Any, init: dict[str, Any], seed: int, args: list[Any] | None = None) -> Any:
    """cls(*args, **init) with torch seeded by `seed` first (the same for Model and ModelNew)."""
    with _construct, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(*(args or ()), **init)


#: How ModelNew is constructed from a build's `init` (the reference's keyword arguments):
#: - `positional`: every argument in the order of the reference's signature, as KernelBench
#:   builds it (ModelNew(*get_init_inputs())); a gap takes the reference's default;
#: - `keywords`: every argument by the reference's names;
#: - `defaults`: the arguments at the reference's defaults left out (ModelNew(3, 2) for a pooling
#:   of kernel 3, stride 2), the others positional up to the first one left out, by name after.
#: A `keywords` or `defaults` call that ModelNew's signature cannot take (other names, no
#: defaults: KernelBench passes every argument positionally) falls back to `positional`.
STYLES = ("positional", "keywords", "defaults")


def _is_default(parameter: inspect.Parameter, value: Any) -> bool:
    default = parameter.default
    return default is not inspect.Parameter.empty and type(default) is type(value) and default == value


def _leading(ordered: list[inspect.Parameter], given: dict[str, Any], gaps: bool) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of `given` passed positionally in the order of `ordered` (a gap takes its
    parameter's default where `gaps` allows one), and the rest by keyword."""
    args, rest = [], dict(given)
    for parameter in ordered:
        fill = gaps and parameter.default is not inspect.Parameter.empty
        if not rest or (parameter.name not in rest and not fill):
            break
        args.append(rest.pop(parameter.name) if parameter.name in rest else parameter.default)
    return args, rest


def new_arguments(reference: Any, init: dict[str, Any], style: str) -> dict[str, Any]:
    """The header fields of a sandbox build of ModelNew in `style` (STYLES): `args`, `init` (by
    keyword) and, where another call stands behind it, `fallback` (the same two)."""
    if style not in STYLES:
        raise ValueError(f"unknown construction style {style!r}; expected one of {STYLES}")
    parameters = [p for p in inspect.signature(reference).parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    ordered = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args, rest = _leading(ordered, init, gaps=True)
    positional = {"args": args, "init": rest}
    if style == "positional":
        return positional
    if style == "keywords":
        return {"args": [], "init": dict(init), "fallback": positional}
    by_name = {p.name: p for p in parameters}
    args, rest = _leading(ordered, {k: v for k, v in init.items() if not (k in by_name and _is_default(by_name[k], v))},
                          gaps=False)
    return {"args": args, "init": rest, "fallback": positional}


def build(module: ModuleType, spec: Build, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The reference model of `spec` on `device`, and the values set into its learned tensors (CPU)."""
    model = construct(module.Model, spec.init, spec.seed)
    values = params.random_values(model, spec.state_seed)
    params.assign(model, values)
    return model.to(device), values


def outputs_of(value: Any) -> tuple[list[Any] | None, bool]:
    """(the outputs as a list, whether forward returned a sequence); (None, False) when it
    returned neither a tensor nor a tuple or list."""
    if isinstance(value, torch.Tensor):
        return [value], False
    if type(value) in (tuple, list):
        return list(value), True
    return None, False


def call(model: torch.nn.Module, tensors: list[torch.Tensor], *, mode: str = "train", clone: bool = True
         ) -> tuple[list[torch.Tensor], bool]:
    """The reference's outputs for `tensors` (cloned first, unless `clone` is off: the referee
    keeps one copy of a benchmark-size input), and whether it returned a sequence. Autograd is off:
    the values are the same with it on. Raises whatever the reference raises."""
    model.train(mode == "train")
    with torch.no_grad():
        outs, sequence = outputs_of(model(*[t.clone() for t in tensors] if clone else tensors))
    if outs is None or not all(isinstance(o, torch.Tensor) for o in outs):
        raise TypeError("the reference returned something that is neither a tensor nor a sequence of tensors")
    return [o.detach() for o in outs], sequence


def meta_outputs(module: ModuleType, init: dict[str, Any], inputs: Any) -> list[tuple[tuple[int, ...], str]]:
    """(shape, dtype name) of each output of Model(**init) on `inputs` (builder.manifest.Input), found
    on the meta device: no memory, no values."""
    model = construct(module.Model, init, 0).to("meta")
    tensors = [torch.empty(i.shape, dtype=getattr(torch, i.dtype), device="meta") for i in inputs]
    with torch.no_grad():
        outs, _ = outputs_of(model(*tensors))
    if outs is None:
        raise TypeError("the reference returned something that is neither a tensor nor a sequence of tensors")
    return [(tuple(o.shape), str(o.dtype).removeprefix("torch.")) for o in outs]


def nbytes(meta: list[tuple[tuple[int, ...], str]]) -> int:
    """Bytes of tensors given as (shape, dtype name)."""
    return sum(torch.Size(shape).numel() * getattr(torch, dtype).itemsize for shape, dtype in meta)
