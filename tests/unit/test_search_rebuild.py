"""Swapping a rebuilt case index in: the running indexer lets go, the new directory is caught up
with the feed and replaces the live one, readers reopen it (new epoch), indexing resumes."""
from __future__ import annotations

import time

from hl7_gateway.hospital.samples import sample_visits
from hl7_gateway.store_rows import feed_row, search_document
from pacs_hdfs.settings import Settings
from portal.search import rebuild
from portal.search.mapped import MappedIndex
from portal.search.query import CaseQuery, resolve
from portal.search.service import SharedSearch
from tests.memory_store import MemoryStore


class FolderHdfs:
    """The two calls ``read_documents`` makes, over a dict of files."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files

    def list(self, directory: str) -> list[str]:
        return [p.rsplit("/", 1)[1] for p in self.files if p.startswith(directory + "/")]

    def read(self, path: str) -> bytes:
        return self.files[path]


def test_documents_are_read_in_batches():
    import json
    docs = [search_document(v) for v in sample_visits(7, seed=2)]
    for d in docs[:3]:
        d.pop("x9")                                   # Spark's JSON writer omits empty lists
    files = {"out/_SUCCESS": b"", "out/part-0.json": "\n".join(map(json.dumps, docs[:4])).encode(),
             "out/part-1.json": "\n".join(map(json.dumps, docs[4:])).encode()}
    batches = list(rebuild.read_documents(FolderHdfs(files), "out", 5, batch=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert all(r == 5 and "x9" in d for b in batches for r, d in b)


def test_a_rebuilt_index_is_swapped_in_while_portals_run(tmp_path):
    store = MemoryStore()
    visits = sample_visits(40, seed=8)
    store.put_many("search", [feed_row(v, 1_700_000_000_000 + i) for i, v in enumerate(visits[:30])])
    live_dir = tmp_path / "index"
    portal = SharedSearch(Settings(), hbase=store, directory=live_dir, poll_s=0.05).start()
    try:
        assert portal.ready.wait(10)
        deadline = time.monotonic() + 5
        while portal.index.size < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        old_epoch = portal.index.epoch
        # the rebuild saw 30 visits in Parquet; 5 more arrive through the feed meanwhile
        fresh = rebuild.build(tmp_path / "index.rebuild",
                              [[(1_700_000_000_000, search_document(v)) for v in visits[:30]]])
        store.put_many("search", [feed_row(v, 1_700_000_000_500 + i)
                                  for i, v in enumerate(visits[30:35])])
        swapped = rebuild.swap(live_dir, fresh, store, wait_s=10)
        assert swapped["tail_visits"] >= 5
        assert not (tmp_path / "index.rebuild").exists()
        assert MappedIndex(live_dir).size == 35
        reader = portal.index
        assert reader.epoch != old_epoch and reader.size == 35
        store.put_many("search", [feed_row(v, 1_700_000_001_000 + i)
                                  for i, v in enumerate(visits[35:])])
        deadline = time.monotonic() + 15              # the portal indexes the new one again
        while portal.index.size < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert portal.index.size == 40 and portal.status()["role"] == "indexer"
        q = CaseQuery(sex=visits[39].sex, date_from=visits[39].admission.date(),
                      date_to=visits[39].admission.date())
        page = portal.index.search(resolve(q, portal.index), per_page=100)
        assert visits[39].patient_id in {c.patient for c in page.cases}
    finally:
        portal.stop()
