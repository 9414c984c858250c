"""Finished job results on disk, safe for many writers at once.

One file per job, `<kind>-<key>.json`, written through a uniquely named temp file and
`os.replace`, so a reader sees either the whole entry or none. A file that does not parse, or
that belongs to another job, is treated as absent and the job runs again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from builder.executors.base import RESULT_FIELDS, Job, write_atomically


class JobCache:
    """Results of finished jobs, keyed by the job's kind and key."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        """`enabled=False` (measure's --force) ignores stored results but still stores new ones."""
        self.folder, self.enabled = Path(folder), enabled

    @staticmethod
    def key(*parts: Any) -> str:
        """A cache key: a short hash of everything a job's result depends on."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def path(self, job: Job) -> Path:
        return self.folder / f"{job.kind}-{job.key}.json"

    def get(self, job: Job) -> dict[str, Any] | None:
        """The stored result of `job`, or None when there is none or it is unreadable."""
        if not self.enabled:
            return None
        try:
            entry = json.loads(self.path(job).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(entry, dict) or entry.get("kind") != job.kind or entry.get("key") != job.key:
            return None
        result = entry.get("result")
        if not isinstance(result, dict) or any(name not in result for name in RESULT_FIELDS):
            return None
        return result

    def put(self, job: Job, result: dict[str, Any]) -> None:
        """Store `result` for `job`; a later get sees the whole entry or none of it."""
        entry = {"kind": job.kind, "key": job.key, "result": result}
        write_atomically(self.path(job), json.dumps(entry, sort_keys=True))

    def keep_only(self, kind: str, jobs: list[Job]) -> int:
        """Remove the stored results of `kind` other than those of `jobs`; return how many."""
        wanted = {self.path(job).name for job in jobs}
        stale = [path for path in self.folder.glob(f"{kind}-*.json") if path.name not in wanted]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)
