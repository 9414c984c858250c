"""Sandboxes forked from a process that has already imported what every one of them imports.

Most of a sandbox's start is the import of torch and triton: 2-4 s of CPU on a quiet machine,
7-9 s on the H100 host, in every session. The zygote is a process of the judge's own, one per
device kind: it runs `builder.judge.sandbox.prepare(device, context=False)` once and then only
forks. Each fork becomes one sandbox, as fresh as a new process: the zygote never loads code
under test, and it was started from the sandboxes' own environment, not forked from the judge,
so it holds none of the judge's secrets. The child takes its own session, its box as working
folder, the box's environment, its own user where the judge is root, and the channel the judge
sent with the request; it sets up its device (a GPU's context cannot cross a fork, so the
zygote never makes one) and then serves the channel as `python -m builder.judge.sandbox DEVICE`
would.

The zygote writes the bytecode of what it imports where Python can and the judge itself would
(it runs no code under test), so that a sandbox started as a new process later (the
profiler's) reads torch's compiled modules instead of compiling their sources again: a GPU host
whose environment was installed without bytecode spent seconds of every such start there. A
fork writes none, as a sandbox started as a new process writes none.

Before it says it is ready, a GPU's zygote forks one probe that sets up the GPU and runs an op
on it: where a fork of it could not use the GPU, the zygote says so and the judge starts its
sandboxes as new processes instead.

The judge speaks to the zygote over a socket pair (one JSON message a request, the sandbox's
stdin, stdout and stderr passed with a fork request) under a lock; the zygote reaps its
children and tells their exit codes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

#: Seconds the zygote gets to import and prepare.
READY_TIMEOUT_S = 300.0
#: Environment variable: "0" starts every sandbox as a new process instead.
ZYGOTE_ENV = "KP_SANDBOX_ZYGOTE"


class Zygote:
    """The judge's side: start the zygote (`__init__`, then `wait_ready`), ask it for forks and
    for their exit codes."""

    def __init__(self, env: dict[str, str], log: Path, device: str = "cpu") -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if not sys.dont_write_bytecode:  # as the judge would itself: not where its environment says not to
            env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        with open(log, "wb") as stderr:
            self.proc = subprocess.Popen([sys.executable, "-m", "builder.judge.zygote", str(theirs.fileno()), device],
                                         cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                         pass_fds=[theirs.fileno()], start_new_session=True)
        theirs.close()
        self.sock, self.lock, self.log = ours, threading.Lock(), log

    def wait_ready(self) -> None:
        """Return once the zygote is prepared; raise OSError, the zygote ended, when it could not be."""
        self.sock.settimeout(READY_TIMEOUT_S)
        try:
            ready = self._receive()
        except OSError as exc:
            self.close()
            raise OSError(f"the zygote did not start: {exc}; {self.log_tail()}") from None
        if not ready.get("ready"):
            self.close()
            raise OSError(f"the zygote did not start: {ready.get('detail') or self.log_tail()}")
        self.sock.settimeout(60.0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, box: Path, env: dict[str, str], uid: int | None, stdin: int, stdout: int, stderr: int) -> int:
        """A new sandbox: its pid."""
        request = {"op": "fork", "box": str(box), "env": env, "uid": uid}
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [stdin, stdout, stderr])
            return int(self._receive()["pid"])

    def exit_code(self, pid: int) -> int | None:
        """The exit code of a sandbox it forked (negative: the signal that ended it), None while it runs."""
        with self.lock:
            self.sock.send(json.dumps({"op": "status", "pid": pid}).encode())
            return self._receive()["code"]

    def _receive(self) -> dict[str, Any]:
        data = self.sock.recv(1 << 16)
        if not data:
            raise OSError("the zygote closed its socket")
        try:
            return json.loads(data)
        except ValueError:
            raise OSError(f"the zygote sent {data[:80]!r}") from None

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        """End the zygote: it exits when its socket closes; after 10 s it is killed with anything
        of its process group (a probe that hangs)."""
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


class Forked:
    """A sandbox forked by the zygote, with the part of subprocess.Popen's interface the judge uses."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = self.zygote.exit_code(self.pid)
            except OSError:  # the zygote is gone: the judge kills the child's session whatever its state
                self.returncode = -9
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"sandbox {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


# -- the zygote's own side ----------------------------------------------------------------------


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    set_dumpable(False)  # as the judge: a sandbox of the same user cannot read or trace it
    device = argv[1] if len(argv) > 1 else "cpu"
    before = dict(os.environ)
    from builder.judge.sandbox import prepare

    prepare(device, context=False)
    prepared = {k: v for k, v in os.environ.items() if before.get(k) != v}  # what prepare set: every child keeps it
    trouble = "threads started" if threading.active_count() != 1 else _probe(device)
    sock.send(json.dumps({"ready": not trouble, "detail": trouble}).encode())
    if trouble:
        return 1
    codes: dict[int, int] = {}
    while True:
        _reap(codes)
        readable, _, _ = select.select([sock], [], [], 0.05)
        if not readable:
            continue
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not data:
            return 0  # the judge closed its end
        request = json.loads(data)
        if request["op"] == "status":
            _reap(codes)
            sock.send(json.dumps({"code": codes.pop(request["pid"], None)}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            _become_sandbox(request, fds, prepared, device)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


def _probe(device: str) -> str:
    """"" when a fork of this process can set up `device` and run an op there, else what went wrong."""
    if device == "cpu":
        return ""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import torch

            from builder.judge.sandbox import set_up_device

            set_up_device(device)
            code = 0 if float(torch.ones(2, device=device).sum()) == 2.0 else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return "" if code == 0 else f"a fork could not use the {device} device (exit code {code})"


def _reap(codes: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        codes[pid] = os.waitstatus_to_exitcode(status)


def set_dumpable(flag: bool) -> None:
    """Whether other processes of this user may read or trace this one (Linux's PR_SET_DUMPABLE)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, int(flag), 0, 0, 0)  # PR_SET_DUMPABLE


def _become_sandbox(request: dict[str, Any], fds: list[int], prepared: dict[str, str], device: str) -> None:
    """In the forked child: become the sandbox the request describes, serve, and exit."""
    code = 1
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)
        os.chdir(request["box"])
        uid = request.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        set_dumpable(True)  # as a new process is
        sys.dont_write_bytecode = True  # as PYTHONDONTWRITEBYTECODE, in request["env"], makes a new one
        os.environ.clear()
        os.environ.update({**request["env"], **prepared})
        import tempfile

        tempfile.tempdir = None  # TMPDIR is the box's now
        from builder.judge.sandbox import serve_stdio, set_up_device

        set_up_device(device)  # after the environment: CUDA reads CUDA_VISIBLE_DEVICES as it starts
        code = serve_stdio()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
