"""The referee: trusted GPU work the judge needs before a sandbox session, in a process of its own.

For benchmark-size checks the judge cannot ship inputs to the sandbox, so the sandbox draws them
from seeds it is told only when it must use them. The referee, a child of the judge that runs no
candidate code, draws the same inputs from the same seeds, computes the reference outputs and
the keyed hashes of the inputs, and sends each output to the judge as soon as it is computed
(builder.judge.channel: a benchmark-size one as a sealed memory file the judge maps, filled from
the GPU through a small pinned buffer; only one benchmark-size output is alive in the referee's
GPU memory at a time). For a
timing session it replays the perturbations (builder.judge.timing.perturb) up to each run the
judge will check. A verification asks as it starts and reads the answer when its first trial
needs it, so the referee computes while the sandbox runs its small checks; one that ends before
withdraws its request if the referee has not taken it up, and waits for it if it has, so that no
referee work outlives its verification (into a timing run, say). The sandbox cannot
read the referee (another user where the judge is root, and the referee is not dumpable). The
referee frees its tensors after each request, so only one copy of a benchmark input is alive at
a time.

One referee serves every request of its judge process (`ask_referee`), so it starts, imports
torch and sets up the GPU once, not once per answer. A referee that dies or overruns a request
is killed, the request fails with a reason, and the next request starts a new one.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Seconds a referee may take for one request.
REFEREE_TIMEOUT_S = 900.0
#: Seconds between two looks, while a request waits for the referee, at whether it is still wanted.
WANTED_POLL_S = 0.05


class Withdrawn(Exception):
    """A request no longer wanted (its verification ended) before the referee took it up."""


class _Service:
    """The judge's side of its referee process: requests go out over its stdin, answers come back
    over its stdout (builder.judge.channel messages); one request at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.link: Any = None  # the judge's end of the referee's channel (builder.judge.channel.Channel)

    def _start(self) -> Any:
        """The referee's channel, starting the referee when none runs."""
        from builder import PROJECT_ROOT
        from builder.judge import channel
        from builder.judge.runner import _child_env, _children_lock, _live_children

        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            # Registered as the judge's own child: a sandbox session's clean-up must not take the
            # referee, which lives in a session of its own, for a process the sandbox left behind.
            with channel.Channel.for_child() as (link, child_in, child_out), _children_lock:
                self.proc = subprocess.Popen([sys.executable, "-m", "builder.judge.referee"], cwd=PROJECT_ROOT,
                                             env=_child_env(None), stdin=child_in, stdout=child_out,
                                             stderr=subprocess.DEVNULL, start_new_session=True)
                _live_children.add(self.proc.pid)
            self.link = link
        return self.link

    def stop(self) -> None:
        from builder.judge.runner import _live_children

        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc is not None:
            _live_children.discard(self.proc.pid)
        if self.link is not None:
            self.link.close()
        self.proc = self.link = None

    def request(self, params: dict[str, Any], timeout_s: float,
                wanted: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Send one request; its reply with the outputs read into this process (`"outputs"`: one
        list of tensors per trial or checkpoint, as `"groups"` describe them: the referee sends
        each group's description, then its outputs, then the reply). Raises SandboxDied when the
        referee fails, dies or overruns, and Withdrawn when `wanted` says no before the referee
        took the request up."""
        import torch

        from builder.judge import channel
        from builder.judge.runner import SandboxDied

        while not self.lock.acquire(timeout=WANTED_POLL_S):
            if wanted is not None and not wanted():
                raise Withdrawn()
        try:
            if wanted is not None and not wanted():
                raise Withdrawn()
            link = self._start()
            timer = threading.Timer(timeout_s, self.stop)
            timer.start()
            try:
                link.send(params)
                groups, outputs = [], []
                reply, _ = link.receive()
                while "group" in reply:
                    outs = []
                    for meta in reply["group"]["outputs"]:
                        size = torch.Size(meta["shape"]).numel() * getattr(torch, meta["dtype"]).itemsize
                        _, raw = link.receive(max_payload=size)
                        if raw is None:
                            raise channel.ProtocolError("an output ended before its bytes")
                        outs.append(raw.view(getattr(torch, meta["dtype"])).reshape(meta["shape"]))
                    groups.append(reply["group"])
                    outputs.append(outs)
                    reply, _ = link.receive()
                if not reply.get("ok"):
                    raise SandboxDied(reply.get("reason") or "crash", f"the referee failed: {reply.get('detail', '')[-500:]}")
            except (channel.ProtocolError, BrokenPipeError, OSError, ValueError) as exc:
                timed_out = not timer.is_alive()
                self.stop()
                why = f"no answer within {timeout_s:.0f} s" if timed_out else f"the referee died: {exc}"
                raise SandboxDied("timeout" if timed_out else "crash", why) from None
            finally:
                timer.cancel()
        finally:
            self.lock.release()
        return {**reply, "groups": groups, "outputs": outputs}


_service = _Service()
atexit.register(_service.stop)


def stop_referee() -> None:
    """End this judge process's referee, if it runs; the next request starts a new one."""
    _service.stop()


def ask_referee(problem: Any, hash_key: int, *, build: dict[str, Any], trials: list[dict[str, Any]] | None = None,
                timing: dict[str, Any] | None = None, timeout_s: float = REFEREE_TIMEOUT_S,
                device: str = "cuda", wanted: Callable[[], bool] | None = None) -> dict[str, Any]:
    """References for `trials` ([{inputs, layout, mode, grad}], inputs with their seeds) and the
    checkpoints of `timing`, from the reference built as `build` says (builder.judge.reference);
    the referee's reply with each output read into this process's memory (`"outputs"`: one list
    of tensors per trial, then per checkpoint, as `"groups"` describes them: whether the reference
    returned a sequence, and each output's shape and dtype). Raises SandboxDied when the referee
    fails, and Withdrawn when `wanted` says no while the request waits for the referee."""
    params = {"problem_dir": str(problem.dir), "hash_key": hash_key, "build": build, "trials": trials or [],
              "timing": timing, "device": device}
    return _service.request(params, timeout_s, wanted)


def output_scales(reply: dict[str, Any]) -> list[list[float]]:
    """Each output's max|ref| as the referee found it, group by group (trial or checkpoint)."""
    return [[float(o["scale"]) for o in group["outputs"]] for group in reply["groups"]]


def compute(params: dict[str, Any], emit: Callable[[dict[str, Any], list[Any]], None]) -> dict[str, Any]:
    """params: problem_dir, hash_key, build (builder.judge.reference.Build), trials [{inputs, layout,
    mode, grad}], timing {inputs, seed, layout, checkpoints [perturbation counts], total} or None,
    device (the GPU, "cuda", where the judge draws benchmark-size inputs; "cpu" in tests).
    Each trial's outputs, then each checkpoint's, go to `emit(group, outputs)` as they are computed:
    the group says whether the reference returned a sequence, and each output's shape, dtype and
    max|ref| (builder.judge.compare.reference_scale); the outputs are flat byte tensors on the
    device. Returns the reply: per trial the inputs' keyed hashes, the final hashes of a timing
    input, the environment."""
    import torch

    from builder.judge.compare import reference_scale
    from builder.judge.inputs import PlacedInputs, flat_bytes
    from builder.judge.loader import load_module
    from builder.judge.reference import Build, build, call
    from builder.judge.timing import environment, perturb_inputs

    problem = load_problem_at(params["problem_dir"])
    key = int(params["hash_key"])
    device = params.get("device", "cuda")
    model, _ = build(load_module(problem.reference_path), Build.from_spec(params["build"]), device)

    def deliver(result: tuple[list[Any], bool]) -> None:
        outs, sequence = result
        metas = [{"shape": list(o.shape), "dtype": str(o.dtype).removeprefix("torch."), "scale": reference_scale(o)}
                 for o in outs]
        emit({"sequence": sequence, "outputs": metas}, [flat_bytes(o) for o in outs])

    trials = []
    for spec in params.get("trials", []):
        placed = PlacedInputs(spec["inputs"], spec.get("layout", "guarded"), device)
        deliver(call(model, placed.tensors, mode=spec.get("mode", "train"), clone=False))
        trials.append({"input_hashes": placed.fingerprints(key)})
        del placed
        if device == "cuda":
            torch.cuda.empty_cache()
    timing = params.get("timing")
    checked = []
    final_hashes = None
    if timing:
        placed = PlacedInputs(timing["inputs"], timing.get("layout", "guarded"), device)
        applied = 0
        for count in sorted(set(timing["checkpoints"])):
            while applied < count:
                perturb_inputs(placed.tensors, timing["inputs"], int(timing["seed"]), applied)
                applied += 1
            deliver(call(model, placed.tensors, mode="train", clone=False))
            checked.append({"perturbed": count})
        while applied < int(timing["total"]):
            perturb_inputs(placed.tensors, timing["inputs"], int(timing["seed"]), applied)
            applied += 1
        final_hashes = placed.fingerprints(key)
        del placed
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"ok": True, "trials": trials, "checkpoints": checked, "final_hashes": final_hashes,
            "env": environment() if device == "cuda" else {}}


def load_problem_at(folder: str) -> Any:
    from builder.seeds import load_problem

    return load_problem(Path(folder))


def serve(end: Any) -> None:
    """Answer requests over `end` (builder.judge.channel.Channel) until the judge closes it."""
    import traceback

    from builder.judge import channel
    from builder.judge.child import _classify

    while True:
        try:
            params, _ = end.receive()
        except channel.ProtocolError:
            return

        def emit(group: dict[str, Any], outputs: list[Any]) -> None:
            end.send({"group": group})
            for out in outputs:
                end.send({}, out)

        try:
            reply = compute(params, emit)
        except Exception as exc:  # any failure is the request's answer
            reply = {"ok": False, "reason": _classify(exc), "detail": traceback.format_exc(limit=6)}
        end.send(reply)


def main() -> int:
    from builder.judge import channel
    from builder.judge.child import apply_memory_cap
    from builder.judge.zygote import set_dumpable

    set_dumpable(False)  # as the judge: a sandbox of the same user cannot read or trace it
    read_fd, write_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the channel
    import torch  # noqa: F401  (imported before the first request: the start-up is paid once)

    apply_memory_cap()
    serve(channel.Channel.of_child(read_fd, write_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
