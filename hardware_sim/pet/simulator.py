"""Monte-Carlo TOF PET list-mode simulator.

Decays are drawn in continuous time from the phantom's activity (:mod:`hardware_sim.pet.emission`);
each positron travels its range, annihilates into two photons with non-collinearity, the photons are
transported through the μ-map with single Compton scatter and detected in the crystals with depth of
interaction, crystal efficiency, energy resolution and energy window
(:mod:`hardware_sim.pet.transport`).  Every detected photon is a *single* with an arrival time
(decay time + flight time + Gaussian timing jitter); the time-ordered singles stream goes through a
coincidence sorter (:mod:`hardware_sim.pet.sorter`), so randoms arise from uncorrelated singles exactly as
in a scanner; its delayed channel is an ideal randoms monitor.  The TOF bin of an event is its measured
arrival-time difference ``d = c·(t1 - t2)/2`` binned and clipped (convention of :mod:`recon.tof.geometry`).  No
reconstruction projector is used anywhere.

Back ends (``config.device``): ``"numba"`` runs photon transport in the fused CPU kernel of
:mod:`hardware_sim.pet.kernels`; a torch device (``"cuda"``) runs emission, transport and detection as
tensor operations (:mod:`hardware_sim.pet.gpu`).  The coincidence sorter always runs on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from hardware_sim.pet.coincidences import SPEED_OF_LIGHT_MM_PER_NS, build_events, count_singles
from hardware_sim.pet.config import DELAYED, RANDOM, SCATTER, TRUE, PETSimulationConfig, SimulationTally
from hardware_sim.pet.detector import true_crystal_efficiencies
from hardware_sim.pet.emission import DecayBatch, DecaySampler
from hardware_sim.pet.kernels import DetectorArrays, emit_photon_pairs, transport_photons_fast
from hardware_sim.pet.phantoms import PETPhantom
from hardware_sim.pet.raytrace import MuMap
from hardware_sim.pet.sorter import delayed_coincidences, prompt_coincidences
from hardware_sim.pet.transport import TransportModel
from recon.tof.geometry import FWHM_PER_SIGMA, ScannerGeometry
from recon.tof.listmode import ListModeBatch, PETAcquisitionInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Singles:
    """A time-ordered singles stream (all arrays ``(n,)``): ``time_ns`` float64, ``crystal`` int32,
    ``decay`` int64 (index of the decay in its chunk), ``scattered`` bool, ``correlated`` bool (the
    other photon of the same decay was detected too)."""

    time_ns: np.ndarray
    crystal: np.ndarray
    decay: np.ndarray
    scattered: np.ndarray
    correlated: np.ndarray


@dataclass(frozen=True)
class Events:
    """Sorted coincidences of one chunk, in time order (arrays ``(n,)``; ``annihilation_mm`` ``(n, 3)``)."""

    crystal_id_1: np.ndarray
    crystal_id_2: np.ndarray
    tof_bin: np.ndarray
    is_prompt: np.ndarray
    time_ns: np.ndarray
    event_type: np.ndarray
    annihilation_mm: np.ndarray

    def head(self, n: int) -> Events:
        """The first ``n`` events."""
        return Events(*(getattr(self, f)[:n] for f in self.__dataclass_fields__))


def decay_sampler_for(
    phantom: PETPhantom, scanner: ScannerGeometry, config: PETSimulationConfig
) -> DecaySampler:
    """A :class:`DecaySampler` over the active voxels of ``phantom``."""
    active = np.flatnonzero(phantom.activity_bq_per_ml.ravel() > 0)
    iz, iy, ix = np.unravel_index(active, phantom.grid.shape_zyx)
    g = phantom.grid
    centres = np.stack([g.axis_centres_mm(2)[ix], g.axis_centres_mm(1)[iy], g.axis_centres_mm(0)[iz]], axis=1)
    activity_bq = phantom.activity_bq_per_ml.ravel()[active].astype(np.float64) * g.voxel_volume_ml
    voxel_xyz = np.asarray(g.voxel_size_mm[::-1], dtype=np.float64)
    return DecaySampler(centres, activity_bq, voxel_xyz, scanner, config.half_life_s, config.cone_scale)


class PETListModeSimulator:
    """Simulates one acquisition of ``phantom`` on ``scanner``; iterate :meth:`batches` once.

    Ground truth (counts by type, singles, true efficiencies, per-event truth) is in :attr:`tally` and
    :attr:`true_efficiencies`; what a scanner provides is in :meth:`acquisition_info`.
    """

    def __init__(self, phantom: PETPhantom, scanner: ScannerGeometry, config: PETSimulationConfig) -> None:
        self.phantom, self.scanner, self.config = phantom, scanner, config
        self.rng = np.random.default_rng(config.seed)
        self._delayed_rng = np.random.default_rng([config.seed, 0xDE1A7])  # the prompts do not depend on it
        if config.unit_efficiencies:
            self.true_efficiencies = np.ones(scanner.n_crystals, np.float32)
        else:
            scanner_rng = np.random.default_rng(config.scanner_seed)
            self.true_efficiencies = true_crystal_efficiencies(scanner, scanner_rng, config.efficiency_spread)
        mu_map = MuMap(phantom.grid, phantom.mu_per_cm) if config.attenuation else None
        self.model = TransportModel(scanner, mu_map, self.true_efficiencies, config.scatter)
        self._detector = DetectorArrays.of(scanner, self.true_efficiencies)
        self.sampler = decay_sampler_for(phantom, scanner, config)
        self.tally = SimulationTally(scanner.n_crystals)
        timing_fwhm_ps = scanner.tof_fwhm_ps or scanner.coincidence_window_ns * 500.0
        self._single_sigma_ns = timing_fwhm_ps / FWHM_PER_SIGMA / np.sqrt(2.0) / 1000.0
        fov = config.transaxial_fov_radius_mm or 0.95 * scanner.ring_radius_mm
        self._max_cos_half_angle = fov / scanner.detection_radius_mm
        self._done = False
        self._torch_source = None
        if config.device != "numba":
            from hardware_sim.pet.gpu import TorchSinglesSource  # torch path only when asked for

            self._torch_source = TorchSinglesSource(self, config.device)
        self._last_time_ms = 0

    def _singles(self, decays: DecayBatch) -> tuple[Singles, np.ndarray]:
        n, rng, config = decays.time_ns.shape[0], self.rng, self.config
        origins, directions = emit_photon_pairs(
            decays.position_mm, decays.max_abs_cos_polar, config.mean_positron_range_mm,
            config.non_collinearity_fwhm_rad, rng,
        )  # fmt: skip
        annihilation = origins[:n]
        crystal_id, path_mm, scattered_photon = transport_photons_fast(
            origins, directions, self.model.mu_map, self._detector, self.model.scatter, rng
        )
        detected = np.flatnonzero(crystal_id >= 0)
        decay = detected % n
        jitter = rng.normal(0.0, self._single_sigma_ns, detected.shape[0])
        times = decays.time_ns[decay] + path_mm[detected] / SPEED_OF_LIGHT_MM_PER_NS + jitter
        order = np.argsort(times, kind="stable")
        correlated = np.bincount(decay, minlength=n)[decay] > 1
        crystal, scattered = crystal_id[detected], scattered_photon[detected]
        singles = Singles(times[order], crystal[order], decay[order], scattered[order], correlated[order])
        return singles, annihilation

    def _coincidences(self, singles: Singles, annihilation: np.ndarray | None) -> Events:
        window = self.scanner.coincidence_window_ns
        p1, p2 = prompt_coincidences(singles.time_ns, window)
        d1, d2, delayed_time, delayed_dt = delayed_coincidences(
            singles.time_ns, singles.decay, window, self._delayed_rng
        )
        scanner = self.scanner
        tof_bin_mm = scanner.tof_bin_width_mm() if scanner.is_tof else 0.0
        kept = np.zeros((0, 3)) if annihilation is None else np.ascontiguousarray(annihilation, np.float64)
        arrays = build_events(
            singles.time_ns, singles.crystal, singles.decay, singles.scattered, p1, p2, d1, d2,
            delayed_time, delayed_dt, scanner.n_crystals_per_ring, self._max_cos_half_angle, float(tof_bin_mm),
            int(scanner.max_tof_bin), kept,
        )  # fmt: skip
        return Events(*arrays)

    def _stop_time_ns(self, events: Events, chunk_end_ns: float) -> tuple[float, int]:
        """Acquisition stop time within this chunk (or ``inf``) and the number of events to keep."""
        stop_ns, n_keep = np.inf, events.time_ns.shape[0]
        if self.config.duration_s is not None and chunk_end_ns >= self.config.duration_s * 1e9:
            stop_ns = self.config.duration_s * 1e9
            n_keep = int(np.searchsorted(events.time_ns, stop_ns, side="right"))
        if self.config.n_prompts is not None:
            needed = self.config.n_prompts - self.tally.n_prompts
            cumulative = np.cumsum(events.is_prompt[:n_keep])
            if cumulative.shape[0] and cumulative[-1] >= needed:
                n_keep = int(np.searchsorted(cumulative, needed)) + 1
                stop_ns = float(events.time_ns[n_keep - 1])
        return stop_ns, n_keep

    def _record(self, events: Events, singles: Singles, stop_ns: float, chunk_end_ns: float) -> None:
        tally = self.tally
        every, uncorrelated = count_singles(
            singles.time_ns, singles.crystal, singles.correlated, stop_ns, self.scanner.n_crystals
        )
        tally.singles_per_crystal += every
        tally.uncorrelated_singles_per_crystal += uncorrelated
        types = np.bincount(events.event_type, minlength=4)
        tally.n_trues += int(types[TRUE])
        tally.n_scatters += int(types[SCATTER])
        tally.n_randoms += int(types[RANDOM])
        tally.n_delayeds += int(types[DELAYED])
        tally.duration_s = min(stop_ns, chunk_end_ns) / 1e9
        if self.config.record_event_truth:
            tally.events.event_type.append(events.event_type)
            tally.events.annihilation_mm.append(events.annihilation_mm)

    def chunks(self) -> Iterator[Events]:
        """Simulate chunk after chunk until a stop condition; yields each chunk's recorded events."""
        if self._done:
            raise RuntimeError("a PETListModeSimulator runs once; create a new one")
        self._done = True
        n_decays = self.config.decays_per_chunk
        if self._torch_source is None:
            while True:
                events, stopped = self._process_chunk(*self._next_chunk(n_decays), n_decays)
                yield events
                if stopped:
                    return
        # torch device: chunk k + 1 is computed on the device while the CPU sorts chunk k
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            upcoming: Future[tuple[Singles, np.ndarray | None, float]] | None = prefetch.submit(
                self._next_chunk, n_decays
            )
            while upcoming is not None:
                chunk = upcoming.result()
                upcoming = None if self._likely_last(chunk) else prefetch.submit(self._next_chunk, n_decays)
                events, stopped = self._process_chunk(*chunk, n_decays)
                yield events
                if stopped:
                    return
                if upcoming is None:
                    upcoming = prefetch.submit(self._next_chunk, n_decays)

    def _likely_last(self, chunk: tuple[Singles, np.ndarray | None, float]) -> bool:
        """Whether this chunk probably ends the acquisition (then the next one is not computed ahead)."""
        singles, _, chunk_end_ns = chunk
        config = self.config
        if config.duration_s is not None and chunk_end_ns >= config.duration_s * 1e9:
            return True
        if config.n_prompts is None:
            return False
        prompts_per_chunk_estimate = singles.time_ns.shape[0] / 2.0  # upper bound: every single paired
        return self.tally.n_prompts + prompts_per_chunk_estimate >= config.n_prompts

    def _next_chunk(self, n_decays: int) -> tuple[Singles, np.ndarray | None, float]:
        """Singles, annihilation points and end time (ns) of the next ``n_decays`` decays."""
        if self._torch_source is not None:
            return self._torch_source.next_chunk(n_decays)
        decays = self.sampler.sample(n_decays, self.rng)
        singles, annihilation = self._singles(decays)
        return singles, annihilation, float(decays.time_ns[-1])

    def _process_chunk(
        self, singles: Singles, annihilation: np.ndarray | None, chunk_end_ns: float, n_decays: int
    ) -> tuple[Events, bool]:
        """Sort one chunk into events and tally them; also whether the acquisition stops in it."""
        self.tally.n_decays += n_decays
        events = self._coincidences(singles, annihilation)
        stop_ns, n_keep = self._stop_time_ns(events, chunk_end_ns)
        events = events.head(n_keep)
        self._record(events, singles, stop_ns, chunk_end_ns)
        stopped = bool(np.isfinite(stop_ns))
        if stopped:
            logger.info(
                "PET simulation stopped at %.3f s with %d prompts", stop_ns / 1e9, self.tally.n_prompts
            )
        return events, stopped

    def batches(self) -> Iterator[ListModeBatch]:
        """The acquisition as list-mode batches of ``events_per_batch`` events (last one flagged)."""
        pending: list[Events] = []
        n_pending = 0
        for events in self.chunks():
            pending.append(events)
            n_pending += events.time_ns.shape[0]
            while n_pending > self.config.events_per_batch:
                merged = _merge(pending)
                yield self._batch(merged.head(self.config.events_per_batch), last=False)
                rest = Events(
                    *(getattr(merged, f)[self.config.events_per_batch :] for f in merged.__dataclass_fields__)
                )
                pending, n_pending = [rest], rest.time_ns.shape[0]
        yield self._batch(_merge(pending), last=True)

    def _batch(self, events: Events, last: bool) -> ListModeBatch:
        # events of consecutive chunks may overlap by nanoseconds; keep the ms stamps non-decreasing
        time_ms = np.floor(events.time_ns / 1e6).astype(np.uint32)
        time_ms = np.maximum.accumulate(np.concatenate([[self._last_time_ms], time_ms]))[1:].astype(np.uint32)
        if time_ms.shape[0]:
            self._last_time_ms = int(time_ms[-1])
        return ListModeBatch(
            crystal_id_1=events.crystal_id_1,
            crystal_id_2=events.crystal_id_2,
            tof_bin=events.tof_bin,
            is_prompt=events.is_prompt,
            time_ms=time_ms,
            scanner=self.scanner.name,
            frame_index=0,
            is_last_in_frame=last,
        )

    def acquisition_info(self, crystal_efficiencies: np.ndarray | None = None) -> PETAcquisitionInfo:
        """What the scanner reports with the events (call after the simulation has run)."""
        config = self.config
        decay_back = 2.0 ** (-config.injection_time_s / config.half_life_s)
        dose = (
            config.injected_dose_bq
            if config.injected_dose_bq is not None
            else self.phantom.total_activity_bq * decay_back
        )
        return PETAcquisitionInfo(
            scanner=self.scanner.name,
            frame_start_s=0.0,
            frame_duration_s=max(self.tally.duration_s, 1e-9),
            isotope=config.isotope,
            half_life_s=config.half_life_s,
            injected_dose_bq=float(dose),
            injection_time_s=config.injection_time_s,
            patient_weight_kg=config.patient_weight_kg or self.phantom.weight_kg,
            crystal_efficiencies=crystal_efficiencies,
            singles_rate_per_crystal_cps=self.tally.singles_rate_cps(),
        )


def _merge(parts: list[Events]) -> Events:
    if len(parts) == 1:
        return parts[0]
    return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in Events.__dataclass_fields__))
