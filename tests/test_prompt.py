import dataclasses
import difflib
import json

import pytest

from builder.errors import PromptParseError
from builder.prompt import PromptSpec, parse, render
from builder.seeds import load_problems

SEED_PROMPTS = [p.seed_prompt_path for p in load_problems()]


@pytest.mark.parametrize("path", SEED_PROMPTS, ids=lambda p: p.parent.name)
def test_round_trip_is_byte_identical(path):
    text = path.read_bytes().decode("utf-8")
    assert render(parse(text)).encode("utf-8") == path.read_bytes()


@pytest.mark.parametrize("path", SEED_PROMPTS, ids=lambda p: p.parent.name)
def test_spec_json_round_trip(path):
    spec = parse(path.read_text())
    assert PromptSpec.from_json(spec.to_json()) == spec


def test_seed_specs():
    specs = {p.parent.name: parse(p.read_text()) for p in SEED_PROMPTS}
    assert (specs["avgpool1d"].stage, specs["avgpool1d"].variant) == ("grid_and_parallel", "transposed_conv")
    assert (specs["avgpool2d"].stage, specs["avgpool2d"].variant) == ("grid_and_parallel", "default")
    assert specs["avgpool2d"].gpu == "rtx4090"
    assert specs["avgpool2d"].metrics["avgpool2d_kernel"]["lts__t_sector_hit_rate.pct"] == 6.0


@pytest.mark.parametrize("path", SEED_PROMPTS, ids=lambda p: p.parent.name)
def test_editing_one_metric_changes_exactly_one_line(path):
    text = path.read_text()
    spec = parse(text)
    kernel = next(iter(spec.metrics))
    metrics = json.loads(json.dumps(spec.metrics))
    metrics[kernel]["sm__warps_active.avg.pct_of_peak_sustained_active"] = 12.34
    edited = render(dataclasses.replace(spec, metrics=metrics))
    changed = [l for l in difflib.ndiff(text.splitlines(), edited.splitlines()) if l[:1] in "+-"]
    assert changed == [
        f'-     "sm__warps_active.avg.pct_of_peak_sustained_active": {spec.metrics[kernel]["sm__warps_active.avg.pct_of_peak_sustained_active"]},',
        '+     "sm__warps_active.avg.pct_of_peak_sustained_active": 12.34,',
    ]


@pytest.mark.parametrize(
    "section", ["# Target GPU", "[OPTIMIZATION STAGE]", "[CURRENT CODE]", "[NCU PROFILING METRICS]", "**Task**"]
)
def test_missing_section_is_named(section):
    text = SEED_PROMPTS[0].read_text().replace(section, "")
    with pytest.raises(PromptParseError, match=f"missing section {section!r}".replace("[", r"\[").replace("*", r"\*")):
        parse(text)


def test_unknown_gpu_block():
    text = SEED_PROMPTS[0].read_text().replace("GPU Name: 4090", "GPU Name: 5090")
    with pytest.raises(PromptParseError, match="GPU Name: 5090"):
        parse(text)


def test_unknown_stage_text():
    text = SEED_PROMPTS[0].read_text().replace("Focus: Grid layout", "Focus: Grid shape")
    with pytest.raises(PromptParseError, match="OPTIMIZATION STAGE"):
        parse(text)


def test_non_canonical_metrics_layout():
    text = SEED_PROMPTS[0].read_text().replace('  "avg', '    "avg')
    with pytest.raises(PromptParseError, match="canonical"):
        parse(text)


def test_every_stage_renders_for_every_gpu():
    from builder.gpus import registry
    from builder.stages import catalog

    for gpu in registry():
        for stage in catalog().stages:
            text = render(PromptSpec(gpu, stage.key, "default", "import torch\n", {"k": {"launch__grid_size": 1}}))
            assert parse(text) == PromptSpec(gpu, stage.key, "default", "import torch\n", {"k": {"launch__grid_size": 1}})
