"""``CaseIndex``: every indexed visit in memory, searched as *medical cases*.

A case is one pseudonymous patient with all their visits. A case matches when at least one of its
visits meets every criterion (diagnosis, dates, age at the visit, city, sex, words in the exam
results); the result lists cases with their matching and total visit counts.

Documents are the feed rows' JSON (``hl7_gateway.store_rows.search_document``). ``apply`` is
idempotent: a visit seen again replaces its older version (by received time), so the feed may be
re-read with overlap.
"""
from __future__ import annotations

import bisect
import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from portal.search import text
from portal.search.segment import MULTI, SCALARS, Segment, merge

SEXES = ("M", "F", "UN")
MAX_SEGMENTS = 6          # more than this: the smallest are merged
SORTS = {"latest", "visits", "age", "patient"}


class Vocab:
    """Terms <-> dense ids, append-only."""

    def __init__(self, terms: list[str] | None = None):
        self.terms: list[str] = list(terms or [])
        self.ids = {t: i for i, t in enumerate(self.terms)}
        self._sorted: tuple[int, list[str], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.terms)

    def id(self, term: str) -> int:
        found = self.ids.get(term)
        if found is None:
            found = self.ids[term] = len(self.terms)
            self.terms.append(term)
        return found

    def with_prefix(self, prefix: str) -> np.ndarray:
        """Ids of the terms starting with ``prefix`` (binary search on a cached sorted copy)."""
        if self._sorted is None or self._sorted[0] != len(self.terms):
            order = sorted(range(len(self.terms)), key=self.terms.__getitem__)
            self._sorted = (len(self.terms), [self.terms[i] for i in order],
                            np.array(order, np.int32))
        _, ordered, ids = self._sorted
        lo = bisect.bisect_left(ordered, prefix)
        hi = bisect.bisect_left(ordered, prefix + "\U0010ffff")
        return ids[lo:hi]


class Patients:
    """Pseudonyms and per-case aggregates used to sort and summarise results."""

    def __init__(self):
        self.vocab = Vocab()
        self.visits = np.zeros(0, np.int32)      # live visits
        self.latest = np.full(0, -1, np.int32)   # day number of the latest admission
        self.age = np.zeros(0, np.int16)         # age at the latest visit
        self._rank: tuple[int, np.ndarray] | None = None

    def ids(self, pseudonyms: list[str]) -> np.ndarray:
        out = np.fromiter((self.vocab.id(p) for p in pseudonyms), np.int32, len(pseudonyms))
        grow = len(self.vocab) - len(self.visits)
        if grow > 0:
            extra = max(grow, len(self.visits) // 2)
            self.visits = np.concatenate((self.visits, np.zeros(extra, np.int32)))
            self.latest = np.concatenate((self.latest, np.full(extra, -1, np.int32)))
            self.age = np.concatenate((self.age, np.zeros(extra, np.int16)))
        return out

    def add(self, patient: np.ndarray, day: np.ndarray, age: np.ndarray, sign: int = 1) -> None:
        np.add.at(self.visits, patient, sign)
        if sign > 0:
            order = np.argsort(day, kind="stable")         # the latest visit is assigned last
            p, d, a = patient[order], day[order], age[order]
            newer = d >= self.latest[p]
            self.latest[p[newer]] = d[newer]
            self.age[p[newer]] = a[newer]

    def name_rank(self) -> np.ndarray:
        """Rank of each patient by pseudonym, for sorting by name."""
        n = len(self.vocab)
        if self._rank is None or self._rank[0] != n:
            names = np.empty(n, dtype=object)
            names[:] = self.vocab.terms[:n]        # a copy: writers may append meanwhile
            order = np.argsort(names, kind="stable")
            rank = np.empty(n, np.int64)
            rank[order] = np.arange(n)
            self._rank = (n, rank)
        return self._rank[1]


@dataclass(frozen=True)
class Criteria:
    """Resolved criteria: term-id arrays per multi-valued field (each a must), scalar bounds."""
    terms: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sex: int | None = None
    age: tuple[int, int] | None = None
    days: tuple[int, int] | None = None
    city: np.ndarray | None = None


@dataclass(frozen=True)
class CaseSummary:
    patient: str
    sex: str
    age: int
    city: str
    visits: int
    matching: int
    first: str
    latest: str
    codes: list[str]          # diagnosis codes of the matching visits, most frequent first


@dataclass(frozen=True)
class Page:
    total: int
    cases: list[CaseSummary]
    visits_matched: int
    took_ms: float


def newest_versions(docs: list[tuple[int, dict]]) -> dict[str, tuple[int, dict]]:
    """visit id -> its (received_ms, document) received last among ``docs``."""
    latest: dict[str, tuple[int, dict]] = {}
    for received, doc in docs:
        if received >= latest.get(doc["v"], (-1, None))[0]:
            latest[doc["v"]] = (received, doc)
    return latest


class CaseIndex:
    def __init__(self):
        self.vocab = {f: Vocab() for f in (*MULTI, "city")}
        self.patients = Patients()
        self.segments: list[Segment] = []
        self.position = 0              # highest feed received-ms applied
        self.icd9_display: dict[str, str] = {}
        self.lock = threading.Lock()   # writers only; readers use a copy of `segments`

    @property
    def size(self) -> int:
        return sum(int(s.alive.sum()) for s in self.segments)

    # --- writing ----------------------------------------------------------------------------
    def apply(self, docs: list[tuple[int, dict]]) -> int:
        """Index (received_ms, document) pairs; returns how many visits were (re)indexed."""
        if not docs:
            return 0
        latest = newest_versions(docs)
        with self.lock:
            docs = self._drop_older(latest)
            if docs:
                self.segments.append(self._segment(docs))
                self._compact()
            self.position = max(self.position, max(r for r, _ in latest.values()))
        return len(docs)

    def _drop_older(self, latest: dict[str, tuple[int, dict]]) -> list[tuple[int, dict]]:
        """Tombstone indexed versions older than the incoming ones; drop incoming stale ones."""
        keys = np.array(list(latest), "S")
        incoming = np.array([latest[k][0] for k in latest], np.int64)
        keep = np.ones(len(keys), bool)
        for seg in self.segments:
            at, rows = seg.find(keys)
            live = seg.alive[rows]
            at, rows = at[live], rows[live]
            newer = incoming[at] > seg.cols["received"][rows]    # equal: already indexed
            gone = rows[newer]
            seg.alive[gone] = False
            self.patients.add(seg.cols["patient"][gone], seg.cols["day"][gone],
                              seg.cols["age"][gone], sign=-1)
            keep[at[~newer]] = False
        values = list(latest.values())
        return [values[i] for i in np.flatnonzero(keep)]

    def _segment(self, docs: list[tuple[int, dict]]) -> Segment:
        n = len(docs)
        cols = {k: np.zeros(n, t) for k, t in SCALARS.items()}
        pairs = {f: ([], []) for f in MULTI}
        ids, pseudonyms = [], []
        v10, v9, vw, vk, vc = (self.vocab[f] for f in ("icd10", "icd9", "word", "kind", "city"))
        for row, (received, d) in enumerate(docs):
            ids.append(d["v"])
            pseudonyms.append(d["p"])
            cols["sex"][row] = SEXES.index(d["s"]) if d["s"] in SEXES else 2
            cols["age"][row], cols["received"][row] = d["a"], received
            cols["day"][row] = text.day_number(d["d"])
            cols["city"][row] = vc.id(d.get("c") or "")
            terms = {
                "icd10": [v10.id(c.upper()) for c in d.get("x10", ())],
                "icd9": [v9.id(c) for c, _ in d.get("x9", ())],
                "word": [vw.id(w) for w in text.words(d.get("t", ""))],
                "kind": [vk.id(k) for k in d.get("k", ())],
            }
            for c, display in d.get("x9", ()):
                self.icd9_display.setdefault(c, display)
            for f, found in terms.items():
                pairs[f][0].extend(found)
                pairs[f][1].extend([row] * len(found))
        cols["patient"] = self.patients.ids(pseudonyms)
        self.patients.add(cols["patient"], cols["day"], cols["age"])
        return Segment.build(np.array(ids, "S"), cols,
                             {f: (np.array(t, np.int32), np.array(r, np.int32))
                              for f, (t, r) in pairs.items()})

    def _compact(self) -> None:
        while len(self.segments) > MAX_SEGMENTS:
            order = sorted(range(len(self.segments)), key=lambda i: len(self.segments[i]))
            a, b = sorted(order[:2])
            merged = merge([self.segments[a], self.segments[b]])
            self.segments = [s for i, s in enumerate(self.segments) if i not in (a, b)]
            self.segments.insert(a, merged)

    def optimise(self) -> None:
        """Merge everything into one segment (before a snapshot)."""
        with self.lock:
            if len(self.segments) > 1 or (self.segments and not self.segments[0].alive.all()):
                self.segments = [merge(self.segments)]

    # --- reading ----------------------------------------------------------------------------
    def search(self, criteria: Criteria, sort: str = "latest", descending: bool = True,
               page: int = 1, per_page: int = 20) -> Page:
        t0 = time.perf_counter()
        segments = list(self.segments)
        # the per-patient arrays' capacity, read after `segments`: it covers every patient those
        # segments refer to even while a writer is adding patients
        n_patients = len(self.patients.visits)
        matched = [(seg, self._mask(seg, criteria)) for seg in segments]
        counts = np.zeros(n_patients, np.int64)
        for seg, mask in matched:
            counts += np.bincount(seg.cols["patient"][mask], minlength=n_patients)
        hits = np.flatnonzero(counts)
        hits = hits[self._order(hits, counts, sort, descending)]
        start = (page - 1) * per_page
        chosen = hits[start:start + per_page]
        cases = self._summaries(chosen, counts, matched)
        return Page(int(len(hits)), cases, int(counts.sum()),
                    (time.perf_counter() - t0) * 1000)

    def _mask(self, seg: Segment, c: Criteria) -> np.ndarray:
        mask = seg.alive.copy()
        if c.sex is not None:
            mask &= seg.cols["sex"] == c.sex
        if c.age is not None:
            mask &= (seg.cols["age"] >= c.age[0]) & (seg.cols["age"] <= c.age[1])
        if c.days is not None:
            mask &= (seg.cols["day"] >= c.days[0]) & (seg.cols["day"] <= c.days[1])
        if c.city is not None:
            mask &= np.isin(seg.cols["city"], c.city)
        for f, musts in c.terms.items():
            for ids in musts:
                has = np.zeros(len(seg), bool)
                has[seg.postings[f].rows_for(ids)] = True
                mask &= has
        return mask

    def _order(self, hits, counts, sort: str, descending: bool) -> np.ndarray:
        p = self.patients
        key = {"latest": lambda: p.latest[hits], "visits": lambda: counts[hits],
               "age": lambda: p.age[hits], "patient": lambda: p.name_rank()[hits]}[sort]()
        key = -key.astype(np.int64) if descending else key
        return np.lexsort((p.name_rank()[hits], key))

    def _summaries(self, chosen: np.ndarray, counts: np.ndarray, matched) -> list[CaseSummary]:
        if not len(chosen):
            return []
        info = {int(p): {"days": [], "codes": {}, "last": (-1, 0, 0)} for p in chosen}
        cities, codes10, codes9 = (self.vocab[f].terms for f in ("city", "icd10", "icd9"))
        wanted = np.zeros(len(self.patients.vocab), bool)
        wanted[chosen] = True
        for seg, hit in matched:
            rows = np.flatnonzero(wanted[seg.cols["patient"]] & seg.alive)
            for row in rows.tolist():
                i = info[int(seg.cols["patient"][row])]
                day = int(seg.cols["day"][row])
                i["days"].append(day)
                if day >= i["last"][0]:
                    i["last"] = (day, row, seg)
                if hit[row]:
                    for f, names in (("icd10", codes10), ("icd9", codes9)):
                        for t in seg.forward[f].of(row).tolist():
                            i["codes"][names[t]] = i["codes"].get(names[t], 0) + 1
        out = []
        for p in chosen.tolist():
            i = info[p]
            _, row, seg = i["last"]
            out.append(CaseSummary(
                patient=self.patients.vocab.terms[p], sex=SEXES[int(seg.cols["sex"][row])],
                age=int(seg.cols["age"][row]), city=cities[int(seg.cols["city"][row])],
                visits=len(i["days"]), matching=int(counts[p]),
                first=text.day_iso(min(i["days"])), latest=text.day_iso(max(i["days"])),
                codes=sorted(i["codes"], key=lambda c: (-i["codes"][c], c))[:6]))
        return out

    # --- snapshots --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole index as one .npz (call ``optimise`` first for one segment)."""
        self.optimise()
        seg = self.segments[0] if self.segments else merge([])
        arrays = {"visit_ids": seg.visit_ids, "position": np.array([self.position]),
                  **{f"col_{k}": v for k, v in seg.cols.items()}}
        for f in MULTI:
            terms, rows = seg.postings[f].pairs()
            arrays[f"terms_{f}"], arrays[f"rows_{f}"] = terms, rows
        for f, vocab in self.vocab.items():
            arrays[f"vocab_{f}"] = np.array(vocab.terms, dtype=object)
        arrays["vocab_patient"] = np.array(self.patients.vocab.terms, dtype=object)
        arrays["icd9_display"] = np.array(sorted(self.icd9_display.items()), dtype=object)
        buf = io.BytesIO()
        np.savez(buf, **{k: _plain(v) for k, v in arrays.items()})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "CaseIndex":
        z = np.load(io.BytesIO(blob), allow_pickle=False)
        index = cls()
        for f in index.vocab:
            index.vocab[f] = Vocab(_strings(z[f"vocab_{f}"]))
        index.icd9_display = dict(zip(*[_strings(c) for c in z["icd9_display"].T])) \
            if z["icd9_display"].size else {}
        index.patients.ids(_strings(z["vocab_patient"]))
        cols = {k: z[f"col_{k}"] for k in SCALARS}
        seg = Segment.build(z["visit_ids"], cols,
                            {f: (z[f"terms_{f}"], z[f"rows_{f}"]) for f in MULTI})
        index.patients.add(cols["patient"], cols["day"], cols["age"])
        index.segments = [seg] if len(seg) else []
        index.position = int(z["position"][0])
        return index


def _plain(a: np.ndarray) -> np.ndarray:
    """Object arrays of str as fixed-width unicode, so the snapshot loads without pickle."""
    if a.dtype == object:
        return a.astype(str) if a.size else np.zeros(a.shape, "U1")
    return a


def _strings(a: np.ndarray) -> list[str]:
    return [str(s) for s in a.tolist()]
