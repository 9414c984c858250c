import dataclasses
import sys
import time

import pytest
import torch

from builder.judge.runner import run_job

JOBS = "tests.fixtures.jobs"


def test_ok_result_carries_payload_and_cpu_setup():
    res = run_job(f"{JOBS}:echo", {"value": 7, "device": "cpu"}, timeout_s=60)
    assert res.ok, res
    assert res.payload == {"echo": 7, "interpret": "1"}


def test_cuda_device_does_not_turn_on_interpreter():
    res = run_job(f"{JOBS}:echo", {"value": 1, "device": "cuda"}, timeout_s=60)
    assert res.payload["interpret"] is None


def test_timeout_kills_the_process_group():
    start = time.monotonic()
    res = run_job(f"{JOBS}:spawn_sleeper", {"device": "cuda"}, timeout_s=3)
    assert res.status == "timeout" and res.reason == "timeout"
    assert time.monotonic() - start < 20


def test_abort_is_a_crash_not_an_exception():
    res = run_job(f"{JOBS}:abort", {"device": "cuda"}, timeout_s=60)
    assert res.status == "crash" and res.reason == "crash"
    assert "signal" in res.detail


@pytest.mark.parametrize(
    ("job", "params", "reason"),
    [
        ("raise_error", {"message": "bad things"}, "runtime_error"),
        ("fail_with", {"reason": "mismatch", "message": "off by one"}, "mismatch"),
        ("out_of_memory", {}, "crash"),
    ],
)
def test_failures_come_back_with_reasons(job, params, reason):
    res = run_job(f"{JOBS}:{job}", {**params, "device": "cuda"}, timeout_s=60)
    assert res.status == "failed"
    assert res.reason == reason


def test_unknown_kind_is_a_failed_result():
    res = run_job("no_such_kind", {"device": "cuda"}, timeout_s=60)
    assert res.status == "failed" and "unknown job kind" in res.detail


def test_next_job_runs_after_a_crash():
    assert run_job(f"{JOBS}:abort", {"device": "cuda"}, timeout_s=60).status == "crash"
    assert run_job(f"{JOBS}:echo", {"value": 2, "device": "cuda"}, timeout_s=60).ok


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("CUDA error: an illegal memory access was encountered", "crash"),
        ("CUDA error: unspecified launch failure", "crash"),
        ("CUDA out of memory. Tried to allocate 2.00 GiB", "crash"),
        ("shape mismatch in forward", "runtime_error"),
    ],
)
def test_device_failures_are_crashes(message, reason):
    from builder.judge.child import _classify

    assert _classify(RuntimeError(message)) == reason


def test_sandbox_environment_is_an_allow_list(monkeypatch, tmp_path):
    from builder.judge.runner import SandboxSession

    monkeypatch.setenv("HF_TOKEN", "secret")
    monkeypatch.setenv("KP_GPU_MEMORY_GIB", "22")
    session = SandboxSession("cpu", tmp_path, timeout_s=10, scratch=tmp_path / "s")
    env = session._env()
    assert "HF_TOKEN" not in env and env["KP_GPU_MEMORY_GIB"] == "22"
    assert env["HOME"] == env["TMPDIR"] == str(session.box)


def test_a_sandbox_user_slot_is_held_by_one_session_at_a_time():
    import os

    from builder.judge.runner import _take_slot

    first, held = _take_slot()
    second, also = _take_slot()
    assert first != second
    os.close(held)
    again, fd = _take_slot()
    assert again == first
    os.close(fd)
    os.close(also)


def test_a_job_child_reports_its_start_up_as_a_phase():
    res = run_job(f"{JOBS}:echo", {"value": 3, "device": "cpu"}, timeout_s=60)
    assert res.ok and res.phases["start"] > 0


def test_a_session_takes_a_sandbox_started_ahead_and_another_starts_behind_it(tmp_path):
    from builder.judge.runner import SandboxSession, _spares, keep_spares
    from builder.seeds import get_problem

    problem = get_problem("avgpool1d")
    _spares.stop()  # none left by an earlier test of this process
    keep_spares("cpu", 1)
    try:
        waiting = _spares.ready[("cpu", None)][0]
        time.sleep(1.0)  # it imports while nobody waits for it
        session = SandboxSession("cpu", problem.dir, timeout_s=120)
        session.start()
        try:
            assert session.proc is waiting.proc
            assert session.request({"op": "bye"}) == {"ok": True}
        finally:
            session.close()
        assert len(_spares.ready[("cpu", None)]) == 1 and _spares.ready[("cpu", None)][0].proc is not waiting.proc
    finally:
        keep_spares("cpu", 0)
        _spares.stop()


@dataclasses.dataclass(frozen=True)
class _Marking:
    """A wrap that writes its name to the session's wrap log, then runs the sandbox."""

    name: str

    def prefix(self, log):
        return ["sh", "-c", 'echo "$0" > "$1"; shift; exec "$@"', self.name, str(log)]


def test_a_wrapped_session_takes_a_sandbox_started_ahead_under_the_same_wrap_only():
    """ncu's sandboxes start ahead too (their imports take seconds); a session under another wrap,
    or none, never takes one."""
    from builder.judge.runner import SandboxSession, _spares, keep_spares
    from builder.judge.sandbox import LATE_CONTEXT
    from builder.seeds import get_problem

    problem = get_problem("avgpool1d")
    one, other = _Marking("one"), _Marking("other")
    keep_spares("cpu", 1, wrap=one)
    try:
        waiting = _spares.ready[("cpu", one)][0]
        for wrap in (None, other):
            session = SandboxSession("cpu", problem.dir, timeout_s=120, wrap=wrap)
            session.start()
            try:
                assert session.proc is not waiting.proc
            finally:
                session.close()
        session = SandboxSession("cpu", problem.dir, timeout_s=120, wrap=_Marking("one"))
        session.start()
        try:
            assert session.proc is waiting.proc
            assert session.wrap_log.read_text().strip() == "one"  # the log its wrap wrote, in its box
            assert session.proc.args[-1] == LATE_CONTEXT  # its GPU context comes with its first command
            assert session.request({"op": "bye"}) == {"ok": True}
        finally:
            session.close()
        assert _spares.ready[("cpu", one)][0].proc is not waiting.proc  # another started behind it
    finally:
        keep_spares("cpu", 0, wrap=one)
        _spares.stop()


def test_no_sandbox_starts_ahead_while_spares_are_held_and_the_wanted_ones_start_after():
    """A timing run holds them: its GPU is its own."""
    from builder.judge.runner import SandboxSession, _spares, keep_spares, spares_held
    from builder.seeds import get_problem

    _spares.stop()  # none left by an earlier test of this process
    keep_spares("cpu", 1)
    try:
        with spares_held():
            session = SandboxSession("cpu", get_problem("avgpool1d").dir, timeout_s=120)
            session.start()  # takes the spare
            session.close()
            keep_spares("cpu", 2)
            assert _spares.ready[("cpu", None)] == []
        assert len(_spares.ready[("cpu", None)]) == 2
    finally:
        keep_spares("cpu", 0)
        _spares.stop()


def test_trusted_sessions_share_their_compiler_caches_and_code_under_test_only_reads_them(tmp_path):
    from builder.judge.runner import SandboxSession
    from builder.seeds import get_problem

    problem = get_problem("avgpool1d")
    warm = tmp_path / "warm"
    (warm / "triton").mkdir(parents=True)
    (warm / "triton" / "kernel.bin").write_text("compiled")
    trusted = SandboxSession("cpu", problem.dir, timeout_s=120, warm=warm)
    trusted.start()
    try:
        assert (trusted.box / "triton" / "kernel.bin").read_text() == "compiled"
        (trusted.box / "triton" / "more.bin").write_text("from a trusted session")
        trusted.request({"op": "load", "label": "seed", "trusted": True,
                         "path": str(trusted.write_code("seed", problem.kernel_path.read_text()))})
    finally:
        trusted.close()
    assert (warm / "triton" / "more.bin").exists()
    exposed = SandboxSession("cpu", problem.dir, timeout_s=120, warm=warm)
    exposed.start()
    try:
        exposed.request({"op": "load", "label": "candidate",
                         "path": str(exposed.write_code("candidate", problem.kernel_path.read_text()))})
        (exposed.box / "triton" / "planted.bin").write_text("from code under test")
    finally:
        exposed.close()
    assert not (warm / "triton" / "planted.bin").exists()


def test_a_cpu_sandbox_forked_from_the_zygote_is_a_process_of_its_own(tmp_path):
    import os

    from builder.judge.runner import SandboxSession, _drop_privileges, _processes, _zygotes
    from builder.seeds import get_problem

    session = SandboxSession("cpu", get_problem("avgpool1d").dir, timeout_s=120)
    session.start()
    try:
        pid = session.proc.pid
        zygote = _zygotes.get("cpu")
        parent, session_id, uid = next((ppid, sid, uid) for p, ppid, sid, uid in _processes() if p == pid)
        assert zygote is not None and parent == zygote.proc.pid
        assert session_id == pid != os.getsid(zygote.proc.pid)
        assert os.readlink(f"/proc/{pid}/cwd") == str(session.box)
        code = ("import gc, os, sys\nopen('seen.txt', 'w').write(' '.join([os.environ['HOME'], os.environ['TRITON_INTERPRET'],"
                " os.environ['PYTHONDONTWRITEBYTECODE'], str(sys.dont_write_bytecode),"
                " str(gc.get_freeze_count() > 10 * len(gc.get_objects()))]))\n")
        session.request({"op": "load", "label": "probe", "path": str(session.write_code("probe", code))})
        # a fork writes no bytecode, and its collector leaves alone what the imports made
        assert (session.box / "seen.txt").read_text() == f"{session.box} 1 1 True True"
        zygote_env = open(f"/proc/{zygote.proc.pid}/environ", "rb").read().split(b"\0")
        # the zygote writes its imports' bytecode as the judge would
        assert any(v.startswith(b"PYTHONDONTWRITEBYTECODE=") for v in zygote_env) == sys.dont_write_bytecode
        def sockets(process):
            links = [os.readlink(f"/proc/{process}/fd/{fd}") for fd in os.listdir(f"/proc/{process}/fd")]
            return {link for link in links if link.startswith("socket:")}

        # the zygote's socket stays behind: the sandbox's one socket is its channel's end
        assert len(sockets(pid)) == 1 and not sockets(pid) & sockets(zygote.proc.pid)
        assert uid == (session.uid if _drop_privileges() else os.getuid())
        assert session.request({"op": "bye"}) == {"ok": True}
    finally:
        session.close()
    assert session.strays == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the probe of a GPU's zygote succeeds here")
def test_a_zygote_whose_forks_cannot_use_the_gpu_is_not_used(tmp_path, capsys):
    from builder.judge.runner import _Zygotes, sandbox_env
    from builder.judge.zygote import Zygote

    zygote = Zygote(sandbox_env(tmp_path), tmp_path / "zygote.log", "cuda")
    with pytest.raises(OSError, match="a fork could not use the cuda device"):
        zygote.wait_ready()
    assert zygote.proc.poll() is not None
    zygotes = _Zygotes()
    try:
        assert zygotes.get("cuda") is None
        assert "cuda sandboxes start as new processes" in capsys.readouterr().err
        assert zygotes.get("cuda") is None and zygotes.get("cpu") is not None  # tried once; the CPU's is apart
    finally:
        zygotes.stop()


@pytest.mark.gpu
def test_a_gpu_sandbox_forked_from_the_zygote_runs_a_kernel():
    import time

    from builder.judge.runner import SandboxSession, _processes, _spares, _zygotes
    from builder.judge.zygote import Forked
    from builder.seeds import get_problem

    _spares.stop()  # a sandbox started ahead would be taken instead of a fork
    _zygotes.get("cuda")
    problem = get_problem("avgpool1d")
    clock = time.monotonic()
    session = SandboxSession("cuda", problem.dir, timeout_s=300)
    session.start()
    started = time.monotonic() - clock
    try:
        assert isinstance(session.proc, Forked)
        parent = next(ppid for pid, ppid, _, _ in _processes() if pid == session.proc.pid)
        assert parent == _zygotes.get("cuda").proc.pid
        code = ("import torch\nx = torch.arange(4.0, device='cuda')\n"
                "open('seen.txt', 'w').write(str(float((x * 2).sum())))\n")
        assert session.request({"op": "load", "label": "probe", "path": str(session.write_code("probe", code))})["ok"]
        assert (session.box / "seen.txt").read_text() == "12.0"
        print(f"a forked GPU sandbox started in {started:.2f} s")
    finally:
        session.close()
    assert session.strays == 0
    from builder.judge.correctness import verify

    result = verify(problem, problem.kernel_path.read_text(), device="cuda", timeout_s=600,
                    cases=[problem.cases[0].name], trials=1)  # a Triton kernel launched in a fork, checked
    assert result.ok, (result.reason, result.detail)


def test_without_the_zygote_a_sandbox_is_a_new_process(monkeypatch):
    import subprocess

    from builder.judge.runner import SandboxSession, _spares
    from builder.judge.zygote import ZYGOTE_ENV
    from builder.seeds import get_problem

    monkeypatch.setenv(ZYGOTE_ENV, "0")
    _spares.stop()  # a sandbox an earlier reward started ahead would be taken instead
    session = SandboxSession("cpu", get_problem("avgpool1d").dir, timeout_s=120)
    session.start()
    try:
        assert isinstance(session.proc, subprocess.Popen)
        assert session.request({"op": "bye"}) == {"ok": True}
    finally:
        session.close()


def test_a_sessions_clock_stops_while_the_judge_waits_on_its_own_work():
    import time

    from builder.judge.runner import SandboxSession
    from builder.seeds import get_problem

    session = SandboxSession("cpu", get_problem("avgpool1d").dir, timeout_s=3)
    session.start()
    try:
        with session.paused():
            time.sleep(4)
        assert session.request({"op": "bye"}) == {"ok": True}
        assert not session.timed_out
        time.sleep(4)
        assert session.timed_out  # the clock runs again
    finally:
        session.close()


@pytest.mark.parametrize("zygote", ["1", "0"])
def test_a_sandboxs_pipes_and_the_referees_carry_a_mebibyte_at_a_time(monkeypatch, zygote):
    """Tensors cross these pipes: a 1 MiB buffer moved them 1.7 times as fast as Linux's 64 KiB."""
    import fcntl
    import socket

    from builder.judge import channel, referee
    from builder.judge.runner import SandboxSession, _spares
    from builder.judge.zygote import ZYGOTE_ENV
    from builder.seeds import get_problem

    def size(stream):
        return fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_GETPIPE_SZ", 1032))

    def buffers(link):  # the pipe from the child, the socket to it (Linux doubles what is asked)
        return size(link.reader), link.share_in.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) // 2

    monkeypatch.setenv(ZYGOTE_ENV, zygote)
    _spares.stop()
    session = SandboxSession("cpu", get_problem("avgpool1d").dir, timeout_s=120)
    session.start()
    try:
        assert buffers(session.link) == (channel.PIPE_BYTES, channel.PIPE_BYTES)
    finally:
        session.close()
    try:
        assert buffers(referee._service._start()) == (channel.PIPE_BYTES, channel.PIPE_BYTES)
    finally:
        referee.stop_referee()


def test_a_zygote_is_the_judges_own_child_while_it_starts(monkeypatch):
    """A GPU's zygote takes seconds to import and probe: a session that closes meanwhile must not
    take it for a process the sandbox left behind."""
    from builder.judge import runner
    from builder.judge.zygote import Zygote

    seen = []
    real = Zygote.wait_ready

    def wait_ready(self):
        seen.append(self.proc.pid in runner._live_children)
        return real(self)

    monkeypatch.setattr(Zygote, "wait_ready", wait_ready)
    zygotes = runner._Zygotes()
    try:
        zygote = zygotes.get("cpu")
        assert zygote is not None and zygote.proc.pid in runner._live_children
    finally:
        zygotes.stop()
    assert seen == [True] and zygote.proc.pid not in runner._live_children
