"""A thin wrapper over HBase Thrift 1 (happybase): put, get, scan, batch, with retries.

One connection pool per process. A broken Thrift connection is dropped by the pool and the call
retried on a fresh one; HBase's own IOError (e.g. "Master is initializing", region moving) is
retried too. Anything still failing raises `StorageError`.
"""
from __future__ import annotations

import socket
from collections.abc import Iterable

import happybase
from thriftpy2.transport import TTransportException

from pacs_hdfs import metrics
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.retry import retry
from pacs_hdfs.schema import TABLES
from pacs_hdfs.settings import Settings

Row = dict[bytes, bytes]


def is_transient(e: Exception) -> bool:
    if isinstance(e, (TTransportException, socket.error, BrokenPipeError, TimeoutError)):
        return True
    name = type(e).__name__
    text = str(e)
    return name == "IOError" and any(m in text for m in (
        "PleaseHoldException", "NotServingRegionException", "RegionMovedException",
        "RetriesExhaustedException", "ServerNotRunningYetException", "ConnectException",
        "CallQueueTooBigException", "RegionTooBusyException"))


class HBaseStore:
    def __init__(self, settings: Settings, pool_size: int = 8, attempts: int = 5):
        self.s = settings
        self.prefix = settings.hbase_table_prefix
        self.attempts = attempts
        self.pool = happybase.ConnectionPool(
            pool_size, host=settings.thrift_host, port=settings.thrift_port, timeout=30000,
            table_prefix=self.prefix, autoconnect=False)

    def _do(self, what: str, fn, attempts: int | None = None):
        def attempt():
            with self.pool.connection() as conn:
                return fn(conn)
        try:
            return retry(attempt, what=what, transient=is_transient,
                         attempts=attempts or self.attempts)
        except Exception as e:  # noqa: BLE001 - thrift raises many types; all become StorageError
            metrics.storage_failed("hbase", e)
            raise StorageError(f"HBase {what} failed: {_first_line(e)}") from e

    # --- schema ----------------------------------------------------------------------------
    def ensure_tables(self) -> list[str]:
        """Create every table of the schema that does not exist yet; return all table names."""
        def go(conn: happybase.Connection):
            existing = {t.decode() for t in conn.tables()}
            for t in TABLES:
                if t.name not in existing:
                    conn.create_table(t.name, t.families)
            return sorted(f"{self.prefix}_{t.name}" for t in TABLES)
        return self._do("create tables", go)

    # --- rows ------------------------------------------------------------------------------
    def put(self, table: str, row: bytes, data: Row) -> None:
        self._do(f"put {table}", lambda c: c.table(table).put(row, data))

    def put_many(self, table: str, rows: Iterable[tuple[bytes, Row]]) -> None:
        """Write many rows in one Thrift batch (one round trip per ~batch)."""
        rows = list(rows)

        def go(conn):
            with conn.table(table).batch(batch_size=500) as b:
                for key, data in rows:
                    b.put(key, data)
        self._do(f"batch put {table} ({len(rows)} rows)", go)

    def get(self, table: str, row: bytes, columns: list[bytes] | None = None) -> Row:
        return self._do(f"get {table}", lambda c: c.table(table).row(row, columns=columns))

    def get_many(self, table: str, rows: list[bytes],
                 columns: list[bytes] | None = None) -> dict[bytes, Row]:
        return self._do(f"get {table} ({len(rows)} rows)",
                        lambda c: dict(c.table(table).rows(rows, columns=columns)))

    def scan(self, table: str, row_prefix: bytes | None = None, row_start: bytes | None = None,
             row_stop: bytes | None = None, columns: list[bytes] | None = None,
             limit: int | None = None, batch_size: int = 1000) -> list[tuple[bytes, Row]]:
        """Rows in key order (materialised: a scan holds a pooled connection while it runs)."""
        return self._do(f"scan {table}", lambda c: list(c.table(table).scan(
            row_prefix=row_prefix, row_start=row_start, row_stop=row_stop, columns=columns,
            limit=limit, batch_size=batch_size)))

    def delete(self, table: str, row: bytes, columns: list[bytes] | None = None) -> None:
        self._do(f"delete {table}", lambda c: c.table(table).delete(row, columns=columns))

    def counter_inc(self, table: str, row: bytes, column: bytes, value: int = 1,
                    once: bool = False) -> int:
        """Add ``value`` to a counter. An increment is not idempotent: one whose answer was lost
        (Thrift or the RegionServer stopping) may have been applied, so with ``once`` it is not
        retried and the caller fails its request instead (exact counters, `dicom.commit`);
        without, transient failures are retried (rate limits, where one more is harmless)."""
        return self._do(f"increment {table}",
                        lambda c: c.table(table).counter_inc(row, column, value),
                        attempts=1 if once else None)

    def compact(self, table: str) -> None:
        """Ask HBase to compact `table` (asynchronous: returns once queued). It is a minor
        compaction (at least 3 store files; HBase 2.6's Thrift 1 `majorCompact` does the same),
        which still drops deleted cells whose delete markers are among the files it merges."""
        self._do(f"compact {table}", lambda c: c.compact_table(table))

    def drop_table(self, table: str) -> None:
        """Disable and delete `table` of this store's prefix (benchmarks and tests removing the
        tables of their own prefix)."""
        self._do(f"drop {table}", lambda c: c.delete_table(table, disable=True))

    def tables(self) -> list[str]:
        return self._do("list tables", lambda c: [t.decode() for t in c.tables()])


def _first_line(e: Exception) -> str:
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text.splitlines()[0][:300] if text else type(e).__name__
