"""Durable storage of accepted visits: HDFS archive + Parquet, then HBase rows.

Requests that arrive while commits are in flight are **group-committed** together (the same idea
as ``ContainerWriter``): whoever finds a free commit slot (up to ``MAX_PARALLEL_COMMITS``) takes
its own and the other queued requests and writes them with one container append, one Parquet file per month and one ``put_many`` per table; each
request is answered once the commit carrying it is durable. Per commit:

1. each request's accepted visits as one HL7 v3 batch, all appended in one go to the daily
   container ``hl7/archive/<yyyy-mm-dd>`` (each visit row points at its request's byte range);
2. Parquet files (``visit_parquet``), uploaded in parallel with step 1;
3. HBase: ``search`` index rows and ``subject`` columns, then ``visit`` rows, so a visit
   row exists only when everything else about it is durable; then the case-search ``feed`` rows
   the portal's index tails.

The archived XML is *rebuilt from the validated visits* (``builder.build_batch``), not the
received bytes: comments, unknown elements or rejected (e.g. PHI-carrying) messages can then never
reach HDFS. Any failure raises ``StorageError`` in every request of the commit; the gateway
answers AE and the HAS resends, which is idempotent (HBase rows are keyed by the encrypted visit
id; Parquet duplicates are resolved by readers and compaction).

Each commit first checks its visits against the hospitals that own their visit and subject
rows (`VisitStore._claim`: one HBase read per table for the whole commit, which also fetches the
visit rows' earlier index keys, then `ownership.Owners.claim` per request on those rows): a visit
whose rows belong to another hospital is left out of every write and answered AE
(`StoreReport.refused`). Until 2026-12 this was two HBase reads per *request* before queueing,
which under load cost more than the whole commit (benchmarks/hl7/RESULTS.md). The visit row
records its hospital (``v:hospital``), the subject row too (``a:hospital``), and a read answers
only the owning hospital (`get_visit_json`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone

from hl7_gateway import store_rows, visit_parquet
from hl7_gateway.builder import build_batch
from hl7_gateway.models import AckDetail, Visit
from hl7_gateway.ownership import OWNED, VISIT_OWNER, VISIT_ROWS, Owners
from pacs_hdfs import clients
from pacs_hdfs.containers import ContainerWriter, Location
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import visit as visit_table
from pacs_hdfs.settings import Settings

ARCHIVE_ROOT = "hl7/archive"
MAX_GROUP_VISITS = 5000
SUBJECT_ROWS = OWNED[1]
MAX_PARALLEL_COMMITS = 3  # overlap one commit's HBase writes with the next one's HDFS writes
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreReport:
    visits: int
    archive: Location | None
    parquet: list[str]
    refused: dict[str, AckDetail] = field(default_factory=dict)  # visit id -> why not stored


@dataclass
class _Request:
    visits: list[Visit]
    request_id: str | None
    hospital: str | None = None
    future: Future = field(default_factory=Future)
    refused: dict[str, AckDetail] = field(default_factory=dict)
    earlier: dict[bytes, dict[bytes, bytes]] | None = None  # v:index of its stored visits


class _Prefetched:
    """The rows a commit read once for all its requests, answering `Owners.claim`'s reads
    (``get_many`` with the same meaning as `HBaseStore.get_many`, columns or families)."""

    def __init__(self, rows: dict[str, dict[bytes, dict[bytes, bytes]]]):
        self.rows = rows

    def get_many(self, table: str, keys: list[bytes], columns: list[bytes] | None = None
                 ) -> dict[bytes, dict[bytes, bytes]]:
        def wanted(column: bytes) -> bool:
            return columns is None or column in columns or column.split(b":")[0] in columns
        found = self.rows[table]
        return {k: {c: v for c, v in found[k].items() if wanted(c)} for k in keys if k in found}


def _timed(call, *args) -> float:
    """Milliseconds ``call(*args)`` took (for the per-commit profile in the log)."""
    started = time.perf_counter()
    call(*args)
    return (time.perf_counter() - started) * 1000


def sub_locations(whole: Location, parts: list[bytes]) -> list[Location]:
    """Locations of consecutive parts of a blob stored at ``whole``."""
    offset, found = whole.offset, []
    for part in parts:
        found.append(Location(whole.path, offset, len(part), hashlib.sha256(part).hexdigest()))
        offset += len(part)
    return found


class VisitStore:
    def __init__(self, settings: Settings, writer_id: str | None = None):
        self.settings = settings
        self.hdfs = clients.hdfs(settings)
        self.containers = ContainerWriter(self.hdfs, writer=writer_id)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="store")
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._active = 0  # commits in flight
        self.owners = Owners(settings.gateway_unowned_rows_hospital)

    @property
    def hbase(self):
        """Built on first use: the gateway starts (and answers AE) while HBase Thrift is down."""
        try:
            return clients.hbase(self.settings)
        except StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - happybase connects in the pool constructor
            raise StorageError(f"HBase unreachable: {type(exc).__name__}") from exc

    def store(self, visits: list[Visit], request_id: str | None = None,
              hospital: str | None = None) -> StoreReport:
        """Make these visits durable everywhere (group commit), recorded as ``hospital``'s;
        those whose rows another hospital owns are left out (`StoreReport.refused`). ``None``
        (in-process callers, not the gateway) skips the ownership check and records no owner.
        Raises StorageError."""
        if not visits:
            return StoreReport(0, None, [])
        return self._enqueue(_Request(list(visits), request_id, hospital))

    def _enqueue(self, mine: _Request) -> StoreReport:
        """Queue one request for a group commit and wait until the commit carrying it ended."""
        with self._cond:
            self._queue.append(mine)
            # wait while mine is queued but all commit slots are busy, or another commit has it
            while not mine.future.done() and (self._active >= MAX_PARALLEL_COMMITS
                                              or mine not in self._queue):
                self._cond.wait()
            if mine.future.done():
                return mine.future.result()
            self._active += 1
            self._queue.remove(mine)
            group, size = [mine], len(mine.visits)
            while self._queue and size + len(self._queue[0].visits) <= MAX_GROUP_VISITS:
                group.append(self._queue.pop(0))
                size += len(group[-1].visits)
        try:
            self._commit(group)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
        return mine.future.result()

    def _commit(self, group: list[_Request]) -> None:
        try:
            claim_ms = self._claim(group)
            reports = self._write(group)
        except Exception as exc:  # noqa: BLE001 - every request of the group must learn of it
            error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
            for request in group:
                request.future.set_exception(error)
            return
        for request, report in zip(group, reports):
            request.future.set_result(dataclasses.replace(report, refused=request.refused))
        if claim_ms is not None:
            log.info("owner and index reads %.0f ms for %d requests", claim_ms, len(group))

    def _write(self, group: list[_Request]) -> list[StoreReport]:
        received = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        writing = [r for r in group if r.visits]
        if not writing:
            return [StoreReport(0, None, []) for _ in group]
        visits = [v for request in writing for v in request.visits]
        if all(r.earlier is not None for r in writing):  # read with the owners (`_claim`)
            earlier = Future()
            earlier.set_result({k: row for r in writing for k, row in r.earlier.items()})
        else:  # what earlier versions indexed: read from HBase while HDFS is written
            earlier = self._pool.submit(lambda: self.hbase.get_many(
                "visit", list({visit_table.key(v.visit_id) for v in visits}),
                columns=[visit_table.INDEX]))
        tp = time.perf_counter()
        files = visit_parquet.month_files(visits, received)
        encode_ms = (time.perf_counter() - tp) * 1000
        writes = [(path, self._pool.submit(_timed, self.hdfs.write, path, data))
                  for path, data in files]
        try:  # the archive append runs here while the Parquet files upload
            ta = time.perf_counter()
            xmls = [build_batch(r.visits, batch_id=r.request_id,
                                created=received.replace(tzinfo=None)) for r in writing]
            tb = time.perf_counter()
            whole = self.containers.put(f"{ARCHIVE_ROOT}/{received:%Y-%m-%d}", b"".join(xmls))
            archive_ms, build_ms = (time.perf_counter() - tb) * 1000, (tb - ta) * 1000
        finally:
            wait([done for _, done in writes])
        parquet_ms = max((done.result() for _, done in writes), default=0.0)  # re-raises errors
        parquet = [path for path, _ in writes]
        archives = dict(zip(map(id, writing), sub_locations(whole, xmls)))
        t1 = time.perf_counter()
        phases = self._put_rows([(v, archives[id(r)], r.hospital) for r in writing
                                 for v in r.visits], received, earlier.result())
        log.info("stored %d visits of %d requests: HDFS %.0f ms (%d Parquet files), "
                 "HBase %.0f ms; parquet encode %.0f ms, parquet write %.0f ms, archive build "
                 "%.0f ms, archive append %.0f ms, %s", len(visits), len(group),
                 (t1 - t0) * 1000, len(parquet), (time.perf_counter() - t1) * 1000, encode_ms,
                 parquet_ms, build_ms, archive_ms,
                 ", ".join(f"{name} {ms:.0f} ms" for name, ms in phases.items()))
        return [StoreReport(len(r.visits), archives[id(r)], parquet) if r.visits
                else StoreReport(0, None, []) for r in group]

    def _claim(self, group: list[_Request]) -> float | None:
        """Ownership check of a commit's requests that name a hospital, before anything is
        written: one read per table for the whole commit (the visit rows' owners plus the index
        keys their earlier versions own, the subject rows' owners), then `Owners.claim` per
        request on those rows. Refused visits move from ``request.visits`` to
        ``request.refused``; ``request.earlier`` keeps the visit rows' ``v:index`` for
        `_put_rows`. Returns the milliseconds it took (None: nobody to check)."""
        claiming = [r for r in group if r.hospital is not None]
        if not claiming:
            return None
        started, hbase = time.perf_counter(), self.hbase
        reads = {"visit": self._pool.submit(
            hbase.get_many, "visit", sorted({v.visit_id.encode() for r in group
                                             for v in r.visits}),
            columns=[*VISIT_ROWS.read, visit_table.INDEX]),
            "subject": self._pool.submit(
            hbase.get_many, "subject", sorted({v.patient_id.encode() for r in claiming
                                               for v in r.visits}),
            columns=list(SUBJECT_ROWS.read))}
        wait(list(reads.values()))
        rows = {table: done.result() for table, done in reads.items()}  # re-raises errors
        for request in claiming:
            request.refused = self.owners.claim(_Prefetched(rows), request.visits,
                                                request.hospital)
            request.visits = [v for v in request.visits if v.visit_id not in request.refused]
        for request in group:
            request.earlier = {}
            for v in request.visits:
                row = rows["visit"].get(visit_table.key(v.visit_id), {})
                if visit_table.INDEX in row:
                    request.earlier[visit_table.key(v.visit_id)] = {
                        visit_table.INDEX: row[visit_table.INDEX]}
        return (time.perf_counter() - started) * 1000

    def _put_rows(self, visits: list[tuple[Visit, Location, str | None]], when: datetime,
                  old: dict[bytes, dict[bytes, bytes]]) -> dict[str, float]:
        """Write the HBase rows; returns milliseconds per phase (for the commit log line)."""
        t0 = time.perf_counter()
        received = when.isoformat(timespec="milliseconds")
        # a visit sent twice: last wins (`Owners.claim` let only one hospital send it)
        latest = {v.visit_id: (v, loc, h) for v, loc, h in visits}
        search, subject, rows, owned = {}, {}, [], {}
        for visit, archive, hospital in latest.values():
            index = store_rows.search_rows(visit)
            search.update(index)
            key, cols = store_rows.subject_column(visit, hospital)
            subject.setdefault(key, {}).update(cols)
            row_key = visit.visit_id.encode()
            owned[row_key] = list(index)
            rows.append((row_key, store_rows.visit_row(visit, archive, received, owned[row_key],
                                                       hospital)))
        hbase = self.hbase
        t1 = time.perf_counter()
        for row_key, keys in owned.items():
            for stale in store_rows.stale_index_keys(old.get(row_key, {}), keys):
                hbase.delete("search", stale)
        index_done = [self._pool.submit(hbase.put_many, "subject", subject.items())]
        if search:
            index_done.append(self._pool.submit(hbase.put_many, "search", search.items()))
        wait(index_done)
        for done in index_done:
            done.result()  # re-raises a failed put before any visit row is written
        t2 = time.perf_counter()
        hbase.put_many("visit", rows)
        t3 = time.perf_counter()
        # the case-search feed comes last: a feed row means the visit is readable everywhere;
        # keyed by the time of this write, so readers need only a short overlap to miss none
        now_ms = int(time.time() * 1000)
        hbase.put_many("search", [store_rows.feed_row(v, now_ms)
                                  for v, _, _ in latest.values()])
        t4 = time.perf_counter()
        return {"rows build": (t1 - t0) * 1000, "index+subject": (t2 - t1) * 1000,
                "visit rows": (t3 - t2) * 1000, "feed": (t4 - t3) * 1000}

    def get_visit_json(self, visit_id: str, hospital: str | None = None) -> bytes | None:
        """The stored visit, or None when there is none *or* ``hospital`` does not own it (the
        two answers look the same to the caller)."""
        row = self.hbase.get("visit", visit_table.key(visit_id),
                             columns=[visit_table.JSON, VISIT_OWNER])
        if not row or not self.owners.readable(row, hospital):
            return None
        return visit_table.visit_json(row)
