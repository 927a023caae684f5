"""PET phantoms: activity (Bq/ml) and true μ-map at 511 keV on a voxel grid in scanner coordinates.

Frame of reference: scanner coordinates in mm, equal to DICOM patient coordinates (LPS) for a
head-first supine patient with the isocentre at the origin: ``+x`` patient left, ``+y`` posterior
(towards the table), ``+z`` superior.  Arrays use the image axis order ``(z, y, x)``.

The patient table (and, in the torso, the MR surface coils) are part of the μ-map and attenuate and
scatter photons, but carry the label ``table``/``coil`` so an MR simulator can leave them invisible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.pet.shapes import OpenGrid, assign_tissue, elliptic_cylinder, smooth_field, sphere
from recon.tof.geometry import ImageGrid

#: μ of water at 511 keV, 1/cm (NIST).
MU_WATER_PER_CM = 0.096
#: μ of PMMA (density 1.19 g/ml) at 511 keV, 1/cm.
MU_PMMA_PER_CM = 0.111
#: NEMA IEC sphere inner diameters, mm.
NEMA_SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)


@dataclass(frozen=True)
class PETPhantom:
    """A voxelised emission/attenuation phantom (ground truth; never handed to a reconstruction).

    Attributes:
        name: phantom name (``"nema"``, ``"torso"``, ...).
        grid: voxel grid of all maps (scanner coordinates).
        activity_bq_per_ml: activity concentration at the start of the acquisition, shape
            ``grid.shape_zyx``, float32, Bq/ml, >= 0; emission is uniform within each voxel.
        mu_per_cm: linear attenuation coefficient at 511 keV, shape ``grid.shape_zyx``, float32, 1/cm, >= 0.
        labels: tissue/material label of every voxel, shape ``grid.shape_zyx``, uint8; index into
            ``label_names``.
        label_names: name of each label value (``label_names[0] == "air"``).
        weight_kg: phantom/patient weight for SUV, kg.
    """

    name: str
    grid: ImageGrid
    activity_bq_per_ml: np.ndarray
    mu_per_cm: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    weight_kg: float

    def __post_init__(self) -> None:
        shape = self.grid.shape_zyx
        for field, dtype in (
            ("activity_bq_per_ml", np.float32),
            ("mu_per_cm", np.float32),
            ("labels", np.uint8),
        ):
            array = getattr(self, field)
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(
                    f"PETPhantom.{field} must be {np.dtype(dtype)} of shape {shape}, got {array.dtype} {array.shape}"
                )
        if np.any(self.activity_bq_per_ml < 0) or np.any(self.mu_per_cm < 0):
            raise ValueError("PETPhantom activity and μ must be >= 0")
        if int(self.labels.max()) >= len(self.label_names) or self.label_names[0] != "air":
            raise ValueError("PETPhantom labels must index label_names, with label 0 = 'air'")
        if self.weight_kg <= 0:
            raise ValueError("PETPhantom.weight_kg must be > 0")

    @property
    def total_activity_bq(self) -> float:
        """Total activity in the phantom, Bq."""
        return float(self.activity_bq_per_ml.sum(dtype=np.float64) * self.grid.voxel_volume_ml)

    def label_mask(self, name: str) -> np.ndarray:
        """Boolean mask of the voxels labelled ``name``."""
        return self.labels == self.label_names.index(name)


def _empty(grid: ImageGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = grid.shape_zyx
    return np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, np.uint8)


def add_table(
    grid: ImageGrid,
    mu: np.ndarray,
    labels: np.ndarray,
    label: int,
    top_y_mm: float,
    rng: np.random.Generator,
    skin_mm: float = 2.0,
    core_mm: float = 26.0,
    centre_x_mm: float = 0.0,
) -> None:
    """Paint a patient table (carbon-fibre skins ``skin_mm``, foam core ``core_mm``, width 440 mm centred at
    ``centre_x_mm``) below ``top_y_mm``.

    The skins are thinner than a voxel, so each voxel gets the exact partial-volume mix along y of skin
    (μ 0.14–0.16 /cm) and core (0.004–0.008 /cm) it overlaps: point sampling at voxel centres would lose
    the skins at 4 mm voxels and make the table attenuate a third of its design.  Only air voxels are painted.
    """
    g = OpenGrid.of(grid)
    field = smooth_field(grid.shape_zyx, grid.voxel_size_mm, 20.0, rng)
    half_voxel = grid.voxel_size_mm[1] / 2.0
    low, high = g.y - half_voxel, g.y + half_voxel

    def overlap_mm(start_mm: float, stop_mm: float) -> np.ndarray:
        return np.clip(np.minimum(high, stop_mm) - np.maximum(low, start_mm), 0.0, None)

    top, bottom = top_y_mm, top_y_mm + 2.0 * skin_mm + core_mm
    skin = overlap_mm(top, top + skin_mm) + overlap_mm(bottom - skin_mm, bottom)
    core = overlap_mm(top + skin_mm, bottom - skin_mm)
    skin_mu, core_mu = 0.14 + 0.02 * field, 0.004 + 0.004 * field
    table_mu = (skin * skin_mu + core * core_mu) / (2.0 * half_voxel)
    inside = g.full(((skin + core) > 0.0) & (np.abs(g.x - centre_x_mm) <= 220.0)) & (labels == 0)
    labels[inside] = label
    mu[inside] = table_mu[inside]


def nema_grid(voxel_size_mm: float) -> ImageGrid:
    """Grid covering the NEMA IEC body phantom and the table (x ±162, y -154..116, z ±100 mm)."""
    size = (voxel_size_mm, voxel_size_mm, voxel_size_mm)
    shape = (
        int(np.ceil(200 / voxel_size_mm)),
        int(np.ceil(270 / voxel_size_mm)),
        int(np.ceil(324 / voxel_size_mm)),
    )
    centred = ImageGrid.centred(shape, size)
    origin = (centred.origin_mm[0], centred.origin_mm[1] - 19.0, centred.origin_mm[2])
    return ImageGrid(shape, size, origin)


def _nema_body(g: OpenGrid, inset_mm: float, z_half_mm: float) -> np.ndarray:
    """Cross-section of the IEC body phantom (approximate): a half-ellipse 150 x 147 mm anteriorly
    (y <= 0) and a 300 x 77 mm block with 77 mm rounded corners posteriorly; ``inset_mm`` shrinks it."""
    a, b, c, r = 150.0 - inset_mm, 147.0 - inset_mm, 73.0, 77.0 - inset_mm
    top = (g.y <= 0) & ((g.x / a) ** 2 + (g.y / b) ** 2 <= 1.0)
    y_clip = np.clip(g.y, 0.0, r)
    half_width = c + np.sqrt(np.maximum(r**2 - y_clip**2, 0.0))
    bottom = (g.y > 0) & (g.y <= r) & (np.abs(g.x) <= half_width)
    return g.full((top | bottom) & (np.abs(g.z) <= z_half_mm))


def nema_sphere_centres_mm() -> list[tuple[float, float, float]]:
    """Centres (x, y, z) of the six spheres, smallest first, on a 57.2 mm circle in the plane z = 0."""
    angles = np.deg2rad(np.arange(6) * 60.0 + 180.0)
    return [(57.2 * float(np.cos(a)), 57.2 * float(np.sin(a)), 0.0) for a in angles]


def nema_iec_phantom(
    voxel_size_mm: float = 2.0,
    background_bq_per_ml: float = 5300.0,
    sphere_to_background: float = 4.0,
    seed: int = 0,
) -> PETPhantom:
    """NEMA NU 2 / IEC body phantom: water background, six hot spheres (10–37 mm, 4:1), cold lung insert
    (Ø 51 mm, μ 0.026–0.034 /cm), PMMA walls (3 mm body, 1 mm spheres), on a patient table."""
    rng = np.random.default_rng(seed)
    grid = nema_grid(voxel_size_mm)
    g = OpenGrid.of(grid)
    activity, mu, labels = _empty(grid)
    names = ["air", "water", "pmma", "lung_insert", "table"] + [
        f"sphere_{d:.0f}mm" for d in NEMA_SPHERE_DIAMETERS_MM
    ]
    ones = np.ones(grid.shape_zyx, np.float32)
    add_table(grid, mu, labels, names.index("table"), top_y_mm=81.0, rng=rng)
    assign_tissue(mu, labels, _nema_body(g, 0.0, 93.0), 2, (MU_PMMA_PER_CM, MU_PMMA_PER_CM), ones)
    water = _nema_body(g, 3.0, 90.0)
    assign_tissue(mu, labels, water, 1, (MU_WATER_PER_CM, MU_WATER_PER_CM), ones)
    activity[water] = background_bq_per_ml
    lung_wall = elliptic_cylinder(g, (0.0, 0.0), (25.5, 25.5), (-90.0, 90.0))
    lung = elliptic_cylinder(g, (0.0, 0.0), (23.5, 23.5), (-90.0, 90.0))
    assign_tissue(mu, labels, lung_wall, 2, (MU_PMMA_PER_CM, MU_PMMA_PER_CM), ones)
    assign_tissue(
        mu, labels, lung, 3, (0.026, 0.034), smooth_field(grid.shape_zyx, grid.voxel_size_mm, 10.0, rng)
    )
    activity[lung_wall] = 0.0
    for index, (diameter, centre) in enumerate(
        zip(NEMA_SPHERE_DIAMETERS_MM, nema_sphere_centres_mm(), strict=True)
    ):
        wall = sphere(g, centre, diameter / 2.0 + 1.0)
        inner = sphere(g, centre, diameter / 2.0)
        assign_tissue(mu, labels, wall, 2, (MU_PMMA_PER_CM, MU_PMMA_PER_CM), ones)
        activity[wall] = 0.0
        assign_tissue(mu, labels, inner, 5 + index, (MU_WATER_PER_CM, MU_WATER_PER_CM), ones)
        activity[inner] = background_bq_per_ml * sphere_to_background
    return PETPhantom(
        "nema",
        grid,
        activity,
        mu,
        labels,
        tuple(names),
        weight_kg=float(water.sum() * grid.voxel_volume_ml / 1000.0),
    )


def uniform_cylinder_phantom(
    radius_mm: float = 100.0,
    length_mm: float = 200.0,
    activity_bq_per_ml: float = 5000.0,
    mu_per_cm: float = MU_WATER_PER_CM,
    voxel_size_mm: float = 2.0,
) -> PETPhantom:
    """A uniform water cylinder along z, centred at the isocentre (calibration / normalisation scan)."""
    n_xy = int(np.ceil((2 * radius_mm + 8) / voxel_size_mm))
    n_z = int(np.ceil((length_mm + 8) / voxel_size_mm))
    grid = ImageGrid.centred((n_z, n_xy, n_xy), (voxel_size_mm,) * 3)  # type: ignore[arg-type]
    activity, mu, labels = _empty(grid)
    inside = elliptic_cylinder(
        OpenGrid.of(grid), (0.0, 0.0), (radius_mm, radius_mm), (-length_mm / 2, length_mm / 2)
    )
    assign_tissue(mu, labels, inside, 1, (mu_per_cm, mu_per_cm), np.ones(grid.shape_zyx, np.float32))
    activity[inside] = activity_bq_per_ml
    weight_kg = float(inside.sum() * grid.voxel_volume_ml / 1000.0)
    return PETPhantom("cylinder", grid, activity, mu, labels, ("air", "water"), weight_kg=weight_kg)


def point_source_phantom(
    position_xyz_mm: tuple[float, float, float],
    activity_bq: float = 1.0e6,
    voxel_size_mm: float = 1.0,
    medium_radius_mm: float = 0.0,
    medium_mu_per_cm: float = MU_WATER_PER_CM,
    half_extent_mm: float = 120.0,
) -> PETPhantom:
    """One active voxel at ``position_xyz_mm`` (in air, or inside a centred water cylinder of
    ``medium_radius_mm`` along z that fills the grid axially), on a cubic grid of ``±half_extent_mm``."""
    n = int(np.ceil(2 * half_extent_mm / voxel_size_mm)) | 1
    grid = ImageGrid.centred((n, n, n), (voxel_size_mm,) * 3)  # type: ignore[arg-type]
    activity, mu, labels = _empty(grid)
    if medium_radius_mm > 0:
        inside = elliptic_cylinder(
            OpenGrid.of(grid), (0.0, 0.0), (medium_radius_mm, medium_radius_mm), (-1e6, 1e6)
        )
        assign_tissue(
            mu, labels, inside, 1, (medium_mu_per_cm, medium_mu_per_cm), np.ones(grid.shape_zyx, np.float32)
        )
    index = grid.index_of_points(np.asarray([position_xyz_mm], dtype=np.float64))[0]
    if np.any(index < 0):
        raise ValueError(f"point source {position_xyz_mm} lies outside the grid")
    activity[tuple(index)] = activity_bq / grid.voxel_volume_ml
    return PETPhantom("point", grid, activity, mu, labels, ("air", "water"), weight_kg=1.0)
