"""Group commit of de-identified DICOM objects into the archive: few HDFS files, few HBase batches.

Every path that stores an object in the data center ends here (the DIMSE C-STORE of `pacs scp`,
STOW-RS, a reconstructed series). Objects that arrive while a commit is in flight are gathered
into the next one; each caller is answered only after the commit that carried its object is
durable. One commit:

1. looks up all its SOP Instance UIDs in one `sop` batch: a re-sent object with the same sha256
   is a duplicate (success, no second copy), with other bytes a conflict (0xC001, first kept);
2. writes one new, verified, immutable batch file per series (`containers.ContainerWriter.write`,
   series in parallel): the bytes are durable and checked before any index row points at them;
3. writes the HBase rows, one batch per table, in an order that keeps every state consistent:
   `instance` rows (location + attributes) and `quarantine` rows; then the `series` / `study` /
   `subject` / `search` rows that make objects visible to Q/R (idempotent, re-put for
   duplicates so a half-finished earlier commit is completed); then the `sop` rows, the commit
   markers of the duplicate check;
4. adds the per-series/study counters and marks the instance rows `l:counted`, then answers
   every object. A counter failure fails the request although its objects are durable (a
   failure status is allowed for a stored object, never success for a lost one): the sender
   re-sends, and the duplicate, found uncounted, is counted then. `pacs fsck` recounts.

A failure in 2 or 3 answers 0xA700 for the objects concerned; bytes already written are then
unreferenced (an orphan batch file) and are reclaimed by `pacs fsck --repair`.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pacs_hdfs.containers import ContainerWriter, Location
from pacs_hdfs.dicom import index_rows as ix
from pacs_hdfs.hdfs_store import StorageError
from pacs_hdfs.rows import instance, quarantine, series, sop, study

log = logging.getLogger(__name__)

CONTAINER_ROOT = "dicom/containers"
#: instance-row mark: this object is in its series/study counters
COUNTED = instance.COUNTED

#: outcome -> (DICOM status, what the sender is told)
STATUS = {
    "stored": (0x0000, ""),
    "duplicate": (0x0000, ""),
    "storage_unavailable": (0xA700, "Out of resources: storage unavailable, retry later"),
    "malformed": (0xC000, "Cannot understand: dataset could not be parsed"),
    "conflict": (0xC001, "SOP Instance UID already stored with different content; kept first"),
    "cannot_process": (0xC002, "Cannot process"),
    "invalid": (0xA900, "Data Set does not match SOP Class"),
}


@dataclass(frozen=True)
class Outcome:
    kind: str
    sop_uid: str = ""          # de-identified UID (safe to log)
    quarantine: str | None = None
    #: a refusal's or warning's own status and comment (validation), else from STATUS
    code: int | None = None
    detail: str = ""

    @property
    def status(self) -> int:
        return self.code if self.code is not None else STATUS[self.kind][0]

    @property
    def comment(self) -> str:
        return self.detail or STATUS[self.kind][1]

    @property
    def acknowledged(self) -> bool:
        """Stored durably (success or warning status)."""
        return self.kind in ("stored", "duplicate")


@dataclass(frozen=True)
class Prepared:
    """A de-identified object ready to store: its file bytes and its indexed attributes."""
    data: bytes
    attrs: dict[str, str]          # every level's keys + TransferSyntaxUID
    quarantine: str | None = None
    sha256: str = field(default="", compare=False)
    source: str = ""               # the edge that sent it (STOW-RS), recorded as l:edge

    def __post_init__(self):
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def sop(self) -> str:
        return self.attrs["SOPInstanceUID"]

    @property
    def key(self) -> bytes:
        return ix.instance_key(self.attrs["StudyInstanceUID"], self.attrs["SeriesInstanceUID"],
                               self.sop)

    @property
    def directory(self) -> str:
        return container_dir(self.attrs["StudyInstanceUID"], self.attrs["SeriesInstanceUID"])


def container_dir(study: str, series: str) -> str:
    return f"{CONTAINER_ROOT}/{study}/{series}"


@dataclass
class _Item:
    obj: Prepared
    future: Future = field(default_factory=Future)
    outcome: Outcome | None = None  # decided before the commit's writes (duplicates)


class Committer:
    """Thread-safe; one per process. `parallel` commits may overlap (one's HDFS write with
    another's HBase batches); an object whose SOP UID is in flight waits for the next commit."""

    def __init__(self, hbase, writer: ContainerWriter, max_objects: int = 512,
                 max_bytes: int = 128 << 20, parallel: int = 2):
        self.hbase = hbase
        self.writer = writer
        self.max_objects, self.max_bytes, self.parallel = max_objects, max_bytes, parallel
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._in_flight: set[str] = set()
        self._active = 0
        self._io = ThreadPoolExecutor(16, thread_name_prefix="commit-io")
        self._published: OrderedDict[tuple, None] = OrderedDict()  # parent rows already put
        self._published_lock = threading.Lock()

    # --- callers -----------------------------------------------------------------------------
    def store(self, obj: Prepared) -> Outcome:
        return self.store_many([obj])[0]

    def store_many(self, objs: list[Prepared]) -> list[Outcome]:
        """Store these objects (in as few commits as the limits allow); one Outcome each."""
        mine = [_Item(o) for o in objs]
        with self._cond:
            self._queue.extend(mine)
            while not all(i.future.done() for i in mine):
                batch = self._take() if self._active < self.parallel else []
                if not batch:
                    self._cond.wait()
                    continue
                self._active += 1
                self._cond.release()
                try:
                    self._commit(batch)
                finally:
                    self._cond.acquire()
                    self._active -= 1
                    self._in_flight.difference_update(i.obj.sop for i in batch)
                    self._cond.notify_all()
        return [i.future.result() for i in mine]

    def _take(self) -> list[_Item]:
        """The next batch from the queue (caller holds the lock): oldest first, at most one
        item per SOP UID, none whose SOP UID another commit is writing."""
        batch, size, sops, rest = [], 0, set(), []
        for item in self._queue:
            sop = item.obj.sop
            fits = len(batch) < self.max_objects and (not batch or size + len(item.obj.data)
                                                      <= self.max_bytes)
            if fits and sop not in self._in_flight and sop not in sops:
                batch.append(item)
                sops.add(sop)
                size += len(item.obj.data)
            else:
                rest.append(item)
        self._queue = rest
        self._in_flight |= sops
        return batch

    # --- one commit --------------------------------------------------------------------------
    def _commit(self, batch: list[_Item]) -> None:
        try:
            self._write(batch)
        except Exception as e:  # noqa: BLE001 - every waiter must get an answer
            log.error("commit of %d object(s) failed: %s", len(batch), e)
            for item in batch:
                if not item.future.done():
                    item.future.set_result(Outcome("storage_unavailable", item.obj.sop))

    def _write(self, batch: list[_Item]) -> None:
        known = self._known([i.obj.sop for i in batch])
        new, publish, uncounted = [], [], []
        for item in batch:
            sha, quarantined, counted = known.get(item.obj.sop, (None, False, False))
            if sha is None:
                new.append(item)
            elif sha == item.obj.sha256:
                item.outcome = Outcome("duplicate", item.obj.sop, item.obj.quarantine)
                if not quarantined:
                    publish.append(item)
                    if not counted:  # an earlier commit stopped before its counters
                        uncounted.append(item)
            else:
                log.warning("store refused for %s: re-sent with different content", item.obj.sop)
                item.future.set_result(Outcome("conflict", item.obj.sop))
        written = self._write_files(new)
        stored = [i for i in new if i.obj.sop in written]
        instance_rows = [(i.obj.key, instance_row(i.obj, written[i.obj.sop])) for i in stored]
        held = [i for i in stored if i.obj.quarantine]
        visible = [i for i in stored if not i.obj.quarantine] + publish
        calls = [lambda: self.hbase.put_many("instance", instance_rows)] if stored else []
        if held:
            calls.append(lambda: self.hbase.put_many("quarantine",
                                                     [quarantine_row(i.obj) for i in held]))
        self._together(calls)
        self._publish([i.obj for i in visible])
        if stored:
            self.hbase.put_many("sop", [(sop.key(i.obj.sop), sop.encode(i.obj.key))
                                        for i in stored])
        # before answering: a sender that queries right after its store sees counts that
        # include its objects; a failure here fails the request, and the re-send counts them
        self._count([i.obj for i in stored if not i.obj.quarantine] + [i.obj for i in uncounted])
        for item in stored:
            item.future.set_result(Outcome("stored", item.obj.sop, item.obj.quarantine))
        for item in batch:
            if item.outcome is not None and not item.future.done():
                item.future.set_result(item.outcome)

    def _known(self, sops: list[str]) -> dict[str, tuple[str, bool, bool]]:
        """sop -> (stored sha256, quarantined, counted) for the SOP UIDs already committed."""
        refs = self.hbase.get_many("sop", [sop.key(s) for s in sops])
        if not refs:
            return {}
        rows = self.hbase.get_many("instance", [sop.decode(r) for r in refs.values()],
                                   columns=[instance.SHA256, instance.QUARANTINE, COUNTED])
        out = {}
        for sop_key, ref in refs.items():
            row = rows.get(sop.decode(ref))
            if row and instance.SHA256 in row:
                out[sop_key.decode()] = (row[instance.SHA256].decode(),
                                         instance.is_quarantined(row), instance.is_counted(row))
        return out

    def _write_files(self, items: list[_Item]) -> dict[str, Location]:
        """One verified batch file per series, series in parallel: sop -> Location. Objects of
        a series whose file could not be written are answered 0xA700 here."""
        by_dir: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            by_dir[item.obj.directory].append(item)
        futures = {d: self._io.submit(self.writer.write, d,
                                      [(i.obj.key.decode(), i.obj.data) for i in group])
                   for d, group in by_dir.items()}
        out = {}
        for directory, future in futures.items():
            try:
                for item, loc in zip(by_dir[directory], future.result()):
                    out[item.obj.sop] = loc
            except StorageError as e:
                log.error("store failed for %d object(s) of %s: %s", len(by_dir[directory]),
                          directory, e)
                for item in by_dir[directory]:
                    item.future.set_result(Outcome("storage_unavailable", item.obj.sop))
        return out

    def _publish(self, objs: list[Prepared]) -> None:
        """Series/study/subject/search rows of these objects, one batch per table, skipping
        rows this process has already written with the same content."""
        tables: dict[str, dict[bytes, dict]] = defaultdict(dict)
        marks = []
        for obj in objs:
            for table, (key, cols) in ix.parent_rows(obj.attrs).items():
                mark = (table, key, hash(frozenset(cols.items())))
                with self._published_lock:
                    if mark in self._published:
                        continue
                tables[table].setdefault(key, {}).update(cols)
                marks.append(mark)
        self._together([lambda t=t, rows=rows: self.hbase.put_many(t, rows.items())
                        for t, rows in tables.items()])
        with self._published_lock:
            for mark in marks:
                self._published[mark] = None
            while len(self._published) > 100_000:
                self._published.popitem(last=False)

    def _count(self, objs: list[Prepared]) -> None:
        """Add the committed objects to the series/study counters, then mark their instance
        rows counted (`l:counted`). Raises StorageError: the request then fails and its re-send
        (a duplicate without the mark) counts the objects; a crash between the increments and
        the mark can over-count, which `pacs fsck --repair` recounts."""
        if not objs:
            return
        add_counters(self.hbase, [(o.attrs, len(o.data)) for o in objs])
        self.hbase.put_many("instance", [(o.key, instance.counted_mark()) for o in objs])

    def _together(self, calls: list) -> None:
        """Run independent HBase writes concurrently; raise the first failure."""
        for future in [self._io.submit(c) for c in calls]:
            future.result()


def instance_row(obj: Prepared, loc: Location) -> dict[bytes, bytes]:
    return instance.encode(instance.Instance(loc, obj.attrs.get("TransferSyntaxUID", ""),
                                             obj.quarantine, obj.source), obj.attrs)


def quarantine_row(obj: Prepared) -> tuple[bytes, dict[bytes, bytes]]:
    return quarantine.key(obj.sop), quarantine.encode(
        quarantine.Held(obj.quarantine, obj.key, int(time.time())))


def add_counters(hbase, objects: list[tuple[dict[str, str], int]]) -> None:
    """Add (attrs, length) objects to their series and study counters, one increment per
    series/study and column; a series seen for the first time adds one to its study's series
    count."""
    series_n, series_b = defaultdict(int), defaultdict(int)
    for attrs, length in objects:
        key = (attrs["StudyInstanceUID"], attrs["SeriesInstanceUID"])
        series_n[key] += 1
        series_b[key] += length
    study_n, study_b, study_s = defaultdict(int), defaultdict(int), defaultdict(int)
    for (st, se), n in series_n.items():
        if hbase.counter_inc("series", series.key(st, se), series.INSTANCES, n,
                             once=True) == n:
            study_s[st] += 1
        hbase.counter_inc("series", series.key(st, se), series.BYTES, series_b[(st, se)],
                          once=True)
        study_n[st] += n
        study_b[st] += series_b[(st, se)]
    for st in study_n:
        hbase.counter_inc("study", study.key(st), study.INSTANCES, study_n[st], once=True)
        hbase.counter_inc("study", study.key(st), study.BYTES, study_b[st], once=True)
        if study_s[st]:
            hbase.counter_inc("study", study.key(st), study.SERIES, study_s[st], once=True)
