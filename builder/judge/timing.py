"""Time code side by side on the GPU, inside a sandbox session, as a checked run.

`time_subjects` runs in the sandbox (builder.judge.sandbox). It times, on one benchmark input
that lives for the whole session, each subject of a batch: code under test (a built model), the
reference in eager mode, torch.compile of the reference, and the ceiling probes (streaming
kernels with the problem's own read:write byte mix, read-only, write-only and copy). Before each
timed run, a small random slab of the input is rewritten (untimed) and L2 is flushed; CUDA events
recorded on the default stream bracket the call alone. Between the flush and the start event the
GPU spins for a lead (about LEAD_MS, timed by events of its own), so that the host's work before
the launch (the guards, Python) is done while the GPU is still busy, and the events time the
kernels, not the host.
The guards' verdict on a call is taken after its end event. Events, the spin, the flush and
synchronize are the C-level functions captured before any candidate code was imported. Code
subjects run under the same guards as the checking runs, but a fresh allocation is not filled
with poison while timed (the fill would be timed): each output is poisoned after its end event,
so the block the allocator hands to the next run starts as poison all the same. The outputs of
the runs the judge picked leave the GPU right after their run's end event, by an asynchronous
copy into host buffers made before the batch (pinned, on a GPU), timed by events of its own; once
the batch is done they are sent to the judge to be checked against its own reference
(builder.judge.referee computes it). A checked output so holds no GPU memory past its run: a
batch of an answer peaks where a trusted code's does.

The batch wall time seen by the judge and the events' total are compared outside the sandbox.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Bytes written to flush the L2 cache before each timed run.
FLUSH_BYTES = 256 * 1024**2
#: Bytes the CPU clock writes instead (the timed run on the CPU tests the judge, not the cache).
CPU_FLUSH_BYTES = 1024**2
#: Elements of the timing input rewritten before each timed run.
PERTURB_ELEMENTS = 4096
#: Block sizes tried by the streaming ceiling probe (the best one counts).
STREAM_BLOCKS = (1024, 2048, 4096, 8192)
#: Bytes of the buffers the read-only, write-only and copy probes use at most.
PROBE_BYTES = 2 * 1024**3
#: Timed runs per ceiling probe variant.
PROBE_RUNS = 20
#: Milliseconds the GPU spins before each timed call of code: more than the host needs to launch it.
LEAD_MS = 5.0
#: GPU clock cycles of the spin that measures the clock rate.
SPIN_PROBE_CYCLES = 2_000_000

#: Where the host time of a timed batch goes, as the sandbox measures it: rewriting the input
#: slab before each run, calling the code (launches, under the guards), the guards' verdict and
#: the output checks after each run, the copy of a checked run's outputs to the host, the poison
#: fill of each output, and garbage collection.
HOST_PARTS = ("perturb", "call", "verdict", "keep", "fill", "collect")
#: The parts that are checks of the call rather than the call: reported in the "checks" phase.
CHECK_PARTS = ("verdict", "keep", "fill", "collect")

#: The keys of a timing summary.
TIMING_KEYS = ("median_ms", "min_ms", "max_ms", "runs")


def summarize(times_ms: list[float]) -> dict[str, Any]:
    """Median, min and max of run times, and how many runs."""
    values = (statistics.median(times_ms), min(times_ms), max(times_ms), len(times_ms))
    return dict(zip(TIMING_KEYS, values))


def bandwidth(bytes_moved: int, ms: float) -> float:
    """GB/s (1e9 bytes per second) for `bytes_moved` in `ms` milliseconds."""
    return bytes_moved / (ms * 1e-3) / 1e9


def perturb(x: Any, seed: int, index: int, low: float, high: float) -> None:
    """Rewrite PERTURB_ELEMENTS elements of `x` at a place and with values drawn from (seed, index):
    uniform in [low, high) for floats, uniform integers in [low, high) otherwise.

    The same call on the same device gives the same input in every process, so the referee can
    replay a session's perturbations and compute the reference of any timed run.
    """
    import torch

    mixed = (seed * 1_000_003 + index) % (1 << 62)
    flat = x.view(-1)
    if not flat.numel():
        return
    span = min(PERTURB_ELEMENTS, flat.numel())
    # The place is drawn on the host: reading a device value back would stall the timed loop.
    place = torch.Generator().manual_seed(mixed)
    start = int(torch.randint(0, flat.numel() - span + 1, (1,), generator=place))
    generator = torch.Generator(device=x.device).manual_seed(mixed)
    if flat.is_floating_point():
        flat[start:start + span].uniform_(low, high, generator=generator)
    else:
        flat[start:start + span].random_(int(low), int(high), generator=generator)


def perturb_inputs(tensors: list[Any], specs: list[dict[str, Any]], seed: int, index: int) -> None:
    """perturb() each input of a timing session, each from a seed of its own."""
    from builder.judge.inputs import mix

    for i, (x, spec) in enumerate(zip(tensors, specs)):
        perturb(x, mix(seed, i), index, spec["low"], spec["high"])


class WallEvent:
    """A CPU stand-in for a CUDA event: the wall-clock time it was recorded at."""

    def __init__(self, enable_timing: bool = True) -> None:
        self.at = 0.0

    def record(self, stream: Any = None) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: WallEvent) -> float:
        return (end.at - self.at) * 1e3


def _no_sync() -> None:
    pass


def _busy_wait_ns(ns: int) -> None:
    until = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < until:
        pass


class Clock:
    """CUDA events, synchronize, the L2 flush and a wall clock, captured before candidate code runs.
    On the CPU (the interpreter, in tests of the timed run) events are wall-clock marks, a spin
    is a busy wait of nanoseconds and the flush writes a small scratch buffer."""

    def __init__(self, device: str) -> None:
        import torch

        if device == "cuda":
            base = torch._C._CudaEventBase
            self._new_event, self._record, self._elapsed = base, base.record, base.elapsed_time
            self._sync, self._spin = torch._C._cuda_synchronize, torch._C._cuda_sleep
            self.stream = torch.cuda.default_stream()
        else:
            self._new_event, self._record, self._elapsed = WallEvent, WallEvent.record, WallEvent.elapsed_time
            self._sync, self._spin = _no_sync, _busy_wait_ns
            self.stream = None
        self._cycles_per_ms: float | None = None
        self._zero = torch.Tensor.zero_
        self.wall = time.perf_counter
        flush = FLUSH_BYTES if device == "cuda" else CPU_FLUSH_BYTES
        self.scratch = torch.empty(flush // 4, dtype=torch.float32, device=device)

    def event(self) -> Any:
        return self._new_event(enable_timing=True)

    def record(self, event: Any) -> None:
        self._record(event, self.stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._elapsed(start, end))

    def synchronize(self) -> None:
        self._sync()

    def flush(self) -> None:
        self._zero(self.scratch)

    def spin(self, ms: float) -> None:
        """Keep the GPU busy for about `ms` milliseconds. The clock rate is measured on first use;
        the judge reads each lead's real length from its own events."""
        if self._cycles_per_ms is None:
            start, end = self.event(), self.event()
            self.record(start)
            self._spin(SPIN_PROBE_CYCLES)
            self.record(end)
            self.synchronize()
            self._cycles_per_ms = SPIN_PROBE_CYCLES / max(self.elapsed_ms(start, end), 1e-3)
        self._spin(int(ms * self._cycles_per_ms))

    def time(self, fn: Callable[[], Any], *, warmup: int, runs: int, before: Callable[[int], None] | None = None,
             after: Callable[[int], None] | None = None, lead_ms: float = 0.0) -> list[float]:
        """Milliseconds of `runs` calls of `fn`, each after `before(i)`, an L2 flush and a GPU spin of
        about `lead_ms`; `after(i)` runs once the call's end event is recorded (i is -1 for warm-up
        calls). The spins' own lengths, timed by events, are left in `self.leads`."""
        for _ in range(warmup):
            fn()
            if after is not None:
                after(-1)
        self.synchronize()
        marks = [(self.event(), self.event(), self.event()) for _ in range(runs)]
        for i, (lead, start, end) in enumerate(marks):
            if before is not None:
                before(i)
            self.flush()
            self.record(lead)
            if lead_ms > 0:
                self.spin(lead_ms)
            self.record(start)
            fn()
            self.record(end)
            if after is not None:
                after(i)
        self.synchronize()
        self.leads = [self.elapsed_ms(lead, start) for lead, start, _ in marks]
        return [self.elapsed_ms(start, end) for _, start, end in marks]


def _stream_kernel() -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def stream(x_ptr, y_ptr, n_in, n_out, per_program, BLOCK: tl.constexpr, OUT_BLOCK: tl.constexpr):
        pid = tl.program_id(0).to(tl.int64)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        total = tl.sum(tl.load(x_ptr + offs, mask=offs < n_in, other=0.0), axis=0)
        first = pid * per_program
        for i in range(0, per_program, OUT_BLOCK):
            o = first + i + tl.arange(0, OUT_BLOCK)
            tl.store(y_ptr + o, tl.zeros([OUT_BLOCK], dtype=tl.float32) + total,
                     mask=(o < n_out) & (o < first + per_program))

    return stream


def _streamable(x: Any) -> Any:
    """`x` flat, as float32 words where its bytes allow (the probe reads bytes, not values)."""
    import torch

    flat = x.reshape(-1)
    if flat.numel() * flat.element_size() % 4 == 0 and flat.dtype != torch.float32:
        flat = flat.view(torch.uint8).view(torch.float32)
    return flat


def stream_ceiling(clock: Clock, tensors: list[Any], out_bytes: int) -> dict[str, Any]:
    """The problem's ceiling: the best rate of a kernel that reads every input once and writes
    `out_bytes` (as float32 words), block sizes tried in turn; for a near 1:1 mix also torch's copy
    of the largest input."""
    import torch

    flats = [_streamable(t) for t in tensors]
    largest = max(range(len(flats)), key=lambda i: flats[i].numel() * flats[i].element_size())
    out_numel = max(out_bytes // 4, 0)
    y = torch.empty(max(out_numel, 1), dtype=torch.float32, device=flats[largest].device)
    problem_bytes = sum(f.numel() * f.element_size() for f in flats) + out_numel * 4
    variants: dict[str, float] = {}
    for block in STREAM_BLOCKS:
        launch = stream_launch(flats, y, out_numel, largest, block)
        ms = summarize(clock.time(launch, warmup=2, runs=PROBE_RUNS))["median_ms"]
        variants[f"stream_{block}"] = bandwidth(problem_bytes, ms)
    del y
    source = tensors[largest].reshape(-1)
    if out_bytes >= source.numel() * source.element_size() // 2:
        dst = torch.empty_like(source)
        ms = summarize(clock.time(lambda: dst.copy_(source), warmup=2, runs=PROBE_RUNS))["median_ms"]
        variants["torch_copy"] = bandwidth(2 * source.numel() * source.element_size(), ms)
        del dst
    best = max(variants, key=variants.__getitem__)
    return {"gbps": variants[best], "best": best, "variants": variants}


def stream_launch(flats: list[Any], y: Any, out_numel: int, writer: int, block: int) -> Callable[[], None]:
    """One pass of the streaming probe: every input in `flats` read once (one launch each), and
    `out_numel` float32 words of `y` written by the programs of input `writer`."""
    import triton

    kernel = _stream_kernel()
    plan = []
    for i, flat in enumerate(flats):
        programs = max(triton.cdiv(flat.numel(), block), 1)
        writes = out_numel if i == writer else 0
        plan.append((flat, programs, writes, triton.cdiv(writes, programs)))

    def launch() -> None:
        for flat, programs, writes, per_program in plan:
            kernel[(programs,)](flat, y, flat.numel(), writes, per_program, BLOCK=block, OUT_BLOCK=1024)

    return launch


def pure_rates(clock: Clock, tensors: list[Any]) -> dict[str, float]:
    """Read-only, write-only and copy rates (GB/s) on buffers of up to PROBE_BYTES of the largest
    input, for reference."""
    import torch
    import triton

    flat = max((_streamable(t) for t in tensors), key=lambda f: f.numel() * f.element_size())
    n = min(flat.numel(), PROBE_BYTES // flat.element_size())
    src = flat[:n]
    kernel = _stream_kernel()
    programs = triton.cdiv(n, 4096)
    sink = torch.empty(programs, dtype=torch.float32, device=flat.device)
    read_ms = summarize(clock.time(lambda: kernel[(programs,)](src, sink, n, programs, 1, BLOCK=4096, OUT_BLOCK=16),
                                   warmup=2, runs=PROBE_RUNS))["median_ms"]
    dst = torch.empty_like(src)
    write_ms = summarize(clock.time(lambda: dst.fill_(1.0), warmup=2, runs=PROBE_RUNS))["median_ms"]
    copy_ms = summarize(clock.time(lambda: dst.copy_(src), warmup=2, runs=PROBE_RUNS))["median_ms"]
    size = n * src.element_size()
    return {"read_gbps": bandwidth(size, read_ms), "write_gbps": bandwidth(size, write_ms),
            "copy_gbps": bandwidth(2 * size, copy_ms)}


def cycle_limit(allocated: int, out_bytes: int) -> int:
    """Bytes allocated past which a CycleCollector first collects, while a code is timed: what was allocated
    before its first call plus one output. An output a cycle holds is then freed before the next
    call's output is made, so input and two outputs is the peak: 21 GiB for group norm's 7 GiB
    input and output, inside the 22 GiB of a 24 GB card (two held outputs were one too many)."""
    return allocated + out_bytes


def timed_finding(finding: Any, trusted: bool) -> Any:
    """The guards' finding on a timed call that fails the subject. A trusted code (a seed kept
    verbatim) is timed whatever rule it breaks: its PyTorch ops and host work run on the timed
    stream, inside the events. What would make its events miss work still fails it."""
    if finding is not None and trusted and finding.reason in RULES_ONLY:
        return None
    return finding


#: Findings on how a call does its work, not on whether the events time it.
RULES_ONLY = frozenset({"torch_op", "host_compute", "no_kernel_launched"})


def _nothing_allocated() -> int:
    return 0  # the CPU's allocator is not counted: a cycle there holds host memory only


class CycleCollector:
    """Collect garbage when more than `limit` bytes are allocated.

    A frame that a caught exception's traceback keeps (Triton's launcher and torch both raise
    and catch) is a reference cycle; through its callers' frames it holds each run's output
    until the collector runs, which a loop of a few Python objects per run rarely triggers: 30
    timed runs of avg-pool 1D kept 72 GiB of 2 GiB outputs on an H100.

    A full collection that leaves more than `limit` allocated found no cycle to free: what is
    held is live (the allocator rounds a 4-byte loss up to 512 bytes; a code may keep a
    workspace). The limit then rises to what is allocated, so the collector runs again only once
    more is held: a full collection costs 0.1 s in a sandbox that has imported torch.compile,
    and run after every call it took 10 s of each 100 timed runs of cross-entropy on an H100.
    """

    def __init__(self, limit: int, allocated: Callable[[], int]) -> None:
        self.limit, self.allocated = limit, allocated

    def __call__(self) -> None:
        if self.allocated() <= self.limit:
            return
        gc.collect(1)
        if self.allocated() > self.limit:
            gc.collect()
            self.limit = max(self.limit, self.allocated())


def _reference_callable(sandbox: Any, kind: str, build: dict[str, Any]) -> Callable[..., Any]:
    """The reference as the judge builds it (seeded, its learned tensors set), in training mode,
    eager or compiled. Built before any code under test is loaded (the trusted subjects come first)."""
    import torch
    import torch._inductor.config

    from builder.judge.loader import load_module
    from builder.judge.reference import Build
    from builder.judge.reference import build as build_reference

    model, _ = build_reference(load_module(sandbox.problem.reference_path), Build.from_spec(build), sandbox.device)
    if kind != "compile":
        return model
    # No thread may start beside the candidate: Inductor compiles in this thread, and the
    # progress bars of torch.fx's interpreter get no tqdm monitor thread.
    torch._inductor.config.compile_threads = 1
    try:
        import tqdm
    except ImportError:
        pass
    else:
        tqdm.tqdm.monitor_interval = 0
    return torch.compile(model)


def _bench_inputs(sandbox: Any, header: dict[str, Any]) -> Any:
    """The session's benchmark inputs, made on first use as `inputs` (with their seeds) and
    `layout` say, and what the reference outputs at that size (`expect`: shape and dtype of each)."""
    from builder.judge.inputs import PlacedInputs

    if sandbox.bench is None:
        sandbox.bench_specs = [dict(spec) for spec in header["inputs"]]
        sandbox.bench_seed = int(header["seed"])
        sandbox.bench = PlacedInputs(sandbox.bench_specs, header.get("layout", "guarded"), sandbox.device)
        sandbox.out_meta = [(list(e["shape"]), e["dtype"]) for e in header["expect"]]
    return sandbox.bench


def host_slots(sandbox: Any, count: int) -> list[list[Any]]:
    """`count` sets of host buffers, one per reference output (its shape and dtype), that the
    outputs of the runs the judge checks are copied into: pinned on a GPU, so that the copy is
    asynchronous, where the machine lets memory be pinned (else the copy waits for itself, still
    between its events). Made on first use and kept for the session (a judge asks for them in the
    request before the batch, so that making them is not timed)."""
    import torch

    from builder.judge.inputs import host_buffer

    while len(sandbox.slots) < count:
        sandbox.slots.append([host_buffer(shape, getattr(torch, dtype), pinned=sandbox.device == "cuda")
                              for shape, dtype in sandbox.out_meta])
    return sandbox.slots[:count]


def time_subjects(sandbox: Any, header: dict[str, Any]) -> dict[str, Any]:
    """Time the batch `header["subjects"]` (see the module doc); called by the sandbox's `time` op.

    Returns, per subject, its run times or the reason it failed, the ceiling figures for probe
    subjects, the perturbations applied so far and, when asked, the keyed hashes of the inputs.
    The outputs of the runs listed in `keep` are copied to host buffers (host_slots; `reserve`
    makes that many ahead) for the `kept` op, which sends them once the judge has stopped its
    clock; the copies' event times are the subject's `kept_ms`.
    """
    import torch

    from builder.judge.guards import plain_outputs
    from builder.judge.poison import Poison
    from builder.judge.reference import nbytes, outputs_of

    clock: Clock = sandbox.clock
    cuda = sandbox.device == "cuda"
    allocated = torch.cuda.memory_allocated if cuda else _nothing_allocated
    placed = _bench_inputs(sandbox, header)
    sandbox.kept = {}
    host_slots(sandbox, int(header.get("reserve", 0)))
    tensors = placed.tensors
    runs, warmup = int(header.get("runs", 100)), int(header.get("warmup", 5))
    out_bytes = nbytes([(tuple(shape), dtype) for shape, dtype in sandbox.out_meta])
    fill_kind, fill_seed = header.get("poison") or ("sentinel", 0)
    fill = Poison(fill_kind, int(fill_seed))

    host: dict[str, float] = {}  # host seconds of the current subject's loop, by HOST_PARTS

    def spent(part: str, since: float) -> float:
        now = clock.wall()
        host[part] = host.get(part, 0.0) + now - since
        return now

    def before(_: int) -> None:
        if header.get("perturb", True):
            since = clock.wall()
            perturb_inputs(tensors, sandbox.bench_specs, sandbox.bench_seed, sandbox.perturbed)
            sandbox.perturbed += 1
            spent("perturb", since)

    results: dict[str, Any] = {}
    start_wall = clock.wall()
    with torch.no_grad():
        for subject in header["subjects"]:
            label, kind = subject["label"], subject["kind"]
            if kind == "ceiling":
                results[label] = {"ceiling": stream_ceiling(clock, tensors, out_bytes),
                                  "rates": pure_rates(clock, tensors)}
                continue
            fn = None
            if kind in ("eager", "compile"):
                if kind not in sandbox.baselines:
                    sandbox.baselines[kind] = _reference_callable(sandbox, kind, header["build"])
                fn = sandbox.baselines[kind]
            model = sandbox.models.get(subject.get("name", ""))
            problems: list[str] = []

            keep = sorted(header.get("keep") or ())
            slots = dict(zip(keep, host_slots(sandbox, len(keep))))  # run -> host buffers for its outputs
            copies: list[tuple[Any, Any]] = []  # events around each copy of a checked run's outputs
            pending: list[Any] = []  # (guard record, output) of the call not yet settled
            gc.collect()
            collect = CycleCollector(cycle_limit(allocated(), out_bytes), allocated)
            trusted = bool(subject.get("trusted"))

            host.clear()

            def call() -> None:
                since = clock.wall()
                with sandbox.guards.watch() as record:
                    pending.append((record, model(*tensors)))
                spent("call", since)

            def settle(i: int) -> None:
                since = clock.wall()
                record, out = pending.pop()
                outs, _ = outputs_of(out)
                finding = timed_finding(sandbox.guards.verdict(record), trusted) or plain_outputs(outs or [], placed)
                since = spent("verdict", since)
                shapes = [(list(o.shape), str(o.dtype).removeprefix("torch.")) if type(o) is torch.Tensor else None
                          for o in outs or ()]
                if finding is not None:  # the outputs are not touched again: their methods may be the answer's
                    problems.append(f"{finding.reason}: {finding.detail}")
                elif outs is None or (shapes != sandbox.out_meta and not trusted):  # a seed's wrong shape is data
                    problems.append(f"wrong_while_timed: forward returned {type(out).__name__} {shapes}")
                else:
                    if i in slots and shapes == sandbox.out_meta:
                        marks = clock.event(), clock.event()
                        clock.record(marks[0])
                        for slot, o in zip(slots[i], outs):
                            slot.copy_(o, non_blocking=True)
                        clock.record(marks[1])
                        copies.append(marks)
                        sandbox.kept[i] = (slots[i], sandbox.perturbed)
                        since = spent("keep", since)
                    for o in outs:  # the allocator hands these blocks to the next run: they start as poison, untimed
                        fill(o)
                    since = spent("fill", since)
                del out, outs
                collect()
                spent("collect", since)

            def baseline() -> None:
                since = clock.wall()
                fn(*tensors)
                spent("call", since)

            if fn is None:
                with sandbox.guards.unpoisoned():
                    times = clock.time(call, warmup=warmup, runs=runs, before=before, after=settle,
                                       lead_ms=float(header.get("lead_ms", 0.0)))
            else:
                times = clock.time(baseline, warmup=warmup, runs=runs, before=before,
                                   lead_ms=float(header.get("lead_ms", 0.0)))
            if problems:
                reason, _, detail = problems[0].partition(": ")
                results[label] = {"error": reason, "detail": detail}
            else:
                results[label] = {"times": times, "leads": clock.leads,
                                  "kept_ms": [clock.elapsed_ms(*marks) for marks in copies],
                                  "host_ms": {part: 1e3 * seconds for part, seconds in host.items()}}
            fn = None
            if cuda:
                torch.cuda.empty_cache()
    reply: dict[str, Any] = {"ok": True, "subjects": results, "perturbed": sandbox.perturbed,
                             "child_wall_s": clock.wall() - start_wall}
    if header.get("hash_key") is not None:
        reply["input_hashes"] = placed.fingerprints(int(header["hash_key"]))
    return reply


def bench_request(problem: Any, rng: Any) -> tuple[dict[str, Any], tuple[dict[str, Any], Any]]:
    """What a timing or profiling session is told of its benchmark inputs (every input's spec with
    a seed, a layout, the reference's outputs as shape and dtype, the build of the baselines and a
    fill for fresh allocations), and the build request of a code's ModelNew (header fields and the
    bytes of the reference's learned tensors), all from `rng`."""
    from builder.judge import params
    from builder.judge.inputs import payload_of
    from builder.judge.loader import load_module
    from builder.judge.plan import TRIAL_LAYOUTS, seeded_specs
    from builder.judge.poison import KINDS
    from builder.judge.reference import Build, build, meta_outputs, new_arguments

    module = load_module(problem.reference_path)
    seed = rng.getrandbits(62)
    spec = Build(problem.init, rng.getrandbits(62), rng.getrandbits(62))
    _, values = build(module, spec)
    header = {"inputs": seeded_specs(problem.inputs, seed), "seed": seed, "layout": rng.choice(TRIAL_LAYOUTS),
              "expect": [{"shape": list(shape), "dtype": dtype} for shape, dtype in meta_outputs(module, problem.init,
                                                                                                 problem.inputs)],
              "build": spec.to_spec(), "poison": [rng.choice(KINDS), rng.getrandbits(62)]}
    state = {**new_arguments(module.Model, problem.init, "positional"), "seed": spec.seed, "state": params.specs(values)}
    return header, (state, payload_of(list(values.values())) if values else None)


def warm_up(problem: Any, warm: Any, phases: Any, *, codes: dict[str, str] | None = None,
            compile_baseline: bool = False, timeout_s: float) -> bool:
    """Run trusted `codes` (and, with `compile_baseline`, torch.compile of the reference) once at
    the benchmark shape in a session that shares the compiler caches in `warm`, so that later
    sessions find them compiled. Whether every one of them ran: a failure here only means those
    sessions compile for themselves."""
    import random

    from builder.judge.runner import SandboxDied, SandboxSession

    session = SandboxSession("cuda", problem.dir, timeout_s=timeout_s, phases=phases, warm=warm)
    subjects = [{"label": "compile", "kind": "compile"}] if compile_baseline else []
    try:
        session.start()
        spec, state = bench_request(problem, random.Random(0))
        with phases.span("compile"):
            for i, code in enumerate((codes or {}).values()):
                name = f"w{i}"
                path = session.write_code(name, code)
                if all(session.request(step, payload).get("ok") for step, payload in (
                        ({"op": "load", "label": name, "path": str(path), "trusted": True}, None),
                        ({"op": "build", "label": name, "name": name, **state[0]}, state[1]))):
                    subjects.append({"label": name, "kind": "code", "name": name})
            reply = session.request({"op": "time", **spec, "subjects": subjects, "runs": 0, "warmup": 1,
                                     "perturb": False})
        return bool(reply.get("ok")) and len(subjects) == len(codes or {}) + compile_baseline
    except SandboxDied:
        return False
    finally:
        with phases.span("other"):
            session.close()


def environment() -> dict[str, Any]:
    """Versions and device facts for a record."""
    import subprocess

    import torch
    import triton

    props = torch.cuda.get_device_properties(0)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )
        driver = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        driver = None
    return {
        "gpu_name": props.name,
        "sm_count": props.multi_processor_count,
        "l2_cache_bytes": props.L2_cache_size,
        "shared_memory_per_sm_bytes": props.shared_memory_per_multiprocessor,
        "shared_memory_per_block_optin_bytes": props.shared_memory_per_block_optin,
        "driver": driver,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
    }


# -- the judge's side --------------------------------------------------------------------

#: Timed runs per code subject, and warm-up calls before them.
TIMED_RUNS = 100
WARMUP = 5
#: In a run of trusted subjects alone (measure's), a subject whose calls are slow is timed only
#: as many times as RUN_BUDGET_MS of its calls take, at least MIN_TIMED_RUNS times: its call
#: time is estimated from ESTIMATE_RUNS timed calls after its warm-up. A 2.26 s seed (batch
#: norm's) timed 100 times took 226 s of an H100's time; its runs then spread by 0.1%.
RUN_BUDGET_MS = 2000.0
MIN_TIMED_RUNS = 10
ESTIMATE_RUNS = 3
#: Timed runs of the code under test whose outputs the judge checks, picked at random.
CHECKED_RUNS = 2
#: Per timed run, wall time not covered by events may exceed the trusted codes' own by this
#: factor plus TIMING_SLACK_MS before the events are taken to hide work.
TIMING_FACTOR = 2.0
TIMING_SLACK_MS = 0.25
#: How far the median lead of the code under test may stray from the trusted codes' (relative).
LEAD_TOLERANCE = 0.05


@dataclass(frozen=True)
class Pace:
    """A timed batch of code as the judge saw it, per run: the events, the lead's spin, the wall
    time outside them and the copies of the checked runs' outputs (the judge's clock around the
    request), and the sandbox's host time in its checks of each call (CHECK_PARTS)."""

    events_ms: float  # mean
    lead_ms: float  # median
    outside_ms: float  # mean
    checks_ms: float  # mean

    @classmethod
    def of(cls, times: list[float], leads: list[float], wall_ms: float, host: dict[str, float],
           copies_ms: float) -> Pace:
        runs = len(times)
        return cls(sum(times) / runs, statistics.median(leads), (wall_ms - sum(times) - sum(leads) - copies_ms) / runs,
                   sum(host.get(part, 0.0) for part in CHECK_PARTS) / runs)


def wall_finding(answer: Pace, trusted: list[Pace]) -> str | None:
    """Why the answer's batch hides work from its events, or None, against the trusted code's
    batches timed before it (timing_order): its lead is the same spin, so a lead that differs
    claims time that was not spun; its wall time outside the events may be at most TIMING_FACTOR
    times the most a trusted batch left outside, plus TIMING_SLACK_MS."""
    if not trusted:
        return None
    usual = statistics.median(p.lead_ms for p in trusted)
    if abs(answer.lead_ms - usual) > LEAD_TOLERANCE * usual:
        return f"its lead before each run took {answer.lead_ms:.3f} ms, the trusted codes' {usual:.3f} ms"
    most = max(p.outside_ms for p in trusted)
    if answer.outside_ms > TIMING_FACTOR * max(most, 0.0) + TIMING_SLACK_MS \
            or answer.outside_ms < -0.05 * answer.events_ms - TIMING_SLACK_MS:
        checks = max(p.checks_ms for p in trusted)
        return (f"{answer.outside_ms:.3f} ms per run of wall time is not in the events (trusted codes: at most "
                f"{most:.3f} ms; the sandbox's checks of each call took {answer.checks_ms:.3f} ms, the trusted "
                f"codes' at most {checks:.3f} ms)")
    return None


@dataclass(frozen=True)
class Subject:
    """One thing timed in a side-by-side run."""

    label: str  # name in the results
    kind: str  # "code", "eager", "compile" or "ceiling"
    code: str = ""  # the code, for kind "code"
    trusted: bool = True  # project code: timed before any untrusted code is imported, and twice


@dataclass(frozen=True)
class TimingRun:
    """What one side-by-side run measured; failures are data."""

    stats: dict[str, dict[str, Any]]  # label -> summary of the first timing (and "repeat_median_ms")
    errors: dict[str, tuple[str, str]]  # label -> (reason, detail) for subjects that failed
    noise: float  # largest relative spread of a trusted code timed twice (A-B-A), 0 when none was
    ceiling: dict[str, Any]  # the problem's ceiling rate and the pure read/write/copy rates
    env: dict[str, Any]  # the device and versions, read by the referee
    walls: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> judge wall, events, host parts (ms)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (builder.judge.phases)

    def to_payload(self) -> dict[str, Any]:
        """The plain-dict form a job returns and a cache keeps."""
        return {"stats": self.stats, "errors": {k: list(v) for k, v in self.errors.items()}, "noise": self.noise,
                "ceiling": self.ceiling, "env": self.env, "walls": self.walls, "phases": self.phases}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> TimingRun:
        return cls({k: dict(v) for k, v in data["stats"].items()},
                   {k: (v[0], v[1]) for k, v in data.get("errors", {}).items()}, float(data.get("noise", 0.0)),
                   dict(data.get("ceiling", {})), dict(data.get("env", {})), dict(data.get("walls", {})),
                   dict(data.get("phases", {})))


def host_parts(result: Any) -> dict[str, float]:
    """The host milliseconds a subject's timed batch spent in each of HOST_PARTS, as its sandbox
    reported them (a report of another form counts as none: it only splits the phases)."""
    reported = result.get("host_ms") if isinstance(result, dict) else None
    if not isinstance(reported, dict):
        return {}
    return {part: max(0.0, float(ms)) for part, ms in reported.items()
            if part in HOST_PARTS and isinstance(ms, (int, float)) and ms == ms and ms != float("inf")}


def copy_times(result: Any, wall_ms: float) -> list[float] | None:
    """The event milliseconds of each copy of a checked run's outputs to the host, as the sandbox
    reported them; None for a report of another form, or copies that would outlast the batch."""
    reported = result.get("kept_ms") if isinstance(result, dict) else None
    if not isinstance(reported, list) or not all(type(ms) in (int, float) and 0 <= ms for ms in reported) \
            or not sum(reported) <= wall_ms:
        return None
    return [float(ms) for ms in reported]


def runs_within_budget(estimate_ms: list[float], runs: int) -> int:
    """How many of `runs` timed runs a subject gets whose calls took `estimate_ms`."""
    if not estimate_ms:
        return runs
    per_call = max(statistics.median(estimate_ms), 1e-6)
    return max(min(runs, math.ceil(RUN_BUDGET_MS / per_call)), min(runs, MIN_TIMED_RUNS))


def timing_order(subjects: list[Subject]) -> list[Subject]:
    """The batches of a side-by-side run, in order: the baselines (eager, torch.compile, the
    ceiling probes), the trusted codes, each untrusted code, then the trusted codes again. A
    trusted code's first batch thus runs in the state the baselines leave (torch.compile
    imported, its memory cached), as the answer's does, and is what the answer is held against."""
    trusted = [s for s in subjects if s.trusted]
    codes = [s for s in trusted if s.kind == "code"]
    return [s for s in trusted if s.kind != "code"] + codes + [s for s in subjects if not s.trusted] + codes


def plan_checkpoints(subjects: list[Subject], runs: int) -> dict[str, dict[int, int]]:
    """For each untrusted code subject, CHECKED_RUNS random runs -> the perturbation count then
    (every batch but the ceiling probes', in timing_order, perturbs the input once per run)."""
    import secrets

    plan: dict[str, dict[int, int]] = {}
    done = 0
    for subject in (s for s in timing_order(subjects) if s.kind != "ceiling"):
        if not subject.trusted:
            picks = sorted(secrets.SystemRandom().sample(range(runs), min(CHECKED_RUNS, runs)))
            plan[subject.label] = {i: done + i + 1 for i in picks}
        done += runs
    return plan


def run_side_by_side(problem: Any, subjects: list[Subject], *, runs: int = TIMED_RUNS, warmup: int = WARMUP,
                     timeout_s: float = 1800.0, warm: Any = None, device: str = "cuda") -> TimingRun:
    """Time `subjects` on one benchmark input in one sandbox, as the module doc describes.

    Trusted subjects are timed first (eager, compile, the ceiling, then the codes), then each
    untrusted one, then every trusted code again (timing_order): the A-B-A spread is the run's
    noise. Untrusted outputs are checked at random runs against the referee's reference, the
    input's keyed hash at the end, and each code's event times against the wall time this
    process saw (wall_finding). Where every subject is trusted, a slow one is timed fewer than
    `runs` times (runs_within_budget).
    """
    import secrets

    from builder.judge.compare import compare
    from builder.judge.phases import Phases
    from builder.judge.referee import ask_referee, output_scales
    from builder.judge.runner import SandboxDied, SandboxSession

    phases = Phases()
    plan = plan_checkpoints(subjects, runs)
    code_runs = sum(runs for s in subjects if s.kind in ("code", "eager", "compile"))
    total = code_runs + sum(runs for s in subjects if s.trusted and s.kind == "code")
    rng = secrets.SystemRandom()
    key = rng.getrandbits(62)
    spec, state = bench_request(problem, rng)
    errors: dict[str, tuple[str, str]] = {}
    session = SandboxSession(device, problem.dir, timeout_s=timeout_s, phases=phases, warm=warm)
    counts = sorted({c for p in plan.values() for c in p.values()})
    try:
        with phases.span("reference"):
            referee = ask_referee(problem, key, build=spec["build"], timeout_s=timeout_s,
                                  timing={"inputs": spec["inputs"], "seed": spec["seed"], "layout": spec["layout"],
                                          "checkpoints": counts, "total": total}, device=device)
    except SandboxDied:
        session.close()
        raise
    refs = dict(zip(counts, referee["outputs"]))
    scales = dict(zip(counts, output_scales(referee)))
    first: dict[str, list[float]] = {}
    second: dict[str, list[float]] = {}
    trusted_paces: list[Pace] = []  # the trusted codes' batches so far
    walls: dict[str, dict[str, float]] = {}
    ceiling: dict[str, Any] = {}
    # Without code under test no checkpoint counts perturbations: a slow code may run fewer times.
    budgeted = all(s.trusted for s in subjects)
    counts: dict[str, int] = {}  # label -> timed runs, where the budget set them

    def ask(subject: Subject, header: dict[str, Any], payload: Any = None) -> dict[str, Any]:
        """One request; a crash (the device failed, and the sandbox ended) ends the whole run."""
        reply = session.request(header, payload)
        if reply.get("reason") == "crash":
            raise SandboxDied("crash", f"{subject.label}: {reply.get('detail', '')}")
        return reply

    def load(subject: Subject, name: str) -> bool:
        path = session.write_code(name, subject.code)
        for step, payload in (({"op": "load", "label": name, "path": str(path), "trusted": subject.trusted}, None),
                              ({"op": "build", "label": name, "name": name, **state[0]}, state[1])):
            with phases.span("compile"):
                reply = ask(subject, step, payload)
            if not reply.get("ok"):
                errors[subject.label] = (reply.get("reason") or "import_error", reply.get("detail", ""))
                return False
        return True

    def check_output(subject: Subject, run: int, count: int) -> None:
        session.send({"op": "kept", "run": run})
        reply, _ = session.receive()
        wanted = refs[count]
        if reply.get("perturbed") != count or reply.get("count") != len(wanted):
            raise SandboxDied("sandbox_violation", "the sandbox kept another run's output than the judge checks")
        for index, ref in enumerate(wanted):
            _, raw = session.receive(max_payload=ref.numel() * ref.element_size())
            if raw is None or raw.numel() != ref.numel() * ref.element_size():
                raise SandboxDied("sandbox_violation", "the sandbox sent other bytes than the output it kept")
            verdict = compare(raw.view(ref.dtype).reshape(ref.shape), ref, problem.atol, problem.rtol,
                              scale=scales[count][index])
            if verdict.reason:
                which = f"output {index}: " if len(wanted) > 1 else ""
                errors.setdefault(subject.label, ("wrong_while_timed", f"timed run {run}: {which}{verdict.detail}"))

    def timed(subject: Subject, name: str, into: dict[str, list[float]]) -> None:
        base = {"op": "time", **spec, "perturb": subject.kind != "ceiling",
                "lead_ms": LEAD_MS,
                "subjects": [{"label": subject.label, "kind": subject.kind, "name": name, "trusted": subject.trusted}]}
        checks = plan.get(subject.label, {})
        if subject.kind != "ceiling":
            estimate = budgeted and subject.label not in counts
            with phases.span("compile" if subject.label not in first else "timing"):
                reply = ask(subject, {**base, "runs": ESTIMATE_RUNS if estimate else 0, "warmup": warmup,
                                      "perturb": False, "reserve": len(checks)})
            if not reply.get("ok"):
                errors[subject.label] = (reply.get("reason") or "runtime_error", reply.get("detail", ""))
                return
            if estimate:
                times = (reply.get("subjects") or {}).get(subject.label, {}).get("times") or []
                counts[subject.label] = runs_within_budget(times, runs)
        subject_runs = counts.get(subject.label, runs)
        start = time.perf_counter()
        reply = ask(subject, {**base, "runs": subject_runs, "warmup": 0, "keep": sorted(checks)})
        wall_ms = (time.perf_counter() - start) * 1e3
        result = reply["subjects"][subject.label] if reply.get("ok") else {}
        host = host_parts(result)
        kept = copy_times(result, wall_ms)
        checking = min(sum(host.get(part, 0.0) for part in CHECK_PARTS) + sum(kept or ()), wall_ms)
        phases.add("timing", (wall_ms - checking) / 1e3)
        phases.add("checks", checking / 1e3)
        if not reply.get("ok"):
            errors[subject.label] = (reply.get("reason") or "runtime_error", reply.get("detail", ""))
            return
        if "error" in result:
            errors.setdefault(subject.label, (result["error"], result.get("detail", "")))
            return
        with phases.span("checks"):
            for run, count in sorted(checks.items()):
                check_output(subject, run, count)
        if subject.kind == "ceiling":
            ceiling.update(result)
            return
        times, leads = result["times"], result.get("leads")
        if (len(times) != subject_runs or any(t <= 0 for t in times) or not isinstance(leads, list)
                or len(leads) != subject_runs or any(not 0 <= t < 10 * LEAD_MS for t in leads)
                or kept is None or len(kept) != len(checks)):
            raise SandboxDied("sandbox_violation", f"{subject.label}: the sandbox sent malformed timings")
        walls[subject.label] = {"wall_ms": wall_ms, "events_ms": sum(times), "leads_ms": sum(leads),
                                "copies_ms": sum(kept), "sandbox_wall_ms": float(reply.get("child_wall_s", 0.0)) * 1e3,
                                **{f"{part}_ms": ms for part, ms in host.items()}}
        if subject.kind == "code":
            pace = Pace.of(times, leads, wall_ms, host, sum(kept))
            if subject.trusted:
                trusted_paces.append(pace)
            elif device == "cuda":  # (a CPU's busy wait stretches with its load: there nothing is timed for a record)
                # Held against the batches before it only: what it leaves behind must not widen its own bound.
                finding = wall_finding(pace, trusted_paces)
                if finding is not None:
                    errors.setdefault(subject.label, ("timing_mismatch", finding))
        into[subject.label] = times

    try:
        session.start()
        names = {s.label: f"s{i}" for i, s in enumerate(subjects)}
        untrusted = [s for s in subjects if not s.trusted]
        for subject in timing_order(subjects):
            name = names[subject.label]
            if subject.kind != "code":
                timed(subject, name, first)
            elif subject.label in first:  # a trusted code's second batch
                timed(subject, name, second)
            elif subject.label not in errors and load(subject, name):
                timed(subject, name, first)
        with phases.span("checks"):
            reply = session.request({"op": "time", **spec, "subjects": [], "hash_key": key})
        if untrusted and reply.get("input_hashes") != referee["final_hashes"]:
            for subject in untrusted:
                errors.setdefault(subject.label, ("input_mutated", "the timing input changed during the runs"))
    finally:
        with phases.span("other"):
            session.close()
    if session.strays:
        for subject in untrusted:
            errors[subject.label] = ("sandbox_violation", f"{session.strays} process(es) outlived the sandbox")
    stats: dict[str, dict[str, Any]] = {}
    spreads = []
    for label, times in first.items():
        stats[label] = summarize(times)
        if label in second:
            again = summarize(second[label])["median_ms"]
            stats[label]["repeat_median_ms"] = again
            spreads.append(abs(again - stats[label]["median_ms"]) / min(again, stats[label]["median_ms"]))
    return TimingRun(stats, errors, max(spreads, default=0.0), ceiling, referee["env"], walls, phases.to_dict())

