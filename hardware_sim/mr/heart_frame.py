"""The heart's frame of reference: where the left ventricle sits in the patient (LPS, mm).

Heart frame coordinates ``(u, v, w)`` in mm: ``w`` along the LV long axis from the end-diastolic base
plane (the mitral annulus) towards the apex (anterior-left-inferior), ``u`` from the LV centre towards
the RV (anterior-right), ``v = w × u``.  Everything that moves with the heart is described in it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Points = tuple[FloatArray, FloatArray, FloatArray]

HEART_BASE_CENTRE_MM = np.array([-5.0, -15.0, 31.0])
"""Centre of the LV base plane at end-diastole (LPS, mm)."""
_W = np.array([0.55, -0.45, -0.70])
HEART_LONG_AXIS = _W / np.linalg.norm(_W)
"""Unit vector from the LV base towards the apex (anterior-left-inferior)."""
_T = np.array([-0.7, -0.7, 0.0])
_U = _T - (_T @ HEART_LONG_AXIS) * HEART_LONG_AXIS
HEART_SEPTAL_AXIS = _U / np.linalg.norm(_U)
"""Unit vector from the LV centre towards the RV (anterior-right), orthogonal to the long axis."""
HEART_THIRD_AXIS = np.cross(HEART_LONG_AXIS, HEART_SEPTAL_AXIS)


def to_heart_frame(points: Points) -> Points:
    """Patient (LPS, mm) → heart frame (septal axis u, third axis v, long axis w from the ED base)."""
    d = [points[i] - np.float32(HEART_BASE_CENTRE_MM[i]) for i in range(3)]
    axes = (HEART_SEPTAL_AXIS, HEART_THIRD_AXIS, HEART_LONG_AXIS)
    return tuple(  # type: ignore[return-value]
        (np.float32(a[0]) * d[0] + np.float32(a[1]) * d[1] + np.float32(a[2]) * d[2]).astype(np.float32)
        for a in axes
    )


def heart_frame_point(patient_mm: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One LPS point (3,) in heart-frame coordinates (u, v, w), mm."""
    d = np.asarray(patient_mm, dtype=np.float64) - HEART_BASE_CENTRE_MM
    return np.array([d @ HEART_SEPTAL_AXIS, d @ HEART_THIRD_AXIS, d @ HEART_LONG_AXIS])


def patient_point(heart_mm: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One heart-frame point (u, v, w) in LPS patient coordinates (3,), mm."""
    u, v, w = heart_mm
    return HEART_BASE_CENTRE_MM + u * HEART_SEPTAL_AXIS + v * HEART_THIRD_AXIS + w * HEART_LONG_AXIS
