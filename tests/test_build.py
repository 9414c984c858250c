import pytest
from click.testing import CliRunner

from builder import PROJECT_ROOT
from builder import build as B
from builder import records
from builder.cli import cli
from builder.dataset import integrity_check, load_rows
from builder.errors import RecordError
from builder.judge import judge_version
from builder.judge.correctness import VerifyBatch, VerifyResult
from builder.records import sha256_file
from builder.seeds import load_problem
from builder.stages import catalog
from tests.recordfactory import write_chain

STAGES = [s.key for s in catalog().stages]


@pytest.fixture
def problem(seed_copy):
    folder = seed_copy / "avgpool2d"
    (folder / "solutions").mkdir(exist_ok=True)
    for key in STAGES:
        (folder / "solutions" / f"{key}.py").write_text(f"# {key}\n")
    return load_problem(folder)


def test_build_writes_a_loadable_dataset_from_records(problem, tmp_path):
    root = tmp_path / "m"
    write_chain(problem, root)
    folder, rows, skipped = B.build([problem], tmp_path / "ds", skip_verify=True, measure_missing=False, records_root=root)
    integrity_check(folder)
    assert [r["id"] for r in load_rows(folder)] == sorted(r["id"] for r in rows)
    assert len(rows) == 4 and skipped == []


def test_same_inputs_give_the_same_files(problem, tmp_path):
    root = tmp_path / "m"
    write_chain(problem, root)
    a = B.build([problem], tmp_path / "a", skip_verify=True, measure_missing=False, records_root=root)[0]
    b = B.build([problem], tmp_path / "b", skip_verify=True, measure_missing=False, records_root=root)[0]
    for name in ("data/sft/train-00000-of-00001.parquet", "data/preference/train-00000-of-00001.parquet", "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_missing_records_are_listed_unless_allowed(problem, tmp_path):
    root = tmp_path / "m"
    write_chain(problem, root)
    (root / "h100_sxm" / "avgpool2d" / "memory_access.json").unlink()
    with pytest.raises(RecordError, match=r"2 row\(s\) lack fresh records.*\n.*avgpool2d/memory_access/h100_sxm: record of 'memory_access' is missing"):
        B.build([problem], tmp_path / "ds", skip_verify=True, measure_missing=False, records_root=root)
    assert not (tmp_path / "ds").exists()
    _, rows, skipped = B.build([problem], tmp_path / "ds", allow_missing=True, skip_verify=True,
                               measure_missing=False, records_root=root)
    assert len(rows) == 2 and len(skipped) == 2


def test_cpu_verification_failure_stops_the_build_and_verdicts_are_cached(problem, tmp_path, monkeypatch):
    root = tmp_path / "m"
    write_chain(problem, root)
    seen = []

    class FakeCheck:
        """Stands in for the interpreter check of a problem's solutions."""

        def __init__(self, problem_dir, codes, device):
            seen.append((device, sorted(codes)))
            self.codes = codes

        def run(self):
            return VerifyBatch({label: VerifyResult("block_tiling" not in code,
                                                    "mismatch" if "block_tiling" in code else None, "case x", 1e-4, 1e-4)
                                for label, code in self.codes.items()})

    monkeypatch.setattr(B, "VerifyJob", FakeCheck)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "verify-0123456789abcdef01234567.json").write_text("{}")  # an older judge's verdict
    for _ in range(2):
        with pytest.raises(RecordError, match="avgpool2d/block_tiling: mismatch"):
            B.build([problem], tmp_path / "ds", measure_missing=False, records_root=root,
                    verify_cache=tmp_path / "cache")
    assert seen == [("cpu", sorted(problem.solutions))]  # one check of all solutions; the second build found them cached
    reference = sha256_file(problem.reference_path)
    in_use = {B.JobCache.key(sha256_file(path), problem.checks_sha256, reference, judge_version())
              for path in problem.solutions.values()}
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {f"verify-{key}.json" for key in in_use}  # no other
    (problem.solutions["grid_and_parallel"]).write_text(problem.solutions["grid_and_parallel"].read_text() + "\n")
    with pytest.raises(RecordError):
        B.build([problem], tmp_path / "ds", measure_missing=False, records_root=root, verify_cache=tmp_path / "cache")
    assert seen[1:] == [("cpu", ["grid_and_parallel"])]  # only the changed solution ran again


def test_cli_build_lists_missing_rows_and_exits_nonzero(problem, tmp_path, monkeypatch):
    monkeypatch.setattr(records, "MEASUREMENTS_DIR", tmp_path / "empty")
    (tmp_path / "empty" / "h100_sxm").mkdir(parents=True)
    monkeypatch.setattr("builder.seeds.SEEDS_DIR", problem.dir.parent)
    result = CliRunner().invoke(cli, ["build", "--out", str(tmp_path / "ds"), "--skip-verify"])
    assert result.exit_code == 1
    assert "avgpool2d/grid_and_parallel/h100_sxm: record of 'seed' is missing" in result.output


@pytest.mark.slow
def test_cpu_verification_accepts_a_correct_solution(problem, tmp_path):
    solution = problem.dir / "solutions" / "grid_and_parallel.py"
    solution.write_text((PROJECT_ROOT / "seeds" / "avgpool2d" / "solutions" / "block_tiling.py").read_text())  # correct, and quick in the interpreter
    for key in STAGES[1:]:
        (problem.dir / "solutions" / f"{key}.py").unlink()
    assert B.verify_on_cpu([load_problem(problem.dir)], cache_dir=tmp_path / "cache") == []
    assert len(list((tmp_path / "cache").glob("verify-*.json"))) == 1
