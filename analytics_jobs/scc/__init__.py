"""Spherical cross-correlation (SCC) kernel for camera geo-localisation: pure NumPy/SciPy/numba.

A query photo (perspective, known horizontal field of view) is matched against a 360°
cylindrical panorama by correlating their edge maps over all camera orientations:

    panorama --cylmap--> f on S²      photo --projmap--> g on S² (camera frame)
    f, g --forward SHT (bandwidth B_in)--> f_lm, g_lm
    C(R) = ∫ f(x) g(R⁻¹x) dx on the SO(3) grid of bandwidth B_out ≤ B_in   (inverse SO(3) FFT)
    C --> top-k local maxima (candidate poses); false candidates as the study counts them:
          poses / distinct local maxima scoring above the best pose within one grid step
          (π/B, geodesic) of the truth, the ratio taken over all grid poses

Conventions
-----------
* Rotations are active, ZYZ Euler angles: R(α, β, γ) = Rz(α) Ry(β) Rz(γ),
  α, γ ∈ [0, 2π), β ∈ [0, π]; (Λ(R)f)(x) = f(R⁻¹x). A camera pose is the camera-to-world
  rotation (see ``synthetic`` for the yaw/pitch/roll parametrisation).
* Sphere grid (SOFT / Driscoll–Healy midpoint grid), 2B × 2B samples:
  θ_j = π(2j+1)/(4B), φ_k = 2πk/(2B), j, k = 0 … 2B−1.
* SO(3) grid (SOFT), (2B)³ samples indexed [a, k, c]:
  α_a = 2πa/(2B), β_k = π(2k+1)/(4B), γ_c = 2πc/(2B).
* Spherical harmonics are orthonormal with the Condon–Shortley phase; Wigner
  d^l_mn(β) = <lm| e^{−iβJ_y} |ln>, D^l_mn(α, β, γ) = e^{−imα} d^l_mn(β) e^{−inγ}; hence
  C(α, β, γ) = Σ_l Σ_m Σ_n f_lm conj(g_ln) d^l_mn(β) e^{+i(mα + nγ)}.

Resolution of the original study
--------------------------------
The study's "resolution R" is taken to be the bandwidth: R = B, SO(3) grid of 2R samples per
angle. Evidence: its finalisation memory (Table 9) is 32 / 256 / 2048 / 16384 MiB at
R = 64 / 128 / 256 / 512, exactly (2R)³ complex doubles (16 bytes) — a 128³ block for R = 64.

Modules: ``grid`` (grids, rotations), ``sht`` (forward SHT, NumPy and ducc0), ``wigner``
(d^l_mn recurrence), ``correlate`` (SO(3) correlation), ``mapping`` (edges, cylmap, projmap),
``synthetic`` (mountain scenes), ``candidates`` (local maxima, ratio), ``measure`` (stage
time/memory, host facts), ``pipeline`` (``run_pair``), ``bandlimited`` (test functions).
"""

from analytics_jobs.scc.correlate import correlate_so3, correlation_slices
from analytics_jobs.scc.grid import euler_to_matrix, matrix_to_euler, nearest_grid_index, so3_angles, sphere_grid
from analytics_jobs.scc.mapping import cylmap, edge_magnitude, projmap
from analytics_jobs.scc.measure import host_facts
from analytics_jobs.scc.pipeline import run_pair
from analytics_jobs.scc.sht import forward_sht, forward_sht_ducc

__all__ = [
    "correlate_so3",
    "correlation_slices",
    "cylmap",
    "edge_magnitude",
    "euler_to_matrix",
    "forward_sht",
    "forward_sht_ducc",
    "host_facts",
    "matrix_to_euler",
    "nearest_grid_index",
    "projmap",
    "run_pair",
    "so3_angles",
    "sphere_grid",
]
