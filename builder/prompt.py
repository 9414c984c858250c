"""Render a prompt from its spec, and parse a prompt back into its spec.

Rendering is a pure function over templates/prompt.txt, the GPU block and the stage texts.
Parsing inverts it and accepts a text only if rendering the parsed spec gives it back byte for
byte, so `render(parse(text)) == text` for every text parse accepts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from string import Template
from typing import Any

from builder import DATA_DIR
from builder.errors import PromptParseError
from builder.gpus import get_gpu, registry
from builder.stages import catalog

PROMPT_TEMPLATE = DATA_DIR / "templates" / "prompt.txt"
#: Section headings in the order a prompt holds them.
SECTIONS = ("# Target GPU", "[OPTIMIZATION STAGE]", "[CURRENT CODE]", "[NCU PROFILING METRICS]", "**Task**", "OUTPUT RULES (STRICT)")


@dataclass(frozen=True)
class PromptSpec:
    """Everything that varies between prompts."""

    gpu: str  # GPU registry key
    stage: str  # stage key
    variant: str  # stage text variant
    code: str  # the current code, verbatim
    metrics: dict[str, dict[str, Any]]  # {kernel_name: {metric: value}}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "PromptSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptParseError(f"spec is not valid JSON: {exc}") from exc
        missing = [f for f in ("gpu", "stage", "variant", "code", "metrics") if f not in data]
        if missing:
            raise PromptParseError(f"spec lacks field(s): {', '.join(missing)}")
        return cls(**{k: data[k] for k in ("gpu", "stage", "variant", "code", "metrics")})


def render_metrics(metrics: dict[str, dict[str, Any]]) -> str:
    """The [NCU PROFILING METRICS] block: 2-space JSON, one metric per line."""
    return json.dumps(metrics, indent=2)


def render(spec: PromptSpec) -> str:
    """The prompt text for `spec`."""
    stage_text = catalog().get(spec.stage).text(spec.variant)
    return Template(PROMPT_TEMPLATE.read_text()).substitute(
        gpu=get_gpu(spec.gpu).block(),
        stage=stage_text,
        code=spec.code,
        metrics=render_metrics(spec.metrics),
    )


def _pattern() -> re.Pattern[str]:
    """The prompt template as a regex with one group per field."""
    parts = re.split(r"\$\{(\w+)\}", PROMPT_TEMPLATE.read_text())
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*?)" for i, p in enumerate(parts))
    return re.compile(regex + r"\Z", re.DOTALL)


def parse(text: str) -> PromptSpec:
    """The spec of a prompt; PromptParseError names what is missing or unknown."""
    missing = [s for s in SECTIONS if s not in text]
    if missing:
        raise PromptParseError(f"not a kernel-optimization prompt: missing section {missing[0]!r}")
    match = _pattern().match(text)
    if not match:
        raise PromptParseError("the sections are all there but the text around them differs from the prompt template")
    gpu_block, stage_text = match["gpu"], match["stage"]
    gpu = next((g.key for g in registry().values() if g.block() == gpu_block), None)
    if gpu is None:
        first = gpu_block.splitlines()[0] if gpu_block else ""
        raise PromptParseError(f"section '# Target GPU' ({first!r}) matches no GPU registry entry")
    found = [(s.key, v) for s in catalog().stages for v in s.variants if s.text(v) == stage_text]
    if not found:
        raise PromptParseError("section '[OPTIMIZATION STAGE]' matches no stage text of the catalog")
    try:
        metrics = json.loads(match["metrics"])
    except json.JSONDecodeError as exc:
        raise PromptParseError(f"section '[NCU PROFILING METRICS]' is not valid JSON: {exc}") from exc
    spec = PromptSpec(gpu=gpu, stage=found[0][0], variant=found[0][1], code=match["code"], metrics=metrics)
    if render(spec) != text:
        raise PromptParseError("section '[NCU PROFILING METRICS]' is not in the canonical 2-space JSON layout")
    return spec
