import json
import re

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


def test_score_judges_the_file_once_per_round_and_reports_each_rounds_time(tmp_path):
    problem = next(p for p in load_problems() if p.key == "avgpool1d")
    answers = tmp_path / "answers.jsonl"
    texts = [(problem.wrong_dir / "no_code_block.md").read_text(),
             f"```python\n{(problem.wrong_dir / 'os_system.py').read_text()}```\n"]
    answers.write_text("\n".join(json.dumps({"completion": text}) for text in texts) + "\n")
    alone = problem.wrong_dir / "no_model_new.py"
    result = CliRunner().invoke(cli, ["score", "-p", "avgpool1d", "--device", "cpu", "--rounds", "2", str(answers),
                                      str(alone)])
    assert result.exit_code == 1, result.output  # every one rejected
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    once = [(str(answers), "no_code_block"), (str(answers), "system_access"), (str(alone), "no_model_new")]
    assert [(v["round"], v["file"], v["reason"]) for v in verdicts] == [(1, *v) for v in once] + [(2, *v) for v in once]
    assert "round 1 of 2: 3 answer(s), 0 ok, on cpu" in result.stderr and "round 2 of 2" in result.stderr
    assert "wall" in result.stderr
    for round_ in (1, 2):  # a line as each answer's checks end, in whatever order they end
        said = sorted(re.findall(rf"round {round_}: \[[0-9.]+s\] checked ([0-9])/3: ([a-z_]+) \(", result.stderr))
        assert said == [("1", "no_code_block"), ("2", "system_access"), ("3", "no_model_new")], result.stderr


def test_score_names_the_answer_file_it_cannot_read(tmp_path):
    broken = tmp_path / "answers.jsonl"
    broken.write_text("{not json\n")
    result = CliRunner().invoke(cli, ["score", "-p", "avgpool1d", "--device", "cpu", str(broken)])
    assert result.exit_code == 2 and "answers.jsonl:1" in result.output
