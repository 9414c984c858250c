import json
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from builder.cli import cli
from builder.errors import ManifestError, PromptParseError
from builder.newproblem import new_problem, parse_init, parse_shape, starter_shape
from builder.prompt import parse
from builder.seeds import get_problem, load_problem, load_problems

FAMILY = Path(__file__).parent / "fixtures" / "prompts" / "family"
MAXPOOL1D = FAMILY / "41_Max_Pooling_1D.stage1_grid_and_parallel.txt"
INIT = {"kernel_size": 8, "stride": 1, "padding": 4, "dilation": 3, "return_indices": False}
ARGS = dict(key="maxpool1d", kernelbench_id=41, name="41_Max_Pooling_1D", shape=(64, 192, 65536), init=INIT)
TINY_REFERENCE = '''import torch.nn as nn


class Model(nn.Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False):
        super().__init__()
        self.pool = nn.MaxPool1d(kernel_size, stride, padding, dilation, return_indices)

    def forward(self, x):
        return self.pool(x)
'''


@pytest.fixture
def made(tmp_path: Path) -> Path:
    folder = new_problem(MAXPOOL1D.read_bytes(), root=tmp_path, **ARGS)
    (folder / "reference.py").write_text(TINY_REFERENCE)
    return folder


def test_writes_the_four_files(made):
    assert sorted(p.name for p in made.iterdir()) == [
        "kernel.py", "manifest.toml", "reference.py", "seed_metrics.json", "seed_prompt.txt"]
    assert not [p for p in made.parent.iterdir() if p.name.startswith(".")]


def test_files_are_the_prompts_own(made):
    spec = parse(MAXPOOL1D.read_text())
    assert (made / "seed_prompt.txt").read_bytes() == MAXPOOL1D.read_bytes()
    assert (made / "kernel.py").read_bytes() == spec.code.encode()
    assert json.loads((made / "seed_metrics.json").read_text()) == {
        "origin": "seed prompt", "gpu": "rtx4090", "metrics": spec.metrics}


def test_the_manifest_loads_as_a_problem(made):
    problem = load_problem(made)
    assert (problem.key, problem.level, problem.id, problem.name) == ("maxpool1d", 1, 41, "41_Max_Pooling_1D")
    assert problem.init == INIT and list(problem.init) == list(INIT)
    assert (problem.shape, problem.dtype, problem.atol, problem.rtol) == ((64, 192, 65536), "float32", 1e-4, 1e-4)
    assert [c.name for c in problem.cases] == ["starter"]
    assert problem.cases[0].init == INIT and problem.cases[0].shape == starter_shape(problem.shape, INIT)
    assert problem.seed_metrics().metrics == parse(MAXPOOL1D.read_text()).metrics
    assert get_problem("maxpool1d", made.parent) == problem
    assert [p.key for p in load_problems(made.parent)] == ["maxpool1d"]


def test_the_starter_case_is_marked_as_a_starter(made):
    text = (made / "manifest.toml").read_text()
    comment = text.split("[[cases]]")[0].splitlines()[-1]
    assert comment.startswith("#") and "STARTER" in text.split("[[cases]]")[0]


def test_the_starter_case_runs_through_the_reference(made):
    import torch

    from builder.judge.loader import load_module

    problem = load_problem(made)
    model = load_module(problem.reference_path).Model(**problem.cases[0].init)
    out = model(torch.rand(*problem.cases[0].shape))
    assert out.shape[:2] == problem.cases[0].shape[:2] and out.shape[2] >= 2


def test_the_avgpool1d_seed_gives_its_own_manifest_back(tmp_path):
    from builder.seeds import SEEDS_DIR

    seed = SEEDS_DIR / "avgpool1d"
    existing = tomllib.loads((seed / "manifest.toml").read_text())
    folder = new_problem((seed / "seed_prompt.txt").read_bytes(), "avgpool1d", 44, "44_Average_Pooling_1D",
                         tuple(existing["benchmark"]["shape"]), dict(existing["benchmark"]["init"]), root=tmp_path)
    written = tomllib.loads((folder / "manifest.toml").read_text())
    assert written["problem"] == existing["problem"]
    assert written["benchmark"] == existing["benchmark"] and written["tolerance"] == existing["tolerance"]
    assert (folder / "kernel.py").read_bytes() == (seed / "kernel.py").read_bytes()
    assert json.loads((folder / "seed_metrics.json").read_text()) == json.loads((seed / "seed_metrics.json").read_text())


@pytest.mark.parametrize(
    ("shape", "init", "starter"),
    [
        ((64, 192, 65536), {"kernel_size": 8, "stride": 1, "padding": 4, "dilation": 3}, (2, 3, 65)),
        ((16, 64, 2048, 2048), {"kernel_size": 11}, (2, 3, 23, 23)),
        ((16, 32, 128, 128, 256), {"kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 17, 17, 17)),
        ((1, 2, 10), {"kernel_size": 3, "ceil_mode": True}, (1, 2, 10)),
        ((4096,), {}, (2,)),
    ],
)
def test_starter_shapes(shape, init, starter):
    assert starter_shape(shape, init) == starter


def test_parse_shape_and_init():
    assert parse_shape("64, 128,65536") == (64, 128, 65536)
    assert parse_init(["kernel_size=8", "ceil_mode=False", "eps=1e-5", "scale = -0.5"]) == {
        "kernel_size": 8, "ceil_mode": False, "eps": 1e-5, "scale": -0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "Max-Pool"}, "--key 'Max-Pool'"),
        ({"kernelbench_id": 0}, "--kernelbench-id 0"),
        ({"name": "Max_Pooling_1D"}, "--name 'Max_Pooling_1D'"),
        ({"name": "42_Max_Pooling_2D"}, "starts with 42, but --kernelbench-id is 41"),
        ({"shape": ()}, "--shape"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path, change, message):
    with pytest.raises(ManifestError, match=message):
        new_problem(MAXPOOL1D.read_bytes(), root=tmp_path, **{**ARGS, **change})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("64,x", "--shape '64,x'"), ("64,0", "--shape '64,0'"), ("", "--shape ''")],
)
def test_bad_shapes_are_named(text, message):
    with pytest.raises(ManifestError, match=message):
        parse_shape(text)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["kernel_size"], "NAME=VALUE"),
        (["2k=3"], "NAME=VALUE"),
        (["k=1", "k=2"], "given twice"),
        (["k=abc"], "integer, a finite number, true or false, a list"),
        (["k=nan"], "finite"),
    ],
)
def test_bad_init_args_are_named(items, message):
    with pytest.raises(ManifestError, match=message):
        parse_init(items)


def test_refuses_an_existing_folder(made):
    before = {p.name: p.read_bytes() for p in made.iterdir()}
    with pytest.raises(ManifestError, match="already exists"):
        new_problem(MAXPOOL1D.read_bytes(), root=made.parent, **ARGS)
    assert {p.name: p.read_bytes() for p in made.iterdir()} == before


@pytest.mark.parametrize(
    ("prompt", "error", "message"),
    [
        ((FAMILY / "41_Max_Pooling_1D.stage3_memory_access.txt").read_bytes(), ManifestError, "'memory_access' prompt"),
        (MAXPOOL1D.read_bytes().replace(b"GPU Name: 4090", b"GPU Name: 5090"), ManifestError, "GPU Name: 5090"),
        (MAXPOOL1D.read_bytes().replace(b"[CURRENT CODE]", b"[CODE]"), PromptParseError, r"'\[CURRENT CODE\]'"),
        (b"\xff\xfe", ManifestError, "not UTF-8"),
        (re.sub(rb"(?s)(?<=METRICS\]\n)\{.*?\n\}", b"No NCU metrics available", MAXPOOL1D.read_bytes()), ManifestError,
         "holds no"),
    ],
    ids=["stage 3", "unknown gpu", "no code section", "binary", "no metrics"],
)
def test_unsuitable_prompts_are_refused(tmp_path, prompt, error, message):
    with pytest.raises(error, match=message):
        new_problem(prompt, root=tmp_path, **ARGS)
    assert list(tmp_path.iterdir()) == []


def cli_args(root: Path, prompt: Path = MAXPOOL1D) -> list[str]:
    return ["new-problem", str(prompt), "--key", "maxpool1d", "--kernelbench-id", "41", "--name", "41_Max_Pooling_1D",
            "--shape", "64,192,65536", "--init", "kernel_size=8", "--init", "stride=1", "--init", "padding=4",
            "--init", "dilation=3", "--init", "return_indices=false", "--root", str(root)]


def test_cli_writes_the_folder(tmp_path):
    result = CliRunner().invoke(cli, cli_args(tmp_path), catch_exceptions=False)
    assert result.exit_code == 0 and "reference.py" in result.output
    manifest = tomllib.loads((tmp_path / "maxpool1d" / "manifest.toml").read_text())
    assert manifest["benchmark"]["init"] == INIT and manifest["benchmark"]["shape"] == [64, 192, 65536]


def test_cli_exit_codes(tmp_path):
    bad_prompt = tmp_path / "notes.txt"
    bad_prompt.write_text("# Target GPU\nnothing else\n")
    result = CliRunner().invoke(cli, cli_args(tmp_path / "seeds", bad_prompt))
    assert result.exit_code == 2 and "missing section '[OPTIMIZATION STAGE]'" in result.output
    assert CliRunner().invoke(cli, cli_args(tmp_path / "seeds")).exit_code == 0
    again = CliRunner().invoke(cli, cli_args(tmp_path / "seeds"))
    assert again.exit_code == 1 and "already exists" in again.output


CROSS_ENTROPY = '''import torch.nn as nn
import torch.nn.functional as F


class Model(nn.Module):
    def forward(self, predictions, targets):
        return F.cross_entropy(predictions, targets)
'''
LAYER_NORM = '''import torch.nn as nn


class Model(nn.Module):
    def __init__(self, normalized_shape):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape)

    def forward(self, x):
        return self.ln(x)
'''


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("predictions=32768x4096:float32", ("predictions", (32768, 4096), "float32", 0.0, 1.0)),
        ("targets=32768:int64:0:4096", ("targets", (32768,), "int64", 0, 4096)),
        ("x=16x64x256x256", ("x", (16, 64, 256, 256), "float32", 0.0, 1.0)),
        ("scale=:float16:-1:1", ("scale", (), "float16", -1.0, 1.0)),
    ],
)
def test_parse_input(text, expected):
    from builder.newproblem import parse_input

    found = parse_input(text)
    assert (found.name, found.shape, found.dtype, found.low, found.high) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("32768x4096", "NAME=DIMS"),
        ("t=32768:int64", "an integer input needs its range"),
        ("t=32768:int64:0.5:9", "LOW and HIGH must be integers"),
        ("t=32768:int8:0:9", "dtype 'int8' is not one of"),
        ("t=32768x0", "positive integers joined by x"),
        ("t=3:float32:1:0", "LOW must be below HIGH"),
    ],
)
def test_bad_inputs_are_named(text, message):
    from builder.newproblem import parse_input

    with pytest.raises(ManifestError, match=message):
        parse_input(text)


def test_init_values_of_any_toml_type():
    assert parse_init(["normalized_shape=[64,256,256]", 'reduction="mean"', "eps=1e-5", "bias=True"]) == {
        "normalized_shape": [64, 256, 256], "reduction": "mean", "eps": 1e-5, "bias": True}
    with pytest.raises(ManifestError, match="finite"):
        parse_init(["shape=[1, nan]"])


def test_several_inputs_make_a_v2_manifest_whose_starter_sizes_agree(tmp_path):
    from builder.judge.loader import load_module
    from builder.newproblem import parse_input
    from builder.seeds import load_problem

    inputs = (parse_input("predictions=32768x4096:float32"), parse_input("targets=32768:int64:0:4096"))
    folder = new_problem(MAXPOOL1D.read_bytes(), "crossentropy", 95, "95_CrossEntropyLoss", init={}, root=tmp_path,
                         inputs=inputs)
    (folder / "reference.py").write_text(CROSS_ENTROPY)
    manifest = tomllib.loads((folder / "manifest.toml").read_text())
    assert [i["name"] for i in manifest["benchmark"]["inputs"]] == ["predictions", "targets"]
    assert "shape" not in manifest["benchmark"] and "# [space]" in (folder / "manifest.toml").read_text()
    problem = load_problem(folder)
    assert [(i.name, i.shape, i.dtype, i.high) for i in problem.inputs] == [
        ("predictions", (32768, 4096), "float32", 1.0), ("targets", (32768,), "int64", 4096)]
    predictions, targets = problem.cases[0].inputs
    assert predictions.shape == (19, 17) and targets.shape == (19,) and targets.high == 17
    import torch

    out = load_module(problem.reference_path).Model()(torch.rand(predictions.shape), torch.randint(0, 17, targets.shape))
    assert out.shape == ()


def test_a_list_init_argument_shrinks_with_the_sizes_it_names(tmp_path):
    import torch

    from builder.judge.loader import load_module
    from builder.newproblem import parse_input
    from builder.seeds import load_problem

    folder = new_problem(MAXPOOL1D.read_bytes(), "layernorm", 40, "40_LayerNorm", root=tmp_path,
                         init=parse_init(["normalized_shape=[64,256,256]"]), inputs=(parse_input("x=16x64x256x256"),))
    (folder / "reference.py").write_text(LAYER_NORM)
    problem = load_problem(folder)
    case = problem.cases[0]
    assert problem.init == {"normalized_shape": [64, 256, 256]}
    assert case.init == {"normalized_shape": [17, 19, 19]} and case.shape == (16, 17, 19, 19)
    model = load_module(problem.reference_path).Model(**case.init)
    assert model(torch.rand(case.shape)).shape == case.shape


@pytest.mark.parametrize("extra", [{}, {"shape": (3, 4)}], ids=["neither", "both"])
def test_shape_or_inputs_one_of_them(tmp_path, extra):
    from builder.newproblem import parse_input

    inputs = (parse_input("x=3x4"),) if extra else None
    with pytest.raises(ManifestError, match="--shape .* or as --input"):
        new_problem(MAXPOOL1D.read_bytes(), "p", 41, "41_Max_Pooling_1D", init={}, root=tmp_path, inputs=inputs,
                    **extra)
    assert list(tmp_path.iterdir()) == []


def test_cli_takes_inputs_and_list_init_arguments(tmp_path):
    args = ["new-problem", str(MAXPOOL1D), "--key", "layernorm", "--kernelbench-id", "40", "--name", "40_LayerNorm",
            "--input", "x=16x64x256x256", "--init", "normalized_shape=[64,256,256]", "--root", str(tmp_path)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = tomllib.loads((tmp_path / "layernorm" / "manifest.toml").read_text())
    assert manifest["benchmark"]["init"] == {"normalized_shape": [64, 256, 256]}
    assert manifest["benchmark"]["inputs"] == [{"name": "x", "shape": [16, 64, 256, 256], "dtype": "float32",
                                                "low": 0.0, "high": 1.0}]
