import pytest

from builder.judge.loader import load_code, load_module


def test_load_code_writes_a_real_file(tmp_path):
    module = load_code("import inspect\n\ndef f():\n    return 41 + 1\n", tmp_path)
    assert module.f() == 42
    assert module.__file__.startswith(str(tmp_path))
    assert "41 + 1" in module.inspect.getsource(module.f)


def test_load_code_error_leaves_no_module_behind(tmp_path):
    import sys

    with pytest.raises(ZeroDivisionError):
        load_code("x = 1 / 0\n", tmp_path, stem="broken")
    assert not [name for name in sys.modules if name.startswith("kp_broken_")]


def test_load_module_imports_a_reference(tmp_path):
    path = tmp_path / "reference.py"
    path.write_text("class Model:\n    kind = 'ref'\n")
    assert load_module(path).Model.kind == "ref"
