"""The job cache: many writers at once, partial and foreign files treated as absent."""

import json
import multiprocessing as mp
import threading

from builder.executors import Job, JobCache

KEYS = [f"k{i}" for i in range(12)]


def job_of(key: str) -> Job:
    return Job("verify", key, {}, 10)


def result_of(key: str, writer: int, size: int = 20_000) -> dict:
    """A result large enough that a torn write would show, with who wrote it."""
    return {"status": "ok", "reason": None, "detail": "", "payload": {"key": key, "writer": writer, "pad": "x" * size}}


def hammer(folder: str, writer: int, rounds: int) -> None:
    cache = JobCache(folder)
    for _ in range(rounds):
        for key in KEYS:
            cache.put(job_of(key), result_of(key, writer))
            got = cache.get(job_of(key))
            assert got is not None and got["payload"]["key"] == key and len(got["payload"]["pad"]) == 20_000


def check_intact(cache: JobCache, writers: int) -> None:
    for key in KEYS:
        got = cache.get(job_of(key))
        assert got is not None, key
        assert got["payload"]["key"] == key and got["payload"]["writer"] in range(writers)
        assert got == result_of(key, got["payload"]["writer"])
    assert [p.name for p in cache.folder.iterdir() if not p.name.endswith(".json")] == []


def test_many_processes_writing_at_once_leave_every_entry_whole(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=hammer, args=(str(tmp_path), w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    check_intact(JobCache(tmp_path), 4)


def test_many_threads_writing_at_once_leave_every_entry_whole(tmp_path):
    errors = []

    def guarded(w):
        try:
            hammer(str(tmp_path), w, 5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check_intact(JobCache(tmp_path), 6)


def test_a_torn_or_foreign_file_reads_as_absent(tmp_path):
    cache = JobCache(tmp_path)
    good, torn, foreign, shapeless = (job_of(k) for k in ("good", "torn", "foreign", "shapeless"))
    cache.put(good, result_of("good", 0, 10))
    whole = cache.path(good).read_text()
    cache.path(torn).write_text(whole[: len(whole) // 2])
    cache.path(foreign).write_text(whole)  # a whole entry, but for another job
    cache.path(shapeless).write_text(json.dumps({"kind": "verify", "key": "shapeless", "result": {"status": "ok"}}))
    assert cache.get(good) == result_of("good", 0, 10)
    assert [cache.get(j) for j in (torn, foreign, shapeless)] == [None, None, None]


def test_a_disabled_cache_reads_nothing_but_still_stores(tmp_path):
    job = job_of("k")
    JobCache(tmp_path, enabled=False).put(job, result_of("k", 1, 10))
    assert JobCache(tmp_path, enabled=False).get(job) is None
    assert JobCache(tmp_path).get(job) == result_of("k", 1, 10)


def test_keys_depend_on_every_part():
    assert JobCache.key("verify", "h100", {"a": 1}) == JobCache.key("verify", "h100", {"a": 1})
    assert JobCache.key("verify", "h100", {"a": 1}) != JobCache.key("verify", "h200", {"a": 1})
    assert len(JobCache.key("x")) == 24
