"""Run jobs on this machine's GPUs: one worker process per GPU, each seeing only its own GPU.

Free workers take the next job from a queue. A worker calls the runner with
`CUDA_VISIBLE_DEVICES=<its GPU>`, so every child it starts has that GPU to itself. With the
default runner a worker hosts the judge's typed jobs in its own process instead of starting a
child per job (builder.executors.host; `host_jobs`, or KP_HOST_JOBS=0 to turn it off). A worker
that dies mid-job is replaced and the job retried (once by default, in a child process), then
recorded as `worker_lost`; a runner that overruns its job's time limit by the grace period is
killed and recorded as `worker_timeout`. With one GPU and one worker per GPU this is a serial
loop, as measure ran before; jobs that time nothing (verification) may run several workers per
GPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from builder.executors.base import (
    Deliver,
    Executor,
    ExecutorError,
    Job,
    JobRunner,
    Outcome,
    default_runner,
    failure,
    run_safely,
)
from builder.executors.cache import JobCache
from builder.executors.host import HostSettings, JobHost, hosting_enabled


def visible_devices() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES's entries, else torch's device count."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and not d.strip().startswith("-")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def pick_devices(gpus: int | None, visible: Sequence[str]) -> list[str]:
    """The device of each worker: all visible GPUs, or the first `gpus` of them.

    With no GPU visible (a CPU machine running interpreter jobs) the `gpus` workers get the
    labels 0..gpus-1, so that each still has a device of its own.
    """
    if gpus is None:
        if not visible:
            raise ExecutorError("no GPU is visible: pass --gpus N to run N workers anyway")
        return list(visible)
    if gpus < 1:
        raise ExecutorError(f"--gpus must be at least 1, got {gpus}")
    if not visible:
        return [str(i) for i in range(gpus)]
    if gpus > len(visible):
        raise ExecutorError(f"--gpus {gpus} asks for more GPUs than the {len(visible)} visible ({','.join(visible)})")
    return list(visible[:gpus])


def _worker_main(runner: JobRunner, device: str, conn: Any, host: HostSettings | None) -> None:
    """A worker process: run the jobs sent over `conn` on `device` until told to stop (None).

    Each message is (job dict, attempt); each answer is (result dict, whether the worker stops
    after it). With `host`, the worker hosts what jobs it can (builder.executors.host) and stops
    after a job that left its GPU failing; whenever it stops, it ends what hosting kept running.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    signal.signal(signal.SIGTERM, _exit_on_term)
    env = {"CUDA_VISIBLE_DEVICES": device}
    hosting = JobHost(host) if host is not None else None
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the driver went away
                return
            if message is None:
                return
            job, attempt = message
            if hosting is None:
                conn.send((run_safely(runner, job, env), False))
                continue
            result = hosting.serve(job, env, runner, attempt)
            if not hosting.usable:
                hosting.close()
                conn.send((result, True))
                return
            conn.send((result, False))
            hosting.rest()
    finally:
        if hosting is not None:
            hosting.close()


def _exit_on_term(signum: int, frame: Any) -> None:
    """SIGTERM unwinds the worker's stack, so a runner's cleanup (finally blocks) still runs."""
    raise SystemExit(128 + signum)


@dataclass(frozen=True)
class _Running:
    index: int  # position of the job in the caller's list
    job: Job  # the job
    attempt: int  # 1 for the first start, 2 for the retry
    started: float  # time.monotonic() when it was sent


class _Slot:
    """One GPU and the worker process that currently owns it, with a pipe of its own.

    A pipe per worker (not one shared queue) means a worker killed mid-write cannot leave a lock
    held that other workers wait on.
    """

    def __init__(self, ctx: Any, runner: JobRunner, device: str, kind: str | None,
                 host: HostSettings | None = None) -> None:
        self.ctx, self.runner, self.device, self.kind, self.host = ctx, runner, device, kind, host
        self.running: _Running | None = None
        self.start()

    def start(self) -> None:
        self.conn, child_end = self.ctx.Pipe()
        self.process = self.ctx.Process(target=_worker_main, args=(self.runner, self.device, child_end, self.host),
                                        daemon=True)
        self.process.start()
        child_end.close()

    def restart(self) -> None:
        self.kill()
        self.running = None
        self.start()

    def retire(self, wait_s: float = 10.0) -> None:
        """Replace a worker that said it stops after its last result: let it exit, then start anew."""
        self.process.join(wait_s)
        self.restart()

    def kill(self, term_wait_s: float = 5.0) -> None:
        """Stop the worker: SIGTERM first, so the runner can end its child, then SIGKILL."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(term_wait_s)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()

    def accepts(self, job: Job) -> bool:
        return job.gpu is None or self.kind is None or job.gpu == self.kind

    def send(self, running: _Running) -> None:
        self.running = running
        try:
            self.conn.send((running.job.to_dict(), running.attempt))
        except OSError:  # the worker is gone; the next check sees it dead and retries the job
            pass

    def receive(self) -> tuple[dict[str, Any], bool] | None:
        """The running job's result, and whether the worker stops after it, if it has arrived; None
        while it runs or once the worker died."""
        try:
            return self.conn.recv() if self.conn.poll() else None
        except (EOFError, OSError):
            return None

    def stop(self, wait_s: float) -> None:
        try:
            if self.process.is_alive():
                self.conn.send(None)
                self.process.join(wait_s)
        except OSError:
            pass
        self.kill()

    @property
    def name(self) -> str:
        return f"local:gpu{self.device}"


class LocalExecutor(Executor):
    """Jobs on this machine, one worker process per GPU."""

    def __init__(
        self,
        gpus: int | None = None,
        *,
        runner: JobRunner = default_runner,
        cache: JobCache | None = None,
        devices: Sequence[str] | None = None,
        gpu_kinds: Sequence[str] | None = None,
        retries: int = 1,
        grace_s: float = 60.0,
        poll_s: float = 0.5,
        per_gpu: int = 1,
        host_jobs: bool | None = None,
    ) -> None:
        """`gpus` GPUs (default: every visible one), or one per entry of `devices`, with `per_gpu`
        workers each (more than one only for jobs that time nothing).

        `gpu_kinds` names each GPU's kind (a registry key); a job whose `gpu` is set then goes
        only to a worker of that kind. Unset, every worker takes every job.

        `host_jobs`: workers run the judge's typed jobs in their own process instead of a child
        per job (builder.executors.host); None (the default) means on unless KP_HOST_JOBS=0. Only
        the default runner is hosted: another runner runs every job as it is given.
        """
        super().__init__(runner, cache)
        devices = list(devices) if devices is not None else pick_devices(gpus, visible_devices())
        if gpu_kinds is not None and len(gpu_kinds) != len(devices):
            raise ExecutorError(f"gpu_kinds names {len(gpu_kinds)} kinds for {len(devices)} workers")
        kinds = list(gpu_kinds) if gpu_kinds is not None else [None] * len(devices)
        self.devices = [d for d in devices for _ in range(per_gpu)]
        self.gpu_kinds = [k for k in kinds for _ in range(per_gpu)]
        self.retries, self.grace_s, self.poll_s = retries, grace_s, poll_s
        self.host_jobs = (hosting_enabled() if host_jobs is None else host_jobs) and runner is default_runner

    def _host_settings(self, device: str) -> HostSettings | None:
        """How the workers of `device` host jobs: a worker that shares its GPU keeps no sandbox
        started ahead, whose start could overlap another worker's timing run there."""
        if not self.host_jobs:
            return None
        return HostSettings(spares=1 if Counter(self.devices)[device] == 1 else 0)

    def _execute(self, todo: list[tuple[int, Job]], deliver: Deliver) -> None:
        ctx = mp.get_context("spawn")
        slots = [_Slot(ctx, self.runner, d, k, self._host_settings(d)) for d, k in zip(self.devices, self.gpu_kinds)]
        waiting: deque[tuple[int, Job, int]] = deque()

        def enqueue(entries: list[tuple[int, Job]], front: bool) -> None:
            accepted = []
            for index, job in entries:
                if any(slot.accepts(job) for slot in slots):
                    accepted.append((index, job, 1))
                else:
                    kinds = ", ".join(sorted({k for k in self.gpu_kinds if k})) or "none"
                    result = failure("no_gpu_kind", f"job wants GPU {job.gpu!r}; the workers have {kinds}")
                    enqueue(deliver(index, Outcome(job, result, "local", 0)), front=True)
            if front:
                waiting.extendleft(reversed(accepted))
            else:
                waiting.extend(accepted)

        def hand_back(index: int, outcome: Outcome) -> None:
            enqueue(deliver(index, outcome), front=True)

        enqueue(todo, front=False)
        try:
            while waiting or any(slot.running for slot in slots):
                self._assign(slots, waiting)
                busy = [slot for slot in slots if slot.running]
                wait([c for s in busy for c in (s.conn, s.process.sentinel)], timeout=self.poll_s)
                for slot in busy:
                    self._collect(slot, waiting, hand_back)
        finally:
            for slot in slots:
                slot.stop(wait_s=5.0)

    @staticmethod
    def _assign(slots: list[_Slot], waiting: deque[tuple[int, Job, int]]) -> None:
        """Start waiting jobs on free slots: exclusive jobs first, each on a GPU nothing else runs
        on, always in that GPU's first worker (what a timing job starts ahead for the profile
        after it is there for it); shared jobs only on GPUs no exclusive job runs on or waits for."""
        devices = {slot.device for slot in slots}
        running = {d: [s.running.job for s in slots if s.device == d and s.running] for d in devices}
        reserved: set[str] = set()
        for entry in sorted(waiting, key=lambda e: not e[1].exclusive):
            job = entry[1]
            free = [s for s in slots if s.running is None and s.accepts(job) and s.device not in reserved]
            if job.exclusive:
                idle = [s for s in free if not running[s.device]]
                if not idle:
                    if free:  # wait for the least busy GPU it may use; nothing new starts there meanwhile
                        reserved.add(min(free, key=lambda s: len(running[s.device])).device)
                    continue
                slot = idle[0]
            else:
                usable = [s for s in free if not any(j.exclusive for j in running[s.device])]
                if not usable:
                    continue
                slot = usable[0]
            waiting.remove(entry)
            slot.send(_Running(entry[0], job, entry[2], time.monotonic()))
            running[slot.device].append(job)

    def _collect(self, slot: _Slot, waiting: deque, hand_back: Callable[[int, Outcome], None]) -> None:
        """Hand back the slot's result if it came; retry or fail its job if the worker died or hangs."""
        running = slot.running
        assert running is not None
        message = slot.receive()
        if message is not None:
            result, stops = message
            slot.running = None
            if stops:
                slot.retire()
            hand_back(running.index, Outcome(running.job, result, slot.name, running.attempt))
        elif not slot.process.is_alive():
            code = slot.process.exitcode
            slot.restart()
            if running.attempt <= self.retries:
                waiting.appendleft((running.index, running.job, running.attempt + 1))
            else:
                detail = f"worker on GPU {slot.device} died (exit code {code}) on each of {running.attempt} attempts"
                hand_back(running.index, Outcome(running.job, failure("worker_lost", detail), slot.name, running.attempt))
        elif time.monotonic() - running.started > running.job.timeout_s + self.grace_s:
            took = time.monotonic() - running.started
            slot.restart()
            detail = (f"no result after {took:.0f} s (limit {running.job.timeout_s:.0f} s + {self.grace_s:.0f} s "
                      f"grace); worker on GPU {slot.device} killed")
            hand_back(running.index, Outcome(running.job, failure("worker_timeout", detail), slot.name, running.attempt))
