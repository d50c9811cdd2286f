"""Durable storage of accepted visits: HDFS archive + Parquet, then HBase rows.

Per request (fast path: one container append, one Parquet file per month, one ``put_many`` per
table):
1. the accepted visits as HL7 v3 XML, appended to the daily container ``hl7/archive/<yyyy-mm-dd>``
   (group commit, durable when the append closes);
2. Parquet files (``visit_parquet``);
3. HBase: ``search`` index rows, ``subject`` columns, then ``visit`` rows **last**, so a visit
   row exists only when everything else about it is durable.

The archived XML is the batch *rebuilt from the validated visits* (``builder.build_batch``), not
the received bytes: comments, unknown elements or rejected (e.g. PHI-carrying) messages of the
request can then never reach HDFS. Any failure raises ``StorageError``; the gateway answers AE and
the HAS resends, which is idempotent (HBase rows are keyed by the encrypted visit id; Parquet
duplicates are resolved by readers and compaction).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone

from hl7_gateway import store_rows, visit_parquet
from hl7_gateway.builder import build_batch
from hl7_gateway.models import Visit
from pacs_hdfs import clients
from pacs_hdfs.containers import ContainerWriter, Location
from pacs_hdfs.settings import Settings

ARCHIVE_ROOT = "hl7/archive"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreReport:
    visits: int
    archive: Location | None
    parquet: list[str]


class VisitStore:
    def __init__(self, settings: Settings, writer_id: str | None = None):
        self.hdfs = clients.hdfs(settings)
        self.hbase = clients.hbase(settings)
        self.containers = ContainerWriter(self.hdfs, writer=writer_id)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="parquet")

    def store(self, visits: list[Visit], request_id: str | None = None,
              received: datetime | None = None) -> StoreReport:
        """Make these visits durable everywhere; raises StorageError if anything fails."""
        if not visits:
            return StoreReport(0, None, [])
        received = received or datetime.now(timezone.utc)
        t0 = time.perf_counter()
        xml = build_batch(visits, batch_id=request_id, created=received.replace(tzinfo=None))
        writes = [(path, self._pool.submit(self.hdfs.write, path, data))
                  for path, data in visit_parquet.month_files(visits, received)]
        try:  # the archive append runs here (group commit) while the Parquet files upload
            archive = self.containers.put(f"{ARCHIVE_ROOT}/{received:%Y-%m-%d}", xml)
        finally:
            wait([done for _, done in writes])
        parquet = [path for path, done in writes if done.result() is None]  # re-raises errors
        t1 = time.perf_counter()
        self._put_rows(visits, archive, received.isoformat(timespec="milliseconds"))
        log.info("stored %d visits: HDFS %.0f ms (%d Parquet files), HBase %.0f ms",
                 len(visits), (t1 - t0) * 1000, len(parquet), (time.perf_counter() - t1) * 1000)
        return StoreReport(len(visits), archive, parquet)

    def _put_rows(self, visits: list[Visit], archive: Location, received: str) -> None:
        latest = {v.visit_id: v for v in visits}  # a visit twice in one request: last wins
        search, subject, rows, owned = {}, {}, [], {}
        for visit in latest.values():
            index = store_rows.search_rows(visit)
            search.update(index)
            key, cols = store_rows.subject_column(visit)
            subject.setdefault(key, {}).update(cols)
            row_key = visit.visit_id.encode()
            owned[row_key] = list(index)
            rows.append((row_key, store_rows.visit_row(visit, archive, received, owned[row_key])))
        old = self.hbase.get_many("visit", list(owned), columns=[b"v:index"])
        for row_key, keys in owned.items():
            for stale in store_rows.stale_index_keys(old.get(row_key, {}), keys):
                self.hbase.delete("search", stale)
        if search:
            self.hbase.put_many("search", search.items())
        self.hbase.put_many("subject", subject.items())
        self.hbase.put_many("visit", rows)

    def get_visit_json(self, visit_id: str) -> bytes | None:
        row = self.hbase.get("visit", visit_id.encode(), columns=[b"v:json"])
        return row.get(b"v:json") if row else None
