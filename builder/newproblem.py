"""Start a problem folder under seeds/ from a stage-1 prompt of the family.

`new_problem` writes seeds/<key>/ with manifest.toml (the benchmark as one float input of a shape
or as inputs of any number and dtype, default tolerances, one starter case and a commented
[space]: builder.starter), kernel.py (the prompt's current code, verbatim), seed_prompt.txt (the prompt's
bytes) and seed_metrics.json (the prompt's ncu metrics). What is left to write by hand is
reference.py, more cases and the solutions.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

from builder.errors import ManifestError
from builder.manifest import FLOAT_DTYPES, INT_DTYPES, Input
from builder.prompt import PromptSpec, parse
from builder.schema import check_file_data
from builder.seeds import SEEDS_DIR
from builder.stages import catalog
from builder.starter import inputs_manifest, shorthand_manifest, starter_shape

__all__ = ["new_problem", "parse_init", "parse_input", "parse_shape", "starter_shape"]

#: A problem key: a folder name that reads well in records and dataset rows.
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


def parse_shape(text: str) -> tuple[int, ...]:
    """'64,128,65536' as (64, 128, 65536); a ManifestError names --shape otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) and int(p) > 0 for p in parts):
        raise ManifestError(f"--shape {text!r}: expected positive integers separated by commas, e.g. 64,128,65536")
    return tuple(int(p) for p in parts)


def parse_input(text: str) -> Input:
    """'predictions=32768x4096:float32' or 'targets=32768:int64:0:4096' (NAME=DIMS[:DTYPE[:LOW:HIGH]],
    DIMS joined by x, empty for a 0-dim tensor) as an Input; a ManifestError names --input otherwise."""
    example = "e.g. predictions=32768x4096:float32 or targets=32768:int64:0:4096"
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name.strip().isidentifier() or len(parts) not in (1, 2, 4):
        raise ManifestError(f"--input {text!r}: expected NAME=DIMS[:DTYPE[:LOW:HIGH]], {example}")
    dims = [d.strip() for d in parts[0].split("x")] if parts[0].strip() else []
    if not all(re.fullmatch(r"\d+", d) and int(d) > 0 for d in dims):
        raise ManifestError(f"--input {text!r}: the dims must be positive integers joined by x, {example}")
    dtype = parts[1].strip() if len(parts) > 1 else "float32"
    if dtype not in FLOAT_DTYPES + INT_DTYPES:
        raise ManifestError(f"--input {text!r}: dtype {dtype!r} is not one of {', '.join(FLOAT_DTYPES + INT_DTYPES)}")
    floating = dtype in FLOAT_DTYPES
    if len(parts) == 4:
        try:
            low, high = (float(p) if floating else int(p) for p in parts[2:])
        except ValueError:
            kind = "numbers" if floating else "integers"
            raise ManifestError(f"--input {text!r}: LOW and HIGH must be {kind}") from None
        if not low < high:
            raise ManifestError(f"--input {text!r}: LOW must be below HIGH")
    elif floating:
        low, high = 0.0, 1.0
    else:
        raise ManifestError(f"--input {text!r}: an integer input needs its range, NAME=DIMS:{dtype}:LOW:HIGH "
                            "(values are drawn from [LOW, HIGH))")
    return Input(name.strip(), tuple(int(d) for d in dims), dtype, low, high)


def parse_init(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """['kernel_size=8', 'ceil_mode=false', 'normalized_shape=[64,256,256]'] as {'kernel_size': 8,
    'ceil_mode': False, 'normalized_shape': [64, 256, 256]}, in order. A value is any TOML value
    (a quoted string, a list), or true/false in any case."""
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


def new_problem(prompt: bytes, key: str, kernelbench_id: int, name: str, shape: tuple[int, ...] | None = None,
                init: dict[str, Any] | None = None, level: int = 1, root: Path | None = None, *,
                inputs: tuple[Input, ...] | None = None) -> Path:
    """Write seeds/<key>/ for a stage-1 prompt and return the folder; nothing is written on an error.
    The benchmark's input is `shape` (one float32 input, the pooling shorthand) or `inputs`."""
    root = Path(root) if root else SEEDS_DIR
    folder = root / key
    init = dict(init or {})
    _check_inputs(folder, key, kernelbench_id, name, shape, inputs, level)
    spec = _seed_spec(prompt)
    manifest = manifest_text(level, kernelbench_id, name, init, shape if inputs is None else inputs, spec.variant)
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


def manifest_text(level: int, kernelbench_id: int, name: str, init: dict[str, Any],
                  benchmark: tuple[int, ...] | tuple[Input, ...], variant: str | None) -> str:
    """The manifest of a new problem (builder.starter): the shorthand for a shape, [[benchmark.inputs]]
    for Inputs."""
    stage_one = catalog().stages[0]
    variant_line = f'seed_variant = "{variant}"\n' if variant not in (None, stage_one.variants[0]) else ""
    if benchmark and all(isinstance(i, Input) for i in benchmark):
        return inputs_manifest(level, kernelbench_id, name, init, benchmark, variant_line)  # type: ignore[arg-type]
    return shorthand_manifest(level, kernelbench_id, name, init, benchmark, variant_line)  # type: ignore[arg-type]


def _check_inputs(folder: Path, key: str, kernelbench_id: int, name: str, shape: tuple[int, ...] | None,
                  inputs: tuple[Input, ...] | None, level: int) -> None:
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
    if (shape is None) == (inputs is None):
        raise ManifestError("give the benchmark's input as --shape (one float32 input) or as --input (repeatable), "
                            "not both and not neither")
    if inputs is not None:
        names = [i.name for i in inputs]
        if not inputs or len(set(names)) != len(names):
            raise ManifestError(f"--input: give each input once, by a name of its own (got {names})")
    elif not shape or any(not isinstance(d, int) or d < 1 for d in shape):
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
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = None
    if value is None or not _finite(value) or isinstance(value, (dict, datetime.date, datetime.time)):
        raise ManifestError(f"--init {item!r}: the value must be an integer, a finite number, true or false, "
                            "a list such as [64,256,256] or a quoted string")
    return value


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True
