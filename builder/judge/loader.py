"""Import code from real files: Triton's `@triton.jit` reads a kernel's source from its file.

Code under test is written into a scratch directory and imported from there; the reference
`reference.py` files are imported from where they lie. Only a judge child process may call
`load_code`: importing runs the code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Import the Python file at `path` as a fresh module named `name` (default: from its path)."""
    path = Path(path).resolve()
    if name is None:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        name = f"kp_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_code(code: str, scratch_dir: Path, stem: str = "candidate") -> ModuleType:
    """Write `code` to `<scratch_dir>/<stem>_<hash>.py` and import it from there."""
    digest = hashlib.sha256(code.encode()).hexdigest()[:12]
    scratch_dir = Path(scratch_dir)
    scratch_dir.mkdir(parents=True, exist_ok=True)
    path = scratch_dir / f"{stem}_{digest}.py"
    path.write_text(code)
    return load_module(path, name=f"kp_{stem}_{digest}")
