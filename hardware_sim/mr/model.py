"""Everything an exam needs to stream and to make its truth, built once from the config."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from hardware_sim.mr.anatomy import HeartParameters
from hardware_sim.mr.coils import CoilArray, make_coil_array
from hardware_sim.mr.config import MRExamConfig
from hardware_sim.mr.flow import FlowModel
from hardware_sim.mr.geometry import SliceGeometry, slice_geometries
from hardware_sim.mr.kspace import SliceSynthesizer
from hardware_sim.mr.noise_model import noise_std_per_sample
from hardware_sim.mr.physiology import (
    CardiacState,
    Rhythm,
    cardiac_state,
    contraction_curve,
    generate_rhythm,
    mechanical_phase,
    systole_duration_s,
)
from hardware_sim.mr.sampling import SliceSchedule, build_schedules, estimated_duration_s
from hardware_sim.mr.scene import FlowRates, SignalModel
from hardware_sim.mr.tissue_sequences import MIN_TRIGGER_DELAY_S, TISSUE_PROTOCOLS, WINDOW_END_BEFORE_R_S

logger = logging.getLogger(__name__)
EXAM_START_TICKS = 9 * 3600 * 400
"""acquisition_time_stamp of t = 0 (09:00:00 in 2.5 ms ticks)."""
TICK_S = 2.5e-3


@dataclass(frozen=True)
class ExamModel:
    """The simulated exam's components; each slice's synthesizer is built on first use (thread-safe)."""

    config: MRExamConfig
    rhythm: Rhythm
    schedules: list[SliceSchedule]
    geometries: list[SliceGeometry]
    coils: CoilArray
    heart: HeartParameters
    flow: FlowModel
    signal: SignalModel
    _futures: dict[int, Future[SliceSynthesizer]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def synthesizer(self, s: int) -> SliceSynthesizer:
        """The k-space synthesizer of slice ``s`` (built once, then cached)."""
        with self._lock:
            future = self._futures.get(s)
            owner = future is None
            if future is None:
                future = self._futures[s] = Future()
        if owner:
            try:
                geometry, cfg = self.geometries[s], self.config
                signal = self.signal.for_slice(self.schedules[s].timing)
                future.set_result(
                    SliceSynthesizer(
                        geometry, s, cfg.n_readout, cfg.n_phase_encodes, signal, self.heart, self.coils
                    )
                )
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()

    def prefetch(self, s: int) -> None:
        """Build slice ``s``'s synthesizer in a background thread (errors surface on use)."""
        if 0 <= s < len(self.geometries):
            threading.Thread(
                target=self._quiet_build, args=(s,), name=f"mr-sim-slice-{s}", daemon=True
            ).start()

    def _quiet_build(self, s: int) -> None:
        try:
            self.synthesizer(s)
        except Exception:  # kept in the future; re-raised to the consumer by synthesizer()
            logger.debug("building slice %d failed", s, exc_info=True)

    @property
    def synthesizers(self) -> list[SliceSynthesizer]:
        """Every slice's synthesizer (builds the missing ones)."""
        return [self.synthesizer(s) for s in range(len(self.geometries))]

    @property
    def frozen_heart(self) -> bool:
        """The heart does not move during the readouts (no motion, or a diastolic tissue-characterisation
        protocol: frozen at :func:`diastolic_contraction`)."""
        return not self.config.cardiac_motion or self.config.protocol in TISSUE_PROTOCOLS

    def state(self, t_s: float) -> tuple[float, FlowRates]:
        """Contraction and vessel flows at an exam time (frozen at end-diastole without motion, at
        diastasis for the tissue-characterisation protocols)."""
        if not self.config.cardiac_motion:
            return 0.0, FlowRates()
        if self.config.protocol in TISSUE_PROTOCOLS:
            return diastolic_contraction(self.config), FlowRates()
        st = cardiac_state(self.rhythm, np.array([t_s]))
        flows = flows_at(self.flow, st) if self.config.protocol == "flow" else FlowRates()
        return float(st.contraction[0]), flows


def flows_at(flow: FlowModel, state: CardiacState) -> FlowRates:
    """Vessel flows (first element of the state arrays)."""
    return FlowRates({key: float(rate[0]) for key, rate in flow.rates(state).items()})


def diastolic_contraction(config: MRExamConfig) -> float:
    """Contraction in the diastolic acquisition windows of the tissue-characterisation protocols: the
    nominal beat's state at ``RR - WINDOW_END_BEFORE_R_S - 0.1 s`` (diastasis, where the contraction model
    changes by < 0.05; the heart is frozen there, a documented simplification)."""
    rr = 60.0 / config.heart_rate_bpm
    tau = np.array([max(MIN_TRIGGER_DELAY_S, rr - WINDOW_END_BEFORE_R_S - 0.1)])
    psi = mechanical_phase(tau, np.array([rr]), rr)
    ps = float(systole_duration_s(rr)) / rr
    return float(contraction_curve(psi, ps)[0])


HEART_CONDITIONS = {
    "normal": {},
    "dilated": {"lv_esv_ml": 210.0, "myocardial_volume_ml": 160.0},
    "hypertrophic": {"lv_esv_ml": 40.0, "myocardial_volume_ml": 200.0},
}
"""LV end-systolic and myocardial volumes (ml) of each ``heart_condition`` (others: the defaults)."""


def aortic_forward_ml(config: MRExamConfig) -> float:
    """Forward volume through the aortic valve per beat: Qs / (1 - aortic RF), ml."""
    return config.stroke_volume_ml / (1.0 - config.aortic_regurgitant_fraction)


def heart_parameters(config: MRExamConfig) -> HeartParameters:
    """Ventricular volumes implied by Qs, Qp:Qs, the regurgitant fraction and volume, and the condition:
    the LV ejects the aortic forward volume plus the mitral regurgitant volume."""
    lv_sv = aortic_forward_ml(config) + config.mitral_regurgitant_volume_ml
    return HeartParameters(
        lv_sv_ml=lv_sv,
        rv_sv_ml=config.shunt_qp_qs * config.stroke_volume_ml,
        **HEART_CONDITIONS[config.heart_condition],
    )


def build_model(config: MRExamConfig) -> ExamModel:
    """Draw the rhythm, coils and schedules (slice synthesizers are built on first use)."""
    rhythm = generate_rhythm(
        config.heart_rate_bpm,
        config.rr_variability_percent,
        config.arrhythmia,
        config.ectopic_fraction,
        estimated_duration_s(config),
        np.random.default_rng([config.seed, 0]),
    )
    geometries = slice_geometries(config)
    centre_z = float(np.mean([g.centre_mm[2] for g in geometries])) if config.protocol == "flow" else 0.0
    coils = make_coil_array(
        config.n_coils, noise_std_per_sample(config), centre_z, np.random.default_rng([config.seed, 1])
    )
    schedules = build_schedules(config, rhythm, np.random.default_rng([config.seed, 2]))
    heart = heart_parameters(config)
    flow = FlowModel(
        aortic_forward_ml(config), heart.rv_sv_ml, config.aortic_regurgitant_fraction, rhythm.systole_fraction
    )
    signal = SignalModel(config)
    return ExamModel(config, rhythm, schedules, geometries, coils, heart, flow, signal)
