"""Analysis periods: which visits fall into ``[date_from, date_to]`` and equal sub-periods.

Both dates are inclusive whole days: the period is ``[date_from 00:00, date_to + 1 day 00:00)``.
Two rules say which visits are *in* it (``PERIOD_RULES``; Spark and DuckDB alike):

- ``overlap`` (default; the SCAPE study counts patients *treated* in a period): the stay
  overlaps the period. The visit is admitted before the period ends, and it is either admitted at
  or after the start, or discharged after the start, or still open (null discharge). For a normal
  stay (discharge >= admission) this is exactly "admitted before the end and discharged after the
  start or still open"; writing the admission term out keeps zero-length and invalid stays
  admitted inside the period in it, so every visit admitted in the period is also in the overlap set.
- ``admitted``: the admission lies in the period; a patient admitted earlier and still in
  hospital is left out (the rule of the first version of the jobs; kept as an option).

Pruning: the visit Parquet is partitioned by the month of admission. ``admitted`` reads only the
period's months. ``overlap`` also reads earlier months, but only those whose latest discharge is
after the start or that hold open visits (:mod:`.stay_index`, read from the Parquet footers).
Timestamps are naive hospital local time (``TIMESTAMP_NTZ``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MICROS_PER_DAY = 86_400_000_000

# rule name -> what it counts, in words (also in every result's definitions)
PERIOD_RULES = {
    "overlap": ("A visit is in the period when its stay overlaps [date_from 00:00, date_to+1 day 00:00) "
                "(both dates inclusive): admitted before the period ends, and admitted at or after its "
                "start, or discharged after its start, or still open (no discharge). Patients admitted "
                "earlier and still treated in the period are counted."),
    "admitted": ("A visit is in the period when its admission is in [date_from 00:00, date_to+1 day 00:00): "
                 "both dates inclusive; visits admitted earlier but still in hospital are not counted."),
}
DEFAULT_RULE = "overlap"


def check_rule(rule: str) -> str:
    if rule not in PERIOD_RULES:
        raise ValueError(f"unknown period rule {rule!r}; known: {', '.join(PERIOD_RULES)}")
    return rule


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

    def bucket_of(self, micros_from_start: int, n: int) -> int:
        """The sub-period (of ``n``) holding an instant ``micros_from_start`` after the start."""
        return micros_from_start * n // self.total_micros

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
