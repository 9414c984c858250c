import ast
import functools
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from builder import PROJECT_ROOT

SEEDS = PROJECT_ROOT / "seeds"
SHARED_SEEDS = PROJECT_ROOT.parent / "shared" / "seeds"


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests on machines without CUDA. Under pytest-xdist, the tests marked `slow` are
    handed out first (every worker collects the same order), so that no worker is left with a
    long test at the end while the others have nothing to do."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: "slow" not in item.keywords)

    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# -- pytest-xdist (`make test` runs `pytest -n auto --dist loadgroup`) --------------------------

#: Fixture scopes whose set-up a worker does once for all the tests it runs of that scope.
SHARED_SCOPES = frozenset({"module", "package", "session"})


@functools.cache
def shares_module_setup(path: Path) -> bool:
    """Whether the test module at `path` defines a fixture of a scope wider than one test (a
    local Ray, a built dataset, a trained tokenizer): its tests then go to one worker together,
    so that the set-up runs once, as in a serial run."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) in ("pytest.fixture", "fixture"):
                    for keyword in decorator.keywords:
                        if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant) \
                                and keyword.value.value in SHARED_SCOPES:
                            return True
    return False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup`, with every test module that has a module-scoped fixture of its own as
    one group, besides the groups of `xdist_group` marks; every other test is a unit of its own.

    (pytest 9.2 gives nodes structured ids, and pytest-xdist 3.8 can no longer add an
    `xdist_group` mark's name to a test's id from the worker, pytest-xdist issue #1386; these
    groups are computed here, in the controller, from the module's source instead.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    root = config.rootpath

    class ModuleSetupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            if scope != nodeid:  # an xdist_group mark the worker could still report
                return scope
            module = nodeid.split("::", 1)[0]
            return module if module.endswith(".py") and shares_module_setup(root / module) else nodeid

    return ModuleSetupScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per CPU this process may run on (taskset and cgroup CPU sets count),
    not one per core of the machine, which is what pytest-xdist counts when psutil is installed."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _last_pid() -> int:
    """The process id the kernel handed out last (threads count), machine-wide."""
    return int(Path("/proc/loadavg").read_text().split()[-1])


def _left_behind(first: int, last: int) -> list[int]:
    """Processes of ids handed out after `first` up to `last` whose parent is this process and
    that run in another session than this one: what a sandbox of the judge, closing later in
    this process, would count as its own strays (builder.judge.runner._strays). The judge's own
    live children (its CPU sandboxes' zygote, which lives as long as this process) are none."""
    from builder.judge.runner import _live_children

    if last >= first:
        pids = range(first + 1, last + 1)
    else:  # the ids wrapped around
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        pids = [*range(first + 1, pid_max + 1), *range(1, last + 1)]
    if len(pids) > 10_000:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    me, session = str(os.getpid()), str(os.getsid(0))
    found = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Tgid", "").strip() == str(pid) and fields.get("PPid", "").strip() == me \
                and fields.get("NSsid", session).split()[0] != session and pid not in _live_children:
            found.append(pid)
    return found


@pytest.fixture(autouse=True)
def no_processes_left_behind():
    """Kill and reap what a test leaves running or unreaped in another session: a job's
    grandchild killed with its group (tests/judge/test_runner.py), the workers of a killed run
    (tests/executors/test_local.py). Once a sandbox has run, this process adopts such orphans
    (it is the children's subreaper), and the next sandbox to close would count them as its
    own strays and fail a correct answer with sandbox_violation. A serial run got away with it
    by its file order; under pytest-xdist a worker runs the tests of several files in any order.
    Processes that fixtures of a wider scope start before the test (a local Ray) are left alone."""
    if not sys.platform.startswith("linux"):
        yield
        return
    first = _last_pid()
    yield
    last = _last_pid()
    if last == first:
        return
    for pid in _left_behind(first, last):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(100):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    """A writable copy of the seeds/ folder."""
    dest = tmp_path / "seeds"
    shutil.copytree(SEEDS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest
