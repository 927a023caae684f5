"""Numerical volumes of the heart model: LV and RV blood pools and LV myocardium at a contraction.

The heart's rows (:mod:`hardware_sim.mr.heart_shapes`) are painted on a 3-D heart-frame grid with
the same kernel as the images, with indicator values instead of signals, so the volumes agree with
the painted labels (papillary muscles and trabeculae are myocardium, not blood; the outflow tracts and
atria above the base plane are not ventricle).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.heart_shapes import HEART_TISSUES, LV_MYOCARDIUM_ROWS, structure_table
from hardware_sim.mr.paint_kernel import paint_heart
from hardware_sim.mr.tissues import Tissue

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
"""Specific gravity of myocardium used for LV mass (g/ml)."""
GRID_STEP_MM = 1.5
_EXTENT_MM = ((-70.0, 90.0), (-75.0, 75.0), (-5.0, 100.0))


@functools.lru_cache(maxsize=1)
def _grid() -> tuple[npt.NDArray[np.float32], ...]:
    axes = [np.arange(lo, hi, GRID_STEP_MM, dtype=np.float32) for lo, hi in _EXTENT_MM]
    return tuple(np.ascontiguousarray(a.ravel()) for a in np.meshgrid(*axes, indexing="ij"))


def row_indicators() -> npt.NDArray[np.complex64]:
    """(n_rows, 3) indicator of [LV blood, RV blood, LV myocardium] per row of the heart table."""
    values = np.zeros((len(HEART_TISSUES), 3), np.complex64)
    for k, tissue in enumerate(HEART_TISSUES):
        values[k, 0] = tissue == Tissue.LV_BLOOD
        values[k, 1] = tissue == Tissue.RV_BLOOD
        values[k, 2] = k in LV_MYOCARDIUM_ROWS
    return values


def paint_indicators(
    heart_points: tuple[npt.NDArray[np.float32], ...],
    geometry,  # type: ignore[no-untyped-def]
    values: npt.NDArray[np.complex64],
    edge_mm: float,
) -> npt.NDArray[np.float32]:
    """Fractions ``(k, *shape)`` of heart-frame points: the rows painted with ``values`` (n_rows, k)."""
    shape = heart_points[0].shape
    hu, hv, hw = (np.ascontiguousarray(h.ravel(), dtype=np.float32) for h in heart_points)
    image = np.zeros((values.shape[1], hu.size), np.complex64)
    signals = np.broadcast_to(values[:, :, None], (*values.shape, hu.size))
    paint_heart(image, hu, hv, hw, structure_table(geometry), geometry.w_base_mm, signals, edge_mm)
    return image.real.reshape(values.shape[1], *shape)


def heart_volumes_ml(geometry) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(LV blood, RV blood, LV myocardium) volumes in ml of one :class:`anatomy.HeartGeometry`."""
    fractions = paint_indicators(_grid(), geometry, row_indicators(), GRID_STEP_MM)
    lv, rv, myo = (fractions.sum(axis=1) * GRID_STEP_MM**3 / 1e3).tolist()
    return float(lv), float(rv), float(myo)
