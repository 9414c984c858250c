"""The judge: static rules, sandboxed correctness, checked timing and profiling of Triton code."""

import ast
import functools
import hashlib
from pathlib import Path


def code_digest(sources: dict[str, str]) -> str:
    """A digest of Python sources (file name -> text) that changes with their code, not with their
    comments, docstrings or layout."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        tree = ast.parse(sources[name])
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def judge_version() -> str:
    """The digest of the judge's own code: verdicts cached under it go stale when the judge's code
    changes (a comment or a docstring does not count)."""
    return code_digest({path.name: path.read_text() for path in Path(__file__).parent.glob("*.py")})
