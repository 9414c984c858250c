"""The referee: trusted GPU work the judge needs before a sandbox session, in its own child.

For benchmark-size checks the judge cannot ship inputs to the sandbox, so the sandbox draws them
from seeds it is told only when it must use them. The referee, a child of the judge that runs no
candidate code, draws the same inputs from the same seeds, computes the reference outputs and
the keyed hashes of the inputs, and writes the outputs to the judge's private folder. For a timing
session it replays the perturbations (builder.judge.timing.perturb) up to each run the judge will
check. It runs before the sandbox, so only one copy of a benchmark input is ever alive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Seconds a referee may take.
REFEREE_TIMEOUT_S = 900.0


def ask_referee(problem: Any, scratch: Path, hash_key: int, *, trials: list[dict[str, Any]] | None = None,
                timing: dict[str, Any] | None = None, timeout_s: float = REFEREE_TIMEOUT_S) -> dict[str, Any]:
    """Run the referee in a child, its outputs in a private folder of `scratch`; return its payload
    with each output read into this process (`"outputs"`, trials then checkpoints, files removed).
    Raises SandboxDied when the referee fails."""
    from builder.judge.runner import SandboxDied, run_job

    private = Path(scratch) / "referee"
    private.mkdir(parents=True, exist_ok=True)
    private.chmod(0o700)
    result = run_job("referee", {"problem_dir": str(problem.dir), "outdir": str(private), "hash_key": hash_key,
                                 "trials": trials or [], "timing": timing, "device": "cuda"}, timeout_s)
    if not result.ok:
        raise SandboxDied(result.reason or "crash", f"the referee failed: {result.detail[-500:]}")
    payload = result.payload
    entries = payload["trials"] + payload["checkpoints"]
    return {**payload, "outputs": load_references(entries, problem.dtype)}


def load_references(entries: list[dict[str, Any]], dtype: str) -> list[Any]:
    """The referee's outputs, read into this process's memory and their files removed, before any
    sandbox starts: nothing the sandbox does can change them afterwards."""
    import numpy
    import torch

    refs = []
    for entry in entries:
        path = Path(entry["path"])
        refs.append(torch.from_numpy(numpy.fromfile(path, dtype=dtype)))
        path.unlink()
    return refs


def referee_job(params: dict[str, Any]) -> dict[str, Any]:
    """params: problem_dir, outdir, hash_key, trials [{seed, low, high}], timing {seed, low, high,
    checkpoints [perturbation counts], total} or None. Returns the files and hashes it wrote."""
    import torch

    from builder.judge.guards import GuardedInput
    from builder.judge.loader import load_module
    from builder.judge.timing import environment, perturb
    from builder.seeds import load_problem

    problem = load_problem(Path(params["problem_dir"]))
    outdir = Path(params["outdir"])
    key = int(params["hash_key"])
    dtype = getattr(torch, problem.dtype)
    model = load_module(problem.reference_path).Model(**problem.init).cuda().eval()
    trials = []
    with torch.no_grad():
        for i, spec in enumerate(params.get("trials", [])):
            guarded = GuardedInput(problem.shape, dtype, "cuda", int(spec["seed"]), spec["low"], spec["high"])
            path = outdir / f"trial_{i}.bin"
            _save(model(guarded.x), path)
            trials.append({"path": str(path), "input_hash": str(guarded.fingerprint(key))})
            del guarded
            torch.cuda.empty_cache()
        timing = params.get("timing")
        checked = []
        final_hash = None
        if timing:
            guarded = GuardedInput(problem.shape, dtype, "cuda", int(timing["seed"]), timing["low"], timing["high"])
            applied = 0
            for count in sorted(set(timing["checkpoints"])):
                while applied < count:
                    perturb(guarded.x, int(timing["seed"]), applied, timing["low"], timing["high"])
                    applied += 1
                path = outdir / f"checkpoint_{count}.bin"
                _save(model(guarded.x), path)
                checked.append({"perturbed": count, "path": str(path)})
            while applied < int(timing["total"]):
                perturb(guarded.x, int(timing["seed"]), applied, timing["low"], timing["high"])
                applied += 1
            final_hash = str(guarded.fingerprint(key))
    return {"trials": trials, "checkpoints": checked, "final_hash": final_hash, "env": environment()}


def _save(out: Any, path: Path) -> None:
    out.detach().to("cpu").contiguous().numpy().tofile(path)
