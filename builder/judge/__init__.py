"""The judge: static rules, sandboxed correctness, checked timing and profiling of Triton code."""

import hashlib
from pathlib import Path


def _version() -> str:
    """A digest of the judge's own source: verdicts cached under it go stale when the judge changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


#: Changes whenever any judge module changes.
JUDGE_VERSION = _version()
