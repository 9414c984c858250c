import pytest

from builder.errors import RegistryError
from builder.stages import catalog

DEAD_STALL = "smsp__warp_issue_stalled_memory_dependency_per_warp_active.pct"


def test_four_stages_in_order():
    assert [s.key for s in catalog().stages] == ["grid_and_parallel", "block_tiling", "memory_access", "advanced_memory"]
    assert [s.number for s in catalog().stages] == [1, 2, 3, 4]


def test_stage_one_has_both_seed_variants():
    stage = catalog().get("grid_and_parallel")
    assert stage.variants == ("default", "transposed_conv")
    assert "Transposed Convolution" in stage.text("transposed_conv")
    assert "Transposed Convolution" not in stage.text("default")


def test_every_stage_text_exists_and_names_its_metrics():
    for stage in catalog().stages:
        for variant in stage.variants:
            text = stage.text(variant)
            assert text.startswith("## Current Optimization Stage\n") and text.endswith("\n")
            for metric in stage.metrics:
                assert metric in text


def test_no_pre_volta_metric_anywhere():
    assert DEAD_STALL not in catalog().all_metrics()
    for stage in catalog().stages:
        assert all(DEAD_STALL not in stage.text(v) for v in stage.variants)


@pytest.mark.parametrize(
    ("key", "metrics", "met"),
    [
        ("grid_and_parallel", {"sm__throughput.avg.pct_of_peak_sustained_elapsed": 80.4}, True),
        ("grid_and_parallel", {"sm__throughput.avg.pct_of_peak_sustained_elapsed": 27.3}, False),
        ("block_tiling", {"sm__warps_active.avg.pct_of_peak_sustained_active": 60.0}, True),
        ("memory_access", {}, False),
        ("advanced_memory", {"lts__t_sector_hit_rate.pct": 95, "smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct": 12}, False),
        ("advanced_memory", {"lts__t_sector_hit_rate.pct": 95, "smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct": 8}, True),
    ],
)
def test_exit_criteria(key, metrics, met):
    assert catalog().get(key).exit_met(metrics) is met


def test_prompt_metrics_start_with_the_base_five():
    cat = catalog()
    assert cat.prompt_metrics(cat.get("grid_and_parallel")) == cat.base_metrics
    assert cat.prompt_metrics(cat.get("memory_access"))[-1].startswith("smsp__warp_issue_stalled_long_scoreboard")


def test_unknown_stage_and_variant():
    with pytest.raises(RegistryError, match="did you mean 'block_tiling'"):
        catalog().get("block_tile")
    with pytest.raises(RegistryError, match="no variant 'fancy'"):
        catalog().get("block_tiling").text("fancy")
