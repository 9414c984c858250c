"""Where a judge's time goes: seconds per phase, summed over the work of one job or one answer.

Every job result and every verdict carries its phases (PHASES lists them); measure and score
print them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

#: The phases, in report order, and what each one covers.
PHASES: dict[str, str] = {
    "wait": "waiting for a GPU (queued behind other jobs)",
    "start": "process start and imports (job children, referees, sandboxes)",
    "compile": "loading code and first calls (Triton compiles, torch.compile)",
    "reference": "reference outputs and input hashes (the referee)",
    "checks": "correctness checks at small sizes (cases, drawn checks, comparisons)",
    "trials": "benchmark-size trials (the answer's calls, its outputs sent and compared)",
    "timing": "timed runs and ceiling probes",
    "ncu": "Nsight Compute profiling",
    "other": "everything else (cleanup, writing records)",
}


class Phases:
    """Seconds per phase; `span` times a block, `add` adds seconds measured elsewhere."""

    def __init__(self, seconds: Mapping[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        for name, value in (seconds or {}).items():
            self.add(name, value)

    def add(self, name: str, seconds: float) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; known: {', '.join(PHASES)}")
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, float(seconds))

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)

    def merge(self, other: Phases | Mapping[str, float] | None) -> Phases:
        items = other.seconds if isinstance(other, Phases) else (other or {})
        for name, value in items.items():
            self.add(name, value)
        return self

    def total(self) -> float:
        return sum(self.seconds.values())

    def to_dict(self) -> dict[str, float]:
        """Rounded seconds in report order (phases that took no time left out)."""
        return {name: round(self.seconds[name], 3) for name in PHASES if self.seconds.get(name)}

    def table(self, wall_s: float | None = None) -> str:
        """One line per phase: seconds and share of the summed time; the wall time under them."""
        total = self.total() or 1.0
        lines = [f"{'phase':<10} {'seconds':>8} {'share':>6}  what"]
        for name, what in PHASES.items():
            if self.seconds.get(name):
                lines.append(f"{name:<10} {self.seconds[name]:>8.1f} {100 * self.seconds[name] / total:>5.0f}%  {what}")
        if wall_s is not None:
            lines.append(f"{'wall':<10} {wall_s:>8.1f}         (phases of jobs that ran at once add up to more)")
        return "\n".join(lines)
