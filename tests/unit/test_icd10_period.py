"""Analysis periods: inclusive days, half-open timestamp bounds, equal sub-periods."""
import datetime as dt

import pytest

from analytics_jobs.icd10.period import Period


def test_inclusive_days_become_half_open_bounds():
    p = Period.of("2024-02-01", "2024-02-29")
    assert (p.start, p.end) == (dt.datetime(2024, 2, 1), dt.datetime(2024, 3, 1))
    assert p.months == ("2024-02", "2024-02")
    assert p.total_micros == 29 * 86_400_000_000


def test_subperiods_split_exactly_and_cover_the_period():
    p = Period.of(dt.date(2024, 1, 1), dt.date(2024, 1, 1))      # one day in 7 parts: 3 h 25 min 42.857142857 s
    bounds = p.subperiod_bounds(7)
    assert bounds[0][0] == p.start and bounds[-1][1] == p.end
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    # edge k = ceil(k * 86400e6 / 7) microseconds: 12342857142.857 -> 12342857143
    assert bounds[1][0] == dt.datetime(2024, 1, 1, 3, 25, 42, 857143)


def test_invalid_periods_are_rejected():
    with pytest.raises(ValueError):
        Period.of("2024-03-01", "2024-02-01")
    with pytest.raises(ValueError):
        Period.of("2024-01-01", "2024-01-31").subperiod_bounds(0)


# --- what the date policy and the age top code do to the analyses (issue 14) ---------------

def test_definitions_state_the_date_shift_and_its_maximum():
    from deid.pseudonyms import MAX_SHIFT_DAYS
    from analytics_jobs.icd10 import report
    assert report.MAX_SHIFT_DAYS == MAX_SHIFT_DAYS
    for name, definition in report.DEFINITIONS.items():
        assert f"1 to {MAX_SHIFT_DAYS} days" in definition["dates"], name
        assert "retain" in definition["dates"]


def test_age_bins_respect_the_top_code():
    from analytics_jobs.icd10.jobs import AgeParams
    from analytics_jobs.icd10.report import AGE_TOP, age_group_labels, check_age_bins
    from hl7_gateway.models import AGE_TOP as STORED_TOP
    assert AGE_TOP == STORED_TOP
    assert age_group_labels([0, 18, 65, 200]) == ["0-17", "18-64", "65+"]
    assert age_group_labels([0, 80, 90, 120]) == ["0-79", "80-89", "90+"]
    assert check_age_bins([0, 90, 130]) == [0, 90, 130]
    with pytest.raises(ValueError, match="top-coded"):
        check_age_bins([0, 65, 95, 200])
    with pytest.raises(ValueError):
        AgeParams(date_from="2024-01-01", date_to="2024-12-31", bins="0,65,100,120")
