"""The judge's version: cached verdicts go stale when its code changes, not its comments."""

from builder.judge import code_digest, judge_version

CODE = '''"""A module."""


def f(x):
    """Doubles."""
    return 2 * x  # twice
'''


def test_comments_docstrings_and_layout_leave_the_digest_alone():
    reworded = CODE.replace("A module.", "The module.").replace("# twice", "# two times").replace("2 * x", "2*x")
    assert code_digest({"a.py": reworded}) == code_digest({"a.py": CODE})
    assert code_digest({"a.py": CODE.replace('    """Doubles."""\n', "")}) == code_digest({"a.py": CODE})


def test_a_change_of_code_or_of_a_file_name_changes_it():
    assert code_digest({"a.py": CODE.replace("2 * x", "3 * x")}) != code_digest({"a.py": CODE})
    assert code_digest({"b.py": CODE}) != code_digest({"a.py": CODE})
    assert len(judge_version()) == 16
