import shutil
from pathlib import Path

import pytest

from builder import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
SHARED_SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests on machines without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    """A writable copy of the seeds/ folder."""
    dest = tmp_path / "seeds"
    shutil.copytree(SEEDS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest
