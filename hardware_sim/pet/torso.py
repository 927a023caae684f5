"""FDG torso phantom with cardiac uptake and arms, in patient coordinates (LPS, mm, isocentre at 0).

The anatomy is the MR simulator's thorax (:func:`hardware_sim.mr.anatomy.thorax_label_map`, one anatomy
for both modalities): body, subcutaneous fat, arms with humeri, lungs, liver, spine, descending and
ascending aorta, pulmonary artery, and the heart at the time-averaged contraction of a normal beat (PET
averages over thousands of beats).  The MR tissues map to PET labels (muscle → soft tissue, all blood
pools → blood, bone marrow → cancellous bone).  Only PET-side properties are added here:

==================  ======================================================================
μ at 511 keV        varies smoothly within each tissue (soft tissue 0.096–0.099, fat 0.086–0.091,
                    lung 0.020–0.040 denser posteriorly, cancellous bone 0.110–0.130, cortical
                    bone 0.150–0.172 /cm)
FDG uptake          SUV per label (:data:`TORSO_SUV`)
lesions             two spheres: r 8 mm in the right lung at (-80, -20, 80), r 10 mm in the liver
                    at (-70, 20, -130)
table               posterior, top at y +116 (1 mm below the skin; attenuates, invisible to MR); as built
                    at the simulated site (:data:`SITE_HARDWARE`) 3 mm lower, other laminate
anterior coil       a *rigid* anterior receive array on a holder fixed to the table: polycarbonate
                    housing between the ellipses 180 × 132 and 186 × 138 mm (centred on the
                    table axis, 116 mm above the table top), where y <= -40 mm, |z| <= 150 mm,
                    μ 0.09–0.11 /cm varying along it, and 12 pre-amplifier blocks (10 × 6 × 10 mm,
                    μ 0.25 /cm) on its outer face (attenuates, invisible to MR)
==================  ======================================================================

The ribs, sternum and spinous process of the former PET-only torso are not part of the shared anatomy
and are therefore absent.  Activity = SUV × (injected dose decayed to the scan start) / patient weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.mr.anatomy import thorax_label_map
from hardware_sim.mr.physiology import nominal_state
from hardware_sim.mr.tissues import Tissue
from hardware_sim.pet.phantoms import PETPhantom, add_table
from hardware_sim.pet.shapes import OpenGrid, assign_tissue, box, elliptic_cylinder, smooth_field, sphere
from recon.tof.geometry import ImageGrid

#: Tissue labels of the torso phantom (index = label value).
TORSO_LABELS = (
    "air", "soft_tissue", "fat", "lung", "blood", "myocardium", "liver",
    "cancellous_bone", "cortical_bone", "lesion", "table", "coil",
)  # fmt: skip
#: PET label of each MR tissue of the shared thorax.
MR_TISSUE_TO_LABEL = {
    Tissue.AIR: "air", Tissue.LUNG: "lung", Tissue.FAT: "fat", Tissue.MUSCLE: "soft_tissue",
    Tissue.MYOCARDIUM: "myocardium", Tissue.LV_BLOOD: "blood", Tissue.RV_BLOOD: "blood",
    Tissue.AORTA_BLOOD: "blood", Tissue.PA_BLOOD: "blood", Tissue.LIVER: "liver",
    Tissue.CORTICAL_BONE: "cortical_bone", Tissue.BONE_MARROW: "cancellous_bone",
    Tissue.DESC_AORTA_BLOOD: "blood", Tissue.LA_BLOOD: "blood", Tissue.RA_BLOOD: "blood",
    Tissue.LVOT_BLOOD: "blood", Tissue.RVOT_BLOOD: "blood", Tissue.CAVA_BLOOD: "blood",
    Tissue.PERICARDIUM: "soft_tissue",
}  # fmt: skip
#: FDG SUV of each label (uptake about 60 min after injection).
TORSO_SUV = {
    "soft_tissue": 0.7, "fat": 0.3, "lung": 0.35, "blood": 1.7, "myocardium": 7.0, "liver": 2.3,
    "cancellous_bone": 1.5, "cortical_bone": 0.3, "lesion": 8.0,
}  # fmt: skip
#: μ range at 511 keV of each label, 1/cm.
TORSO_MU_RANGE_PER_CM = {
    "soft_tissue": (0.096, 0.099), "fat": (0.086, 0.091), "blood": (0.099, 0.101),
    "myocardium": (0.098, 0.100), "liver": (0.098, 0.101), "cancellous_bone": (0.110, 0.130),
    "cortical_bone": (0.150, 0.172), "lesion": (0.097, 0.099), "coil": (0.09, 0.11),
}  # fmt: skip
#: Table top (patient y, posterior +), mm.
TABLE_TOP_Y_MM = 116.0
#: μ of the coil's pre-amplifier blocks (electronics, shielding), 1/cm.
PREAMP_MU_PER_CM = 0.25

Z_RANGE = (-200.0, 200.0)


@dataclass(frozen=True)
class SiteHardware:
    """The table and anterior coil as they are at a site, against the vendor description the μ-map templates of
    :mod:`recon.petmr_ac` follow (:data:`NOMINAL_HARDWARE`: table top at 116 mm, 2 mm skins on a 26 mm core,
    coil housing 6 mm thick, 12 pre-amplifiers of μ 0.25 /cm at x = ±40, ±110 mm).

    Attributes:
        table_top_offset_mm: table top below (+) its nominal height, mm (mounting and sag tolerance).
        table_lateral_offset_mm: table centre off the axis, mm (+ = patient left).
        table_skin_mm, table_core_mm: carbon-fibre skin and foam core thickness, mm (another laminate).
        coil_offset_xy_mm: coil holder position off its nominal place relative to the table, mm (x, y).
        coil_housing_mm: polycarbonate housing thickness, mm.
        preamp_x_mm: lateral positions of the pre-amplifier columns (three along z each), mm.
        preamp_mu_per_cm: μ of the pre-amplifier blocks, 1/cm.
    """

    table_top_offset_mm: float
    table_lateral_offset_mm: float
    table_skin_mm: float
    table_core_mm: float
    coil_offset_xy_mm: tuple[float, float]
    coil_housing_mm: float
    preamp_x_mm: tuple[float, ...]
    preamp_mu_per_cm: float


#: The vendor description (what the templates model).
NOMINAL_HARDWARE = SiteHardware(0.0, 0.0, 2.0, 26.0, (0.0, 0.0), 6.0, (-110.0, -40.0, 40.0, 110.0), 0.25)
#: The simulated site (default): within typical tolerances of the description, never equal to it: table 3 mm
#: lower and 2 mm to the left with 2.5 mm skins on a 24 mm core; coil holder 4 mm left and 5 mm further
#: anterior, a 5 mm housing, pre-amplifiers at x = ±30, ±95 mm with μ 0.30 /cm.
SITE_HARDWARE = SiteHardware(3.0, 2.0, 2.5, 24.0, (4.0, -5.0), 5.0, (-95.0, -30.0, 30.0, 95.0), 0.30)


def mean_contraction(heart_rate_bpm: float = 60.0) -> float:
    """Time average of the normal beat's contraction curve (0 = end-diastole, 1 = end-systole)."""
    return float(nominal_state(240, heart_rate_bpm).contraction.mean())


def torso_grid(voxel_size_mm: float) -> ImageGrid:
    """Grid covering the torso, arms, coil and table: x ±290, y -152..+148, z ±200 mm (the site's coil reaches
    y ≈ -146 mm)."""
    size = (voxel_size_mm,) * 3
    shape = tuple(int(np.ceil(extent / voxel_size_mm)) for extent in (400.0, 300.0, 580.0))
    centred = ImageGrid.centred(shape, size)  # type: ignore[arg-type]
    return ImageGrid(
        centred.shape_zyx,
        centred.voxel_size_mm,
        (centred.origin_mm[0], centred.origin_mm[1] - 2.0, centred.origin_mm[2]),
    )


def anatomy_labels(grid: ImageGrid, contraction: float) -> np.ndarray:
    """PET labels (uint8, ``grid.shape_zyx``) of the shared MR thorax at the voxel centres, slab by slab."""
    lut = np.array([TORSO_LABELS.index(MR_TISSUE_TO_LABEL[t]) for t in Tissue], np.uint8)
    z_mm, y_mm, x_mm = (grid.axis_centres_mm(axis) for axis in range(3))
    yy, xx = np.meshgrid(y_mm, x_mm, indexing="ij")
    labels = np.zeros(grid.shape_zyx, np.uint8)
    for k, z in enumerate(z_mm):
        points = np.stack([xx, yy, np.full_like(xx, z)], axis=-1)
        labels[k] = lut[thorax_label_map(points, contraction)]
    return labels


class _Painter:
    """Paints labels and μ (varying within the tissue's range) into the phantom arrays."""

    def __init__(self, grid: ImageGrid, rng: np.random.Generator, labels: np.ndarray) -> None:
        self.g = OpenGrid.of(grid)
        self.mu = np.zeros(grid.shape_zyx, np.float32)
        self.labels = labels
        self.field = smooth_field(grid.shape_zyx, grid.voxel_size_mm, 25.0, rng)

    def paint(self, mask: np.ndarray, label: str, mu_range: tuple[float, float] | None = None) -> None:
        value = TORSO_LABELS.index(label)
        assign_tissue(self.mu, self.labels, mask, value, mu_range or TORSO_MU_RANGE_PER_CM[label], self.field)

    def paint_anatomy(self) -> None:
        """μ of every anatomical label (lung denser posteriorly), in place."""
        for name, mu_range in TORSO_MU_RANGE_PER_CM.items():
            if name != "coil":
                self.paint(self.labels == TORSO_LABELS.index(name), name, mu_range)
        lungs = self.labels == TORSO_LABELS.index("lung")
        gradient = np.clip((self.g.y + 75.0) / 140.0, 0.0, 1.0)  # 0 anterior, 1 posterior
        lung_mu = 0.020 + 0.020 * (0.6 * gradient + 0.4 * self.field)
        self.mu[lungs] = np.broadcast_to(lung_mu, self.mu.shape)[lungs]


def _paint_coil(p: _Painter, table_top_y_mm: float, hw: SiteHardware = NOMINAL_HARDWARE) -> None:
    """The rigid anterior array (see the module docstring), positioned relative to the table top."""
    g = p.g
    centre = (hw.coil_offset_xy_mm[0], table_top_y_mm - TABLE_TOP_Y_MM + hw.coil_offset_xy_mm[1])
    z_range = (-150.0, 150.0)
    outer, inner = (186.0, 138.0), (186.0 - hw.coil_housing_mm, 138.0 - hw.coil_housing_mm)
    shell = elliptic_cylinder(g, centre, outer, z_range)
    shell &= ~elliptic_cylinder(g, centre, inner, z_range)
    shell &= g.full(g.y <= centre[1] - 40.0)
    p.paint(shell, "coil")
    for x_mm in hw.preamp_x_mm:
        for z_mm in (-100.0, 0.0, 100.0):
            y_mm = centre[1] - 138.0 * np.sqrt(max(1.0 - (x_mm / 186.0) ** 2, 0.0)) - 3.0
            x_c = x_mm + centre[0]
            block = box(g, (x_c - 5.0, y_mm - 3.0, z_mm - 5.0), (x_c + 5.0, y_mm + 3.0, z_mm + 5.0))
            p.paint(block, "coil", (hw.preamp_mu_per_cm, hw.preamp_mu_per_cm))


def torso_phantom(
    voxel_size_mm: float = 2.5,
    injected_dose_bq: float = 370e6,
    uptake_time_s: float = 3600.0,
    patient_weight_kg: float = 75.0,
    half_life_s: float = 6586.2,
    seed: int = 0,
    hardware: SiteHardware = SITE_HARDWARE,
) -> PETPhantom:
    """The FDG torso phantom (see the module docstring for the anatomy and values) on the table and under the
    coil of ``hardware`` (default: the simulated site's, which deviates from the templates' description)."""
    rng = np.random.default_rng(seed)
    grid = torso_grid(voxel_size_mm)
    painter = _Painter(grid, rng, anatomy_labels(grid, mean_contraction()))
    painter.paint_anatomy()
    g = painter.g
    for centre, radius in (((-80.0, -20.0, 80.0), 8.0), ((-70.0, 20.0, -130.0), 10.0)):
        painter.paint(sphere(g, centre, radius), "lesion")
    table_top_y_mm = TABLE_TOP_Y_MM + hardware.table_top_offset_mm
    _paint_coil(painter, table_top_y_mm, hardware)
    add_table(
        grid, painter.mu, painter.labels, TORSO_LABELS.index("table"), top_y_mm=table_top_y_mm, rng=rng,
        skin_mm=hardware.table_skin_mm, core_mm=hardware.table_core_mm,
        centre_x_mm=hardware.table_lateral_offset_mm,
    )  # fmt: skip
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
