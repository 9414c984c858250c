"""Start a problem folder under seeds/ from a stage-1 prompt of the family.

`new_problem` writes seeds/<key>/ with manifest.toml (the benchmark, default tolerances and one
starter case), kernel.py (the prompt's current code, verbatim), seed_prompt.txt (the prompt's
bytes) and seed_metrics.json (the prompt's ncu metrics). What is left to write by hand is
reference.py, more cases and the solutions.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

from builder.errors import ManifestError
from builder.prompt import PromptSpec, parse
from builder.schema import check_file_data
from builder.seeds import SEEDS_DIR
from builder.stages import catalog

#: Tolerances of a new manifest (KernelBench's for fp32).
ATOL = RTOL = 1e-4
#: A problem key: a folder name that reads well in records and dataset rows.
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def parse_shape(text: str) -> tuple[int, ...]:
    """'64,128,65536' as (64, 128, 65536); a ManifestError names --shape otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) and int(p) > 0 for p in parts):
        raise ManifestError(f"--shape {text!r}: expected positive integers separated by commas, e.g. 64,128,65536")
    return tuple(int(p) for p in parts)


def parse_init(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """['kernel_size=8', 'ceil_mode=false'] as {'kernel_size': 8, 'ceil_mode': False}, in order."""
    init: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name.isidentifier():
            raise ManifestError(f"--init {item!r}: expected NAME=VALUE with NAME a Python identifier, e.g. kernel_size=8")
        if name in init:
            raise ManifestError(f"--init {item!r}: '{name}' is given twice")
        init[name] = _init_value(item, raw)
    return init


def starter_shape(shape: tuple[int, ...], init: dict[str, Any]) -> tuple[int, ...]:
    """A small input shape of the benchmark's rank that the Triton interpreter runs quickly.

    Batch and channels become at most 2 and 3; every further dimension is cut to twice the
    product of the two largest integer init arguments, plus one (at least 17): a window of
    kernel_size * dilation taps, with stride and padding of that size, still fits with
    outputs to spare.
    """
    ints = sorted(v for v in init.values() if isinstance(v, int) and not isinstance(v, bool) and v > 0)
    spatial = max(16, 2 * math.prod(ints[-2:])) + 1
    return tuple(min(dim, cap) for dim, cap in zip(shape, (2, 3, *[spatial] * max(0, len(shape) - 2))))


def new_problem(prompt: bytes, key: str, kernelbench_id: int, name: str, shape: tuple[int, ...],
                init: dict[str, Any], level: int = 1, root: Path | None = None) -> Path:
    """Write seeds/<key>/ for a stage-1 prompt and return the folder; nothing is written on an error."""
    root = Path(root) if root else SEEDS_DIR
    folder = root / key
    _check_inputs(folder, key, kernelbench_id, name, shape, level)
    spec = _seed_spec(prompt)
    manifest = manifest_text(level, kernelbench_id, name, init, shape, spec.variant)
    found = check_file_data(tomllib.loads(manifest), "manifest", folder / "manifest.toml")
    if found:
        raise ManifestError("\n".join(found))
    files = {
        "manifest.toml": manifest.encode(),
        "kernel.py": spec.code.encode("utf-8"),
        "seed_prompt.txt": prompt,
        "seed_metrics.json": (json.dumps({"origin": "seed prompt", "gpu": spec.gpu, "metrics": spec.metrics},
                                         indent=2) + "\n").encode(),
    }
    staging = root / f".{key}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for filename, data in files.items():
            (staging / filename).write_bytes(data)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def manifest_text(level: int, kernelbench_id: int, name: str, init: dict[str, Any], shape: tuple[int, ...],
                  variant: str | None) -> str:
    """The manifest of a new problem, with one starter case marked as such."""
    stage_one = catalog().stages[0]
    seed_variant = f'seed_variant = "{variant}"\n' if variant not in (None, stage_one.variants[0]) else ""
    init_table = _toml_table(init)
    return (
        f"# {name}, KernelBench level {level} problem {kernelbench_id}.\n"
        "# Started by `kernel-prompts new-problem` from the seed prompt beside it.\n"
        "\n[problem]\n"
        f"level = {level}\nid = {kernelbench_id}\nname = \"{name}\"\n{seed_variant}"
        "\n[benchmark]\n"
        "# Arguments of Model(...) in order, and the input shape, as in reference.py.\n"
        f"init = {init_table}\nshape = {_toml_list(shape)}\ndtype = \"float32\"\n"
        "\n[tolerance]\n"
        f"atol = {ATOL!r}\nrtol = {RTOL!r}\n"
        "\n# Small cases for correctness checks: each is a plain dict of init args and an input shape.\n"
        "# STARTER: this one case only repeats the benchmark's init args at a small shape. Add cases that\n"
        "# cover the other argument values (padding, stride vs kernel size, size-1 and odd dimensions)\n"
        "# and, where signs matter, inputs drawn from a range with negatives (low = -1.0).\n"
        "[[cases]]\n"
        "name = \"starter\"\n"
        f"init = {init_table}\nshape = {_toml_list(starter_shape(shape, init))}\n"
    )


def _check_inputs(folder: Path, key: str, kernelbench_id: int, name: str, shape: tuple[int, ...], level: int) -> None:
    if not KEY_PATTERN.fullmatch(key):
        raise ManifestError(f"--key {key!r}: use lower-case letters, digits and '_', starting with a letter")
    if folder.exists():
        raise ManifestError(f"{folder} already exists; pick another --key or remove the folder first")
    if level < 1 or kernelbench_id < 1:
        raise ManifestError(f"--level {level} / --kernelbench-id {kernelbench_id}: both must be 1 or more")
    match = re.fullmatch(r"(\d+)_\w+", name)
    if not match:
        raise ManifestError(f"--name {name!r}: expected a KernelBench name such as 44_Average_Pooling_1D")
    if int(match[1]) != kernelbench_id:
        raise ManifestError(f"--name {name!r} starts with {match[1]}, but --kernelbench-id is {kernelbench_id}")
    if not shape or any(not isinstance(d, int) or d < 1 for d in shape):
        raise ManifestError(f"--shape {shape!r}: expected positive integers")


def _seed_spec(prompt: bytes) -> PromptSpec:
    """The prompt's spec, checked to be usable as a seed: a stage-1 prompt on a registry GPU."""
    try:
        text = prompt.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"PROMPT is not UTF-8 text: {exc}") from exc
    spec = parse(text)
    first = catalog().stages[0].key
    if spec.stage not in (None, first):
        raise ManifestError(f"PROMPT is a '{spec.stage}' prompt; a problem starts from its stage-1 ('{first}') prompt")
    if spec.gpu is None:
        gpu_name = spec.gpu_block.splitlines()[0] if spec.gpu_block else ""
        raise ManifestError(f"PROMPT's '# Target GPU' block ({gpu_name!r}) matches no GPU registry entry; "
                            "add the GPU to builder/data/gpus.toml first")
    if not spec.metrics or not all(isinstance(v, dict) for v in spec.metrics.values()):
        raise ManifestError("PROMPT's '[NCU PROFILING METRICS]' section holds no {kernel_name: {metric: value}} "
                            "metrics for seed_metrics.json")
    return spec


def _init_value(item: str, raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break
        return value
    raise ManifestError(f"--init {item!r}: the value must be an integer, a finite number, true or false")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _toml_table(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in values.items()) + " }" if values else "{}"


def _toml_list(values: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"
