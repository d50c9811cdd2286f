"""Candidate poses from correlation slices: top-k local maxima and the false candidates.

False candidates follow the study (§2.5.1): solutions scoring better than the correct solution,
counted relative to all solutions. The correct solution is every grid pose within one grid step
(geodesic, see ``grid.poses_within``) of the true rotation; its score is the best among them.
Two figures come out of one pass:

* per-pose count — grid poses scoring strictly above the correct score (none of them can lie
  within one step of the truth, since the correct score is the best there); the ratio divides
  it by all grid poses, as the study does;
* false peaks — distinct local maxima scoring strictly above the correct score, so one false
  peak spread over several grid points counts once.

Slices C[:, k, :] (axes α, γ) may arrive in any β order; a slice is examined once its β
neighbours are known, then dropped when no longer needed, so only a few slices are held.
Neighbourhoods are 3 × 3 × 3 with α and γ periodic; past the ends of the β axis the grid goes
on over the pole: the row before β_0 is β_0 itself shifted by half a turn in α and γ, since
R(α, −β, γ) = R(α + π, β, γ − π) (likewise after the last row). Exact ties make every tied
point a maximum (only constructed grids have them).
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


def over_the_pole(plane: np.ndarray) -> np.ndarray:
    """The β row just past a pole, seen from the end row ``plane``: (a, c) ↦ (a + B, c + B)."""
    half = (plane.shape[0] // 2, plane.shape[1] // 2)
    return np.roll(plane, half, axis=(0, 1))


def maxima_mask(centre: np.ndarray, neighbourhood_max: np.ndarray) -> np.ndarray:
    """Points of a slice that equal their 3 × 3 × 3 neighbourhood maximum."""
    return centre >= neighbourhood_max


def local_maxima(centre: np.ndarray, mask: np.ndarray, top_k: int, k: int) -> list[Candidate]:
    """The ``top_k`` best local maxima of slice k."""
    a_idx, c_idx = np.nonzero(mask)
    scores = centre[a_idx, c_idx]
    best = np.argsort(scores)[::-1][:top_k]
    return [Candidate(float(scores[i]), (int(a_idx[i]), k, int(c_idx[i]))) for i in best]


class LocalMaximaCollector:
    """Streams β slices; keeps the best ``top_k`` local maxima and counts what beats a threshold.

    ``count_above``: grid poses scoring strictly above ``threshold``; ``maxima_above``: local
    maxima doing so. With the correct solution's score as threshold these are the false
    candidates per pose and the false peaks.
    """

    def __init__(self, n_beta: int, top_k: int = 10, threshold: float = np.inf):
        self.n_beta, self.top_k, self.threshold = n_beta, top_k, threshold
        self.slices: dict[int, np.ndarray] = {}
        self.plane_max: dict[int, np.ndarray] = {}
        self.done: set[int] = set()
        self.best: list[Candidate] = []
        self.count_above = 0
        self.maxima_above = 0

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
        if k in (0, self.n_beta - 1):
            around.append(over_the_pole(self.plane_max[k]))
        centre = self.slices[k]
        mask = maxima_mask(centre, np.maximum.reduce(around))
        self.maxima_above += int(np.count_nonzero(mask & (centre > self.threshold)))
        found = local_maxima(centre, mask, self.top_k, k)
        self.best = sorted(self.best + found, reverse=True)[: self.top_k]
        self.done.add(k)

    def candidates(self) -> list[Candidate]:
        """Best local maxima, highest score first."""
        return list(self.best)


def false_candidate_ratio(count_strictly_better: int, n_grid_poses: int) -> float:
    """The study's relative measure: poses scoring above the correct solution ÷ all grid poses."""
    return count_strictly_better / n_grid_poses
