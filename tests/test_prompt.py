import dataclasses
import difflib
import json
import re
from pathlib import Path
from string import Template

import pytest
from click.testing import CliRunner

from builder.errors import PromptParseError
from builder.gpus import get_gpu, registry
from builder.prompt import PROMPT_TEMPLATE, SECTIONS, TASK, PromptSpec, parse, render
from builder.seeds import load_problems
from builder.stages import catalog

FIXTURES = Path(__file__).parent / "fixtures" / "prompts"
POOLING = sorted((FIXTURES / "family").glob("*.txt"))  # KernelBench L1 #41-#46
NORMS = sorted((FIXTURES / "family-norms").glob("*.txt"))  # softmax, the norms and cross-entropy
FAMILY = POOLING + NORMS
SEED_PROMPTS = [p.seed_prompt_path for p in load_problems()]
PROMPTS = FAMILY + SEED_PROMPTS
STAGE_KEYS = [s.key for s in catalog().stages]


def ident(path: Path) -> str:
    return path.parent.name if path.name == "seed_prompt.txt" else path.stem


def stage_of(path: Path) -> str:
    """The stage key a fixture's file name carries (the seeds are stage-1 prompts)."""
    match = re.search(r"\.stage\d_(\w+)$", path.stem)
    return match[1] if match else "grid_and_parallel"


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def one_line_changed(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]


# ---- the fixtures themselves -------------------------------------------------------------------

def test_family_fixtures_are_all_there():
    assert (len(POOLING), len(NORMS)) == (20, 27)
    assert {stage_of(p) for p in POOLING} == {stage_of(p) for p in NORMS} == set(STAGE_KEYS)


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_round_trip_is_byte_identical(path):
    assert render(parse(read(path))).encode("utf-8") == path.read_bytes()


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_stage_and_gpu_keys(path):
    spec = parse(read(path))
    assert (spec.gpu, spec.gpu_block) == ("rtx4090", None)
    assert spec.stage == stage_of(path)


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_code_and_metrics_are_the_prompts_own(path):
    text = read(path)
    spec = parse(text)
    assert f"[CURRENT CODE]\n```python\n{spec.code}```\n" in text
    block = text.split("[NCU PROFILING METRICS]\n", 1)[1].split("\n\n**Task**", 1)[0]
    assert spec.metrics == json.loads(block)
    assert all(len(kernel) == 5 for kernel in spec.metrics.values())


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_spec_json_round_trip(path):
    spec = parse(read(path))
    assert PromptSpec.from_json(spec.to_json()) == spec
    assert render(PromptSpec.from_json(spec.to_json())) == read(path)


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_stage_text_is_kept_verbatim_only_when_it_is_not_the_catalogs(path):
    text = read(path)
    spec = parse(text)
    catalog_texts = {(s.key, v): s.text(v) for s in catalog().stages for v in s.variants}
    in_catalog = [key for key, stage_text in catalog_texts.items() if stage_text in text]
    if in_catalog:
        assert (spec.stage, spec.variant, spec.stage_text) == (*in_catalog[0], None)
    else:
        assert spec.variant is None and spec.stage_text is not None
        assert spec.stage_text.startswith("## Current Optimization Stage\n") and spec.stage_text in text


def test_seed_specs():
    specs = {p.parent.name: parse(p.read_text()) for p in SEED_PROMPTS}
    assert (specs["avgpool1d"].stage, specs["avgpool1d"].variant) == ("grid_and_parallel", "transposed_conv")
    assert (specs["avgpool2d"].stage, specs["avgpool2d"].variant) == ("grid_and_parallel", "default")
    assert specs["avgpool2d"].metrics["avgpool2d_kernel"]["lts__t_sector_hit_rate.pct"] == 6.0
    for key in ("avgpool1d", "avgpool2d"):  # the two original seeds are the template's own layout
        spec = specs[key]
        assert (spec.gpu_block, spec.stage_text, spec.frame, spec.metrics_layout) == (None, None, {}, None)
    for spec in specs.values():
        assert spec.gpu == "rtx4090" and spec.stage == "grid_and_parallel"


# ---- rendering -----------------------------------------------------------------------------------

def test_the_five_field_spec_renders_the_canonical_prompt():
    code, metrics = "import torch\n", {"k": {"launch__grid_size": 7, "lts__t_sector_hit_rate.pct": 1.5}}
    for gpu in registry():
        for stage in catalog().stages:
            for variant in stage.variants:
                spec = PromptSpec(gpu, stage.key, variant, code, metrics)
                expected = Template(PROMPT_TEMPLATE.read_text()).substitute(
                    gpu=get_gpu(gpu).block(), stage=stage.text(variant), code=code,
                    metrics=json.dumps(metrics, indent=2))
                assert render(spec) == expected
                assert parse(expected) == spec
                assert json.loads(spec.to_json()).keys() == {"gpu", "stage", "variant", "code", "metrics"}


def test_a_spec_without_variant_renders_the_default_text():
    spec = PromptSpec("h100_sxm", "block_tiling", None, "x = 1\n", {"k": {"m": 1}})
    assert render(spec) == render(dataclasses.replace(spec, variant="default"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gpu": None}, "'gpu' is null"),
        ({"gpu": "h100"}, "did you mean"),
        ({"stage": None, "variant": None}, "'stage' is null"),
        ({"variant": "fancy"}, "no variant 'fancy'"),
        ({"frame": {"between": "x"}}, "unknown piece"),
        ({"metrics_layout": ["{", "1", "}"]}, "metrics_layout"),
    ],
)
def test_bad_specs_are_named(change, message):
    spec = dataclasses.replace(PromptSpec("rtx4090", "grid_and_parallel", "default", "", {"k": {"m": 1, "n": 2}}),
                               **change)
    with pytest.raises(PromptParseError, match=message):
        render(spec)


def test_spec_json_errors_name_the_field():
    with pytest.raises(PromptParseError, match="lacks field.*: code, metrics"):
        PromptSpec.from_json('{"gpu": "rtx4090", "stage": "block_tiling", "variant": "default"}')
    with pytest.raises(PromptParseError, match="unknown field.*: gpu_name"):
        PromptSpec.from_json(json.dumps({f: None for f in ("gpu", "stage", "variant", "code", "metrics", "gpu_name")}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("gpu", 4090), ("code", None), ("metrics", ["k"]), ("frame", ["x"]), ("metrics_layout", ["{", "x", "}"]),
     ("metrics_layout", ["{"] * 2)],
)
def test_spec_json_of_the_wrong_type_names_the_field(field, value):
    data = {"gpu": "rtx4090", "stage": "block_tiling", "variant": "default", "code": "", "metrics": {}, field: value}
    with pytest.raises(PromptParseError, match=f"wrong type: '{field}'"):
        PromptSpec.from_json(json.dumps(data))


# ---- variants the parser must accept ----------------------------------------------------------

def set_blank_run(text: str, heading: str, lines: int) -> str:
    """`text` with the run of blank lines before `heading` set to `lines` blank lines."""
    return re.sub(rf"\n+(?={re.escape(heading)})", "\n" * (lines + 1), text, count=1)


def set_blank_run_after(text: str, heading: str, lines: int) -> str:
    return re.sub(rf"(?<=^{re.escape(heading)}\n)\n*", "\n" * lines, text, count=1, flags=re.M)


def insert_before(text: str, heading: str, line: str) -> str:
    return re.sub(rf"^(?={re.escape(heading)})", line + "\n\n", text, count=1, flags=re.M)


def insert_after(text: str, heading: str, line: str) -> str:
    return re.sub(rf"(?<=^{re.escape(heading)}\n)", line + "\n", text, count=1, flags=re.M)


def stage_section(text: str) -> str:
    return text.split("[OPTIMIZATION STAGE]\n", 1)[1].split("[CURRENT CODE]", 1)[0]


def reword_stage(text: str, how: str) -> str:
    """`text` with its stage section reworded `how`; the Focus line and metric names are kept."""
    section = stage_section(text)
    lines = section.split("\n")
    rules = [i for i, line in enumerate(lines) if line.startswith("- ") and "__" not in line]
    if how == "upper-case a rule":
        lines[rules[0]] = lines[rules[0]].upper()
    elif how == "drop a rule":
        del lines[rules[-1]]
    elif how == "add a rule":
        lines.insert(rules[0], "- Keep the kernel readable")
    elif how == "rename the heading":
        lines[lines.index("## Current Optimization Stage")] = "## Stage"
    return text.replace(section, "\n".join(lines), 1)


GPU_LINE = "• Number of SMs: 128\n"
GPU_MUTATIONS = {
    "value changed": lambda t: t.replace(GPU_LINE, "• Number of SMs: 130\n", 1),
    "name changed": lambda t: t.replace("GPU Name: 4090\n", "GPU Name: RTX 4090 D\n", 1),
    "line dropped": lambda t: t.replace(GPU_LINE, "", 1),
    "line added": lambda t: t.replace(GPU_LINE, GPU_LINE + "• NVLink: none\n", 1),
    "bullets as dashes": lambda t: t.replace("\n• ", "\n- "),
}

EXTRA = "Note: profiled once, on an idle machine."
HEADINGS = SECTIONS + (TASK, "OUTPUT RULES (STRICT)")
LAYOUT_MUTATIONS = {
    **{f"{lines} blank lines before {h}": (lambda t, h=h, n=lines: set_blank_run(t, h, n))
       for h in HEADINGS for lines in (0, 2, 5)},
    **{f"{lines} blank lines after {h}": (lambda t, h=h, n=lines: set_blank_run_after(t, h, n))
       for h in SECTIONS[:2] for lines in (2, 4)},
    **{f"extra line before {h}": (lambda t, h=h: insert_before(t, h, EXTRA)) for h in HEADINGS},
    **{f"extra line after {h}": (lambda t, h=h: insert_after(t, h, EXTRA)) for h in SECTIONS[:2] + SECTIONS[3:4]},
    "extra line first": lambda t: EXTRA + "\n" + t,
    "extra line last": lambda t: t + EXTRA + "\n",
    "no final newline": lambda t: t.rstrip("\n"),
    "trailing spaces on blank lines": lambda t: t.replace("\n\n[", "\n  \n["),
}
STAGE_MUTATIONS = {how: (lambda t, how=how: reword_stage(t, how))
                   for how in ("upper-case a rule", "drop a rule", "add a rule", "rename the heading")}
METRICS_MUTATIONS = {
    "metrics per launch": lambda t: reformat_metrics(t, indent=2, per_launch=True),
    "metrics indented 4": lambda t: reformat_metrics(t, indent=4),
    "metrics on one line": lambda t: reformat_metrics(t, indent=None),
    "metrics compact": lambda t: reformat_metrics(t, indent=None, separators=(",", ":")),
    "metrics tab-indented": lambda t: reformat_metrics(t, indent="\t"),
    "metrics with padded numbers": lambda t: re.sub(r'(": \d+\.\d+)(,?\n)', r"\g<1>0\2", t),
}


def reformat_metrics(text: str, per_launch: bool = False, **dumps_args) -> str:
    """`text` with its metrics JSON printed by json.dumps(**dumps_args); per_launch: each kernel's
    metrics as a list of two launches, as the origin prints a kernel launched more than once."""
    head, rest = text.split("[NCU PROFILING METRICS]\n", 1)
    block, tail = rest.split("\n\n**Task**", 1)
    metrics = json.loads(block)
    if per_launch:
        metrics = {kernel: [values, {**values, "launch__grid_size": 1}] for kernel, values in metrics.items()}
    return f"{head}[NCU PROFILING METRICS]\n{json.dumps(metrics, **dumps_args)}\n\n**Task**{tail}"


def mutated(path: Path, mutation) -> tuple[str, PromptSpec, PromptSpec]:
    text = read(path)
    variant = mutation(text)
    assert variant != text, "the mutation did nothing"
    return variant, parse(text), parse(variant)


def cases(mutations: dict) -> list:
    return [pytest.param(path, mutations[name], id=f"{ident(path)}-{name}") for name in mutations for path in PROMPTS]


@pytest.mark.parametrize(("path", "mutation"), cases(LAYOUT_MUTATIONS))
def test_other_layouts_round_trip_and_keep_every_field(path, mutation):
    variant, original, spec = mutated(path, mutation)
    assert render(spec) == variant
    assert (spec.code, spec.metrics, spec.stage) == (original.code, original.metrics, original.stage)
    # A line with no blank line between it and the GPU block or stage text joins that paragraph.
    assert (spec.gpu, spec.gpu_block) == (original.gpu, original.gpu_block) or EXTRA in spec.gpu_block
    assert (spec.variant, spec.stage_text) == (original.variant, original.stage_text) or EXTRA in spec.stage_text


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_crlf_line_ends_round_trip(path):
    variant, original, spec = mutated(path, lambda t: t.replace("\n", "\r\n"))
    assert render(spec) == variant
    assert spec.code == original.code.replace("\n", "\r\n") and spec.metrics == original.metrics
    assert spec.stage == original.stage


@pytest.mark.parametrize(("path", "mutation"), cases(GPU_MUTATIONS))
def test_another_gpu_block_is_kept_verbatim(path, mutation):
    variant, original, spec = mutated(path, mutation)
    assert render(spec) == variant
    assert spec.gpu is None and spec.gpu_block.startswith("GPU Name: ") and spec.gpu_block in variant
    assert spec.gpu_block.endswith("L2 cache (global, all SM shared): 72 MB\n")
    assert (spec.code, spec.metrics, spec.stage) == (original.code, original.metrics, original.stage)


@pytest.mark.parametrize(("path", "mutation"), cases(STAGE_MUTATIONS))
def test_a_reworded_stage_text_is_kept_verbatim_and_still_recognised(path, mutation):
    variant, original, spec = mutated(path, mutation)
    assert render(spec) == variant
    assert (spec.stage, spec.variant) == (stage_of(path), None)
    assert spec.stage_text is not None and spec.stage_text in stage_section(variant)
    assert (spec.code, spec.metrics, spec.gpu) == (original.code, original.metrics, original.gpu)


@pytest.mark.parametrize(("path", "mutation"), cases(METRICS_MUTATIONS))
def test_other_metrics_layouts_round_trip(path, mutation):
    variant, original, spec = mutated(path, mutation)
    assert render(spec) == variant
    assert (spec.metrics_layout is None) == (f"\n{json.dumps(spec.metrics, indent=2)}\n" in variant)
    if all(isinstance(v, dict) for v in spec.metrics.values()):
        assert spec.metrics == original.metrics
    else:
        assert [launches[0] for launches in spec.metrics.values()] == list(original.metrics.values())


@pytest.mark.parametrize("path", PROMPTS, ids=ident)
def test_a_metrics_section_without_json_is_kept_as_text(path):
    note = "No NCU metrics available (kernel failed to compile or run)"
    variant, original, spec = mutated(
        path, lambda t: re.sub(r"(?s)(?<=\[NCU PROFILING METRICS\]\n)\{.*?\n\}", note, t))
    assert render(spec) == variant
    assert (spec.metrics, spec.metrics_layout) == ({}, [note + "\n"])
    assert (spec.code, spec.stage, spec.gpu) == (original.code, original.stage, original.gpu)


@pytest.mark.parametrize(("path", "mutation"), cases({"as is": lambda t: t, **METRICS_MUTATIONS}))
@pytest.mark.parametrize("metric", ["launch__grid_size", "lts__t_sector_hit_rate.pct"])
def test_editing_one_metric_changes_exactly_one_line(path, mutation, metric):
    text = mutation(read(path))
    spec = parse(text)
    kernel = next(iter(spec.metrics))
    metrics = json.loads(json.dumps(spec.metrics))
    launch = metrics[kernel] if isinstance(metrics[kernel], dict) else metrics[kernel][-1]
    launch[metric] = 12.34
    edited = render(dataclasses.replace(spec, metrics=metrics))
    changed = one_line_changed(text, edited)
    assert [line[:1] for line in changed] == ["-", "+"]
    assert f'"{metric}": 12.34' in changed[1] or f'"{metric}":12.34' in changed[1]
    assert parse(edited).metrics == metrics


# ---- what another pipeline might write -----------------------------------------------------------

def code_block(text: str) -> str:
    return text.split("[CURRENT CODE]\n", 1)[1].split("[NCU PROFILING METRICS]", 1)[0]


def replace_metrics_json(text: str, body: str) -> str:
    return re.sub(r"(?s)(?<=\[NCU PROFILING METRICS\]\n)\{.*?\n\}", lambda _: body, text, count=1)


FRAME_MUTATIONS = {
    "no Task heading": lambda t: t.replace("**Task**: ", "", 1),
    "no output rules": lambda t: t.split("\n\n**Task**", 1)[0] + "\n",
    "headings in markdown": lambda t: t.replace("# Target GPU\n", "## Target GPU\n", 1)
    .replace("[OPTIMIZATION STAGE]\n", "### Optimization stage\n", 1)
    .replace("[CURRENT CODE]\n", "[Current Code]:\n", 1)
    .replace("[NCU PROFILING METRICS]\n", "**NCU profiling metrics**\n", 1)
    .replace("**Task**:", "Task:", 1).replace("OUTPUT RULES (STRICT):", "Output rules:", 1),
    "a section between code and metrics": lambda t: t.replace(
        "\n[NCU PROFILING METRICS]", "\n[PREVIOUS ATTEMPT]\n```\nptxas info: Used 40 registers\n```\n\n[NCU PROFILING METRICS]", 1),
    "four-backtick fence": lambda t: t.replace(code_block(t), code_block(t).replace("```", "````"), 1),
    "tilde fence": lambda t: t.replace(code_block(t), code_block(t).replace("```python", "~~~py").replace("```", "~~~"), 1),
    "a registry GPU block and a note of its own": lambda t: t.replace(
        "72 MB\n", "72 MB\n\nNote: clocks locked to base.\n", 1),
}


@pytest.mark.parametrize(("path", "mutation"), cases(FRAME_MUTATIONS))
def test_other_frames_round_trip_and_keep_every_field(path, mutation):
    variant, original, spec = mutated(path, mutation)
    assert render(spec) == variant
    assert (spec.code, spec.metrics, spec.gpu, spec.stage) == (original.code, original.metrics, original.gpu, original.stage)


@pytest.mark.parametrize(
    "lines",
    [["", "```", "ptxas info: Used 40 registers", "```"], ["Compiler log:", "```text", "ok", "```"]],
    ids=["bare fence", "fence with info"])
@pytest.mark.parametrize("path", PROMPTS[::5], ids=ident)
def test_the_code_is_the_first_block_of_its_section(path, lines):
    variant, original, spec = mutated(path, lambda t: t.replace("\n```\n\n[NCU", "\n```\n" + "\n".join(lines) + "\n\n[NCU", 1))
    assert spec.code == original.code and render(spec) == variant


@pytest.mark.parametrize("path", PROMPTS[::5], ids=ident)
def test_code_with_no_final_newline_ends_at_the_fence(path):
    variant, original, spec = mutated(path, lambda t: t.replace("\n```\n\n[NCU", "```\n\n[NCU", 1))
    assert spec.code == original.code[:-1] and render(spec) == variant


@pytest.mark.parametrize("path", PROMPTS[::5], ids=ident)
def test_a_gpu_block_with_a_line_of_its_own_or_a_second_gpu_names_no_registry_gpu(path):
    for extra in ("• NVLink: none\n", "\nAlso benchmarked on:\n" + get_gpu("h100_sxm").block()):
        variant, original, spec = mutated(path, lambda t: t.replace("72 MB\n", "72 MB\n" + extra, 1))
        assert spec.gpu is None and spec.gpu_block.endswith(extra) and render(spec) == variant


@pytest.mark.parametrize(
    "value", ['21.15%', '"21.15" %', "n/a", "1,234.5", "9" * 5000, "[" * 3000 + "1" + "]" * 3000],
    ids=["unit", "trailing", "n/a", "thousands", "5000 digits", "3000 levels"])
@pytest.mark.parametrize("path", PROMPTS[::5], ids=ident)
def test_metrics_that_are_no_json_are_kept_as_text(path, value):
    variant, original, spec = mutated(path, lambda t: re.sub(r'(?<="launch__grid_size": )[^,\n]+', value, t, count=1))
    assert render(spec) == variant and spec.metrics == {} and value in spec.metrics_layout[0]
    assert (spec.code, spec.gpu, spec.stage) == (original.code, original.gpu, original.stage)


@pytest.mark.parametrize("path", PROMPTS[::5], ids=ident)
def test_a_metric_given_twice_keeps_the_metrics_as_text(path):
    variant, _, spec = mutated(path, lambda t: re.sub(r'(?m)^(\s*"launch__grid_size": .*)$', r"\1\n\1", t, count=1))
    assert render(spec) == variant and spec.metrics == {}


@pytest.mark.parametrize(("token", "value"), [("-0.0", 0.0), ("0.0", -0.0), ("1e2", 100), ("NaN", 1.5)])
def test_a_metric_edit_always_shows(token, value):
    text = re.sub(r'(?<="launch__grid_size": )\d+', token, read(FAMILY[0]), count=1)
    spec = parse(text)
    metrics = json.loads(json.dumps(spec.metrics))
    kernel = next(iter(metrics))
    metrics[kernel]["launch__grid_size"] = value
    edited = render(dataclasses.replace(spec, metrics=metrics))
    assert len(one_line_changed(text, edited)) == 2
    assert json.dumps(parse(edited).metrics[kernel]["launch__grid_size"]) == json.dumps(value)


def test_sections_out_of_order_are_named():
    text = read(FAMILY[0])
    stage = text[text.index("[OPTIMIZATION STAGE]"):text.index("[CURRENT CODE]")]
    swapped = text.replace(stage, "").replace("# Target GPU", stage + "# Target GPU", 1)
    with pytest.raises(PromptParseError, match=r"missing section '\[OPTIMIZATION STAGE\]' \(it comes before"):
        parse(swapped)


# ---- stage recognition ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", FAMILY, ids=ident)
def test_the_focus_line_alone_names_the_stage(path):
    no_metrics = re.sub(r"\b[a-z]+__\S+", "a metric", stage_section(read(path)))
    assert catalog().recognise(no_metrics) == stage_of(path)


@pytest.mark.parametrize("path", [p for p in FAMILY if stage_of(p) != "advanced_memory"], ids=ident)
def test_the_metrics_alone_name_the_stage(path):
    no_focus = re.sub(r"(?im)^\W*focus\W*:.*$", "", stage_section(read(path)))
    assert catalog().recognise(no_focus) == stage_of(path)


@pytest.mark.parametrize("path", FAMILY, ids=ident)
def test_the_focus_line_outweighs_other_stages_metrics(path):
    others = [m for s in catalog().stages if s.key != stage_of(path) for m in s.metrics]
    text = stage_section(read(path)) + "\nSee also: " + ", ".join(f"`{m}`" for m in others) + "\n"
    assert catalog().recognise(text) == stage_of(path)


@pytest.mark.parametrize("path", FAMILY[:4], ids=ident)
def test_a_focus_heading_names_the_stage(path):
    text = re.sub(r"(?im)^(\W*)focus(\W*):[ \t]*", r"\1Focus\2\n", stage_section(read(path)), count=1)
    assert catalog().recognise(re.sub(r"\b[a-z]+__\S+", "a metric", text)) == stage_of(path)


@pytest.mark.parametrize("text", ["", "Focus: something else entirely\n", "Focus: grid tiling\n"])
def test_unclear_stage_texts_give_no_key(text):
    assert catalog().recognise(text) is None


def test_an_unrecognised_stage_still_parses():
    text = read(SEED_PROMPTS[0])
    variant = text.replace(stage_section(text), "\nDo your best.\n\n\n")
    spec = parse(variant)
    assert (spec.stage, spec.variant, spec.stage_text) == (None, None, "Do your best.\n")
    assert render(spec) == variant


# ---- what must fail ------------------------------------------------------------------------------

@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("path", [FAMILY[0], FAMILY[-1], SEED_PROMPTS[0]], ids=ident)
def test_missing_section_is_named(path, section):
    text = re.sub(rf"^{re.escape(section)}.*\n", "", read(path), count=1, flags=re.M)
    with pytest.raises(PromptParseError, match=re.escape(f"missing section {section!r}")):
        parse(text)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: re.sub(r"(?<=# Target GPU\n)(.+\n)+", "", t), "'# Target GPU' is empty"),
        (lambda t: t.replace(stage_section(t), "\n\n"), r"'\[OPTIMIZATION STAGE\]' is empty"),
        (lambda t: t.replace("[CURRENT CODE]\n```python\n", "[CURRENT CODE]\n"), "opened on line .* is not closed"),
        (lambda t: re.sub(r"(?s)(?<=\[CURRENT CODE\]\n)```python\n.*?```\n", "", t), "no fenced code block"),
        (lambda t: t.replace("\n```\n\n[NCU", "\n``\n\n[NCU"), "opened on line .* is not closed"),
    ],
    ids=["empty gpu", "empty stage", "no opening fence", "no code", "no closing fence"],
)
def test_unreadable_sections_are_named(damage, message):
    text = read(FAMILY[0])
    assert damage(text) != text
    with pytest.raises(PromptParseError, match=message):
        parse(damage(text))


# ---- the commands --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", FAMILY[:3], ids=ident)
def test_cli_parse_then_render_reproduces_a_family_prompt(path):
    from builder.cli import cli

    runner = CliRunner()
    parsed = runner.invoke(cli, ["parse", str(path)], catch_exceptions=False)
    assert parsed.exit_code == 0
    assert json.loads(parsed.output)["stage"] == stage_of(path)
    rendered = runner.invoke(cli, ["render", "-"], input=parsed.output, catch_exceptions=False)
    assert rendered.output == read(path)


def test_cli_parse_names_the_missing_section_with_exit_2(tmp_path):
    from builder.cli import cli

    bad = tmp_path / "prompt.txt"
    bad.write_text(read(FAMILY[0]).replace("[NCU PROFILING METRICS]", "[METRICS]"))
    result = CliRunner().invoke(cli, ["parse", str(bad)])
    assert result.exit_code == 2 and "missing section '[NCU PROFILING METRICS]'" in result.output


def test_cli_parse_keeps_crlf_line_ends(tmp_path):
    from builder.cli import cli

    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(read(FAMILY[0]).replace("\n", "\r\n").encode())
    runner = CliRunner()
    parsed = runner.invoke(cli, ["parse", str(prompt)], catch_exceptions=False)
    assert parsed.exit_code == 0 and "\r\n" in json.loads(parsed.output)["code"]
    rendered = runner.invoke(cli, ["render", "-"], input=parsed.output, catch_exceptions=False)
    assert rendered.stdout_bytes == prompt.read_bytes()


def test_cli_parse_names_a_file_that_is_not_utf8(tmp_path):
    from builder.cli import cli

    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"# Target GPU\n\xff\n")
    result = CliRunner().invoke(cli, ["parse", str(bad)])
    assert result.exit_code == 2 and "prompt.txt: not UTF-8 text" in result.output
