from pathlib import Path

import pytest

from builder.judge import ncu
from builder.stages import catalog

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ncu_raw_h200_avgpool2d.csv"
METRICS = list(catalog().all_metrics())


def test_parses_real_raw_csv_into_kernel_metric_map():
    parsed = ncu.parse_csv(FIXTURE.read_text(), METRICS)
    assert list(parsed) == ["avgpool2d_kernel"]
    values = parsed["avgpool2d_kernel"]
    assert values["dram__throughput.avg.pct_of_peak_sustained_elapsed"] == 86.16
    assert values["launch__grid_size"] == 380928
    assert isinstance(values["launch__grid_size"], int)
    assert set(values) == set(METRICS)
    assert all(isinstance(v, (int, float)) for v in values.values())


def test_metric_absent_from_csv_is_none_not_invented():
    parsed = ncu.parse_csv(FIXTURE.read_text(), ["smsp__made_up_metric.pct"])
    assert parsed["avgpool2d_kernel"] == {"smsp__made_up_metric.pct": None}


def test_thousands_separators_and_na():
    assert ncu._number("4,181,024") == 4181024
    assert ncu._number("n/a") is None and ncu._number("") is None
    assert ncu._number("6.0") == 6.0 and isinstance(ncu._number("6.0"), float)


@pytest.mark.parametrize("text", ["", "==PROF== No kernels were profiled.\n", '"ID","Other"\n"1","2"\n'])
def test_output_without_kernels_gives_empty_map(text):
    assert ncu.parse_csv(text, METRICS) == {}


def test_several_kernels_in_the_range_are_kept_apart():
    lines = FIXTURE.read_text().splitlines()
    data_row = next(l for l in lines if l.startswith('"0"'))
    second = data_row.replace('"0"', '"1"', 1).replace('"avgpool2d_kernel"', '"other_kernel"')
    parsed = ncu.parse_csv("\n".join(lines + [second]), METRICS)
    assert set(parsed) == {"avgpool2d_kernel", "other_kernel"}


def test_wrap_command_scopes_to_the_nvtx_range_and_leaves_clocks_alone(tmp_path):
    cmd = ncu.wrap_command("ncu", ["a.b", "c.d"], tmp_path / "log.csv")
    assert cmd[cmd.index("--clock-control") + 1] == "none"
    assert cmd[cmd.index("--nvtx-include") + 1] == "profiled/"
    assert cmd[cmd.index("--metrics") + 1] == "a.b,c.d"


def _unstarted(seen):
    """A stand-in SandboxSession class that tells `seen` the wrap each session asks for, and whose
    start fails (the profile then ends without running anything)."""
    from builder.judge import runner

    class Session:
        def __init__(self, device, problem_dir, *, wrap=None, **kwargs):
            seen(wrap)
            self.box = Path("/nonexistent")

        def start(self):
            raise runner.SandboxDied("crash", "not started in this test")

        def log_tail(self):
            return ""

        def close(self):
            pass

    return Session


def test_the_rewards_ncu_sandbox_started_ahead_is_the_one_its_profile_takes(monkeypatch):
    """GpuTimer.keep_ahead keeps a sandbox under the profiler that profile_codes then asks for: equal
    wraps, so the session takes it."""
    from builder.judge import runner
    from builder.judge.score import GpuTimer
    from builder.seeds import get_problem

    kept, asked = [], []
    monkeypatch.setattr(ncu, "ncu_path", lambda: "/usr/bin/ncu")
    monkeypatch.setattr(runner, "keep_spares", lambda device, count, wrap=None: kept.append((device, wrap)))
    monkeypatch.setattr(runner, "SandboxSession", _unstarted(asked.append))
    GpuTimer("current").keep_ahead()
    ncu.profile_codes(get_problem("avgpool1d"), {"candidate": "code"}, [], "/usr/bin/ncu", timeout_s=60, trusted=False)
    assert kept == [("cuda", asked[0])] and hash(kept[0][1]) == hash(asked[0])
    assert ncu.profiler("/usr/bin/ncu", ["a.b"]) != asked[0]  # other metrics: another kind of sandbox
    assert asked[0].prefix(Path("/box/log.csv"))[-1] == "/box/log.csv"


def test_a_timing_job_starts_the_sandbox_its_profile_job_takes_and_the_profile_starts_none_behind_it(monkeypatch):
    """measure's TimeJob, given the ncu and metrics of the ProfileJob that follows it, keeps one
    sandbox under that profiler before its timing run starts; the ProfileJob stops keeping any,
    then asks for a session under an equal profiler, which takes that sandbox."""
    from builder.judge import runner, timing
    from builder.judge.jobs import ProfileJob, TimeJob
    from builder.seeds import get_problem

    events = []
    monkeypatch.setattr(runner, "keep_spares", lambda device, count, wrap=None: events.append(("keep", count, wrap)))
    monkeypatch.setattr(runner, "SandboxSession", _unstarted(lambda wrap: events.append(("session", wrap))))
    monkeypatch.setattr(timing, "run_side_by_side", lambda *args, **kwargs: events.append(("timed",)))
    folder = str(get_problem("avgpool1d").dir)
    metrics = ["dram__throughput.avg.pct_of_peak_sustained_elapsed"]
    TimeJob(folder, {"seed": "code"}, ncu="/usr/bin/ncu", metrics=metrics).run()
    ProfileJob(folder, {"seed": "code"}, metrics=metrics, ncu="/usr/bin/ncu").run()
    wrap = ncu.profiler("/usr/bin/ncu", metrics)
    assert events == [("keep", 1, wrap), ("timed",), ("keep", 0, wrap), ("session", wrap)]
    events.clear()
    TimeJob(folder, {"seed": "code"}).run()  # no profile follows: nothing starts ahead
    assert events == [("timed",)]


def test_launch_attributes_count_as_available():
    assert ncu.is_launch_attribute("launch__grid_size")
    assert not ncu.is_launch_attribute("sm__throughput.avg.pct_of_peak_sustained_elapsed")


@pytest.mark.gpu
@pytest.mark.parametrize("chip", ["ad102", "gh100"])
def test_catalog_metrics_exist_on_sm89_and_sm90(chip):
    path = ncu.ncu_path()
    if path is None:
        pytest.skip("ncu not installed")
    listed = ncu.available_metrics(path, chip)
    missing = [m for m in METRICS if not (m in listed or ncu.is_launch_attribute(m))]
    assert missing == []
    assert "smsp__warp_issue_stalled_memory_dependency_per_warp_active.pct" not in listed
