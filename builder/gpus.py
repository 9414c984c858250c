"""The GPU registry: spec blocks for prompts, and matching a live device to its entry."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from functools import cache
from string import Template
from typing import Any

from builder import DATA_DIR
from builder.errors import RegistryError

REGISTRY_FILE = DATA_DIR / "gpus.toml"
BLOCK_TEMPLATE = DATA_DIR / "templates" / "gpu.txt"


@dataclass(frozen=True)
class DeviceInfo:
    """What a live CUDA device reports about itself."""

    name: str  # torch.cuda.get_device_name()
    sm_count: int  # multiprocessors
    l2_cache_bytes: int  # L2 size
    shared_memory_per_sm_bytes: int  # shared memory per multiprocessor
    shared_memory_per_block_optin_bytes: int  # most shared memory one block can opt in to


@dataclass(frozen=True)
class Gpu:
    """One registry entry."""

    key: str  # registry key, e.g. "h100_sxm"
    spec: dict[str, Any]  # every field of the prompt's "# Target GPU" block
    device: dict[str, Any]  # what the live device reports: names, l2/shared-memory bytes

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def block(self) -> str:
        """The prompt's spec block for this GPU, without the '# Target GPU' heading."""
        return Template(BLOCK_TEMPLATE.read_text()).substitute(self.spec)

    def mismatches(self, info: DeviceInfo) -> list[str]:
        """How a live device differs from this entry; empty when it matches."""
        expected = {
            "sm_count": self.spec["sm_count"],
            "l2_cache_bytes": self.device["l2_cache_bytes"],
            "shared_memory_per_sm_bytes": self.device["shared_memory_per_sm_bytes"],
            "shared_memory_per_block_optin_bytes": self.device["shared_memory_per_block_optin_bytes"],
        }
        return [
            f"{field} is {getattr(info, field)}, registry says {value}"
            for field, value in expected.items()
            if getattr(info, field) != value
        ]


@cache
def registry() -> dict[str, Gpu]:
    """All registry entries by key."""
    data = tomllib.loads(REGISTRY_FILE.read_text())
    return {key: Gpu(key, {k: v for k, v in e.items() if k != "device"}, e["device"]) for key, e in data.items()}


def get_gpu(key: str) -> Gpu:
    gpus = registry()
    if key not in gpus:
        close = difflib.get_close_matches(key, list(gpus), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise RegistryError(f"unknown GPU '{key}'{hint}; known: {', '.join(gpus)}")
    return gpus[key]


def match_device(info: DeviceInfo) -> Gpu:
    """The entry for a live device; a RegistryError when it is unknown or differs from its entry."""
    for gpu in registry().values():
        if info.name in gpu.device["names"]:
            wrong = gpu.mismatches(info)
            if wrong:
                raise RegistryError(f"device '{info.name}' does not match registry entry '{gpu.key}': " + "; ".join(wrong))
            return gpu
    known = ", ".join(n for g in registry().values() for n in g.device["names"])
    raise RegistryError(f"unknown device '{info.name}': add it to {REGISTRY_FILE.name} (known: {known})")


def current_device() -> DeviceInfo:
    """Read the properties of CUDA device 0."""
    import torch

    props = torch.cuda.get_device_properties(0)
    return DeviceInfo(
        name=props.name,
        sm_count=props.multi_processor_count,
        l2_cache_bytes=props.L2_cache_size,
        shared_memory_per_sm_bytes=props.shared_memory_per_multiprocessor,
        shared_memory_per_block_optin_bytes=props.shared_memory_per_block_optin,
    )
