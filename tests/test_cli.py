import json

import pytest
from click.testing import CliRunner

from builder.cli import cli
from builder.seeds import load_problems

SEED = load_problems()[1].seed_prompt_path


def commands():
    return sorted(cli.commands)


@pytest.mark.parametrize("name", commands())
def test_every_command_has_help_with_an_example(name):
    result = CliRunner().invoke(cli, [name, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Example" in result.output


@pytest.mark.parametrize("name", commands())
def test_every_command_is_in_the_readme(name):
    from builder import PROJECT_ROOT

    assert f"kernel-prompts {name}" in (PROJECT_ROOT / "README.md").read_text()


def test_parse_then_render_reproduces_the_seed(tmp_path):
    runner = CliRunner()
    parsed = runner.invoke(cli, ["parse", str(SEED)], catch_exceptions=False)
    assert parsed.exit_code == 0
    spec = json.loads(parsed.output)
    assert spec["gpu"] == "rtx4090" and spec["stage"] == "grid_and_parallel"
    rendered = runner.invoke(cli, ["render", "-"], input=parsed.output, catch_exceptions=False)
    assert rendered.exit_code == 0
    assert rendered.output == SEED.read_text()


def test_parse_rejects_a_non_prompt_with_exit_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("# Target GPU\nsomething else entirely\n")
    result = CliRunner().invoke(cli, ["parse", str(bad)])
    assert result.exit_code == 2
    assert "missing section '[OPTIMIZATION STAGE]'" in result.output


def test_render_rejects_an_incomplete_spec():
    result = CliRunner().invoke(cli, ["render", "-"], input='{"gpu": "rtx4090"}')
    assert result.exit_code == 2
    assert "lacks field(s): stage, variant, code, metrics" in result.output


def test_problems_lists_both():
    result = CliRunner().invoke(cli, ["problems"], catch_exceptions=False)
    assert "avgpool1d: level 1 #44" in result.output and "avgpool2d: level 1 #45" in result.output
