"""The one list of reasons a judged piece of code can be rejected for.

Every check returns one of these codes, so rejects can be counted by reason and never dropped.
"""

REASONS: dict[str, str] = {
    # output format
    "no_code_block": "the answer holds no fenced python code block",
    "truncated": "the answer ends inside an unclosed code block (cut off by a length limit)",
    "syntax_error": "the code does not parse as Python",
    "no_model_new": "the code defines no class ModelNew",
    "no_triton_kernel": "the code defines no @triton.jit kernel",
    "rule_order": "sections are not in the order imports, @triton.jit kernels, wrappers, class ModelNew",
    "forbidden_section": "the code holds testing code, `if __name__`, get_inputs or get_init_inputs",
    "import_shim": "a top-level try/except ImportError wraps imports (the rules ask for plain imports)",
    # static anti-cheat
    "torch_op": "a PyTorch operator does the work instead of a Triton kernel",
    "fallback": "a try/except can fall back to PyTorch",
    "inherits_reference": "ModelNew inherits the reference Model or a PyTorch pooling module",
    "system_access": "the code reaches for the process, network or file system",
    "timer_patch": "the code patches timers, events or synchronize",
    "side_stream": "the code launches work on a side stream",
    "hardcoded_shape": "the code hard-codes the benchmark's sizes",
    "forbidden_import": "the code imports a module outside torch, triton and plain-Python helpers",
    "monkey_patch": "the code reassigns attributes of torch, triton or other modules",
    "dynamic_code": "the code builds names or code at run time (shadowed built-ins, evaluated annotations)",
    "kernel_host_access": "a kernel reaches host objects Triton's compiler refuses (non-constant globals, "
                          "constexpr-wrapped functions, the interpreter's .handle)",
    "device_branch": "host code reads the device type other than to assert it (the CPU judge and a GPU would "
                     "run different paths)",
    "address_read": "host code reads tensor addresses or identities (data_ptr, storage_offset, id, hash)",
    # running it
    "import_error": "importing the code or building ModelNew raised",
    "runtime_error": "forward raised",
    "timeout": "the run exceeded its time limit",
    "crash": "the child process died (illegal memory access, abort, out of memory)",
    "no_kernel_launched": "forward launched no Triton kernel",
    "wrong_shape": "the output shape differs from the reference",
    "wrong_dtype": "the output dtype differs from the reference",
    "nan_inf": "the output holds NaN or Inf where the reference does not",
    "uninitialized_output": "some output elements were never written",
    "out_of_bounds": "the kernel read or wrote the guard bands around its input",
    "precision_loss": "the output misses the tolerance by a margin typical of lowered precision",
    "mismatch": "the output differs from the reference beyond tolerance",
    "input_mutated": "forward modified its input",
    "output_cached": "forward returned a result computed for an earlier input",
    "output_reused": "a later call overwrote the output an earlier call returned (one buffer handed out on every call)",
    "missing_parameter": "ModelNew has no tensor of the name (or last name component) and shape of a learned "
                         "parameter or buffer of the reference",
    "output_not_plain": "the output is not a plain torch.Tensor owning its memory (a subclass, or a view of the input)",
    "guard_disabled": "the code switched off or stepped around the judge's guards (dispatch modes, hooks, threads)",
    "host_compute": "forward computed on the host (device-to-host copies, reading tensor values in Python)",
    "foreign_kernel": "a GPU kernel ran that is neither the answer's own Triton kernel nor an allowed fill or copy",
    "sandbox_violation": "the candidate's process broke the judge protocol or left processes behind",
    "compile_error": "a kernel does not compile for the GPU (sm_90), or its launch is one a GPU would refuse",
    "cpu_unverifiable": "only a GPU can run the code (the CPU interpreter cannot run a construct its kernels "
                        "compile for sm_90, or the host code needs CUDA): not checkable on the CPU",
    # timing (GPU)
    "slower": "the code is slower than the code it should improve",
    "timing_drift": "the measured time drifts more than 10% from the recorded one",
    "timing_mismatch": "CUDA-event times disagree with wall-clock or profiler kernel time",
    "suspect_speedup": "the speedup over eager exceeds the problem's plausible limit",
    "wrong_while_timed": "an output checked during the timed runs differs from the reference",
}


def describe(reason: str) -> str:
    """The sentence for a reason code; raises KeyError for an unknown code."""
    return REASONS[reason]
