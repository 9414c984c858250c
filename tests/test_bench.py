import pytest
from click.testing import CliRunner

from builder.bench import format_table, from_records, make_lines
from builder.cli import cli
from builder.errors import RecordError
from builder.records import write_record
from builder.seeds import load_problem
from builder.stages import catalog
from tests.recordfactory import make_record, write_chain


@pytest.fixture
def problem(seed_copy):
    folder = seed_copy / "avgpool1d"
    (folder / "solutions").mkdir(exist_ok=True)
    for s in catalog().stages:
        (folder / "solutions" / f"{s.key}.py").write_text(f"# {s.key}\n")
    return load_problem(folder)


def test_speedups_chain_each_stage_to_the_one_before():
    timings = {"seed": {"median_ms": 4.0, "gbps": 1000, "roofline_pct": 25},
               "grid_and_parallel": {"median_ms": 2.0, "gbps": 2000, "roofline_pct": 50}}
    seed, stage1 = make_lines("p", timings, eager_ms=5.0, compile_ms=3.0)
    assert seed.vs_current is None and stage1.vs_current == 2.0
    assert stage1.vs_eager == 2.5 and stage1.vs_compile == 1.5


def test_table_from_records(problem, tmp_path):
    write_chain(problem, tmp_path / "m")
    lines, copy = from_records(problem, "h100_sxm", tmp_path / "m")
    assert [l.label for l in lines] == ["seed"] + [s.key for s in catalog().stages]
    assert copy == 3000.0
    text = format_table(lines, {"avgpool1d": copy})
    assert "avgpool1d  advanced_memory" in text and "2.00x" in text and "ceiling (avgpool1d): 3000 GB/s" in text


def test_records_of_mixed_runs_are_refused(problem, tmp_path):
    write_chain(problem, tmp_path / "m")
    write_record(make_record(problem, "seed", run_id="other"), tmp_path / "m")
    with pytest.raises(RecordError, match="different runs"):
        from_records(problem, "h100_sxm", tmp_path / "m")


def test_cli_bench_without_gpu_or_records_says_so(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(cli, ["bench", "-p", "avgpool1d"])
    assert result.exit_code == 1 and "needs a CUDA GPU" in result.output
