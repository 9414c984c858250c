"""Phases: seconds per phase of a judge's work, added up and reported."""

import time

import pytest

from builder.judge.phases import PHASES, Phases


def test_spans_and_additions_add_up_per_phase():
    phases = Phases({"start": 1.0})
    with phases.span("checks"):
        time.sleep(0.02)
    phases.add("start", 0.5)
    assert phases.seconds["start"] == 1.5 and phases.seconds["checks"] >= 0.02
    assert phases.total() == pytest.approx(1.5 + phases.seconds["checks"])


def test_merge_takes_phases_or_plain_dicts_and_to_dict_keeps_report_order():
    merged = Phases({"timing": 2.0}).merge({"start": 1.0}).merge(Phases({"timing": 1.0})).merge(None)
    assert merged.to_dict() == {"start": 1.0, "timing": 3.0}
    assert list(merged.to_dict()) == [p for p in PHASES if p in merged.seconds]


def test_an_unknown_phase_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown phase 'imports'.*start"):
        Phases().add("imports", 1.0)


def test_the_table_shows_shares_and_the_wall_time():
    table = Phases({"start": 3.0, "timing": 1.0}).table(wall_s=2.5)
    assert "start" in table and "75%" in table and "25%" in table and "wall" in table and "2.5" in table
