"""Synthetic mountain scenes: fractal ridge lines, a cylindrical panorama and a posed query photo.

World frame: z up, azimuth φ measured from +x towards +y, elevation e = π/2 − θ.
Camera frame (computer-vision convention): x right, y down, z along the optical axis.
A pose (yaw, pitch, roll) gives the camera-to-world rotation
    R_cam = Rz(yaw) · Ry(−pitch) · R_level · Rz(roll),
where R_level points the optical axis at azimuth 0 on the horizon (cam z → world +x,
cam x → world −y, cam y → world −z); positive pitch looks up, roll turns about the optical axis.
A level camera therefore sits at β = 90° of the ZYZ grid, far from its singular rows.
Everything is seeded: the same seed gives the same scene and photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

_R_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: ridges from far to near: base elevation (deg), relief amplitude (deg), grey level
RIDGES = (
    (9.0, 5.0, 0.78),
    (6.0, 7.0, 0.62),
    (2.5, 9.0, 0.45),
    (-2.0, 11.0, 0.28),
)
SKY = 1.0


@dataclass(frozen=True)
class Scene:
    """Ridge skylines as elevation angles (radians) sampled on a periodic azimuth grid."""

    skylines: np.ndarray  # (n_ridges, n_azimuth), far to near
    shades: np.ndarray  # (n_ridges,)

    def elevation(self, ridge: int, azimuth: np.ndarray) -> np.ndarray:
        """Skyline elevation of one ridge at arbitrary azimuths (periodic linear interpolation)."""
        line = self.skylines[ridge]
        grid = np.linspace(0.0, 2 * np.pi, line.size, endpoint=False)
        return np.interp(np.mod(azimuth, 2 * np.pi), grid, line, period=2 * np.pi)

    def radiance(self, azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
        """Grey level seen in each direction: the nearest ridge covering it, else sky."""
        image = np.full(np.broadcast(azimuth, elevation).shape, SKY)
        for ridge, shade in enumerate(self.shades):  # far to near: nearer ridges occlude
            image[elevation < self.elevation(ridge, azimuth)] = shade
        return image


def midpoint_displacement(levels: int, roughness: float, rng: np.random.Generator) -> np.ndarray:
    """Periodic 1-D fractal of 2**levels samples with zero mean and unit peak amplitude."""
    line = np.zeros(1)
    scale = 1.0
    for _ in range(levels):
        mid = 0.5 * (line + np.roll(line, -1)) + rng.normal(0.0, scale, line.size)
        line = np.stack([line, mid], axis=1).ravel()
        scale *= roughness
    line -= line.mean()
    return line / np.abs(line).max()


def make_scene(seed: int, levels: int = 11, roughness: float = 0.6) -> Scene:
    """Several fractal ridges at increasing distance (lower, rougher and darker when near)."""
    rng = np.random.default_rng(seed)
    lines = [
        np.deg2rad(base + amplitude * midpoint_displacement(levels, roughness, rng))
        for base, amplitude, _ in RIDGES
    ]
    return Scene(skylines=np.array(lines), shades=np.array([shade for *_, shade in RIDGES]))


def cylinder_focal(width: int) -> float:
    """Pixels per radian of a 360° cylindrical panorama (square pixels at the horizon)."""
    return width / (2 * np.pi)


def render_panorama(scene: Scene, width: int = 2048, height: int = 512) -> np.ndarray:
    """Cylindrical panorama: column c ↔ azimuth 2πc/W, row r ↔ tan(elevation) = ((H−1)/2 − r)/f."""
    focal = cylinder_focal(width)
    azimuth = 2 * np.pi * np.arange(width) / width
    elevation = np.arctan(((height - 1) / 2 - np.arange(height)) / focal)
    return scene.radiance(azimuth[None, :], elevation[:, None])


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation R_cam for a pose in radians (see module docstring)."""
    outer = Rotation.from_euler("ZY", [yaw, -pitch]).as_matrix()
    return outer @ _R_LEVEL @ Rotation.from_euler("Z", roll).as_matrix()


def focal_length(width: int, fov: float) -> float:
    """Pinhole focal length in pixels for a horizontal field of view (radians)."""
    return (width / 2) / np.tan(fov / 2)


def render_photo(
    scene: Scene,
    rotation: np.ndarray,
    fov: float,
    width: int = 480,
    height: int = 320,
    noise: float = 0.05,
    seed: int = 0,
) -> np.ndarray:
    """Perspective photo of the scene from camera-to-world ``rotation`` with Gaussian noise."""
    focal = focal_length(width, fov)
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - (width - 1) / 2) / focal, (v - (height - 1) / 2) / focal, np.ones_like(u)], axis=-1)
    world = rays @ rotation.T
    azimuth = np.arctan2(world[..., 1], world[..., 0])
    elevation = np.arctan2(world[..., 2], np.hypot(world[..., 0], world[..., 1]))
    photo = gaussian_filter(scene.radiance(azimuth, elevation), 0.7)
    return photo + np.random.default_rng(seed).normal(0.0, noise, photo.shape)


def random_pose(rng: np.random.Generator) -> tuple[float, float, float]:
    """A plausible hand-held pose: any yaw, pitch within ±10°, roll within ±8° (radians)."""
    return (
        float(rng.uniform(0, 2 * np.pi)),
        float(np.deg2rad(rng.uniform(-10, 10))),
        float(np.deg2rad(rng.uniform(-8, 8))),
    )
