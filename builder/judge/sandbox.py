"""The sandbox process: the only process that imports code under test.

The judge starts it as `python -m builder.judge.sandbox`, always with the same argv and the same
environment, as an unprivileged user where the judge runs as root (builder.judge.runner). It
reads commands on stdin and answers on stdout in the framed messages of builder.judge.channel;
whatever the code under test prints goes to stderr, the judge's log. It decides no verdict: it
reports raw outputs, input bytes or hashes and what its guards saw, and the judge, outside this
process, computes the reference and decides.

Commands (`op`): hello, load, build, forward, profile, time, bye. Each gets one reply (`time`
also streams the outputs of the runs it was asked to check).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from builder.judge import channel


class Sandbox:
    """The state of one sandbox session: the problem, the guards, loaded code and models."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader, self.writer = reader, writer
        self.modules: dict[str, Any] = {}
        self.models: dict[str, Any] = {}
        self.baselines: dict[str, Any] = {}  # eager and compiled reference, built once per session
        self.bench: Any = None  # the timing input, alive for the whole session
        self.perturbed = 0  # perturbations applied to the timing input so far
        self.kept: dict[int, Any] = {}  # run -> (output, perturbations) the last `time` batch kept
        self.untrusted = False  # True once code under test was loaded: the guards' state is then fixed
        self.compiler: Any = None  # on the CPU: compiles each kernel specialisation launched for a GPU
        self.lifted: dict[tuple[int, tuple[int, ...]], list[str]] = {}  # (model, shape) -> tensors made from Python

    def serve(self) -> None:
        while True:
            try:
                header, payload = channel.receive(self.reader, max_payload=1 << 40)
            except channel.ProtocolError:
                return
            op = header.get("op")
            if op == "bye":
                channel.send(self.writer, {"ok": True})
                return
            handler = getattr(self, f"do_{op}", None)
            if handler is None:
                channel.send(self.writer, {"ok": False, "reason": "runtime_error", "detail": f"unknown op {op!r}"})
                continue
            try:
                reply, data = handler(header, payload)
            except Exception as exc:  # reported to the judge, which decides
                crashed = self._device_failed(exc)
                channel.send(self.writer, {"ok": False, "reason": "crash" if crashed else "runtime_error",
                                           "detail": _last_lines(traceback.format_exc())})
                if crashed:
                    return
                continue
            channel.send(self.writer, reply, data)

    # -- commands -------------------------------------------------------------------------

    def do_hello(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Set the device up, load the problem and install the guards."""
        self.device = header["device"]
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
        self.dtype = getattr(torch, self.problem.dtype)
        self.guards = Guards(cuda=self.device == "cuda")
        if self.device == "cpu":
            self._faithful_cpu(int(header.get("seed") or 0))
        self.guards.install()
        import builder.judge.timing as timing

        for name, space in {"builder.judge.sandbox": sys.modules[__name__], "Sandbox": Sandbox,
                            "builder.judge.channel": channel, "builder.judge.timing": timing, "Clock": Clock}.items():
            self.guards.protect(name, space)  # the code that reports outputs and times is the sandbox's own
        self.clock = Clock(self.device) if self.device == "cuda" else None
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
        except BaseException:  # SystemExit and KeyboardInterrupt raised by the code count too
            return {"ok": False, "reason": "import_error", "detail": _last_lines(traceback.format_exc())}, None
        tampered = self.guards.tampering()
        if tampered:
            return {"ok": False, "reason": tampered.reason, "detail": tampered.detail}, None
        if not isinstance(getattr(module, "ModelNew", None), type):
            return {"ok": False, "reason": "no_model_new", "detail": "the module has no class ModelNew"}, None
        self.modules[label] = module
        return {"ok": True}, None

    def do_build(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Construct ModelNew(**init) of a loaded module as model `name`."""
        try:
            with self.guards.allocations():
                model = self.modules[header["label"]].ModelNew(**header["init"]).to(self.device)
        except BaseException:
            return {"ok": False, "reason": "import_error", "detail": _last_lines(traceback.format_exc())}, None
        tampered = self.guards.tampering()
        if tampered:
            return {"ok": False, "reason": tampered.reason, "detail": tampered.detail}, None
        self.models[header["name"]] = model
        self._trust_if_unexposed()
        return {"ok": True}, None

    def do_forward(self, header: dict[str, Any], payload: Any) -> tuple[dict[str, Any], Any]:
        """One guarded forward on a given (bytes) or seeded input; reply with the raw output."""
        torch = self.torch
        guarded = self._input(header["input"], payload)
        reply, out = self._call(self.models[header["name"]], guarded)
        if header.get("hash_key") is not None:
            reply["input_hash"] = str(guarded.fingerprint(int(header["hash_key"])))
        if header.get("return_input"):
            reply["input_bytes"] = guarded.x.numel() * guarded.x.element_size()
        expect = header.get("expect") or {}
        wanted = reply.get("output") and reply["output"]["shape"] == expect.get("shape") and (
            reply["output"]["dtype"] == expect.get("dtype"))
        data = _host_bytes(out) if wanted else None
        channel.send(self.writer, {"part": "output", **reply}, data)
        del out
        if header.get("return_input"):
            return {"part": "input"}, guarded.x.detach().to("cpu").contiguous().view(torch.uint8).reshape(-1)
        return {"part": "end"}, None

    def do_profile(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], None]:
        """Warm up, then one forward inside the NVTX range that ncu collects (its fresh
        allocations are not poisoned: ncu would profile the fill as one of the answer's kernels).
        With `marker`, the marker kernel runs first inside the range: several codes profiled in
        one process are told apart by it."""
        torch = self.torch
        from builder.judge.ncu import NVTX_RANGE, marker_kernel

        guarded = self._input(header["input"], None)
        model = self.models[header["name"]]
        marker = None
        if header.get("marker"):
            marker, flag = marker_kernel(), torch.empty(1, device=self.device)
            marker[(1,)](flag)  # compiled outside the range
        with torch.no_grad():
            for _ in range(int(header.get("warmup", 3))):
                model(guarded.x)
            torch.cuda.synchronize()
            torch.cuda.nvtx.range_push(NVTX_RANGE)
            if marker is not None:
                marker[(1,)](flag)
            with self.guards.unpoisoned():
                with self.guards.watch() as record:
                    model(guarded.x)
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

    def do_kept(self, header: dict[str, Any], _: Any) -> tuple[dict[str, Any], Any]:
        """Send (and let go of) the output the last `time` batch kept of one run, with the
        perturbation count it ran at."""
        kept = self.kept.pop(int(header["run"]), None)
        if kept is None:
            return {"ok": False, "reason": "wrong_while_timed", "detail": "no output was kept for that run"}, None
        out, perturbed = kept
        return {"ok": True, "perturbed": perturbed}, _host_bytes(out)

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

    def _raised(self, exc: BaseException) -> dict[str, Any]:
        """The reply for a forward that raised: runtime_error, or on the CPU, where the CPU lacks
        what the code needs (the interpreter cannot run a construct, no CUDA), compile_error when
        a launched kernel would not compile for the GPU either, else cpu_unverifiable."""
        detail = _last_lines("".join(traceback.format_exception(exc)))
        if self.compiler is not None:
            from builder.judge.interpreter import in_interpreter, needs_gpu

            if in_interpreter(exc) or needs_gpu(exc):
                finding = self._compiled()
                if finding is not None:
                    return {"ok": False, "reason": finding[0], "detail": finding[1]}
                what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                return {"ok": False, "reason": "cpu_unverifiable",
                        "detail": f"only a GPU can run this code (its kernels compile for sm_90): {what}"}
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

    def _input(self, spec: dict[str, Any], payload: Any) -> Any:
        import gc

        from builder.judge.guards import GuardedInput

        # The last call's input and output may sit in a reference cycle (a frame that a caught
        # exception keeps): on a GPU, collect it before a new benchmark-size input is made beside it.
        if self.device != "cpu":
            gc.collect()
        guarded = GuardedInput(tuple(spec["shape"]), self.dtype, self.device, int(spec.get("seed", 0)),
                               float(spec.get("low", 0.0)), float(spec.get("high", 1.0)))
        if payload is not None:
            values = payload.view(self.dtype).reshape(guarded.x.shape)
            guarded.x.copy_(values.to(self.device))
        return guarded

    def _call(self, model: Any, guarded: Any) -> tuple[dict[str, Any], Any]:
        """A guarded forward: a reply describing it, and the output (None unless a tensor)."""
        torch = self.torch
        raised: BaseException | None = None
        with torch.no_grad(), self.guards.watch() as record:
            try:
                out = model(guarded.x)
            except BaseException as exc:
                if self._device_failed(exc):
                    raise  # the session reports a crash and ends
                raised = exc
        if raised is not None:  # judged once the watch is over (the compile check runs outside it)
            return self._raised(raised), None
        from builder.judge.guards import lifted_change, plain_output

        reply: dict[str, Any] = {"ok": True, "launches": record.launches, "ops": record.ops[:40]}
        finding = self.guards.verdict(record)
        if finding is None and not guarded.bands_intact():
            finding = ("out_of_bounds", "forward wrote outside its input")
        if finding is None:
            finding = plain_output(out, guarded)
        shape = (id(model), tuple(guarded.x.shape))
        if finding is None:
            finding = lifted_change(self.lifted.get(shape), record.lifted_digests)
        self.lifted.setdefault(shape, record.lifted_digests)
        if finding is None:
            finding = self._compiled()
        if finding is not None:
            reason, detail = finding
            reply.update(ok=False, reason=reason, detail=detail)
        if type(out) is torch.Tensor:
            reply["output"] = {"shape": list(out.shape), "dtype": str(out.dtype).removeprefix("torch.")}
            return reply, out
        reply["output"] = None
        reply["output_type"] = type(out).__name__
        return reply, None


def _host_bytes(out: Any) -> Any:
    """An output's bytes as a flat uint8 CPU tensor."""
    import torch

    return out.detach().to("cpu").contiguous().view(torch.uint8).reshape(-1)


def _last_lines(text: str, count: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def prepare(device: str) -> None:
    """What every sandbox of `device` does before its first command, the same for all of them:
    the interpreter for the CPU, the imports, and the GPU's context (so a sandbox started ahead
    has it ready)."""
    if device == "cpu":
        from builder.judge.child import prepare_cpu

        prepare_cpu()
    import torch
    import triton  # noqa: F401

    import builder.judge.guards  # noqa: F401
    import builder.judge.timing  # noqa: F401

    if device == "cuda":
        torch.cuda.init()


def main(argv: list[str]) -> int:
    """Take stdin/stdout for the channel; send everything printed to stderr."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    prepare(argv[0] if argv else "cpu")
    reader, writer = channel.open_pair(read_fd, write_fd)
    Sandbox(reader, writer).serve()
    writer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
