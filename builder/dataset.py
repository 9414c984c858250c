"""Rows to a dataset folder in the Hub layout, and back.

A dataset folder holds `README.md` (the card), one `data/<config>/train-00000-of-00001.parquet`
per config (builder.configs) and the card's figures. Each config's row shape comes from its
schema under schemas/ (`row.schema.json` for sft); the `datasets.Features` are derived from that
same schema, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets

from builder.card import CardParams, ConfigInfo, write_card
from builder.configs import CONFIGS, config_rows, get_config
from builder.errors import DatasetError
from builder.rows import Skipped
from builder.schema import load_schema, problems

SPLIT = "train"
CARD_NAME = "README.md"


def parquet_path(config: str = "sft") -> str:
    """Where a config's one shard lies in the folder."""
    return f"data/{config}/{SPLIT}-00000-of-00001.parquet"


def data_files(config: str = "sft") -> str:
    """The card's data_files pattern of a config."""
    return f"data/{config}/{SPLIT}-*"


#: The sft config's shard (the layout of the default config).
PARQUET_PATH = parquet_path("sft")

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


def features(config: str = "sft") -> datasets.Features:
    """The Features of a row of `config`, derived from its schema (schemas/row.schema.json for sft)."""
    return features_from_schema(load_schema(get_config(config).schema))


def config_problems(config: str, rows: list[dict[str, Any]]) -> list[str]:
    """Every way `rows` depart from the schema of `config` (or repeat an id); empty when all is well."""
    if config == "sft":
        return row_problems(rows)
    schema = load_schema(get_config(config).schema)
    found = [f"{config} row {i} ({row.get('id', 'no id')}): {p}" for i, row in enumerate(rows)
             for p in problems(row, schema)]
    counts = Counter(row.get("id") for row in rows)
    return found + [f"{config} id {key!r} appears {n} times" for key, n in sorted(counts.items()) if n > 1]


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


def check_rows(rows: list[dict[str, Any]], config: str = "sft") -> None:
    """Raise DatasetError listing every problem of `rows`; return quietly when they are valid."""
    found = config_problems(config, rows)
    if found:
        shown = "\n  ".join(found[:50])
        more = f"\n  ... and {len(found) - 50} more" if len(found) > 50 else ""
        raise DatasetError(f"{len(found)} row problem(s):\n  {shown}{more}")


def write_dataset(rows: list[dict[str, Any]], out_dir: Path | str, *, card_params: CardParams,
                  skipped: tuple[Skipped, ...] | list[Skipped] = ()) -> Path:
    """Write the sft `rows` and every config built from them as a dataset folder at `out_dir`,
    replacing it only once the new one is complete; `skipped` (build's report) goes in the card.

    The folder is built in a hidden sibling and swapped in at the end: if any step fails, the
    previous `out_dir` stays as it was. Rows are sorted by id, so equal inputs give equal files.
    A config without rows (e.g. no stage-1 row for trajectories) gets no folder.
    """
    check_rows(rows)
    tables = config_rows(rows)
    for name, config_table in tables.tables.items():
        check_rows(config_table, name)
    out = Path(out_dir).resolve()
    _refuse_foreign_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".building", dir=out.parent))
    try:
        _build(tables.tables, staging, replace(card_params, gaps=tables.gaps, skipped=tuple(skipped)))
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


def _build(tables: dict[str, list[dict[str, Any]]], folder: Path, card_params: CardParams) -> None:
    infos = []
    for config in CONFIGS:
        rows = tables[config.name]
        if not rows:
            continue
        dataset = datasets.Dataset.from_list(rows, features=features(config.name))
        parquet = folder / parquet_path(config.name)
        parquet.parent.mkdir(parents=True)
        dataset.to_parquet(str(parquet))
        infos.append(ConfigInfo(config, dataset.features, len(rows), dataset.data.nbytes, parquet.stat().st_size,
                                data_files(config.name)))
    write_card(folder, tables, card_params, infos=infos, split=SPLIT)
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


def _load(folder: Path, config: str = "sft") -> datasets.Dataset:
    with tempfile.TemporaryDirectory(prefix="kernel-prompts-load-") as cache:
        try:
            return datasets.load_dataset(str(folder), config, split=SPLIT, cache_dir=cache, keep_in_memory=True)
        except Exception as exc:
            raise DatasetError(f"{folder}: {config} rows do not load: {type(exc).__name__}: {exc}") from exc


def load_rows(folder: Path | str, config: str = "sft") -> list[dict[str, Any]]:
    """The rows of one config of a dataset folder, loaded with `datasets.load_dataset`."""
    return _load(Path(folder), config).to_list()


def integrity_check(folder: Path | str) -> None:
    """Raise DatasetError unless `folder` has a card, loads, has the schema's Features and valid rows."""
    path = Path(folder)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such dataset folder")
    if not (path / CARD_NAME).is_file():
        raise DatasetError(f"{path}: {CARD_NAME} (the dataset card) is missing")
    present = [c for c in CONFIGS if (path / "data" / c.name).is_dir()]
    if not any(c.name == "sft" for c in present):
        raise DatasetError(f"{path}: data/sft/ (the default config) is missing")
    for config in present:
        dataset = _load(path, config.name)
        expected = features(config.name)
        if dataset.features != expected:
            diff = sorted(set(dataset.features) ^ set(expected)) or [
                k for k in expected if dataset.features[k] != expected[k]
            ]
            raise DatasetError(f"{path}: {config.name} Features differ from schemas/{config.schema}.schema.json "
                               f"(fields: {', '.join(diff)})")
        if len(dataset) == 0:
            raise DatasetError(f"{path}: the {config.name} config has no rows")
        found = config_problems(config.name, dataset.to_list())
        if found:
            raise DatasetError(f"{path}: {len(found)} {config.name} row problem(s), first: {found[0]}")
