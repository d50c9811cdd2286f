"""Analysis periods: which visits fall into ``[date_from, date_to]`` and equal sub-periods.

Rule shared by all five analyses (Spark and DuckDB alike):
a visit is *in the period* when its **admission** lies in ``[date_from 00:00, date_to + 1 day 00:00)``,
i.e. both dates are inclusive whole days. A visit admitted inside and discharged after ``date_to``
is counted (with its whole duration); a visit admitted before ``date_from`` is not, even if the
patient is still in hospital. Why admission and not overlap: the visit Parquet is partitioned by
the month of admission, so this rule prunes whole ``visit_month`` directories and pushes a simple
range filter on ``admission`` into the Parquet reader; an overlap rule would have to scan every
earlier month for still-open visits. Timestamps are naive hospital local time (``TIMESTAMP_NTZ``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MICROS_PER_DAY = 86_400_000_000


def _as_date(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


@dataclass(frozen=True)
class Period:
    """Inclusive day range ``[date_from, date_to]`` and its half-open timestamp bounds."""

    date_from: dt.date
    date_to: dt.date

    @classmethod
    def of(cls, date_from: dt.date | str, date_to: dt.date | str) -> "Period":
        start, end = _as_date(date_from), _as_date(date_to)
        if end < start:
            raise ValueError(f"period ends ({end}) before it starts ({start})")
        return cls(start, end)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.date_from, dt.time())

    @property
    def end(self) -> dt.datetime:
        """Exclusive upper bound: midnight after ``date_to``."""
        return dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time())

    @property
    def months(self) -> tuple[str, str]:
        """First and last ``visit_month`` partition value the period touches."""
        return self.date_from.strftime("%Y-%m"), self.date_to.strftime("%Y-%m")

    @property
    def total_micros(self) -> int:
        return ((self.date_to - self.date_from).days + 1) * MICROS_PER_DAY

    def subperiod_bounds(self, n: int) -> list[tuple[dt.datetime, dt.datetime]]:
        """``n`` equal half-open sub-periods; sub-period ``k`` holds admissions with
        ``(admission - start) * n // total == k`` (integer microseconds, exact in both engines)."""
        if n < 1:
            raise ValueError("n_subperiods must be >= 1")
        total = self.total_micros
        edges = [self.start + dt.timedelta(microseconds=-(-k * total // n)) for k in range(n + 1)]
        return list(zip(edges[:-1], edges[1:]))

    def as_dict(self) -> dict:
        return {"from": self.date_from.isoformat(), "to": self.date_to.isoformat(),
                "admission_from": self.start.isoformat(), "admission_before": self.end.isoformat()}
