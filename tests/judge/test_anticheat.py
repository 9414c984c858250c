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


LAUNCH = "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=1024)\n"


@pytest.mark.parametrize("body,passes", [
    ("self.ln = nn.LayerNorm(4)\n" + LAUNCH + "return y", True),  # a holder of parameters
    ("torch.nn.init.ones_(self.w)\n" + LAUNCH + "return y", True),
    ("self.ln = nn.LayerNorm(4)\n" + LAUNCH + "return self.ln(y)", False),
    ("self.ln = nn.LayerNorm(4)\n" + LAUNCH + "return self.ln.forward(y)", False),
    ("ln = torch.nn.LayerNorm(4)\n" + LAUNCH + "return ln(y)", False),
    ("torch.nn.utils.parametrize.cached()\n" + LAUNCH + "return y", False),
])
def test_a_layer_may_hold_parameters_and_not_compute(body, passes):
    assert (verdict(model(body)) is None) is passes


def test_a_plain_class_may_be_called_and_a_module_may_not_define_call():
    launcher = "\n\nclass Launch{base}:\n    def __call__(self, x, y):\n        k[(1,)](x, y, x.numel(), BLOCK=1024)\n"
    for base, reason in (("", None), ("(object)", None), ("(nn.Module)", "system_access")):
        code = model("y = torch.empty_like(x)\nLaunch()(x, y)\nreturn y") + launcher.format(base=base)
        assert verdict(code) == reason, base


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
    assert verdict(model("tl.store = None\nreturn x")) == "monkey_patch"
    assert verdict(model("triton.runtime.jit.JITFunction.run = None\nreturn x")) == "system_access"
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



@pytest.mark.parametrize(
    "imports,body",
    [
        ("from typing import sys\n", "return x"),
        ("from triton.runtime.build import os\n", "return x"),
        ("import triton.runtime.build as b\n", "b.os.system('true')\nreturn x"),
        ("import functools\n", "functools.sys.modules.clear()\nreturn x"),
        ("", "m = torch.backends.torch.nn\nreturn x"),
        ("", "torch._dynamo.reset()\nreturn x"),
        ("", "torch.cuda.os.getpid()\nreturn x"),
        ("from torch import cuda as c\n", "c.threading.Thread(target=print).start()\nreturn x"),
        ("", "torch.nn.modules.pooling.F.relu(x)\nreturn x"),
        ("import triton.testing\n", "return x"),
        ("", "g = (i for i in ())\ng.gi_frame.f_globals['torch']\nreturn x"),
        ("", "return self.holder.builtins"),
        ("", "exit(0)"),
        ("", "t = tl\nreturn x"),
    ],
)
def test_routes_through_module_attributes(imports, body):
    assert verdict(model(body, imports)) == "system_access"


@pytest.mark.parametrize(
    "body",
    [
        "global eval\neval = print\nreturn x",
        "def inner(h: 'print(1)'):\n    return h\nreturn x",
        "return typing.get_type_hints(ModelNew)",
        "return functools.singledispatch(print)",
    ],
)
def test_dynamic_code(body):
    assert verdict(model(body, "import functools\nimport typing\n")) == "dynamic_code"


@pytest.mark.parametrize(
    "body",
    [
        "e = eval\nreturn e('x')",
        "def inner(g=getattr):\n    return g(torch, 'sum')\nreturn inner()(x)",
        "return __builtins__",
    ],
)
def test_shadowed_or_aliased_builtins(body):
    assert verdict(model(body)) in ("system_access", "dynamic_code")


@pytest.mark.parametrize(
    "body",
    [
        "F = torch.nn.functional\nF.avg_pool1d = lambda *a: a[0]\nreturn x",
        "m = torch.nn\nm.AvgPool1d.forward = lambda s, t: t\nreturn x",
        "m = [torch.nn][0]\nm.AvgPool1d.forward = lambda s, t: t\nreturn x",
        "a, b = torch.nn, 1\na.AvgPool1d.forward = None\nreturn x",
        "(n := torch.nn).AvgPool1d.forward = None\nreturn x",
        "def inner(m=torch.nn):\n    m.AvgPool1d.forward = None\nreturn x",
        "p = self.pool\np.forward = lambda t: t\nreturn x",
        "for m in (torch.nn,):\n    m.AvgPool1d.forward = None\nreturn x",
        "x.add_.owner = None\nreturn x",
        "self.pool.forward = None\nreturn x",
        "k.run = None\nreturn x",
        "k.add_pre_run_hook(print)\nreturn x",
        "self.register_forward_hook(print)\nreturn x",
    ],
)
def test_patches_through_aliases(body):
    assert verdict(model(body)) in ("monkey_patch", "torch_op")
    assert "monkey_patch" in {f.reason for f in check_code(model(body))}


def test_aliased_timer_patch():
    body = "E = torch.cuda.Event\nE.elapsed_time = lambda a, b: 0.001\nreturn x"
    assert verdict(model(body)) == "timer_patch"


def test_own_attributes_may_be_set():
    body = ("self.calls = 1\nself.a, self.b = 2, 3\n"
            "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=64)\nreturn y")
    assert verdict(model(body)) is None


@pytest.mark.parametrize(
    "grid",
    [
        "lambda meta: (x.add_(1).shape[0],)",
        "lambda meta: (torch.cumsum(x, 0).numel(),)",
        "lambda meta: (int(y.copy_(x[..., 1:] + x[..., :-1]).numel()),)",
    ],
)
def test_torch_work_in_a_grid_lambda(grid):
    body = f"y = torch.empty_like(x)\nk[{grid}](x, y, x.numel(), BLOCK=64)\nreturn y"
    assert verdict(model(body)) == "torch_op"


CONFIGS = "configs=[triton.Config({'BLOCK': 64})], key=['n']"
PRUNE = "def prune(configs, named):\n    named['y_ptr'].copy_(named['x_ptr'][:, ::2])\n    return configs\n"


@pytest.mark.parametrize(
    "decorator",
    [
        f"@triton.autotune({CONFIGS}, pre_hook=lambda a: a['y_ptr'].copy_(a['x_ptr'] * 2))",
        f"@triton.autotune({CONFIGS}, prune_configs_by={{'early_config_prune': prune}})",
        "@triton.heuristics({'BLOCK': lambda a: a['x_ptr'].mul_(2).numel()})",
    ],
)
def test_torch_work_in_triton_host_callables(decorator):
    code = model("return x").replace("@triton.jit", decorator + "\n@triton.jit")
    code = code.replace("\n\n@triton.autotune", f"\n\n{PRUNE}\n\n@triton.autotune", 1)
    assert "torch_op" in {f.reason for f in check_code(code)}


def test_pure_host_callables_pass():
    code = model(
        "y = torch.empty_like(x)\n"
        "grid = lambda meta: (triton.cdiv(x.numel(), meta['BLOCK']),)\n"
        "k[grid](x, y, x.numel())\nreturn y"
    )
    heuristic = "@triton.heuristics({'BLOCK': lambda a: min(triton.next_power_of_2(a['n']), 2048)})"
    code = code.replace("@triton.jit", f"{heuristic}\n@triton.jit")
    assert verdict(code) is None


@pytest.mark.parametrize("body", ["class Fake(torch.Tensor):\n    pass\nreturn x",
                                  "class Meta(type):\n    pass\nreturn x"])
def test_tensor_subclasses_and_metaclasses(body):
    code = model(body)
    if "Meta" in body:
        code = code.replace("class ModelNew(nn.Module)", "class ModelNew(nn.Module, metaclass=type)")
    assert verdict(code) == "system_access"


@pytest.mark.parametrize("method", ["__del__", "__init_subclass__", "__torch_function__", "__getattr__"])
def test_special_methods(method):
    special = f"    def {method}(self, *a):\n        return None\n\n"
    code = model("return x").replace("    def forward", special + "    def forward")
    assert verdict(code) == "system_access"


@pytest.mark.parametrize(
    "body",
    [
        "BLOCK = min(triton.next_power_of_2(x.shape[-1]), 65536)\nreturn x",
        "BLOCK_SIZE = 65536\nreturn x",
        "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=65536)\nreturn y",
        "cfg = {'BLOCK': 65536}\nreturn x",
        "BLOCK_b = 64\nwhile BLOCK_b < 65536 and BLOCK_b < x.shape[-1]:\n    BLOCK_b *= 2\nreturn x",
        "self.BLOCK_W = 65536\nreturn x",
        "BLOCK = 1 << 16\nreturn x",
        "BLOCKS = (1024, 65536)\nreturn x",
        "for BLOCK in [512, 65536]:\n    pass\nreturn x",
        "cfgs = [{'BLOCK': b} for b in (1024,)] + [{'BLOCK': 65536}]\nreturn x",
    ],
)
def test_power_of_two_tile_caps_are_not_hardcoded_shapes(body):
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(body), sizes) is None


@pytest.mark.parametrize(
    "body",
    [
        "if x.shape[-1] == 65536:\n    return x\nreturn x",
        "y = torch.empty(64, 128, 65536)\nreturn y",
        "BLOCK = min(x.shape[-1], 65537)\nreturn x",
        "n = 65536\nreturn x",
        "shape = (64, 128, 65536)\nreturn x",
        "n = 256 * 256\nreturn x",
        "n = (1 << 16) + 1\nreturn x",
        "n = 2 ** 16\nreturn x",
        "for n in (65536,):\n    pass\nreturn x",
    ],
)
def test_shapes_are_still_hardcoded(body):
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(body), sizes) == "hardcoded_shape"


@pytest.mark.parametrize(
    "body",
    [
        "configs = [3, 1, 2]\nconfigs.sort()\nreturn x",
        "values = list(range(4))\nvalues.sort(key=lambda v: -v)\nreturn x",
        "return sorted([2, 1])",
        "seen = set()\nseen.add(1)\nreturn x",
        "self.sizes = [k for k in range(3)]\nself.sizes.sort()\nreturn x",
    ],
)
def test_methods_of_plain_python_containers_are_not_torch_ops(body):
    assert verdict(model(body)) is None


def test_a_name_also_bound_to_a_tensor_is_not_a_container():
    assert verdict(model("v = [1]\nv = x\nv.sort()\nreturn x")) == "torch_op"


@pytest.mark.parametrize(
    "body",
    [
        "return x * 2",
        "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=64)\nreturn y / 8",
        "acc = torch.zeros(4)\nacc += x[:, :, 1:5]\nreturn acc",
        "v = x.contiguous().view(-1)\nreturn -v",
        "a = x[..., 1:]\nb = a\nreturn b + 1",
    ],
)
def test_tensor_arithmetic_outside_kernels(body):
    assert verdict(model(body)) == "torch_op"


def test_index_arithmetic_on_sizes_passes():
    body = ("n = x.numel() * 2 // 2\nblocks = triton.cdiv(x.shape[-1] + 4, 64) * x.size(0)\n"
            "y = torch.empty_like(x)\nk[(blocks,)](x, y, n - 0, BLOCK=64)\nreturn y")
    assert verdict(model(body)) is None


@pytest.mark.parametrize(
    "body,reason",
    [
        ("return x.logsumexp(-1)", "torch_op"),
        ("y = torch.empty_like(x)\nreturn y.softmax(-1)", "torch_op"),
        ("Fake = type('Fake', (torch.Tensor,), {})\nreturn x", "dynamic_code"),
        ("return x.as_subclass(torch.Tensor)", "system_access"),
        ("functools.update_wrapper(self, x, assigned=('forward',))\nreturn x", "monkey_patch"),
        ("functools.wraps(x, assigned=('forward',))(self)\nreturn x", "monkey_patch"),
        ("return self.ref.torch.nn.functional.avg_pool1d(x, 3)", "system_access"),
    ],
)
def test_more_routes(body, reason):
    assert verdict(model(body, "import functools\n")) == reason


def test_harmless_special_methods_and_tensor_methods_pass():
    code = model(
        "y = x.new_empty(x.shape)\nk[(triton.cdiv(x.numel(), 64),)](x.contiguous(), y, x.numel(), BLOCK=64)\n"
        "return y.view(x.shape)"
    ).replace("    def forward", "    def __repr__(self):\n        return 'ModelNew()'\n\n    def forward")
    assert verdict(code) is None


HELPER = "\n\ndef helper(t, k):\n    return t[..., k:] + t[..., :-k]\n"


@pytest.mark.parametrize(
    "body",
    [
        "box = [x]\nreturn box[0] * 2",
        "self.buf = x\nreturn self.buf + 1",
        "parts = [x[..., i:i + 2] for i in range(3)]\nreturn sum(parts)",
        "for t in (x,):\n    return t - 1",
        "return functools.reduce(lambda a, b: a, [x, x])",
        "return (lambda t: t * 3)(x)",
        "return x > 0.5",
        "a, b = x.chunk(2)\nreturn a @ b",
        "return max(x, x)",
        "y = torch.zeros_like(x)\ny -= x\nreturn y",
    ],
)
def test_tensor_work_through_names_containers_and_calls(body):
    assert verdict(model(body, "import functools\n")) == "torch_op"


def test_tensor_work_in_a_helper_called_with_the_input():
    code = model("return helper(x, 1)").replace("\n\nclass ModelNew", HELPER + "\n\nclass ModelNew")
    assert verdict(code) == "torch_op"


def test_a_helper_called_with_sizes_only_passes():
    code = model("y = torch.empty_like(x)\nk[(helper(x.numel(), 1),)](x, y, x.numel(), BLOCK=64)\nreturn y")
    code = code.replace("\n\nclass ModelNew", "\n\ndef helper(n, k):\n    return (n + k - 1) // k\n\n\nclass ModelNew")
    assert verdict(code) is None


@pytest.mark.parametrize("body", ["f = x.sum\nreturn f(-1)", "g = t.cumsum\nreturn x",
                                  "return list(map(x.mul, [2]))"])
def test_computing_methods_taken_as_values(body):
    assert verdict(model(body)) == "torch_op"


def test_describing_attributes_of_tensors_pass():
    body = ("n, c, length = x.shape\nassert x.dtype == torch.float32 and x.is_cuda is not None\n"
            "y = torch.empty((n, c, length), device=x.device, dtype=x.dtype)\n"
            "k[(triton.cdiv(y.numel(), 64),)](x, y, y.numel(), BLOCK=64)\nreturn y")
    assert verdict(model(body)) is None


@pytest.mark.parametrize(
    "body,reason",
    [
        ("triton.runtime.driver.set_active(None)\nreturn x", "system_access"),
        ("return x._base", "system_access"),
        ("y = torch.empty(0)\nreturn y.set_(x.untyped_storage())", "torch_op"),
    ],
)
def test_driver_private_attributes_and_storage(body, reason):
    assert verdict(model(body)) == reason


def test_reading_the_active_device_passes():
    body = ("props = triton.runtime.driver.active.utils.get_device_properties(0)\n"
            "self._props = props\ny = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=64)\nreturn y")
    assert verdict(model(body)) is None


def test_launch_metadata_and_custom_bench_are_host_callables():
    code = model("return x").replace("@triton.jit", "@triton.jit(launch_metadata=lambda g, k, a: a['x_ptr'].add_(1))")
    assert "torch_op" in {f.reason for f in check_code(code)}


def test_a_grid_lambda_sees_the_enclosing_tensors():
    body = "y = torch.empty_like(x)\nk[lambda meta: (int((x * 2).numel()),)](x, y, x.numel(), BLOCK=64)\nreturn y"
    assert verdict(model(body)) == "torch_op"


@pytest.mark.parametrize(
    "body,helpers",
    [
        ("return functools.partial(shift, x)()", "def shift(t):\n    return t[..., 1:] * 2\n"),
        ("return Pool().apply(x)", "class Pool:\n    def apply(self, t):\n        return t - 1\n"),
    ],
)
def test_tensor_work_behind_partials_and_methods(body, helpers):
    code = model(body, "import functools\n").replace("\n\nclass ModelNew", f"\n\n{helpers}\n\nclass ModelNew")
    assert verdict(code) == "torch_op"


def test_list_slices_and_concatenation_pass():
    body = ("sizes = [64, 128, 256]\nfirst = sizes[:1] + sizes[2:]\ny = torch.empty_like(x)\n"
            "k[(1,)](x, y, x.numel(), BLOCK=first[0])\nreturn y")
    assert verdict(model(body)) is None


@pytest.mark.parametrize(
    "prefix,body",
    [
        ("def swap(self, fn):\n    self.contiguous = fn\n\n", "swap(torch.Tensor, None)\nreturn x"),
        ("def install():\n    for self in (torch.Tensor,):\n        self.reshape = None\n\n", "return x"),
        ("class Box:\n    @staticmethod\n    def put(self, fn):\n        self.detach = fn\n\n", "return x"),
        ("class Box:\n    def put(self, other):\n        self = other\n        self.detach = None\n\n", "return x"),
    ],
    ids=["function parameter", "loop variable", "static method", "rebound in the method"],
)
def test_only_a_methods_own_self_may_take_attributes(prefix, body):
    assert verdict(model(body, extra_imports=prefix)) == "monkey_patch"


def test_a_method_may_set_its_own_attributes():
    code = model("self.cache = 1\nreturn x").replace("    def forward", "    def __init__(self):\n"
                                                       "        super().__init__()\n        self.k = 3\n\n    def forward")
    assert verdict(code) is None


@pytest.mark.parametrize(
    "module_level,kernel_line,reason",
    [
        ("SINK = []\n", "SINK.append(1)", "kernel_host_access"),
        ("def helper(v):\n    return v\n", "helper(1)", "kernel_host_access"),
        ("SCALE = 2.0\nWIDE = tl.constexpr(64)\n", "s = SCALE * WIDE", None),
        ("", "v = tl.zeros([4], dtype=tl.float32).handle", "kernel_host_access"),
    ],
    ids=["a list", "a host function", "constants", "the interpreter's handle"],
)
def test_a_kernel_reads_only_constants_imports_and_kernels(module_level, kernel_line, reason):
    code = (HEAD + module_level + "\n\n@triton.jit\ndef leak(x_ptr, BLOCK: tl.constexpr):\n"
            f"    {kernel_line}\n" + KERNEL + "\n\nclass ModelNew(nn.Module):\n    def forward(self, x):\n"
            "        y = torch.empty_like(x)\n        k[(1,)](x, y, x.numel(), BLOCK=1024)\n        return y\n")
    found = [f.reason for f in check_code(code) if "leak" in f.detail or "handle" in f.detail]
    assert found == ([reason] if reason else [])


def test_a_constexpr_of_a_function_is_refused():
    body = "k[(1,)](x, x, x.numel(), BLOCK=tl.constexpr(helper))\nreturn x"
    code = model(body, extra_imports="def helper(v):\n    return v\n\n")
    assert "kernel_host_access" in [f.reason for f in check_code(code)]


# -- names by scope ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "code",
    [
        "def wrapper(input, kernel_size):\n    return input.contiguous()\n",  # FlagGems's parameter
        "def wrapper(x):\n    open = x.shape[0]\n    return open\n",
        "def wrapper(x):\n    F = x\n    return F.shape\n",  # a local named like an import
        "def wrapper(x):\n    return [input for input in x.shape]\n",
        "wrapper = lambda input: input.shape\n",
    ],
)
def test_a_local_that_shadows_a_builtin_or_import_is_that_local(code):
    source = model("return x", "import torch.nn.functional as F\n").replace("\n\nclass ModelNew", f"\n\n{code}\n\nclass ModelNew")
    assert check_code(source) == []


@pytest.mark.parametrize(
    "code,reason",
    [
        ("def wrapper(x):\n    global input\n    return input('?')\n", "system_access"),  # the module's, so the built-in
        ("def wrapper(x, input=input):\n    return input('?')\n", "system_access"),  # the default is the built-in
        ("input = print\n", "dynamic_code"),  # a module-level rebinding
        ("class Box:\n    x = input\n    input = 1\n", "system_access"),  # a class body reads the built-in first
        ("def wrapper(x):\n    def inner():\n        return eval\n    return inner\n", "system_access"),
        ("def wrapper(m=F):\n    return m.avg_pool1d\n", "torch_op"),  # a default that is the module
    ],
)
def test_a_name_that_is_really_the_builtin_or_import(code, reason):
    source = model("return x", "import torch.nn.functional as F\n").replace("\n\nclass ModelNew", f"\n\n{code}\n\nclass ModelNew")
    assert reason in {f.reason for f in check_code(source)}


# -- constexpr globals ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ['tl.constexpr(float("-inf"))', "tl.constexpr(-float('inf'))",
                                   "tl.constexpr(math.inf)", "tl.constexpr(2 ** 10)", "tl.float32",
                                   "tl.constexpr(int('7'))"])
def test_a_constexpr_global_of_a_constant_is_allowed(value):
    code = model("return x", "import math\n").replace("\n\n@triton.jit", f"\nLIMIT = {value}\n\n\n@triton.jit")
    code = code.replace("tl.sum(v, axis=0)", "tl.sum(v, axis=0) + LIMIT" if "float32" not in value else "tl.sum(v, axis=0)")
    assert check_code(code) == []


@pytest.mark.parametrize("value", ["tl.constexpr(print)", "tl.constexpr(float)", "tl.constexpr(lambda: 0)",
                                   "tl.constexpr(float(n))", "tl.constexpr(helper())", "tl.constexpr(torch.sum)"])
def test_a_constexpr_global_of_anything_else_is_refused(value):
    code = model("return x").replace("\n\n@triton.jit", f"\nn = 3\ndef helper():\n    return 1\nLIMIT = {value}\n\n\n@triton.jit")
    assert {f.reason for f in check_code(code)} & {"kernel_host_access", "torch_op", "forbidden_section"}
    assert "kernel_host_access" in {f.reason for f in check_code(code)} or "torch_op" in {f.reason for f in check_code(code)}


def test_a_constexpr_of_a_rebound_float_is_refused():
    code = model("return x").replace("\n\n@triton.jit", '\nfloat = print\nLIMIT = tl.constexpr(float("-inf"))\n\n\n@triton.jit')
    assert "kernel_host_access" in {f.reason for f in check_code(code)}


# -- benchmark sizes ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "body",
    [
        "warps = 8 if x.shape[-1] >= 2048 else 4\nreturn x",
        "if x.shape[-1] > 65536 - 1:\n    pass\nreturn x",
    ],
)
def test_a_threshold_equal_to_a_benchmark_size_is_a_heuristic(body):
    sizes = forbidden_sizes((16, 64, 2048, 2048), (16, 64, 186, 186)) | forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(body), sizes) is None


# -- host callables and pure helpers --------------------------------------------------------------

HELPER = "def blocks(n, block):\n    return triton.cdiv(n, block) * max(1, operator.mul(1, 1))\n"


def with_helper(helper: str, grid: str = "lambda meta: (blocks(x.numel(), meta['BLOCK']),)") -> str:
    body = f"y = torch.empty_like(x)\nk[{grid}](x, y, x.numel(), BLOCK=64)\nreturn y"
    code = model(body, "import operator\n")
    return code.replace("\n\nclass ModelNew", f"\n\n{helper}\n\nclass ModelNew")


def test_a_grid_lambda_may_call_a_pure_helper_and_operator():
    assert check_code(with_helper(HELPER)) == []


@pytest.mark.parametrize(
    "helper,reason",
    [
        ("def blocks(n, block):\n    return deeper(n) // block\n\n\ndef deeper(n):\n    return n.sum()\n", "torch_op"),
        ("def blocks(n, block, f=torch.sum):\n    return f(n)\n", "torch_op"),
        ("def blocks(n, block):\n    return x_of(n)\n", "torch_op"),  # an unknown callee
        ("def blocks(n, block):\n    return n\n\n\nblocks = torch.numel\n", "torch_op"),  # bound twice
        ("def blocks(n, block):\n    import os\n    return os.cpu_count()\n", "system_access"),
        ("def blocks(n, block):\n    return operator.attrgetter('shape')(n)[0]\n", "system_access"),
    ],
)
def test_a_helper_that_is_not_pure_is_found(helper, reason):
    assert reason in {f.reason for f in check_code(with_helper(helper))}


def test_a_lambda_parameter_named_like_a_helper_is_not_the_helper():
    grid = "lambda meta, blocks=torch.numel: (blocks(x),)"
    assert "torch_op" in {f.reason for f in check_code(with_helper(HELPER, grid))}


def test_every_grid_lambda_of_the_same_name_is_checked():
    body = ("y = torch.empty_like(x)\ngrid = lambda meta: (x.add_(1).numel(),)\nk[grid](x, y, x.numel(), BLOCK=64)\n"
            "def later():\n    grid = lambda meta: (1,)\n    return grid\nreturn y")
    assert verdict(model(body)) == "torch_op"


@pytest.mark.parametrize("imports", ["import operator\nfrom functools import reduce\n", "import bisect\nimport heapq\n"])
def test_pure_standard_modules_import_cleanly(imports):
    body = "n = reduce(operator.mul, x.shape, 1) if 'reduce' in dir() else 1\nreturn x" if "reduce" in imports else "return x"
    assert verdict(model("return x", imports)) is None


@pytest.mark.parametrize("call", ["operator.attrgetter('shape')(x)", "operator.methodcaller('sum')(x)",
                                  "operator.add(x, x)"])
def test_operator_routes_and_tensor_arithmetic(call):
    assert verdict(model(f"return {call}", "import operator\n")) in ("system_access", "torch_op")


def test_ir_override_loads_a_file_as_the_kernel():
    code = model("return x").replace("@triton.jit", "@triton.autotune([triton.Config({}, ir_override='/tmp/k.ptx')], key=[])\n@triton.jit")
    assert verdict(code) == "system_access"


# -- import shims ---------------------------------------------------------------------------------

SHIM = "try:\n    import triton.language.extra.libdevice as libdevice\nexcept ImportError:\n    libdevice = None\n"


def test_an_import_shim_is_no_fallback_but_breaks_the_rules():
    code = model("return x").replace("import triton.language as tl\n", "import triton.language as tl\n" + SHIM)
    assert [f.reason for f in check_code(code)] == ["import_shim"]


@pytest.mark.parametrize(
    "shim",
    [
        "try:\n    import triton.language.extra.libdevice as ld\nexcept ImportError:\n    ld = torch\n",
        "try:\n    import triton.language.extra.libdevice as ld\nexcept Exception:\n    ld = None\n",
        "try:\n    import triton.language.extra.libdevice as ld\nexcept ImportError:\n    from torch.nn.functional import avg_pool1d as ld\n",
        "try:\n    ld = 1\nexcept ImportError:\n    ld = None\n",
    ],
)
def test_a_shim_that_is_more_than_imports_never_runs(shim):
    """Not an import shim: top-level code, so a forbidden section, blanked from the code that runs;
    or a shim whose imports are themselves refused."""
    from builder.judge.rules import runnable_code

    code = model("return x").replace("import triton.language as tl\n", "import triton.language as tl\n" + shim)
    found = {f.reason for f in check_code(code)}
    if "torch_op" in found:
        return
    assert "forbidden_section" in found and "import_shim" not in found
    assert "try:" not in runnable_code(code) and "ld" not in runnable_code(code)
    assert runnable_code(code).count("\n") == code.count("\n")


# -- faithfulness: device type, addresses -------------------------------------------------------

@pytest.mark.parametrize(
    "body",
    [
        "if x.device.type == 'cpu':\n    return x\nreturn x",
        "on_gpu = x.is_cuda\nreturn x",
        "return x if torch.cuda.is_available() else x",
        "if str(x.device) == 'cpu':\n    return x\nreturn x",
        "if x.device == torch.device('cuda'):\n    return x\nreturn x",
        "BLOCK = 128 if x.is_cuda else 64\nreturn x",
        "return x if x.get_device() >= 0 else x",
    ],
)
def test_a_device_type_branch_is_found(body):
    assert verdict(model(body)) == "device_branch"


@pytest.mark.parametrize(
    "body",
    [
        "assert x.is_cuda, 'CUDA only'\nreturn x",
        "if not x.is_cuda:\n    raise ValueError('CUDA only')\nreturn x",
        "y = torch.empty(x.shape, device=x.device)\nreturn y",
    ],
)
def test_checking_the_device_is_fine(body):
    assert verdict(model(body)) is None


@pytest.mark.parametrize("body", ["key = x.data_ptr()\nreturn x", "off = x.storage_offset()\nreturn x",
                                  "key = id(x)\nreturn x", "key = hash(x)\nreturn x",
                                  "key = (x.data_ptr(), tuple(x.shape))\nreturn x"])
def test_reading_an_address_is_found(body):
    assert verdict(model(body)) == "address_read"


def test_hashing_a_tuple_of_sizes_is_fine():
    assert verdict(model("key = hash((1, 2))\nreturn x")) is None


# -- the registry of checks -----------------------------------------------------------------------

def check_params():
    from builder.judge.anticheat import CHECKS

    for check in CHECKS:
        for fixture in check.fixtures:
            yield pytest.param(check, fixture, id=f"{check.run.__name__}:{fixture}")


@pytest.mark.parametrize("check,fixture", check_params())
def test_each_check_alone_catches_its_fixtures(check, fixture):
    """A check's fixtures exist, list one of its reasons in expected.toml, and the check alone gives it."""
    import ast
    import tomllib

    from builder import PROJECT_ROOT
    from builder.judge.anticheat import Source
    from builder.judge.score import benchmark_sizes, read_answer
    from builder.judge.rules import extract_code
    from builder.seeds import get_problem

    problem_key, folder, name = fixture.split("/")
    path = PROJECT_ROOT / "seeds" / problem_key / folder / name
    expected = tomllib.loads((path.parent / "expected.toml").read_text())[name]["reason"]
    assert expected in check.reasons, (fixture, expected, check.reasons)
    tree = ast.parse(extract_code(read_answer(path)))
    found = {f.reason for f in check.run(Source.of(tree, benchmark_sizes(get_problem(problem_key))))}
    assert expected in found, (fixture, found)


def test_every_check_names_a_known_reason():
    from builder.judge.anticheat import CHECKS
    from builder.judge.reasons import REASONS

    assert all(set(c.reasons) <= set(REASONS) and c.reasons for c in CHECKS)


@pytest.mark.parametrize("body", ["if x.shape[-1] >= 65536 and x.shape[-1] <= 65536:\n    return x\nreturn x",
                                  "if 65536 <= x.shape[-1] <= 65536:\n    return x\nreturn x"])
def test_two_thresholds_that_pinch_one_size_are_an_exact_size(body):
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(body), sizes) == "hardcoded_shape"


def test_a_branch_on_what_an_import_shim_set_is_a_device_branch():
    code = model("return x if libdevice is None else x").replace(
        "import triton.language as tl\n", "import triton.language as tl\n" + SHIM)
    assert verdict(code) == "device_branch"
def test_forbidden_sizes_cover_every_input_and_output_of_the_benchmark():
    from pathlib import Path

    from builder.judge.score import benchmark_sizes
    from builder.seeds import load_problem

    problem = load_problem(Path(__file__).parents[1] / "fixtures" / "problems" / "rowloss")
    assert {32768, 4096} <= benchmark_sizes(problem)


FUNCTION = '''

class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps):
        y = torch.empty_like(x)
        k[(1,)](x, y, x.numel(), BLOCK=1024)
        ctx.eps = eps
        ctx.save_for_backward(x)
        return y
'''


@pytest.mark.parametrize(
    "body,extra",
    [
        ("y = torch.empty_like(x.movedim(1, -1).contiguous())\nk[(1,)](x, y, x.numel(), BLOCK=1024)\nreturn y", ""),
        ("x = x.contiguous(memory_format=torch.channels_last)\ny = torch.empty_like(x)\n"
         "k[(1,)](x, y, x.numel(), BLOCK=1024)\nreturn y", ""),
        ("x = F.pad(x, (1, 1))\ny = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=1024)\nreturn y",
         "import torch.nn.functional as F\n"),
        ("return Scale.apply(x, 1e-5)", FUNCTION),
        ("BLOCK = triton.next_power_of_2(x.shape[-1])\nif BLOCK > MAX_FUSED_SIZE:\n    BLOCK = MAX_FUSED_SIZE\n"
         "y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=BLOCK)\nreturn y", "MAX_FUSED_SIZE = 65536\n"),
        ("cfg = Config(4)\ny = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=cfg.block)\nreturn y",
         "from dataclasses import dataclass\n\n\n@dataclass\nclass Config:\n    warps: int\n\n"
         "    def __post_init__(self):\n        self.block = 1024\n"),
    ],
    ids=["movedim", "channels_last", "F.pad", "autograd_function_ctx", "max_named_cap", "dataclass_post_init"],
)
def test_idioms_of_public_kernels_pass_the_static_layer(body, extra):
    sizes = forbidden_sizes((64, 128, 65536), (64, 128, 65537))
    assert verdict(model(body, extra), sizes) is None


def test_ctx_is_an_objects_own_only_in_an_autograd_functions_static_methods():
    plain = FUNCTION.replace("class Scale(torch.autograd.Function):\n    @staticmethod\n", "class Scale:\n    @staticmethod\n")
    assert verdict(model("return Scale.forward(torch, x, 1e-5)", plain)) == "monkey_patch"
    assert verdict(model("return x", "\n\ndef f(ctx):\n    ctx.eps = 1\n")) == "monkey_patch"
    assert verdict(model("return torch.autograd.grad(x.sum(), x)", "")) == "torch_op"


def test_a_constexpr_of_a_math_function_of_constants_is_a_constant():
    code = model("y = torch.empty_like(x)\nk[(1,)](x, y, x.numel(), BLOCK=1024)\nreturn y",
                 "import math\nLOG2E = tl.constexpr(math.log2(math.e))\n")
    code = code.replace("BLOCK: tl.constexpr):", "BLOCK: tl.constexpr):\n    z = LOG2E", 1)
    assert "z = LOG2E" in code and verdict(code) is None
    assert verdict(code.replace("math.log2(math.e)", "len(str(x))")) == "kernel_host_access"


@pytest.mark.parametrize(
    "helper,finding",
    [
        ("def sms():\n    try:\n        return torch.cuda.get_device_properties(0).multi_processor_count\n"
         "    except Exception:\n        return 132\n", None),
        ("def sms():\n    try:\n        n = torch.cuda.device_count()\n    except RuntimeError:\n        n = 1\n    return n\n", None),
        ("def run(x, y):\n    try:\n        k[(1,)](x, y, x.numel(), BLOCK=1024)\n    except Exception:\n        return 0\n",
         "fallback"),
        ("def run(x, y):\n    try:\n        launch(x, y)\n    except Exception:\n        pass\n\n\n"
         "def launch(x, y):\n    k[(1,)](x, y, x.numel(), BLOCK=1024)\n", "fallback"),
        ("def run(x):\n    try:\n        return torch.cuda.device_count()\n    except Exception:\n        return x\n",
         "fallback"),
    ],
    ids=["query_default", "query_bound_default", "launch_in_try", "own_function_in_try", "handler_returns_input"],
)
def test_a_try_that_only_gives_a_constant_around_a_query_is_no_fallback(helper, finding):
    reasons = {f.reason for f in check_code(model("return x", "\n\n" + helper))}
    assert ("fallback" in reasons) == (finding == "fallback"), reasons
