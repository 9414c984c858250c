"""The output rules of the prompts, checked on the text of an answer without running it.

`check_answer` extracts the python block, applies the format rules (section order, forbidden
sections, ModelNew, a Triton kernel) and the static anti-cheat checks, and returns the code the
judge may run with every finding; `first_finding` picks the one that names the verdict.

Format apart from correctness: a finding in FORMAT_REASONS breaks the prompt's output rules but
says nothing about whether the code is correct and safe, so the judge still runs the code and
reports the format finding beside the correctness verdict (`score --strict` rejects on it). It
never lets unchecked code run: the code the judge runs is the answer's code without its
forbidden sections (testing code, `if __name__`, top-level statements), lines blanked so that
line numbers stay, and every line of it went through the anti-cheat scan.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from builder.judge.anticheat import Finding, import_aliases, import_shim, is_triton_kernel, scan
from builder.judge.scopes import Scopes

#: Fenced blocks: the language tag, then the body up to the closing fence.
FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
PYTHON_TAGS = frozenset({"python", "py", "python3"})
#: A line that opens or closes a fenced block.
FENCE_LINE = re.compile(r"^[ \t]*```")

#: Reason codes by precedence: the first present names the verdict. Cheats outrank format slips.
PRECEDENCE = (
    "truncated", "no_code_block", "syntax_error", "system_access", "dynamic_code", "timer_patch",
    "monkey_patch", "kernel_host_access", "side_stream", "fallback", "inherits_reference", "forbidden_import", "torch_op",
    "device_branch", "address_read", "hardcoded_shape", "no_model_new", "no_triton_kernel", "forbidden_section",
    "import_shim", "rule_order",
)
#: Findings that break the output rules only: the code still runs (without its forbidden sections).
FORMAT_REASONS = frozenset({"forbidden_section", "import_shim", "rule_order"})
#: Section ranks in the required order; imports are ranked among themselves by IMPORT_RANKS.
IMPORTS, KERNELS, WRAPPERS, MODEL = range(4)
SECTION_NAMES = ("imports", "@triton.jit kernels", "wrapper functions", "class ModelNew")
IMPORT_RANKS = {"torch": 0, "torch.nn": 1, "triton": 2, "triton.language": 3}
FORBIDDEN_NAMES = frozenset({"get_inputs", "get_init_inputs"})
TEST_MODULES = frozenset({"pytest", "unittest", "doctest"})


def extract_code(answer: str) -> str | None:
    """The last non-empty python-fenced block of `answer` (an untagged one if none is tagged)."""
    tagged, untagged = [], []
    for match in FENCE.finditer(answer):
        tag, body = match.group(1).lower(), match.group(2)
        if not body.strip():
            continue
        if tag in PYTHON_TAGS:
            tagged.append(body)
        elif not tag:
            untagged.append(body)
    blocks = tagged or untagged
    return blocks[-1] if blocks else None


def truncated(answer: str) -> bool:
    """True when the answer's last fence opens a block that never closes (a reply cut off by a
    length limit), whatever complete blocks come before it."""
    fences = sum(1 for line in answer.splitlines() if FENCE_LINE.match(line))
    return fences % 2 == 1


def check_answer(answer: str, sizes: frozenset[int] = frozenset()) -> tuple[str, list[Finding]]:
    """The code the judge may run ("" if there is none, with a no_code_block finding) and every
    finding; a reply cut off inside a code block gets only a truncated finding."""
    if truncated(answer):
        cut = Finding("truncated", "the answer ends inside a code block that was never closed")
        return extract_code(answer) or "", [cut]
    code = extract_code(answer)
    if code is None:
        return "", [Finding("no_code_block", "the answer holds no fenced python block")]
    return runnable_code(code), check_code(code, sizes)


def check_code(code: str, sizes: frozenset[int] = frozenset()) -> list[Finding]:
    """Every format and anti-cheat finding on `code`; `sizes` are the benchmark's forbidden literals.
    The anti-cheat scan covers exactly what `runnable_code` keeps."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [Finding("syntax_error", f"line {exc.lineno}: {exc.msg}")]
    forbidden = list(_forbidden_sections(tree))
    skipped = {id(node) for node, _ in forbidden}
    kept = ast.Module(body=[n for n in tree.body if id(n) not in skipped], type_ignores=[])
    found = [finding for _, finding in forbidden]
    found += scan(kept, sizes)
    found += _structure(kept)
    return found


def runnable_code(code: str) -> str:
    """`code` without its forbidden sections: their lines (decorators included) are blanked, so
    the rest keeps its line numbers. What is left is what check_code scanned."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(keepends=True)
    for node, _ in _forbidden_sections(tree):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        for index in range(first - 1, (node.end_lineno or node.lineno)):
            lines[index] = "\n"
    return "".join(lines)


def hard_findings(findings: list[Finding]) -> list[Finding]:
    """The findings that reject whatever the mode: all but FORMAT_REASONS."""
    return [f for f in findings if f.reason not in FORMAT_REASONS]


def format_findings(findings: list[Finding]) -> list[Finding]:
    """The findings that only break the output rules."""
    return [f for f in findings if f.reason in FORMAT_REASONS]


def first_finding(findings: list[Finding]) -> Finding | None:
    """The finding that names the verdict, by PRECEDENCE; None for no findings."""
    if not findings:
        return None
    rank = {reason: i for i, reason in enumerate(PRECEDENCE)}
    return min(findings, key=lambda f: rank.get(f.reason, len(rank)))


def _forbidden_sections(tree: ast.Module) -> Iterator[tuple[ast.stmt, Finding]]:
    """Top-level statements that are testing code rather than the module's definitions (an
    import shim is neither: it stays, and _structure reports it)."""
    scopes = Scopes(tree)
    for node in tree.body:
        line = node.lineno
        if import_shim(node, scopes):
            continue
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            yield node, Finding("forbidden_section", f"line {line}: `if __name__` block")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.name in FORBIDDEN_NAMES or node.name.startswith("test")):
            yield node, Finding("forbidden_section", f"line {line}: defines {node.name}")
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            yield node, Finding("forbidden_section", f"line {line}: test class {node.name}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                _module_of(node, a.name).split(".")[0] in TEST_MODULES for a in node.names):
            yield node, Finding("forbidden_section", f"line {line}: imports a test framework")
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in FORBIDDEN_NAMES for t in node.targets):
            yield node, Finding("forbidden_section", f"line {line}: binds get_inputs/get_init_inputs")
        elif not _is_definition(node):
            yield node, Finding("forbidden_section", f"line {line}: top-level code runs on import")


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef,
                         ast.Assign, ast.AnnAssign)):
        return True
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
        node.value.value, str)


def _module_of(node: ast.Import | ast.ImportFrom, name: str) -> str:
    return name if isinstance(node, ast.Import) else (node.module or "")


def _structure(tree: ast.Module) -> Iterator[Finding]:
    """ModelNew and a kernel exist, and sections come in the required order."""
    aliases = import_aliases(tree)
    ranks: list[tuple[int, int]] = []
    import_ranks: list[tuple[int, str]] = []
    has_model = has_kernel = False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            ranks.append((IMPORTS, node.lineno))
            for alias in node.names:
                module = alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
                if module in IMPORT_RANKS:
                    import_ranks.append((IMPORT_RANKS[module], module))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kernel = is_triton_kernel(node, aliases)
            has_kernel |= kernel
            ranks.append((KERNELS if kernel else WRAPPERS, node.lineno))
        elif isinstance(node, ast.ClassDef) and node.name == "ModelNew":
            has_model = True
            ranks.append((MODEL, node.lineno))
    scopes = Scopes(tree)
    for node in tree.body:
        if import_shim(node, scopes):
            yield Finding("import_shim", f"line {node.lineno}: try/except ImportError around imports (the rules ask "
                                         "for plain imports)")
    if not has_model:
        yield Finding("no_model_new", "no class ModelNew")
    if not has_kernel:
        yield Finding("no_triton_kernel", "no @triton.jit function")
    for (before, _), (after, line) in zip(ranks, ranks[1:]):
        if after < before:
            yield Finding("rule_order", f"line {line}: {SECTION_NAMES[after]} after {SECTION_NAMES[before]}")
            break
    for (before, first), (after, second) in zip(import_ranks, import_ranks[1:]):
        if after < before:
            yield Finding("rule_order", f"imports {second} after {first}")
            break
