import json

import pytest
from click.testing import CliRunner

from builder import build as B
from builder.cli import cli
from builder.seeds import load_problem
from builder.validate import read_rows, reason_counts, timing_findings, validate_rows, write_rejects
from tests.recordfactory import write_chain


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset of the real avgpool1d solutions, from synthetic records, cut to two rows."""
    import shutil

    from builder.seeds import SEEDS_DIR

    tmp = tmp_path_factory.mktemp("validate")
    shutil.copytree(SEEDS_DIR / "avgpool1d", tmp / "seeds" / "avgpool1d")
    problem = load_problem(tmp / "seeds" / "avgpool1d")
    write_chain(problem, tmp / "m")
    folder, _, _ = B.build([problem], tmp / "ds", skip_verify=True, measure_missing=False, records_root=tmp / "m")
    return folder


def test_rows_read_without_datasets(dataset):
    rows = read_rows(str(dataset))
    assert [r["id"].split("/")[1] for r in rows] == ["advanced_memory", "block_tiling", "grid_and_parallel", "memory_access"]


def test_bad_source_is_a_clear_error(tmp_path):
    from builder.errors import DatasetError

    with pytest.raises(DatasetError, match="not a dataset folder or a Hub repo id"):
        read_rows(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="no data/"):
        read_rows(str(tmp_path))


@pytest.mark.slow
def test_reference_rows_pass_and_a_cheating_row_is_rejected(dataset, tmp_path):
    rows = read_rows(str(dataset))[:2]
    cheat = (dataset.parent / "seeds" / "avgpool1d" / "wrong" / "torch_op_decoy.py").read_text()
    rows[1] = {**rows[1], "completion": f"```python\n{cheat}```"}
    results = validate_rows(rows, device="cpu")
    assert [r.ok for r in results] == [True, False]
    assert results[1].reasons == ("torch_op",)
    assert reason_counts(results) == {"torch_op": 1}
    assert write_rejects(results, tmp_path / "rejects.jsonl") == 1
    assert json.loads((tmp_path / "rejects.jsonl").read_text())["row_id"] == rows[1]["id"]


def test_timing_findings_flag_drift_and_slowdown():
    row = {"id": "p/s/g", "solution": {"timing": {"median_ms": 1.0}}}
    assert timing_findings(row, {"p/s/g:solution": 1.05, "p/s/g:current": 2.0})[0] == []
    reasons, details, _, speedup = timing_findings(row, {"p/s/g:solution": 1.2, "p/s/g:current": 1.0})
    assert reasons == ["timing_drift", "slower"] and speedup == pytest.approx(1 / 1.2)
    assert "20% apart" in details[0]


def test_cli_validate_exit_code_and_table(dataset, tmp_path, monkeypatch):
    from builder import validate as V
    from builder.judge.score import Verdict

    def fake_score(answer, problem, device, strict):
        assert strict  # dataset rows must follow the output rules
        rejected = "avgpool1d_advanced_memory_marker" in answer
        return Verdict(False, "torch_op", "uses F.avg_pool1d") if rejected else Verdict(True, None, "")

    from builder.validate import read_rows

    rows = read_rows(str(dataset))
    monkeypatch.setattr(V, "read_rows", lambda source: [
        {**r, "completion": r["completion"] + ("avgpool1d_advanced_memory_marker" if r["id"].startswith(
            "avgpool1d/advanced_memory/") else "")} for r in rows])

    monkeypatch.setattr(V, "score_answer", fake_score)
    rejects = tmp_path / "r.jsonl"
    result = CliRunner().invoke(cli, ["validate", str(dataset), "--device", "cpu", "--rejects", str(rejects)])
    assert result.exit_code == 1, result.output
    assert "3/4 rows pass; torch_op: 1" in result.output
    assert "avgpool1d/advanced_memory/h100_sxm" in rejects.read_text()
