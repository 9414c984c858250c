import pytest

from builder.dataset import check_rows
from builder.prompt import parse
from builder.rows import build_rows
from builder.seeds import load_problem
from builder.stages import catalog
from builder.records import write_record
from tests.recordfactory import make_record, write_chain

STAGES = [s.key for s in catalog().stages]


@pytest.fixture
def problem(seed_copy):
    """avgpool1d with a stand-in solution for every stage (only the text matters here)."""
    folder = seed_copy / "avgpool1d"
    (folder / "solutions").mkdir(exist_ok=True)
    for i, key in enumerate(STAGES):
        (folder / "solutions" / f"{key}.py").write_text(f"# solution of stage {i + 1}\n")
    return load_problem(folder)


@pytest.fixture
def root(tmp_path):
    return tmp_path / "measurements"


def test_one_row_per_stage_with_the_chain_of_codes(problem, root):
    write_chain(problem, root)
    rows, skipped = build_rows([problem], root=root)
    assert skipped == []
    assert [r["id"] for r in rows] == [f"avgpool1d/{k}/h100_sxm" for k in STAGES]
    assert rows[0]["code"]["current"] == problem.kernel_path.read_text()
    for before, after in zip(rows, rows[1:]):
        assert after["code"]["current"] == before["code"]["solution"]
    check_rows(rows)


def test_prompt_shows_current_code_and_its_measured_metrics(problem, root):
    write_chain(problem, root)
    row = build_rows([problem], root=root)[0][2]
    spec = parse(row["prompt"])
    assert (spec.gpu, spec.stage, spec.variant) == ("h100_sxm", "memory_access", "default")
    assert spec.code == row["code"]["current"]
    assert spec.metrics["k"]["launch__grid_size"] == 12
    assert list(spec.metrics["k"]) == list(catalog().prompt_metrics(catalog().get("memory_access")))
    assert row["completion"] == f"```python\n{row['code']['solution']}```"
    assert row["messages"] == [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]


def test_speedups_come_from_the_records(problem, root):
    write_chain(problem, root, seed_ms=4.0)
    row = build_rows([problem], root=root)[0][1]  # block_tiling: 2.0 ms -> 1.0 ms
    assert row["speedup"]["vs_current"] == pytest.approx(2.0)
    assert row["speedup"]["vs_eager"] == pytest.approx(2.0 / 1.0)
    assert row["current"]["timing"]["median_ms"] == 2.0 and row["solution"]["timing"]["median_ms"] == 1.0


def test_null_metric_keeps_its_note(problem, root):
    write_chain(problem, root)
    row = build_rows([problem], root=root)[0][0]
    entry = next(m for m in row["current"]["metrics"] if m["metric"] == "lts__t_sector_hit_rate.pct")
    assert entry["value"] is None and entry["note"] == "not reported by ncu"


def test_stale_and_missing_records_are_reported_not_used(problem, root):
    write_chain(problem, root)
    path = problem.solutions["block_tiling"]
    path.write_text(path.read_text() + "# changed\n")
    (root / "h100_sxm" / "avgpool1d" / "advanced_memory.json").unlink()
    rows, skipped = build_rows([load_problem(problem.dir)], root=root)
    assert [r["id"] for r in rows] == ["avgpool1d/grid_and_parallel/h100_sxm"]
    assert {s.row_id: s.reason for s in skipped} == {
        "avgpool1d/block_tiling/h100_sxm": "record of 'block_tiling' is stale",
        "avgpool1d/memory_access/h100_sxm": "record of 'block_tiling' is stale",
        "avgpool1d/advanced_memory/h100_sxm": "record of 'advanced_memory' is missing",
    }


def test_records_of_different_runs_are_not_compared(problem, root):
    write_chain(problem, root)
    write_record(make_record(problem, "block_tiling", run_id="other"), root)
    rows, skipped = build_rows([problem], root=root)
    reasons = {s.row_id: s.reason for s in skipped}
    assert reasons["avgpool1d/block_tiling/h100_sxm"] == "current and solution were not timed in the same run"


def test_exit_criterion_is_read_from_the_current_metrics(problem, root):
    write_chain(problem, root)
    metrics = {"k": {"sm__throughput.avg.pct_of_peak_sustained_elapsed": 80.0}}
    write_record(make_record(problem, "seed", metrics=metrics, timing={"median_ms": 4.0, "min_ms": 4.0, "max_ms": 4.0, "runs": 100}), root)
    rows, _ = build_rows([problem], root=root)
    assert rows[0]["exit_criterion_met"] is True
    assert rows[1]["exit_criterion_met"] is False


def test_one_row_set_per_gpu(problem, root):
    write_chain(problem, root, gpu="h100_sxm")
    write_chain(problem, root, gpu="h200")
    rows, _ = build_rows([problem], root=root)
    assert sorted({r["gpu"]["key"] for r in rows}) == ["h100_sxm", "h200"]
    assert len(rows) == 8


def test_solution_slower_than_its_current_code_is_excluded_not_missing(problem, root):
    write_chain(problem, root)
    slow = {"median_ms": 2.2, "min_ms": 2.1, "max_ms": 2.3, "runs": 100}  # block_tiling's current runs 2.0 ms
    write_record(make_record(problem, "block_tiling", timing=slow), root)
    rows, skipped = build_rows([problem], root=root)
    excluded = [s for s in skipped if not s.missing]
    assert [s.row_id for s in excluded] == ["avgpool1d/block_tiling/h100_sxm"]
    assert "0.91x its current code's speed" in excluded[0].reason
    assert "avgpool1d/memory_access/h100_sxm" in [r["id"] for r in rows]


def test_slowdown_within_noise_is_kept(problem, root):
    write_chain(problem, root)
    near = {"median_ms": 2.04, "min_ms": 2.0, "max_ms": 2.1, "runs": 100}
    write_record(make_record(problem, "block_tiling", timing=near), root)
    rows, skipped = build_rows([problem], root=root)
    assert skipped == [] and len(rows) == 4


def test_a_stage_that_keeps_its_code_gives_a_kept_row_that_claims_no_gain(seed_copy, tmp_path):
    from builder.records import write_record
    from builder.rows import KEPT_NOTE, build_rows
    from builder.seeds import load_problem
    from tests.recordfactory import make_record, write_chain

    folder = seed_copy / "avgpool1d"
    solutions = folder / "solutions"
    (solutions / "advanced_memory.py").write_text((solutions / "memory_access.py").read_text())
    problem = load_problem(folder)
    root = tmp_path / "m"
    write_chain(problem, root)
    same = {"median_ms": 0.5, "min_ms": 0.49, "max_ms": 0.55, "runs": 100}
    write_record(make_record(problem, "advanced_memory", timing=same), root)
    write_record(make_record(problem, "memory_access", timing=same), root)
    rows, skipped = build_rows([problem], root=root)
    kept = {r["id"]: r for r in rows if r["kept"]}
    assert list(kept) == ["avgpool1d/advanced_memory/h100_sxm"]
    assert kept["avgpool1d/advanced_memory/h100_sxm"]["completion"].startswith(KEPT_NOTE)
    assert not [s for s in skipped if "advanced_memory" in s.row_id]
