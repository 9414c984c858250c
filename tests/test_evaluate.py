"""eval: answers matched to rows by id, judged, and summarized as fast_p per stage and problem."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from builder.card import CardParams
from builder.cli import cli
from builder.dataset import write_dataset
from builder.evaluate import judge_answers, match_rows, metrics, read_eval_answers, summarize
from builder.judge.correctness import VerifyResult
from builder.judge.score import Timed, read_answer
from builder.seeds import get_problem
from tests.rowfactory import make_row, make_rows

P1, P2 = get_problem("avgpool1d"), get_problem("avgpool2d")
ROWS = make_rows()
#: Speedups the stand-in timer reports, per row id.
SPEEDUPS = {"avgpool1d/grid_and_parallel/h100": 2.5, "avgpool1d/block_tiling/h100": 1.2,
            "avgpool2d/grid_and_parallel/h100": 0.8}


def answers_file(tmp_path: Path, items: list[dict[str, Any]]) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def mixed(tmp_path: Path) -> Path:
    """Three correct answers, one cheat, one wrong at run time and one system call (as messages)."""
    good1 = read_answer(P1.solutions["grid_and_parallel"])
    return answers_file(tmp_path, [
        {"id": "avgpool1d/grid_and_parallel/h100", "completion": good1},
        {"id": "avgpool1d/block_tiling/h100", "completion": read_answer(P1.solutions["block_tiling"])},
        {"id": "avgpool2d/grid_and_parallel/h100", "completion": read_answer(P2.solutions["grid_and_parallel"])},
        {"id": "avgpool1d/memory_access/h100", "completion": read_answer(P1.wrong_dir / "torch_op_decoy.py")},
        {"id": "avgpool1d/grid_and_parallel/h100", "completion": read_answer(P1.wrong_dir / "count_include_pad.py")},
        {"id": "avgpool1d/block_tiling/h100",
         "messages": [{"role": "user", "content": "..."},
                      {"role": "assistant", "content": read_answer(P1.wrong_dir / "os_system.py")}]},
    ])


def stand_in_verifier(problem: Any, code: str, **kwargs: Any) -> VerifyResult:
    """Accepts every code except the count_include_pad fixture, which mismatches."""
    wrong = code == (P1.wrong_dir / "count_include_pad.py").read_text().rstrip() + "\n"
    return VerifyResult(not wrong, "mismatch" if wrong else None, "case x" if wrong else "", 1e-4, 1e-4)


def stand_in_timer(row: dict[str, Any]) -> Any:
    return lambda code, problem: Timed({"current": SPEEDUPS[row["id"]], "eager": 1.0})


def test_a_mixed_file_gives_the_expected_metrics(tmp_path: Path) -> None:
    pairs = match_rows(read_eval_answers(mixed(tmp_path)), ROWS)
    judged = judge_answers(pairs, device="cuda", timer_for=stand_in_timer, verifier=stand_in_verifier)
    assert [(j.line, j.ok, j.reason) for j in judged] == [
        (1, True, None), (2, True, None), (3, True, None),
        (4, False, "torch_op"), (5, False, "mismatch"), (6, False, "system_access"),
    ]
    summary = summarize(judged)
    overall = summary["overall"]
    assert (overall["answers"], overall["correct"], overall["timed"]) == (6, 3, 3)
    assert overall["fast_0"] == pytest.approx(3 / 6)
    assert overall["fast_1"] == pytest.approx(2 / 6)
    assert overall["fast_1.5"] == pytest.approx(1 / 6)
    assert overall["fast_2"] == pytest.approx(1 / 6)
    assert overall["mean_speedup"] == pytest.approx((2.5 + 1.2 + 0.8) / 3)
    assert overall["geomean_speedup"] == pytest.approx(math.prod([2.5, 1.2, 0.8]) ** (1 / 3))
    assert overall["reasons"] == {"mismatch": 1, "system_access": 1, "torch_op": 1}
    grid = summary["by_stage"]["grid_and_parallel"]
    assert (grid["answers"], grid["correct"], grid["fast_1"], grid["fast_2"]) == (3, 2, pytest.approx(1 / 3),
                                                                                  pytest.approx(1 / 3))
    assert summary["by_problem"]["avgpool2d"]["fast_1"] == 0.0
    assert summary["by_problem"]["avgpool1d"]["reasons"] == overall["reasons"]
    assert json.loads(json.dumps(summary)) == summary


def test_without_timing_fast_0_is_the_correctness_rate(tmp_path: Path) -> None:
    pairs = match_rows(read_eval_answers(mixed(tmp_path)), ROWS)
    summary = summarize(judge_answers(pairs, device="cpu", timer_for=stand_in_timer, verifier=stand_in_verifier))
    overall = summary["overall"]
    assert overall["fast_0"] == overall["correctness"] == 0.5
    assert overall["fast_1"] is None and overall["mean_speedup"] is None and overall["timed"] == 0


def test_unmatched_ids_are_an_error_naming_the_line(tmp_path: Path) -> None:
    path = answers_file(tmp_path, [{"id": "avgpool1d/block_tiling/h100", "completion": "x"},
                                   {"id": "avgpool9d/block_tiling/h100", "completion": "x"}])
    with pytest.raises(ValueError, match=r"answers\.jsonl:2: id 'avgpool9d/block_tiling/h100' is not a row"):
        match_rows(read_eval_answers(path), ROWS, str(path))


@pytest.mark.parametrize(("line", "message"), [
    ("not json", r":1: not JSON"),
    ('["a list"]', r":1: expected an object"),
    ('{"completion": "x"}', r":1: field 'id'"),
    ('{"id": "a/b/c"}', r":1: field 'completion' or 'messages'"),
])
def test_malformed_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        read_eval_answers(path)


def test_metrics_of_nothing_are_empty() -> None:
    assert metrics([])["fast_0"] is None


def test_a_real_cpu_judge_run_accepts_a_solution_and_rejects_a_bug(tmp_path: Path) -> None:
    row = make_row("avgpool1d", 1)
    path = answers_file(tmp_path, [
        {"id": row["id"], "completion": read_answer(P1.solutions["grid_and_parallel"])},
        {"id": row["id"], "completion": read_answer(P1.wrong_dir / "count_include_pad.py")},
    ])
    judged = judge_answers(match_rows(read_eval_answers(path), [row]), device="cpu", timeout_s=120)
    assert [(j.ok, j.reason) for j in judged] == [(True, None), (False, "mismatch")]
    assert summarize(judged)["overall"]["fast_0"] == 0.5


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(make_rows(), tmp_path_factory.mktemp("eval") / "dataset", card_params=CardParams())


def test_cli_prints_the_table_and_writes_json(folder: Path, tmp_path: Path) -> None:
    path = answers_file(tmp_path, [
        {"id": "avgpool1d/memory_access/h100", "completion": read_answer(P1.wrong_dir / "torch_op_decoy.py")},
        {"id": "avgpool2d/grid_and_parallel/h100", "completion": "no code at all"},
    ])
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(cli, ["eval", str(path), "--dataset", str(folder), "--json", str(out),
                                      "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stage memory_access" in result.output and "problem avgpool2d" in result.output
    assert "rejects (all): no_code_block 1, torch_op 1" in result.output
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["overall"]["fast_0"] == 0.0 and len(data["answers"]) == 2


def test_cli_unmatched_id_exits_2_naming_the_line(folder: Path, tmp_path: Path) -> None:
    path = answers_file(tmp_path, [{"id": "nope", "completion": "x"}])
    result = CliRunner().invoke(cli, ["eval", str(path), "--dataset", str(folder)])
    assert result.exit_code == 2
    assert "answers.jsonl:1: id 'nope'" in result.output
