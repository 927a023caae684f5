"""One call from a short-axis stack to ventricular function: segmentation, volumes, ED/ES, EF, mass.

The stack is ``(S, P, Y, X)`` float magnitudes on one intensity scale per slice, slice 0 at the base.
A stack given apex first is detected (the LV is larger at the base) and analysed base first; the
masks come back in the caller's slice order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from recon.cine.function.localize import MOTION_STEP, disc_mask, heart_centre, temporal_std
from recon.cine.function.segment import SegmentationParameters, SliceStatus, StackSegmentation, segment_stack
from recon.cine.function.volumes import FunctionResult, ventricular_function

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class StackAnalysis:
    """Segmentation and function of one stack.

    Attributes:
        segmentation: masks (S, P, Y, X) in the caller's slice order, per-slice status.
        function: volumes, ED/ES phases, EF, mass, BSA.
        areas_mm2: (3, S, P) float64 areas of LV blood, RV blood and LV myocardium (failed slices
            interpolated), mm².
        apex_first: the stack was given apex first (slice 0 apical).
    """

    segmentation: StackSegmentation
    function: FunctionResult
    areas_mm2: FloatArray
    apex_first: bool


def _reversed(seg: StackSegmentation) -> StackSegmentation:
    n = seg.counted.shape[0]
    status = tuple(
        SliceStatus(n - 1 - s.slice_index, s.state, s.n_phases_counted, s.message)
        for s in reversed(seg.status)
    )
    return replace(
        seg,
        lv_blood=seg.lv_blood[::-1],
        lv_myocardium=seg.lv_myocardium[::-1],
        rv_blood=seg.rv_blood[::-1],
        counted=seg.counted[::-1],
        lv_centre_yx=seg.lv_centre_yx[::-1],
        ring_coverage=seg.ring_coverage[::-1],
        threshold=seg.threshold[::-1],
        status=status,
    )


def _apex_first(motion: FloatArray, pixel_mm: float) -> bool:
    """The heart moves more in the last third of the slices than in the first (apex given first): the
    base has the larger ventricles and the atria.  ``motion``: (S, Y, X) temporal standard deviation."""
    centre = heart_centre(motion, pixel_mm)
    step = MOTION_STEP
    roi = disc_mask(motion.shape[-2:], (centre[0] / step, centre[1] / step), 60.0 / (pixel_mm * step))
    per_slice = motion[:, roi].sum(axis=1)
    third = max(1, motion.shape[0] // 3)
    return bool(per_slice[-third:].sum() > per_slice[:third].sum())


def analyse_stack(
    stack: FloatArray,
    pixel_mm: tuple[float, float],
    slice_spacing_mm: float,
    bsa_m2: float | None = None,
    parameters: SegmentationParameters | None = None,
) -> StackAnalysis | None:
    """Segment a short-axis stack and compute ventricular function; None when no LV is found.

    ``pixel_mm``: (dy, dx) pixel size in mm (the segmentation uses their geometric mean)."""
    pixel = float(np.sqrt(pixel_mm[0] * pixel_mm[1]))
    motion = temporal_std(stack)
    apex_first = stack.shape[0] > 2 and _apex_first(motion, pixel)
    ordered, motion = (stack[::-1], motion[::-1]) if apex_first else (stack, motion)
    seg = segment_stack(np.ascontiguousarray(ordered, dtype=np.float64), pixel, parameters, motion)
    if seg is None:
        return None
    if apex_first:
        seg = _reversed(seg)
    lv, rv, myo = seg.areas_mm2(pixel_mm[0] * pixel_mm[1])
    function = ventricular_function(lv, rv, myo, slice_spacing_mm, bsa_m2)
    return StackAnalysis(seg, function, np.stack([lv, rv, myo]), apex_first)
