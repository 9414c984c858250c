"""The configs built from the sft rows: trajectories, preference pairs and rl prompts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from builder.configs import config_rows, get_config, preference_rows, rl_rows, trajectory_rows, wrong_answers
from builder.dataset import check_rows
from builder.errors import DatasetError
from builder.judge.score import reward_fn
from builder.rows import build_rows
from builder.seeds import get_problem, load_problem, load_problems
from tests.rowfactory import make_row, make_rows


@pytest.fixture(scope="module")
def real_rows() -> list[dict[str, Any]]:
    rows, _ = build_rows(load_problems())
    assert rows
    return rows


def test_trajectories_walk_the_stages_as_one_conversation(real_rows: list[dict[str, Any]]) -> None:
    trajectories, gaps = trajectory_rows(real_rows)
    check_rows(trajectories, "trajectories")
    by_id = {row["id"]: row for row in real_rows}
    starts = {(r["problem"]["key"], r["gpu"]["key"]) for r in real_rows if r["stage"]["number"] == 1}
    assert {tuple(t["id"].split("/")) for t in trajectories} == starts  # a pair without a stage-1 row has none
    assert {g.trajectory_id for g in gaps if g.turns == 0} == {
        f"{p}/{g}" for p, g in {(r["problem"]["key"], r["gpu"]["key"]) for r in real_rows} - starts}
    for trajectory in trajectories:
        messages, turns = trajectory["messages"], trajectory["turns"]
        assert len(messages) == 2 * len(turns)
        for k, turn in enumerate(turns):
            row = by_id[turn["row_id"]]
            assert turn["number"] == k + 1 and turn["stage"] == row["stage"]["key"]
            assert messages[2 * k] == {"role": "user", "content": row["prompt"]}
            assert messages[2 * k + 1] == {"role": "assistant", "content": row["completion"]}
            assert turn["current_timing"] == row["current"]["timing"]
            assert turn["speedup_vs_current"] == row["speedup"]["vs_current"]
            if k:
                assert row["code"]["current"] in messages[2 * k]["content"]
                assert row["code"]["current"] == by_id[turns[k - 1]["row_id"]]["code"]["solution"]
        assert trajectory["complete"] == (trajectory["stopped_before"] is None) == (len(turns) == 4)
    assert {(g.trajectory_id, g.stopped_before, g.turns) for g in gaps if g.turns} == {
        (t["id"], t["stopped_before"], len(t["turns"])) for t in trajectories if not t["complete"]
    }


def test_a_trajectory_stops_at_the_first_missing_stage(real_rows: list[dict[str, Any]]) -> None:
    whole, _ = trajectory_rows(real_rows)
    longest = max(whole, key=lambda t: len(t["turns"]))
    assert len(longest["turns"]) >= 2, "the committed records give no trajectory of two stages"
    problem, gpu = longest["id"].split("/")
    rows = [r for r in real_rows if r["id"] != f"{problem}/block_tiling/{gpu}"]
    trajectories, gaps = trajectory_rows(rows)
    cut = next(t for t in trajectories if t["id"] == longest["id"])
    assert [turn["stage"] for turn in cut["turns"]] == ["grid_and_parallel"]
    assert (cut["complete"], cut["stopped_before"]) == (False, "block_tiling")
    gap = next(g for g in gaps if g.trajectory_id == longest["id"])
    assert (gap.turns, gap.reason) == (1, "the stage has no row")


def test_a_trajectory_needs_stage_one() -> None:
    trajectories, gaps = trajectory_rows([make_row("avgpool1d", 2)])
    assert trajectories == []
    assert [(g.stopped_before, g.turns) for g in gaps] == [("grid_and_parallel", 0)]


def test_a_prompt_that_does_not_show_the_previous_answer_ends_the_trajectory() -> None:
    trajectories, gaps = trajectory_rows([make_row("avgpool1d", 1), make_row("avgpool1d", 2)])
    assert len(trajectories[0]["turns"]) == 1
    assert gaps[0].reason == "its prompt's code is not the previous stage's solution"


def test_preference_pairs_each_row_with_the_wrong_answers_and_the_slower_current_code() -> None:
    rows = make_rows()
    pairs = preference_rows(rows)
    check_rows(pairs, "preference")
    wrong = {key: wrong_answers(get_problem(key)) for key in ("avgpool1d", "avgpool2d")}
    slower = [p for p in pairs if p["rejected_kind"] == "slower"]
    assert len(slower) == len(rows)
    assert len(pairs) == len(rows) + sum(len(wrong[r["problem"]["key"]]) for r in rows)
    row = next(r for r in rows if r["id"] == "avgpool1d/grid_and_parallel/h100")
    pair = next(p for p in slower if p["row_id"] == row["id"])
    assert pair["chosen"] == row["completion"] and pair["prompt"] == row["prompt"]
    assert pair["rejected_ms"] == row["current"]["timing"]["median_ms"] > pair["chosen_ms"]
    assert row["code"]["current"].rstrip() in pair["rejected"]
    judged = [p for p in pairs if p["row_id"] == row["id"] and p["rejected_kind"] == "judged_wrong"]
    assert {(p["rejected_source"], p["rejected_reason"]) for p in judged} == {
        (f"wrong/{w.name}", w.reason) for w in wrong["avgpool1d"]
    }
    assert all(p["rejected_ms"] is None for p in judged)


def test_no_slower_pair_unless_the_solution_is_faster_beyond_the_noise() -> None:
    row = make_row("avgpool1d", 1)
    row["speedup"]["vs_current"] = 1.02
    assert {p["rejected_kind"] for p in preference_rows([row])} == {"judged_wrong"}
    row["speedup"]["vs_current"] = 1.04
    assert "slower" in {p["rejected_kind"] for p in preference_rows([row])}


def test_wrong_answers_leave_out_those_that_need_a_gpu(seed_copy: Path) -> None:
    listing = seed_copy / "avgpool1d" / "wrong" / "expected.toml"
    before = wrong_answers(load_problem(seed_copy / "avgpool1d"))
    assert before and "os_system.py" in {w.name for w in before}
    listing.write_text(listing.read_text().replace('["os_system.py"]\n', '["os_system.py"]\ngpu = true\n'))
    after = wrong_answers(load_problem(seed_copy / "avgpool1d"))
    assert {w.name for w in before} - {w.name for w in after} == {"os_system.py"}
    assert next(w for w in after if w.name == "no_code_block.md").text.startswith("The kernel")
    assert next(w for w in after if w.name == "inherits_model.py").text.startswith("```python\n")


def test_a_wrong_answer_without_a_reason_is_named(seed_copy: Path) -> None:
    wrong = seed_copy / "avgpool1d" / "wrong"
    (wrong / "extra.py").write_text("x = 1\n")
    (wrong / "expected.toml").write_text((wrong / "expected.toml").read_text() + '\n["extra.py"]\ncases = ["x"]\n')
    with pytest.raises(DatasetError, match=r"expected.toml: \['extra.py'\] has no 'reason'"):
        wrong_answers(load_problem(seed_copy / "avgpool1d"))


def test_rl_rows_carry_what_the_reward_function_reads() -> None:
    rows = make_rows()
    prompts = rl_rows(rows)
    check_rows(prompts, "rl")
    by_id = {row["id"]: row for row in rows}
    for prompt in prompts:
        row = by_id[prompt["id"]]
        assert (prompt["prompt"], prompt["problem"], prompt["stage"], prompt["gpu"]) == (
            row["prompt"], row["problem"]["key"], row["stage"]["key"], row["gpu"]["key"])
        assert prompt["current_code"] == row["code"]["current"]
        assert prompt["current_ms"] == row["current"]["timing"]["median_ms"]
    columns = {k: [p[k] for p in prompts] for k in prompts[0] if k != "prompt"}
    assert reward_fn(["no code"] * len(prompts), prompts=[p["prompt"] for p in prompts], **columns) == [0.0] * 4


def test_config_rows_builds_every_config_from_the_same_rows() -> None:
    rows = make_rows()
    built = config_rows(copy.deepcopy(rows))
    assert set(built.tables) == {"sft", "trajectories", "preference", "rl"}
    assert built.tables["sft"] == sorted(rows, key=lambda r: r["id"])
    assert [r["id"] for r in built.tables["rl"]] == [r["id"] for r in built.tables["sft"]]
    assert get_config("sft").default and not get_config("rl").default
