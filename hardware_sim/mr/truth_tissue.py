"""Ground truth of the tissue-characterisation exams: T1 / T2 / T2* maps, lesion mask, image TIs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hardware_sim.mr import anatomy
from hardware_sim.mr.model import ExamModel, diastolic_contraction
from hardware_sim.mr.tissue_sequences import SliceTiming
from hardware_sim.mr.tissue_states import lesion_occupancy


def image_times_ms(timing: SliceTiming) -> npt.NDArray[np.float64]:
    """Per image: time from its last preparation (inversion or T2 preparation end) to its k-space centre
    line (ms; NaN when no preparation precedes it), i.e. the true TI of MOLLI and LGE images."""
    out = np.full(timing.n_contrasts, np.nan)
    for ro in timing.readouts:
        if ro.contrast < 0:
            continue
        centre = ro.start_s + ro.centre_pulse * ro.tr_s + (0.5 * ro.tr_s if ro.kind == "bssfp" else 0.0)
        before = [p.time_s for p in timing.preparations if p.time_s <= ro.start_s]
        if before:
            out[ro.contrast] = (centre - max(before)) * 1e3
    return out


def tissue_slice_truth(
    model: ExamModel, s: int, labels: npt.NDArray[np.uint8], pts: anatomy.Points, edge_mm: float
) -> dict[str, npt.NDArray]:
    """Maps (ms) of slice ``s`` at the diastolic state from its labels ``(Y, X)`` and the lesion."""
    signal = model.signal
    t1 = np.zeros(labels.shape, np.float32)
    t2 = np.zeros_like(t1)
    t2s = np.zeros_like(t1)
    for tissue, prop in signal.properties.items():
        inside = labels == tissue
        t1[inside], t2[inside], t2s[inside] = prop.t1_ms, prop.t2_ms, prop.t2star_ms
    geometry = anatomy.heart_geometry(model.heart, diastolic_contraction(model.config))
    lesion = lesion_occupancy(anatomy.to_heart_frame(pts), geometry, signal.lesion, edge_mm) > 0.5
    if signal.lesion_properties is not None:
        lp = signal.lesion_properties
        t1[lesion], t2[lesion], t2s[lesion] = lp.t1_ms, lp.t2_ms, lp.t2star_ms
    timing = model.schedules[s].timing
    times = image_times_ms(timing) if timing is not None else np.zeros(0)
    return {
        "t1_map_ms": t1,
        "t2_map_ms": t2,
        "t2star_map_ms": t2s,
        "lesion_mask": lesion,
        "image_ti_ms": times,
    }
