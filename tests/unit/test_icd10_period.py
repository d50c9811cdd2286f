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
