"""One panorama/photo pair through every SCC stage, timed and measured like the original study.

Stages (names follow the study): cylmap, projmap, setup (recurrence tables, quadrature,
JIT warm-up), forward (SHT of both maps), correlation (all β slices streamed through the
local-maximum collector), finalisation (ranking candidates, ratio, angles). The full (2B)^3
block is never held: memory stays O(B_out^2) whatever the output bandwidth.
"""

from __future__ import annotations

import numpy as np

from analytics_jobs.scc.candidates import LocalMaximaCollector, false_candidate_ratio
from analytics_jobs.scc.correlate import correlation_slices, pair_order
from analytics_jobs.scc.grid import (
    euler_to_matrix,
    grid_pose,
    grid_step,
    nearest_grid_index,
    poses_within,
    rotation_angle,
)
from analytics_jobs.scc.mapping import cylmap, normalise, projmap
from analytics_jobs.scc.measure import StageMeter
from analytics_jobs.scc.sht import SHT_BACKENDS, default_sht_backend, fejer_weights
from analytics_jobs.scc.wigner import recurrence_tables


def warm_up() -> None:
    """Compile (or load from cache) the numba kernels on a tiny problem."""
    coeffs = np.zeros((2, 3), dtype=np.complex128)
    coeffs[1, 1] = 1.0
    for _ in correlation_slices(coeffs, coeffs, 2):
        pass


def _truth_slices(f: np.ndarray, g: np.ndarray, b_out: int, rotation: np.ndarray) -> tuple[dict, dict]:
    """The correct solution: the best grid pose within one grid step of ``rotation``.

    Computes only the β pairs holding those poses (a few); returns the slices too, so the
    main loop reuses them, and {nearest_index, true_score, correct_index, correct_score}.
    """
    ball = poses_within(rotation, b_out, grid_step(b_out))
    pairs = sorted({min(k, 2 * b_out - 1 - k) for k in ball})
    slices = dict(correlation_slices(f, g, b_out, pairs=pairs))
    correct_score, correct_index = -np.inf, None
    for k, mask in ball.items():
        scores = np.where(mask, slices[k], -np.inf)
        a, c = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[a, c] > correct_score:
            correct_score, correct_index = float(scores[a, c]), (int(a), k, int(c))
    a, k, c = nearest_grid_index(rotation, b_out)
    truth = {"nearest_index": (a, k, c), "true_score": float(slices[k][a, c]),
             "correct_index": correct_index, "correct_score": correct_score,
             "correct_poses": int(sum(int(mask.sum()) for mask in ball.values()))}
    return truth, slices


def run_pair(
    panorama: np.ndarray,
    photo: np.ndarray,
    fov: float,
    b_in: int,
    b_out: int,
    true_pose: np.ndarray | None = None,
    top_k: int = 10,
    sht_backend: str | None = None,
) -> dict:
    """Correlate a photo against a panorama; return candidates, false candidates and stage costs.

    ``true_pose`` is the camera-to-world rotation matrix (3 × 3) when known. Candidates carry
    their score, grid index, Euler angles (α, β, γ) and, with a true pose, the rotation error.
    With a true pose the result also holds the study's false candidates (see ``candidates``):
    ``false_candidates`` (grid poses above the correct solution), ``false_candidate_ratio``
    (that ÷ all grid poses), ``false_peaks`` (distinct local maxima above it), the correct
    solution (``correct_index``/``correct_score``: best pose within one grid step of the
    truth) and the nearest grid pose (``true_index``/``true_score``).
    ``sht_backend`` is "numpy" or "ducc0" (default: ducc0 when installed).
    """
    sht_backend = sht_backend or default_sht_backend()
    meter = StageMeter()
    with meter.stage("cylmap"):
        f_grid = normalise(cylmap(panorama, b_in))
    with meter.stage("projmap"):
        g_raw, footprint = projmap(photo, fov, b_in)
        g_grid = normalise(g_raw, footprint)
    with meter.stage("setup"):
        warm_up()
        recurrence_tables(b_out)
        fejer_weights(2 * b_in)
    with meter.stage("forward"):
        transform = SHT_BACKENDS[sht_backend]
        f_lm, g_lm = transform(f_grid, b_in), transform(g_grid, b_in)
    n_beta = 2 * b_out
    truth, slices = {}, {}
    with meter.stage("correlation"):
        if true_pose is not None:
            truth, slices = _truth_slices(f_lm, g_lm, b_out, true_pose)
        collector = LocalMaximaCollector(n_beta, top_k=top_k, threshold=truth.get("correct_score", np.inf))
        for k, piece in slices.items():
            collector.add(k, piece)
        done = {min(k, n_beta - 1 - k) for k in slices}
        remaining = [k for k in pair_order(b_out) if k not in done]
        for k, piece in correlation_slices(f_lm, g_lm, b_out, pairs=remaining):
            collector.add(k, piece)
    with meter.stage("finalisation"):
        candidates = []
        for rank, cand in enumerate(collector.candidates()):
            angles = grid_pose(cand.index, b_out)
            entry = {"rank": rank, "score": cand.score, "index": list(cand.index), "euler": list(angles)}
            if true_pose is not None:
                entry["error_deg"] = float(np.degrees(rotation_angle(true_pose, euler_to_matrix(*angles))))
            candidates.append(entry)
        n_poses = n_beta**3
        known = true_pose is not None
        result = {
            "b_in": b_in,
            "b_out": b_out,
            "grid_poses": n_poses,
            "candidates": candidates,
            "true_index": list(truth["nearest_index"]) if known else None,
            "true_score": truth.get("true_score"),
            "correct_index": list(truth["correct_index"]) if known else None,
            "correct_score": truth.get("correct_score"),
            "correct_poses": truth.get("correct_poses"),
            "correct_radius_deg": float(np.degrees(grid_step(b_out))),
            "false_candidates": collector.count_above if known else None,
            "false_candidate_ratio": false_candidate_ratio(collector.count_above, n_poses) if known else None,
            "false_peaks": collector.maxima_above if known else None,
            "sht_backend": sht_backend,
        }
    result["stages"] = meter.stages
    return result
