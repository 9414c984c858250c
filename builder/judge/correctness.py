"""Check code against the reference Model, deciding outside the code's process.

`verify` runs in the judge's own (trusted) process. The code runs in a sandbox session
(builder.judge.runner.SandboxSession); every call it gets is described in builder.judge.calls.
What a verification runs, in order:

1. the manifest's fixed cases, in the standard conditions (builder.judge.plan), ModelNew built
   in each style of builder.judge.reference.STYLES in turn (the manifest's first case
   positionally, as KernelBench does, the second by keyword, ...); the first one run three times
   with every output alive, the third time on the second call's
   tensors, their values reversed in place (a cached output, a buffer handed out on every call
   or in turn);
2. checks drawn from the problem's input space (builder.judge.space), when it declares one and
   no cases were named (SPACE_CHECKS), each in conditions of its own: the first ones see every
   input layout, then module modes, autograd on and off and every fill of fresh allocations
   rotate (builder.judge.plan); on the CPU a drawn call the interpreter has not finished in
   SpaceChecks.call_s is ended (builder.judge.interpreter.Deadline) and drawn again smaller;
   then, where the space has them, TWINS checks again by another model (init) of the same shapes
   (state an answer shares between modules shows);
3. on a GPU, `trials` benchmark-size trials drawn inside the sandbox from seeds it learns only when
   it uses them; their references and keyed input hashes come from the referee
   (builder.judge.referee), asked as the verification starts: it computes them while the sandbox
   runs the small checks above, in a process the sandbox cannot read (another user where the
   judge is root, and not dumpable).

A session that leaves a process behind is a violation, whatever its outputs were.

`verify_codes` checks several codes of the project (trusted: the seed kernel and the stage
solutions) with one referee run whose references serve every code. By default they share a
session, one after another; a code whose failure ends the session is followed by a fresh session
for the rest (when the referee failed, the rest get its failure without a session). With
`sessions` above 1, up to that many codes run at once, each in a session of its own with random
draws of its own, and the benchmark-size trials of one code at a time (so that one benchmark
input and output is alive at a time, as in a single session). Code
under test always gets a session of its own (`verify`).
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from builder.judge.calls import Caller, CaseResult, OverBudget, Reference, Reject
from builder.judge.inputs import draw
from builder.judge.phases import Phases
from builder.judge.plan import (STANDARD, Conditions, both_user_calls, rotation, seeded_specs, trial_conditions,
                                value_classes)
from builder.judge.reference import STYLES, Build
from builder.judge.referee import ask_referee, output_scales
from builder.judge.runner import SandboxDied, SandboxSession
from builder.judge.space import draw_case, draw_twin, stretch_order
from builder.manifest import Case
from builder.seeds import Problem

__all__ = ["CaseResult", "VerifyBatch", "VerifyResult", "verify", "verify_codes"]


class Gate(Protocol):
    """What bounds the benchmark-size trials alive at once: a lock, or a semaphore of several."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class SpaceChecks:
    """How many checks a verification draws from the input space, and how large."""

    least: int  # drawn in any case: every layout and a user's two calls (builder.judge.plan.rotation)
    most: int
    budget_s: float  # seconds after which no more are drawn, once the least are done
    max_elements: int  # input elements of a drawn check, the stretched ones excepted
    call_s: float | None = None  # seconds one drawn call may run before it is drawn again, smaller
    redraws: int = 0  # calls per check that may run out of call_s before the judge gives up (timeout)


#: By device. On a GPU a drawn check's cost is the judge's own work (drawing, the reference on the
#: CPU, sending, comparing), which grows with its size: 30 s and 16M elements made drawn checks
#: the largest phase of a measure (60-140 s per problem of four or five codes on an H100). The CPU
#: interpreter runs a grid's programs one after another, so a check's cost there is the answer's
#: programs, not the input's size: a 2048-row plane of one column, one program per output row and
#: 121 window taps each, took 285 s. A call past call_s is drawn again with its stretched dim
#: halved (then unstretched, at most max_elements).
SPACE_CHECKS = {"cpu": SpaceChecks(6, 8, 12.0, 1 << 13, call_s=20.0, redraws=4),
                "cuda": SpaceChecks(8, 24, 10.0, 1 << 22)}
#: Drawn checks run again by another model of the same shapes (builder.judge.correctness._twins).
TWINS = 2


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one code's correctness."""

    ok: bool  # every case passed and the session ended clean
    reason: str | None  # reason code of the first failure
    detail: str  # sentence about it
    atol: float  # tolerances used
    rtol: float
    cases: tuple[CaseResult, ...] = field(default_factory=tuple)  # the checks run, in order
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (builder.judge.phases)

    def to_payload(self) -> dict[str, Any]:
        """The plain-dict form records and job caches keep."""
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail, "atol": self.atol,
                "rtol": self.rtol, "cases": [c.__dict__ | {"shape": list(c.shape)} for c in self.cases],
                "phases": dict(self.phases)}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> VerifyResult:
        cases = tuple(CaseResult(**{**c, "shape": tuple(c["shape"])}) for c in data.get("cases", []))
        return cls(bool(data["ok"]), data.get("reason"), data.get("detail", ""), float(data.get("atol", 0.0)),
                   float(data.get("rtol", 0.0)), cases, dict(data.get("phases", {})))

    def errors(self) -> tuple[float | None, float | None]:
        """The largest absolute and relative errors over the cases that were compared."""
        abs_errs = [c.max_abs_err for c in self.cases if c.max_abs_err is not None]
        rel_errs = [c.max_rel_err for c in self.cases if c.max_rel_err is not None]
        return max(abs_errs, default=None), max(rel_errs, default=None)


def verify(problem: Problem, code: str, *, device: str, timeout_s: float, cases: list[str] | None = None,
           trials: int = 0, label: str = "candidate", rng: random.Random | None = None,
           gate: Gate | None = None) -> VerifyResult:
    """Check code under test on the problem's cases (all, or those named: [] names none), on checks
    drawn from its input space (when `cases` is None) and, on a GPU, on `trials` trials at the benchmark size,
    in a session of its own. Failures of every kind come back as a VerifyResult, never raised.
    `rng` (default: the system's secret randomness) draws everything; tests pass a seeded one.
    `gate`, shared by verifications that run at once, bounds how many of them hold a
    benchmark-size input and output: each takes it before its trials and gives it back once its
    session closed."""
    batch = verify_codes(problem, {label: code}, device=device, timeout_s=timeout_s, cases=cases, trials=trials,
                         trusted=False, rng=rng, gate=gate)
    return replace(batch.results[label], phases=batch.phases)


@dataclass(frozen=True)
class VerifyBatch:
    """The verdicts on several codes checked together, and the time their checks took."""

    results: dict[str, VerifyResult]  # label -> verdict
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase, for all of them together

    def to_payload(self) -> dict[str, Any]:
        return {"results": {label: r.to_payload() for label, r in self.results.items()}, "phases": dict(self.phases)}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> VerifyBatch:
        return cls({label: VerifyResult.from_payload(r) for label, r in data["results"].items()},
                   dict(data.get("phases", {})))


@dataclass(frozen=True)
class _Trials:
    """Benchmark-size trials planned by the judge and answered by the referee."""

    build: Build  # how the trials' models are built
    specs: list[dict[str, Any]]  # per trial: inputs (with seeds), layout, mode, grad
    poisons: list[str]  # per trial: the fill of fresh allocations
    refs: list[list[Any]]  # per trial: the reference's outputs
    sequences: list[bool]  # per trial: whether the reference returned a sequence
    scales: list[list[float]]  # per trial: each output's max|ref|, as the referee found it
    hashes: list[list[str]]  # per trial: the inputs' keyed hashes
    hash_key: int


def verify_codes(problem: Problem, codes: dict[str, str], *, device: str, timeout_s: float,
                 cases: list[str] | None = None, trials: int = 0, trusted: bool = True,
                 warm: Path | None = None, rng: random.Random | None = None, sessions: int = 1,
                 gate: Gate | None = None) -> VerifyBatch:
    """Check each of `codes` (label -> code) as `verify` does. Trusted codes share the referee's
    trials, and a session or, with `sessions` above 1, run several at once (see the module doc);
    `timeout_s` is per code. A session's trials wait for `gate` (see `verify`); codes checked at
    once here take turns at theirs in any case."""
    if not trusted and len(codes) != 1:
        raise ValueError("code under test is checked alone: pass one code with trusted=False")
    rng = rng or secrets.SystemRandom()
    chosen = [problem.case(n) for n in cases] if cases is not None else list(problem.cases)
    drawn = problem.space is not None and cases is None
    # Callers ask for trials on a GPU (the CPU interpreter cannot run the benchmark's size).
    referral = _Referral(problem, trials, rng, device) if trials else None
    try:
        if sessions > 1 and len(codes) > 1:
            return _verify_apart(problem, codes, chosen, drawn, referral, device, timeout_s, warm, rng, sessions,
                                 gate or threading.Lock())
        return _verify_together(problem, codes, chosen, drawn, referral, device, timeout_s, warm, rng, trusted, gate)
    finally:
        if referral is not None:
            referral.end()


def _verify_together(problem: Problem, codes: dict[str, str], chosen: list[Case], drawn: bool,
                     referral: _Referral | None, device: str, timeout_s: float, warm: Path | None,
                     rng: random.Random, trusted: bool, gate: Gate | None) -> VerifyBatch:
    """Codes checked one after another in a session (a fresh one after a code whose failure may
    have left it unusable), its trials as `gate` lets them."""
    phases = Phases()
    reference = Reference(problem)
    verdicts: dict[str, tuple[str, str] | None] = {}
    records: dict[str, list[CaseResult]] = {label: [] for label in codes}
    pending = list(codes.items())
    while pending:
        session = SandboxSession(device, problem.dir, timeout_s=timeout_s * len(pending), phases=phases, warm=warm)
        turn = _Turn(gate) if gate is not None else None
        ran: list[str] = []
        try:
            session.start()
            while pending:
                label, code = pending.pop(0)
                ran.append(label)
                caller = Caller(problem, session, reference, records[label], label, rng)
                verdicts[label] = _check_one(caller, code, chosen, drawn, referral, trusted, phases, device, turn)
                if verdicts[label] is not None:
                    break  # a failure may have left the session unusable: the rest get a fresh one
        except SandboxDied as exc:
            label = ran[-1] if ran else pending.pop(0)[0]
            verdicts[label] = (exc.reason, exc.detail)
            if referral is not None and referral.failure() is exc:
                verdicts.update({label: (exc.reason, exc.detail) for label, _ in pending})
                pending.clear()
        finally:
            _close(session, phases, turn)
        if session.strays:
            for label in ran:
                if verdicts.get(label) is None:
                    verdicts[label] = ("sandbox_violation", f"{session.strays} process(es) outlived the sandbox")
    results = {}
    for label in codes:
        reason, detail = verdicts.get(label) or (None, "")
        results[label] = VerifyResult(reason is None, reason, detail, problem.atol, problem.rtol, tuple(records[label]))
    return VerifyBatch(results, phases.to_dict())


def _verify_apart(problem: Problem, codes: dict[str, str], chosen: list[Case], drawn: bool,
                  referral: _Referral | None, device: str, timeout_s: float, warm: Path | None,
                  rng: random.Random, sessions: int, gate: Gate) -> VerifyBatch:
    """Trusted codes checked at once, up to `sessions` of them, each in a session of its own, their
    trials as `gate` lets them."""
    seeds = {label: rng.getrandbits(64) for label in codes}  # drawn in order: each code's draws are its own

    def one(label: str) -> tuple[tuple[str, str] | None, list[CaseResult], Phases]:
        phases, records, turn = Phases(), [], _Turn(gate)
        session = SandboxSession(device, problem.dir, timeout_s=timeout_s, phases=phases, warm=warm)
        caller = Caller(problem, session, Reference(problem), records, label, random.Random(seeds[label]))
        try:
            session.start()
            verdict = _check_one(caller, codes[label], chosen, drawn, referral, True, phases, device, turn)
        except SandboxDied as exc:
            verdict = (exc.reason, exc.detail)
        finally:
            _close(session, phases, turn)
        if session.strays and verdict is None:
            verdict = ("sandbox_violation", f"{session.strays} process(es) outlived the sandbox")
        return verdict, records, phases

    with ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="kp-verify") as pool:
        done = dict(zip(codes, pool.map(one, codes)))
    phases = Phases()
    results = {}
    for label, (verdict, records, spent) in done.items():
        phases.merge(spent)
        reason, detail = verdict or (None, "")
        results[label] = VerifyResult(reason is None, reason, detail, problem.atol, problem.rtol, tuple(records))
    return VerifyBatch(results, phases.to_dict())


def _close(session: SandboxSession, phases: Phases, turn: _Turn | None) -> None:
    """End a verification's session, then give back its turn at the trials (if it took one): the
    sandbox's benchmark-size memory is freed with it. The turn is given back even when the close
    raised."""
    try:
        with phases.span("other"):
            session.close()
    finally:
        if turn is not None:
            turn.give_back()


def _check_one(caller: Caller, code: str, chosen: list[Case], drawn: bool, referral: _Referral | None,
               trusted: bool, phases: Phases, device: str, turn: _Turn | None = None) -> tuple[str, str] | None:
    """One code's checks in a running session: None when it passed, else (reason, detail).
    SandboxDied (the session broke) propagates. With `turn`, the trials take it first."""
    try:
        with phases.span("compile"):
            _load(caller, code, trusted)
        for index, case in enumerate(chosen):
            with phases.span("compile" if index == 0 else "checks"):
                style = STYLES[caller.problem.cases.index(case) % len(STYLES)]  # each case's own, however chosen
                caller.fixed(case, twice=index == 0, conditions=replace(STANDARD, build=style))
        if drawn:
            with phases.span("checks"):
                _space_checks(caller, device)
        if referral is not None:
            planned = referral.answer(caller.session, phases)
            if turn is not None:
                turn.take(caller.session, phases)
            with phases.span("trials"):
                model = caller.build(planned.build)
                for index, spec in enumerate(planned.specs):
                    caller.trial(index, model, spec, planned.refs[index], planned.sequences[index],
                                 planned.hashes[index], planned.hash_key, planned.poisons[index], planned.scales[index])
    except Reject as exc:
        return exc.reason, exc.detail
    return None


class _Turn:
    """A session's turn at the benchmark-size trials, among sessions checked at once: taken from
    the gate before its first trial (the wait is the `wait` phase, with the session's clock
    stopped) and given back once the session closed, so that no more benchmark inputs and
    outputs are alive at a time than the gate lets through."""

    def __init__(self, gate: Gate) -> None:
        self.gate, self.held = gate, False

    def take(self, session: SandboxSession, phases: Phases) -> None:
        if self.held:  # a later code of the same session
            return
        with session.paused(), phases.span("wait"):
            self.gate.acquire()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.gate.release()


def _space_checks(caller: Caller, device: str) -> None:
    """Checks drawn from the input space, each in conditions of its own (see the module doc)."""
    problem, rng = caller.problem, caller.rng
    plan = SPACE_CHECKS.get(device, SPACE_CHECKS["cpu"])
    assert problem.space is not None
    conditions = both_user_calls(rotation(plan.most, rng))
    classes = value_classes(problem.space.values, plan.most, plan.least, rng)
    stretched = stretch_order(problem, rng)
    stretched.insert(1, stretched[0])  # the widest dim twice: as a user's inference and training calls
    # Every dim stretched once (the widest in both calls) and every value class drawn once.
    least = min(plan.most, max(plan.least, len(stretched), 1 + len(problem.space.values)))
    start = time.monotonic()
    drawn: list[tuple[Case, Conditions]] = []
    for index in range(plan.most):
        if index >= least and time.monotonic() - start > plan.budget_s:
            break
        stretch = stretched[index] if index < len(stretched) else None
        for over in range(plan.redraws + 1):
            name = f"space_{index}" if over == 0 else f"space_{index} (drawn again: {over} over {plan.call_s:g} s)"
            case = draw_case(problem, name, classes[index], rng,
                             lambda c, k=index: caller.reference.accepts(c, conditions[k], rng),
                             stretch=stretch if over < plan.redraws else None, halvings=over,
                             max_elements=plan.max_elements, layout=conditions[index].layout)
            if case is None:
                break
            try:
                caller.drawn(case, conditions[index], plan.call_s)
            except OverBudget:
                continue
            drawn.append((case, conditions[index]))
            break
        else:
            raise Reject("timeout", f"space_{index}: no draw of it ran within {plan.call_s:g} s "
                                    f"in {plan.redraws + 1} tries, the last unstretched")
    _twins(caller, drawn, plan.call_s)


def _twins(caller: Caller, drawn: list[tuple[Case, Conditions]], call_s: float | None) -> None:
    """Up to TWINS drawn checks again, each by another model (init) of the same input and output
    shapes whose reference gives other values there: state an answer shares between modules (a
    launch plan cached by shape) shows. The checks whose inputs have the most axes longer than 1
    are tried first; a twin past `call_s` makes way for the next one, and when every twin tried
    ran past it, the verdict is a timeout (an answer slow only where it replays another model's
    plan skips no twin)."""
    reference, rng = caller.reference, caller.rng
    found = over = 0
    for base, called in sorted(drawn, key=lambda d: (-sum(n > 1 for i in d[0].inputs for n in i.shape),
                                                     -sum(math.prod(i.shape) for i in d[0].inputs))):
        tensors = [draw(i.to_spec(), rng.getrandbits(62)) for i in base.inputs]
        mine = reference.outputs(base, called, tensors)

        def differs(case: Case) -> bool:
            theirs = reference.outputs(case, called, tensors)
            return (mine is not None and theirs is not None and [o.shape for o in theirs] == [o.shape for o in mine]
                    and not all(torch.allclose(a, b, equal_nan=True) for a, b in zip(mine, theirs)))

        twin = draw_twin(caller.problem, base, rng, differs)
        if twin is not None:
            try:
                caller.drawn(twin, called, call_s)
            except OverBudget:
                over += 1
                continue
            found += 1
            if found == TWINS:
                return
    if over and not found:
        raise Reject("timeout", f"no model of another init ran within {call_s:g} s on the shapes its own ran on "
                                f"({over} tried)")


class _Referral:
    """A verification's trials: planned here, from `rng`, and sent to the referee at once, whose
    answer is read when the first trial needs it (the wait counts as the "reference" phase)."""

    def __init__(self, problem: Problem, trials: int, rng: random.Random, device: str) -> None:
        conditions = trial_conditions(trials, rng)
        self.build = Build(problem.init, rng.getrandbits(62), rng.getrandbits(62))
        self.specs = [{"inputs": seeded_specs(problem.inputs, rng.getrandbits(62)), "layout": c.layout,
                       "mode": c.mode, "grad": c.grad} for c in conditions]
        self.poisons = [c.poison for c in conditions]
        self.key = rng.getrandbits(62)
        self.future: Future[dict[str, Any]] = Future()
        self.ended = threading.Event()

        def ask() -> None:  # in a daemon thread: an answer nobody reads never holds up the process's exit
            self.future.set_running_or_notify_cancel()
            try:
                self.future.set_result(ask_referee(problem, self.key, build=self.build.to_spec(), trials=self.specs,
                                                   device=device, wanted=lambda: not self.ended.is_set()))
            except BaseException as exc:  # read by `answer`
                self.future.set_exception(exc)

        threading.Thread(target=ask, name="kp-referral", daemon=True).start()

    def answer(self, session: SandboxSession, phases: Phases) -> _Trials:
        """The planned trials with the referee's answers; raises SandboxDied when the referee failed.
        The session's deadline moves by the time waited: the referee's time is not the answer's."""
        with session.paused(), phases.span("reference"):
            payload = self.future.result()
        groups = payload["groups"]
        return _Trials(self.build, self.specs, self.poisons, payload["outputs"], [bool(g["sequence"]) for g in groups],
                       output_scales(payload),
                       [t["input_hashes"] for t in payload["trials"]], self.key)

    def failure(self) -> BaseException | None:
        """What the referee raised, once it answered; None before, or when it succeeded."""
        return self.future.exception() if self.future.done() else None

    def end(self) -> None:
        """The verification is over: a request still waiting for the referee is withdrawn, and one
        it has taken up is waited for, so that no referee work for it runs on after it (into a
        timing run, say)."""
        self.ended.set()
        wait([self.future])


def _load(caller: Caller, code: str, trusted: bool = False) -> None:
    path = caller.session.write_code(caller.label, code)
    reply = caller.session.request({"op": "load", "label": caller.label, "path": str(path), "trusted": trusted})
    if not reply.get("ok"):
        raise Reject(reply.get("reason") or "import_error", reply.get("detail", ""))
