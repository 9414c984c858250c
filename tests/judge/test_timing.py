from builder.judge.timing import TIMING_KEYS, bandwidth, summarize


def test_summary_has_median_min_max_and_count():
    stats = summarize([3.0, 1.0, 2.0, 10.0])
    assert tuple(stats) == TIMING_KEYS
    assert stats == {"median_ms": 2.5, "min_ms": 1.0, "max_ms": 10.0, "runs": 4}


def test_bandwidth_is_gigabytes_per_second():
    assert bandwidth(3_000_000_000, 1.0) == 3000.0
