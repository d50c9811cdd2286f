"""Which admission months can hold a visit still in hospital at a given instant: a per-month stay
index read from the Parquet footers, for pruning under the ``overlap`` period rule.

The visit Parquet is partitioned by admission month, so a visit treated in a period may sit in
any earlier month. For each ``visit_month`` partition the index keeps the latest ``discharge`` and
the number of open visits (null ``discharge``), both taken from the row-group statistics every
Parquet writer here stores (pyarrow in the gateway and the generator, Spark). A month must be read
for a period starting at ``start`` only when its latest discharge is after ``start`` or it holds an
open visit; a file without statistics makes its month always read. This is the data's own bound
on stay length, per month, so one long stay widens the scan by its own month only.

Cost: one ranged read of each file's tail (the footer), only for files in months before the
period and not seen before. Footers are cached in this process by (path, length, modification
time), so the job runner pays for a file once; a rewritten or compacted file has a new key.
"""
from __future__ import annotations

import datetime as dt
import re
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pacs_hdfs.visit_schema import PARTITION_COLUMN

from .period import Period, check_rule

TAIL_BYTES = 64 * 1024        # one read usually holds the whole footer
_MONTH = re.compile(rf"(?:^|/){PARTITION_COLUMN}=(\d{{4}}-\d{{2}})(?:/|$)")


@dataclass(frozen=True)
class Stays:
    """What the footers say about the ``discharge`` of one file or one month."""

    latest_discharge: dt.datetime | None = None   # max over closed visits; None when none closed
    open_visits: int = 0                          # null discharges
    known: bool = True                            # False: some row group had no statistics
    rows: int = 0                                 # visits (from the footer too)

    def merge(self, other: "Stays") -> "Stays":
        latest = max((d for d in (self.latest_discharge, other.latest_discharge) if d is not None),
                     default=None)
        return Stays(latest, self.open_visits + other.open_visits, self.known and other.known,
                     self.rows + other.rows)

    def may_be_in_hospital_after(self, instant: dt.datetime) -> bool:
        return (not self.known or self.open_visits > 0
                or (self.latest_discharge is not None and self.latest_discharge > instant))


def month_of(path: str) -> str | None:
    """``.../visit_month=2024-03/part-0.parquet`` -> ``2024-03``."""
    found = _MONTH.search(str(path))
    return found.group(1) if found else None


def footer_stays(metadata: pq.FileMetaData) -> Stays:
    """The ``discharge`` statistics of one file, merged over its row groups."""
    stays, unknown = Stays(rows=metadata.num_rows), Stays(known=False, rows=metadata.num_rows)
    columns = [i for i in range(metadata.num_columns)
               if metadata.row_group(0).column(i).path_in_schema == "discharge"] \
        if metadata.num_row_groups else []
    if metadata.num_row_groups and not columns:
        return unknown
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        stats = group.column(columns[0]).statistics
        if stats is None or stats.null_count is None:
            return unknown
        if stats.has_min_max:
            latest = stats.max
            if not isinstance(latest, dt.datetime):   # pyarrow gives datetime for timestamp[us]
                return unknown
            stays = stays.merge(Stays(latest, 0))
        elif stats.null_count < group.num_rows:        # values present but no min/max written
            return unknown
        stays = stays.merge(Stays(None, int(stats.null_count)))
    return stays


def tail_stays(tail: bytes) -> Stays:
    """Stays from the last bytes of a Parquet file (footer length + footer + magic inside)."""
    return footer_stays(pq.read_metadata(pa.BufferReader(tail)))


def footer_length(tail: bytes) -> int:
    if tail[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (no trailing magic)")
    return struct.unpack("<i", tail[-8:-4])[0] + 8


# --- building the index --------------------------------------------------------------------

def local_index(root: str | Path) -> dict[str, Stays]:
    """The index of a local hive-partitioned dataset (tests, benchmarks)."""
    index: dict[str, Stays] = {}
    for f in Path(root).glob(f"{PARTITION_COLUMN}=*/*.parquet"):
        month = month_of(f.as_posix())
        index[month] = index.get(month, Stays()).merge(footer_stays(pq.read_metadata(f)))
    return index


_cache: dict[tuple[str, int, int], Stays] = {}
_cache_lock = threading.Lock()


def _hdfs_file_stays(fs, path: str, length: int) -> Stays:
    """One or two ranged reads of a file's tail over WebHDFS."""
    if length < 12:
        return Stays(known=False)
    take = min(length, TAIL_BYTES)
    tail = fs.read(path, offset=length - take, length=take)
    need = footer_length(tail)
    if need > len(tail):
        tail = fs.read(path, offset=length - need, length=need)
    return tail_stays(tail)


def hdfs_index(fs, files, months: set[str] | None = None, threads: int = 8) -> dict[str, Stays]:
    """The index of the files (``FileInfo`` rows of the HdfsStore) in ``months`` (all if None)."""
    wanted = [f for f in files if month_of(f.path) is not None
              and (months is None or month_of(f.path) in months)]
    with _cache_lock:
        missing = [f for f in wanted if (f.path, f.length, f.modified_ms) not in _cache]
    if missing:
        with ThreadPoolExecutor(max(1, min(threads, len(missing)))) as pool:
            found = list(pool.map(lambda f: _hdfs_file_stays(fs, f.path, f.length), missing))
        with _cache_lock:
            for f, stays in zip(missing, found):
                _cache[(f.path, f.length, f.modified_ms)] = stays
    index: dict[str, Stays] = {}
    with _cache_lock:
        for f in wanted:
            month = month_of(f.path)
            index[month] = index.get(month, Stays()).merge(_cache[(f.path, f.length, f.modified_ms)])
    return index


# --- using it --------------------------------------------------------------------------------

def months_before(months, period: Period) -> set[str]:
    """The months (of ``months``) before the period's first month: those the index must judge."""
    first, _ = period.months
    return {m for m in months if m < first}


def months_to_read(all_months, index: dict[str, Stays], period: Period, rule: str) -> list[str]:
    """The ``visit_month`` partitions that can hold a visit in the period under ``rule``.

    ``all_months``: every partition present. Months before the period missing from ``index``
    are read (never skipped on missing knowledge)."""
    first, last = period.months
    in_period = [m for m in all_months if first <= m <= last]
    if check_rule(rule) == "admitted":
        return sorted(set(in_period))
    earlier = [m for m in all_months if m < first
               and (m not in index or index[m].may_be_in_hospital_after(period.start))]
    return sorted(set(in_period) | set(earlier))
