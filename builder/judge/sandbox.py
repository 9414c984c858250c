"""The sandbox process: the only process that imports code under test.

The judge starts it as `python -m builder.judge.sandbox`, always with the same argv and the same
environment, as an unprivileged user where the judge runs as root (builder.judge.runner). It
reads commands on stdin and answers on stdout in the framed messages of builder.judge.channel;
whatever the code under test prints goes to stderr, the judge's log. It decides no verdict: it
reports raw outputs, input bytes or hashes and what its guards saw, and the judge, outside this
process, computes the reference and decides.

Commands (`op`): hello, load, build, forward, held, profile, time, kept, bye. Each gets one
reply; `forward`, `held` and `kept` follow theirs with one message per output tensor (and per
buffer asked for, and the inputs' bytes when asked).
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from builder.judge import channel


class Sandbox:
    """The state of one sandbox session: the problem, the guards, loaded code and models."""

    def __init__(self, end: channel.Channel) -> None:
        self.end = end
        self.modules: dict[str, Any] = {}
        self.models: dict[str, Any] = {}
        self.targets: dict[str, dict[str, str]] = {}  # model -> reference tensor name -> its own tensor's name
        self.held: dict[str, list[Any]] = {}  # outputs a forward was asked to keep alive, by key
        self.kept_inputs: Any = None  # the last call's inputs, when it asked to keep them for a refill
        self.baselines: dict[str, Any] = {}  # eager and compiled reference, built once per session
        self.bench: Any = None  # the timing input, alive for the whole session
        self.perturbed = 0  # perturbations applied to the timing input so far
        self.kept: dict[int, Any] = {}  # run -> (outputs, perturbations) the last `time` batch kept
        self.slots: list[list[Any]] = []  # host buffers the checked runs' outputs are copied into
        self.untrusted = False  # True once code under test was loaded: the guards' state is then fixed
        self.compiler: Any = None  # on the CPU: compiles each kernel specialisation launched for a GPU
        self.lifted: dict[tuple[Any, ...], list[str]] = {}  # (model, mode, shapes) -> tensors made from Python

    def serve(self) -> None:
        while True:
            try:
                header, payload = self.end.receive(max_payload=1 << 40)
            except channel.ProtocolError:
                return
            op = header.get("op")
            if op == "bye":
                self.end.send({"ok": True})
                return
            handler = getattr(self, f"do_{op}", None)
            if handler is None:
                self.end.send({"ok": False, "reason": "runtime_error", "detail": f"unknown op {op!r}"})
                continue
            try:
                result = handler(header, payload)
            except Exception as exc:  # reported to the judge, which decides
                crashed = self._device_failed(exc)
                self.end.send({"ok": False, "reason": "crash" if crashed else "runtime_error",
                               "detail": _last_lines(traceback.format_exc())})
                if crashed:
                    return
                continue
            if result is not None:  # a handler that streams sends its messages itself
                self.end.send(*result)

    # -- commands -------------------------------------------------------------------------

    def do_hello(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Set the device up, load the problem and install the guards."""
        self.device = header["device"]
        set_up_device(self.device)  # done already, unless this sandbox was started with LATE_CONTEXT
        from builder.judge.child import apply_memory_cap, prepare_cpu

        if self.device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
            prepare_cpu()
        import torch

        cap = apply_memory_cap() if self.device == "cuda" else None

        from builder.judge.guards import Guards
        from builder.judge.timing import Clock
        from builder.seeds import load_problem

        self.torch = torch
        self.problem = load_problem(Path(header["problem_dir"]))
        self.guards = Guards(cuda=self.device == "cuda")
        if self.device == "cpu":
            self._faithful_cpu(int(header.get("seed") or 0))
        self.guards.install()
        import builder.judge.params as params
        import builder.judge.reference as reference
        import builder.judge.timing as timing

        for name, space in {"builder.judge.sandbox": sys.modules[__name__], "Sandbox": Sandbox,
                            "builder.judge.channel": channel, "builder.judge.timing": timing, "Clock": Clock,
                            "builder.judge.params": params, "builder.judge.reference": reference}.items():
            self.guards.protect(name, space)  # the code that reports outputs and times is the sandbox's own
        self.clock = Clock(self.device)
        return {"ok": True, "pid": os.getpid(), "memory_fraction": cap}, None

    def do_load(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Import one code file as module `label`. Unless the header marks it `trusted` (project
        code, loaded before any code under test), what torch looks like stops being renewed."""
        from builder.judge.loader import load_module

        label = header["label"]
        if not header.get("trusted"):
            self.untrusted = True
        try:
            with self.guards.allocations():
                module = load_module(Path(header["path"]), name=f"kp_{label}")
        except BaseException as exc:  # SystemExit and KeyboardInterrupt raised by the code count too
            return self._import_failed(exc), None
        tampered = self.guards.tampering()
        if tampered:
            return {"ok": False, "reason": tampered.reason, "detail": tampered.detail}, None
        if not isinstance(getattr(module, "ModelNew", None), type):
            return {"ok": False, "reason": "no_model_new", "detail": "the module has no class ModelNew"}, None
        self.modules[label] = module
        return {"ok": True}, None

    def do_build(self, header: dict[str, Any], payload: Any) -> tuple[dict[str, Any], None]:
        """Construct ModelNew(*args, **init) of a loaded module as model `name` (the `fallback`'s
        args and init when its signature cannot take those), with torch seeded by `seed` first (as
        the reference was), and copy the reference's learned tensors (`state`: name, shape, dtype
        of each; their bytes in the payload) into it (builder.judge.params)."""
        import inspect

        from builder.judge.params import place
        from builder.judge.reference import construct

        try:
            with self.guards.allocations():
                cls = self.modules[header["label"]].ModelNew
                args, init = list(header.get("args") or ()), dict(header["init"])
                if header.get("fallback"):
                    try:
                        inspect.signature(cls).bind(*args, **init)
                    except TypeError:
                        args, init = list(header["fallback"]["args"]), dict(header["fallback"]["init"])
                model = construct(cls, init, int(header.get("seed", 0)), args).to(self.device)
        except BaseException:
            return {"ok": False, "reason": "import_error", "detail": _last_lines(traceback.format_exc())}, None
        tampered = self.guards.tampering()
        if tampered:
            return {"ok": False, "reason": tampered.reason, "detail": tampered.detail}, None
        try:
            with self.guards.allocations():
                mapping, problem = place(model, header.get("state") or [], payload)
        except BaseException:
            return {"ok": False, "reason": "import_error", "detail": _last_lines(traceback.format_exc())}, None
        if problem:
            return {"ok": False, "reason": "missing_parameter", "detail": problem}, None
        tampered = self.guards.tampering()
        if tampered:
            return {"ok": False, "reason": tampered.reason, "detail": tampered.detail}, None
        self.models[header["name"]] = model
        self.targets[header["name"]] = mapping
        self._trust_if_unexposed()
        return {"ok": True, "targets": mapping}, None

    def do_forward(self, header: dict[str, Any], payload: Any) -> None:
        """One guarded forward on given (bytes) or seeded inputs laid out as `layout` says, in
        `mode` with autograd on or off (`grad`), fresh allocations filled as `poison` says. Replies
        with what the call did, then the bytes of each output that has the `expect`ed shape and
        dtype, of each buffer asked for, and of the inputs when `return_inputs`. With `keep`, the
        outputs stay alive under that key for `held`; with `budget_s`, the call is ended once its
        programs run past that many seconds (in the CPU interpreter)."""
        from builder.judge.inputs import flat_bytes
        from builder.judge.interpreter import Deadline
        from builder.judge.poison import Poison

        name = header["name"]
        placed = self._inputs(header, payload)
        kind, seed = header.get("poison") or ("sentinel", 0)
        budget = header.get("budget_s")
        Deadline.start(float(budget) if budget is not None else None)
        try:
            reply, outs = self._call(self.models[name], placed, header.get("mode", "train"),
                                     bool(header.get("grad")), Poison(kind, int(seed)))
        finally:
            Deadline.start(None)
        if header.get("hash_key") is not None:
            reply["input_hashes"] = placed.fingerprints(int(header["hash_key"]))
        sent = _sendable(outs, header.get("expect") or [])
        mapping = self.targets.get(name, {})
        tensors = {**dict(self.torch.nn.Module.named_parameters(self.models[name])),
                   **dict(self.torch.nn.Module.named_buffers(self.models[name]))} if header.get("buffers") else {}
        plain = (self.torch.Tensor, self.torch.nn.Parameter)
        buffers = [ref for ref in header.get("buffers") or ()
                   if ref in mapping and type(tensors.get(mapping[ref])) in plain and not vars(tensors[mapping[ref]])]
        self.end.send({"part": "output", **reply, "sent": sent, "buffers": buffers})
        for out, flag in zip(outs or (), sent):
            if flag:
                self.end.send({"part": "data"}, flat_bytes(out))
        for ref in buffers:
            dtype = getattr(self.torch, header["buffer_dtypes"][ref])
            self.end.send({"part": "buffer", "name": ref}, flat_bytes(tensors[mapping[ref]].to(dtype)))
        if header.get("keep") is not None and outs is not None:
            self.held[str(header["keep"])] = outs
        del outs
        if header.get("return_inputs"):
            self.end.send({"part": "input"}, placed.contents())
        else:
            self.end.send({"part": "end"})

    def do_held(self, header: dict[str, Any], _: Any) -> None:
        """Send again the outputs a forward kept under `key` (they stay kept): an answer that hands
        every call the same buffer has overwritten them since."""
        from builder.judge.inputs import flat_bytes

        outs = self.held.get(str(header["key"])) or []
        sent = _sendable(outs, header.get("expect") or [])
        self.end.send({"ok": True, "sent": sent})
        for out, flag in zip(outs, sent):
            if flag:
                self.end.send({"part": "data"}, flat_bytes(out))

    def do_profile(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Warm up, then one forward inside the NVTX range that ncu collects (its fresh
        allocations are not poisoned: ncu would profile the fill as one of the answer's kernels).
        With `marker`, the marker kernel runs first inside the range: several codes profiled in
        one process are told apart by it."""
        torch = self.torch
        from builder.judge.ncu import NVTX_RANGE, marker_kernel

        placed = self._inputs(header, None)
        model = self.models[header["name"]]
        torch.nn.Module.train(model, True)
        marker = None
        if header.get("marker"):
            marker, flag = marker_kernel(), torch.empty(1, device=self.device)
            marker[(1,)](flag)  # compiled outside the range
        with torch.no_grad():
            for _ in range(int(header.get("warmup", 3))):
                model(*placed.tensors)
            torch.cuda.synchronize()
            torch.cuda.nvtx.range_push(NVTX_RANGE)
            if marker is not None:
                marker[(1,)](flag)
            with self.guards.unpoisoned():
                with self.guards.watch() as record:
                    model(*placed.tensors)
                torch.cuda.synchronize()
            torch.cuda.nvtx.range_pop()
        finding = self.guards.verdict(record)
        return {"ok": True, "launches": record.launches, "finding": list(finding) if finding else None}, None

    def do_time(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Time subjects side by side on the session's benchmark input (builder.judge.timing)."""
        from builder.judge.timing import time_subjects

        reply = time_subjects(self, header)
        self._trust_if_unexposed()  # torch.compile, say, may have bound its own functions into torch
        return reply, None

    def do_kept(self, header: dict[str, Any], _: Any) -> None:
        """Send the outputs the last `time` batch copied to the host of one run, with the
        perturbation count it ran at: a reply, then one message per output."""
        from builder.judge.inputs import flat_bytes

        kept = self.kept.pop(int(header["run"]), None)
        if kept is None:
            self.end.send({"ok": False, "reason": "wrong_while_timed",
                           "detail": "no output was kept for that run"})
            return
        outs, perturbed = kept
        self.end.send({"ok": True, "perturbed": perturbed, "count": len(outs)})
        for out in outs:
            self.end.send({"part": "data"}, flat_bytes(out))

    # -- helpers --------------------------------------------------------------------------

    def _faithful_cpu(self, seed: int) -> None:
        """The interpreter as close to a GPU as it gets (builder.judge.interpreter): programs in an
        order drawn from the judge's seed, every autotune config checked, and every kernel
        specialisation launched compiled for sm_90 (builder.judge.gpu_compile)."""
        from builder.judge.gpu_compile import GpuCompiler
        from builder.judge.interpreter import ConfigCheck, ProgramOrder

        if seed:
            ProgramOrder.reseed(seed)
        self.compiler = GpuCompiler()
        self.guards.on_launch = self.compiler.record
        check = ConfigCheck(self.problem.atol, self.problem.rtol, self._config_mismatch)
        self.guards.cpu_benchmark = check.bench

    def _config_mismatch(self, detail: str) -> None:
        if self.guards.record is not None:
            self.guards.record.config_mismatch.append(detail)

    def _compiled(self) -> tuple[str, str] | None:
        """On the CPU, compile what the interpreter launched since the last call: a compile_error
        finding for what no GPU would compile, then the guards' check of what the compile touched."""
        if self.compiler is None:
            return None
        return self.compiler.compile_pending() or self.guards.tampering()

    def _import_failed(self, exc: BaseException) -> dict[str, Any]:
        """import_error, or on the CPU cpu_unverifiable where the import needs a GPU (a device
        query at module level, as Triton's tutorials make)."""
        from builder.judge.interpreter import needs_gpu

        if self.compiler is not None and needs_gpu(exc):
            return {"ok": False, "reason": "cpu_unverifiable", "detail": f"only a GPU can import this code: {_summary(exc)}"}
        return {"ok": False, "reason": "import_error", "detail": _last_lines(traceback.format_exc())}

    def _raised(self, exc: BaseException) -> dict[str, Any]:
        """The reply for a forward that raised: over_budget when its programs ran past the time the
        judge gave the call (builder.judge.interpreter.Deadline), runtime_error, or on the CPU, where the CPU lacks
        what the code needs (the interpreter cannot run a construct, no CUDA), compile_error when
        a launched kernel would not compile for the GPU either, else cpu_unverifiable."""
        from builder.judge.interpreter import PastDeadline

        if isinstance(exc, PastDeadline):
            return {"ok": False, "reason": "over_budget", "detail": str(exc)}
        detail = _last_lines("".join(traceback.format_exception(exc)))
        if self.compiler is not None:
            from builder.judge.interpreter import in_interpreter, needs_gpu

            if in_interpreter(exc) or needs_gpu(exc):
                finding = self._compiled()
                if finding is not None:
                    return {"ok": False, "reason": finding[0], "detail": finding[1]}
                return {"ok": False, "reason": "cpu_unverifiable",
                        "detail": f"only a GPU can run this code (its kernels compile for sm_90): {_summary(exc)}"}
        return {"ok": False, "reason": "runtime_error", "detail": detail}

    def _trust_if_unexposed(self) -> None:
        """While only trusted code has run, take what it did to torch's namespaces as the norm."""
        if not self.untrusted:
            self.guards.trust_current_state()

    def _device_failed(self, exc: BaseException) -> bool:
        """Whether `exc` left the device unusable: it reads like a device failure and, on a GPU,
        a small op then fails too (code under test can raise any text it likes)."""
        from builder.judge.child import is_device_failure

        if self.device == "cpu" or not is_device_failure(exc):
            return False
        try:
            self.torch.cuda.synchronize()
            self.torch.ones(1, device=self.device).add_(1).cpu()
        except Exception:
            return True
        return False

    def _inputs(self, header: dict[str, Any], payload: Any) -> Any:
        """The call's inputs (`inputs`: shape, dtype, range, value class and seed of each), laid
        out as `layout` says; their values are the payload's bytes when the judge sent them. With
        `keep_inputs` they are kept for the next call; one with `refill` gets those same tensors,
        the payload's values copied into them (a user's static input buffer, `x.copy_(batch)`)."""
        from builder.judge.inputs import PlacedInputs

        # The last call's inputs and outputs may sit in a reference cycle (a frame that a caught
        # exception keeps): on a GPU, collect it before new benchmark-size inputs are made beside it.
        if self.device != "cpu":
            gc.collect()
        kept, self.kept_inputs = self.kept_inputs, None
        if header.get("refill") and kept is not None and payload is not None:
            kept.load(payload)  # the same tensors as the last call's, given new values in place
            return kept
        placed = PlacedInputs(header["inputs"], header.get("layout", "guarded"), self.device, payload)
        if header.get("keep_inputs"):
            self.kept_inputs = placed
        return placed

    def _call(self, model: Any, placed: Any, mode: str, grad: bool, pattern: Any) -> tuple[dict[str, Any], Any]:
        """A guarded forward: a reply describing it, and the outputs as a list (None when forward
        returned neither a tensor nor a tuple or list)."""
        torch = self.torch
        from builder.judge.guards import lifted_change, plain_outputs
        from builder.judge.reference import outputs_of

        # With autograd on, floating inputs require grad, as activations do in training (views of
        # the same storage: the layout, the bands and the judge's reads of the inputs are unchanged).
        args = [t.detach().requires_grad_() if grad and t.is_floating_point() else t for t in placed.tensors]
        raised: BaseException | None = None
        with torch.set_grad_enabled(grad), self.guards.poisoning(pattern) as tails, self.guards.watch() as record:
            try:
                torch.nn.Module.train(model, mode == "train")
                out = model(*args)
            except BaseException as exc:
                if self._device_failed(exc):
                    raise  # the session reports a crash and ends
                raised = exc
        if raised is not None:  # judged once the watch is over (the compile check runs outside it)
            return self._raised(raised), None
        outs, sequence = outputs_of(out)
        reply: dict[str, Any] = {"ok": True, "launches": record.launches, "ops": record.ops[:40], "sequence": sequence}
        finding = self.guards.verdict(record)
        if finding is None and not placed.bands_intact():
            finding = ("out_of_bounds", "forward wrote outside its input")
        if finding is None and tails.written():
            finding = ("out_of_bounds", "forward wrote past the end of a tensor it allocated")
        if finding is None:
            finding = plain_outputs(outs or [], placed)
        shapes = (id(model), mode, tuple(tuple(t.shape) for t in placed.tensors))
        if finding is None:
            finding = lifted_change(self.lifted.get(shapes), record.lifted_digests)
        self.lifted.setdefault(shapes, record.lifted_digests)
        if finding is None:
            finding = self._compiled()
        if finding is not None:
            reason, detail = finding
            reply.update(ok=False, reason=reason, detail=detail)
        if outs is None:
            reply["outputs"] = None
            reply["output_type"] = type(out).__name__
            return reply, None
        reply["outputs"] = [_describe(o) for o in outs]
        return reply, outs


def _describe(out: Any) -> dict[str, Any]:
    """What the judge is told of one output: shape and dtype, or the type of a non-tensor."""
    import torch

    if type(out) is torch.Tensor:
        return {"shape": list(out.shape), "dtype": str(out.dtype).removeprefix("torch.")}
    return {"type": type(out).__name__}


def _sendable(outs: list[Any] | None, expect: list[dict[str, Any]]) -> list[bool]:
    """For each expected output: whether the output in its place is a plain tensor (no attributes
    of its own: the sandbox calls its methods) of the expected shape and dtype."""
    import torch

    found = outs or []
    return [i < len(found) and type(found[i]) is torch.Tensor and not vars(found[i])
            and _describe(found[i]) == {"shape": list(e["shape"]), "dtype": e["dtype"]} for i, e in enumerate(expect)]


def _summary(exc: BaseException) -> str:
    """An exception's type and message on one line, at most 300 characters."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _last_lines(text: str, count: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def prepare(device: str, *, context: bool = True) -> None:
    """What every sandbox of `device` does before its first command, the same for all of them:
    the interpreter for the CPU and its compiler's set-up, the imports, and, unless `context` is
    False, the GPU's context (set_up_device), so that a sandbox started ahead has them ready. The
    zygote prepares without the context: a fork of a process that set one up cannot use the GPU,
    so each of its forks sets up its own.

    What the imports made is then frozen out of the garbage collector's reach (`gc.freeze`): the
    timing run collects before each code it times, and a full collection of a heap that holds
    torch.compile's modules walked every one of their objects each time (53% of a timing
    sandbox's samples in a py-spy profile of a reward round on the H100)."""
    if device == "cpu":
        from builder.judge.child import prepare_cpu

        prepare_cpu()
    import torch
    import torch._dynamo  # noqa: F401  (the first op under the guards' dispatch mode imports it: 2-4 s)
    import triton  # noqa: F401

    import builder.judge.guards  # noqa: F401
    import builder.judge.timing  # noqa: F401

    if device == "cpu":
        from builder.judge.gpu_compile import warm_up

        warm_up()
    gc.collect()
    gc.freeze()
    if context:
        set_up_device(device)


def set_up_device(device: str) -> None:
    """The device's context: CUDA's for "cuda", nothing for the CPU."""
    if device == "cuda":
        import torch

        torch.cuda.init()


#: The flag that starts a sandbox without its GPU context, set up at its first command instead: a
#: sandbox started ahead under ncu (whose start may overlap another answer's timing run) touches
#: no GPU before it is used.
LATE_CONTEXT = "--late-context"


def main(argv: list[str]) -> int:
    prepare(argv[0] if argv else "cpu", context=LATE_CONTEXT not in argv)
    return serve_stdio()


def serve_stdio() -> int:
    """Take stdin/stdout for the channel, send everything printed to stderr, and serve (in a
    prepared process: `main`, or a fork of builder.judge.zygote)."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    end = channel.Channel.of_child(read_fd, write_fd)
    Sandbox(end).serve()
    end.writer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
