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


#: The hashes measurement records carry for each pooling manifest: the benchmark table (timings
#: and profiles depend on it) and the checks (verification alone). A change of the manifest format
#: must move neither. The benchmark hashes are those of the committed records; the checks hashes
#: moved once, on purpose, when the [space] tables and the special-value cases were added (the
#: records' verification part alone went stale then).
POOLING_HASHES = {
    "avgpool1d": ("14f0ac37ef4effaa8ac066a1730fba4891c0550fbc6245a30bd4f9dc4224715f",
                  "2bdfa7d4e67bb92d2a81b6b1b1229d33260156ab7f62457c9413106c72013b87"),
    "avgpool2d": ("c0cbb41c2afe723889518fdc6d28a9286413e1d3e528883cf473144adda150ee",
                  "d81539fc1e5419e0e1bda9c647503fb66ef7a1e036461bdab71a1fed574ea695"),
    "avgpool3d": ("dcb7fdbc4ace751e473196489c70ace93bae7fbd93c2685e4e663e4dd2df39bf",
                  "bbf1863739fe972cc3546a4fb5ac0e1552e89f2cf98916f14106bd7501d0eb45"),
    "maxpool1d": ("78f0f9d5543985c07a93fc575d62ee00613bbd52c6fa150ee0e1301062ed88ea",
                  "4a1df92542564ed7f1180b42748bbe9e66c2a0ade3701f7520a6873427092728"),
    "maxpool2d": ("a3b457cb5598f6dcbb1955a231320e7bbddd21945521f2545f6f12e886e60e0c",
                  "57dd7d5788dda00425a74a75c8db57dcc24266bf9b02ce7ecf56669ab549a429"),
    "maxpool3d": ("ecc09c08f0f4b3b9c74ef03c4b86450d1218873c32f976aa202851448d8509f0",
                  "89d8430a154b9bea260389343ab92d6365f5560aa50c71ee7ca9949877cc36b3"),
}


@pytest.mark.parametrize("key", sorted(POOLING_HASHES))
def test_pooling_manifest_hashes_are_pinned(key):
    p = get_problem(key)
    assert (p.benchmark_sha256, p.checks_sha256) == POOLING_HASHES[key]


@pytest.mark.parametrize("key", sorted(POOLING_HASHES))
def test_a_pooling_manifest_is_one_input_named_x(key):
    p = get_problem(key)
    assert [i.name for i in p.inputs] == ["x"] and p.inputs[0].shape == p.shape and p.dtype == "float32"
    assert all(len(c.inputs) == 1 and c.inputs[0].name == "x" for c in p.cases)
