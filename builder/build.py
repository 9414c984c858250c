"""The main job: from seeds and records to the dataset folder.

On a GPU machine, what is not yet measured is measured first. The reference solutions are
re-checked on the CPU interpreter, then the rows are joined and written in the Hub layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from builder.card import CardParams
from builder.dataset import write_dataset
from builder.errors import RecordError
from builder.executors import Job, JobCache
from builder.judge import judge_version
from builder.judge.correctness import VerifyResult
from builder.judge.jobs import TIMEOUTS_S, VerifyJob
from builder.measure import measure
from builder.records import MEASUREMENTS_DIR, sha256_file
from builder.rows import Skipped, build_rows
from builder.seeds import Problem

T = TypeVar("T")
#: Wraps a list of work items to show progress while they are consumed.
ProgressBar = Callable[[list[T], str], Iterable[T]]


def no_bar(items: list[T], label: str) -> Iterator[T]:
    return iter(items)


#: Where CPU verdicts are cached, keyed by the code, the manifest's checks, the reference and the judge.
VERIFY_CACHE = MEASUREMENTS_DIR.parent / "verify-cache"


def verify_on_cpu(problems: list[Problem], bar: ProgressBar = no_bar, cache_dir: Path | None = None,
                  workers: int | None = None) -> list[str]:
    """Re-check every reference solution on the manifest's cases in the CPU interpreter.

    A verdict is cached under the sha256 of the code, the manifest's checks and the reference and
    the judge's version, so a rebuild with nothing changed runs nothing; the cache keeps the
    verdicts of these solutions only (a verdict of an older judge or code is removed). The
    solutions of a problem left to check go to one sandbox session; problems are checked in
    parallel, `workers` at a time (default: one per CPU). Returns one line per solution that
    failed, empty when all pass.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    cache = JobCache(cache_dir or VERIFY_CACHE)
    entries: dict[tuple[str, str], Job] = {}
    todo: dict[str, dict[str, str]] = {}
    for problem in problems:
        for key, path in problem.solutions.items():
            digest = cache.key(sha256_file(path), problem.checks_sha256, sha256_file(problem.reference_path),
                               judge_version())
            entries[problem.key, key] = Job("verify", digest, {}, TIMEOUTS_S["verify"])
            if cache.get(entries[problem.key, key]) is None:
                todo.setdefault(problem.key, {})[key] = path.read_text()
    by_key = {p.key: p for p in problems}

    def check(key: str) -> None:
        problem = by_key[key]
        batch = VerifyJob(str(problem.dir), todo[key], device="cpu").run()
        for label, result in batch.results.items():
            cache.put(entries[key, label], {"status": "ok", "reason": None, "detail": "", "payload": result.to_payload()})

    keys = list(todo)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        done = pool.map(check, keys)
        for _ in bar(keys, "verify solutions (CPU interpreter)"):
            next(done)
    cache.keep_only("verify", list(entries.values()))
    failures = []
    for (key, label), job in entries.items():
        result = VerifyResult.from_payload(cache.get(job)["payload"])  # type: ignore[index]
        if not result.ok:
            failures.append(f"{key}/{label}: {result.reason}: {result.detail.strip()[-300:]}")
    return failures


def build(problems: list[Problem], out: Path, *, allow_missing: bool = False, skip_verify: bool = False,
          measure_missing: bool | None = None, records_root: Path | None = None, bar: ProgressBar = no_bar,
          card_params: CardParams = CardParams(), progress: Callable[[str], None] = print,
          verify_cache: Path | None = None) -> tuple[Path, list[dict[str, Any]], list[Skipped]]:
    """Build the dataset folder at `out`; return it with its rows and the rows skipped.

    measure_missing: None means "when a CUDA GPU is present".
    """
    if measure_missing is None:
        import torch

        measure_missing = torch.cuda.is_available()
    if measure_missing:
        measure(problems, root=records_root, progress=progress)
    if not skip_verify:
        failures = verify_on_cpu(problems, bar, verify_cache)
        if failures:
            raise RecordError("reference solutions failed the CPU check:\n  " + "\n  ".join(failures))
    rows, skipped = build_rows(problems, root=records_root)
    missing = [s for s in skipped if s.missing]
    if missing and not allow_missing:
        lines = "\n  ".join(f"{s.row_id}: {s.reason}" for s in missing)
        raise RecordError(f"{len(missing)} row(s) lack fresh records (run `kernel-prompts measure` on a GPU, "
                          f"or pass --allow-missing):\n  {lines}")
    if not rows:
        raise RecordError("no row has fresh records: nothing to build")
    return write_dataset(rows, out, card_params=card_params, skipped=skipped), rows, skipped
