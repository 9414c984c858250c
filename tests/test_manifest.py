"""The manifest's input model (format version 2): several inputs, integer inputs, any init value,
cases by input name, the input space; errors name the file and the field."""

import textwrap

import pytest

from builder.errors import ManifestError
from builder.seeds import load_problem

REFERENCE = "import torch.nn as nn\n\n\nclass Model(nn.Module):\n    def forward(self, a, b):\n        return a\n"
MULTI = """
[problem]
level = 1
id = 95
name = "95_CrossEntropyLoss"

[benchmark]
init = { normalized_shape = [64, 256], reduction = "mean", eps = 1e-5 }

[[benchmark.inputs]]
name = "predictions"
shape = [32768, 4096]
dtype = "float32"

[[benchmark.inputs]]
name = "targets"
shape = [32768]
dtype = "int64"
low = 0
high = 4096

[tolerance]
atol = 1e-4
rtol = 1e-4

[[cases]]
name = "small"
init = {}
inputs = { predictions = { shape = [5, 1000], low = -1.0, values = "special" }, targets = { shape = [5], high = 1000 } }

[space]
dims = { N = [1, 64], C = [1, 5000] }
init = { normalized_shape = [["N", "C"], ["C"]], reduction = ["mean", "sum"] }
values = ["signed", "special"]
out_of_scope = { ignore_index = "the space draws targets in [0, C)" }

[space.inputs.predictions]
shape = ["N", "C"]
dtypes = ["float32", "float16"]

[space.inputs.targets]
shape = ["N"]
high = "C"
"""


def write(tmp_path, text, name="p"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "manifest.toml").write_text(textwrap.dedent(text))
    (folder / "reference.py").write_text(REFERENCE)
    (folder / "kernel.py").write_text("")
    return folder


def test_several_inputs_integer_ranges_and_any_init_value(tmp_path):
    p = load_problem(write(tmp_path, MULTI))
    assert p.init == {"normalized_shape": [64, 256], "reduction": "mean", "eps": 1e-5}
    assert [(i.name, i.shape, i.dtype, i.low, i.high) for i in p.inputs] == [
        ("predictions", (32768, 4096), "float32", 0.0, 1.0), ("targets", (32768,), "int64", 0, 4096)]
    assert isinstance(p.inputs[1].high, int) and not p.inputs[1].is_float
    case = p.cases[0]
    assert [(i.shape, i.low, i.high, i.values) for i in case.inputs] == [
        ((5, 1000), -1.0, 1.0, "special"), ((5,), 0, 1000, "uniform")]
    assert "predictions [5, 1000] float32 [-1, 1) special" in case.describe()
    space = p.space
    assert space.dims == {"N": (1, 64), "C": (1, 5000)} and space.values == ("signed", "special")
    assert space.init["normalized_shape"] == (["N", "C"], ["C"])
    assert space.inputs["targets"].high == "C" and space.inputs["predictions"].dtypes == ("float32", "float16")


def test_resolve_replaces_dim_names_inside_lists():
    from builder.manifest import resolve

    assert resolve([["N", "C"], "C", "mean", 3], {"N": 2, "C": 7}) == [[2, 7], 7, "mean", 3]


def _broken(tmp_path, old, new):
    assert old in MULTI
    return write(tmp_path, MULTI.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('name = "targets"\nshape = [32768]\ndtype = "int64"\nlow = 0\nhigh = 4096',
         'name = "targets"\nshape = [32768]\ndtype = "int64"', r"benchmark\.inputs\[1\]\.high: an integer input needs"),
        ("low = 0\nhigh = 4096", "low = 0.5\nhigh = 4096", r"benchmark\.inputs\[1\]: the bounds of a int64 input must be integers"),
        ('dtype = "int64"', 'dtype = "int8"', r"benchmark\.inputs\[1\]\.dtype: 'int8' is not one of"),
        ('name = "targets"', 'name = "predictions"', r"benchmark\.inputs: duplicate input names \['predictions'\]"),
        ("targets = { shape = [5], high = 1000 }", "target = { shape = [5] }", r"cases\[0\]\.inputs: unknown input\(s\) \['target'\]"),
        (", targets = { shape = [5], high = 1000 }", "", r"cases\[0\]\.inputs: missing input\(s\) \['targets'\]"),
        ("targets = { shape = [5], high = 1000 }", "targets = { shape = [5], low = 9, high = 3 }",
         r"cases\[0\]\.inputs\.targets: low \(9\) must be below high \(3\)"),
        ('values = "special" }', 'values = "weird" }', r"cases\[0\]\.inputs\.predictions\.values: 'weird' is not one of"),
        ('init = {}\ninputs', 'init = {}\nshape = [5, 1000]\ninputs', r"cases\[0\]: give either `inputs` or shape, not both"),
        ('C = [1, 5000]', 'C = [5000, 1]', r"space\.dims\.C: expected \[low, high\]"),
        ('shape = ["N"]', 'shape = ["M"]', r"space\.inputs\.targets\.shape: .*unknown \['M'\]"),
        ('high = "C"', 'high = "D"', r"space\.inputs\.targets\.high: 'D' is no dim"),
        ('values = ["signed", "special"]', 'values = ["loud"]', r"space\.values\[0\]: 'loud' is not one of"),
        ('dtypes = ["float32", "float16"]', 'dtypes = ["int32"]', r"space\.inputs\.predictions\.dtypes: \['int32'\] are not floating"),
        ('[space.inputs.targets]\nshape = ["N"]\nhigh = "C"\n', "", r"space\.inputs\.targets: missing"),
    ],
)
def test_bad_v2_manifests_name_the_file_and_the_field(tmp_path, old, new, expected):
    folder = _broken(tmp_path, old, new)
    with pytest.raises(ManifestError, match=expected) as info:
        load_problem(folder)
    assert str(folder / "manifest.toml") in str(info.value)


def test_inputs_and_shorthand_together_are_refused(tmp_path):
    folder = _broken(tmp_path, 'eps = 1e-5 }\n', 'eps = 1e-5 }\nshape = [3]\ndtype = "float32"\n')
    with pytest.raises(ManifestError, match=r"benchmark: give the inputs either as \[\[benchmark.inputs\]\] or"):
        load_problem(folder)


def test_a_case_shape_alone_needs_a_single_input_problem(tmp_path):
    folder = _broken(tmp_path, "inputs = { predictions", "shape = [3]\nx = { predictions")
    with pytest.raises(ManifestError):
        load_problem(folder)
    folder = write(tmp_path, MULTI.replace(
        'inputs = { predictions = { shape = [5, 1000], low = -1.0, values = "special" }, targets = { shape = [5], high = 1000 } }',
        "shape = [5, 1000]"), name="q")
    with pytest.raises(ManifestError, match=r"cases\[0\]: `shape` alone names no input of a problem with 2 inputs"):
        load_problem(folder)


def test_a_benchmark_without_inputs_is_named(tmp_path):
    text = MULTI.split("[[benchmark.inputs]]")[0] + "[tolerance]" + MULTI.split("[tolerance]")[1]
    with pytest.raises(ManifestError, match=r"benchmark: missing the inputs"):
        load_problem(write(tmp_path, text))
