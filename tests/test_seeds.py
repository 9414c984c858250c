import json
import re

import pytest

from builder.errors import ManifestError
from builder.seeds import get_problem, load_problem, load_problems
from tests.conftest import SEEDS


def test_both_problems_load_with_their_kernelbench_ids():
    problems = {p.key: p for p in load_problems()}
    assert problems["avgpool1d"].id == 44 and problems["avgpool1d"].name == "44_Average_Pooling_1D"
    assert problems["avgpool2d"].id == 45 and problems["avgpool2d"].shape == (16, 64, 2048, 2048)
    assert problems["avgpool1d"].init == {"kernel_size": 8, "stride": 1, "padding": 4}


@pytest.mark.parametrize("key", ["avgpool1d", "avgpool2d"])
def test_cases_cover_the_required_kinds(key):
    p = get_problem(key)
    assert len(p.cases) >= 8
    inits = [c.init for c in p.cases]
    assert any(i.get("padding", 0) > 0 for i in inits)
    assert any(i.get("stride", i["kernel_size"]) != i["kernel_size"] for i in inits)
    assert any(c.shape[0] == 1 and c.shape[1] == 1 for c in p.cases)

    def out_len(n, i):
        k, s, pad = i["kernel_size"], i.get("stride") or i["kernel_size"], i.get("padding", 0)
        return (n + 2 * pad - k) // s + 1

    assert any(all(out_len(n, c.init) == 1 for n in c.shape[2:]) for c in p.cases)
    assert any(any(n % 2 == 1 for n in c.shape[2:]) for c in p.cases)


@pytest.mark.parametrize("key", ["avgpool1d", "avgpool2d"])
def test_reference_module_agrees_with_manifest(key):
    p = get_problem(key)
    text = p.reference_path.read_text()
    for name, value in p.init.items():
        assert re.search(rf"^{name} = {value}$", text, re.M), name
    for dim in p.shape:
        assert re.search(rf"^\w+ = {dim}$", text, re.M), dim
    assert "torch.rand(" in text


@pytest.mark.parametrize("key", ["avgpool1d", "avgpool2d"])
def test_seed_metrics_are_the_prompts_own(key):
    from builder.prompt import parse

    p = get_problem(key)
    seed = p.seed_metrics()
    assert seed.origin == "seed prompt" and seed.gpu == "rtx4090"
    assert seed.metrics == parse(p.seed_prompt_path.read_text()).metrics


def test_new_problem_folder_is_picked_up(seed_copy):
    new = seed_copy / "zz_new_problem"
    new.mkdir()
    for name in ("reference.py", "kernel.py"):
        (new / name).write_text((seed_copy / "avgpool1d" / name).read_text())
    text = (seed_copy / "avgpool1d" / "manifest.toml").read_text().replace("44_Average_Pooling_1D", "41_Max_Pooling_1D")
    (new / "manifest.toml").write_text(text.replace("id = 44", "id = 41"))
    before = sorted(p.name for p in seed_copy.iterdir() if (p / "manifest.toml").exists() and p != new)
    keys = [p.key for p in load_problems(seed_copy)]
    assert keys == [*before, "zz_new_problem"]
    assert get_problem("zz_new_problem", seed_copy).id == 41


def _break(seed_copy, old, new):
    path = seed_copy / "avgpool1d" / "manifest.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("tolerance]", "tolerence]", r"unknown field \(did you mean 'tolerance'\?\)"),
        ("atol = 1e-4", "atl = 1e-4", r"tolerance\.atl: unknown field \(did you mean 'atol'\?\)"),
        ("id = 44", "id = \"44\"", r"problem\.id: expected integer"),
        ("shape = [64, 128, 65536]", "shape = []", r"benchmark\.shape: needs at least 1"),
        ('dtype = "float32"', 'dtype = "float64"', r"benchmark\.dtype: 'float64' is not one of"),
        ('name = "padded_stride1"\n', "", r"cases\[0\]: missing required field 'name'"),
        ("level = 1", "level = = 1", r"not valid TOML"),
    ],
)
def test_bad_manifest_names_file_and_field(seed_copy, old, new, expected):
    path = _break(seed_copy, old, new)
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(ManifestError, match=expected) as info:
        load_problem(path.parent)
    assert str(path) in str(info.value)
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_duplicate_case_names_are_rejected(seed_copy):
    _break(seed_copy, 'name = "no_padding"', 'name = "padded_stride1"')
    with pytest.raises(ManifestError, match="duplicate case names"):
        load_problem(seed_copy / "avgpool1d")


def test_missing_file_is_named(seed_copy):
    (seed_copy / "avgpool2d" / "reference.py").unlink()
    with pytest.raises(ManifestError, match="missing reference.py"):
        load_problem(seed_copy / "avgpool2d")


def test_unknown_problem_lists_known_ones():
    with pytest.raises(ManifestError, match="unknown problem 'avgpool9d'; known: avgpool1d, avgpool2d"):
        get_problem("avgpool9d")


def test_seed_metrics_file_is_plain_json():
    data = json.loads((SEEDS / "avgpool2d" / "seed_metrics.json").read_text())
    assert data["metrics"]["avgpool2d_kernel"]["launch__grid_size"] == 380928


@pytest.mark.parametrize("key", ["avgpool1d", "avgpool2d"])
def test_starting_kernel_is_the_seed_prompts_current_code_verbatim(key):
    from builder.prompt import parse

    p = get_problem(key)
    assert p.kernel_path.read_bytes().decode() == parse(p.seed_prompt_path.read_text()).code


@pytest.mark.parametrize("key", ["avgpool1d", "avgpool2d"])
def test_seed_prompt_files_are_the_shared_originals(key):
    from tests.conftest import SHARED_SEEDS

    if not SHARED_SEEDS.is_dir():
        pytest.skip("../shared/seeds is not beside this checkout")
    copy = get_problem(key).seed_prompt_path.read_bytes()
    assert copy in [f.read_bytes() for f in SHARED_SEEDS.glob("*.txt")]
