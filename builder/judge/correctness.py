"""The `verify` job: run a candidate's ModelNew against the reference Model, under the guards.

Runs only inside a judge child (builder.judge.child). Each case draws a seeded uniform input,
runs the reference on a clone of it and the candidate on the guarded original, then checks what
forward did (ops, launches, streams, input, guard bands) and what it returned. The first case
also gets a second input, to catch outputs cached across calls. Benchmark trials use the full
benchmark shape and keep one input alive: the reference reads it in place (it is trusted code)
and a fingerprint, not a clone, shows whether the candidate changed it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from builder.judge.anticheat import Finding
from builder.judge.child import is_device_failure
from builder.judge.guards import CallRecord, Comparison, GuardedInput, Guards, compare
from builder.judge.loader import load_code, load_module
from builder.seeds import Case, Problem, load_problem

#: Seed offset of the second input given to the first case.
SECOND_INPUT = 7919
#: Seed offset of the benchmark-shape trials.
TRIAL_SEED = 1000


class Rejected(Exception):
    """A case failed for `reason`; raised inside this module only."""

    def __init__(self, reason: str, detail: str, comparison: Comparison | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.comparison = comparison


def verify_job(params: dict[str, Any]) -> dict[str, Any]:
    """Check params["code"] on the problem's cases (and benchmark trials); see the module doc."""
    problem = load_problem(Path(params["problem_dir"]))
    device = params.get("device", "cpu")
    guards = Guards(cuda=device == "cuda")
    guards.install()
    reference = load_module(problem.reference_path)
    summary = {"atol": problem.atol, "rtol": problem.rtol, "cases": []}
    try:
        with guards.allocations():
            candidate = load_code(params["code"], Path(params.get("workdir") or "."))
    except Exception:
        return {**summary, "ok": False, "reason": "import_error", "detail": traceback.format_exc(limit=4)}
    tampered = guards.tampering()
    if tampered:
        return {**summary, "ok": False, "reason": tampered.reason, "detail": tampered.detail}
    if not isinstance(getattr(candidate, "ModelNew", None), type):
        return {**summary, "ok": False, "reason": "no_model_new", "detail": "the module has no class ModelNew"}
    checker = _Checker(problem, reference, candidate, guards, device, int(params.get("seed", 0)))
    names = params.get("cases")
    cases = [problem.case(n) for n in names] if names else list(problem.cases)
    runs = [(case, True) for case in cases]
    trials = int(params.get("benchmark_trials", 0))
    runs += [(Case(f"benchmark_{i}", problem.init, problem.shape, problem.low, problem.high), False)
             for i in range(trials)]
    for index, (case, small) in enumerate(runs):
        result = checker.run(case, index, small=small, twice=index == 0 and small)
        summary["cases"].append(result)
        if not result["ok"]:
            return {**summary, "ok": False, "reason": result["reason"], "detail": f"{case.name}: {result['detail']}"}
    return {**summary, "ok": True, "reason": None, "detail": ""}


class _Checker:
    """Runs cases of one problem against one candidate module."""

    def __init__(self, problem: Problem, reference: ModuleType, candidate: ModuleType,
                 guards: Guards, device: str, seed: int) -> None:
        self.problem = problem
        self.reference = reference
        self.candidate = candidate
        self.guards = guards
        self.device = device
        self.seed = seed
        self.dtype = getattr(torch, problem.dtype)

    def run(self, case: Case, index: int, *, small: bool, twice: bool) -> dict[str, Any]:
        """One case as a record: name, ok, reason, detail, errors and shape."""
        record: dict[str, Any] = {"name": case.name, "shape": list(case.shape), "ok": True,
                                  "reason": None, "detail": "", "max_abs_err": None, "max_rel_err": None}
        try:
            comparison = self._case(case, self.seed + (index if small else TRIAL_SEED + index), small, twice)
        except Rejected as exc:
            record.update(ok=False, reason=exc.reason, detail=exc.detail)
            comparison = exc.comparison
        except Exception as exc:
            if not is_device_failure(exc):
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0]
            record.update(ok=False, reason="crash", detail=f"{type(exc).__name__}: {first_line}")
            comparison = None
        if comparison is not None:
            record.update(max_abs_err=comparison.max_abs_err, max_rel_err=comparison.max_rel_err)
        return record

    def _case(self, case: Case, seed: int, small: bool, twice: bool) -> Comparison:
        with torch.no_grad():
            model = self._construct(case)
            first = GuardedInput(case.shape, self.dtype, self.device, seed, case.low, case.high)
            before: Any = first.x.clone() if small else first.fingerprint()
            ref = self._reference(case, first.x.clone() if small else first.x)
            out = self._forward(model, first, before, small)
            comparison = self._compare(out, ref)
            if twice:
                self._second_call(case, model, out, ref, seed + SECOND_INPUT)
        return comparison

    def _construct(self, case: Case) -> torch.nn.Module:
        try:
            with self.guards.allocations():
                return self.candidate.ModelNew(**case.init).to(self.device)
        except Exception:
            raise Rejected("import_error", traceback.format_exc(limit=4)) from None

    def _reference(self, case: Case, x: torch.Tensor) -> torch.Tensor:
        return self.reference.Model(**case.init).to(self.device)(x)

    def _forward(self, model: torch.nn.Module, guarded: GuardedInput, before: Any, small: bool) -> Any:
        outcome = self._call(model, guarded.x)
        _judge_record(outcome, self.guards.tampering())
        changed = not torch.equal(guarded.x, before) if small else guarded.fingerprint() != before
        if changed:
            raise Rejected("input_mutated", "forward changed its input")
        if not guarded.bands_intact():
            raise Rejected("out_of_bounds", "forward wrote outside its input")
        return outcome.output

    def _call(self, model: torch.nn.Module, x: torch.Tensor) -> _Outcome:
        with self.guards.watch() as record:
            try:
                output = model(x)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                if is_device_failure(exc):
                    raise
                raise Rejected("runtime_error", _last_lines(traceback.format_exc())) from None
        return _Outcome(record, output)

    def _compare(self, out: Any, ref: torch.Tensor) -> Comparison:
        comparison = compare(out, ref, self.problem.atol, self.problem.rtol)
        if comparison.reason:
            raise Rejected(comparison.reason, comparison.detail, comparison)
        return comparison

    def _second_call(self, case: Case, model: torch.nn.Module, first_out: torch.Tensor,
                     first_ref: torch.Tensor, seed: int) -> None:
        """Call forward on a new input: a result tied to the first call is a cached output."""
        kept = first_out.clone()
        guarded = GuardedInput(case.shape, self.dtype, self.device, seed, case.low, case.high)
        before = guarded.x.clone()
        ref = self._reference(case, guarded.x.clone())
        outcome = self._call(model, guarded.x)
        out = outcome.output
        if isinstance(out, torch.Tensor):
            shared = out.untyped_storage().data_ptr() == first_out.untyped_storage().data_ptr()
            stale = compare(out, ref, self.problem.atol, self.problem.rtol).reason is not None
            if shared or (stale and torch.equal(out, kept)) or (
                    stale and compare(out, first_ref, self.problem.atol, self.problem.rtol).reason is None):
                raise Rejected("output_cached", "the second call returned the first call's result")
        _judge_record(outcome, self.guards.tampering())
        if not torch.equal(guarded.x, before):
            raise Rejected("input_mutated", "forward changed its input")
        if not guarded.bands_intact():
            raise Rejected("out_of_bounds", "forward wrote outside its input")
        self._compare(out, ref)


@dataclass(frozen=True)
class _Outcome:
    """A forward's result with the record of what it did."""

    record: CallRecord
    output: Any


def _judge_record(outcome: _Outcome, tampered: Finding | None) -> None:
    """Raise for tampering, computing torch ops, no launch or a side stream, in that order."""
    if tampered:
        raise Rejected(tampered.reason, tampered.detail)
    record = outcome.record
    computing = record.computing_ops()
    if computing:
        raise Rejected("torch_op", f"forward called aten ops {', '.join(computing[:5])}")
    if record.launches == 0:
        raise Rejected("no_kernel_launched", "forward launched no Triton kernel")
    if record.side_stream:
        raise Rejected("side_stream", "a kernel ran on a non-default stream")


def _last_lines(text: str, count: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
