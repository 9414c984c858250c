"""Judge one model answer: static rules first, then correctness (and timing) in a child process.

`score_answer` never imports the code under test: only the isolated runner does. Its `run_job`
is injectable, so tests can swap it. `reward_fn` wraps it in the shape TRL's GRPOTrainer expects
of a reward function.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from builder.judge import runner
from builder.judge.anticheat import Finding, forbidden_sizes
from builder.judge.rules import check_answer, first_finding
from builder.seeds import Problem, get_problem

#: Default seconds one verify job may take (the CPU interpreter is slow).
DEFAULT_TIMEOUT_S = 300.0
#: Seeded trials at the benchmark shape on a GPU.
GPU_BENCHMARK_TRIALS = 5
#: The speedup bonus stops growing here: larger speedups are suspect, not better.
MAX_SPEEDUP = 10.0

RunJob = Callable[[str, dict[str, Any], float], runner.JobResult]
#: Times correct code on a GPU: (code, problem) -> {baseline name: speedup}.
Timer = Callable[[str, Problem], dict[str, float]]


@dataclass(frozen=True)
class Verdict:
    """The judgement of one answer."""

    ok: bool  # every check passed
    reason: str | None  # reason code of the first failed check (builder.judge.reasons)
    detail: str  # a sentence about the failure; "" when ok
    findings: tuple[Finding, ...] = ()  # every static finding, not only the first
    errors: dict[str, dict[str, float | None]] = field(default_factory=dict)  # case -> max errors
    speedups: dict[str, float] = field(default_factory=dict)  # baseline -> speedup; empty on CPU
    reward: float = 0.0  # 0 for rejects, 1 for correct, plus a log-speedup bonus when timed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [list(f) for f in self.findings]
        return data


def reward(ok: bool, speedups: dict[str, float]) -> float:
    """0 for a reject; 1 for correct code, plus log10 of its speedup over the current code (0 to 1)."""
    if not ok:
        return 0.0
    speedup = speedups.get("current")
    if not speedup or speedup <= 1.0:
        return 1.0
    return 1.0 + math.log10(min(speedup, MAX_SPEEDUP))


@lru_cache(maxsize=None)
def _benchmark_sizes(reference: Path, init: tuple[tuple[str, Any], ...], shape: tuple[int, ...]) -> frozenset[int]:
    """Forbidden literals: the benchmark's input and output sizes (output shape via the meta device)."""
    import torch

    from builder.judge.loader import load_module

    model = load_module(reference).Model(**dict(init))
    out_shape = tuple(model(torch.empty(shape, device="meta")).shape)
    return forbidden_sizes(shape, out_shape)


def benchmark_sizes(problem: Problem) -> frozenset[int]:
    """Integers that betray a candidate hard-coding `problem`'s benchmark shape."""
    return _benchmark_sizes(problem.reference_path, tuple(sorted(problem.init.items())), problem.shape)


def score_answer(
    answer: str,
    problem: Problem,
    *,
    device: str = "cpu",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    run_job: RunJob = runner.run_job,
    cases: Sequence[str] | None = None,
    seed: int = 0,
    timer: Timer | None = None,
) -> Verdict:
    """Judge `answer` (a model's full reply) for `problem`; `timer` adds speedups on a GPU."""
    code, findings = check_answer(answer, benchmark_sizes(problem))
    first = first_finding(findings)
    if first is not None:
        return Verdict(False, first.reason, first.detail, tuple(findings))
    params = {
        "problem_dir": str(problem.dir),
        "code": code,
        "device": device,
        "cases": list(cases) if cases else None,
        "benchmark_trials": GPU_BENCHMARK_TRIALS if device == "cuda" else 0,
        "seed": seed,
    }
    result = run_job("verify", params, timeout_s)
    if not result.ok:
        return Verdict(False, result.reason or "crash", result.detail)
    payload = result.payload
    errors = {c["name"]: {"max_abs_err": c["max_abs_err"], "max_rel_err": c["max_rel_err"]}
              for c in payload.get("cases", [])}
    if not payload.get("ok"):
        return Verdict(False, payload.get("reason"), payload.get("detail", ""), errors=errors)
    speedups = timer(code, problem) if timer is not None and device == "cuda" else {}
    return Verdict(True, None, "", errors=errors, speedups=speedups, reward=reward(True, speedups))


def read_answer(path: Path) -> str:
    """An answer stored in a file: a .py file is bare code and gets a python fence."""
    text = Path(path).read_text()
    if Path(path).suffix != ".py":
        return text
    return f"```python\n{text.rstrip()}\n```\n"


def read_answers(path: Path) -> list[str]:
    """The answers in a file: one per line of a .jsonl file (a string, or an object with
    `completion`, `messages` or `content`), else the file's one answer (see read_answer)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        return [read_answer(path)]
    answers = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if isinstance(item, dict):
            item = item.get("completion", item.get("messages", item))
        answers.append(completion_text(item))
    return answers


def completion_text(completion: Any) -> str:
    """The answer text of a completion: a string, or the last message of a {role, content} list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def _problem_key(value: Any) -> str:
    """A problem key from a dataset value: 'avgpool1d', {'key': ...}, or a row id 'key/stage/gpu'."""
    if isinstance(value, dict):
        value = value.get("key", "")
    return str(value).split("/")[0]


def reward_fn(completions: list[Any], problem: Any = None, **kwargs: Any) -> list[float]:
    """A TRL reward function: one reward per completion.

    The problem comes from the `problem` column (a key or a {key, ...} struct, one per sample or
    one for all), else from `problem_key` or the row `id`. Runs on CUDA when there is one.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    column = problem if problem is not None else kwargs.get("problem_key", kwargs.get("id"))
    if column is None:
        raise ValueError("reward_fn needs a `problem`, `problem_key` or `id` column")
    keys = column if isinstance(column, list) else [column] * len(completions)
    rewards = []
    for completion, key in zip(completions, keys):
        verdict = score_answer(completion_text(completion), get_problem(_problem_key(key)), device=device)
        rewards.append(verdict.reward)
    return rewards
