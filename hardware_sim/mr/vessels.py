"""The great vessels of the thorax phantom as tubes along polylines (static, LPS patient mm).

Each vessel is a chain of capsules (segments with a radius) in the frame of
:mod:`hardware_sim.mr.anatomy`; blood flows from the first point to the last.  The layout follows
adult anatomy at the heart's base (measures rounded from CT/MR atlases of normal adults: aortic root
≈ 30 mm, ascending aorta ≈ 28 mm, main pulmonary artery ≈ 25 mm, descending aorta ≈ 22 mm, venae
cavae ≈ 20–24 mm in diameter):

* ascending aorta from the aortic valve up, rightwards and anteriorly to the arch, over the
  pulmonary bifurcation to the descending aorta, which runs left of the spine down to the abdomen;
* main pulmonary artery (pulmonary trunk) from the pulmonary valve (anterior, left and superior of
  the aortic valve) up and back to its bifurcation, the left branch over the left bronchus to the
  left hilum, the right one behind the ascending aorta to the right hilum;
* superior vena cava from above into the right atrium, inferior vena cava from the abdomen through
  the liver into the right atrium.

The valves are where the moving outflow tracts of :mod:`hardware_sim.mr.heart_shapes` end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.tissues import Tissue

FloatArray = npt.NDArray[np.float32]

AORTIC_VALVE_MM = np.array([-12.0, -25.0, 45.0])
"""Centre of the aortic valve (LPS mm)."""
PULMONARY_VALVE_MM = np.array([10.0, -44.0, 68.0])
"""Centre of the pulmonary valve (LPS mm)."""


@dataclass(frozen=True)
class Vessel:
    """One vessel: ``points_mm`` (n, 3) float64 polyline in LPS mm in the direction of forward flow,
    ``radius_mm`` lumen radius, ``tissue`` its label, ``flow`` the key of its flow curve in
    :class:`hardware_sim.mr.flow.FlowModel` (``aorta``, ``pulmonary``, ``descending_aorta``,
    ``lpa``, ``rpa``, ``svc``, ``ivc``)."""

    name: str
    points_mm: npt.NDArray[np.float64]
    radius_mm: float
    tissue: Tissue
    flow: str

    def __post_init__(self) -> None:
        if self.points_mm.ndim != 2 or self.points_mm.shape[1] != 3 or self.points_mm.shape[0] < 2:
            raise ValueError(f"vessel {self.name}: points_mm must be (n >= 2, 3)")
        if self.radius_mm <= 0:
            raise ValueError(f"vessel {self.name}: radius must be positive")

    def direction_at(self, s: int) -> npt.NDArray[np.float64]:
        """Unit direction of forward flow along segment ``s``."""
        d = self.points_mm[s + 1] - self.points_mm[s]
        return d / np.linalg.norm(d)

    def point_along_mm(self, distance_mm: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Point at an arc length from the start, and the unit direction there."""
        left = distance_mm
        for s in range(self.points_mm.shape[0] - 1):
            length = float(np.linalg.norm(self.points_mm[s + 1] - self.points_mm[s]))
            if left <= length or s == self.points_mm.shape[0] - 2:
                return self.points_mm[s] + self.direction_at(s) * left, self.direction_at(s)
            left -= length
        raise AssertionError("unreachable")


def _v(*points: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    return np.array(points, dtype=np.float64)


ASCENDING_AORTA = Vessel(
    "ascending_aorta",
    _v(tuple(AORTIC_VALVE_MM), (-25.0, -35.0, 100.0), (-15.0, -18.0, 118.0), (5.0, 10.0, 122.0),
       (20.0, 38.0, 112.0), (22.0, 55.0, 92.0)),
    14.0,
    Tissue.AORTA_BLOOD,
    "aorta",
)  # fmt: skip
DESCENDING_AORTA = Vessel(
    "descending_aorta", _v((22.0, 55.0, 92.0), (22.0, 55.0, -330.0)), 11.0, Tissue.DESC_AORTA_BLOOD,
    "descending_aorta",
)  # fmt: skip
PULMONARY_TRUNK = Vessel(
    "pulmonary_trunk", _v(tuple(PULMONARY_VALVE_MM), (22.0, -22.0, 98.0)), 12.5, Tissue.PA_BLOOD, "pulmonary"
)
LEFT_PULMONARY_ARTERY = Vessel(
    "left_pulmonary_artery", _v((22.0, -22.0, 98.0), (75.0, 15.0, 95.0)), 10.0, Tissue.PA_BLOOD, "lpa"
)
RIGHT_PULMONARY_ARTERY = Vessel(
    "right_pulmonary_artery", _v((22.0, -22.0, 98.0), (-65.0, 15.0, 92.0)), 9.5, Tissue.PA_BLOOD, "rpa"
)
SUPERIOR_VENA_CAVA = Vessel(
    "superior_vena_cava", _v((-45.0, -15.0, 200.0), (-46.0, -20.0, 60.0)), 10.0, Tissue.CAVA_BLOOD, "svc"
)
INFERIOR_VENA_CAVA = Vessel(
    "inferior_vena_cava", _v((-30.0, 25.0, -330.0), (-38.0, 5.0, -60.0), (-44.0, -10.0, 18.0)), 11.5,
    Tissue.CAVA_BLOOD, "ivc",
)  # fmt: skip

VESSEL_TREE: tuple[Vessel, ...] = (
    DESCENDING_AORTA,
    INFERIOR_VENA_CAVA,
    SUPERIOR_VENA_CAVA,
    LEFT_PULMONARY_ARTERY,
    RIGHT_PULMONARY_ARTERY,
    PULMONARY_TRUNK,
    ASCENDING_AORTA,
)
"""Every vessel, in painting order (a later one replaces an earlier one where they touch)."""


def _segment_distance(
    p: tuple[FloatArray, FloatArray, FloatArray], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> FloatArray:
    """Distance (mm) from points to the segment a→b."""
    ab = (b - a).astype(np.float32)
    length2 = np.float32(ab @ ab)
    d = [p[i] - np.float32(a[i]) for i in range(3)]
    t = np.clip((d[0] * ab[0] + d[1] * ab[1] + d[2] * ab[2]) / length2, 0.0, 1.0)
    r2 = sum((d[i] - t * ab[i]) ** 2 for i in range(3))
    return np.sqrt(r2).astype(np.float32)


def axis_distance_mm(
    vessel: Vessel, p: tuple[FloatArray, FloatArray, FloatArray]
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Distance (mm) from points to the vessel's centre line, and the index of the nearest segment."""
    distances = np.stack(
        [
            _segment_distance(p, vessel.points_mm[s], vessel.points_mm[s + 1])
            for s in range(len(vessel.points_mm) - 1)
        ]
    )
    nearest = np.argmin(distances, axis=0)
    return np.take_along_axis(distances, nearest[None], axis=0)[0], nearest


def vessel_distance(vessel: Vessel, p: tuple[FloatArray, FloatArray, FloatArray]) -> FloatArray:
    """Signed distance (mm, negative inside) to the vessel's lumen wall."""
    return axis_distance_mm(vessel, p)[0] - np.float32(vessel.radius_mm)


def through_plane_cosine(
    vessel: Vessel, nearest: npt.NDArray[np.intp], normal: npt.NDArray[np.float64]
) -> FloatArray:
    """Cosine between forward flow and a slice normal at each point, from the nearest segment."""
    cosines = np.array([vessel.direction_at(s) @ normal for s in range(len(vessel.points_mm) - 1)])
    return cosines[nearest].astype(np.float32)
