"""Nsight Compute: profile one forward of each code at the benchmark shape and parse its metrics.

ncu wraps the sandbox process; the sandbox warms each code up, then runs it once inside the NVTX
range "profiled", which is the only range ncu collects. Code under test is profiled alone, in a
sandbox of its own; the project's own codes of a problem share one sandbox under one ncu, and a
marker kernel launched inside the range before each forward tells their launches apart.
Metrics come back as {kernel_name: {metric: value}}; a metric ncu did not report is None with a
note saying so. No number is ever made up.
"""

from __future__ import annotations

import csv
import functools
import io
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVTX_RANGE = "profiled"


def ncu_path() -> str | None:
    return shutil.which("ncu")


def ncu_version(ncu: str) -> str | None:
    out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"Version\s+([\w.\-]+)", out)
    return found.group(1) if found else None


def wrap_command(ncu: str, metrics: list[str], log_file: Path) -> list[str]:
    """The ncu prefix for the child command: one NVTX range, fixed clocks left alone, raw CSV."""
    return [
        ncu,
        "--clock-control", "none",
        "--nvtx", "--nvtx-include", f"{NVTX_RANGE}/",
        "--csv", "--page", "raw",
        "--metrics", ",".join(metrics),
        "--log-file", str(log_file),
    ]


def is_launch_attribute(metric: str) -> bool:
    """launch__* values describe the launch itself: ncu reports them for every kernel, but
    --query-metrics lists only hardware counters, so they never appear there."""
    return metric.startswith("launch__")


def available_metrics(ncu: str, chip: str | None = None) -> set[str]:
    """Every metric name (with suffixes) ncu lists for this GPU, or for `chip` (e.g. 'ad102')."""
    cmd = [ncu, "--query-metrics", "--query-metrics-mode", "all"]
    if chip:
        cmd += ["--chip", chip]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    return {line.split()[0] for line in out.splitlines() if re.match(r"^[a-z][\w.]*__[\w.]+", line)}


def parse_launches(text: str, metrics: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every profiled launch of `ncu --csv --page raw` output, in order, as (kernel name, metrics).

    ncu prints its own lines (==PROF== ...) around the table, a header row, then a units row.
    Values ncu left empty or marked 'n/a' become None.
    """
    lines = [l for l in text.splitlines() if l.startswith('"')]
    if not lines:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    header = rows[0]
    if "Kernel Name" not in header:
        return []
    name_col = header.index("Kernel Name")
    launches = []
    for row in rows[1:]:
        if len(row) != len(header) or not row[name_col] or row[0] == "":
            continue  # the units row has an empty ID
        kernel = row[name_col].split("(")[0].strip()
        launches.append((kernel, {m: _number(row[header.index(m)]) if m in header else None for m in metrics}))
    return launches


def parse_csv(text: str, metrics: list[str]) -> dict[str, dict[str, Any]]:
    """{kernel_name: {metric: value}}; with several launches of one kernel the last one wins."""
    return {kernel: values for kernel, values in parse_launches(text, metrics)}


def _number(raw: str) -> float | int | None:
    raw = raw.strip().replace(",", "")
    if raw in ("", "n/a", "N/A"):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in raw else value


#: Metric whose sum over a forward's kernels is the GPU time the profiler saw.
DURATION = "gpu__time_duration.sum"
#: Kernels forward may launch besides the answer's own: PyTorch's fills and copies.
ALLOWED_KERNEL_SIGNS = ("FillFunctor", "fill_kernel", "copy_kernel", "direct_copy_kernel", "CatArrayBatchedCopy")


@dataclass(frozen=True)
class Profiler:
    """ncu around a sandbox process (a builder.judge.runner.Wrap): the binary and every metric it
    collects. Sessions under equal profilers can take the same sandboxes started ahead."""

    ncu: str
    metrics: tuple[str, ...]

    def prefix(self, log: Path) -> list[str]:
        return wrap_command(self.ncu, list(self.metrics), log)


def profiler(ncu: str, metrics: Iterable[str]) -> Profiler:
    """The profiler that collects `metrics` and the forward's kernel time, as `profile_codes` asks."""
    return Profiler(ncu, tuple(dict.fromkeys([*metrics, DURATION])))


@dataclass(frozen=True)
class Profile:
    """What ncu saw of one forward at the benchmark shape."""

    ok: bool  # the run worked and ncu reported launches
    reason: str | None  # reason code when not
    detail: str  # sentence about a failure
    launches: tuple[tuple[str, dict[str, Any]], ...] = ()  # (kernel name, metrics) per launch, in order
    guard_launches: int = 0  # Triton launches the sandbox's guards counted in the same forward
    guard_finding: tuple[str, str] | None = None  # what the sandbox's guards saw in that forward, if anything

    def to_payload(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "detail": self.detail,
                "launches": [[name, values] for name, values in self.launches],
                "guard_launches": self.guard_launches,
                "guard_finding": list(self.guard_finding) if self.guard_finding else None}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Profile:
        finding = data.get("guard_finding")
        return cls(bool(data["ok"]), data.get("reason"), data.get("detail", ""),
                   tuple((name, dict(values)) for name, values in data.get("launches", [])),
                   int(data.get("guard_launches", 0)), (finding[0], finding[1]) if finding else None)

    def metrics(self) -> dict[str, dict[str, Any]]:
        """{kernel_name: {metric: value}}, the last launch of a kernel winning (as records keep them)."""
        return {kernel: {m: v for m, v in values.items() if m != DURATION} for kernel, values in self.launches}

    def gpu_ms(self) -> float | None:
        """The summed kernel time of the forward, in ms, or None when ncu reported none."""
        times = [v.get(DURATION) for _, v in self.launches]
        return sum(times) / 1e6 if times and all(t is not None for t in times) else None


def foreign_kernels(launches: Iterable[tuple[str, Any]], own: Iterable[str]) -> list[str]:
    """Kernel names that are neither one of `own` (the answer's @triton.jit functions) nor an
    allowed fill or copy."""
    own = set(own)
    return sorted({name for name, _ in launches
                   if name not in own and not any(sign in name for sign in ALLOWED_KERNEL_SIGNS)})


#: The kernel the sandbox launches inside the profiled range before each code's forward when
#: several codes share one profiled process: it marks where one code's launches begin.
MARKER_KERNEL = "kp_profile_marker"


@functools.cache
def marker_kernel() -> Any:
    """A one-store Triton kernel named MARKER_KERNEL."""
    import triton
    import triton.language as tl

    @triton.jit
    def kp_profile_marker(ptr):
        tl.store(ptr, 1.0)

    return kp_profile_marker


def split_at_markers(launches: list[tuple[str, dict[str, Any]]], count: int) -> list[list[tuple[str, dict[str, Any]]]] | None:
    """The launches after each of `count` markers, in order; None when the markers are not there
    exactly `count` times, first."""
    groups: list[list[tuple[str, dict[str, Any]]]] = []
    for name, values in launches:
        if name == MARKER_KERNEL:
            groups.append([])
        elif not groups:
            return None
        else:
            groups[-1].append((name, values))
    return groups if len(groups) == count else None


@dataclass(frozen=True)
class ProfileBatch:
    """What ncu saw of several codes profiled in one process, and the time it took."""

    profiles: dict[str, Profile]  # label -> its profile
    phases: dict[str, float]  # seconds per phase (builder.judge.phases)

    def to_payload(self) -> dict[str, Any]:
        return {"profiles": {label: p.to_payload() for label, p in self.profiles.items()}, "phases": self.phases}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> ProfileBatch:
        return cls({label: Profile.from_payload(p) for label, p in data["profiles"].items()},
                   dict(data.get("phases", {})))


def profile(problem: Any, code: str, metrics: list[str], ncu: str, *, timeout_s: float, seed: int | None = None) -> Profile:
    """Profile one forward of code under test at the benchmark shape, after warm-up, in a sandbox
    of its own under ncu."""
    return profile_codes(problem, {"candidate": code}, metrics, ncu, timeout_s=timeout_s, seed=seed,
                         trusted=False).profiles["candidate"]


def profile_codes(problem: Any, codes: dict[str, str], metrics: list[str], ncu: str, *, timeout_s: float,
                  seed: int | None = None, trusted: bool = True, warm: Any = None) -> ProfileBatch:
    """Profile one forward of each of `codes` (label -> code) at the benchmark shape under one ncu
    process: trusted project code shares one sandbox, and a marker kernel launched before each
    forward tells its launches apart. Code under test is profiled alone (`profile`)."""
    import random
    import secrets

    from builder.judge.phases import Phases
    from builder.judge.runner import SandboxDied, SandboxSession
    from builder.judge.timing import bench_request

    if not trusted and len(codes) != 1:
        raise ValueError("code under test is profiled alone: pass one code with trusted=False")
    marked = len(codes) > 1
    phases = Phases()
    wrap = profiler(ncu, metrics)
    asked = list(wrap.metrics)
    session = SandboxSession("cuda", problem.dir, timeout_s=timeout_s * len(codes), phases=phases, warm=warm, wrap=wrap)
    text = ""
    failed: dict[str, Profile] = {}
    seen: dict[str, tuple[int, tuple[str, str] | None]] = {}
    try:
        session.start()
        rng = random.Random(seed) if seed is not None else secrets.SystemRandom()
        spec, (state, values) = bench_request(problem, rng)
        for index, (label, code) in enumerate(codes.items()):
            name = f"m{index}"
            path = session.write_code(f"c{index}", code)
            with phases.span("compile"):
                replies = [session.request({"op": "load", "label": f"c{index}", "path": str(path), "trusted": trusted})]
                if replies[0].get("ok"):
                    replies.append(session.request({"op": "build", "label": f"c{index}", "name": name, **state}, values))
            if not replies[-1].get("ok"):
                failed[label] = Profile(False, replies[-1].get("reason") or "import_error", replies[-1].get("detail", ""))
                continue
            with phases.span("ncu"):
                reply = session.request({"op": "profile", "name": name, **spec, "marker": marked})
            if not reply.get("ok"):
                failed[label] = Profile(False, reply.get("reason") or "runtime_error", reply.get("detail", ""))
                continue
            seen[label] = (int(reply.get("launches", 0)), tuple(reply["finding"]) if reply.get("finding") else None)
        with phases.span("ncu"):
            session.request({"op": "bye"})
            session.proc.wait(timeout=120)  # ncu writes its log as the profiled process ends
            log = session.wrap_log  # in the box: ncu runs as the sandbox's user
            text = log.read_text(errors="replace") if log.exists() else ""
    except SandboxDied as exc:
        why = Profile(False, exc.reason, f"{exc.detail} {session.log_tail()[-600:]}")
        return ProfileBatch({label: failed.get(label, why) for label in codes}, phases.to_dict())
    finally:
        with phases.span("other"):
            session.close()
    launches = parse_launches(text, asked)
    groups = split_at_markers(launches, len(seen)) if marked else [launches]
    profiles: dict[str, Profile] = dict(failed)
    for i, (label, (guard_launches, finding)) in enumerate(seen.items()):
        own = tuple(groups[i]) if groups is not None else ()
        if not own:
            reason = "guard_disabled" if guard_launches else "crash"
            profiles[label] = Profile(False, reason, f"ncu profiled no kernel in the NVTX range, the guards counted "
                                                     f"{guard_launches} launch(es): {text[-300:]}", (), guard_launches)
        else:
            profiles[label] = Profile(True, None, "", own, guard_launches, finding)  # type: ignore[arg-type]
    return ProfileBatch({label: profiles[label] for label in codes}, phases.to_dict())
