"""Judge one model answer: static rules, then correctness in a sandbox, then (GPU) checked timing.

`score_answer` never imports the code under test: only sandbox processes do, and the verdict is
decided here, from what they send back. Its verifier and timer are injectable, so tests can swap
them. `reward_fn` wraps it in the shape TRL's trainers expect of a reward function.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from builder.judge import correctness
from builder.judge.anticheat import Finding, forbidden_sizes
from builder.judge.rules import check_answer, first_finding, format_findings, hard_findings
from builder.seeds import Problem, get_problem

#: Default seconds one verify job may take (the CPU interpreter is slow).
DEFAULT_TIMEOUT_S = 300.0
#: Seeded trials at the benchmark shape on a GPU.
GPU_BENCHMARK_TRIALS = 5
#: The speedup bonus stops growing here: larger speedups are suspect, not better.
MAX_SPEEDUP = 10.0
#: A correct answer that breaks an output rule gets this share of what it would get if it followed
#: them: 0.4 to 0.8, above any reject (0) and below any compliant correct answer (1 to 2).
FORMAT_SHARE = 0.4
#: What an answer only a GPU can check gets on the CPU (cpu_unverifiable): nothing is known of its
#: correctness, and any positive value would pay for making a kernel uncheckable.
UNVERIFIABLE_REWARD = 0.0

#: Checks code for correctness: (problem, code, device=, timeout_s=, cases=, trials=) -> VerifyResult.
Verifier = Callable[..., correctness.VerifyResult]
#: Times correct code on a GPU: (code, problem) -> Timed. A GpuTimer also prepares while a batch's
#: answers are checked (score_batch).
Timer = Callable[[str, Problem], "Timed"]
#: The events' median may be this fraction of the profiler's kernel time and no less.
PROFILE_AGREEMENT = 0.7
#: (problem folder, current code, compile baseline) whose trusted codes this process has compiled
#: into the problem's cache folder (see GpuTimer.prepare), the warm-ups tried per key, and a lock
#: per key while one runs.
_WARMED: set[tuple[str, str, bool]] = set()
_TRIED: dict[tuple[str, str, bool], int] = {}
_WARMING: dict[tuple[str, str, bool], threading.Lock] = {}
_WARMING_LOCK = threading.Lock()
#: Warm-ups a process tries per key before its timing sessions compile for themselves.
WARM_UP_TRIES = 2


@dataclass(frozen=True)
class Verdict:
    """The judgement of one answer."""

    ok: bool  # accepted: correct and safe (and, in strict mode, following the output rules)
    reason: str | None  # reason code of the first failed check (builder.judge.reasons)
    detail: str  # a sentence about the failure; "" when ok
    findings: tuple[Finding, ...] = ()  # every static finding, not only the first
    errors: dict[str, dict[str, float | None]] = field(default_factory=dict)  # case -> max errors and seconds
    speedups: dict[str, float] = field(default_factory=dict)  # baseline -> speedup; empty on CPU
    reward: float = 0.0  # see `reward`
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (builder.judge.phases)
    correct: bool | None = False  # correct and safe; None when not known (cpu_unverifiable, strict format reject)
    follows_rules: bool = True  # no finding of rules.FORMAT_REASONS (rule_order, import_shim, forbidden_section)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [list(f) for f in self.findings]
        return data


def reward(ok: bool, speedups: dict[str, float], follows_rules: bool = True) -> float:
    """0 for a reject; 1 for correct code, plus log10 of its speedup over the current code (0 to 1);
    FORMAT_SHARE of that when the code breaks an output rule."""
    if not ok:
        return 0.0
    speedup = speedups.get("current")
    full = 1.0 if not speedup or speedup <= 1.0 else 1.0 + math.log10(min(speedup, MAX_SPEEDUP))
    return full if follows_rules else FORMAT_SHARE * full


@lru_cache(maxsize=None)
def _benchmark_sizes(reference: Path, init: str, shapes: tuple[tuple[int, ...], ...],
                     dtypes: tuple[str, ...]) -> frozenset[int]:
    """Forbidden literals: the benchmark's input and output sizes (outputs via the meta device)."""
    from builder.judge.loader import load_module
    from builder.judge.reference import meta_outputs
    from builder.manifest import Input

    inputs = tuple(Input(f"x{i}", shape, dtype) for i, (shape, dtype) in enumerate(zip(shapes, dtypes)))
    outputs = [shape for shape, _ in meta_outputs(load_module(reference), json.loads(init), inputs)]
    sizes: frozenset[int] = frozenset()
    for shape in shapes:
        for out_shape in outputs or [()]:
            sizes |= forbidden_sizes(shape, out_shape)
    return sizes


def benchmark_sizes(problem: Problem) -> frozenset[int]:
    """Integers that betray a candidate hard-coding `problem`'s benchmark shapes."""
    return _benchmark_sizes(problem.reference_path, json.dumps(problem.init, sort_keys=True),
                            tuple(i.shape for i in problem.inputs), tuple(i.dtype for i in problem.inputs))


def score_answer(
    answer: str,
    problem: Problem,
    *,
    device: str = "cpu",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    verifier: Verifier = correctness.verify,
    cases: Sequence[str] | None = None,
    timer: Timer | None = None,
    trials: int | None = None,
    strict: bool = False,
    gate: correctness.Gate | None = None,
) -> Verdict:
    """Judge `answer` (a model's full reply) for `problem`; `timer` adds speedups on a GPU.

    Static rules first, then correctness in a sandbox (builder.judge.correctness; its
    benchmark-size trials wait for `gate`, when given), then, when a timer is given and the
    device is a GPU, the checked timing run and the profiler's kernel list.
    A finding that only breaks the output rules (rules.FORMAT_REASONS) does not stop the checks:
    the verdict says apart whether the code is correct and whether it follows the rules, and the
    reward is FORMAT_SHARE of a compliant answer's. With `strict`, any finding rejects.
    """
    code, findings = check_answer(answer, benchmark_sizes(problem))
    blocking = findings if strict else hard_findings(findings)
    follows = not format_findings(findings)
    first = first_finding(blocking)
    if first is not None:
        known = False if first.reason not in {f.reason for f in format_findings(findings)} else None
        return Verdict(False, first.reason, first.detail, tuple(findings), correct=known, follows_rules=follows)
    if trials is None:
        trials = GPU_BENCHMARK_TRIALS if device == "cuda" else 0
    result = verifier(problem, code, device=device, timeout_s=timeout_s, cases=list(cases) if cases else None,
                      trials=trials, **({"gate": gate} if gate is not None else {}))
    errors = {c.name: {"max_abs_err": c.max_abs_err, "max_rel_err": c.max_rel_err, "seconds": c.seconds}
              for c in result.cases}
    phases = dict(getattr(result, "phases", {}))
    if not result.ok:
        unknown = result.reason == "cpu_unverifiable"
        return Verdict(False, result.reason or "crash", result.detail, tuple(findings), errors=errors, phases=phases,
                       reward=UNVERIFIABLE_REWARD if unknown else 0.0, correct=None if unknown else False,
                       follows_rules=follows)
    verdict = Verdict(True, None, "", tuple(findings), errors=errors, reward=reward(True, {}, follows), phases=phases,
                      correct=True, follows_rules=follows)
    if timer is None or device != "cuda":
        return verdict
    return with_timing(verdict, timer(code, problem))


def with_timing(verdict: Verdict, timed: Timed) -> Verdict:
    """A correct verdict with a timer's speedups and reward (or its reject), and its phases."""
    from builder.judge.phases import Phases

    phases = Phases(verdict.phases).merge(timed.phases).to_dict()
    if timed.reason:
        return replace(verdict, ok=False, reason=timed.reason, detail=timed.detail, speedups=timed.speedups,
                       phases=phases, reward=0.0, correct=False)
    return replace(verdict, speedups=timed.speedups, reward=reward(True, timed.speedups, verdict.follows_rules),
                   phases=phases)


def score_batch(answers: Sequence[str], problems: Sequence[Problem], *, device: str, timers: Sequence[Timer | None],
                parallel: int = 1, trial_sets: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                trials: int | None = None, strict: bool = False,
                progress: Callable[[str], None] | None = None) -> list[Verdict]:
    """Judge many answers: the static rules and the checks of up to `parallel` answers at once (each
    in a sandbox of its own; on a GPU, their benchmark-size trials `trial_sets` at a time when
    that is fewer), then, on a GPU, the timing runs of the correct ones, one at a time (a timing
    run has its GPU to itself). Each verdict is the one `score_answer` gives alone. While the
    answers are checked, the timers prepare (GpuTimer.prepare: the trusted codes compiled) and an
    ncu sandbox starts for the first profile; between timing runs one sandbox is kept started
    ahead, the next run's. `progress` gets a line as each answer's checks and timing run end."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from builder.judge.runner import keep_spares

    gate = (threading.BoundedSemaphore(max(1, trial_sets))
            if device == "cuda" and trial_sets is not None and trial_sets < parallel else None)
    say = _Progress(progress, len(answers))

    def check(i: int) -> Verdict:
        start = time.monotonic()
        verdict = score_answer(answers[i], problems[i], device=device, timeout_s=timeout_s, trials=trials,
                               strict=strict, gate=gate)
        say("checked", i, verdict, time.monotonic() - start)
        return verdict

    with ThreadPoolExecutor(max_workers=1) as beside:
        preparing = []
        for timer, problem in zip(timers, problems):
            if device == "cuda" and isinstance(timer, GpuTimer):  # once per problem and code: the rest find it done
                timer.keep_ahead()
                preparing.append(beside.submit(timer.prepare, problem))
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            verdicts = list(pool.map(check, range(len(answers))))
        wait(preparing)  # no timing run while a warm-up uses the GPU
        if preparing and len(answers) > 1:  # from now on only the next timing run's sandbox starts ahead
            keep_spares(device, 1)
        for i, verdict in enumerate(verdicts):
            if verdict.ok and timers[i] is not None and device == "cuda":
                code, _ = check_answer(answers[i], benchmark_sizes(problems[i]))
                start = time.monotonic()
                timed = timers[i](code, problems[i])  # type: ignore[misc]
                verdicts[i] = with_timing(verdict, timed)
                say("timed", i, verdicts[i], time.monotonic() - start, timed.phases)
    return verdicts


class _Progress:
    """score_batch's progress lines: "[seconds since the batch began] checked I/N: ok or the reason
    (seconds it took[, seconds by phase])", and "timed I/N: ..." likewise."""

    def __init__(self, out: Callable[[str], None] | None, count: int) -> None:
        self.out, self.count, self.started = out, count, time.monotonic()

    def __call__(self, what: str, index: int, verdict: Verdict, seconds: float,
                 phases: dict[str, float] | None = None) -> None:
        if self.out is None:
            return
        spent = "".join(f", {name} {s:.1f}" for name, s in (phases or {}).items() if s >= 0.05)
        status = "ok" if verdict.ok else verdict.reason
        self.out(f"[{time.monotonic() - self.started:.1f}s] {what} {index + 1}/{self.count}: {status} "
                 f"({seconds:.1f} s{spent})")


#: GPU memory a checking sandbox holds besides its tensors (its CUDA context, Triton's modules).
SANDBOX_GIB = 1.0


def gpu_checks(workers: int | None) -> int:
    """How many answers a GPU judge checks at once: `workers`, else one per two CPUs, at most 8 (the
    judge and each answer's sandbox both work on the CPU)."""
    import os

    return workers or max(1, min(8, (os.cpu_count() or 2) // 2))


def trial_sets(problems: Sequence[Problem], checks: int, kept: int = 1) -> int:
    """How many benchmark inputs and outputs of these problems (with slack) fit the GPU at once,
    beside `checks` sandboxes and `kept` sets kept free: the referee's, and a timer's warm-up
    beside the checks (score_batch) when they are timed; at least one. A GPU capped with
    KP_GPU_MEMORY_GIB counts as one of that size."""
    import os

    import torch

    from builder.judge.child import MEMORY_CAP_ENV
    from builder.measure import bytes_moved

    free, _ = torch.cuda.mem_get_info()
    if os.environ.get(MEMORY_CAP_ENV):
        free = min(free, int(float(os.environ[MEMORY_CAP_ENV]) * 1024**3))
    need = max(bytes_moved(p) for p in {p.key: p for p in problems}.values()) * 1.25
    return max(1, int((free - (checks + kept) * SANDBOX_GIB * 1024**3) // need) - kept)


@dataclass(frozen=True)
class Timed:
    """Speedups of code judged correct, or why its timing run rejected it."""

    speedups: dict[str, float]  # baseline -> speedup ("current", "eager", "compile")
    reason: str | None = None  # reason code when the timing run or the profile rejected the code
    detail: str = ""  # sentence about it
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (builder.judge.phases)


class GpuTimer:
    """Times answers for one stage: side by side with `current_code` (timed before and after the
    answer) and the `baselines` ("eager", "compile"); then, if `profile`, ncu's list of the
    kernels one forward ran. Without "eager" the suspect-speedup check has nothing to hold the
    answer against. `prepare` compiles the trusted codes once per process and problem, for every
    answer's session to load; score_batch runs it while the answers are checked."""

    def __init__(self, current_code: str, *, profile: bool = True, baselines: Sequence[str] = ("eager", "compile"),
                 runs: int = 100, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.current_code, self.profile, self.baselines = current_code, profile, tuple(baselines)
        self.runs, self.timeout_s = runs, timeout_s

    def prepare(self, problem: Problem) -> dict[str, float]:
        """Compile the trusted codes of `problem` into its cache folder unless this process has (or
        has failed to WARM_UP_TRIES times); the phases of that work, or the seconds spent waiting
        for another thread's as "compile"."""
        from builder.judge.jobs import warm_folder
        from builder.judge.phases import Phases
        from builder.judge.timing import warm_up

        once = (str(problem.dir), self.current_code, "compile" in self.baselines)
        start = time.monotonic()
        with _WARMING_LOCK:
            lock = _WARMING.setdefault(once, threading.Lock())
        with lock:
            if once in _WARMED or _TRIED.get(once, 0) >= WARM_UP_TRIES:
                return Phases({"compile": time.monotonic() - start}).to_dict()
            _TRIED[once] = _TRIED.get(once, 0) + 1
            phases = Phases()
            if warm_up(problem, warm_folder(problem.dir), phases, codes={"current": self.current_code},
                       compile_baseline=once[2], timeout_s=self.timeout_s):
                _WARMED.add(once)
            return phases.to_dict()

    def __call__(self, code: str, problem: Problem) -> Timed:
        from builder.judge import ncu
        from builder.judge.jobs import warm_folder
        from builder.judge.phases import Phases
        from builder.judge.runner import SandboxDied, spares_held
        from builder.judge.timing import Subject, run_side_by_side

        phases = Phases(self.prepare(problem))
        subjects = [Subject("current", "code", self.current_code)] + [Subject(name, name) for name in self.baselines]
        subjects.append(Subject("candidate", "code", code, trusted=False))
        try:
            with spares_held():  # no sandbox starts ahead during the run: its GPU is its own
                run = run_side_by_side(problem, subjects, runs=self.runs, timeout_s=self.timeout_s,
                                       warm=warm_folder(problem.dir))
        except SandboxDied as exc:
            return Timed({}, exc.reason, exc.detail, phases.to_dict())
        phases.merge(run.phases)
        if run.errors:
            label = "candidate" if "candidate" in run.errors else next(iter(run.errors))
            reason, detail = run.errors[label]
            return Timed({}, reason if label == "candidate" else "crash", f"{label}: {detail}", phases.to_dict())
        best = run.stats["candidate"]["median_ms"]
        current = min(run.stats["current"]["median_ms"], run.stats["current"].get("repeat_median_ms", math.inf))
        speedups = {"current": current / best}
        speedups.update({name: run.stats[name]["median_ms"] / best for name in ("eager", "compile") if name in run.stats})
        if speedups.get("eager", 0.0) > problem.max_speedup_vs_eager:
            return Timed(speedups, "suspect_speedup", f"{speedups['eager']:.1f}x eager is over this problem's "
                                                      f"limit of {problem.max_speedup_vs_eager:g}x", phases.to_dict())
        ncu_bin = ncu.ncu_path()
        if self.profile and ncu_bin:
            batch = ncu.profile_codes(problem, {"candidate": code}, [], ncu_bin, timeout_s=self.timeout_s, trusted=False)
            phases.merge(batch.phases)
            seen = batch.profiles["candidate"]
            if not seen.ok:
                return Timed(speedups, seen.reason or "crash", f"profile: {seen.detail}", phases.to_dict())
            if seen.guard_finding:
                return Timed(speedups, seen.guard_finding[0], f"profile: {seen.guard_finding[1]}", phases.to_dict())
            foreign = ncu.foreign_kernels(seen.launches, jit_function_names(code))
            if foreign:
                return Timed(speedups, "foreign_kernel", f"forward ran {', '.join(foreign[:3])}", phases.to_dict())
            gpu_ms = seen.gpu_ms()
            if gpu_ms is not None and best < PROFILE_AGREEMENT * gpu_ms:
                return Timed(speedups, "timing_mismatch", f"events say {best:.3f} ms, the profiler saw "
                                                          f"{gpu_ms:.3f} ms of kernels in one forward", phases.to_dict())
        return Timed(speedups, phases=phases.to_dict())

    def keep_ahead(self) -> None:
        """Keep one ncu sandbox started ahead for this timer's profiles (the reward's and score's:
        ncu's start and the sandbox's imports take seconds, which the checks, an earlier profile
        or an earlier timing run hide; it sets up its GPU context only when a profile takes it)."""
        from builder.judge import ncu
        from builder.judge.runner import keep_spares

        ncu_bin = ncu.ncu_path()
        if self.profile and ncu_bin:
            keep_spares("cuda", 1, wrap=ncu.profiler(ncu_bin, []))


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


def jit_function_names(code: str) -> set[str]:
    """Names of the @triton.jit functions `code` defines: the kernels it may launch."""
    import ast

    from builder.judge.anticheat import import_aliases, is_triton_kernel

    tree = ast.parse(code)
    aliases = import_aliases(tree)
    return {node.name for node in ast.walk(tree) if is_triton_kernel(node, aliases)}


def _column(value: Any, count: int) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


@dataclass(frozen=True)
class GpuSettings:
    """How a GPU judges a batch: benchmark-size trials per answer, timed runs, and the baselines
    each answer is timed against besides its current code."""

    trials: int
    runs: int
    baselines: tuple[str, ...]


#: `score`'s settings, and the reward's: fewer trials and runs, and eager as the only baseline (it
#: is what the suspect-speedup limit is measured against).
SCORE_SETTINGS = GpuSettings(GPU_BENCHMARK_TRIALS, 100, ("eager", "compile"))
REWARD_SETTINGS = GpuSettings(1, 30, ("eager",))


def judge_batch(answers: Sequence[str], problems: Sequence[Problem], currents: Sequence[str | None], *, device: str,
                settings: GpuSettings = SCORE_SETTINGS, timed: bool = True, profile: bool = True,
                workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, timer_timeout_s: float | None = None,
                strict: bool = False, progress: Callable[[str], None] | None = None) -> list[Verdict]:
    """Judge answers to `problems`, each against its current code (`currents`: needed only where a
    GPU times them), as `score` and the reward do: score_batch with sandboxes started ahead, the
    checks of `workers` answers at once (on a GPU by default one per two CPUs, at most 8, their
    benchmark-size trials as many at once as the GPU's free memory holds; on the CPU by default
    one per CPU), then on a GPU, when `timed`, the timing runs of `settings`. `progress` gets a
    line as each answer's checks and timing run end."""
    import os

    from builder.judge.runner import keep_spares

    count = len(answers)
    if not count:
        return []
    timers: list[Timer | None] = [None] * count
    sets = None
    parallel = gpu_checks(workers) if device == "cuda" else workers or os.cpu_count() or 1
    ahead = min(parallel, count) + (1 if timed and device == "cuda" else 0)  # sandboxes started ahead
    if device == "cuda":
        # Sandboxes with a GPU context: the checks under way and those started ahead.
        sets = trial_sets(problems, min(parallel, count) + ahead, kept=2 if timed else 1)
        if timed:
            if any(current is None for current in currents):
                raise ValueError("a GPU times each answer against its current code: pass one for each answer")
            timers = [GpuTimer(current, profile=profile, baselines=settings.baselines, runs=settings.runs,  # type: ignore[arg-type]
                               timeout_s=timer_timeout_s or timeout_s) for current in currents]
    if count > 1:  # one answer's sessions follow one another: a sandbox started ahead would not be ready
        keep_spares(device, ahead)
    return score_batch(answers, problems, device=device, timers=timers, parallel=parallel, trial_sets=sets,
                       timeout_s=timeout_s, trials=settings.trials if device == "cuda" else 0, strict=strict,
                       progress=progress)


def make_reward_fn(*, timed: bool = True, workers: int | None = None, profile: bool = True,
                   timeout_s: float = DEFAULT_TIMEOUT_S, strict: bool = False,
                   unverifiable: float | None = UNVERIFIABLE_REWARD) -> Callable[..., list[float | None]]:
    """A TRL reward function: one reward per completion, 0 for a reject, 1 for correct code, plus a
    log-speedup bonus over the row's current code when `timed` and a CUDA GPU is present; a
    correct answer that breaks an output rule gets FORMAT_SHARE of that (0 with `strict`). An answer
    only a GPU can check gets `unverifiable` on the CPU (default 0.0; None makes TRL leave it out).

    The problem comes from the `problem` column (a key or a {key, ...} struct), else `problem_key`
    or the row `id`; the current code from `current_code`, else the `stage` column (the stage's
    current code in seeds/). A batch is judged by `judge_batch` with REWARD_SETTINGS: the checks
    of several answers at once, each in a sandbox of its own, then on a GPU the timing runs, one
    at a time. Each reward is the one the answer would get alone.
    """

    def reward_fn(completions: list[Any], problem: Any = None, **kwargs: Any) -> list[float | None]:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        column = problem if problem is not None else kwargs.get("problem_key", kwargs.get("id"))
        if column is None:
            raise ValueError("reward_fn needs a `problem`, `problem_key` or `id` column")
        count = len(completions)
        targets = [get_problem(_problem_key(key)) for key in _column(column, count)]
        codes, stages = _column(kwargs.get("current_code"), count), _column(kwargs.get("stage"), count)
        currents = [codes[i] or current_code(targets[i], stages[i]) if device == "cuda" and timed else None
                    for i in range(count)]
        verdicts = judge_batch([completion_text(c) for c in completions], targets, currents, device=device,
                               settings=REWARD_SETTINGS, timed=timed, profile=profile, workers=workers,
                               timeout_s=timeout_s, strict=strict)
        return [unverifiable if v.reason == "cpu_unverifiable" else v.reward for v in verdicts]

    reward_fn.__name__ = "kernel_reward"
    return reward_fn


def current_code(problem: Problem, stage: Any) -> str:
    """The code a stage's answers improve on: the previous stage's solution, or the seed kernel
    for stage 1 and for no stage; `stage` is a key or a {key, ...} struct."""
    from builder.records import code_path
    from builder.rows import current_label
    from builder.stages import catalog

    key = stage.get("key") if isinstance(stage, dict) else stage
    return code_path(problem, current_label(catalog().get(key)) if key else "seed").read_text()


#: The reward function with timing on a GPU and parallel CPU judging (see make_reward_fn).
reward_fn = make_reward_fn()
