"""Analytic 3-D thorax phantom with a beating heart, in patient coordinates.

Frame of reference (shared with the PET simulator): DICOM/ISMRMRD patient coordinates **LPS** in mm,
x → patient left, y → posterior, z → superior; the origin is the magnet isocentre; the patient lies
head first supine (HFS) with the torso axis along z.  The torso is an elliptic cylinder (semi-axes
170 mm left-right, 115 mm anterior-posterior, |z| ≤ 320 mm) with arms beside it reaching to
|x| ≈ 275 mm, i.e. beyond a 450 mm MR field of view.

Every structure is a signed-distance-like function d (mm, negative inside); its occupancy is the
ramp ``clip(0.5 - d / edge_mm, 0, 1)`` (partial volume over one fine pixel).  Structures are painted
in order, a later one replacing earlier ones by its occupancy.  The great vessels (aorta, pulmonary
arteries, venae cavae) are static tubes (:mod:`hardware_sim.mr.vessels`).  The heart
(:mod:`hardware_sim.mr.heart_shapes`: left ventricle as truncated prolate ellipsoids, cavity and
epicardium with constant myocardial volume, papillary muscles and trabeculae; right ventricle as a
crescent around it; atria above the base plane; aortic root and RV outflow tract up to the valves;
epicardial fat and pericardium) changes with the *contraction* ``c`` (0 = end-diastole, 1 =
end-systole of a normal beat): LV cavity volume ``EDV - c·SV``, the base (mitral annulus) descending
``BASE_DESCENT_MM·c`` towards the fixed apex, so that basal slices show the atria and outflow tracts
in systole as on a scanner.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr import heart_shapes
from hardware_sim.mr.heart_frame import (
    HEART_BASE_CENTRE_MM,
    HEART_LONG_AXIS,
    HEART_SEPTAL_AXIS,
    HEART_THIRD_AXIS,
    FloatArray,
    Points,
    to_heart_frame,
)
from hardware_sim.mr.tissues import N_TISSUES, Tissue
from hardware_sim.mr.vessels import VESSEL_TREE, vessel_distance

__all__ = [
    "HEART_BASE_CENTRE_MM",
    "HEART_LONG_AXIS",
    "HEART_SEPTAL_AXIS",
    "HEART_THIRD_AXIS",
    "to_heart_frame",
]
DistanceFunction = Callable[[Points], FloatArray]

TORSO_SEMI_AXES_MM = (170.0, 115.0)
TORSO_HALF_LENGTH_MM = 320.0
ARM_CENTRE_X_MM = 232.0
ARM_SEMI_AXES_MM = (42.0, 50.0)
SUBCUTANEOUS_FAT_MM = 15.0
BASE_DESCENT_MM = 13.0
"""Descent of the mitral annulus towards the (fixed) apex from end-diastole to end-systole (normal
adults ≈ 10-15 mm; Rogers et al., Circulation 1991)."""


@dataclass(frozen=True)
class HeartParameters:
    """Volumes that define the heart model (all in ml).

    ``lv_esv_ml``/``lv_sv_ml``: LV end-systolic volume and stroke volume (EDV = ESV + SV);
    ``rv_esv_ml``/``rv_sv_ml`` likewise for the RV (target volumes, the crescent geometry is scaled to
    them approximately; exact RV volumes are measured numerically in the truth);
    ``myocardial_volume_ml``: LV myocardial volume (constant over the cycle);
    ``lv_length_ed_mm``: LV epicardial long-axis length at end-diastole (mm).
    """

    lv_esv_ml: float = 60.0
    lv_sv_ml: float = 70.0
    rv_esv_ml: float = 70.0
    rv_sv_ml: float = 70.0
    myocardial_volume_ml: float = 110.0
    lv_length_ed_mm: float = 88.0

    def __post_init__(self) -> None:
        if min(self.lv_esv_ml, self.lv_sv_ml, self.rv_esv_ml, self.rv_sv_ml, self.myocardial_volume_ml) <= 0:
            raise ValueError("heart volumes must be positive")


@dataclass(frozen=True)
class HeartGeometry:
    """Heart shape at one contraction state (lengths in mm along the heart axes).

    ``w_base_mm``: base plane position along the long axis (0 at end-diastole); ``lv_cavity_*``:
    radius/length of the cavity half-ellipsoid; ``lv_epi_*``: epicardial half-ellipsoid; ``rv_*``:
    RV cavity semi-axes (septal direction, third direction, long axis) and centre offset along the
    septal axis.
    """

    w_base_mm: float
    lv_cavity_radius_mm: float
    lv_cavity_length_mm: float
    lv_epi_radius_mm: float
    lv_epi_length_mm: float
    rv_semi_axes_mm: tuple[float, float, float]
    rv_offset_mm: float

    @property
    def lv_cavity_volume_ml(self) -> float:
        """Analytic LV cavity volume (half prolate ellipsoid), ml."""
        return 2.0 / 3.0 * np.pi * self.lv_cavity_radius_mm**2 * self.lv_cavity_length_mm / 1e3


def _geometry(params: HeartParameters, contraction: float, rv_scale: float) -> HeartGeometry:
    lv_volume_mm3 = (params.lv_esv_ml + params.lv_sv_ml * (1.0 - contraction)) * 1e3
    epi_length = params.lv_length_ed_mm - BASE_DESCENT_MM * contraction
    cavity_length = epi_length - 8.0
    cavity_radius = np.sqrt(3.0 * lv_volume_mm3 / (2.0 * np.pi * cavity_length))
    myo_term = 3.0 * params.myocardial_volume_ml * 1e3 / (2.0 * np.pi)
    epi_radius = np.sqrt((myo_term + cavity_radius**2 * cavity_length) / epi_length)
    rv_axes = (30.0 * rv_scale**0.7, 46.0 * rv_scale**0.25, 80.0 * rv_scale**0.05)
    return HeartGeometry(
        w_base_mm=params.lv_length_ed_mm - epi_length,
        lv_cavity_radius_mm=float(cavity_radius),
        lv_cavity_length_mm=float(cavity_length),
        lv_epi_radius_mm=float(epi_radius),
        lv_epi_length_mm=float(epi_length),
        rv_semi_axes_mm=(float(rv_axes[0]), float(rv_axes[1]), float(rv_axes[2])),
        rv_offset_mm=float(epi_radius - 12.0),
    )


_CAL_CONTRACTIONS = np.linspace(0.0, 1.5, 6)
_CAL_SCALES = np.geomspace(0.3, 3.0, 12)


def rv_blood_volume_ml(geometry: HeartGeometry, step_mm: float = 1.5) -> float:
    """RV blood volume of a heart shape by numerical integration of the occupancy, ml."""
    rv = geometry.rv_semi_axes_mm
    u = np.arange(-90.0, geometry.rv_offset_mm + rv[0] + 3.0, step_mm, dtype=np.float32)
    v = np.arange(-rv[1] - 3.0, rv[1] + 3.0, step_mm, dtype=np.float32)
    w = np.arange(geometry.w_base_mm - 3.0, geometry.w_base_mm + rv[2] + 3.0, step_mm, dtype=np.float32)
    pts = tuple(np.ascontiguousarray(a) for a in np.meshgrid(u, v, w, indexing="ij"))
    distance = dict(heart_structures(geometry))[Tissue.RV_BLOOD]
    return float(occupancy(distance(pts), step_mm).sum() * step_mm**3 / 1e3)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _rv_calibration(params: HeartParameters) -> npt.NDArray[np.float64]:
    """Numeric RV volume (ml) on the grid (_CAL_CONTRACTIONS × _CAL_SCALES)."""
    return np.array(
        [
            [rv_blood_volume_ml(_geometry(params, c, s), step_mm=2.5) for s in _CAL_SCALES]
            for c in _CAL_CONTRACTIONS
        ]
    )


def heart_geometry(params: HeartParameters, contraction: float) -> HeartGeometry:
    """Heart shape for a contraction state (0 = end-diastole, 1 = end-systole, may exceed [0, 1]).

    The RV crescent is scaled so that its numerically integrated blood volume matches the target
    ``rv_esv_ml + rv_sv_ml·(1 - contraction)`` (calibration table per parameter set, ≈ 2 % accuracy).
    """
    table = _rv_calibration(params)
    c = float(np.clip(contraction, _CAL_CONTRACTIONS[0], _CAL_CONTRACTIONS[-1]))
    volumes = np.array([np.interp(c, _CAL_CONTRACTIONS, table[:, k]) for k in range(_CAL_SCALES.size)])
    target = params.rv_esv_ml + params.rv_sv_ml * (1.0 - contraction)
    scale = float(np.exp(np.interp(target, volumes, np.log(_CAL_SCALES))))
    return _geometry(params, contraction, scale)


def occupancy(distance_mm: FloatArray, edge_mm: float) -> FloatArray:
    """Partial-volume occupancy of a structure from its signed distance (ramp over ``edge_mm``)."""
    return np.clip(0.5 - distance_mm / np.float32(edge_mm), 0.0, 1.0).astype(np.float32)


def _ellipse_distance(coords: Sequence[FloatArray], semi_axes: Sequence[float]) -> FloatArray:
    """First-order signed distance to an ellipse/ellipsoid surface: (ρ - 1) / |∇ρ|."""
    rho2 = sum((c / np.float32(a)) ** 2 for c, a in zip(coords, semi_axes, strict=True))
    grad2 = sum((c / np.float32(a * a)) ** 2 for c, a in zip(coords, semi_axes, strict=True))
    rho = np.sqrt(rho2)
    grad = np.sqrt(grad2) / np.maximum(rho, np.float32(1e-6))
    return ((rho - 1.0) / np.maximum(grad, np.float32(1e-6))).astype(np.float32)


def _z_cylinder(centre_xy: tuple[float, float], semi_axes: tuple[float, float], z_range: tuple[float, float]):
    def distance(p: Points) -> FloatArray:
        d = _ellipse_distance((p[0] - centre_xy[0], p[1] - centre_xy[1]), semi_axes)
        return np.maximum(d, np.maximum(z_range[0] - p[2], p[2] - z_range[1]))

    return distance


def _ellipsoid(centre: tuple[float, float, float], semi_axes: tuple[float, float, float]) -> DistanceFunction:
    def distance(p: Points) -> FloatArray:
        return _ellipse_distance([p[i] - centre[i] for i in range(3)], semi_axes)

    return distance


def _difference(inner: DistanceFunction, outer: DistanceFunction) -> DistanceFunction:
    def distance(p: Points) -> FloatArray:
        return np.maximum(outer(p), -inner(p))

    return distance


def static_structures() -> list[tuple[Tissue, DistanceFunction]]:
    """Structures that do not move, in painting order (later replaces earlier)."""
    torso_z = (-TORSO_HALF_LENGTH_MM, TORSO_HALF_LENGTH_MM)
    inner = (TORSO_SEMI_AXES_MM[0] - SUBCUTANEOUS_FAT_MM, TORSO_SEMI_AXES_MM[1] - SUBCUTANEOUS_FAT_MM)
    arm_inner = (ARM_SEMI_AXES_MM[0] - 8.0, ARM_SEMI_AXES_MM[1] - 8.0)
    structures: list[tuple[Tissue, DistanceFunction]] = [
        (Tissue.FAT, _z_cylinder((0, 0), TORSO_SEMI_AXES_MM, torso_z))
    ]
    structures.append((Tissue.MUSCLE, _z_cylinder((0, 0), inner, torso_z)))
    for side in (-1.0, 1.0):
        structures.append((Tissue.FAT, _z_cylinder((side * ARM_CENTRE_X_MM, 0), ARM_SEMI_AXES_MM, torso_z)))
        structures.append((Tissue.MUSCLE, _z_cylinder((side * ARM_CENTRE_X_MM, 0), arm_inner, torso_z)))
        structures.append(
            (Tissue.CORTICAL_BONE, _z_cylinder((side * ARM_CENTRE_X_MM, 5.0), (11, 11), torso_z))
        )
        structures.append((Tissue.BONE_MARROW, _z_cylinder((side * ARM_CENTRE_X_MM, 5.0), (7, 7), torso_z)))
        structures.append((Tissue.LUNG, _ellipsoid((side * 78.0, 12.0, 45.0), (62.0, 82.0, 125.0))))
    structures.append((Tissue.LIVER, _ellipsoid((-50.0, 10.0, -135.0), (110.0, 90.0, 80.0))))
    structures.append((Tissue.CORTICAL_BONE, _z_cylinder((0.0, 82.0), (21.0, 19.0), torso_z)))
    structures.append((Tissue.BONE_MARROW, _z_cylinder((0.0, 82.0), (17.0, 15.0), torso_z)))
    return structures


def vessel_structures() -> list[tuple[Tissue, DistanceFunction]]:
    """The great vessels (:data:`hardware_sim.mr.vessels.VESSEL_TREE`), painted before the heart."""
    return [(v.tissue, functools.partial(vessel_distance, v)) for v in VESSEL_TREE]


def heart_structures(geometry: HeartGeometry) -> list[tuple[Tissue, DistanceFunction]]:
    """Heart structures at one contraction state (distances take *heart-frame* points), in painting
    order: the rows of :func:`hardware_sim.mr.heart_shapes.structure_table`."""
    table = heart_shapes.structure_table(geometry)
    base = geometry.w_base_mm
    return [
        (tissue, functools.partial(heart_shapes.row_distance, row, base))
        for tissue, row in zip(heart_shapes.HEART_TISSUES, table, strict=True)
    ]


def _paint_layers(
    fractions: FloatArray, layers: list[tuple[Tissue, DistanceFunction]], pts: Points, edge_mm: float
) -> FloatArray:
    for tissue, distance in layers:
        occ = occupancy(distance(pts), edge_mm)
        if not occ.any():
            continue
        fractions *= 1.0 - occ
        fractions[tissue] += occ
    return fractions


def static_fractions(points: Points, edge_mm: float) -> FloatArray:
    """Fractions ``(N_TISSUES, *shape)`` of everything but the heart (static structures, vessels)."""
    fractions = np.zeros((N_TISSUES, *points[0].shape), dtype=np.float32)
    fractions[Tissue.AIR] = 1.0
    return _paint_layers(fractions, static_structures() + vessel_structures(), points, edge_mm)


def add_heart_fractions(
    fractions: FloatArray, heart_points: Points, contraction: float, params: HeartParameters, edge_mm: float
) -> FloatArray:
    """Paint the heart at a contraction state over a copy of ``fractions`` (heart-frame points)."""
    layers = heart_structures(heart_geometry(params, contraction))
    return _paint_layers(fractions.copy(), layers, heart_points, edge_mm)


def paint_fractions(
    points: Points, contraction: float, params: HeartParameters, edge_mm: float
) -> FloatArray:
    """Tissue fractions ``(N_TISSUES, *shape)`` float32 summing to 1 (air fills the rest)."""
    base = static_fractions(points, edge_mm)
    return add_heart_fractions(base, to_heart_frame(points), contraction, params, edge_mm)


def thorax_label_map(
    points_mm: npt.NDArray[np.floating], contraction: float = 0.0, params: HeartParameters | None = None
) -> npt.NDArray[np.uint8]:
    """Tissue labels (:class:`Tissue`) at points ``(..., 3)`` in LPS mm; reusable by the PET phantom.

    ``contraction`` selects the cardiac state (0 = end-diastole).  Labels are the majority tissue
    at each point (point sampling, no partial volume).
    """
    p = np.asarray(points_mm, dtype=np.float32)
    if p.shape[-1] != 3:
        raise ValueError(f"points_mm must have shape (..., 3), got {p.shape}")
    pts: Points = (p[..., 0], p[..., 1], p[..., 2])
    fractions = paint_fractions(pts, contraction, params or HeartParameters(), edge_mm=1e-3)
    return np.argmax(fractions, axis=0).astype(np.uint8)
