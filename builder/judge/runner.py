"""Child processes of the judge: trusted jobs (`run_job`) and sandboxes (`SandboxSession`).

`run_job` runs trusted code (the referee, measure's jobs) in a fresh child with a time limit: a
hang, a crash, an illegal memory access or running out of memory comes back as a JobResult with
a status and a reason, and the next job runs in a new process. Code under test runs only in a
sandbox session: its own process (its own user where the judge is root; a fork of the zygote,
builder.judge.zygote, unless that is off or could not start), spoken to over pipes, killed whole at the end together with
anything it started (see the README's judge section).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from builder import PROJECT_ROOT
from builder.judge import channel
from builder.judge.phases import Phases
from builder.judge.sandbox import LATE_CONTEXT
from builder.judge.zygote import ZYGOTE_ENV, Forked, Zygote, set_dumpable

#: Lines of child output kept on a JobResult.
LOG_TAIL_CHARS = 4000
#: Child processes this judge started and still waits on (a stray is any other one it adopted).
_live_children: set[int] = set()
#: Held while a child is started and registered, and while strays are looked for: a child
#: another thread is starting is never mistaken for a stray.
_children_lock = threading.Lock()


class JobFailure(Exception):
    """Raised inside a job to fail it with a reason code from builder.judge.reasons."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class JobResult:
    """What came back from one child run."""

    status: str  # "ok", "failed" (the job raised), "timeout" or "crash" (the process died)
    reason: str | None  # a reason code for anything but "ok"
    detail: str  # a human sentence about a failure; "" when ok
    payload: dict[str, Any] = field(default_factory=dict)  # the job's returned data when ok
    wall_s: float = 0.0  # seconds the child ran, start to exit
    log: str = ""  # tail of the child's stdout and stderr
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (builder.judge.phases)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_child(cls, data: dict[str, Any], wall_s: float, output: str | None) -> JobResult:
        """The result of a job that ran to its end: `data` as builder.judge.child.run returned it
        (through JSON), the seconds it ran and what it printed."""
        return cls(
            status=data["status"],
            reason=data.get("reason"),
            detail=data.get("detail", ""),
            payload=data.get("payload", {}),
            wall_s=wall_s,
            log=_tail(output),
            phases=data.get("phases", {}),
        )


#: Environment variable: the wall-clock time (time.time()) at which a child was started, so that
#: the child can count its own start-up as the "start" phase.
SPAWNED_AT_ENV = "KP_SPAWNED_AT"


def child_command(kind: str, job_file: Path, result_file: Path) -> list[str]:
    """The command that runs one job; ncu wraps this same command."""
    return [sys.executable, "-m", "builder.judge.child", kind, str(job_file), str(result_file)]


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.pop("TRITON_INTERPRET", None)  # the child decides from params["device"]
    env.update(extra or {})
    return env


def run_job(
    kind: str,
    params: dict[str, Any],
    timeout_s: float,
    *,
    wrap: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> JobResult:
    """Run job `kind` with `params` in a fresh process group; kill the group after `timeout_s`.

    `wrap` prefixes the child command (ncu uses it). The child's scratch directory, where the
    code under test is written and imported from, is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix=f"kp-{kind}-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps({**params, "workdir": tmp}))
        cmd = [*wrap, *child_command(kind, job_file, result_file)]
        start = time.monotonic()
        with _children_lock:
            proc = subprocess.Popen(
                cmd,
                cwd=PROJECT_ROOT,
                env={**_child_env(env), SPAWNED_AT_ENV: repr(time.time())},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            _live_children.add(proc.pid)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            wall = time.monotonic() - start
            _live_children.discard(proc.pid)
            return JobResult("timeout", "timeout", f"no result after {timeout_s:.0f} s", {}, wall, _tail(out))
        wall = time.monotonic() - start
        _live_children.discard(proc.pid)
        if not result_file.exists():
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
            return JobResult("crash", "crash", f"child died with {how} before writing a result", {}, wall, _tail(out))
        data = json.loads(result_file.read_text())
    return JobResult.from_child(data, wall, out)


def _tail(text: str | None) -> str:
    return (text or "")[-LOG_TAIL_CHARS:]


# -- the sandbox ---------------------------------------------------------------------------

#: Environment variables a sandbox inherits; everything else (tokens, paths of the judge) stays out.
SANDBOX_ENV_KEEP = ("PATH", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "LANG", "LC_ALL", "KP_GPU_MEMORY_GIB",
                    "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
#: First user id of the sandbox users; job slot k runs as SANDBOX_UID_BASE + k.
SANDBOX_UID_BASE = 61000
#: Set to 0 to keep the sandbox as the judge's own user even where the judge runs as root.
DROP_ENV = "KP_SANDBOX_DROP"

#: How many sandbox users there are; a session holds one, exclusively, through a lock file.
SANDBOX_SLOTS = 4096
_hardened = False


class SandboxDied(Exception):
    """The sandbox ended or broke the protocol before answering; `reason` is a reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _take_slot() -> tuple[int, int]:
    """A sandbox user slot no other session on this machine holds (in this process or another),
    and the descriptor whose lock holds it."""
    import fcntl

    for slot in range(SANDBOX_SLOTS):
        fd = os.open(os.path.join(tempfile.gettempdir(), f"kp-sandbox-slot-{slot}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return slot, fd
    raise SandboxDied("crash", f"all {SANDBOX_SLOTS} sandbox user slots are in use")


def _harden_parent() -> None:
    """Once per judge process: adopt orphaned descendants (so an escaped grandchild can be found
    and killed) and refuse other processes of this user a look into /proc/<pid>/fd."""
    global _hardened
    if _hardened or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    set_dumpable(False)
    _hardened = True


@functools.cache
def _drop_privileges() -> bool:
    """Whether sandboxes run as their own users: the judge is root, it is not switched off, and
    such a user can start Python and import the project (an interpreter under a private home
    folder, say, makes that impossible)."""
    if os.geteuid() != 0 or os.environ.get(DROP_ENV, "1") == "0":
        return False
    uid = SANDBOX_UID_BASE + 999
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_ROOT), "HOME": "/"}
    try:
        probe = subprocess.run([sys.executable, "-c", "import builder.judge.sandbox"], cwd="/", env=env,
                               user=uid, group=uid, extra_groups=[], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def isolation() -> str:
    """How sandboxes are kept apart from the judge on this machine, in words."""
    if _drop_privileges():
        return "own user per sandbox, own session, orphans adopted and killed, judge not dumpable"
    return "own session, orphans adopted and killed, judge not dumpable (no user switch: not root or no readable Python)"


def _processes() -> list[tuple[int, int, int, int]]:
    """(pid, parent pid, session id, real uid) of every process on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "Uid: -1")
        try:
            found.append((int(entry.name), int(fields[1]), int(fields[3]), int(uid_line.split()[1])))
        except (IndexError, ValueError):
            continue
    return found


def _strays(uid: int | None, session: int) -> list[int]:
    """Processes a sandbox left: any of its user, any of its session, and orphans of it that
    this judge adopted (they have left the judge's own session and are no job of the judge's)."""
    me, my_session = os.getpid(), os.getsid(0)
    return [pid for pid, ppid, sid, owner in _processes()
            if pid != me and ((uid is not None and owner == uid) or sid == session
                              or (ppid == me and sid != my_session and pid not in _live_children))]


def kill_orphans() -> int:
    """Kill the processes this judge process adopted that none of its live sessions or helpers
    own (what a job child left when it died: its sandboxes, whose parent it was); return how many."""
    return _kill_strays(None, -1)


def _kill_strays(uid: int | None, session: int) -> int:
    """Kill what a sandbox left behind, until nothing is left; return how many were found."""
    found: set[int] = set()
    for _ in range(50):
        with _children_lock:
            pids = _strays(uid, session)
        if not pids:
            break
        for pid in pids:
            found.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.05)
    return len(found)


#: The compiler cache folders of a sandbox's box that trusted sessions share (see SandboxSession).
CACHE_FOLDERS = ("triton", "inductor")


def _copy_caches(source: Path, target: Path, warm: Path) -> None:
    """Copy the compiler cache folders from `source` into `target`, one copier of the private
    folder `warm` at a time."""
    import fcntl
    import shutil

    warm.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    with open(warm / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in CACHE_FOLDERS:
            if (source / name).is_dir():
                shutil.copytree(source / name, target / name, dirs_exist_ok=True, symlinks=False)


def _chown_tree(folder: Path, uid: int) -> None:
    """Give `folder` and everything in it to `uid` (the box and the caches copied into it)."""
    os.chown(folder, uid, uid)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def sandbox_env(box: Path) -> dict[str, str]:
    """A sandbox's environment: what SANDBOX_ENV_KEEP keeps of the judge's, with its box as home,
    temporary folder and compiler caches."""
    env = {k: os.environ[k] for k in SANDBOX_ENV_KEEP if k in os.environ}
    env.update(HOME=str(box), TMPDIR=str(box), USER="kp-sandbox", LOGNAME="kp-sandbox", PYTHONDONTWRITEBYTECODE="1",
               TRITON_CACHE_DIR=f"{box}/triton", TRITON_HOME=str(box), TORCHINDUCTOR_CACHE_DIR=f"{box}/inductor",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    return env


class _Zygotes:
    """One zygote per device kind and judge process (builder.judge.zygote), started on first use
    and again if it died; none where ZYGOTE_ENV is "0" or it could not start, for instance where
    its forks cannot use the GPU (sandboxes are then new processes)."""

    def __init__(self) -> None:
        self.running: dict[str, Zygote] = {}
        self.folders: dict[str, Path] = {}
        self.failed: set[str] = set()
        self.lock = threading.Lock()

    def get(self, device: str) -> Zygote | None:
        if os.environ.get(ZYGOTE_ENV, "1") == "0":
            return None
        with self.lock:
            running = self.running.pop(device, None)
            if running is not None:
                if running.alive():
                    self.running[device] = running
                    return running
                self._end(running)
            if device in self.failed:
                return None
            if device not in self.folders:
                self.folders[device] = Path(tempfile.mkdtemp(prefix=f"kp-zygote-{device}-"))
            with _children_lock:  # the judge's own child from its start: no session takes it for a stray
                running = Zygote(sandbox_env(self.folders[device]), self.folders[device] / "zygote.log", device)
                _live_children.add(running.proc.pid)
            try:
                running.wait_ready()
            except OSError as exc:
                _live_children.discard(running.proc.pid)
                self.failed.add(device)
                print(f"kernel-prompts: {device} sandboxes start as new processes ({exc})", file=sys.stderr)
                return None
            self.running[device] = running
            return running

    @staticmethod
    def _end(zygote: Zygote) -> None:
        zygote.close()
        _live_children.discard(zygote.proc.pid)

    def stop(self) -> None:
        import shutil

        with self.lock:
            for zygote in self.running.values():
                self._end(zygote)
            self.running.clear()
            for folder in self.folders.values():
                shutil.rmtree(folder, ignore_errors=True)
            self.folders.clear()


class Wrap(Protocol):
    """A command the sandbox process runs under (ncu's, builder.judge.ncu.Profiler). It is hashable:
    sandboxes started ahead under it are kept apart from the others."""

    def prefix(self, log: Path) -> list[str]:
        """The command's words before the sandbox's own, writing what it has to say to `log`."""
        ...


#: Sandboxes started ahead are kept per device and wrap (None: a sandbox of its own).
SpareKind = tuple[str, "Wrap | None"]


class _Spares:
    """Sandboxes started ahead, per device and wrap, for a judge that opens many sessions (the
    reward): a session takes one that has already imported torch (and, unwrapped, set up its
    device; a wrapped one sets it up at its first command), instead of waiting for a new process,
    and another starts behind it. Each is fresh: it has run no code but the sandbox's own, exactly
    as a new one would be. While `held` (a timing run), none starts."""

    def __init__(self) -> None:
        self.wanted: dict[SpareKind, int] = {}
        self.ready: dict[SpareKind, list[SandboxSession]] = {}
        self.lock = threading.Lock()
        self.holds = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No sandbox starts ahead inside the block; the ones wanted start after it."""
        with self.lock:
            self.holds += 1
        try:
            yield
        finally:
            with self.lock:
                self.holds -= 1
            for kind in list(self.wanted):
                self.refill(kind)

    def keep(self, device: str, count: int = 1, wrap: Wrap | None = None) -> None:
        """From now on keep `count` sandboxes for `device` under `wrap` started ahead (0 stops)."""
        with self.lock:
            self.wanted[(device, wrap)] = count
        self.refill((device, wrap))

    def take(self, kind: SpareKind) -> SandboxSession | None:
        with self.lock:
            ready = self.ready.get(kind) or []
            while ready:
                spare = ready.pop(0)
                if spare.proc is not None and spare.proc.poll() is None:
                    return spare
                spare.close()
        return None

    def refill(self, kind: SpareKind) -> None:
        with self.lock:
            if self.holds:
                return
            ready = self.ready.setdefault(kind, [])
            while len(ready) < self.wanted.get(kind, 0):
                spare = SandboxSession(kind[0], Path("."), timeout_s=0.0, wrap=kind[1])
                spare._launch()
                ready.append(spare)

    def stop(self) -> None:
        with self.lock:
            spares = [s for ready in self.ready.values() for s in ready]
            self.ready.clear()
            self.wanted.clear()
        for spare in spares:
            spare.discard()


class SandboxSession:
    """One sandbox process: start it, exchange messages, and end it with nothing left behind.

    The judge's scratch folder (private, where references and logs go) holds a folder the
    sandbox may write (its code files, Triton's cache); nothing else of the judge is reachable.
    A session past its deadline is killed whole, and every later call raises SandboxDied.
    """

    def __init__(self, device: str, problem_dir: Path, *, timeout_s: float, wrap: Wrap | None = None,
                 scratch: Path | None = None, phases: Phases | None = None, warm: Path | None = None) -> None:
        """`wrap` is the command the sandbox runs under (ncu's), which writes to `wrap_log` in the
        box. `warm` is a folder of compiler caches (Triton's, Inductor's) that earlier sessions of
        trusted code left: they are copied into the box before the sandbox starts, and a session
        that loaded only trusted code copies its caches back when it ends. Code under test never
        writes there: its session gets a copy."""
        self.device, self.problem_dir, self.timeout_s, self.wrap = device, Path(problem_dir), timeout_s, wrap
        self._own_scratch = scratch is None
        self.scratch = Path(tempfile.mkdtemp(prefix="kp-judge-")) if scratch is None else Path(scratch)
        self.box = self.scratch / "box"
        self.wrap_log = self.box / f"wrap-{uuid.uuid4().hex}.log"  # the wrap's (ncu's) log: it runs as the sandbox's user
        self.proc: subprocess.Popen[bytes] | Forked | None = None
        self.uid: int | None = None
        self.slot: int | None = None
        self.timed_out = False
        self.strays = 0
        self.phases = phases if phases is not None else Phases()
        self.warm = Path(warm) if warm is not None else None
        self.exposed = False  # True once code not marked trusted was loaded

    def __enter__(self) -> SandboxSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        with self.phases.span("start"):
            spare = _spares.take((self.device, self.wrap)) if self._own_scratch else None
            if spare is None:
                self._launch()
            else:
                self._adopt(spare)
            if self.warm is not None:
                _copy_caches(self.warm, self.box, self.warm)
                if self.uid is not None:
                    _chown_tree(self.box, self.uid)
            self._deadline = time.monotonic() + self.timeout_s
            self._watchdog = threading.Timer(self.timeout_s, self._expire)
            self._watchdog.daemon = True
            self._watchdog.start()
            hello = self.request({"op": "hello", "device": self.device, "problem_dir": str(self.problem_dir),
                                  "seed": secrets.randbits(62)})  # the seed orders the CPU interpreter's programs
            if not hello.get("ok"):  # no code under test ran yet: the judge's own set-up failed
                raise SandboxDied("runtime_error", f"the sandbox could not set up: {hello.get('detail', '')[-500:]}")
        if spare is not None:
            _spares.refill((self.device, self.wrap))

    def _launch(self) -> None:
        """Start the sandbox process in a fresh box, as its own user where the judge is root."""
        _harden_parent()
        self.box.mkdir(parents=True, exist_ok=True)
        os.chmod(self.scratch, 0o711)
        kwargs: dict[str, Any] = {}
        if _drop_privileges():
            self.slot, self._slot_lock = _take_slot()
            self.uid = SANDBOX_UID_BASE + self.slot
            _chown_tree(self.box, self.uid)
            kwargs = {"user": self.uid, "group": self.uid, "extra_groups": []}
        os.chmod(self.box, 0o700)
        self.log_path = self.scratch / "sandbox.log"
        zygote = None if self.wrap is not None else _zygotes.get(self.device)
        with (open(self.log_path, "wb") as log, channel.Channel.for_child() as (link, child_in, child_out),
              _children_lock):
            try:  # a fork of the zygote (builder.judge.zygote)
                self.proc = Forked(zygote, zygote.fork(self.box, self._env(), self.uid, child_in, child_out,
                                                       log.fileno())) if zygote is not None else None
            except OSError:  # the zygote died under the request: a new process instead
                self.proc = None
            if self.proc is None:
                cmd = [sys.executable, "-m", "builder.judge.sandbox", self.device]
                if self.wrap is not None:
                    cmd = [*self.wrap.prefix(self.wrap_log), *cmd, LATE_CONTEXT]
                self.proc = subprocess.Popen(cmd, cwd=self.box, env=self._env(), stdin=child_in, stdout=child_out,
                                             stderr=log, start_new_session=True, **kwargs)
            _live_children.add(self.proc.pid)
        self.link = link

    def _adopt(self, spare: SandboxSession) -> None:
        """Take over a sandbox started ahead (fresh: it has imported its modules, nothing else)."""
        import shutil

        shutil.rmtree(self.scratch, ignore_errors=True)  # the spare's scratch replaces this session's own
        for name in ("scratch", "box", "wrap_log", "proc", "link", "uid", "slot", "log_path"):
            setattr(self, name, getattr(spare, name))
        if spare.slot is not None:
            self._slot_lock = spare._slot_lock
        self._own_scratch = True

    def _env(self) -> dict[str, str]:
        return sandbox_env(self.box)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The session's clock stopped for the block: its deadline moves by the time spent inside
        (the judge waiting on its own work: the referee, another code's trials)."""
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is None or self.timed_out:
            yield
            return
        watchdog.cancel()
        start = time.monotonic()
        try:
            yield
        finally:
            self._deadline += time.monotonic() - start
            if not self.timed_out:  # a watchdog that fired as it was cancelled has ended the session
                self._watchdog = threading.Timer(max(0.0, self._deadline - time.monotonic()), self._expire)
                self._watchdog.daemon = True
                self._watchdog.start()

    def _expire(self) -> None:
        self.timed_out = True
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def write_code(self, label: str, code: str) -> Path:
        """Put code where the sandbox can import it from."""
        path = self.box / f"{label}.py"
        path.write_text(code)
        if self.uid is not None:
            os.chown(path, self.uid, self.uid)
        return path

    def send(self, header: dict[str, Any], payload: Any = None) -> None:
        assert self.proc is not None
        try:
            self.link.send(header, payload)
        except (BrokenPipeError, OSError) as exc:
            raise self._died(f"could not write to the sandbox: {exc}") from None

    def receive(self, max_payload: int = 0) -> tuple[dict[str, Any], Any]:
        assert self.proc is not None
        try:
            return self.link.receive(max_payload)
        except channel.ProtocolError as exc:
            raise self._died(str(exc)) from None

    def request(self, header: dict[str, Any], payload: Any = None, max_payload: int = 0) -> dict[str, Any]:
        """Send one command and return its (single, payload-free) reply."""
        if header.get("op") == "load" and not header.get("trusted"):
            self.exposed = True
        self.send(header, payload)
        reply, _ = self.receive(max_payload)
        return reply

    def _died(self, what: str) -> SandboxDied:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._expire()
            code = self.proc.wait()
        if self.timed_out:
            return SandboxDied("timeout", f"no answer within {self.timeout_s:.0f} s")
        if code < 0:
            return SandboxDied("crash", f"the sandbox died with signal {-code}: {self.log_tail()[-800:]}")
        if code != 0:
            return SandboxDied("crash", f"the sandbox exited with code {code}: {self.log_tail()[-800:]}")
        return SandboxDied("sandbox_violation", f"the sandbox left the protocol ({what}) and exited quietly")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def discard(self) -> None:
        """End a sandbox that ran nothing (a spare no session took) at once, as its watchdog would:
        a goodbye would wait until it has finished starting. Then clean up as `close` does."""
        self._expire()
        self.close()

    def close(self) -> None:
        """Say bye, then kill the session and anything it left; count what was left."""
        if self.proc is None:
            return
        if self.proc.poll() is None and not self.timed_out:
            try:
                self.request({"op": "bye"})
            except SandboxDied:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if getattr(self, "_watchdog", None) is not None:
            self._watchdog.cancel()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        _live_children.discard(self.proc.pid)
        self.strays = _kill_strays(self.uid, self.proc.pid)
        self.link.close()
        if self.slot is not None:
            os.close(self._slot_lock)  # releases the slot's lock
            self.slot = None
        if self.warm is not None and not self.exposed and not self.strays and not self.timed_out:
            _copy_caches(self.box, self.warm, self.warm)
        if self._own_scratch:
            import shutil

            shutil.rmtree(self.scratch, ignore_errors=True)
        self.proc = None


_zygotes = _Zygotes()
atexit.register(_zygotes.stop)  # after the spares' stop (atexit runs the last registered first)
_spares = _Spares()
atexit.register(_spares.stop)
#: Keep sandboxes started ahead for a device (see _Spares): `keep_spares("cuda", 2)`, or under a
#: wrap: `keep_spares("cuda", 1, wrap=ncu.profiler(...))`.
keep_spares = _spares.keep
#: `with spares_held():` no sandbox starts ahead inside the block (a timing run's GPU is its own).
spares_held = _spares.held


def stop_helpers() -> None:
    """End the processes this judge process keeps between sessions: the sandboxes started ahead,
    then the sandboxes' zygotes. The next session starts them again when it needs them."""
    _spares.stop()
    _zygotes.stop()
