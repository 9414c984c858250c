"""kernel-prompts: a dataset of GPU kernel-optimization prompts with verified reference solutions."""

from pathlib import Path

__version__ = "0.1.0"

#: The project checkout that holds seeds/, schemas/ and outputs/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Data files shipped inside the package (GPU registry, stage catalog, templates).
DATA_DIR = Path(__file__).resolve().parent / "data"
