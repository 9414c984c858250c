"""The dataset card: README.md rendered from templates/card.md, plus its figures.

The YAML front matter (license, tags, configs, dataset_info) is built with the `datasets` and
`huggingface_hub` metadata classes; the body is filled from the rows (summary table, provenance,
token counts), from the config schemas (the field lists), from build's report (missing rows) and
from builder.tokens (the TRL settings its snippets use).
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
from builder.configs import Config, Gap
from builder.plots import BANDWIDTH_PNG, SPEEDUP_PNG, plot_bandwidth, plot_speedups
from builder.rows import MIN_GAIN, NOISE, Skipped
from builder.schema import load_schema
from builder.tokens import (
    CHAT_TEMPLATE_PARTS,
    COMPLETION_ROOM,
    HEADROOM,
    ROUND_TO,
    TOKENIZER_NAME,
    TokenStats,
    config_stats,
    qwen_tokenizer,
    train_settings,
)

TEMPLATE = DATA_DIR / "templates" / "card.md"


@dataclass(frozen=True)
class CardParams:
    """What the card says beyond the rows themselves."""

    pretty_name: str = "Kernel Prompts: Triton optimization prompts with verified solutions"
    repo_id: str = "<namespace>/kernel-prompts"  # shown in the loading example
    license: str = "mit"
    tags: tuple[str, ...] = ("triton", "gpu-kernels", "code", "performance-optimization", "kernelbench")
    skipped: tuple[Skipped, ...] = ()  # build's report of rows it could not or would not build
    gaps: tuple[Gap, ...] = ()  # trajectories cut short, filled in by write_dataset


@dataclass(frozen=True)
class ConfigInfo:
    """What the card's front matter says about one written config."""

    config: Config  # which config
    features: datasets.Features  # its Features
    num_rows: int  # rows in its one split
    num_bytes: int  # size of its Arrow table in memory
    download_size: int  # size of its parquet shard
    data_files: str  # its data_files pattern, e.g. 'data/sft/train-*'


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
            "kept": bool(row["kept"]),
            "roofline_gbps": 100.0 * row["solution"]["gbps"] / row["solution"]["roofline_pct"],
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
    """The card's results table: times current → solution, speedups and % of the problem's roofline
    (its ceiling; the copy rate for records measured before ceilings). A kept row claims no speedup."""
    shown = pd.DataFrame({
        "problem": frame["problem"],
        "stage": frame["stage_number"].astype(str) + ". " + frame["stage"],
        "GPU": frame["gpu"],
        "median ms (current → solution)": [
            f"{c:.3f} → {s:.3f}" for c, s in zip(frame["current_ms"], frame["solution_ms"])
        ],
        "× vs current": ["kept" if kept else f"{x:.2f}" for kept, x in zip(frame["kept"], frame["speedup_vs_current"])],
        "× vs eager": frame["speedup_vs_eager"].map("{:.2f}".format),
        "× vs compile": frame["speedup_vs_compile"].map("{:.2f}".format),
        "% of roofline": frame["roofline_pct"].map("{:.0f}".format),
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


def card_data(params: CardParams, *, infos: list[ConfigInfo], split: str) -> DatasetCardData:
    """The YAML front matter: Hub tags plus the `configs` and `dataset_info` that `datasets` reads."""
    data = DatasetCardData(
        license=params.license,
        tags=list(params.tags),
        task_categories=["text-generation"],
        language=["en"],
        pretty_name=params.pretty_name,
        size_categories=[size_category(max(info.num_rows for info in infos))],
    )
    dataset_infos = {}
    configs: dict[str, dict[str, Any]] = {}
    for info in infos:
        splits = SplitDict()
        splits.add(SplitInfo(name=split, num_bytes=info.num_bytes, num_examples=info.num_rows))
        dataset_infos[info.config.name] = DatasetInfo(features=info.features, splits=splits,
                                                      download_size=info.download_size, dataset_size=info.num_bytes)
        configs[info.config.name] = {"data_files": [{"split": split, "path": info.data_files}],
                                     **({"default": True} if info.config.default else {})}
    DatasetInfosDict(dataset_infos).to_dataset_card_data(data)
    MetadataConfigs(configs).to_dataset_card_data(data)
    return data


def config_table(infos: list[ConfigInfo]) -> str:
    """One line per written config: name, rows, what a row is."""
    frame = pd.DataFrame(
        [(f"`{i.config.name}`" + (" (default)" if i.config.default else ""), i.num_rows, i.config.summary)
         for i in infos],
        columns=["config", "rows", "one row is"],
    )
    return markdown_table(frame)


def token_table(stats: dict[str, TokenStats]) -> str:
    """Token counts per config: max and median of prompt, completion and total."""
    frame = pd.DataFrame(
        [(f"`{name}`", s.rows, s.prompt_max, f"{s.prompt_median:g}", s.completion_max, f"{s.completion_median:g}",
          s.total_max, f"{s.total_median:g}") for name, s in stats.items()],
        columns=["config", "rows", "prompt max", "prompt median", "completion max", "completion median",
                 "total max", "total median"],
    )
    return markdown_table(frame)


def missing_list(params: CardParams) -> str:
    """Markdown bullets: each row build skipped or excluded and each trajectory cut short, with why."""
    lines = [f"- `{s.row_id}`: {'skipped' if s.missing else 'excluded'}: {s.reason}" for s in params.skipped]
    lines += [f"- trajectory `{g.trajectory_id}` stops after {g.turns} turn(s), before `{g.stopped_before}`: "
              f"{g.reason}" for g in params.gaps]
    return "\n".join(lines) if lines else "None: every (problem, stage, GPU) of the records has a row."


def chat_template_literal() -> str:
    """CHAT_TEMPLATE as a parenthesised Python string literal, one piece per line."""
    return "(\n" + "".join(f"    {piece!r}\n" for piece in CHAT_TEMPLATE_PARTS) + ")"


def field_sections(infos: list[ConfigInfo]) -> str:
    """A field table per written config, under a heading naming it."""
    return "\n\n".join(f"### `{i.config.name}`\n\n{field_table(load_schema(i.config.schema))}" for i in infos)


def render_card(tables: dict[str, list[dict[str, Any]]], params: CardParams, data: DatasetCardData,
                infos: list[ConfigInfo], stats: dict[str, TokenStats]) -> DatasetCard:
    """The card for the config rows `tables` with front matter `data`, from templates/card.md."""
    rows = tables["sft"]
    frame = summary_frame(rows)
    settings = train_settings(stats)
    text = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        front_matter=data.to_yaml(),
        pretty_name=params.pretty_name,
        repo_id=params.repo_id,
        num_rows=len(rows),
        num_problems=frame["problem"].nunique(),
        num_stages=frame["stage"].nunique(),
        num_gpus=frame["gpu"].nunique(),
        num_missing=len(params.skipped),
        min_gain_pct=f"{100 * MIN_GAIN:g}",
        noise_pct=f"{100 * NOISE:g}",
        config_table=config_table(infos),
        summary_table=summary_table(frame),
        speedup_png=SPEEDUP_PNG,
        bandwidth_png=BANDWIDTH_PNG,
        missing_list=missing_list(params),
        token_table=token_table(stats),
        tokenizer_name=TOKENIZER_NAME,
        headroom=HEADROOM,
        round_to=ROUND_TO,
        completion_room=f"{COMPLETION_ROOM:g}",
        chat_template=chat_template_literal(),
        sft_total_max=stats["sft"].total_max,
        trajectories_total_max=stats["trajectories"].total_max,
        preference_total_max=stats["preference"].total_max,
        rl_completion_max=stats["rl"].completion_max,
        **settings.to_dict(),
        field_sections=field_sections(infos),
        problem_list=problem_list(rows),
        gpu_list=gpu_list(rows),
        software_table=software_table(rows),
    )
    return DatasetCard(text)


def write_card(folder: Path, tables: dict[str, list[dict[str, Any]]], params: CardParams, *,
               infos: list[ConfigInfo], split: str) -> None:
    """Write README.md and the figures it links into `folder`."""
    frame = summary_frame(tables["sft"])
    plot_speedups(frame, folder / SPEEDUP_PNG)
    plot_bandwidth(frame, folder / BANDWIDTH_PNG)
    data = card_data(params, infos=infos, split=split)
    stats = config_stats(tables, qwen_tokenizer())
    (folder / "README.md").write_text(str(render_card(tables, params, data, infos, stats)), encoding="utf-8")
