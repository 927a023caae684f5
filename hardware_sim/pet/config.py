"""Configuration and ground-truth tallies of the PET list-mode simulator."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: F-18 half-life, s.
F18_HALF_LIFE_S = 6586.2

#: Event type codes of :class:`EventTruth`.
TRUE, SCATTER, RANDOM, DELAYED = 0, 1, 2, 3


@dataclass(frozen=True)
class PETSimulationConfig:
    """Parameters of one simulated PET acquisition (one frame, one bed position).

    Attributes:
        n_prompts: stop after this many prompt events (trues + scatters + randoms); ``None``: no limit.
        duration_s: stop at this acquisition time, s; ``None``: no limit.  At least one limit is needed.
        seed: seed of the ``numpy.random.Generator`` that drives everything.
        isotope: isotope name written to the acquisition info.
        half_life_s: isotope half-life, s (decay during the acquisition is simulated).
        injected_dose_bq: injected activity at injection time, Bq; ``None``: the phantom's total
            activity decay-corrected back to the injection time.
        injection_time_s: injection time relative to the acquisition start, s (negative = before).
        patient_weight_kg: weight for SUV, kg; ``None``: the phantom's weight.
        mean_positron_range_mm: mean 3-D positron range, mm (F-18 in water ≈ 0.6; 0 disables).
        non_collinearity_fwhm_rad: FWHM of the photon pair's deviation from 180°, rad (0 disables).
        attenuation: photons interact in the μ-map (False: the body is transparent).
        scatter: photons that interact Compton-scatter once (Klein–Nishina) and may still be
            detected; False: interacting photons are absorbed.
        transaxial_fov_radius_mm: only crystal pairs whose LOR passes within this distance of the
            axis are recorded, mm; ``None``: 95 % of the ring radius.
        efficiency_spread: σ of the log of the true crystal efficiencies (0: only the block pattern).
        scanner_seed: seed of the true crystal efficiencies, a property of the scanner: a calibration
            scan and a patient scan with the same ``scanner_seed`` see the same crystals.
        unit_efficiencies: all crystal efficiencies exactly 1 (geometry-only calibration runs, tests).
        cone_scale: widening (>= 1) of the per-voxel direction cone of simulated decays.
        decays_per_chunk: decays simulated per vectorised step.
        events_per_batch: events per yielded :class:`recon.tof.listmode.ListModeBatch`.
        record_event_truth: keep the type and annihilation point of every event (tests, truth file).
        device: ``"numba"`` (CPU kernel) or a torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``) for the
            vectorised torch path of :mod:`hardware_sim.pet.gpu` (emission, transport, detection).
    """

    n_prompts: int | None = 1_000_000
    duration_s: float | None = None
    seed: int = 0
    isotope: str = "F-18"
    half_life_s: float = F18_HALF_LIFE_S
    injected_dose_bq: float | None = None
    injection_time_s: float = -3600.0
    patient_weight_kg: float | None = None
    mean_positron_range_mm: float = 0.6
    non_collinearity_fwhm_rad: float = float(np.deg2rad(0.5))
    attenuation: bool = True
    scatter: bool = True
    transaxial_fov_radius_mm: float | None = None
    efficiency_spread: float = 0.08
    scanner_seed: int = 20260
    unit_efficiencies: bool = False
    cone_scale: float = 1.3
    decays_per_chunk: int = 1 << 17
    events_per_batch: int = 1 << 16
    record_event_truth: bool = False
    device: str = "numba"

    def __post_init__(self) -> None:
        if self.n_prompts is None and self.duration_s is None:
            raise ValueError("give n_prompts or duration_s (or both)")
        if self.n_prompts is not None and self.n_prompts < 1:
            raise ValueError(f"n_prompts must be >= 1, got {self.n_prompts}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.half_life_s <= 0 or self.cone_scale < 1.0:
            raise ValueError("half_life_s must be > 0 and cone_scale >= 1")
        if (
            self.mean_positron_range_mm < 0
            or self.non_collinearity_fwhm_rad < 0
            or self.efficiency_spread < 0
        ):
            raise ValueError("positron range, non-collinearity and efficiency spread must be >= 0")
        if self.decays_per_chunk < 1 or self.events_per_batch < 1:
            raise ValueError("decays_per_chunk and events_per_batch must be >= 1")


@dataclass
class EventTruth:
    """Per-event ground truth, aligned with the emitted events (filled when ``record_event_truth``).

    Attributes:
        event_type: list of int8 arrays, codes ``TRUE, SCATTER, RANDOM, DELAYED``.
        annihilation_mm: list of ``(n, 3)`` float32 arrays, annihilation point of trues and scatters
            (NaN for randoms and delayeds), (x, y, z) mm.
    """

    event_type: list[np.ndarray] = field(default_factory=list)
    annihilation_mm: list[np.ndarray] = field(default_factory=list)

    def concatenated(self) -> tuple[np.ndarray, np.ndarray]:
        """All events' ``(event_type, annihilation_mm)``."""
        if not self.event_type:
            return np.zeros(0, np.int8), np.zeros((0, 3), np.float32)
        return np.concatenate(self.event_type), np.concatenate(self.annihilation_mm)


@dataclass
class SimulationTally:
    """Counts by type and singles, accumulated while the simulation runs (ground truth).

    Attributes:
        n_decays: simulated (detectable-cone) decays.
        n_trues, n_scatters, n_randoms: prompt events by origin.
        n_delayeds: delayed-window events.
        singles_per_crystal: detected singles per crystal (after energy window), int64 ``(n_crystals,)``.
        uncorrelated_singles_per_crystal: the singles whose partner photon was not detected, int64
            ``(n_crystals,)``; random coincidences arise between these.
        duration_s: acquisition time covered, s.
        events: per-event truth when recorded.
    """

    n_crystals: int
    n_decays: int = 0
    n_trues: int = 0
    n_scatters: int = 0
    n_randoms: int = 0
    n_delayeds: int = 0
    duration_s: float = 0.0
    singles_per_crystal: np.ndarray = field(init=False)
    uncorrelated_singles_per_crystal: np.ndarray = field(init=False)
    events: EventTruth = field(default_factory=EventTruth)

    def __post_init__(self) -> None:
        self.singles_per_crystal = np.zeros(self.n_crystals, np.int64)
        self.uncorrelated_singles_per_crystal = np.zeros(self.n_crystals, np.int64)

    @property
    def n_prompts(self) -> int:
        """Prompt events recorded."""
        return self.n_trues + self.n_scatters + self.n_randoms

    def singles_rate_cps(self) -> np.ndarray:
        """Measured singles rate of every crystal, counts/s, float64 ``(n_crystals,)``."""
        return self.singles_per_crystal / max(self.duration_s, 1e-300)

    def uncorrelated_singles_rate_cps(self) -> np.ndarray:
        """Rate of singles without a detected partner, per crystal, counts/s, float64 ``(n_crystals,)``."""
        return self.uncorrelated_singles_per_crystal / max(self.duration_s, 1e-300)
