"""The local executor with the real runner on a CUDA machine: each child owns one GPU."""

import time

import pytest

from builder.executors import Job, LocalExecutor
from builder.executors.local import visible_devices

pytestmark = pytest.mark.gpu


def test_each_child_sees_exactly_its_own_gpu():
    devices = visible_devices()
    jobs = [Job("tests.executors.standins:gpu_job", f"g{i}", {"device": "cuda", "busy_s": 3.0}, timeout_s=120)
            for i in range(2 * len(devices))]
    start = time.monotonic()
    outcomes = LocalExecutor().run(jobs)
    wall = time.monotonic() - start
    assert all(o.ok for o in outcomes), [o.result for o in outcomes if not o.ok]
    payloads = [o.result["payload"] for o in outcomes]
    assert all(p["count"] == 1 for p in payloads)
    assert {p["cvd"] for p in payloads} == set(devices)
    assert len({p["uuid"] for p in payloads}) == len(devices)
    for p, o in zip(payloads, outcomes):
        assert o.worker == f"local:gpu{p['cvd']}"
    busy = sum(p["end"] - p["start"] for p in payloads)
    overlap = max((min(a["end"], b["end"]) - max(a["start"], b["start"]) for a in payloads for b in payloads
                   if a["cvd"] != b["cvd"]), default=0.0)
    print(f"{len(jobs)} jobs on {len(devices)} GPUs: {wall:.1f} s wall, {busy:.1f} s busy, {overlap:.1f} s overlap")
    if len(devices) > 1:
        assert overlap > 1.0  # two GPUs were busy at the same time
