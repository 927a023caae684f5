"""Pulsatile flow in the great vessels, consistent with the ventricular volume curves.

Forward flow in the ascending aorta during systole is the LV ejection rate
``Q_ao(t) = SV_LV·strength·de/dψ·dψ/dt`` (so one nominal beat ejects exactly SV_LV = Qs / (1 - RF));
with aortic regurgitation a diastolic back-flow of volume RF·SV_LV (exponential shape in ψ) follows.
The main pulmonary artery carries the RV ejection ``SV_RV = Qp = Qp:Qs·Qs`` with the same shape,
split 45 % / 55 % into the left / right pulmonary artery; the descending aorta carries 65 % of the
forward flow (the rest leaves through the head and arm vessels, not modelled), delayed by 0.04 in ψ.
The venae cavae return Qs (superior 35 %, inferior 65 %) with a mild biphasic modulation.  Across the
atrioventricular valves the ventricles fill in diastole: mitral flow = LV filling rate minus the
aortic regurgitant inflow, tricuspid flow = RV filling rate (each integrates to its stroke volume
less the regurgitation over a nominal beat).  Every curve is in its vessel's forward direction.
Velocity profile across a vessel of radius R: ``v(r) = v_mean·(n+2)/n·(1 - (r/R)ⁿ)`` with n = 4
(blunted, peak = 1.5·v_mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hardware_sim.mr.physiology import CardiacState, contraction_rate

FloatArray = npt.NDArray[np.float64]
PROFILE_EXPONENT = 4
_REGURGITATION_DECAY = 0.2  # ψ decay constant of the regurgitant jet


@dataclass(frozen=True)
class FlowModel:
    """Stroke volumes (ml): ``lv_stroke_ml`` (aortic forward), ``rv_stroke_ml`` (pulmonary),
    ``regurgitant_fraction`` (0..1) and the nominal systolic fraction ``systole_fraction``."""

    lv_stroke_ml: float
    rv_stroke_ml: float
    regurgitant_fraction: float
    systole_fraction: float

    def __post_init__(self) -> None:
        if self.lv_stroke_ml <= 0 or self.rv_stroke_ml <= 0 or not 0.0 <= self.regurgitant_fraction < 1.0:
            raise ValueError("invalid flow model")

    def _ejection(self, state: CardiacState, delay: float = 0.0) -> FloatArray:
        psi = np.mod(state.psi - delay, 1.0)
        rate = np.where(psi < self.systole_fraction, contraction_rate(psi, self.systole_fraction), 0.0)
        return state.strength * rate * state.psi_rate_per_s

    def aorta_ml_per_s(self, state: CardiacState) -> FloatArray:
        """Flow through the ascending aorta (+ towards the head), ml/s."""
        forward = self.lv_stroke_ml * self._ejection(state)
        ps = self.systole_fraction
        decay = _REGURGITATION_DECAY
        norm = decay * (1.0 - np.exp(-(1.0 - ps) / decay))
        shape = np.where(state.psi >= ps, np.exp(-(state.psi - ps) / decay) / norm, 0.0)
        back = self.regurgitant_fraction * self.lv_stroke_ml * state.strength * shape * state.psi_rate_per_s
        return forward - back

    def pulmonary_ml_per_s(self, state: CardiacState) -> FloatArray:
        """Flow through the main pulmonary artery (+ towards the head), ml/s."""
        return self.rv_stroke_ml * self._ejection(state)

    def descending_aorta_ml_per_s(self, state: CardiacState) -> FloatArray:
        """Flow down the descending aorta (forward = caudal), ml/s."""
        return 0.65 * self.lv_stroke_ml * self._ejection(state, delay=0.04)

    def _filling(self, state: CardiacState) -> FloatArray:
        """Ventricular filling rate per ml of stroke volume (ψ in diastole), 1/s."""
        psi = np.mod(state.psi, 1.0)
        rate = np.where(psi >= self.systole_fraction, -contraction_rate(psi, self.systole_fraction), 0.0)
        return state.strength * rate * state.psi_rate_per_s

    def mitral_ml_per_s(self, state: CardiacState) -> FloatArray:
        """Flow across the mitral valve into the LV (forward = into the LV), ml/s."""
        return self.lv_stroke_ml * self._filling(state) + np.minimum(self.aorta_ml_per_s(state), 0.0)

    def tricuspid_ml_per_s(self, state: CardiacState) -> FloatArray:
        """Flow across the tricuspid valve into the RV, ml/s."""
        return self.rv_stroke_ml * self._filling(state)

    def _venous(self, state: CardiacState, share: float) -> FloatArray:
        qs = self.lv_stroke_ml * (1.0 - self.regurgitant_fraction)
        return (
            share * qs * state.strength * state.psi_rate_per_s * (1.0 + 0.3 * np.sin(2 * np.pi * state.psi))
        )

    def rates(self, state: CardiacState) -> dict[str, FloatArray]:
        """Every curve by flow key (``aorta``, ``pulmonary``, ``descending_aorta``, ``lpa``, ``rpa``,
        ``svc``, ``ivc``, ``mitral``, ``tricuspid``), ml/s."""
        pulmonary = self.pulmonary_ml_per_s(state)
        return {
            "aorta": self.aorta_ml_per_s(state),
            "pulmonary": pulmonary,
            "descending_aorta": self.descending_aorta_ml_per_s(state),
            "lpa": 0.45 * pulmonary,
            "rpa": 0.55 * pulmonary,
            "svc": self._venous(state, 0.35),
            "ivc": self._venous(state, 0.65),
            "mitral": self.mitral_ml_per_s(state),
            "tricuspid": self.tricuspid_ml_per_s(state),
        }


def velocity_profile_cm_per_s(flow_ml_per_s: float, radius_mm: float, r_mm: npt.NDArray[np.float32]):
    """Through-vessel velocity (cm/s) at distance ``r_mm`` from the axis of a vessel carrying a flow."""
    area_cm2 = np.pi * (radius_mm / 10.0) ** 2
    n = PROFILE_EXPONENT
    mean = flow_ml_per_s / area_cm2
    shape = np.clip(1.0 - (r_mm / np.float32(radius_mm)) ** n, 0.0, None)
    return (np.float32(mean * (n + 2) / n) * shape).astype(np.float32)


def peak_velocity_cm_per_s(flow_ml_per_s: FloatArray, radius_mm: float) -> FloatArray:
    """Peak (axial) velocity for a flow, cm/s."""
    area_cm2 = np.pi * (radius_mm / 10.0) ** 2
    return np.asarray(flow_ml_per_s) / area_cm2 * (PROFILE_EXPONENT + 2) / PROFILE_EXPONENT
