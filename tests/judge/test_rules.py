import pytest

from builder.judge.rules import check_answer, check_code, extract_code, first_finding
from builder.judge.score import benchmark_sizes, read_answer
from builder.seeds import load_problems

PROBLEMS = load_problems()

GOOD = '''import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def copy_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=offs < n), mask=offs < n)


def copy(x):
    y = torch.empty_like(x)
    copy_kernel[(triton.cdiv(x.numel(), 256),)](x, y, x.numel(), BLOCK=256)
    return y


class ModelNew(nn.Module):
    def forward(self, x):
        return copy(x)
'''


def reasons(code: str) -> list[str]:
    return [f.reason for f in check_code(code)]


def test_extract_code_takes_the_last_python_block():
    answer = "First try:\n```python\nA = 1\n```\nBetter:\n```python\nB = 2\n```\n"
    assert extract_code(answer) == "B = 2\n"


def test_extract_code_skips_empty_blocks_and_falls_back_to_untagged():
    assert extract_code("```python\n\n```\n```\nC = 3\n```") == "C = 3\n"
    assert extract_code("```bash\nls\n```") is None
    assert extract_code("no code here") is None


def test_no_code_block_is_a_finding():
    code, findings = check_answer("I would use a Triton kernel.")
    assert code == "" and [f.reason for f in findings] == ["no_code_block"]


def test_clean_code_has_no_findings():
    assert check_code(GOOD) == []


def test_syntax_error_is_the_only_finding():
    assert reasons(GOOD.replace("def copy(x):", "def copy(x)")) == ["syntax_error"]


@pytest.mark.parametrize(
    "extra",
    [
        'if __name__ == "__main__":\n    print(copy(torch.rand(4)))\n',
        "def get_inputs():\n    return [torch.rand(4)]\n",
        "def get_init_inputs():\n    return []\n",
        "def test_copy():\n    assert True\n",
        "print('hello')\n",
        "import pytest\n",
    ],
)
def test_forbidden_sections(extra):
    assert reasons(GOOD + "\n\n" + extra) == ["forbidden_section"]


def test_forbidden_section_content_is_not_scanned_for_cheats():
    extra = 'if __name__ == "__main__":\n    import torch.nn.functional as F\n    F.avg_pool1d(torch.rand(1, 1, 4), 2)\n'
    assert reasons(GOOD + "\n\n" + extra) == ["forbidden_section"]


def test_missing_model_new_and_kernel():
    assert "no_model_new" in reasons(GOOD.replace("class ModelNew", "class Other"))
    assert "no_triton_kernel" in reasons(GOOD.replace("@triton.jit\n", ""))


def test_jit_imported_by_name_counts_as_kernel():
    code = GOOD.replace("import triton\n", "import triton\nfrom triton import jit\n").replace("@triton.jit", "@jit")
    assert check_code(code) == []


@pytest.mark.parametrize(
    "code",
    [
        # wrapper before kernel
        GOOD.replace("def copy(x):", "def helper():\n    return 1\n\n\ndef copy(x):").replace(
            "@triton.jit", "def early():\n    return 0\n\n\n@triton.jit"),
        # ModelNew before the wrapper
        GOOD + "\n\ndef late():\n    return 2\n",
        # triton imported before torch
        "import triton\n" + GOOD.replace("import triton\n", ""),
    ],
)
def test_rule_order(code):
    assert reasons(code) == ["rule_order"]


def test_cheats_outrank_format_slips():
    code = "import os\n" + GOOD.replace("class ModelNew", "class Other")
    assert first_finding(check_code(code)).reason == "system_access"


SOLUTIONS = [(p, path) for p in PROBLEMS for path in p.solutions.values()]


@pytest.mark.parametrize("problem,path", SOLUTIONS, ids=[f"{p.key}/{s.stem}" for p, s in SOLUTIONS])
def test_solutions_pass_the_rules(problem, path):
    code, findings = check_answer(read_answer(path), benchmark_sizes(problem))
    assert findings == [] and code.strip() == path.read_text().strip()


@pytest.mark.parametrize(
    "answer",
    [
        "Here is the kernel:\n```python\n" + GOOD,
        "First try:\n```python\n" + GOOD + "```\nA faster one:\n```python\nimport torch\n\n@triton.jit\ndef k(",
        "```python\n" + GOOD + "```\n\nAnd a test:\n```\nprint(1)\n",
    ],
)
def test_an_unclosed_last_fence_is_truncated(answer):
    _, findings = check_answer(answer)
    assert first_finding(findings).reason == "truncated"


def test_closed_fences_are_not_truncated():
    answer = "Plan:\n```text\nsteps\n```\n```python\n" + GOOD + "```\nDone."
    code, findings = check_answer(answer)
    assert findings == [] and code == GOOD
