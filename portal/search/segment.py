"""One immutable block of indexed visits: scalar columns, inverted postings, tombstones.

Rows are visits. ``alive`` is the only mutable part: a visit re-sent later is tombstoned here and
indexed again in a newer segment. Merging segments drops tombstoned rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCALARS = {"patient": np.int32, "sex": np.int8, "age": np.int16, "day": np.int32,
           "city": np.int32, "received": np.int64}
MULTI = ("icd10", "icd9", "word", "kind")   # multi-valued fields with postings
FORWARD = ("icd10", "icd9")                 # ... and those also kept row -> terms, for display


@dataclass(frozen=True)
class Postings:
    """Term id -> the rows holding it (CSR: ``rows[starts[i]:starts[i+1]]`` for ``terms[i]``)."""
    terms: np.ndarray
    starts: np.ndarray
    rows: np.ndarray

    @classmethod
    def build(cls, term_ids: np.ndarray, rows: np.ndarray) -> "Postings":
        order = np.lexsort((rows, term_ids))
        term_ids, rows = term_ids[order], rows[order].astype(np.int32)
        terms, first = np.unique(term_ids, return_index=True)
        starts = np.append(first, len(rows)).astype(np.int64)
        return cls(terms.astype(np.int32), starts, rows)

    def rows_for(self, term_ids: np.ndarray) -> np.ndarray:
        """Rows holding any of ``term_ids`` (may repeat a row)."""
        term_ids = np.asarray(term_ids, np.int32)
        at = np.searchsorted(self.terms, term_ids)
        inside = at < len(self.terms)
        at = at[inside][self.terms[at[inside]] == term_ids[inside]]
        if not len(at):
            return np.empty(0, np.int32)
        return np.concatenate([self.rows[self.starts[i]:self.starts[i + 1]] for i in at])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(term id, row) for every posting: the inverse of ``build``."""
        return np.repeat(self.terms, np.diff(self.starts)), self.rows


@dataclass(frozen=True)
class Forward:
    """Row -> its terms (CSR), for showing a visit's codes without scanning postings."""
    starts: np.ndarray
    terms: np.ndarray

    @classmethod
    def build(cls, n: int, rows: np.ndarray, term_ids: np.ndarray) -> "Forward":
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n)
        return cls(np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                   term_ids[order].astype(np.int32))

    def of(self, row: int) -> np.ndarray:
        return self.terms[self.starts[row]:self.starts[row + 1]]


@dataclass
class Segment:
    visit_ids: np.ndarray                 # bytes ('S'), one per row
    cols: dict[str, np.ndarray]           # SCALARS
    postings: dict[str, Postings]         # MULTI
    forward: dict[str, Forward]           # FORWARD
    alive: np.ndarray = field(default=None)
    _order: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.alive is None:
            self.alive = np.ones(len(self.visit_ids), bool)
        self._order = np.argsort(self.visit_ids, kind="stable")

    def __len__(self) -> int:
        return len(self.visit_ids)

    @classmethod
    def build(cls, visit_ids: np.ndarray, cols: dict[str, np.ndarray],
              pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> "Segment":
        """From columns and, per multi-valued field, (term ids, rows) pairs."""
        n = len(visit_ids)
        cols = {k: np.asarray(cols[k], dtype) for k, dtype in SCALARS.items()}
        postings = {f: Postings.build(*pairs[f]) for f in MULTI}
        forward = {f: Forward.build(n, pairs[f][1], pairs[f][0]) for f in FORWARD}
        return cls(np.asarray(visit_ids, "S"), cols, postings, forward)

    def find(self, visit_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``visit_ids`` found here, their rows)."""
        if not len(self):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        sorted_ids = self.visit_ids[self._order]
        at = np.minimum(np.searchsorted(sorted_ids, visit_ids), len(self) - 1)
        hit = sorted_ids[at] == visit_ids
        return np.flatnonzero(hit), self._order[at[hit]]

    def live_pairs(self, field_name: str, row_map: np.ndarray, offset: int):
        terms, rows = self.postings[field_name].pairs()
        keep = self.alive[rows]
        return terms[keep], row_map[rows[keep]] + offset


def merge(segments: list[Segment]) -> Segment:
    """One segment holding the live rows of ``segments``, in order."""
    ids, cols, pairs, offset = [], {k: [] for k in SCALARS}, {f: ([], []) for f in MULTI}, 0
    for seg in segments:
        row_map = np.cumsum(seg.alive) - 1
        ids.append(seg.visit_ids[seg.alive])
        for k in SCALARS:
            cols[k].append(seg.cols[k][seg.alive])
        for f in MULTI:
            t, r = seg.live_pairs(f, row_map, offset)
            pairs[f][0].append(t)
            pairs[f][1].append(r)
        offset += int(seg.alive.sum())
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype))
    return Segment.build(
        cat(ids, "S1"), {k: cat(v, SCALARS[k]) for k, v in cols.items()},
        {f: (cat(t, np.int32), cat(r, np.int32)) for f, (t, r) in pairs.items()})
