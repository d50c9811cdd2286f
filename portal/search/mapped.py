"""The shared case index (issue 20): today's ``CaseIndex`` segments as files on local disk,
memory-mapped by every portal process (one copy in the page cache, none in the processes),
written by ONE indexer.

Chosen over Tantivy and DuckDB after measuring them side by side (benchmarks/portal/RESULTS.md):
they answer the same questions, but case grouping costs them 8-30x more, because the numpy
columns group a million matching visits by patient in one ``bincount``.

Directory layout (``manifest.json`` is the commit point; everything it names is complete):

| file | holds | written |
|---|---|---|
| `manifest.json` | segment names, vocabulary and patient counts, the patient file, feed position | replaced atomically at every commit |
| `seg-N/*.npy` | one immutable segment: visit ids and their sort order, scalar columns, postings, forward lists | once; deleted after a merge replaced it |
| `seg-N/alive.npy` | the segment's tombstones | in place (shared mapping) when a visit is re-sent |
| `vocab-FIELD.jsonl`, `patients.jsonl` | terms and pseudonyms, one JSON string per line, line number = id | appended |
| `patients-G.npy` | per patient: live visits, latest admission day, age at it | a new file per commit |
| `icd9_display.json` | ICD-9 code -> description | replaced when a code is new |
| `writer.lock` | ``flock``-ed by the indexer | - |

A reader that opens a manifest keeps working on the files it mapped even after a merge deletes
them (Linux keeps unlinked mapped files until unmapped).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from portal.search.index import CaseIndex, Patients, Vocab
from portal.search.segment import FORWARD, MULTI, SCALARS, Forward, Postings, Segment

MANIFEST, LOCK = "manifest.json", "writer.lock"
PATIENT_ROW = np.dtype([("visits", "<i4"), ("latest", "<i4"), ("age", "<i2")])


class IndexBusy(RuntimeError):
    """Another indexer holds the writer lock."""


def _arrays(seg: Segment) -> dict[str, np.ndarray]:
    out = {"visit_ids": seg.visit_ids, "order": seg._order, "alive": seg.alive,
           **{f"col_{k}": v for k, v in seg.cols.items()}}
    for f in MULTI:
        p = seg.postings[f]
        out |= {f"post_{f}_terms": p.terms, f"post_{f}_starts": p.starts, f"post_{f}_rows": p.rows}
    for f in FORWARD:
        out |= {f"fwd_{f}_starts": seg.forward[f].starts, f"fwd_{f}_terms": seg.forward[f].terms}
    return out


def save_segment(seg: Segment, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, array in _arrays(seg).items():
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(array))
    os.replace(tmp, path)


def _map(path: Path, mode: str = "r") -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mode)
    except ValueError:                      # an empty array cannot be mapped
        return np.load(path)


def load_segment(path: Path, writable: bool = False) -> Segment:
    """A segment whose arrays are mappings of its files (``alive`` writable for the indexer)."""
    a = {p.stem: p for p in path.glob("*.npy")}
    seg = Segment.__new__(Segment)           # no __post_init__: the sort order is on disk
    seg.visit_ids = _map(a["visit_ids"])
    seg.cols = {k: _map(a[f"col_{k}"]) for k in SCALARS}
    seg.postings = {f: Postings(_map(a[f"post_{f}_terms"]), _map(a[f"post_{f}_starts"]),
                                _map(a[f"post_{f}_rows"])) for f in MULTI}
    seg.forward = {f: Forward(_map(a[f"fwd_{f}_starts"]), _map(a[f"fwd_{f}_terms"]))
                   for f in FORWARD}
    seg.alive = _map(a["alive"], "r+" if writable else "r")
    seg._order = _map(a["order"])
    return seg


def _read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return None


class _Lines:
    """An append-only file of JSON strings, read incrementally."""

    def __init__(self, path: Path):
        self.path, self.offset, self.count = path, 0, 0

    def read_upto(self, count: int) -> list[str]:
        if count <= self.count:
            return []
        out = []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            while self.count < count:
                line = f.readline()
                if not line.endswith(b"\n"):
                    raise OSError(f"{self.path} is shorter than its manifest says")
                out.append(json.loads(line))
                self.offset += len(line)
                self.count += 1
        return out

    def append(self, terms: list[str]) -> None:
        if terms:
            with self.path.open("ab") as f:
                f.write(b"".join(json.dumps(t).encode() + b"\n" for t in terms))
            self.count += len(terms)


class MappedIndexer:
    """The one writer: a ``CaseIndex`` whose segments live on disk; ``apply`` indexes feed
    documents exactly as ``CaseIndex.apply`` does and then commits. Raises ``IndexBusy`` when
    another indexer runs."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.dir / LOCK).open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise IndexBusy(f"another indexer holds {self.dir / LOCK}") from None
        self.ix = CaseIndex()
        self.lines = {f: _Lines(self.dir / f"vocab-{f}.jsonl") for f in self.ix.vocab}
        self.names = _Lines(self.dir / "patients.jsonl")
        self.on_disk: dict[int, str] = {}
        m = _read_manifest(self.dir) or {"segments": [], "vocab": {}, "patients": 0,
                                         "patient_file": None, "position": 0, "generation": 0,
                                         "epoch": os.urandom(8).hex()}
        self.generation = m["generation"]
        self.epoch = m.get("epoch") or "first"      # manifests written before epochs existed
        for f, lines in self.lines.items():
            self.ix.vocab[f] = Vocab(lines.read_upto(m["vocab"].get(f, 0)))
        self.ix.patients.ids(self.names.read_upto(m["patients"]))
        if m["patient_file"]:
            rows = np.load(self.dir / m["patient_file"])
            n = len(rows)
            p = self.ix.patients
            p.visits[:n], p.latest[:n], p.age[:n] = rows["visits"], rows["latest"], rows["age"]
        for name in m["segments"]:
            seg = load_segment(self.dir / name, writable=True)
            self.ix.segments.append(seg)
            self.on_disk[id(seg)] = name
        display = self.dir / "icd9_display.json"
        self.ix.icd9_display = json.loads(display.read_text()) if display.exists() else {}
        self._displays = len(self.ix.icd9_display)
        self.ix.position = m["position"]
        self._clean(m)

    @property
    def position(self) -> int:
        return self.ix.position

    def close(self) -> None:
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def apply(self, docs: list[tuple[int, dict]]) -> int:
        """Index (received_ms, document) pairs and commit; returns how many visits changed."""
        changed = self.ix.apply(docs)
        if changed:
            self.commit()
        return changed

    def commit(self) -> None:
        ix = self.ix
        with ix.lock:
            segments = []
            for seg in ix.segments:
                if id(seg) not in self.on_disk:
                    self.generation += 1
                    name = f"seg-{self.generation:08d}"
                    save_segment(seg, self.dir / name)
                    seg = load_segment(self.dir / name, writable=True)
                    self.on_disk[id(seg)] = name
                segments.append(seg)
            ix.segments = segments
            for f, lines in self.lines.items():
                lines.append(ix.vocab[f].terms[lines.count:])
            n = len(ix.patients.vocab)
            self.names.append(ix.patients.vocab.terms[self.names.count:n])
            rows = np.zeros(n, PATIENT_ROW)
            rows["visits"], rows["latest"], rows["age"] = (
                ix.patients.visits[:n], ix.patients.latest[:n], ix.patients.age[:n])
            self.generation += 1
            patient_file = f"patients-{self.generation:08d}.npy"
            np.save(self.dir / patient_file, rows)
            if len(ix.icd9_display) != self._displays:
                _write_atomic(self.dir / "icd9_display.json", json.dumps(ix.icd9_display))
                self._displays = len(ix.icd9_display)
            for seg in segments:
                if isinstance(seg.alive, np.memmap):
                    seg.alive.flush()
            m = {"segments": [self.on_disk[id(s)] for s in segments],
                 "vocab": {f: lines.count for f, lines in self.lines.items()}, "patients": n,
                 "patient_file": patient_file, "position": ix.position,
                 "generation": self.generation, "epoch": self.epoch}
            _write_atomic(self.dir / MANIFEST, json.dumps(m))
            self.on_disk = {id(s): self.on_disk[id(s)] for s in segments}
        self._clean(m)

    def _clean(self, m: dict) -> None:
        """Delete segments and patient files the manifest no longer names."""
        keep = set(m["segments"]) | {m["patient_file"]}
        for path in self.dir.iterdir():
            if (path.name.startswith(("seg-", "patients-")) and path.name not in keep
                    and not path.name.endswith(".jsonl")):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _MappedPatients(Patients):
    """Patients of a reader: pseudonyms in memory, aggregates mapped from the patient file;
    the name ranking is updated by merging new pseudonyms instead of sorting them all."""

    def __init__(self):
        super().__init__()
        self._sorted = np.zeros(0, dtype=object)      # pseudonyms in name order
        self._order = np.zeros(0, np.int64)           # ... and their ids
        self._rank_lock = threading.Lock()

    def name_rank(self) -> np.ndarray:
        with self._rank_lock:
            n = len(self.vocab)
            done = self._rank[0] if self._rank is not None else 0
            if self._rank is not None and done == n:
                return self._rank[1]
            fresh_names = np.empty(n - done, dtype=object)
            fresh_names[:] = self.vocab.terms[done:n]
            by_name = np.argsort(fresh_names, kind="stable")
            at = np.searchsorted(self._sorted, fresh_names[by_name], side="right")
            self._sorted = np.insert(self._sorted, at, fresh_names[by_name])
            self._order = np.insert(self._order, at, np.arange(done, n)[by_name])
            rank = np.empty(n, np.int64)
            rank[self._order] = np.arange(n)
            self._rank = (n, rank)
            return rank


class MappedIndex(CaseIndex):
    """A read-only ``CaseIndex`` over the shared directory; ``refresh`` follows the indexer's
    commits. ``search`` and the query code are ``CaseIndex``'s, unchanged."""

    def __init__(self, directory: Path):
        super().__init__()
        self.dir = Path(directory)
        self.patients = _MappedPatients()
        self.lines = {f: _Lines(self.dir / f"vocab-{f}.jsonl") for f in self.vocab}
        self.names = _Lines(self.dir / "patients.jsonl")
        self._loaded: dict[str, Segment] = {}
        self._stamp = None
        self._refresh_lock = threading.Lock()
        self.epoch = None
        self.stale = False            # the directory now holds another index (a rebuild)
        self.refresh()

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return (Path(directory) / MANIFEST).exists()

    @property
    def patient_count(self) -> int:
        return len(self.patients.vocab)

    def apply(self, docs) -> int:
        raise TypeError("a MappedIndex is read-only; the indexer writes")

    def refresh(self) -> bool:
        """Follow a new commit, if any (one ``stat`` when there is none)."""
        try:
            st = (self.dir / MANIFEST).stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        with self._refresh_lock:
            if stamp == self._stamp:
                return False
            m = _read_manifest(self.dir)
            if m is None:
                return False
            epoch = m.get("epoch") or "first"
            if self.epoch is None:
                self.epoch = epoch
            elif epoch != self.epoch:
                self.stale = True        # ids of another index: the owner opens a new reader
                return False
            for f, lines in self.lines.items():       # append-only: ids already resolved by
                for term in lines.read_upto(m["vocab"].get(f, 0)):   # a request stay valid
                    self.vocab[f].id(term)
            for name in self.names.read_upto(m["patients"]):
                self.patients.vocab.id(name)
            rows = _map(self.dir / m["patient_file"]) if m["patient_file"] else \
                np.zeros(0, PATIENT_ROW)
            display = self.dir / "icd9_display.json"
            if display.exists():
                self.icd9_display = json.loads(display.read_text())
            loaded = {name: self._loaded.get(name) or load_segment(self.dir / name)
                      for name in m["segments"]}
            # patients first: every segment published with this manifest refers only to them
            p = self.patients
            p.visits, p.latest, p.age = rows["visits"], rows["latest"], rows["age"]
            self.segments = list(loaded.values())
            self._loaded = loaded
            self.position = m["position"]
            self._stamp = stamp
        return True
