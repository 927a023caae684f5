"""FDG torso phantom with cardiac uptake and arms, in patient coordinates (LPS, mm, isocentre at 0).

Layout (documented so that MR-based attenuation correction can align MR images with it; it follows
the thorax of issue 3: lungs, heart with LV/RV blood pools and myocardium, aorta, liver, subcutaneous
and epicardial fat, spine and ribs, arms reaching beyond a 500 mm MR field of view):

==================  ======================================================================
body                elliptic cylinder, semi-axes x 170, y 115, z from -200 to +200
subcutaneous fat    outer 12 mm of the body
lungs               ellipsoids at x = ∓80 (right/left), y -5, z +50; semi-axes 55, 70, 120
heart               ellipsoid at x +25 (patient left), y -35 (anterior), z -10; 50, 42, 55;
                    LV blood (x +35) 25, 20, 35; RV blood (x -5, y -50) 20, 15, 35; 4 mm
                    epicardial fat around it
aorta               descending, cylinder radius 12 at x +20, y +45, z -200..+120
liver               ellipsoid at x -55, y +5, z -130; semi-axes 95, 85, 70
spine               vertebral bodies: cancellous cylinder r 17 in a 3 mm cortical shell at
                    x 0, y +75; spinous process x ±5, y 95..105
ribs                10 elliptic cortical-bone arcs (8 mm) every 30 mm in z; sternum at y -106
arms                elliptic cylinders at x ±235, y +40; semi-axes 45, 50; humerus r 12
table               posterior, top at y +116 (attenuates, invisible to MR)
anterior coil       4 mm shell 15 mm above the anterior skin, |z| <= 150, with denser
                    pre-amplifier blocks (attenuates, invisible to MR)
==================  ======================================================================

μ at 511 keV varies smoothly within each tissue (soft tissue 0.096–0.099, fat 0.086–0.091, lung
0.020–0.040 denser posteriorly, cancellous bone 0.110–0.130, cortical bone 0.150–0.172 /cm).
Activity = SUV × (injected dose decayed to the scan start) / patient weight.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.pet.phantoms import PETPhantom, add_table
from hardware_sim.pet.shapes import (
    OpenGrid,
    assign_tissue,
    box,
    ellipsoid,
    elliptic_cylinder,
    smooth_field,
    sphere,
)
from recon.tof.geometry import ImageGrid

#: Tissue labels of the torso phantom (index = label value).
TORSO_LABELS = (
    "air", "soft_tissue", "fat", "lung", "blood", "myocardium", "liver",
    "cancellous_bone", "cortical_bone", "lesion", "table", "coil",
)  # fmt: skip
#: FDG SUV of each label (uptake about 60 min after injection).
TORSO_SUV = {
    "soft_tissue": 0.7, "fat": 0.3, "lung": 0.35, "blood": 1.7, "myocardium": 7.0, "liver": 2.3,
    "cancellous_bone": 1.5, "cortical_bone": 0.3, "lesion": 8.0,
}  # fmt: skip
#: μ range at 511 keV of each label, 1/cm.
TORSO_MU_RANGE_PER_CM = {
    "soft_tissue": (0.096, 0.099), "fat": (0.086, 0.091), "blood": (0.099, 0.101),
    "myocardium": (0.098, 0.100), "liver": (0.098, 0.101), "cancellous_bone": (0.110, 0.130),
    "cortical_bone": (0.150, 0.172), "lesion": (0.097, 0.099), "coil": (0.08, 0.12),
}  # fmt: skip

Z_RANGE = (-200.0, 200.0)


def torso_grid(voxel_size_mm: float) -> ImageGrid:
    """Grid covering the torso, arms, coil and table: x ±290, y -142..+148, z ±200 mm."""
    size = (voxel_size_mm,) * 3
    shape = tuple(int(np.ceil(extent / voxel_size_mm)) for extent in (400.0, 290.0, 580.0))
    centred = ImageGrid.centred(shape, size)  # type: ignore[arg-type]
    return ImageGrid(
        centred.shape_zyx,
        centred.voxel_size_mm,
        (centred.origin_mm[0], centred.origin_mm[1] + 3.0, centred.origin_mm[2]),
    )


class _Painter:
    """Paints labels and μ (varying within the tissue's range) into the phantom arrays."""

    def __init__(self, grid: ImageGrid, rng: np.random.Generator) -> None:
        self.g = OpenGrid.of(grid)
        self.mu = np.zeros(grid.shape_zyx, np.float32)
        self.labels = np.zeros(grid.shape_zyx, np.uint8)
        self.field = smooth_field(grid.shape_zyx, grid.voxel_size_mm, 25.0, rng)

    def paint(self, mask: np.ndarray, label: str, mu_range: tuple[float, float] | None = None) -> None:
        value = TORSO_LABELS.index(label)
        assign_tissue(self.mu, self.labels, mask, value, mu_range or TORSO_MU_RANGE_PER_CM[label], self.field)


def _paint_trunk(p: _Painter) -> None:
    g = p.g
    body = elliptic_cylinder(g, (0.0, 0.0), (170.0, 115.0), Z_RANGE)
    p.paint(body, "fat")
    p.paint(elliptic_cylinder(g, (0.0, 0.0), (158.0, 103.0), Z_RANGE), "soft_tissue")
    lungs = ellipsoid(g, (-80.0, -5.0, 50.0), (55.0, 70.0, 120.0)) | ellipsoid(
        g, (80.0, -5.0, 50.0), (55.0, 70.0, 120.0)
    )
    gradient = np.clip((g.y + 75.0) / 140.0, 0.0, 1.0)  # 0 anterior, 1 posterior
    lung_mu = 0.020 + 0.020 * (0.6 * gradient + 0.4 * p.field)
    p.labels[lungs] = TORSO_LABELS.index("lung")
    p.mu[lungs] = np.broadcast_to(lung_mu, p.mu.shape)[lungs]
    p.paint(ellipsoid(g, (-55.0, 5.0, -130.0), (95.0, 85.0, 70.0)) & body, "liver")
    heart_centre = (25.0, -35.0, -10.0)
    p.paint(ellipsoid(g, heart_centre, (54.0, 46.0, 59.0)), "fat")
    p.paint(ellipsoid(g, heart_centre, (50.0, 42.0, 55.0)), "myocardium")
    p.paint(ellipsoid(g, (35.0, -35.0, -10.0), (25.0, 20.0, 35.0)), "blood")
    p.paint(ellipsoid(g, (-5.0, -50.0, -10.0), (20.0, 15.0, 35.0)), "blood")
    p.paint(elliptic_cylinder(g, (20.0, 45.0), (12.0, 12.0), (-200.0, 120.0)), "blood")


def _paint_bones(p: _Painter) -> None:
    g = p.g
    p.paint(elliptic_cylinder(g, (0.0, 75.0), (20.0, 20.0), Z_RANGE), "cortical_bone")
    p.paint(elliptic_cylinder(g, (0.0, 75.0), (17.0, 17.0), Z_RANGE), "cancellous_bone")
    p.paint(box(g, (-5.0, 95.0, Z_RANGE[0]), (5.0, 105.0, Z_RANGE[1])), "cortical_bone")
    p.paint(box(g, (-12.0, -112.0, -60.0), (12.0, -100.0, 100.0)), "cancellous_bone")
    outer = elliptic_cylinder(g, (0.0, 0.0), (148.0, 103.0), Z_RANGE)
    inner = elliptic_cylinder(g, (0.0, 0.0), (140.0, 95.0), Z_RANGE)
    lateral = g.full(np.abs(g.x) > 20.0)
    for z_rib in np.arange(-150.0, 151.0, 30.0):
        slab = g.full(np.abs(g.z - z_rib) <= 4.0)
        p.paint(outer & ~inner & slab & lateral, "cortical_bone")


def _paint_arms(p: _Painter) -> None:
    g = p.g
    for side in (-1.0, 1.0):
        centre = (side * 235.0, 40.0)
        p.paint(elliptic_cylinder(g, centre, (45.0, 50.0), Z_RANGE), "fat")
        p.paint(elliptic_cylinder(g, centre, (39.0, 44.0), Z_RANGE), "soft_tissue")
        p.paint(elliptic_cylinder(g, centre, (12.0, 12.0), Z_RANGE), "cortical_bone")
        p.paint(elliptic_cylinder(g, centre, (7.0, 7.0), Z_RANGE), "cancellous_bone")


def _paint_coil(p: _Painter) -> None:
    g = p.g
    shell = elliptic_cylinder(g, (0.0, 0.0), (189.0, 134.0), (-150.0, 150.0))
    shell &= ~elliptic_cylinder(g, (0.0, 0.0), (185.0, 130.0), (-150.0, 150.0))
    shell &= g.full(g.y < -20.0)
    p.paint(shell, "coil")
    for x_mm in (-100.0, -35.0, 35.0, 100.0):
        for z_mm in (-100.0, 0.0, 100.0):
            y_mm = -134.0 * np.sqrt(max(1.0 - (x_mm / 189.0) ** 2, 0.0)) - 4.0
            block = box(g, (x_mm - 5.0, y_mm - 3.0, z_mm - 5.0), (x_mm + 5.0, y_mm + 3.0, z_mm + 5.0))
            p.paint(block, "coil", (0.25, 0.25))


def torso_phantom(
    voxel_size_mm: float = 2.5,
    injected_dose_bq: float = 370e6,
    uptake_time_s: float = 3600.0,
    patient_weight_kg: float = 75.0,
    half_life_s: float = 6586.2,
    seed: int = 0,
) -> PETPhantom:
    """The FDG torso phantom (see the module docstring for the layout and values)."""
    rng = np.random.default_rng(seed)
    grid = torso_grid(voxel_size_mm)
    painter = _Painter(grid, rng)
    _paint_trunk(painter)
    _paint_bones(painter)
    _paint_arms(painter)
    g = painter.g
    for centre, radius in (((-80.0, -20.0, 80.0), 8.0), ((-70.0, 20.0, -130.0), 10.0)):
        painter.paint(sphere(g, centre, radius), "lesion")
    _paint_coil(painter)
    add_table(grid, painter.mu, painter.labels, TORSO_LABELS.index("table"), top_y_mm=116.0, rng=rng)
    suv_unit_bq_per_ml = (
        injected_dose_bq * 2.0 ** (-uptake_time_s / half_life_s) / (patient_weight_kg * 1000.0)
    )
    suv_of_label = np.zeros(len(TORSO_LABELS), np.float32)
    for name, suv in TORSO_SUV.items():
        suv_of_label[TORSO_LABELS.index(name)] = suv
    activity = (suv_of_label[painter.labels] * suv_unit_bq_per_ml).astype(np.float32)
    return PETPhantom(
        "torso", grid, activity, painter.mu, painter.labels, TORSO_LABELS, weight_kg=patient_weight_kg
    )
