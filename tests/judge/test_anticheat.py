import pytest

from builder.judge.anticheat import forbidden_sizes
from builder.judge.rules import check_code, first_finding

HEAD = "import torch\nimport torch.nn as nn\nimport triton\nimport triton.language as tl\n"
KERNEL = '''

@triton.jit
def k(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + offs, mask=offs < n)
    tl.store(y_ptr + offs, tl.sum(v, axis=0) + v.sum(axis=0), mask=offs < n)
'''


def model(body: str, extra_imports: str = "", bases: str = "nn.Module") -> str:
    lines = "\n".join("        " + line for line in body.strip().splitlines())
    return (
        f"{HEAD}{extra_imports}{KERNEL}\n\nclass ModelNew({bases}):\n"
        f"    def forward(self, x):\n{lines}\n"
    )


def verdict(code: str, sizes: frozenset[int] = frozenset()) -> str | None:
    found = first_finding(check_code(code, sizes))
    return found.reason if found else None


def test_plain_kernel_module_passes():
    body = "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=1024)\nreturn y.view(x.shape)"
    assert verdict(model(body)) is None


@pytest.mark.parametrize(
    "body,imports",
    [
        ("return F.avg_pool1d(x, 3)", "import torch.nn.functional as F\n"),
        ("return torch.nn.functional.avg_pool2d(x, 3)", ""),
        ("return ap(x, 3)", "from torch.nn.functional import avg_pool1d as ap\n"),
        ("return nn.AvgPool1d(3)(x)", ""),
        ("return x.unfold(2, 3, 1).mean(-1)", ""),
        ("return torch.cumsum(x, -1)", ""),
        ("return torch.conv1d(x, x)", ""),
        ("return x.sum(-1)", ""),
        ("return torch.ops.aten.avg_pool2d(x, [3, 3])", ""),
        ("return torch.compile(lambda t: t)(x)", ""),
        ("f = F\nreturn f.avg_pool1d(x, 3)", "import torch.nn.functional as F\n"),
    ],
)
def test_torch_doing_the_work(body, imports):
    assert verdict(model(body, imports)) == "torch_op"


def test_torch_inside_a_kernel_is_torch_op():
    code = model("return x").replace("tl.sum(v, axis=0)", "torch.sum(v)")
    assert verdict(code) == "torch_op"


def test_try_except_is_a_fallback():
    body = "try:\n    return x\nexcept Exception:\n    return x"
    assert verdict(model(body)) == "fallback"


@pytest.mark.parametrize("bases", ["Model", "nn.AvgPool2d", "torch.nn.AvgPool1d", "Base"])
def test_inheritance(bases):
    code = model("return x", bases=bases)
    if bases == "Base":
        code = code.replace("class ModelNew", "class Base(Model):\n    pass\n\n\nclass ModelNew")
    assert verdict(code) == "inherits_reference"


def test_local_base_deriving_from_module_is_fine():
    code = model("return x", bases="Base").replace("class ModelNew", "class Base(nn.Module):\n    pass\n\n\nclass ModelNew")
    assert verdict(code) is None


@pytest.mark.parametrize(
    "imports,body",
    [
        ("import os\n", "return x"),
        ("import subprocess\n", "return x"),
        ("from ctypes import CDLL\n", "return x"),
        ("import socket\n", "return x"),
        ("import importlib\n", "return x"),
        ("", "exec('y = 1')\nreturn x"),
        ("", "return eval('x')"),
        ("", "open('/etc/passwd').read()\nreturn x"),
        ("", "return __import__('os')"),
        ("", "return getattr(torch, 'avg_' + 'pool1d')(x, 3)"),
        ("", "return torch.__dict__['sum'](x)"),
        ("", "return x.__class__.__mro__"),
        ("", "torch.utils.cpp_extension.load_inline('m', '')\nreturn x"),
    ],
)
def test_system_access(imports, body):
    assert verdict(model(body, imports)) == "system_access"


@pytest.mark.parametrize(
    "statement",
    [
        "torch.cuda.synchronize = lambda: None",
        "torch.cuda.Event.elapsed_time = lambda self, other: 0.001",
        "time.perf_counter = lambda: 0.0",
    ],
)
def test_timer_patches(statement):
    assert verdict(model(f"{statement}\nreturn x", "import time\n")) == "timer_patch"


def test_other_module_patches():
    assert verdict(model("triton.runtime.jit.JITFunction.run = None\nreturn x")) == "monkey_patch"
    assert verdict(model("torch.allclose = lambda *a, **k: True\nreturn x")) == "monkey_patch"


@pytest.mark.parametrize(
    "body",
    [
        "s = torch.cuda.Stream()\nwith torch.cuda.stream(s):\n    return x",
        "g = torch.cuda.CUDAGraph()\nreturn x",
    ],
)
def test_side_streams(body):
    assert verdict(model(body)) == "side_stream"


def test_other_libraries_are_forbidden_imports():
    assert verdict(model("return x", "import numpy as np\n")) == "forbidden_import"
    assert verdict(model("return x", "from torch import *\n")) == "forbidden_import"


def test_allowed_helpers_import_cleanly():
    assert verdict(model("return x", "import math\nfrom typing import Optional\n")) is None


def test_forbidden_sizes_1d():
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert {65536, 65537, 64 * 128 * 65537} <= sizes
    assert not {64, 128, 8192, 1024, 8} & sizes  # block sizes and power-of-two tile budgets pass


def test_forbidden_sizes_2d():
    sizes = forbidden_sizes((16, 64, 2048, 2048), (16, 64, 186, 186))
    assert {2048, 186, 186 * 186, 16 * 64 * 186} <= sizes
    assert not {16, 64, 11} & sizes


@pytest.mark.parametrize("literal", ["65536", "65537", "65536.0", "-65537"])
def test_hardcoded_sizes(literal):
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(f"n = {literal}\nreturn x"), sizes) == "hardcoded_shape"


def test_block_size_literals_are_not_hardcoded_shapes():
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model("b = 1024\nt = 8192\nreturn x"), sizes) is None
