"""The Tantivy candidate for the shared case index (issue 20), measured side by side in
``bench_engines.py`` and not chosen (RESULTS.md): a Tantivy index on local disk, written by ONE
indexer and read by every process through memory-mapped segments. Kept so the comparison can be
rerun; the product uses ``portal.search.mapped``.

Layout of the index directory:

| file | holds | written |
|---|---|---|
| Tantivy files (`meta.json`, segments) | one document per visit (latest version), see ``schema`` | by `Indexer.commit` |
| `patients.bin` | per patient (dense id = order of first sight): pseudonym, live visits, latest admission day, age at it | in place, before each commit; a larger copy renamed over it when full |
| `patients.count` | how many rows of `patients.bin` are valid | after the rows |
| `icd9_display.json` | ICD-9 code -> description (for description search) | when a new code arrives |

Tantivy's writer lock (`.tantivy-writer.lock`) makes sure only one indexer runs; readers open
the index read-only and never block it. Semantics are the ``CaseIndex``'s: a case is a patient;
it matches when one visit meets every criterion; cases sort by the patient's latest visit, age
at it, matching visits or pseudonym, ties by pseudonym.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import tantivy

from portal.search import text
from portal.search.index import SEXES, CaseSummary, Criteria, Page, Vocab, newest_versions

NAME_BYTES = 40
PATIENT = np.dtype([("name", f"S{NAME_BYTES}"), ("visits", "<i4"), ("latest", "<i4"),
                    ("age", "<i2")])
FIELDS = {"icd10": "x10", "icd9": "x9", "word": "words", "kind": "k"}   # CaseIndex's -> ours
WRITER_HEAP = 64_000_000
GROUP = 60_000            # patients per aggregation (Tantivy's limit is 65,000 buckets)


class IndexBusy(RuntimeError):
    """Another indexer holds the writer lock."""


def schema():
    b = tantivy.SchemaBuilder()
    b.add_text_field("v", tokenizer_name="raw", stored=True)
    for name in ("p", "a", "day", "received"):
        b.add_integer_field(name, stored=True, indexed=True, fast=True)
    for name in ("s", "city", "x10", "x9", "words", "k"):
        b.add_text_field(name, tokenizer_name="raw", stored=name not in ("words", "k"))
    return b.build()


def fields(doc: dict) -> dict:
    """A feed document as indexed field values (tokenised as ``portal.search.text`` does)."""
    return {"v": doc["v"], "s": doc["s"] if doc["s"] in SEXES else "UN", "a": int(doc["a"]),
            "day": text.day_number(doc["d"]), "city": doc.get("c") or "",
            "x10": [c.upper() for c in doc.get("x10", ())],
            "x9": [c for c, _ in doc.get("x9", ())],
            "words": text.words(doc.get("t", "")), "k": list(doc.get("k", ()))}


class PatientTable:
    """``patients.bin`` + ``patients.count``: fixed-size rows, appended by the indexer only."""

    def __init__(self, directory: Path):
        self.path, self.count_path = directory / "patients.bin", directory / "patients.count"
        self.rows: np.ndarray = np.zeros(0, PATIENT)
        self.count = 0
        self._inode = None

    # --- reader side ---
    def refresh(self) -> int:
        """Re-read the valid count (and re-map the file if the indexer replaced it)."""
        try:
            count = int(self.count_path.read_text() or 0)
            inode = self.path.stat().st_ino
        except (FileNotFoundError, ValueError):
            return self.count
        if inode != self._inode or count > len(self.rows):
            self.rows = np.memmap(self.path, PATIENT, mode="r")
            self._inode = inode
        self.count = min(count, len(self.rows))
        return self.count

    # --- writer side ---
    def open_for_writing(self) -> dict[bytes, int]:
        if not self.path.exists():
            self._grow(1024)
            self.count_path.write_text("0")
        self.rows = np.memmap(self.path, PATIENT, mode="r+")
        self.count = int(self.count_path.read_text() or 0)
        return {bytes(n): i for i, n in enumerate(self.rows["name"][:self.count])}

    def _grow(self, capacity: int) -> None:
        bigger = np.zeros(capacity, PATIENT)
        bigger[:self.count] = self.rows[:self.count]
        tmp = self.path.with_suffix(".tmp")
        bigger.tofile(tmp)
        os.replace(tmp, self.path)
        self.rows = np.memmap(self.path, PATIENT, mode="r+")

    def add(self, names: list[bytes]) -> None:
        if self.count + len(names) > len(self.rows):
            self._grow(max(2 * len(self.rows), self.count + len(names)))
        rows = self.rows[self.count:self.count + len(names)]
        rows["name"], rows["visits"], rows["latest"], rows["age"] = names, 0, -1, 0
        self.count += len(names)

    def publish(self) -> None:
        self.rows.flush()
        tmp = self.count_path.with_suffix(".tmp")
        tmp.write_text(str(self.count))
        os.replace(tmp, self.count_path)


class Indexer:
    """The one writer: applies feed documents (idempotently, newest version wins, like
    ``CaseIndex.apply``) and commits. Raises ``IndexBusy`` when another indexer runs."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index = tantivy.Index(schema(), path=str(self.dir))
        try:
            self.writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
        except ValueError as exc:
            raise IndexBusy(f"another indexer holds {self.dir}: {exc}") from None
        self.patients = PatientTable(self.dir)
        self.ids = self.patients.open_for_writing()
        display = self.dir / "icd9_display.json"
        self.icd9_display = json.loads(display.read_text()) if display.exists() else {}
        self.index.reload()
        self.position = self._max_received()

    def _max_received(self) -> int:
        s = self.index.searcher()
        if not s.num_docs:
            return 0
        got = s.aggregate(tantivy.Query.all_query(), {"m": {"max": {"field": "received"}}})
        return int(got["m"]["value"] or 0)

    def close(self) -> None:
        """Release the writer lock (waits for merges)."""
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.wait_merging_threads()

    def apply(self, docs: list[tuple[int, dict]]) -> int:
        """Index (received_ms, document) pairs and commit; returns how many visits changed."""
        if not docs:
            return 0
        latest = newest_versions(docs)
        old = self._indexed(list(latest))
        new_names: list[bytes] = []
        changed, display_grew = 0, False
        plus: list[tuple[int, int, int]] = []
        minus: list[int] = []
        for v, (received, doc) in latest.items():
            before = old.get(v)
            if before is not None and received <= before[0]:
                continue                       # this version (or a newer one) is indexed
            name = doc["p"].encode()
            if len(name) > NAME_BYTES:
                raise ValueError(f"pseudonym longer than {NAME_BYTES} bytes")
            pid = self.ids.get(name)
            if pid is None:
                pid = self.ids[name] = self.patients.count + len(new_names)
                new_names.append(name)
            if before is not None:
                self.writer.delete_documents_by_term("v", v)
                minus.append(before[1])
            f = fields(doc)
            self.writer.add_document(tantivy.Document(p=pid, received=received, **f))
            plus.append((pid, f["day"], f["a"]))
            for code, shown in doc.get("x9", ()):
                if code not in self.icd9_display:
                    self.icd9_display[code], display_grew = shown, True
            changed += 1
        self.position = max(self.position, max(r for r, _ in latest.values()))
        if not changed:
            return 0
        if new_names:
            self.patients.add(new_names)
        self._aggregate(plus, minus)
        if display_grew:
            tmp = self.dir / "icd9_display.tmp"
            tmp.write_text(json.dumps(self.icd9_display))
            os.replace(tmp, self.dir / "icd9_display.json")
        self.patients.publish()                # before the commit: readers never see a visit
        self.writer.commit()                   # whose patient row is missing
        self.index.reload()
        return changed

    def _indexed(self, visit_ids: list[str]) -> dict[str, tuple[int, int]]:
        """visit id -> (received, patient id) of the versions indexed now."""
        s = self.index.searcher()
        if not s.num_docs:
            return {}
        hits = s.search(tantivy.Query.term_set_query(self.index.schema, "v", visit_ids),
                        limit=len(visit_ids) + 1).hits
        out = {}
        for _, addr in hits:
            d = s.doc(addr)
            out[d["v"][0]] = (d["received"][0], d["p"][0])
        return out

    def _aggregate(self, plus: list[tuple[int, int, int]], minus: list[int]) -> None:
        rows = self.patients.rows
        if minus:
            np.subtract.at(rows["visits"], np.array(minus, np.int64), 1)
        p, day, age = (np.array(x, np.int64) for x in zip(*plus))
        np.add.at(rows["visits"], p, 1)
        for i in np.argsort(day, kind="stable").tolist():   # the latest visit is assigned last
            if day[i] >= rows["latest"][p[i]]:
                rows["latest"][p[i]], rows["age"][p[i]] = day[i], age[i]


class Reader:
    """A read-only view for searching; ``refresh`` picks up the indexer's latest commit.

    Has what ``query.resolve`` reads (``vocab``, ``icd9_display``) and ``search`` with the
    ``CaseIndex.search`` signature, so the route and the query code are unchanged."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.index = tantivy.Index.open(str(self.dir))
        self.patients = PatientTable(self.dir)
        self.vocab = {f: Vocab() for f in (*FIELDS, "city")}
        self.icd9_display: dict[str, str] = {}
        self._meta = None
        self._lock = threading.Lock()
        self._rank = (0, np.zeros(0, np.int64), np.zeros(0, np.int64))  # count, order, rank
        self.size = 0
        self.refresh()

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return (Path(directory) / "meta.json").exists()

    @property
    def patient_count(self) -> int:
        return self.patients.count

    def refresh(self) -> bool:
        """Follow a new commit, if any (a ``stat`` when there is none)."""
        meta = self.dir / "meta.json"
        try:
            st = meta.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return False
        if stamp == self._meta:
            return False
        with self._lock:
            return self._reload(stamp)

    def _reload(self, stamp) -> bool:
        if stamp == self._meta:                 # another request thread did it meanwhile
            return False
        self.index.reload()
        self.patients.refresh()               # after the reload: covers every visible visit
        s = self.index.searcher()
        self.size = s.num_docs
        for f, name in (*FIELDS.items(), ("city", "city")):   # append-only: ids resolved
            vocab = self.vocab[f]                                # a moment ago stay valid
            for term in sorted(t for t, _ in s.terms_with_prefix(name, "")):
                vocab.id(term)
        display = self.dir / "icd9_display.json"
        if display.exists():
            self.icd9_display = json.loads(display.read_text())
        self._meta = stamp
        return True

    # --- querying ---
    def _query(self, c: Criteria):
        sch, Q = self.index.schema, tantivy.Query
        must = []
        if c.sex is not None:
            must.append(Q.term_query(sch, "s", SEXES[c.sex]))
        if c.age is not None:
            must.append(Q.range_query(sch, "a", tantivy.FieldType.Integer, *map(int, c.age)))
        if c.days is not None:
            must.append(Q.range_query(sch, "day", tantivy.FieldType.Integer, *map(int, c.days)))
        if c.city is not None:
            must.append(self._terms("city", [self.vocab["city"].terms[i] for i in c.city.tolist()]))
        for f, musts in c.terms.items():
            for ids in musts:
                must.append(self._terms(FIELDS[f], [self.vocab[f].terms[i] for i in ids.tolist()]))
        if not must:
            return Q.all_query()
        return Q.boolean_query([(tantivy.Occur.Must, m) for m in must])

    def _terms(self, field: str, values: list[str]):
        if not values:
            return tantivy.Query.empty_query()
        return tantivy.Query.term_set_query(self.index.schema, field, values)

    def _name_rank(self) -> np.ndarray:
        """Rank of each patient by pseudonym; new patients are merged into the cached order."""
        n = self.patients.count
        done, order, rank = self._rank
        if done == n:
            return rank
        names = self.patients.rows["name"][:n]
        fresh = np.arange(done, n)
        fresh = fresh[np.argsort(names[fresh], kind="stable")]
        at = np.searchsorted(names[order], names[fresh], side="right")
        order = np.insert(order, at, fresh)
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        self._rank = (n, order, rank)
        return rank

    def search(self, criteria: Criteria, sort: str = "latest", descending: bool = True,
               page: int = 1, per_page: int = 20) -> Page:
        t0 = time.perf_counter()
        s = self.index.searcher()
        query = self._query(criteria)
        hits, counts = self._group(s, query)
        rows, rank = self.patients.rows, self._name_rank()
        key = {"latest": lambda: rows["latest"][hits], "visits": lambda: counts,
               "age": lambda: rows["age"][hits], "patient": lambda: rank[hits]}[sort]()
        key = -key.astype(np.int64) if descending else key.astype(np.int64)
        order = np.lexsort((rank[hits], key))
        start = (page - 1) * per_page
        chosen = order[start:start + per_page]
        cases = self._summaries(s, query, hits[chosen], counts[chosen])
        return Page(int(len(hits)), cases, int(counts.sum()), (time.perf_counter() - t0) * 1000)

    def _group(self, s, query) -> tuple[np.ndarray, np.ndarray]:
        """Matching patients and their matching visits. Tantivy refuses an aggregation of more
        than 65,000 buckets, so patients are grouped in id ranges of ``GROUP`` at a time."""
        parts = []
        for lo in range(0, max(self.patients.count, 1), GROUP):
            part = query if self.patients.count <= GROUP else tantivy.Query.boolean_query([
                (tantivy.Occur.Must, query),
                (tantivy.Occur.Must, tantivy.Query.range_query(
                    self.index.schema, "p", tantivy.FieldType.Integer, lo, lo + GROUP - 1))])
            got = s.aggregate(part, {"p": {"terms": {"field": "p", "size": GROUP}}})
            parts += got["p"]["buckets"]
        return (np.fromiter((b["key"] for b in parts), np.int64, len(parts)),
                np.fromiter((b["doc_count"] for b in parts), np.int64, len(parts)))

    def _summaries(self, s, query, chosen: np.ndarray, matching: np.ndarray) -> list[CaseSummary]:
        if not len(chosen):
            return []
        Q, sch = tantivy.Query, self.index.schema
        mine = Q.term_set_query(sch, "p", chosen.tolist())
        limit = int(self.patients.rows["visits"][chosen].sum()) + 64   # all their visits
        hit = {(a.segment_ord, a.doc) for _, a in s.search(
            Q.boolean_query([(tantivy.Occur.Must, mine), (tantivy.Occur.Must, query)]),
            limit=limit, count=False).hits}
        info: dict[int, dict] = {int(p): {"days": [], "codes": Counter(), "last": None}
                                 for p in chosen}
        for _, addr in s.search(mine, limit=limit, count=False).hits:
            d = s.doc(addr).to_dict()
            i = info[d["p"][0]]
            day = d["day"][0]
            i["days"].append(day)
            if i["last"] is None or (day, d["received"][0]) >= i["last"][:2]:
                i["last"] = (day, d["received"][0], d)
            if (addr.segment_ord, addr.doc) in hit:
                i["codes"].update(d.get("x10", []) + d.get("x9", []))
        out = []
        for p, n in zip(chosen.tolist(), matching.tolist()):
            i = info[p]
            last = i["last"][2]
            out.append(CaseSummary(
                patient=self.patients.rows["name"][p].decode(), sex=last["s"][0],
                age=int(last["a"][0]), city=(last.get("city") or [""])[0],
                visits=len(i["days"]), matching=int(n),
                first=text.day_iso(min(i["days"])), latest=text.day_iso(max(i["days"])),
                codes=sorted(i["codes"], key=lambda c: (-i["codes"][c], c))[:6]))
        return out
