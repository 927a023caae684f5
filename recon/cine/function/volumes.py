"""Volumes, ejection fractions, LV mass and body-surface indexing from per-slice segmented areas.

Disc summation (Simpson's rule as used in CMR): the volume of a structure at a cardiac phase is the sum
over the short-axis slices of its segmented area times the slice spacing (thickness + gap).  End-diastole
is the phase of the largest LV blood-pool volume (on a flat late-diastolic plateau: the plateau phase
nearest the R-wave, :func:`end_diastolic_phase`), end-systole the phase of the smallest; the RV is
measured at the same two phases (one pair of frames for both ventricles, as in common CMR practice).  LV mass is the
end-diastolic myocardial volume (papillary muscles and trabeculae included) × 1.05 g/ml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
"""Specific gravity of myocardium (g/ml)."""
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VentricleVolumes:
    """Volumes of one ventricle's blood pool.

    Attributes:
        volume_curve_ml: (P,) float64 disc-summation volume per cardiac phase, ml.
        edv_ml, esv_ml: volumes at the end-diastolic / end-systolic phase, ml.
        sv_ml: stroke volume EDV − ESV, ml; ef_percent: 100 · SV / EDV.
    """

    volume_curve_ml: FloatArray
    edv_ml: float
    esv_ml: float
    sv_ml: float
    ef_percent: float

    def __post_init__(self) -> None:
        if self.volume_curve_ml.ndim != 1 or self.edv_ml < 0 or self.esv_ml < 0:
            raise ValueError("volume curve must be 1-D and volumes non-negative")


@dataclass(frozen=True)
class FunctionResult:
    """Ventricular function of one short-axis stack.

    Attributes:
        end_diastolic_phase, end_systolic_phase: phase indices of max / min LV blood-pool volume.
        lv, rv: blood-pool volumes of the left and right ventricle.
        lv_myocardium_curve_ml: (P,) float64 LV myocardial volume per phase, ml.
        lv_mass_g: end-diastolic LV myocardial volume × 1.05 g/ml, g.
        bsa_m2: body surface area (Mosteller), m², when height and weight are known, else None.
    """

    end_diastolic_phase: int
    end_systolic_phase: int
    lv: VentricleVolumes
    rv: VentricleVolumes
    lv_myocardium_curve_ml: FloatArray
    lv_mass_g: float
    bsa_m2: float | None

    def indexed(self) -> dict[str, float]:
        """Volumes (ml/m²) and mass (g/m²) indexed to BSA; empty without a BSA."""
        if self.bsa_m2 is None:
            return {}
        b = self.bsa_m2
        return {
            "lv_edv_ml_per_m2": self.lv.edv_ml / b,
            "lv_esv_ml_per_m2": self.lv.esv_ml / b,
            "lv_sv_ml_per_m2": self.lv.sv_ml / b,
            "lv_mass_g_per_m2": self.lv_mass_g / b,
            "rv_edv_ml_per_m2": self.rv.edv_ml / b,
            "rv_esv_ml_per_m2": self.rv.esv_ml / b,
            "rv_sv_ml_per_m2": self.rv.sv_ml / b,
        }


def mosteller_bsa_m2(height_m: float | None, weight_kg: float | None) -> float | None:
    """Body surface area by Mosteller: √(height_cm · weight_kg / 3600), m²; None if either is missing."""
    if height_m is None or weight_kg is None or height_m <= 0 or weight_kg <= 0:
        return None
    return math.sqrt(100.0 * height_m * weight_kg / 3600.0)


def disc_volumes_ml(areas_mm2: FloatArray, slice_spacing_mm: float) -> FloatArray:
    """Disc summation: areas (S, P) mm² → volumes (P,) ml."""
    return np.asarray(areas_mm2, dtype=np.float64).sum(axis=0) * slice_spacing_mm / 1e3


def _ventricle(curve_ml: FloatArray, ed: int, es: int) -> VentricleVolumes:
    edv, esv = float(curve_ml[ed]), float(curve_ml[es])
    sv = edv - esv
    return VentricleVolumes(curve_ml, edv, esv, sv, 100.0 * sv / edv if edv > 0 else float("nan"))


ED_PLATEAU_FRACTION = 0.01
"""Phases within this fraction of the largest LV volume count as end-diastolic candidates."""


def end_diastolic_phase(lv_curve_ml: FloatArray) -> int:
    """End-diastole: of the phases within :data:`ED_PLATEAU_FRACTION` of the largest LV volume, the one
    nearest the R-wave trigger, latest in the cycle first (P-1, then 0, P-2, 1, ...).

    Disc summation leaves the late-diastolic volume curve flat to within a pixel's worth of area (a
    dilated ventricle fills little after its rapid filling), so its bare maximum can fall anywhere on
    the plateau; gated cine starts each cycle at the R-wave, which is end-diastole."""
    n = lv_curve_ml.size
    candidates = np.nonzero(lv_curve_ml >= (1.0 - ED_PLATEAU_FRACTION) * lv_curve_ml.max())[0]
    distance = np.minimum((n - 1 - candidates) % n, candidates + 0.5)
    return int(candidates[int(np.argmin(distance))])


def ventricular_function(
    lv_areas_mm2: FloatArray,
    rv_areas_mm2: FloatArray,
    myocardium_areas_mm2: FloatArray,
    slice_spacing_mm: float,
    bsa_m2: float | None = None,
) -> FunctionResult:
    """Function from segmented areas (S slices, P phases) in mm² of the LV and RV blood pools and LV
    myocardium of a short-axis stack with the given slice spacing."""
    lv = disc_volumes_ml(lv_areas_mm2, slice_spacing_mm)
    rv = disc_volumes_ml(rv_areas_mm2, slice_spacing_mm)
    myo = disc_volumes_ml(myocardium_areas_mm2, slice_spacing_mm)
    ed, es = end_diastolic_phase(lv), int(np.argmin(lv))
    return FunctionResult(
        ed,
        es,
        _ventricle(lv, ed, es),
        _ventricle(rv, ed, es),
        myo,
        MYOCARDIAL_DENSITY_G_PER_ML * float(myo[ed]),
        bsa_m2,
    )


@dataclass(frozen=True)
class FlowCrossCheck:
    """Cine stroke volumes against phase-contrast forward volumes of the same session (ml per beat).

    Attributes:
        aortic_forward_ml, pulmonary_forward_ml: forward volumes from the flow report (None if absent).
        mitral_regurgitant_ml: LV SV − aortic forward; tricuspid_regurgitant_ml: RV SV − pulmonary
            forward (None without the vessel).
        qp_qs_flow: pulmonary / aortic net flow from phase contrast; qp_qs_cine: RV SV / LV SV.
    """

    aortic_forward_ml: float | None
    pulmonary_forward_ml: float | None
    mitral_regurgitant_ml: float | None
    tricuspid_regurgitant_ml: float | None
    qp_qs_flow: float | None
    qp_qs_cine: float


def flow_cross_check(
    result: FunctionResult,
    aortic_forward_ml: float | None,
    pulmonary_forward_ml: float | None,
    qp_qs_flow: float | None,
) -> FlowCrossCheck:
    """Regurgitant volumes of the atrioventricular valves and Qp:Qs by both methods."""
    mitral = None if aortic_forward_ml is None else result.lv.sv_ml - aortic_forward_ml
    tricuspid = None if pulmonary_forward_ml is None else result.rv.sv_ml - pulmonary_forward_ml
    qp_qs_cine = result.rv.sv_ml / result.lv.sv_ml if result.lv.sv_ml > 0 else float("nan")
    return FlowCrossCheck(aortic_forward_ml, pulmonary_forward_ml, mitral, tricuspid, qp_qs_flow, qp_qs_cine)
