"""An in-memory stand-in for `HBaseStore` (put/get/scan/delete) for unit tests of pure portal
and ingest code; integration tests use the real HBase. Rows are kept sorted by key like HBase."""
from __future__ import annotations

import threading


class MemoryStore:
    def __init__(self):
        self.tables: dict[str, dict[bytes, dict[bytes, bytes]]] = {}
        self.lock = threading.Lock()

    def _t(self, table: str) -> dict:
        return self.tables.setdefault(table, {})

    def put(self, table, row, data):
        with self.lock:
            self._t(table).setdefault(row, {}).update(data)

    def put_many(self, table, rows):
        for key, data in rows:
            self.put(table, key, data)

    def get(self, table, row, columns=None):
        with self.lock:
            data = dict(self._t(table).get(row, {}))
        return {c: v for c, v in data.items() if columns is None or c in columns}

    def get_many(self, table, rows, columns=None):
        """Like HBaseStore.get_many: the rows that exist, by key."""
        return {r: d for r in rows if (d := self.get(table, r, columns))}

    def scan(self, table, row_prefix=None, row_start=None, row_stop=None, columns=None,
             limit=None, batch_size=1000):
        with self.lock:
            rows = sorted(self._t(table).items())
        out = []
        for key, data in rows:
            if row_prefix is not None and not key.startswith(row_prefix):
                continue
            if row_start is not None and key < row_start:
                continue
            if row_stop is not None and key >= row_stop:
                continue
            out.append((key, dict(data)))
            if limit and len(out) >= limit:
                break
        return out

    def delete(self, table, row, columns=None):
        with self.lock:
            if columns is None:
                self._t(table).pop(row, None)
            else:
                for c in columns:
                    self._t(table).get(row, {}).pop(c, None)

    def counter_inc(self, table, row, column, value=1, once=False):
        """Like HBase: a counter is an 8-byte big-endian signed cell."""
        with self.lock:
            cells = self._t(table).setdefault(row, {})
            new = int.from_bytes(cells.get(column, bytes(8)), "big", signed=True) + value
            cells[column] = new.to_bytes(8, "big", signed=True)
            return new

    def tables_list(self):
        return list(self.tables)
