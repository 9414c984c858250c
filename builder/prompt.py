"""Render a prompt from its spec, and parse any prompt of the family back into its spec.

Rendering is a pure function over templates/prompt.txt, the GPU block and the stage texts. The
template is literal text (the frame) around four fields: the GPU block, the stage text, the
current code and the metrics. Parsing finds the four field sections in order, recognises the
known parts (a GPU registry block or a catalog stage text standing as paragraphs of their own,
metrics JSON) and keeps whatever else it finds verbatim in the spec, so `render(parse(text)) == text`
byte for byte for every text parse accepts. A heading is found as the template writes it or, failing
that, as a line that starts with its words in any case, with markdown around them (`## Target GPU`,
`[Current Code]:`). The code is the first fenced block of its section, closed as markdown closes
it. Metrics that are no readable JSON object are kept as text, with no metrics. Parsing fails only
when a field section is missing or empty or the code has no fenced block, naming the section.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any, Iterable

from builder import DATA_DIR
from builder.errors import PromptParseError, RegistryError
from builder.gpus import get_gpu, registry
from builder.stages import catalog

PROMPT_TEMPLATE = DATA_DIR / "templates" / "prompt.txt"
#: The headings of the sections that hold the four fields, in the order a prompt holds them.
SECTIONS = ("# Target GPU", "[OPTIMIZATION STAGE]", "[CURRENT CODE]", "[NCU PROFILING METRICS]")
#: The heading after the metrics; a prompt without it has metrics up to its end.
TASK = "**Task**"
#: Spec fields every spec JSON must carry (the optional ones may be left out).
REQUIRED_FIELDS = ("gpu", "stage", "variant", "code", "metrics")


@dataclass(frozen=True)
class PromptSpec:
    """Everything that varies between prompts. The first five fields alone give the canonical prompt."""

    gpu: str | None  # GPU registry key; None when the prompt's block is no registry entry's (see gpu_block)
    stage: str | None  # stage key; None when a verbatim stage text names no recognisable stage
    variant: str | None  # catalog text variant of the stage; None when stage_text holds the text
    code: str  # the current code, verbatim
    metrics: dict[str, Any]  # {kernel_name: {metric: value}}; a kernel launched several times: a list of those
    gpu_block: str | None = None  # a GPU block kept verbatim, printed instead of the registry's
    stage_text: str | None = None  # a stage text kept verbatim, printed instead of the catalog's
    frame: dict[str, str] = field(default_factory=dict)  # frame pieces that differ from the template, by name
    metrics_layout: list[str] | None = None  # non-canonical metrics JSON: literal text and value tokens, alternating

    def to_json(self) -> str:
        """The spec as JSON; optional fields at their defaults are left out."""
        data = {k: v for k, v in asdict(self).items() if k in REQUIRED_FIELDS or v not in (None, {})}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "PromptSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptParseError(f"spec is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PromptParseError("spec is not a JSON object")
        missing = [f for f in REQUIRED_FIELDS if f not in data]
        if missing:
            raise PromptParseError(f"spec lacks field(s): {', '.join(missing)}")
        known = [f.name for f in fields(cls)]
        unknown = [f for f in data if f not in known]
        if unknown:
            raise PromptParseError(f"spec has unknown field(s): {', '.join(unknown)}; known: {', '.join(known)}")
        wrong = [f"'{name}' {expected}" for name, expected in _SPEC_TYPES.items()
                 if name in data and not _has_type(name, data[name])]
        if wrong:
            raise PromptParseError(f"spec field(s) of the wrong type: {'; '.join(wrong)}")
        return cls(**data)


#: What each spec field holds in JSON, for the error message of a wrong one.
_SPEC_TYPES = {
    "gpu": "must be a string or null", "stage": "must be a string or null", "variant": "must be a string or null",
    "code": "must be a string", "metrics": "must be an object {kernel_name: {metric: value}}",
    "gpu_block": "must be a string or null", "stage_text": "must be a string or null",
    "frame": "must be an object {piece name: text}",
    "metrics_layout": "must be null or a list of strings: literal text and JSON value tokens, alternating",
}


def _has_type(name: str, value: Any) -> bool:
    if name == "code":
        return isinstance(value, str)
    if name == "metrics":
        return isinstance(value, dict)
    if name == "frame":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if name == "metrics_layout":
        return value is None or (isinstance(value, list) and len(value) % 2 == 1
                                 and all(isinstance(v, str) for v in value) and all(map(_is_json, value[1::2])))
    return value is None or isinstance(value, str)


def _is_json(token: str) -> bool:
    try:
        json.loads(token)
    except json.JSONDecodeError:
        return False
    return True


@cache
def frame_pieces() -> tuple[tuple[str, str, str | None], ...]:
    """The template as (piece name, literal text, field after it or None), in order."""
    parts = re.split(r"\$\{(\w+)\}", PROMPT_TEMPLATE.read_text())
    literals, names = [p.replace("$$", "$") for p in parts[0::2]], parts[1::2]
    pieces = [(f"before_{name}", literal, name) for literal, name in zip(literals, names)]
    return tuple(pieces) + ((f"after_{names[-1]}", literals[-1], None),)


def render_metrics(metrics: dict[str, Any], layout: list[str] | None = None) -> str:
    """The metrics block: canonical 2-space JSON, or `layout` with the values filled in.

    A layout alternates literal text and the original value tokens (every number, string,
    boolean or null that is not a key, in reading order). A token is printed as it was while
    the spec's value still equals it, else the value is printed as JSON, so editing one value
    changes only that token's line. A layout without tokens is a section that held no JSON
    (e.g. "No NCU metrics available"), printed as it was for empty metrics.
    """
    if layout is None:
        return json.dumps(metrics, indent=2)
    values, tokens = _leaves(metrics), layout[1::2]
    if not tokens and metrics == {}:
        return layout[0]
    if len(values) != len(tokens):
        raise PromptParseError(
            f"spec field 'metrics_layout' has {len(tokens)} value slots but 'metrics' has {len(values)} values; "
            "drop 'metrics_layout' to print canonical JSON")
    out = list(layout)
    for i, (value, token) in enumerate(zip(values, tokens)):
        if not _same_value(json.loads(token), value):
            out[2 * i + 1] = json.dumps(value)
    text = "".join(out)
    if _skeleton(json.loads(text)) != _skeleton(metrics):
        raise PromptParseError("spec fields 'metrics' and 'metrics_layout' name different kernels or metrics; "
                               "drop 'metrics_layout' to print canonical JSON")
    return text


def render(spec: PromptSpec) -> str:
    """The prompt text for `spec`."""
    values = {
        "gpu": spec.gpu_block if spec.gpu_block is not None else _registry_block(spec.gpu),
        "stage": spec.stage_text if spec.stage_text is not None else _catalog_text(spec.stage, spec.variant),
        "code": spec.code,
        "metrics": render_metrics(spec.metrics, spec.metrics_layout),
    }
    names = [name for name, _, _ in frame_pieces()]
    unknown = [n for n in spec.frame if n not in names]
    if unknown:
        raise PromptParseError(f"spec field 'frame' has unknown piece(s) {unknown}; known: {', '.join(names)}")
    out = []
    for name, literal, after in frame_pieces():
        out.append(spec.frame.get(name, literal))
        if after is not None:
            out.append(values[after])
    return "".join(out)


def parse(text: str) -> PromptSpec:
    """The spec of a prompt of the family; PromptParseError names a missing or unreadable section."""
    gpu_head = _heading(text, SECTIONS[0], 0)
    stage_head = _heading(text, SECTIONS[1], gpu_head[1])
    code_head = _heading(text, SECTIONS[2], stage_head[1])
    metrics_head = _heading(text, SECTIONS[3], code_head[1])
    code_span = _code_field(text, code_head, metrics_head)
    task = _find_heading(text, TASK, metrics_head[1])
    gpu_span, gpu, gpu_block = _gpu_field(text, gpu_head[1], stage_head[0])
    stage_span, stage, variant, stage_text = _stage_field(text, stage_head[1], code_head[0])
    metrics_span, metrics, layout = _metrics_field(text, metrics_head[1], task[0] if task else len(text))
    spans = {"gpu": gpu_span, "stage": stage_span, "code": code_span, "metrics": metrics_span}
    frame, pos = {}, 0
    for name, literal, after in frame_pieces():
        end = spans[after][0] if after is not None else len(text)
        if text[pos:end] != literal:
            frame[name] = text[pos:end]
        if after is not None:
            pos = spans[after][1]
    spec = PromptSpec(gpu=gpu, stage=stage, variant=variant, code=text[code_span[0]:code_span[1]], metrics=metrics,
                      gpu_block=gpu_block, stage_text=stage_text, frame=frame, metrics_layout=layout)
    if render(spec) != text:
        raise PromptParseError("the parsed spec does not render back to the same text")
    return spec


def _find_heading(text: str, heading: str, pos: int) -> tuple[int, int] | None:
    """The first line at or after `pos` that is `heading` (as the template writes it, else its words
    in any case with markdown around them), as (line start, end after its newline)."""
    words = r"[ \t]+".join(re.findall(r"\w+", heading))
    for pattern, flags in ((rf"^{re.escape(heading)}", 0), (rf"^[ \t]*[#*\[_ \t]*{words}\b", re.IGNORECASE)):
        match = re.compile(pattern + r".*(?:\n|\Z)", re.MULTILINE | flags).search(text, pos)
        if match:
            return match.start(), match.end()
    return None


def _heading(text: str, heading: str, pos: int) -> tuple[int, int]:
    found = _find_heading(text, heading, pos)
    if found is None:
        earlier = _find_heading(text, heading, 0)
        where = " (it comes before the sections that precede it)" if earlier else ""
        raise PromptParseError(f"not a kernel-optimization prompt: missing section {heading!r}{where}; "
                               f"the field sections must come in this order: {', '.join(SECTIONS)}")
    return found


def _content_span(text: str, start: int, end: int, section: str) -> tuple[int, int]:
    """The lines of text[start:end] from the first to the last non-blank one, with its newline."""
    lines = text[start:end].splitlines(keepends=True)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        raise PromptParseError(f"section {section!r} is empty")
    begin = start + sum(len(line) for line in lines[: filled[0]])
    return begin, begin + sum(len(line) for line in lines[filled[0]: filled[-1] + 1])


def _gpu_field(text: str, start: int, end: int) -> tuple[tuple[int, int], str | None, str | None]:
    """The GPU block's span and its registry key (see _own_block), or the section kept verbatim."""
    keys = {gpu.block(): gpu.key for gpu in registry().values()}
    found = _own_block(text, start, end, keys)
    if found:
        return found[:2], keys[found[2]], None
    span = _content_span(text, start, end, SECTIONS[0])
    return span, None, text[span[0]:span[1]]


def _stage_field(text: str, start: int, end: int) -> tuple[tuple[int, int], str | None, str | None, str | None]:
    """The stage text's span, stage key and catalog variant (see _own_block); or the section kept
    verbatim, with the stage it is recognised as (or None)."""
    texts = {s.text(v): (s.key, v) for s in catalog().stages for v in s.variants}
    found = _own_block(text, start, end, texts)
    if found:
        return (found[:2], *texts[found[2]], None)
    span = _content_span(text, start, end, SECTIONS[1])
    verbatim = text[span[0]:span[1]]
    return span, catalog().recognise(verbatim), None, verbatim


def _own_block(text: str, start: int, end: int, candidates: Iterable[str]) -> tuple[int, int, str] | None:
    """The candidate found in text[start:end] as paragraphs of its own (after the section's start or
    a blank line, before its end or a blank line), as (start, end, candidate). None when none is, or
    when the section holds more than one candidate on whole lines: a section naming two GPUs names
    neither."""
    region, found = text[start:end], []
    for candidate in candidates:
        at = region.find(candidate)
        while at >= 0:
            before, after = region[:at], region[at + len(candidate):]
            if not before or before.endswith("\n"):
                own = (not before.strip() or re.search(r"\n[ \t]*\n\Z", before)) and (
                    not after.strip() or re.match(r"[ \t]*\n", after))
                found.append((start + at, start + at + len(candidate), candidate, bool(own)))
            at = region.find(candidate, at + 1)
    outer = [f for f in found if not any(o != f and o[0] <= f[0] and f[1] <= o[1] for o in found)]
    return outer[0][:3] if len(outer) == 1 and outer[0][3] else None


def _code_field(text: str, head: tuple[int, int], metrics: tuple[int, int]) -> tuple[int, int]:
    """The current code's span: the first fenced block of the section, up to the first line that
    closes it (the fence's character, at least as many, alone on the line); or, for code with no
    final newline, up to the section's last run of those characters."""
    opening = re.compile(r"^[ \t]*(`{3,}|~{3,}).*\n", re.MULTILINE).search(text, head[1], metrics[0])
    if opening is None:
        raise PromptParseError(f"section {SECTIONS[2]!r} holds no fenced code block")
    fence = opening[1]
    closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t\r]*$", re.MULTILINE).search(
        text, opening.end(), metrics[0])
    if closing is None:
        last = text.rfind(fence, opening.end(), metrics[0])
        if last >= 0:
            return opening.end(), last
        line = text.count("\n", 0, opening.start()) + 1
        raise PromptParseError(f"section {SECTIONS[2]!r}: the code block opened on line {line} is not closed "
                               f"(by a {fence} line) before {SECTIONS[3]!r}")
    return opening.end(), closing.start()


def _metrics_field(text: str, start: int, end: int) -> tuple[tuple[int, int], dict[str, Any], list[str] | None]:
    """The metrics JSON's span, the metrics, and their layout when it is not canonical.

    A section that holds no readable JSON object (none, broken JSON, a key given twice, a table
    of another format) gives empty metrics and its text, verbatim, as the layout.
    """
    opening = re.compile(r"^[ \t]*\{", re.MULTILINE).search(text, start, end)
    if opening is not None:
        first = opening.end() - 1
        try:
            metrics, last = json.JSONDecoder(object_pairs_hook=_unique_keys).raw_decode(text[:end], first)
        except (ValueError, RecursionError):  # JSONDecodeError, a key twice, a number too long to convert
            pass
        else:
            block = text[first:last]
            return (first, last), metrics, None if block == json.dumps(metrics, indent=2) else _layout(block)
    span = _content_span(text, start, end, SECTIONS[3])
    return span, {}, [text[span[0]:span[1]]]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        raise ValueError(f"a key given twice in {keys}")
    return dict(pairs)


def _layout(block: str) -> list[str]:
    """Split a JSON text into literal text and value tokens (every scalar that is no key), alternating."""
    decoder, pieces, literal_start = json.JSONDecoder(), [], 0

    def past(pos: int, punctuation: str = "") -> int:
        """The position after the whitespace at `pos`, then `punctuation` if it is there, then more whitespace."""
        pos = len(block) - len(block[pos:].lstrip())
        if punctuation and block.startswith(punctuation, pos):
            pos = len(block) - len(block[pos + 1:].lstrip())
        return pos

    def value(pos: int) -> int:
        """Walk the value at `pos`, recording its scalars; return where it ends."""
        nonlocal literal_start
        if block[pos] in "{[":
            close, pos = "}" if block[pos] == "{" else "]", past(pos + 1)
            while block[pos] != close:
                if close == "}":
                    _, pos = decoder.raw_decode(block, pos)
                    pos = past(pos, ":")
                pos = past(value(pos), ",")
            return pos + 1
        _, end = decoder.raw_decode(block, pos)
        pieces.extend([block[literal_start:pos], block[pos:end]])
        literal_start = end
        return end

    value(0)
    return pieces + [block[literal_start:]]


def _registry_block(key: str | None) -> str:
    if key is None:
        raise PromptParseError("spec field 'gpu' is null and no 'gpu_block' is given")
    try:
        return get_gpu(key).block()
    except RegistryError as exc:
        raise PromptParseError(f"spec field 'gpu': {exc}") from exc


def _catalog_text(key: str | None, variant: str | None) -> str:
    if key is None:
        raise PromptParseError("spec field 'stage' is null and no 'stage_text' is given")
    try:
        stage = catalog().get(key)
        return stage.text(variant if variant is not None else stage.variants[0])
    except RegistryError as exc:
        raise PromptParseError(f"spec field 'stage'/'variant': {exc}") from exc


def _same_value(a: Any, b: Any) -> bool:
    """Whether a token still prints `b`: the same type and the same JSON (so -0.0 is not 0.0)."""
    return type(a) is type(b) and json.dumps(a) == json.dumps(b)


def _leaves(value: Any) -> list[Any]:
    """Every scalar of a JSON value that is not a key, in reading order."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _skeleton(value: Any) -> Any:
    """A JSON value with its scalars blanked out: what a layout fixes besides the values."""
    if isinstance(value, dict):
        return [(k, _skeleton(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_skeleton(v) for v in value]
    return None
