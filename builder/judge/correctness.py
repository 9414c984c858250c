"""Check code against the reference Model, deciding outside the code's process.

`verify` runs in the judge's own (trusted) process. The code runs in a sandbox session
(builder.judge.runner.SandboxSession); the judge draws every input from fresh secret seeds,
sends small inputs as bytes, computes the reference itself on the CPU, gets the raw output and
the input's bytes back, and compares. Benchmark-shape trials (on a GPU) are drawn inside the
sandbox from seeds it learns only when it must use them; their references and input hashes come
from the referee (builder.judge.referee), which ran before the sandbox. The first case is run
twice on two inputs, to catch outputs cached across calls. A session that leaves a process
behind is a violation, whatever its outputs were.

`verify_codes` checks several codes of the project (trusted: the seed kernel and the stage
solutions) in one session, one after another, with one referee run whose references serve every
code; a code whose failure ends the session is followed by a fresh session for the rest. Code
under test always gets a session of its own (`verify`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from builder.judge.guards import Comparison, compare
from builder.judge.phases import Phases
from builder.judge.referee import ask_referee
from builder.judge.runner import SandboxDied, SandboxSession
from builder.seeds import Case, Problem

@dataclass(frozen=True)
class CaseResult:
    """One case's outcome."""

    name: str  # case name ("benchmark_<i>" for benchmark-shape trials)
    shape: tuple[int, ...]  # input shape
    ok: bool  # output within tolerance and no guard fired
    reason: str | None  # reason code when not ok
    detail: str  # sentence about a failure
    max_abs_err: float | None  # largest absolute error, when compared
    max_rel_err: float | None  # largest relative error, when compared


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one code's correctness."""

    ok: bool  # every case passed and the session ended clean
    reason: str | None  # reason code of the first failure
    detail: str  # sentence about it
    atol: float  # tolerances used
    rtol: float
    cases: tuple[CaseResult, ...] = field(default_factory=tuple)  # the cases run, in order
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


class _Reject(Exception):
    def __init__(self, reason: str, detail: str, comparison: Comparison | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.comparison = reason, detail, comparison
        self.output: Any = None  # the output of the call that failed, when there was one


def dtype_of(problem: Problem) -> torch.dtype:
    return getattr(torch, problem.dtype)


def draw(case: Case, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A case's input on the CPU, uniform in [low, high), from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.empty(case.shape, dtype=dtype).uniform_(case.low, case.high, generator=generator)


class _Reference:
    """The trusted reference Model, imported into the judge's own process."""

    def __init__(self, problem: Problem) -> None:
        from builder.judge.loader import load_module

        self.module = load_module(problem.reference_path)

    def __call__(self, init: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module.Model(**init)(x.clone())

    def out_shape(self, init: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.module.Model(**init)(torch.empty(shape, device="meta")).shape)


def verify(problem: Problem, code: str, *, device: str, timeout_s: float, cases: list[str] | None = None,
           trials: int = 0, label: str = "candidate") -> VerifyResult:
    """Check code under test on the problem's cases (all, or those named) and, on a GPU, `trials`
    trials at the benchmark shape, in a session of its own. Failures of every kind come back as a
    VerifyResult, never raised."""
    batch = verify_codes(problem, {label: code}, device=device, timeout_s=timeout_s, cases=cases, trials=trials,
                         trusted=False)
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


def verify_codes(problem: Problem, codes: dict[str, str], *, device: str, timeout_s: float,
                 cases: list[str] | None = None, trials: int = 0, trusted: bool = True,
                 warm: Path | None = None) -> VerifyBatch:
    """Check each of `codes` (label -> code) as `verify` does. Trusted codes share sessions and
    the referee's trials (see the module doc); `timeout_s` is per code."""
    if not trusted and len(codes) != 1:
        raise ValueError("code under test is checked alone: pass one code with trusted=False")
    phases = Phases()
    reference = _Reference(problem)
    chosen = [problem.case(n) for n in cases] if cases else list(problem.cases)
    verdicts: dict[str, tuple[str, str] | None] = {}
    records: dict[str, list[CaseResult]] = {label: [] for label in codes}
    trial_refs = None
    if trials and device == "cuda":
        try:
            with phases.span("reference"):
                trial_refs = _referee(problem, trials)
        except SandboxDied as exc:
            return VerifyBatch({label: VerifyResult(False, exc.reason, exc.detail, problem.atol, problem.rtol)
                                for label in codes}, phases.to_dict())
    pending = list(codes.items())
    while pending:
        session = SandboxSession(device, problem.dir, timeout_s=timeout_s * len(pending), phases=phases, warm=warm)
        ran: list[str] = []
        try:
            session.start()
            while pending:
                label, code = pending.pop(0)
                ran.append(label)
                verdicts[label] = _check_one(session, problem, reference, label, code, chosen, trial_refs,
                                             records[label], trusted, phases)
                if verdicts[label] is not None:
                    break  # a failure may have left the session unusable: the rest get a fresh one
        except SandboxDied as exc:
            label = ran[-1] if ran else pending.pop(0)[0]
            verdicts[label] = (exc.reason, exc.detail)
        finally:
            with phases.span("other"):
                session.close()
        if session.strays:
            for label in ran:
                if verdicts.get(label) is None:
                    verdicts[label] = ("sandbox_violation", f"{session.strays} process(es) outlived the sandbox")
    results = {}
    for label in codes:
        reason, detail = verdicts.get(label) or (None, "")
        results[label] = VerifyResult(reason is None, reason, detail, problem.atol, problem.rtol, tuple(records[label]))
    return VerifyBatch(results, phases.to_dict())


def _check_one(session: SandboxSession, problem: Problem, reference: _Reference, label: str, code: str,
               chosen: list[Case], trial_refs: dict[str, Any] | None, results: list[CaseResult], trusted: bool,
               phases: Phases) -> tuple[str, str] | None:
    """One code's checks in a running session: None when it passed, else (reason, detail).
    SandboxDied (the session broke) propagates."""
    try:
        with phases.span("compile"):
            _load(session, code, label, trusted)
        runner = _CaseRunner(problem, session, reference, results, label)
        for index, case in enumerate(chosen):
            with phases.span("compile" if index == 0 else "checks"):
                runner.small(case, twice=index == 0)
        if trial_refs is not None:
            with phases.span("checks"):
                for index, (spec, ref, digest) in enumerate(zip(trial_refs["specs"], trial_refs["refs"],
                                                                trial_refs["hashes"])):
                    runner.trial(index, spec, ref, digest, trial_refs["hash_key"])
    except _Reject as exc:
        return exc.reason, exc.detail
    return None


def _referee(problem: Problem, trials: int) -> dict[str, Any]:
    specs = [{"seed": secrets.randbits(62), "low": problem.low, "high": problem.high} for _ in range(trials)]
    key = secrets.randbits(62)
    payload = ask_referee(problem, key, trials=specs)
    return {"specs": specs, "refs": payload["outputs"], "hash_key": key,
            "hashes": [t["input_hash"] for t in payload["trials"]]}


def _load(session: SandboxSession, code: str, label: str, trusted: bool = False) -> None:
    path = session.write_code(label, code)
    reply = session.request({"op": "load", "label": label, "path": str(path), "trusted": trusted})
    if not reply.get("ok"):
        raise _Reject(reply.get("reason") or "import_error", reply.get("detail", ""))


class _CaseRunner:
    """Runs cases in one session and appends their results."""

    def __init__(self, problem: Problem, session: SandboxSession, reference: _Reference,
                 results: list[CaseResult], label: str = "candidate") -> None:
        self.problem, self.session, self.reference, self.results = problem, session, reference, results
        self.label = label
        self.dtype = dtype_of(problem)
        self.built: dict[str, str] = {}

    def _model(self, init: dict[str, Any]) -> str:
        key = json.dumps(init, sort_keys=True)
        if key not in self.built:
            name = f"{self.label}_m{len(self.built)}"
            reply = self.session.request({"op": "build", "label": self.label, "name": name, "init": init})
            if not reply.get("ok"):
                raise _Reject(reply.get("reason") or "import_error", reply.get("detail", ""))
            self.built[key] = name
        return self.built[key]

    def _record(self, case: Case, name: str, comparison: Comparison | None, reason: str | None = None,
                detail: str = "") -> None:
        reason = reason or (comparison.reason if comparison else None)
        detail = detail or (comparison.detail if comparison else "")
        self.results.append(CaseResult(name, tuple(case.shape), reason is None, reason, detail,
                                       comparison.max_abs_err if comparison else None,
                                       comparison.max_rel_err if comparison else None))
        if reason is not None:
            raise _Reject(reason, f"{name}: {detail}")

    def _forward(self, case: Case, init: dict[str, Any], input_spec: dict[str, Any], payload: Any,
                 expect: tuple[int, ...], return_input: bool, hash_key: int | None) -> tuple[dict[str, Any], Any, Any]:
        """Run one forward; return the reply, the output tensor (or None) and the input bytes."""
        model = self._model(init)
        nbytes = torch.Size(expect).numel() * self.dtype.itemsize
        self.session.send({"op": "forward", "name": model, "input": input_spec, "return_input": return_input,
                           "hash_key": hash_key, "expect": {"shape": list(expect), "dtype": self.problem.dtype}},
                          payload)
        reply, raw = self.session.receive(max_payload=nbytes)
        if reply.get("part") != "output":
            raise _Reject(reply.get("reason") or "crash", reply.get("detail", ""))
        out = None
        if raw is not None:
            shape = tuple(reply["output"]["shape"])
            if raw.numel() != nbytes or shape != expect or reply["output"]["dtype"] != self.problem.dtype:
                raise _Reject("sandbox_violation", "the output bytes do not match the shape the sandbox reported")
            out = raw.view(self.dtype).reshape(shape)
        in_bytes = torch.Size(case.shape).numel() * self.dtype.itemsize if return_input else 0
        tail, data = self.session.receive(max_payload=in_bytes)
        if tail.get("part") not in ("input", "end"):
            raise _Reject(tail.get("reason") or "crash", tail.get("detail", ""))
        return reply, out, data

    def _judge_output(self, reply: dict[str, Any], out: Any, expect: tuple[int, ...]) -> Comparison | None:
        """A reason from the sandbox's own report, or a wrong type/shape: None when the output can be compared."""
        if not reply.get("ok"):
            raise _Reject(reply.get("reason") or "runtime_error", reply.get("detail", ""))
        if out is None:
            info = reply.get("output")
            if info is None:
                raise _Reject("wrong_shape", f"forward returned {reply.get('output_type', 'nothing')}, not a tensor")
            if tuple(info["shape"]) != expect:
                raise _Reject("wrong_shape", f"shape {tuple(info['shape'])}, expected {expect}")
            raise _Reject("wrong_dtype", f"dtype {info['dtype']}, expected {self.problem.dtype}")
        return None

    def small(self, case: Case, twice: bool) -> None:
        """A manifest case: inputs sent as bytes, reference and comparison here. With `twice`, a
        second input follows: an output that repeats the first call's is a cached output (checked
        before the guards' report, since a cache launches nothing)."""
        first, _ = self._small_call(case, case.name, secrets.randbits(62))
        if not twice:
            return
        name = f"{case.name} (second input)"
        try:
            out, ref = self._small_call(case, name, secrets.randbits(62), record=False)
        except _Reject as exc:
            if exc.reason == "no_kernel_launched" and exc.output is not None and torch.equal(exc.output, first):
                raise _Reject("output_cached", f"{name}: the second call returned the first call's result") from None
            raise
        comparison = compare(out, ref, self.problem.atol, self.problem.rtol)
        if comparison.reason and torch.equal(out, first):
            self._record(case, name, comparison, "output_cached", "the second call returned the first call's result")
        self._record(case, name, comparison)

    def _small_call(self, case: Case, name: str, seed: int, record: bool = True) -> tuple[Any, torch.Tensor]:
        x = draw(case, self.dtype, seed)
        expect = self.reference.out_shape(case.init, case.shape)
        spec = {"shape": list(case.shape), "low": case.low, "high": case.high}
        reply, out, back = self._forward(case, case.init, spec, x.view(torch.uint8).reshape(-1), expect,
                                         return_input=True, hash_key=None)
        try:
            self._judge_output(reply, out, expect)
        except _Reject as exc:
            exc.output = out
            raise
        if back is None or not torch.equal(back, x.view(torch.uint8).reshape(-1)):
            raise _Reject("input_mutated", f"{name}: forward changed its input")
        ref = self.reference(case.init, x)
        if record:
            self._record(case, name, compare(out, ref, self.problem.atol, self.problem.rtol))
        return out, ref

    def trial(self, index: int, spec: dict[str, Any], ref: torch.Tensor, input_hash: str, hash_key: int) -> None:
        """A benchmark-shape trial: drawn in the sandbox from a seed sent now; reference from the referee."""
        case = self.problem.benchmark_case
        name = f"benchmark_{index}"
        expect = self.reference.out_shape(case.init, case.shape)
        reply, out, _ = self._forward(case, case.init, {"shape": list(case.shape), **spec}, None, expect,
                                      return_input=False, hash_key=hash_key)
        self._judge_output(reply, out, expect)
        if reply.get("input_hash") != input_hash:
            raise _Reject("input_mutated", f"{name}: forward changed its input")
        self._record(case, name, compare(out, ref.reshape(out.shape), self.problem.atol, self.problem.rtol))

