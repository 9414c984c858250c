"""Learned parameters and buffers: the values the judge gives the reference, and where they go in ModelNew.

The judge builds Model(**init) and ModelNew(**init) after seeding torch the same way (as
KernelBench does), then sets every parameter and floating buffer of the reference to its
default plus uniform noise in [-0.5, 0.5) from a secret seed (a weight of ones lands in
[0.5, 1.5), a bias of zeros in [-0.5, 0.5), a running variance stays positive), and copies each
into ModelNew's tensor of the same name and shape, else of the same last name component and
shape (reference "ln.weight" -> ModelNew "weight"). An answer that ignores a weight, a bias or a
running statistic then computes something else. In the sandbox the copy is the sandbox's own
code, on values the judge sent as bytes.
"""

from __future__ import annotations

from typing import Any

import torch

from builder.judge.inputs import from_bytes

#: Half-width of the noise added to each learned tensor's default value.
NOISE = 0.5


def learned(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and floating buffers of `model`, by name (nn.Module's own listing, not an
    override of the model's)."""
    found = dict(torch.nn.Module.named_parameters(model))
    found.update({name: b for name, b in torch.nn.Module.named_buffers(model) if b.is_floating_point()})
    return found


def random_values(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """New CPU values for every learned tensor of `model`: its value plus uniform noise, from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    values = {}
    for name, tensor in learned(model).items():
        noise = torch.empty(tensor.shape, dtype=torch.float64).uniform_(-NOISE, NOISE, generator=generator)
        values[name] = (tensor.detach().to("cpu", torch.float64) + noise).to(tensor.dtype)
    return values


def assign(model: torch.nn.Module, values: dict[str, torch.Tensor]) -> None:
    """Copy `values` into the learned tensors of the same name."""
    tensors = learned(model)
    with torch.no_grad():
        for name, value in values.items():
            tensors[name].copy_(value.to(tensors[name].device))


def specs(values: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """What the sandbox is told of the values it receives as bytes, in payload order."""
    return [{"name": name, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for name, v in values.items()]


def targets(wanted: dict[str, tuple[int, ...]], candidate: dict[str, torch.Tensor]) -> tuple[dict[str, str], str | None]:
    """Where each reference tensor (name -> shape) goes in ModelNew (its tensors by name): the same
    name and shape, else the one tensor of the same last name component and shape. Returns the
    mapping and, when some reference tensor has no single place, why (else None)."""
    mapping: dict[str, str] = {}
    for name, shape in wanted.items():
        if name in candidate and tuple(candidate[name].shape) == shape:
            mapping[name] = name
            continue
        last = name.rsplit(".", 1)[-1]
        same = sorted(n for n, t in candidate.items() if n.rsplit(".", 1)[-1] == last and tuple(t.shape) == shape)
        if len(same) != 1:
            why = "no tensor" if not same else f"{len(same)} tensors ({', '.join(same[:3])})"
            return mapping, (f"the reference's learned tensor '{name}' of shape {list(shape)} has {why} named "
                             f"'{name}' or '*.{last}' of that shape in ModelNew (register it as a parameter or buffer)")
        mapping[name] = same[0]
    taken = [t for t in mapping.values() if list(mapping.values()).count(t) > 1]
    if taken:
        return mapping, f"several reference tensors would go to ModelNew's '{taken[0]}'"
    return mapping, None


def place(model: torch.nn.Module, state: list[dict[str, Any]], payload: torch.Tensor | None
          ) -> tuple[dict[str, str], str | None]:
    """Copy the values the judge sent (`state` describes them, `payload` holds their bytes) into
    ModelNew's matching tensors; return the mapping and why it failed, if it did."""
    candidate = dict(torch.nn.Module.named_parameters(model))
    candidate.update(dict(torch.nn.Module.named_buffers(model)))
    wanted = {s["name"]: tuple(s["shape"]) for s in state}
    mapping, problem = targets(wanted, candidate)
    if problem:
        return mapping, problem
    offset = 0
    with torch.no_grad():
        for spec in state:
            target = candidate[mapping[spec["name"]]]
            if type(target) not in (torch.Tensor, torch.nn.Parameter):
                return mapping, f"ModelNew's '{mapping[spec['name']]}' is a {type(target).__name__}, not a plain tensor"
            dtype = getattr(torch, spec["dtype"])
            size = target.numel() * dtype.itemsize
            assert payload is not None
            value = from_bytes(payload[offset:offset + size], tuple(target.shape), dtype)
            offset += size
            torch.Tensor.copy_(target, value.to(target.device))
    return mapping, None
