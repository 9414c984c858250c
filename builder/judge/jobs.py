"""Typed jobs: the work a judge child runs for measure, bench and build, and what it sends back.

A job is a frozen dataclass of plain values. It crosses a process or node boundary as its
`kind` and `params()`; the child (builder.judge.child) rebuilds it with `from_params`, runs it
and writes `run().to_payload()`; the driver turns the payload back into the result with
`decode`. Each job checks, times or profiles every code it is given, in one sandbox session (a
verify job on a GPU: up to GPU_VERIFY_SESSIONS sessions at once): it runs only the project's own
code (the seed kernels and the stage solutions). Code under test is judged by
builder.judge.score, each answer in a sandbox of its own.

Jobs of one problem on one machine share a folder of compiler caches (`warm_folder`) when
`warm` is set: what one trusted session compiled, the next one loads instead of compiling.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

#: Seconds one code may take in each kind of job (a job of N codes gets N times as long).
TIMEOUTS_S = {"verify": 900.0, "time": 1800.0, "profile": 600.0}
#: Codes a verify job on a GPU checks at once, each in a session of its own (their benchmark-size
#: trials still one at a time). On the CPU they run one after another: the interpreter's calls
#: have a time budget that sessions sharing a core would eat.
GPU_VERIFY_SESSIONS = 4


def warm_folder(problem_dir: Path) -> Path:
    """The machine's private folder of compiler caches for the problem at `problem_dir`."""
    digest = hashlib.sha256(str(Path(problem_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "kp-warm" / f"{Path(problem_dir).name}-{digest}"


@dataclass(frozen=True)
class TypedJob:
    """What every job has: the problem folder it works on."""

    kind: ClassVar[str]
    #: Whether the job needs its GPU alone (it times or profiles); verification may share one.
    exclusive: ClassVar[bool] = True

    problem_dir: str  # the problem's seed folder

    def params(self) -> dict[str, Any]:
        """The job as plain data (what json.dumps accepts)."""
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TypedJob:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - names - {"workdir"})
        if unknown:
            raise ValueError(f"{cls.kind} job: unknown parameters {unknown}")
        return cls(**{k: v for k, v in params.items() if k in names})

    @classmethod
    def device_of(cls, params: dict[str, Any]) -> str:
        """The device kind the job's own process works with: the GPU (timing and profiling run
        nowhere else); a verify job says its own."""
        return "cuda"

    @property
    def timeout_s(self) -> float:
        return TIMEOUTS_S[self.kind] * max(1, len(getattr(self, "codes", {}) or {}))

    def problem(self) -> Any:
        from builder.seeds import load_problem

        return load_problem(Path(self.problem_dir))

    def warm_dir(self) -> Path | None:
        return warm_folder(Path(self.problem_dir)) if getattr(self, "warm", False) else None

    def run(self) -> Any:
        raise NotImplementedError

    @classmethod
    def decode(cls, payload: dict[str, Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def execute(cls, params: dict[str, Any]) -> dict[str, Any]:
        """What a child runs: the job from its params, its result as plain data."""
        return cls.from_params(params).run().to_payload()


@dataclass(frozen=True)
class VerifyJob(TypedJob):
    """Check codes for correctness: the manifest's cases, and `trials` benchmark-shape trials
    on a GPU. With `warm_compile`, torch.compile of the reference is then built at the benchmark
    shape in a session of its own, so that the timing job finds it compiled."""

    kind: ClassVar[str] = "verify"
    exclusive: ClassVar[bool] = False

    codes: dict[str, str] = field(default_factory=dict)  # label -> code
    device: str = "cuda"  # "cuda", or "cpu" for the Triton interpreter
    trials: int = 0  # benchmark-shape trials per code (GPU only)
    warm: bool = False  # share the problem's compiler caches on this machine
    warm_compile: bool = False  # also compile the reference at the benchmark shape (needs warm)

    @classmethod
    def device_of(cls, params: dict[str, Any]) -> str:
        return str(params.get("device", "cuda"))

    def run(self) -> Any:
        from builder.judge.correctness import VerifyBatch, verify_codes
        from builder.judge.phases import Phases
        from builder.judge.timing import warm_up

        problem = self.problem()
        batch = verify_codes(problem, self.codes, device=self.device, timeout_s=TIMEOUTS_S["verify"],
                             trials=self.trials, trusted=True, warm=self.warm_dir(),
                             sessions=GPU_VERIFY_SESSIONS if self.device == "cuda" else 1)
        if not (self.warm_compile and self.warm and self.device == "cuda"):
            return batch
        phases = Phases(batch.phases)
        warm_up(problem, self.warm_dir(), phases, compile_baseline=True, timeout_s=TIMEOUTS_S["time"])
        return VerifyBatch(batch.results, phases.to_dict())

    @classmethod
    def decode(cls, payload: dict[str, Any]) -> Any:
        from builder.judge.correctness import VerifyBatch

        return VerifyBatch.from_payload(payload)


@dataclass(frozen=True)
class TimeJob(TypedJob):
    """Time codes side by side in one sandbox (builder.judge.timing), with eager, torch.compile
    and the problem's ceiling probes when `baselines`. With `ncu`, a profile of `metrics` follows
    in the same process (a worker that hosts jobs runs a GPU's exclusive jobs one after another):
    its ncu-wrapped sandbox starts while the codes load, so that the ProfileJob takes it started."""

    kind: ClassVar[str] = "time"

    codes: dict[str, str] = field(default_factory=dict)  # label -> code
    baselines: bool = True
    warm: bool = False
    ncu: str | None = None  # the ncu executable of the profile that follows, if one does
    metrics: list[str] = field(default_factory=list)  # its ncu metric names

    def run(self) -> Any:
        from builder.judge.runner import JobFailure, SandboxDied, keep_spares
        from builder.judge.timing import Subject, run_side_by_side

        if self.ncu:
            from builder.judge.ncu import profiler

            keep_spares("cuda", 1, wrap=profiler(self.ncu, self.metrics))
        subjects = [Subject(label, "code", code) for label, code in self.codes.items()]
        if self.baselines:
            subjects += [Subject("eager", "eager"), Subject("compile", "compile"), Subject("ceiling", "ceiling")]
        try:
            return run_side_by_side(self.problem(), subjects, timeout_s=self.timeout_s, warm=self.warm_dir())
        except SandboxDied as exc:
            raise JobFailure(exc.reason, exc.detail) from None

    @classmethod
    def decode(cls, payload: dict[str, Any]) -> Any:
        from builder.judge.timing import TimingRun

        return TimingRun.from_payload(payload)


@dataclass(frozen=True)
class ProfileJob(TypedJob):
    """The ncu metrics of one forward of each code at the benchmark shape, under one ncu process."""

    kind: ClassVar[str] = "profile"

    codes: dict[str, str] = field(default_factory=dict)  # label -> code
    metrics: list[str] = field(default_factory=list)  # ncu metric names
    ncu: str = "ncu"  # the ncu executable
    warm: bool = False

    def run(self) -> Any:
        from builder.judge.ncu import profile_codes, profiler
        from builder.judge.runner import keep_spares

        keep_spares("cuda", 0, wrap=profiler(self.ncu, self.metrics))  # take one a TimeJob started; none behind it
        return profile_codes(self.problem(), self.codes, self.metrics, self.ncu, timeout_s=TIMEOUTS_S["profile"],
                             warm=self.warm_dir())

    @classmethod
    def decode(cls, payload: dict[str, Any]) -> Any:
        from builder.judge.ncu import ProfileBatch

        return ProfileBatch.from_payload(payload)


#: The typed jobs by kind.
JOB_TYPES: dict[str, type[TypedJob]] = {cls.kind: cls for cls in (VerifyJob, TimeJob, ProfileJob)}
