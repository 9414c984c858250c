import pytest
import torch

from builder.judge.compare import compare
from builder.judge.guards import Guards, lifted_change, plain_outputs
from builder.judge.inputs import GUARD_VALUES, Placed, PlacedInputs
from builder.judge.poison import poison, untouched

GUARD_VALUE = GUARD_VALUES[torch.float32]


def GuardedInput(shape, dtype, device, seed, low=0.0, high=1.0):
    """One seeded input between guard bands, as the fixed cases get it."""
    placed = Placed(shape, dtype, device, "guarded")
    placed.fill({"low": low, "high": high}, seed)
    return placed

REF = torch.rand(2, 3, 8, generator=torch.Generator().manual_seed(0))


def test_within_tolerance_passes_with_error_figures():
    result = compare(REF + 1e-6, REF, atol=1e-4, rtol=1e-4)
    assert result.reason is None and 0 < result.max_abs_err < 1e-5


@pytest.mark.parametrize(
    "make_out,reason",
    [
        (lambda r: r[..., :-1], "wrong_shape"),
        (lambda r: r.tolist(), "wrong_shape"),
        (lambda r: r.double(), "wrong_dtype"),
        (lambda r: r + 1e-3, "precision_loss"),
        (lambda r: r + 0.5, "mismatch"),
        (lambda r: torch.where(r > 0.5, float("nan"), r), "nan_inf"),
        (lambda r: torch.where(r > 0.5, float("inf"), r), "nan_inf"),
        (lambda r: r + GUARD_VALUE, "out_of_bounds"),
    ],
)
def test_compare_reasons(make_out, reason):
    assert compare(make_out(REF.clone()), REF, atol=1e-4, rtol=1e-4).reason == reason


def test_poisoned_elements_count_as_never_written():
    out = REF.clone()
    poison(out[0])
    assert untouched(out) == 24
    assert compare(out, REF, atol=1e-4, rtol=1e-4).reason == "uninitialized_output"


def test_guarded_input_is_seeded_uniform_between_bands():
    a = GuardedInput((2, 3, 5), torch.float32, "cpu", seed=3)
    b = GuardedInput((2, 3, 5), torch.float32, "cpu", seed=3)
    assert torch.equal(a.x, b.x) and a.x.is_contiguous()
    assert float(a.x.min()) >= 0 and float(a.x.max()) < 1
    assert a.bands_intact()
    flat = a.x.view(-1)
    torch.as_strided(flat, (1,), (1,), flat.storage_offset() + flat.numel()).fill_(0.0)
    assert not a.bands_intact()


def test_fingerprint_sees_a_changed_element_and_a_sum_keeping_swap():
    a = GuardedInput((2, 3, 5), torch.float32, "cpu", seed=1)
    before = a.fingerprint(key=12345)
    assert a.fingerprint(key=12345) == before and a.fingerprint(key=54321) != before
    a.x[0, 0, [0, 1]] = a.x[0, 0, [1, 0]].clone()
    assert a.fingerprint(key=12345) != before
    a.x[0, 0, [0, 1]] = a.x[0, 0, [1, 0]].clone()
    assert a.fingerprint(key=12345) == before
    a.x[1, 2, 4] += 1.0
    assert a.fingerprint(key=12345) != before


def test_watch_records_ops_and_poisons_allocations():
    with Guards(cuda=False) as guards:
        with guards.watch() as record:
            y = torch.empty(4)
            z = REF.view(-1).clone()
            w = REF.sum()
    assert record.ops[:3] == ["empty", "view", "clone"]
    assert record.computing_ops() == ["sum"] and record.launches == 0
    assert untouched(y) == 4 and untouched(z) == 0 and float(w) > 0


def test_a_timed_or_profiled_call_records_its_allocation_without_filling_it(monkeypatch):
    import builder.judge.poison as poison_module

    filled = []
    monkeypatch.setattr(poison_module, "poison", lambda tensor: filled.append(tensor.numel()))
    with Guards(cuda=False) as guards:
        with guards.watch():
            torch.empty(4)
        assert filled.count(4) == 1
        with guards.unpoisoned(), guards.watch() as record:
            torch.empty(4)
        with guards.watch():
            torch.empty(4)
    assert record.ops[0] == "empty" and filled.count(4) == 2


def test_allocations_poison_without_recording():
    with Guards(cuda=False) as guards:
        with guards.allocations():
            y = torch.empty(3)
    assert untouched(y) == 3 and guards.record is None


def test_tampering_with_timers_and_judge_tools(monkeypatch):
    with Guards(cuda=False) as guards:
        assert guards.tampering() is None
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)
        assert guards.tampering().reason == "timer_patch"
        monkeypatch.undo()
        monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
        assert guards.tampering().reason == "monkey_patch"
        monkeypatch.undo()
        assert guards.tampering() is None


def test_replacing_the_launch_wrapper_is_tampering():
    from triton.runtime.jit import JITFunction

    original = JITFunction.run
    with Guards(cuda=False) as guards:
        wrapped = JITFunction.run
        JITFunction.run = original
        try:
            assert guards.tampering().reason == "guard_disabled"
        finally:
            JITFunction.run = wrapped
    assert JITFunction.run is original


def test_a_thread_started_after_the_guards_is_tampering_and_named():
    import threading

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    with Guards(cuda=False) as guards:
        assert guards.tampering() is None
        worker.start()
        try:
            finding = guards.tampering()
            assert finding.reason == "guard_disabled" and "threading.py" in finding.detail
        finally:
            stop.set()
            worker.join()


def test_relative_error_leaves_out_references_near_zero():
    ref = torch.tensor([0.0, 1e-9, 2.0, 4.0])
    out = ref + torch.tensor([1e-6, 1e-6, 2e-6, 0.0])
    result = compare(out, ref, atol=1e-4, rtol=1e-4)
    assert result.reason is None and 0 < result.max_rel_err < 1e-5  # 1e3 if the 1e-9 reference counted


@pytest.mark.parametrize(
    "owner,attr",
    [(torch.Tensor, "contiguous"), (torch, "cat"), (torch.nn.functional, "avg_pool1d"), (torch.nn.Module, "__call__")],
    ids=["Tensor method", "torch function", "functional", "Module.__call__"],
)
def test_rebinding_any_protected_callable_is_a_monkey_patch(owner, attr):
    original, own = getattr(owner, attr), attr in vars(owner)
    with Guards(cuda=False) as guards:
        assert guards.tampering() is None
        setattr(owner, attr, lambda *a, **k: original(*a, **k))
        try:
            found = guards.tampering()
        finally:
            setattr(owner, attr, original) if own else delattr(owner, attr)
    assert found.reason == "monkey_patch" and attr in found.detail


def test_a_method_added_to_tensor_is_a_monkey_patch_and_trusted_state_moves_on():
    with Guards(cuda=False) as guards:
        torch.Tensor.extra_method = lambda self: self
        try:
            assert guards.tampering().detail == "torch.Tensor.extra_method was added"
            guards.trust_current_state()
            assert guards.tampering() is None
        finally:
            del torch.Tensor.extra_method


def test_torchs_own_wrapper_of_a_function_is_no_patch():
    import torch._dynamo  # noqa: F401  (it wraps torch.manual_seed when first imported)

    with Guards(cuda=False) as guards:
        original = torch.manual_seed
        torch.manual_seed = torch._disable_dynamo(original)
        try:
            assert guards.tampering() is None
        finally:
            torch.manual_seed = original


class _Pointer:
    def __init__(self, tensor):
        self.tensor = tensor

    def data_ptr(self):
        return self.tensor.data_ptr()


class _Shell(torch.Tensor):
    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return torch.zeros(1)


def test_a_subclass_dispatch_no_mode_can_see_is_flagged():
    with Guards(cuda=False) as guards:
        with guards.watch() as record:
            torch.Tensor._make_subclass(_Shell, torch.zeros(1)).detach()
        found = guards.verdict(record)
    assert found.reason == "guard_disabled" and "__torch_dispatch__ of tensor subclass _Shell" in found.detail


def test_values_from_python_are_recorded_by_content():
    """A table of constants of any length is fine (an 81-tap offset table, say); what it holds is
    recorded, and two inputs of one shape must see the same tables."""
    with Guards(cuda=False) as guards:
        with guards.watch() as first:
            torch.tensor(list(range(81)))
        with guards.watch() as again:
            torch.tensor(list(range(81)))
        with guards.watch() as other:
            torch.tensor(list(range(1, 82)))
    assert first.lifted == 81 and not first.host_reads and len(first.lifted_digests) == 1
    assert lifted_change(None, first.lifted_digests) is None
    assert lifted_change(first.lifted_digests, again.lifted_digests) is None
    assert lifted_change(first.lifted_digests, other.lifted_digests).reason == "host_compute"


@pytest.mark.parametrize(
    "arg,odd",
    [(_Pointer(torch.zeros(4)), "_Pointer"), ([1, 2], "list"), ((torch.zeros(4), 3), None), (torch.float32, None)],
    ids=["object with data_ptr", "list", "tuple of tensor and int", "dtype"],
)
def test_a_kernel_takes_only_tensors_and_plain_values(arg, odd):
    import triton
    import triton.language as tl

    @triton.jit
    def noop(x_ptr, other, n, BLOCK: tl.constexpr):
        pass

    with Guards(cuda=False) as guards:
        with guards.watch() as record:
            try:
                noop[(1,)](torch.zeros(4), arg, 4, BLOCK=4)
            except Exception:
                pass  # the interpreter may refuse the argument too; the guard saw it first
    assert record.tripped == ([f"a kernel argument of type {odd}"] if odd else [])


def test_attributes_set_on_the_input_or_output_are_named():
    placed = PlacedInputs([{"shape": [2, 3], "dtype": "float32", "low": 0.0, "high": 1.0, "seed": 1}], "guarded", "cpu")
    out = torch.zeros(2)
    assert plain_outputs([out], placed) is None
    out.detach = lambda: out
    assert plain_outputs([torch.zeros(1), out], placed) == (
        "output_not_plain", "the output tensor carries attributes of its own: detach")
    assert plain_outputs([placed.tensors[0][0]], placed) == ("output_not_plain", "forward returned a view of its input")
    placed.tensors[0]._base.untyped_storage = None
    assert plain_outputs([torch.zeros(2)], placed) == (
        "monkey_patch", "forward set attributes on its input tensor: untyped_storage")


class _Tuner:
    """Stands in for an autotuner: what the guards' benchmarker reads of one."""

    def __init__(self, do_bench=None):
        self._do_bench = do_bench
        self.nargs = {}
        self.configs = []


def test_triton_benchmarking_is_not_counted_but_its_configs_are_checked():
    """An autotuner's own benchmarker (its events, flushes and statistics) runs unlogged; the config
    runs it makes are logged apart: not counted against forward's op limit, checked for what they are."""
    with Guards(cuda=False) as guards:
        guards.cpu_benchmark = lambda tuner, call: [call() for _ in range(300)] and [1.0, 1.0, 1.0]
        bench = guards._benchmarker(_Tuner())
        y = torch.zeros(4)
        with guards.watch() as record:
            bench(lambda: y.zero_(), quantiles=(0.5, 0.2, 0.8))
            torch.ones(1).sum()  # the forward's own work is still forward's
        assert len(record.tuning_ops) == 300 and record.tuning_peak == 1 and record.ops == ["ones", "sum"]
        with guards.watch() as record:
            bench(lambda: y.exp(), quantiles=None)
        assert guards.verdict(record).reason == "torch_op"
        with guards.watch() as record:
            bench(lambda: [y.zero_() for _ in range(300)], quantiles=None)
        assert guards.verdict(record).reason == "host_compute"


def test_a_benchmarker_of_the_answer_is_the_answers_code():
    with Guards(cuda=False) as guards:
        own = lambda call, quantiles=None: [call() for _ in range(300)] and [1.0]  # noqa: E731
        assert guards._benchmarker(_Tuner(own)) is own


def test_a_step_counter_update_is_bookkeeping_but_work_on_values_is_not():
    import torch

    from builder.judge.guards import ALLOWED_OPS, COUNTER, _counter

    step = torch.zeros((), dtype=torch.int64)
    assert COUNTER in ALLOWED_OPS and _counter([(step, 1), {}, step + 1])
    assert not _counter([(torch.zeros(()), 1.0), {}, torch.zeros(())])  # a float scalar may be a result
    assert not _counter([(torch.zeros(4, dtype=torch.int64), 1), {}, torch.zeros(4, dtype=torch.int64)])
    assert not _counter([(), {}, None])
