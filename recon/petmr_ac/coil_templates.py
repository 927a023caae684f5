"""Hardware templates of rigid RF coils for the PET μ-map (invisible to MR, but they attenuate 511 keV photons).

A rigid coil sits on a holder fixed to the patient table, so its position follows from the table top and
the landmark (bed) position alone; the reconstruction therefore knows its geometry as a template, like
the table.  A template is the vendor's CAD-like description of the housing: the mid-line of its
cross-section as a polyline (x, height above the table top, in mm), a wall thickness, a length along z
and one documented *mean* μ at 511 keV that already spreads the electronics (pre-amplifiers, cables)
over the housing volume.  Coils are selected by name (the chain's configuration of the connected coils).

What a template cannot know, and what remains as a residual error of the μ-map: the local μ variation
of the real housing, the localised pre-amplifier blocks (denser than the mean), and the polygonal
approximation of a curved housing (sub-millimetre for the shipped template).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recon.petmr_ac.grid import VoxelGrid


@dataclass(frozen=True)
class RigidCoilTemplate:
    """A rigid coil housing: a wall of constant thickness around a polyline cross-section, extruded along z.

    Attributes:
        name: the coil's name (what a chain configuration lists as connected).
        midline_x_height_mm: vertices (x, height above the table top) of the housing's mid-line, mm,
            at least two; +x is patient left, height is towards anterior (patient y = top - height).
        wall_thickness_mm: housing wall thickness, mm (> 0).
        length_mm: extent along z, mm (> 0), centred on the landmark.
        mean_mu_per_cm: documented mean μ at 511 keV of the housing with its electronics, 1/cm (≥ 0).
    """

    name: str
    midline_x_height_mm: tuple[tuple[float, float], ...]
    wall_thickness_mm: float
    length_mm: float
    mean_mu_per_cm: float

    def __post_init__(self) -> None:
        if len(self.midline_x_height_mm) < 2 or any(len(v) != 2 for v in self.midline_x_height_mm):
            raise ValueError(f"{self.name}: midline_x_height_mm needs at least two (x, height) vertices")
        if self.wall_thickness_mm <= 0 or self.length_mm <= 0 or self.mean_mu_per_cm < 0:
            raise ValueError(f"{self.name}: wall thickness and length must be > 0, mean μ ≥ 0")


@dataclass(frozen=True)
class PlacedCoil:
    """A coil template placed in patient coordinates (LPS, mm).

    Attributes:
        template: the coil.
        table_top_y_mm: table top, patient y (posterior +), mm.
        z_centre_mm: patient z of the coil's centre (the landmark), mm.
    """

    template: RigidCoilTemplate
    table_top_y_mm: float
    z_centre_mm: float = 0.0

    @property
    def name(self) -> str:
        """The coil's name."""
        return self.template.name

    @property
    def mu_per_cm(self) -> float:
        """The template's mean μ, 1/cm."""
        return self.template.mean_mu_per_cm

    def midline_xy_mm(self) -> np.ndarray:
        """Mid-line vertices (n, 2) as patient (x, y), mm."""
        v = np.asarray(self.template.midline_x_height_mm, dtype=np.float64)
        return np.stack([v[:, 0], self.table_top_y_mm - v[:, 1]], axis=1)

    def contains_xy(self, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
        """True where (x, y) (broadcast arrays, mm) lies inside the housing's cross-section."""
        return _distance_to_polyline(x_mm, y_mm, self.midline_xy_mm()) <= self.template.wall_thickness_mm / 2

    def z_range_mm(self) -> tuple[float, float]:
        """(lower, upper) z of the housing, mm."""
        half = self.template.length_mm / 2
        return (self.z_centre_mm - half, self.z_centre_mm + half)

    def contains(self, points_zyx_mm: np.ndarray) -> np.ndarray:
        """True for points ``(..., 3)`` (z, y, x in mm) inside the housing."""
        z, y, x = (points_zyx_mm[..., i] for i in range(3))
        lo, hi = self.z_range_mm()
        return self.contains_xy(x, y) & (z >= lo) & (z < hi)


def _distance_to_polyline(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) of points to a polyline with ``vertices`` (n, 2)."""
    best = np.full(np.broadcast(x, y).shape, np.inf)
    for (ax, ay), (bx, by) in itertools.pairwise(vertices):
        dx, dy = bx - ax, by - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - ax - t * dx, y - ay - t * dy))
    return best


#: Rigid anterior body array (vendor description): a curved polycarbonate housing 6 mm thick and
#: 300 mm long over the chest, on a holder 251 mm above the table top at its apex; mean μ 0.101 /cm at
#: 511 keV (housing 0.100 plus 12 pre-amplifier modules spread over its 0.76 l).
ANTERIOR_ARRAY = RigidCoilTemplate(
    name="anterior_array",
    midline_x_height_mm=(
        (-174.8, 156.0), (-150.0, 193.3), (-125.0, 214.6), (-100.0, 229.1), (-75.0, 239.1),
        (-50.0, 245.9), (-25.0, 249.7), (0.0, 251.0), (25.0, 249.7), (50.0, 245.9), (75.0, 239.1),
        (100.0, 229.1), (125.0, 214.6), (150.0, 193.3), (174.8, 156.0),
    ),
    wall_thickness_mm=6.0,
    length_mm=300.0,
    mean_mu_per_cm=0.101,
)  # fmt: skip

COIL_TEMPLATES: dict[str, RigidCoilTemplate] = {ANTERIOR_ARRAY.name: ANTERIOR_ARRAY}


def coil_template(name: str) -> RigidCoilTemplate:
    """The template of a named coil (error naming the known ones)."""
    if name not in COIL_TEMPLATES:
        raise ValueError(
            f"no hardware template for coil {name!r}; known: {', '.join(sorted(COIL_TEMPLATES))}"
        )
    return COIL_TEMPLATES[name]


def placed_coils(names: Sequence[str], table_top_y_mm: float, z_centre_mm: float = 0.0) -> list[PlacedCoil]:
    """The named coils placed relative to the table top (LPS mm) and the landmark ``z_centre_mm``."""
    return [PlacedCoil(coil_template(n), table_top_y_mm, z_centre_mm) for n in names]


def coil_fraction(grid: VoxelGrid, coil: PlacedCoil, n_subsamples: int = 5) -> np.ndarray:
    """Fraction (0..1, float32, grid shape) of each voxel inside the coil on an axis-aligned grid:
    ``n_subsamples``² points per voxel in the transverse plane, exact overlap along z."""
    size = np.diag(grid.affine_zyx[:3, :3])
    offsets = (np.arange(n_subsamples) + 0.5) / n_subsamples - 0.5
    axes = [grid.affine_zyx[a, 3] + size[a] * np.arange(grid.shape_zyx[a]) for a in range(3)]
    y = (axes[1][:, None] + size[1] * offsets[None, :]).reshape(-1)
    x = (axes[2][:, None] + size[2] * offsets[None, :]).reshape(-1)
    inside = coil.contains_xy(x[None, :], y[:, None]).astype(np.float32)
    ny, nx = grid.shape_zyx[1], grid.shape_zyx[2]
    plane = inside.reshape(ny, n_subsamples, nx, n_subsamples).mean(axis=(1, 3))
    lo, hi = coil.z_range_mm()
    overlap = np.minimum(axes[0] + size[0] / 2, hi) - np.maximum(axes[0] - size[0] / 2, lo)
    along_z = np.clip(overlap / size[0], 0.0, 1.0).astype(np.float32)
    return along_z[:, None, None] * plane[None, :, :]
