"""Rows to a dataset folder in the Hub layout, and back.

A dataset folder holds `README.md` (the card), `data/train-00000-of-00001.parquet` and the card's
figures. The row shape comes from `schemas/row.schema.json`; the `datasets.Features` are derived
from that same schema, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import datasets

from builder.card import CardParams, write_card
from builder.errors import DatasetError
from builder.schema import load_schema, problems

SPLIT = "train"
PARQUET_PATH = f"data/{SPLIT}-00000-of-00001.parquet"
DATA_FILES = f"data/{SPLIT}-*"
CARD_NAME = "README.md"

_VALUE_TYPES = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}


def features_from_schema(schema: dict[str, Any], path: str = "") -> Any:
    """The `datasets` feature type of a JSON-Schema node: Features at the top, else a feature.

    Objects become dicts of features, arrays become `datasets.List`, and a type list such as
    ["number", "null"] becomes the nullable value of its one non-null type.
    """
    where = path or "(top level)"
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    concrete = [t for t in names if t != "null"]
    if len(concrete) != 1:
        raise DatasetError(f"schema {where}: needs exactly one non-null type, has {names}")
    kind = concrete[0]
    if kind == "object":
        props = schema.get("properties")
        if not props:
            raise DatasetError(f"schema {where}: an object needs 'properties' to become a feature")
        fields = {k: features_from_schema(v, f"{path}.{k}" if path else k) for k, v in props.items()}
        return datasets.Features(fields) if not path else fields
    if kind == "array":
        if "items" not in schema:
            raise DatasetError(f"schema {where}: an array needs 'items' to become a feature")
        return datasets.List(features_from_schema(schema["items"], f"{path}[]"))
    if kind not in _VALUE_TYPES:
        raise DatasetError(f"schema {where}: type {kind!r} has no datasets feature")
    return datasets.Value(_VALUE_TYPES[kind])


def features() -> datasets.Features:
    """The Features of a dataset row, derived from schemas/row.schema.json."""
    return features_from_schema(load_schema("row"))


def row_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Every way `rows` departs from the row schema or is inconsistent; empty when all is well."""
    schema = load_schema("row")
    found: list[str] = []
    for i, row in enumerate(rows):
        label = f"row {i} ({row.get('id', 'no id')})" if isinstance(row, dict) else f"row {i}"
        schema_problems = problems(row, schema)
        found += [f"{label}: {p}" for p in schema_problems]
        if not schema_problems:
            found += [f"{label}: {p}" for p in _consistency_problems(row)]
    counts = Counter(row.get("id") for row in rows if isinstance(row, dict))
    found += [f"id {key!r} appears {n} times" for key, n in sorted(counts.items()) if n > 1]
    return found


def _consistency_problems(row: dict[str, Any]) -> list[str]:
    found: list[str] = []
    expected_id = f"{row['problem']['key']}/{row['stage']['key']}/{row['gpu']['key']}"
    if row["id"] != expected_id:
        found.append(f"id: expected {expected_id!r} from problem/stage/gpu keys")
    turns = [(m["role"], m["content"]) for m in row["messages"]]
    if turns != [("user", row["prompt"]), ("assistant", row["completion"])]:
        found.append("messages: must be exactly [user: prompt, assistant: completion]")
    return found


def check_rows(rows: list[dict[str, Any]]) -> None:
    """Raise DatasetError listing every problem of `rows`; return quietly when they are valid."""
    found = row_problems(rows)
    if found:
        shown = "\n  ".join(found[:50])
        more = f"\n  ... and {len(found) - 50} more" if len(found) > 50 else ""
        raise DatasetError(f"{len(found)} row problem(s):\n  {shown}{more}")


def write_dataset(rows: list[dict[str, Any]], out_dir: Path | str, *, card_params: CardParams) -> Path:
    """Write `rows` as a dataset folder at `out_dir`, replacing it only once the new one is complete.

    The folder is built in a hidden sibling and swapped in at the end: if any step fails, the
    previous `out_dir` stays as it was. Rows are sorted by id, so equal inputs give equal files.
    """
    check_rows(rows)
    out = Path(out_dir).resolve()
    _refuse_foreign_folder(out)
    ordered = sorted(rows, key=lambda row: row["id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    try:
        _build(ordered, staging, card_params)
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _refuse_foreign_folder(out: Path) -> None:
    """Only a missing path, an empty folder or an earlier dataset folder may be replaced."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if out.is_dir() and (out / CARD_NAME).is_file() and (out / "data").is_dir():
        return
    raise DatasetError(
        f"refusing to replace {out}: it exists and is not a dataset folder "
        f"(no {CARD_NAME} and data/); pick another output folder"
    )


def _build(rows: list[dict[str, Any]], folder: Path, card_params: CardParams) -> None:
    dataset = datasets.Dataset.from_list(rows, features=features())
    parquet = folder / PARQUET_PATH
    parquet.parent.mkdir(parents=True)
    dataset.to_parquet(str(parquet))
    write_card(
        folder,
        rows,
        card_params,
        features=dataset.features,
        num_bytes=dataset.data.nbytes,
        download_size=parquet.stat().st_size,
        data_files=DATA_FILES,
        split=SPLIT,
    )
    os.chmod(folder, 0o755)


def _swap_in(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.rename(out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    retired.rmdir()
    out.rename(retired)
    try:
        staging.rename(out)
    except BaseException:
        retired.rename(out)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _load(folder: Path) -> datasets.Dataset:
    with tempfile.TemporaryDirectory(prefix="kernel-prompts-load-") as cache:
        try:
            return datasets.load_dataset(str(folder), split=SPLIT, cache_dir=cache, keep_in_memory=True)
        except Exception as exc:
            raise DatasetError(f"{folder}: rows do not load: {type(exc).__name__}: {exc}") from exc


def load_rows(folder: Path | str) -> list[dict[str, Any]]:
    """The rows of a dataset folder, loaded with `datasets.load_dataset`."""
    return _load(Path(folder)).to_list()


def integrity_check(folder: Path | str) -> None:
    """Raise DatasetError unless `folder` has a card, loads, has the schema's Features and valid rows."""
    path = Path(folder)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder")
    if not (path / CARD_NAME).is_file():
        raise DatasetError(f"{path}: {CARD_NAME} (the dataset card) is missing")
    dataset = _load(path)
    expected = features()
    if dataset.features != expected:
        diff = sorted(set(dataset.features) ^ set(expected)) or [
            k for k in expected if dataset.features[k] != expected[k]
        ]
        raise DatasetError(f"{path}: Features differ from schemas/row.schema.json (fields: {', '.join(diff)})")
    if len(dataset) == 0:
        raise DatasetError(f"{path}: the dataset has no rows")
    found = row_problems(dataset.to_list())
    if found:
        raise DatasetError(f"{path}: {len(found)} row problem(s), first: {found[0]}")
