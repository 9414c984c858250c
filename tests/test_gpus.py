import dataclasses

import pytest

from builder.errors import RegistryError
from builder.gpus import DeviceInfo, get_gpu, match_device, registry
from tests.conftest import SEEDS

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", 132, 52428800, 233472, 232448)


def test_rtx4090_block_is_the_seeds_block_verbatim():
    seed = (SEEDS / "avgpool2d" / "seed_prompt.txt").read_text()
    block = get_gpu("rtx4090").block()
    assert "# Target GPU\n" + block + "\n\n\n[OPTIMIZATION STAGE]" in seed


def test_every_entry_fills_every_field_of_the_block():
    for gpu in registry().values():
        block = gpu.block()
        assert "$" not in block
        assert len(block.splitlines()) == 16


def test_required_entries_exist():
    assert {"rtx4090", "h100_sxm", "h200"} <= set(registry())


def test_live_device_matches_its_entry():
    assert match_device(H100).key == "h100_sxm"


def test_mismatching_device_is_an_error():
    with pytest.raises(RegistryError, match="sm_count is 114, registry says 132"):
        match_device(dataclasses.replace(H100, sm_count=114))


def test_unknown_device_is_an_error():
    with pytest.raises(RegistryError, match="unknown device 'NVIDIA B200'"):
        match_device(dataclasses.replace(H100, name="NVIDIA B200"))


def test_unknown_key_suggests_close_match():
    with pytest.raises(RegistryError, match="did you mean 'h100_sxm'"):
        get_gpu("h100_sx")


@pytest.mark.gpu
def test_this_gpu_is_in_the_registry():
    from builder.gpus import current_device

    assert match_device(current_device()).key in registry()
