"""The dataset's configs, all derived from the sft rows of one build.

- `sft` (the default): the rows of builder.rows.build_rows, one per (problem, stage, GPU).
- `trajectories`: one row per (problem, GPU): the stages as one conversation. Turn k+1's user
  message is stage k+1's prompt, which already shows turn k's answer and the metrics measured for
  it. The chain follows the stage order from stage 1 and stops at the first stage without a row:
  a later stage's prompt shows code the conversation never produced, so it cannot follow a gap
  (nor can a prompt whose code is not the previous turn's answer).
- `preference`: per sft row, the verified solution (chosen) against a known-bad answer of the
  problem (rejected, judged wrong) and, when the solution is faster than the current code beyond
  the noise, against the current code returned unchanged (rejected, slower, with its time).
- `rl`: the prompts alone, with the columns builder.judge.score.reward_fn and a speedup need.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from builder.errors import DatasetError
from builder.rows import NOISE
from builder.seeds import Problem, get_problem
from builder.stages import catalog


@dataclass(frozen=True)
class Config:
    """One dataset config: a folder data/<name>/ and an entry in the card's YAML `configs`."""

    name: str  # config name, as load_dataset(folder, name) takes it
    schema: str  # schemas/<schema>.schema.json describes one row
    default: bool  # the config load_dataset picks when no name is given
    summary: str  # one sentence for the card


CONFIGS = (
    Config("sft", "row", True, "one row per (problem, stage, GPU): prompt, verified solution, measurements"),
    Config("trajectories", "trajectory", False, "one row per (problem, GPU): the stages as one conversation"),
    Config("preference", "preference", False, "prompt, chosen (verified solution) and rejected answer, with why it lost"),
    Config("rl", "rl", False, "prompts alone, with what the judge needs to score a generated answer"),
)


def get_config(name: str) -> Config:
    """The config called `name`; a DatasetError lists the known ones otherwise."""
    for config in CONFIGS:
        if config.name == name:
            return config
    raise DatasetError(f"unknown dataset config {name!r}; known: {', '.join(c.name for c in CONFIGS)}")


@dataclass(frozen=True)
class Gap:
    """A trajectory cut short because a stage has no row."""

    trajectory_id: str  # '<problem>/<gpu>'
    stopped_before: str  # key of the first stage the trajectory leaves out
    turns: int  # how many stages the trajectory kept
    reason: str  # why that stage cannot follow


def trajectory_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Gap]]:
    """One conversation per (problem, GPU), following the stages from stage 1 up to the first gap."""
    by_id = {row["id"]: row for row in rows}
    pairs = sorted({(row["problem"]["key"], row["gpu"]["key"]) for row in rows})
    out: list[dict[str, Any]] = []
    gaps: list[Gap] = []
    for problem, gpu in pairs:
        chain: list[dict[str, Any]] = []
        stopped = reason = None
        for stage in catalog().stages:
            row = by_id.get(f"{problem}/{stage.key}/{gpu}")
            if row is None:
                stopped, reason = stage.key, "the stage has no row"
            elif chain and row["code"]["current"] != chain[-1]["code"]["solution"]:
                stopped, reason = stage.key, "its prompt's code is not the previous stage's solution"
            if stopped is not None:
                break
            chain.append(row)
        tid = f"{problem}/{gpu}"
        if stopped is not None:
            gaps.append(Gap(tid, stopped, len(chain), reason))
        if chain:
            out.append(_trajectory(tid, chain, stopped))
    return out, gaps


def _trajectory(tid: str, chain: list[dict[str, Any]], stopped: str | None) -> dict[str, Any]:
    messages = [turn for row in chain for turn in row["messages"]]
    turns = [
        {
            "row_id": row["id"],
            "stage": row["stage"]["key"],
            "number": row["stage"]["number"],
            "current_timing": row["current"]["timing"],
            "solution_timing": row["solution"]["timing"],
            "speedup_vs_current": row["speedup"]["vs_current"],
            "current_metrics": row["current"]["metrics"],
            "solution_metrics": row["solution"]["metrics"],
        }
        for row in chain
    ]
    first = chain[0]
    return {"id": tid, "problem": first["problem"], "gpu": first["gpu"], "messages": messages, "turns": turns,
            "complete": stopped is None, "stopped_before": stopped}


@dataclass(frozen=True)
class WrongAnswer:
    """A known-bad answer of a problem, from seeds/<problem>/wrong/."""

    name: str  # file name under wrong/
    text: str  # the whole answer as a model would give it
    reason: str  # the reason code the judge gives it (wrong/expected.toml)


def wrong_answers(problem: Problem) -> list[WrongAnswer]:
    """The problem's known-bad answers whose verdict needs no GPU (entries without `gpu = true`)."""
    listing = problem.wrong_dir / "expected.toml"
    if not listing.is_file():
        return []
    try:
        expected = tomllib.loads(listing.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{listing}: not valid TOML: {exc}") from exc
    found = []
    for name, spec in sorted(expected.items()):
        if spec.get("gpu", False):
            continue
        if "reason" not in spec:
            raise DatasetError(f"{listing}: [{name!r}] has no 'reason'")
        path = problem.wrong_dir / name
        code = path.read_text()
        text = code if path.suffix != ".py" else f"```python\n{code.rstrip()}\n```"
        found.append(WrongAnswer(name, text, spec["reason"]))
    return found


def preference_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pairs of each sft row's solution against known-bad answers and, when it is faster beyond the
    noise, against the current code returned unchanged."""
    wrong: dict[str, list[WrongAnswer]] = {}
    out = []
    for row in sorted(rows, key=lambda r: r["id"]):
        key = row["problem"]["key"]
        if key not in wrong:
            wrong[key] = wrong_answers(get_problem(key))
        base = {
            "row_id": row["id"], "problem": key, "stage": row["stage"]["key"], "gpu": row["gpu"]["key"],
            "prompt": row["prompt"], "chosen": row["completion"],
            "chosen_ms": row["solution"]["timing"]["median_ms"],
        }
        if row["speedup"]["vs_current"] > 1 + NOISE:
            out.append({"id": f"{row['id']}/slower/current", **base,
                        "rejected": f"```python\n{row['code']['current'].rstrip()}\n```",
                        "rejected_kind": "slower", "rejected_reason": None, "rejected_source": "current code",
                        "rejected_ms": row["current"]["timing"]["median_ms"]})
        for answer in wrong[key]:
            out.append({"id": f"{row['id']}/judged_wrong/{answer.name}", **base, "rejected": answer.text,
                        "rejected_kind": "judged_wrong", "rejected_reason": answer.reason,
                        "rejected_source": f"wrong/{answer.name}", "rejected_ms": None})
    return out


def rl_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompts of the sft rows with the columns a reward function reads."""
    return [
        {
            "id": row["id"],
            "prompt": row["prompt"],
            "problem": row["problem"]["key"],
            "stage": row["stage"]["key"],
            "gpu": row["gpu"]["key"],
            "current_code": row["code"]["current"],
            "current_ms": row["current"]["timing"]["median_ms"],
            "solution_ms": row["solution"]["timing"]["median_ms"],
        }
        for row in sorted(rows, key=lambda r: r["id"])
    ]


@dataclass(frozen=True)
class ConfigRows:
    """The rows of every config, built from one list of sft rows."""

    tables: dict[str, list[dict[str, Any]]]  # config name -> its rows, sorted by id
    gaps: tuple[Gap, ...]  # trajectories cut short, and where


def config_rows(rows: list[dict[str, Any]]) -> ConfigRows:
    """Every config's rows from the sft rows."""
    trajectories, gaps = trajectory_rows(rows)
    tables = {
        "sft": sorted(rows, key=lambda r: r["id"]),
        "trajectories": trajectories,
        "preference": preference_rows(rows),
        "rl": rl_rows(rows),
    }
    return ConfigRows(tables, tuple(gaps))
