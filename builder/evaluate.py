"""Judge a model's answers to dataset rows and summarize them as KernelBench does (fast_p).

Each answer names the row it answers by id. It is judged with builder.judge.score.score_answer
for the row's problem; on a GPU, correct code is timed side by side with the row's current code
(a timer from `timer_for(row)`, builder.judge.score.GpuTimer in the command).
fast_p is the share of all answers that are correct and faster than the current code by more
than p. Without timing only fast_0 (the correctness rate) is known; the others are None.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.judge import correctness
from builder.judge.score import DEFAULT_TIMEOUT_S, Timer, Verifier, completion_text, score_answer
from builder.seeds import get_problem

#: The p of fast_p.
FAST_P = (0.0, 1.0, 1.5, 2.0)
#: Gives the timer for a row's answers (None: do not time).
TimerFor = Callable[[dict[str, Any]], Timer | None]


@dataclass(frozen=True)
class EvalAnswer:
    """One line of an answers file."""

    line: int  # line number in the file, from 1
    row_id: str  # id of the dataset row answered
    text: str  # the answer as the model gave it


@dataclass(frozen=True)
class Judged:
    """The verdict on one answer, with the keys it is grouped by."""

    line: int  # line number of the answer in its file
    row_id: str  # id of the row answered
    problem: str  # problem key of the row
    stage: str  # stage key of the row
    ok: bool  # the judge accepted the answer
    reason: str | None  # reason code of a reject; None when ok
    speedup: float | None  # current code's median / the answer's, when timed


def read_eval_answers(path: Path | str) -> list[EvalAnswer]:
    """The answers in a JSONL file: per line an object with `id` and `completion` (a string or a
    message list) or `messages`. A ValueError names the file and line of a malformed one."""
    path = Path(path)
    answers = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object with 'id' and 'completion' or 'messages'")
        if not isinstance(item.get("id"), str):
            raise ValueError(f"{where}: field 'id' (the row id, a string) is missing")
        answer = item.get("completion", item.get("messages"))
        if answer is None:
            raise ValueError(f"{where}: field 'completion' or 'messages' is missing")
        answers.append(EvalAnswer(number, item["id"], completion_text(answer)))
    return answers


def match_rows(answers: list[EvalAnswer], rows: list[dict[str, Any]],
               source: str = "answers") -> list[tuple[EvalAnswer, dict[str, Any]]]:
    """Each answer with the row of its id; a ValueError names every line whose id is no row's."""
    by_id = {row["id"]: row for row in rows}
    unmatched = [a for a in answers if a.row_id not in by_id]
    if unmatched:
        lines = "\n  ".join(f"{source}:{a.line}: id {a.row_id!r} is not a row of the dataset" for a in unmatched)
        raise ValueError(f"{len(unmatched)} answer(s) match no row:\n  {lines}")
    return [(a, by_id[a.row_id]) for a in answers]


def judge_answers(pairs: Iterable[tuple[EvalAnswer, dict[str, Any]]], *, device: str = "cpu",
                  timer_for: TimerFor = lambda row: None, verifier: Verifier = correctness.verify,
                  timeout_s: float = DEFAULT_TIMEOUT_S,
                  progress: Callable[[str], None] = lambda _: None) -> list[Judged]:
    """Judge every (answer, row) pair; on `device == "cuda"`, `timer_for(row)` times correct code."""
    judged = []
    for answer, row in pairs:
        progress(f"line {answer.line}: {row['id']}")
        problem = get_problem(row["problem"]["key"])
        verdict = score_answer(answer.text, problem, device=device, timeout_s=timeout_s, verifier=verifier,
                               timer=timer_for(row))
        judged.append(Judged(answer.line, row["id"], row["problem"]["key"], row["stage"]["key"], verdict.ok,
                             None if verdict.ok else (verdict.reason or "crash"), verdict.speedups.get("current")))
    return judged


def fast_key(p: float) -> str:
    """'fast_0', 'fast_1', 'fast_1.5', ..."""
    return f"fast_{p:g}"


def metrics(items: list[Judged]) -> dict[str, Any]:
    """Counts, correctness, fast_p, mean and geometric-mean speedup and reject reasons of `items`."""
    total = len(items)
    correct = [j for j in items if j.ok]
    speedups = [j.speedup for j in correct if j.speedup is not None]
    found: dict[str, Any] = {"answers": total, "correct": len(correct), "timed": len(speedups),
                             "correctness": len(correct) / total if total else None}
    for p in FAST_P:
        if p == 0:
            found[fast_key(p)] = found["correctness"]
        else:
            found[fast_key(p)] = sum(s > p for s in speedups) / total if speedups else None
    found["mean_speedup"] = statistics.fmean(speedups) if speedups else None
    found["geomean_speedup"] = statistics.geometric_mean(speedups) if speedups else None
    found["reasons"] = dict(sorted(Counter(j.reason for j in items if not j.ok).items()))
    return found


def summarize(judged: list[Judged]) -> dict[str, Any]:
    """Metrics overall, per stage and per problem, and every verdict."""
    def grouped(key: Callable[[Judged], str]) -> dict[str, Any]:
        return {name: metrics([j for j in judged if key(j) == name]) for name in sorted({key(j) for j in judged})}

    return {
        "overall": metrics(judged),
        "by_stage": grouped(lambda j: j.stage),
        "by_problem": grouped(lambda j: j.problem),
        "answers": [asdict(j) for j in judged],
    }


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_summary(summary: dict[str, Any]) -> str:
    """A table of the metrics, one line per scope, then the reject reasons of each scope."""
    scopes = [("all", summary["overall"])]
    scopes += [(f"stage {k}", v) for k, v in summary["by_stage"].items()]
    scopes += [(f"problem {k}", v) for k, v in summary["by_problem"].items()]
    header = f"{'scope':<26} {'answers':>7} {'correct':>7}" + "".join(f" {fast_key(p):>8}" for p in FAST_P)
    header += f" {'mean x':>7} {'geo x':>7}"
    lines = [header, "-" * len(header)]
    for name, m in scopes:
        line = f"{name:<26} {m['answers']:>7} {m['correct']:>7}"
        line += "".join(f" {_cell(m[fast_key(p)], '.2f'):>8}" for p in FAST_P)
        line += f" {_cell(m['mean_speedup'], '.2f'):>7} {_cell(m['geomean_speedup'], '.2f'):>7}"
        lines.append(line)
    for name, m in scopes:
        if m["reasons"]:
            lines.append(f"rejects ({name}): " + ", ".join(f"{r} {n}" for r, n in m["reasons"].items()))
    return "\n".join(lines)
