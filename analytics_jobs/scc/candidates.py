"""Candidate poses from correlation slices: top-k local maxima and the false-candidate ratio.

Slices C[:, k, :] (axes α, γ) may arrive in any β order; a slice is examined once its β
neighbours are known, then dropped when no longer needed, so only a few slices are held.
Neighbourhoods are 3 × 3 × 3 with α and γ periodic and β clamped at its ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(order=True, frozen=True)
class Candidate:
    """One local maximum: score and grid index (a, k, c)."""

    score: float
    index: tuple[int, int, int] = field(compare=False)


def periodic_max3x3(plane: np.ndarray) -> np.ndarray:
    """Maximum over each 3 × 3 neighbourhood of a plane that wraps in both axes (α and γ)."""
    rows = np.maximum(plane, np.maximum(np.roll(plane, 1, axis=0), np.roll(plane, -1, axis=0)))
    return np.maximum(rows, np.maximum(np.roll(rows, 1, axis=1), np.roll(rows, -1, axis=1)))


def local_maxima(centre: np.ndarray, neighbourhood_max: np.ndarray, top_k: int, k: int) -> list[Candidate]:
    """The ``top_k`` best points of slice k that equal their 3 × 3 × 3 neighbourhood maximum."""
    a_idx, c_idx = np.nonzero(centre >= neighbourhood_max)
    scores = centre[a_idx, c_idx]
    best = np.argsort(scores)[::-1][:top_k]
    return [Candidate(float(scores[i]), (int(a_idx[i]), k, int(c_idx[i]))) for i in best]


class LocalMaximaCollector:
    """Streams β slices; keeps the best ``top_k`` local maxima and counts scores above a threshold."""

    def __init__(self, n_beta: int, top_k: int = 10, threshold: float = np.inf):
        self.n_beta, self.top_k, self.threshold = n_beta, top_k, threshold
        self.slices: dict[int, np.ndarray] = {}
        self.plane_max: dict[int, np.ndarray] = {}
        self.done: set[int] = set()
        self.best: list[Candidate] = []
        self.count_above = 0

    def _neighbours(self, k: int) -> list[int]:
        return [j for j in (k - 1, k + 1) if 0 <= j < self.n_beta]

    def add(self, k: int, piece: np.ndarray) -> None:
        """Take slice k (2B × 2B); evaluate every slice whose neighbours are now present."""
        self.slices[k] = piece
        self.plane_max[k] = periodic_max3x3(piece)
        self.count_above += int(np.count_nonzero(piece > self.threshold))
        for j in [k, *self._neighbours(k)]:
            if j in self.slices and j not in self.done and all(n in self.slices for n in self._neighbours(j)):
                self._evaluate(j)
        for j in list(self.slices):
            if j in self.done and all(n in self.done for n in self._neighbours(j)):
                del self.slices[j], self.plane_max[j]

    def _evaluate(self, k: int) -> None:
        around = [self.plane_max[j] for j in (k, *self._neighbours(k))]
        found = local_maxima(self.slices[k], np.maximum.reduce(around), self.top_k, k)
        self.best = sorted(self.best + found, reverse=True)[: self.top_k]
        self.done.add(k)

    def candidates(self) -> list[Candidate]:
        """Best local maxima, highest score first."""
        return list(self.best)


def false_candidate_ratio(count_strictly_better: int, n_grid_poses: int) -> float:
    """Share of grid poses scoring strictly better than the grid pose nearest the truth."""
    return count_strictly_better / n_grid_poses
