"""The dataset card: README.md rendered from templates/card.md, plus its figures.

The YAML front matter (license, tags, configs, dataset_info) is built with the `datasets` and
`huggingface_hub` metadata classes; the body is filled from the rows (summary table, provenance)
and from the row schema (the field list).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import datasets
import pandas as pd
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from builder import DATA_DIR
from builder.plots import BANDWIDTH_PNG, SPEEDUP_PNG, plot_bandwidth, plot_speedups
from builder.schema import load_schema

TEMPLATE = DATA_DIR / "templates" / "card.md"


@dataclass(frozen=True)
class CardParams:
    """What the card says beyond the rows themselves."""

    pretty_name: str = "Kernel Prompts: Triton optimization prompts with verified solutions"
    repo_id: str = "<namespace>/kernel-prompts"  # shown in the loading example
    license: str = "mit"
    tags: tuple[str, ...] = ("triton", "gpu-kernels", "code", "performance-optimization", "kernelbench")


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for `n` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    return next((label for bound, label in bounds if n < bound), "n>1M")


def summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per row with the numbers the table and the figures show, in problem/GPU/stage order."""
    def line(row: dict[str, Any]) -> dict[str, Any]:
        mb = row["bytes_moved"] / 1e6
        base = row["baselines"]
        return {
            "id": row["id"],
            "problem": row["problem"]["key"],
            "stage_number": row["stage"]["number"],
            "stage": row["stage"]["key"],
            "gpu": row["gpu"]["key"],
            "current_ms": row["current"]["timing"]["median_ms"],
            "solution_ms": row["solution"]["timing"]["median_ms"],
            "speedup_vs_current": row["speedup"]["vs_current"],
            "speedup_vs_eager": row["speedup"]["vs_eager"],
            "speedup_vs_compile": row["speedup"]["vs_compile"],
            "current_gbps": row["current"]["gbps"],
            "solution_gbps": row["solution"]["gbps"],
            "roofline_pct": row["solution"]["roofline_pct"],
            "copy_gbps": base["copy_gbps"],
            "eager_gbps": mb / base["eager"]["median_ms"] if base["eager"]["median_ms"] else 0.0,
            "compile_gbps": mb / base["compile"]["median_ms"] if base["compile"]["median_ms"] else 0.0,
        }
    frame = pd.DataFrame([line(r) for r in rows])
    return frame.sort_values(["problem", "gpu", "stage_number", "id"], ignore_index=True)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `frame`, with pipes and angle brackets escaped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in values) + " |" for values in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def summary_table(frame: pd.DataFrame) -> str:
    """The card's results table: times current → solution, speedups and % of copy roofline."""
    shown = pd.DataFrame({
        "problem": frame["problem"],
        "stage": frame["stage_number"].astype(str) + ". " + frame["stage"],
        "GPU": frame["gpu"],
        "median ms (current → solution)": [
            f"{c:.3f} → {s:.3f}" for c, s in zip(frame["current_ms"], frame["solution_ms"])
        ],
        "× vs current": frame["speedup_vs_current"].map("{:.2f}".format),
        "× vs eager": frame["speedup_vs_eager"].map("{:.2f}".format),
        "× vs compile": frame["speedup_vs_compile"].map("{:.2f}".format),
        "% of copy roofline": frame["roofline_pct"].map("{:.0f}".format),
    })
    return markdown_table(shown)


def _type_name(node: dict[str, Any]) -> str:
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    if "array" in types:
        return f"list of {_type_name(node['items'])}"
    return " or ".join(types)


def _field_lines(node: dict[str, Any], path: str) -> list[tuple[str, str, str]]:
    lines = [(path, _type_name(node), node.get("description", ""))] if path else []
    target = node["items"] if node.get("type") == "array" else node
    for key, child in target.get("properties", {}).items():
        sub = f"{path}[].{key}" if node.get("type") == "array" else (f"{path}.{key}" if path else key)
        lines += _field_lines(child, sub)
    return lines


def field_table(schema: dict[str, Any]) -> str:
    """Every field of the schema, nested ones as dotted paths, with its type and description."""
    frame = pd.DataFrame(
        [(f"`{p}`", t, d) for p, t, d in _field_lines(schema, "")],
        columns=["field", "type", "description"],
    )
    return markdown_table(frame)


def _distinct(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return sorted({tuple(_get(row, key) for key in keys) for row in rows}, key=str)


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value[part]
    return value


def problem_list(rows: list[dict[str, Any]]) -> str:
    """'level 1 #44 44_Average_Pooling_1D, ...' for the problems present."""
    found = _distinct(rows, "problem.level", "problem.kernelbench_id", "problem.name")
    return ", ".join(f"level {level} #{pid} `{name}`" for level, pid, name in found)


def gpu_list(rows: list[dict[str, Any]]) -> str:
    """A sentence naming the GPUs and the span of measurement dates."""
    gpus = ", ".join(f"{name} ({sms} SMs)" for name, sms in _distinct(rows, "env.gpu_name", "env.sm_count"))
    times = sorted(row["env"]["measured_at"] for row in rows)
    span = times[0] if times[0] == times[-1] else f"{times[0]} to {times[-1]}"
    return f"Measured on {gpus}, {span}."


def software_table(rows: list[dict[str, Any]]) -> str:
    """One Markdown line per distinct software environment in the rows."""
    keys = ("gpu.key", "env.driver", "env.cuda", "env.torch", "env.triton", "env.ncu")
    found = [tuple("n/a" if v is None else v for v in combo) for combo in _distinct(rows, *keys)]
    frame = pd.DataFrame(found, columns=["GPU", "driver", "CUDA", "torch", "triton", "ncu"])
    return markdown_table(frame)


def card_data(
    params: CardParams,
    *,
    features: datasets.Features,
    num_rows: int,
    num_bytes: int,
    download_size: int,
    data_files: str,
    split: str,
) -> DatasetCardData:
    """The YAML front matter: Hub tags plus the `configs` and `dataset_info` that `datasets` reads."""
    data = DatasetCardData(
        license=params.license,
        tags=list(params.tags),
        task_categories=["text-generation"],
        language=["en"],
        pretty_name=params.pretty_name,
        size_categories=[size_category(num_rows)],
    )
    splits = SplitDict()
    splits.add(SplitInfo(name=split, num_bytes=num_bytes, num_examples=num_rows))
    info = DatasetInfo(features=features, splits=splits, download_size=download_size, dataset_size=num_bytes)
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    MetadataConfigs({"default": {"data_files": [{"split": split, "path": data_files}]}}).to_dataset_card_data(data)
    return data


def render_card(rows: list[dict[str, Any]], params: CardParams, data: DatasetCardData) -> DatasetCard:
    """The card for `rows` with front matter `data`, from templates/card.md."""
    frame = summary_frame(rows)
    text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        front_matter=data.to_yaml(),
        pretty_name=params.pretty_name,
        repo_id=params.repo_id,
        num_rows=len(rows),
        num_problems=frame["problem"].nunique(),
        num_stages=frame["stage"].nunique(),
        num_gpus=frame["gpu"].nunique(),
        summary_table=summary_table(frame),
        speedup_png=SPEEDUP_PNG,
        bandwidth_png=BANDWIDTH_PNG,
        field_table=field_table(load_schema("row")),
        problem_list=problem_list(rows),
        gpu_list=gpu_list(rows),
        software_table=software_table(rows),
    )
    return DatasetCard(text)


def write_card(
    folder: Path,
    rows: list[dict[str, Any]],
    params: CardParams,
    *,
    features: datasets.Features,
    num_bytes: int,
    download_size: int,
    data_files: str,
    split: str,
) -> None:
    """Write README.md and the figures it links into `folder`."""
    frame = summary_frame(rows)
    plot_speedups(frame, folder / SPEEDUP_PNG)
    plot_bandwidth(frame, folder / BANDWIDTH_PNG)
    data = card_data(
        params,
        features=features,
        num_rows=len(rows),
        num_bytes=num_bytes,
        download_size=download_size,
        data_files=data_files,
        split=split,
    )
    (folder / "README.md").write_text(str(render_card(rows, params, data)), encoding="utf-8")
