"""Load the problem folders under seeds/ into Problem records.

A problem folder holds manifest.toml, reference.py, kernel.py (the starting kernel), and
optionally seed_prompt.txt, seed_metrics.json, solutions/<stage>.py and wrong/ fixtures.
Any folder with a manifest.toml is a problem: adding one needs no code change. The manifest's
inputs, cases and input space are read by builder.manifest (format version 2, of which the
single-input pooling manifests are the shorthand form).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder import PROJECT_ROOT
from builder.errors import ManifestError
from builder.manifest import Case, Input, Space, benchmark_inputs, case_of, space_of
from builder.schema import check_file_data

SEEDS_DIR = PROJECT_ROOT / "seeds"
REQUIRED_FILES = ("manifest.toml", "reference.py", "kernel.py")


@dataclass(frozen=True)
class SeedMetrics:
    """The ncu metrics printed in the seed prompt, kept as data with their origin."""

    origin: str  # where the numbers come from ("seed prompt")
    gpu: str  # GPU registry key they were measured on
    metrics: dict[str, dict[str, float]]  # {kernel_name: {metric: value}}


@dataclass(frozen=True)
class Problem:
    """One optimization problem as described by its seed folder."""

    key: str  # folder name, e.g. "avgpool1d"
    dir: Path  # the seed folder
    level: int  # KernelBench level
    id: int  # KernelBench problem id
    name: str  # KernelBench problem name
    seed_variant: str  # stage-1 text variant the seed prompt used
    init: dict[str, Any]  # benchmark init kwargs of Model
    inputs: tuple[Input, ...]  # the benchmark's inputs of forward, in order
    atol: float  # absolute tolerance (scaled by min(1, max|ref|): builder.judge.compare)
    rtol: float  # relative tolerance
    cases: tuple[Case, ...]  # small verification cases
    manifest_sha256: str  # sha256 of manifest.toml bytes
    benchmark_sha256: str  # sha256 of the manifest's [benchmark] table: what timings and profiles depend on
    checks_sha256: str  # sha256 of the manifest's verification tables ([tolerance], [[cases]], [space])
    space: Space | None = None  # the input space extra checks are drawn from; None when not declared
    max_speedup_vs_eager: float = 10.0  # a speedup over eager above this is rejected as suspect

    @property
    def benchmark_case(self) -> Case:
        """The benchmark itself as a case: its init args and inputs."""
        return Case("benchmark", self.init, self.inputs)

    @property
    def shape(self) -> tuple[int, ...]:
        """The first input's benchmark shape (the only one of a single-input problem)."""
        return self.inputs[0].shape

    @property
    def dtype(self) -> str:
        """The first input's dtype."""
        return self.inputs[0].dtype

    @property
    def reference_path(self) -> Path:
        return self.dir / "reference.py"

    @property
    def kernel_path(self) -> Path:
        """The starting kernel, verbatim from the seed prompt."""
        return self.dir / "kernel.py"

    @property
    def wrong_dir(self) -> Path:
        return self.dir / "wrong"

    @property
    def seed_prompt_path(self) -> Path:
        return self.dir / "seed_prompt.txt"

    @property
    def solutions(self) -> dict[str, Path]:
        """Reference solutions present, by stage key."""
        folder = self.dir / "solutions"
        return {p.stem: p for p in sorted(folder.glob("*.py"))} if folder.is_dir() else {}

    def seed_metrics(self) -> SeedMetrics | None:
        path = self.dir / "seed_metrics.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return SeedMetrics(origin=data["origin"], gpu=data["gpu"], metrics=data["metrics"])

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise ManifestError(f"{self.dir / 'manifest.toml'}: no case named '{name}'")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha256_data(data: Any) -> str:
    """sha256 of parsed manifest data in a canonical form: comments and layout do not count."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


#: The manifest tables verification depends on (and timings do not).
CHECK_TABLES = ("tolerance", "cases", "space")


def load_problem(folder: Path) -> Problem:
    """Read and check one seed folder; raise ManifestError naming the file and field."""
    folder = Path(folder).resolve()  # sandboxes and the referee read it from other folders
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise ManifestError(f"{folder}: missing {name}")
    manifest = folder / "manifest.toml"
    try:
        data = tomllib.loads(manifest.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{manifest}: not valid TOML: {exc}") from exc
    found = check_file_data(data, "manifest", manifest)
    names = [c.get("name") for c in data.get("cases", []) if isinstance(c, dict)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        found.append(f"{manifest}: cases: duplicate case names {dupes}")
    if found:
        raise ManifestError("\n".join(found))
    meta, bench, tol = data["problem"], data["benchmark"], data["tolerance"]
    inputs = benchmark_inputs(manifest, bench)
    cases = tuple(case_of(manifest, i, c, inputs) for i, c in enumerate(data["cases"]))
    space = space_of(manifest, data["space"], inputs) if "space" in data else None
    return Problem(
        key=folder.name,
        dir=folder,
        level=meta["level"],
        id=meta["id"],
        name=meta["name"],
        seed_variant=meta.get("seed_variant", "default"),
        init=dict(bench["init"]),
        inputs=inputs,
        atol=float(tol["atol"]),
        rtol=float(tol["rtol"]),
        cases=cases,
        manifest_sha256=sha256_file(manifest),
        benchmark_sha256=sha256_data(data["benchmark"]),
        checks_sha256=sha256_data({name: data.get(name) for name in CHECK_TABLES}),
        space=space,
        max_speedup_vs_eager=float(bench.get("max_speedup_vs_eager", 10.0)),
    )


def load_problems(root: Path | None = None) -> list[Problem]:
    """Every problem folder under `root` (default: the project's seeds/), sorted by key."""
    root = Path(root) if root else SEEDS_DIR
    folders = sorted(p.parent for p in root.glob("*/manifest.toml"))
    return [load_problem(f) for f in folders]


def get_problem(key: str, root: Path | None = None) -> Problem:
    """The problem with folder name `key`; the error lists the known keys."""
    problems = {p.key: p for p in load_problems(root)}
    if key not in problems:
        raise ManifestError(f"unknown problem '{key}'; known: {', '.join(sorted(problems))}")
    return problems[key]
