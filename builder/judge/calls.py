"""One code's checked calls in a sandbox session: what the judge sends, what comes back, and how
the judge holds it against its own reference.

Every call's inputs come from the judge's secret randomness: small inputs are drawn here, on the
CPU, and sent as bytes; benchmark-size inputs are drawn inside the sandbox from seeds sent with
the call. The judge computes the reference of a small call itself (builder.judge.reference),
from a reference model built the same way as ModelNew and called in the same order, mode and
autograd setting. What comes back is bytes: every output of the expected shape and dtype, the
buffers of the reference's that ModelNew holds (compared after the call: BatchNorm's running
statistics), and the inputs as the call left them.
"""

from __future__ import annotations

import dataclasses

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from builder.judge import params
from builder.judge.compare import Comparison, compare
from builder.judge.inputs import as_bytes, draw, payload_of
from builder.judge.plan import BUILT, STANDARD, Conditions, describe_call
from builder.judge.reference import Build, build, call, new_arguments
from builder.judge.runner import SandboxSession
from builder.manifest import Case
from builder.seeds import Problem

#: Tolerance of half-precision outputs (KernelBench's for fp16 and bf16), when the manifest's is tighter.
HALF_TOL = 1e-2
HALF_DTYPES = (torch.float16, torch.bfloat16)


class Reject(Exception):
    """A check failed: `reason` is a code of builder.judge.reasons."""

    def __init__(self, reason: str, detail: str, output: list[Any] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
        self.output = output  # the outputs of the call that failed, when there were any


class OverBudget(Exception):
    """A call ran past the seconds the judge gave it (on the CPU, builder.judge.interpreter.Deadline):
    neither a pass nor a failure, the check was not finished."""


@dataclass(frozen=True)
class CaseResult:
    """One checked call's outcome."""

    name: str  # case name ("benchmark_<i>" for benchmark-shape trials, "space_<i>" for drawn checks)
    shape: tuple[int, ...]  # the first input's shape
    ok: bool  # every output within tolerance and no guard fired
    reason: str | None  # reason code when not ok
    detail: str  # sentence about a failure
    max_abs_err: float | None  # largest absolute error over the outputs, when compared
    max_rel_err: float | None  # largest relative error over the outputs, when compared
    seconds: float | None = None  # the call's wall time in the judge: drawing, reference, the sandbox's work, comparing


class Reference:
    """The trusted reference Model in the judge's process, one model per build, each called in
    the order its ModelNew is."""

    def __init__(self, problem: Problem) -> None:
        from builder.judge.loader import load_module

        self.module = load_module(problem.reference_path)
        self._built: dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]] = {}

    def model(self, spec: Build) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        """The reference model of `spec` and the values of its learned tensors (built once)."""
        key = json.dumps(spec.to_spec(), sort_keys=True)
        if key not in self._built:
            self._built[key] = build(self.module, spec)
        return self._built[key]

    def outputs(self, case: Case, conditions: Conditions, tensors: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The reference's outputs on `tensors` for `case`'s init, or None when it raises there (a
        throwaway model: the kept ones keep their state)."""
        try:
            model, _ = build(self.module, Build(case.init, 0, 0))
            return call(model, tensors, mode=conditions.mode)[0]
        except Exception:
            return None

    def accepts(self, case: Case, conditions: Conditions, rng: random.Random) -> bool:
        """Whether the reference runs on `case`."""
        return self.outputs(case, conditions, [draw(i.to_spec(), rng.getrandbits(62)) for i in case.inputs]) is not None


def buffer_names(values: dict[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    """The reference's floating buffers (a forward may update them: BatchNorm's running statistics)."""
    own = dict(torch.nn.Module.named_parameters(model))
    return [name for name in values if name not in own]


@dataclass(frozen=True)
class Checked:
    """What one call gave back, and its comparisons with the reference."""

    outs: list[torch.Tensor]  # the outputs as the sandbox sent them
    refs: list[torch.Tensor]  # the reference's outputs
    comparisons: list[tuple[str, Comparison]] = field(default_factory=list)  # (what, comparison), outputs then buffers
    inputs: list[torch.Tensor] = field(default_factory=list)  # what the call was given

    def failure(self) -> tuple[str, Comparison] | None:
        return next(((what, c) for what, c in self.comparisons if c.reason), None)

    def errors(self) -> tuple[float | None, float | None]:
        abs_errs = [c.max_abs_err for _, c in self.comparisons if c.max_abs_err is not None]
        rel_errs = [c.max_rel_err for _, c in self.comparisons if c.max_rel_err is not None]
        return max(abs_errs, default=None), max(rel_errs, default=None)


def _meta(tensors: list[torch.Tensor]) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in tensors]


def _nbytes(meta: dict[str, Any]) -> int:
    return torch.Size(meta["shape"]).numel() * getattr(torch, meta["dtype"]).itemsize


def _tolerance(problem: Problem, ref: torch.Tensor) -> tuple[float, float]:
    if ref.dtype in HALF_DTYPES:
        return max(problem.atol, HALF_TOL), max(problem.rtol, HALF_TOL)
    return problem.atol, problem.rtol


#: The names of a fixed case's second and third calls.
AGAIN = {"second": "second input", "third": "third input, the second one's tensors with their values reversed"}


class Caller:
    """Runs one code's checked calls in a session and appends their results."""

    def __init__(self, problem: Problem, session: SandboxSession, reference: Reference, results: list[CaseResult],
                 label: str, rng: random.Random) -> None:
        self.problem, self.session, self.reference, self.results = problem, session, reference, results
        self.label, self.rng = label, rng
        self.models: dict[str, tuple[str, Build]] = {}  # init (as JSON) -> (model name, build)
        self.count = 0
        self.began = time.monotonic()  # when the call under way began

    # -- models ---------------------------------------------------------------------------

    def build(self, spec: Build, style: str = "positional") -> str:
        """Build ModelNew as `spec` says in the sandbox, its arguments passed in `style`
        (builder.judge.reference.STYLES), with the reference's learned tensors."""
        _, values = self.reference.model(spec)
        name = f"{self.label}_m{self.count}"
        self.count += 1
        payload = payload_of(list(values.values())) if values else None
        reply = self.session.request({"op": "build", "label": self.label, "name": name, "seed": spec.seed,
                                      **new_arguments(self.reference.module.Model, spec.init, style),
                                      "state": params.specs(values)}, payload)
        if not reply.get("ok"):
            raise Reject(reply.get("reason") or "import_error", reply.get("detail", ""))
        return name

    def model(self, init: dict[str, Any], style: str) -> tuple[str, Build]:
        """The model of `init` built in `style` (on first use, from secret seeds)."""
        key = json.dumps([init, style], sort_keys=True)
        if key not in self.models:
            spec = Build(init, self.rng.getrandbits(62), self.rng.getrandbits(62))
            self.models[key] = (self.build(spec, style), spec)
        return self.models[key]

    # -- one call -------------------------------------------------------------------------

    def exchange(self, header: dict[str, Any], payload: Any, expect: list[dict[str, Any]],
                 buffers: dict[str, dict[str, Any]], input_bytes: int
                 ) -> tuple[dict[str, Any], list[Any], dict[str, Any], Any]:
        """Send one forward; read back the reply, the outputs (None where none was sent), the
        buffers and the inputs' bytes, each within the size the judge expects."""
        self.session.send({**header, "expect": expect, "buffers": list(buffers),
                           "buffer_dtypes": {k: v["dtype"] for k, v in buffers.items()}}, payload)
        reply, _ = self.session.receive()
        if reply.get("part") != "output":
            raise Reject(reply.get("reason") or "crash", reply.get("detail", ""))
        sent = reply.get("sent")
        if not isinstance(sent, list) or len(sent) != len(expect):
            raise Reject("sandbox_violation", "the sandbox's reply does not list the outputs asked for")
        outs: list[Any] = []
        for meta, flag in zip(expect, sent):
            outs.append(self._data(meta) if flag else None)
        got: dict[str, Any] = {}
        for name in reply.get("buffers") or []:
            if name not in buffers or name in got:
                raise Reject("sandbox_violation", "the sandbox sent a buffer the judge did not ask for")
            got[name] = self._data(buffers[name], part="buffer")
        tail, data = self.session.receive(max_payload=input_bytes)
        if tail.get("part") not in ("input", "end"):
            raise Reject(tail.get("reason") or "crash", tail.get("detail", ""))
        return reply, outs, got, data

    def _data(self, meta: dict[str, Any], part: str = "data") -> torch.Tensor:
        size = _nbytes(meta)
        head, raw = self.session.receive(max_payload=size)
        if head.get("part") != part or raw is None or raw.numel() != size:
            raise Reject(head.get("reason") or "sandbox_violation",
                         head.get("detail") or "the sandbox sent other bytes than the output it reported")
        return raw.view(getattr(torch, meta["dtype"])).reshape(meta["shape"])

    def judge_outputs(self, reply: dict[str, Any], outs: list[Any], expect: list[dict[str, Any]], sequence: bool) -> None:
        """A reason from the sandbox's own report, or outputs of the wrong kind, number, shape or
        dtype; returns when every output can be compared."""
        if not reply.get("ok"):
            raise Reject(reply.get("reason") or "runtime_error", reply.get("detail", ""), outs)
        infos = reply.get("outputs")
        if infos is None:
            raise Reject("wrong_shape", f"forward returned {reply.get('output_type', 'nothing')}, not a tensor")
        wanted = f"a tuple of {len(expect)} tensors" if sequence else "a tensor"
        if bool(reply.get("sequence")) != sequence or len(infos) != len(expect):
            got = f"a sequence of {len(infos)}" if reply.get("sequence") else "a tensor"
            raise Reject("wrong_shape", f"forward returned {got}, expected {wanted}")
        for index, (info, out, meta) in enumerate(zip(infos, outs, expect)):
            if out is not None:
                continue
            which = f"output {index}: " if sequence else ""
            if "type" in info:
                raise Reject("wrong_shape", f"{which}a {info['type']}, not a tensor")
            if list(info["shape"]) != list(meta["shape"]):
                raise Reject("wrong_shape", f"{which}shape {tuple(info['shape'])}, expected {tuple(meta['shape'])}")
            raise Reject("wrong_dtype", f"{which}dtype {info['dtype']}, expected {meta['dtype']}")

    def run(self, case: Case, conditions: Conditions = STANDARD, *, name: str = "", keep: str | None = None,
            tensors: list[torch.Tensor] | None = None, inputs: str | None = None,
            budget_s: float | None = None) -> Checked:
        """One small call: inputs drawn here (or `tensors`) and sent as bytes, the reference computed
        here, every output and buffer compared; raises Reject (its detail led by `name` and, off the
        standard conditions, the call's inputs and conditions) for anything but values off the
        reference. `inputs` "keep" keeps the sandbox's input tensors for the next call, which
        "refill" gives them, the new values copied in place. With `budget_s`, a call the sandbox
        ends past that many seconds raises OverBudget (a report of it before they ran out is a
        violation)."""
        try:
            return self._run(case, conditions, keep, tensors, inputs, budget_s)
        except Reject as exc:
            raise Reject(exc.reason, f"{_called(name or case.name, case, conditions)}: {exc.detail}", exc.output) from None

    def _run(self, case: Case, conditions: Conditions, keep: str | None, tensors: list[torch.Tensor] | None,
             inputs: str | None, budget_s: float | None) -> Checked:
        self.began = time.monotonic()
        name, spec = self.model(case.init, conditions.build)
        ref_model, values = self.reference.model(spec)
        if tensors is None:
            tensors = [draw(i.to_spec(), self.rng.getrandbits(62)) for i in case.inputs]
        refs, sequence = call(ref_model, tensors, mode=conditions.mode)
        buffers = {n: {"shape": list(values[n].shape), "dtype": str(values[n].dtype).removeprefix("torch.")}
                   for n in buffer_names(values, ref_model)}
        sent = payload_of(tensors)
        header = {"op": "forward", "name": name, "inputs": [i.to_spec() for i in case.inputs],
                  "layout": conditions.layout, "mode": conditions.mode, "grad": conditions.grad,
                  "poison": [conditions.poison, self.rng.getrandbits(62)], "return_inputs": True, "keep": keep,
                  "keep_inputs": inputs == "keep", "refill": inputs == "refill", "budget_s": budget_s}
        expect = _meta(refs)
        began = time.monotonic()
        reply, outs, got, back = self.exchange(header, sent, expect, buffers, sent.numel())
        if reply.get("reason") == "over_budget":
            if budget_s is None or time.monotonic() - began < budget_s:
                raise Reject("sandbox_violation", "the sandbox ended a call for a time budget it had not spent")
            raise OverBudget(f"{case.name} ran past {budget_s:g} s")
        self.judge_outputs(reply, outs, expect, sequence)
        if back is None or not torch.equal(back, sent):
            raise Reject("input_mutated", "forward changed its input", outs)
        checked = dataclasses.replace(self.compared(outs, refs, sequence, conditions.poison), inputs=tensors)
        ref_tensors = params.learned(ref_model)
        for buffer in buffers:
            if buffer not in got:
                raise Reject("missing_parameter", f"ModelNew holds no buffer for the reference's '{buffer}'")
            ref = ref_tensors[buffer].detach()
            checked.comparisons.append((f"buffer '{buffer}' after the call",
                                        compare(got[buffer], ref, *_tolerance(self.problem, ref))))
        return checked

    def compared(self, outs: list[torch.Tensor], refs: list[torch.Tensor], sequence: bool, poison: str,
                 scales: list[float] | None = None) -> Checked:
        """Every output held against its reference (a half-precision one with KernelBench's tolerance);
        `scales`, when known, are the references' max|ref|."""
        checked = Checked(outs, refs)
        for index, (out, ref) in enumerate(zip(outs, refs)):
            what = f"output {index}" if sequence else ""
            comparison = compare(out, ref, *_tolerance(self.problem, ref), guard_reads=poison != "bits",
                                 scale=scales[index] if scales else None)
            checked.comparisons.append((what, comparison))
        return checked

    def record(self, case: Case, name: str, checked: Checked | None, reason: str | None = None, detail: str = "",
               conditions: Conditions = STANDARD) -> None:
        """Append the call's result; raise Reject when it failed."""
        failure = checked.failure() if checked else None
        if reason is None and failure is not None:
            what, comparison = failure
            reason, detail = comparison.reason, f"{what}: {comparison.detail}" if what else comparison.detail
        max_abs, max_rel = checked.errors() if checked else (None, None)
        self.results.append(CaseResult(name, tuple(case.shape), reason is None, reason, detail, max_abs, max_rel,
                                       round(time.monotonic() - self.began, 3)))
        if reason is not None:
            raise Reject(reason, f"{_called(name, case, conditions)}: {detail}")

    # -- what verify runs -------------------------------------------------------------------

    def fixed(self, case: Case, twice: bool, conditions: Conditions = STANDARD) -> None:
        """A manifest case in `conditions` (the standard ones, ModelNew built in some style). With
        `twice`, a second and a third input follow while the first call's outputs are still
        alive: an output that repeats an earlier call's is a cached output (checked before the
        guards' report, since a cache launches nothing), and a first output that a later call
        overwrote is a reused buffer."""
        first = self.run(case, conditions, keep="first" if twice else None)
        self.record(case, case.name, first, conditions=conditions)
        if not twice:
            return
        second = self.again(case, conditions, "second", [first], inputs="keep")
        # The third call gets the second call's input tensors, their values reversed along the
        # last dim in place: the same objects and addresses, the same multiset of values, another
        # result. An output kept from an earlier call (a cache from the third call on, keyed on
        # the input's identity or address, or on a digest that ignores order) is off the
        # reference, and a buffer handed out every other call overwrites the first output.
        reversed_ = [t.flip(-1) if t.dim() else t for t in second.inputs]
        self.again(case, conditions, "third", [first, second], tensors=reversed_, inputs="refill")

    def again(self, case: Case, conditions: Conditions, which: str, earlier: list[Checked], **run: Any) -> Checked:
        """The `which` ("second" or "third") call of a case while the first call's outputs are kept."""
        name = f"{case.name} ({AGAIN[which]})"
        cached = f"the {which} call returned an earlier call's result"
        try:
            checked = self.run(case, conditions, name=name, **run)
        except Reject as exc:
            if exc.reason == "no_kernel_launched" and any(_same(exc.output, e.outs) for e in earlier):
                raise Reject("output_cached", f"{name}: {cached}") from None
            raise
        if checked.failure() and any(_same(checked.outs, e.outs) for e in earlier):
            self.record(case, name, checked, "output_cached", cached, conditions)
        self.record(case, name, checked, conditions=conditions)
        if not _same(self.held("first", earlier[0].refs), earlier[0].outs):
            why = "one buffer handed out on every call" if which == "second" else "buffers handed out in turn"
            raise Reject("output_reused", f"{name}: the {which} call overwrote the output the first call returned ({why})")
        return checked

    def held(self, key: str, refs: list[torch.Tensor]) -> list[Any]:
        """The outputs a call kept alive under `key`, as they are now."""
        expect = _meta(refs)
        self.session.send({"op": "held", "key": key, "expect": expect})
        reply, _ = self.session.receive()
        sent = reply.get("sent")
        if not reply.get("ok") or not isinstance(sent, list) or len(sent) != len(expect):
            raise Reject(reply.get("reason") or "sandbox_violation", reply.get("detail", "no outputs were kept"))
        return [self._data(meta) if flag else None for meta, flag in zip(expect, sent)]

    def drawn(self, case: Case, conditions: Conditions, budget_s: float | None = None) -> None:
        """A check drawn from the input space, in its own conditions (OverBudget past `budget_s`)."""
        self.record(case, case.name, self.run(case, conditions, budget_s=budget_s), conditions=conditions)

    def trial(self, index: int, model: str, spec: dict[str, Any], refs: list[torch.Tensor], sequence: bool,
              hashes: list[str], hash_key: int, poison: str, scales: list[float]) -> None:
        """A benchmark-size trial: drawn in the sandbox from the seeds in `spec`, references, their
        max|ref| and input hashes from the referee."""
        self.began = time.monotonic()
        case = self.problem.benchmark_case
        name = f"benchmark_{index}"
        expect = _meta(refs)
        header = {"op": "forward", "name": model, "inputs": spec["inputs"], "layout": spec["layout"],
                  "mode": spec["mode"], "grad": spec["grad"], "poison": [poison, self.rng.getrandbits(62)],
                  "return_inputs": False, "hash_key": hash_key}
        reply, outs, _, _ = self.exchange(header, None, expect, {}, 0)
        try:
            self.judge_outputs(reply, outs, expect, sequence)
        except Reject as exc:
            raise Reject(exc.reason, f"{name}: {exc.detail}") from None
        if reply.get("input_hashes") != hashes:
            raise Reject("input_mutated", f"{name}: forward changed its input")
        self.record(case, name, self.compared(outs, refs, sequence, poison, scales))


def _called(name: str, case: Case, conditions: Conditions) -> str:
    """A call's name, with its inputs and conditions when it is a drawn one or off the standard
    conditions, or how ModelNew was built when only that differs."""
    if name.startswith("space_") or dataclasses.replace(conditions, build=STANDARD.build) != STANDARD:
        return f"{name} ({describe_call(case, conditions)})"
    return name if conditions == STANDARD else f"{name} (ModelNew built {BUILT[conditions.build]})"


def _same(outs: list[Any] | None, first: list[Any]) -> bool:
    """Whether `outs` are the same tensors, bit for bit, as `first`."""
    return (outs is not None and len(outs) == len(first)
            and all(o is not None and f is not None and o.shape == f.shape and o.dtype == f.dtype
                    and torch.equal(as_bytes(o), as_bytes(f)) for o, f in zip(outs, first)))
