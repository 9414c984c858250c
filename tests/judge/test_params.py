"""Learned tensors: random non-default values, and where they go in ModelNew."""

import torch
import torch.nn as nn

from builder.judge import params
from builder.judge.inputs import payload_of
from builder.judge.reference import Build, build


class Norm(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(features)

    def forward(self, x):
        return self.bn(x)


def test_random_values_move_every_parameter_and_floating_buffer_off_its_default():
    model = Norm(6)
    values = params.random_values(model, 3)
    assert sorted(values) == ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]  # not num_batches_tracked
    assert all(not torch.equal(values[n], t) for n, t in params.learned(model).items())
    assert float(values["bn.running_var"].min()) > 0
    assert all(torch.equal(values[n], v) for n, v in params.random_values(Norm(6), 3).items())


def test_targets_by_name_then_by_last_component():
    wanted = {"ln.weight": (4,), "ln.bias": (4,)}
    same = {"ln.weight": torch.ones(4), "ln.bias": torch.ones(4)}
    assert params.targets(wanted, same) == ({"ln.weight": "ln.weight", "ln.bias": "ln.bias"}, None)
    flat = {"weight": torch.ones(4), "bias": torch.ones(4), "other.weight": torch.ones(5)}
    assert params.targets(wanted, flat) == ({"ln.weight": "weight", "ln.bias": "bias"}, None)
    _, missing = params.targets(wanted, {"bias": torch.ones(4)})
    assert "'ln.weight' of shape [4] has no tensor" in missing
    _, ambiguous = params.targets(wanted, {"a.weight": torch.ones(4), "b.weight": torch.ones(4), "bias": torch.ones(4)})
    assert "2 tensors (a.weight, b.weight)" in ambiguous
    _, shared = params.targets({"a.weight": (4,), "b.weight": (4,)}, {"weight": torch.ones(4)})
    assert "several reference tensors would go to ModelNew's 'weight'" in shared


class Flat(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))


def test_place_copies_the_reference_values_into_modelnew():
    module = type("M", (), {"Model": Norm})
    reference, values = build(module, Build({"features": 6}, 1, 2))
    assert all(torch.equal(t, values[n]) for n, t in params.learned(reference).items())
    new = Flat(6)
    mapping, problem = params.place(new, params.specs(values), payload_of(list(values.values())))
    assert problem is None and mapping["bn.running_var"] == "running_var"
    assert torch.equal(new.weight.detach(), values["bn.weight"]) and torch.equal(new.running_var, values["bn.running_var"])


def test_a_tensor_subclass_is_no_place_for_a_value():
    class Odd(torch.Tensor):
        pass

    new = Flat(3)
    del new.weight
    new.register_buffer("weight", torch.ones(3).as_subclass(Odd))
    _, problem = params.place(new, [{"name": "weight", "shape": [3], "dtype": "float32"}], payload_of([torch.ones(3)]))
    assert problem is not None and "not a plain tensor" in problem
