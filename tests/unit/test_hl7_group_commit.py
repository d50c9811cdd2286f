"""Group commit in VisitStore: concurrent requests share commits, each gets its own answer."""
import threading
import time

from hl7_gateway.hospital.samples import sample_visit
from hl7_gateway.store import StoreReport, VisitStore
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.settings import Settings


class RecordingStore(VisitStore):
    """The commit machinery with the cluster writes replaced by a slow recorder."""

    def __init__(self, fail: bool = False):
        super().__init__(Settings())
        self.groups, self.fail = [], fail

    def _write(self, group):
        time.sleep(0.05)
        if self.fail:
            raise StorageError("HDFS write failed")
        self.groups.append([r.request_id for r in group])
        return [StoreReport(len(r.visits), None, []) for r in group]


def _send_all(store, count):
    results = {}

    def send(i):
        try:
            results[i] = store.store([sample_visit(visit_id=f"v{i}")] * (i % 3 + 1), f"r{i}")
        except StorageError as exc:
            results[i] = exc
    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_requests_are_grouped_and_each_answered():
    store = RecordingStore()
    results = _send_all(store, 20)
    assert {i: r.visits for i, r in results.items()} == {i: i % 3 + 1 for i in range(20)}
    committed = [rid for group in store.groups for rid in group]
    assert sorted(committed) == sorted(f"r{i}" for i in range(20))  # each exactly once
    assert len(store.groups) < 20  # some requests shared a commit


def test_a_failed_commit_fails_every_request_in_it():
    results = _send_all(RecordingStore(fail=True), 6)
    assert all(isinstance(r, StorageError) for r in results.values()) and len(results) == 6


def test_empty_request_stores_nothing():
    store = RecordingStore()
    assert store.store([]).visits == 0 and store.groups == []

