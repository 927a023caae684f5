"""A small synthetic ECG-gated cine acquisition as an ISMRMRD stream (header, noise prescan, readouts, ECG).

Segmented retrospective acquisition: every heartbeat acquires one segment of k-space lines cyclically
for its whole R-R interval (TR = 5 ms, time stamps in 2.5 ms ticks); the object beats with the cardiac
fraction of the true beat.  Ectopic beats (short beat + compensatory pause) carry a scrambled cardiac
state and their segment is re-acquired in the next beat, as a scanner with arrhythmia rejection does.
K-space comes from the 2×-finer-grid phantom of ``tests.recon.cine.synthetic`` (readout 2× oversampled).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import torch

from tests.recon.cine import synthetic

TICK_S = 2.5e-3


@dataclass
class StreamSpec:
    """Size and physiology of the synthetic stream."""

    shape: tuple[int, int] = (48, 40)  # (ny, nx) recon grid
    n_coils: int = 8
    acceleration: int = 1
    n_acs: int = 16
    n_phases: int = 10
    rr_s: list[float] = field(default_factory=lambda: [0.8] * 40)
    ectopic_beats: tuple[int, ...] = ()
    segment: int = 4
    tr_ticks: int = 2
    noise_std: float = 0.02
    n_states: int = 40
    seed: int = 0


def header(spec: StreamSpec) -> xsd.ismrmrdHeader:
    ny, nx = spec.shape
    enc = xsd.encodingType(
        trajectory=xsd.trajectoryType.CARTESIAN,
        encodedSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=2 * nx, y=ny, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=2 * nx * 2.0, y=ny * 2.0, z=8),
        ),
        reconSpace=xsd.encodingSpaceType(
            matrixSize=xsd.matrixSizeType(x=nx, y=ny, z=1),
            fieldOfView_mm=xsd.fieldOfViewMm(x=nx * 2.0, y=ny * 2.0, z=8),
        ),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=xsd.limitType(minimum=0, maximum=ny - 1, center=ny // 2),
            phase=xsd.limitType(minimum=0, maximum=spec.n_phases - 1, center=0),
        ),
        parallelImaging=xsd.parallelImagingType(
            accelerationFactor=xsd.accelerationFactorType(
                kspace_encoding_step_1=spec.acceleration, kspace_encoding_step_2=1
            )
        ),
    )
    return xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(
            receiverChannels=spec.n_coils, systemFieldStrength_T=1.5
        ),
        encoding=[enc],
    )


def _lines(spec: StreamSpec) -> tuple[list[int], set[int], set[int]]:
    ny = spec.shape[0]
    imaging = set(range(0, ny, spec.acceleration))
    acs = set(range(ny // 2 - spec.n_acs // 2, ny // 2 + spec.n_acs // 2)) if spec.acceleration > 1 else set()
    return sorted(imaging | acs), imaging, acs


class CineStream:
    """Builds the items and the truth images ``(phases, ny, nx)`` (times the coil RSS) of one slice."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        ny, nx = spec.shape
        fine = (2 * ny, 4 * nx)  # 2× finer and 2× oversampled field of view along x
        self._maps = synthetic.coil_maps(spec.n_coils, fine, torch.complex128)
        body = torch.zeros(fine, dtype=torch.float64)
        self._states = [self._kspace(f, body) for f in np.arange(spec.n_states) / spec.n_states]
        rss_fine = torch.linalg.vector_norm(self._maps[:, :, nx : 3 * nx], dim=0)
        rss = synthetic.fine_to_coarse(rss_fine, spec.shape).real
        self.truth = (
            torch.stack(
                [
                    synthetic.fine_to_coarse(
                        synthetic.phantom((2 * ny, 2 * nx), (p + 0.5) / spec.n_phases), spec.shape
                    )
                    for p in range(spec.n_phases)
                ]
            ).abs()
            * rss
        )
        self.body_mask = self.truth[0] > 0.2 * float(self.truth[0].max())
        self._rng = np.random.default_rng(spec.seed)

    def _kspace(self, fraction: float, body: torch.Tensor) -> np.ndarray:
        ny, nx = self.spec.shape
        img = body.clone()
        img[:, nx : 3 * nx] = synthetic.phantom((2 * ny, 2 * nx), fraction)
        return synthetic.coil_kspace(img, self._maps, (ny, 2 * nx)).numpy()

    def items(self) -> Iterator[ismrmrd.Acquisition | ismrmrd.Waveform]:
        spec = self.spec
        yield self._noise()
        order, imaging, acs = _lines(spec)
        segments = [order[i : i + spec.segment] for i in range(0, len(order), spec.segment)]
        t_ticks, seg_index = 40, 0
        acqs: list[ismrmrd.Acquisition] = []
        for beat, rr in enumerate(spec.rr_s):
            if seg_index >= len(segments):
                break
            yield self._ecg(t_ticks)
            n_ticks = round(rr / TICK_S)
            ectopic = beat in spec.ectopic_beats or beat - 1 in spec.ectopic_beats
            seg = segments[seg_index]
            for i, tick in enumerate(range(0, n_ticks - spec.tr_ticks + 1, spec.tr_ticks)):
                fraction = tick / n_ticks
                if ectopic:
                    fraction = (fraction + 0.5) % 1.0  # a scrambled cardiac state
                ky = seg[i % len(seg)]
                acq = self._readout(ky, fraction, t_ticks + tick, tick, ky in imaging, ky in acs)
                acqs.append(acq)
                yield acq
            seg_index += 0 if ectopic else 1
            t_ticks += n_ticks
        acqs[-1].set_flag(ismrmrd.ACQ_LAST_IN_SLICE)

    def _noise(self) -> ismrmrd.Acquisition:
        data = self._complex_noise((self.spec.n_coils, 2 * self.spec.shape[1] * 8))
        acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        acq.sample_time_us = 2.0
        return acq

    def _complex_noise(self, shape: tuple[int, int]) -> np.ndarray:
        white = (self._rng.standard_normal(shape) + 1j * self._rng.standard_normal(shape)) / math.sqrt(2)
        mixing = np.eye(shape[0]) + 0.2 * np.eye(shape[0], k=1)  # correlated coil noise
        return self.spec.noise_std * (mixing @ white)

    def _readout(
        self, ky: int, fraction: float, t_ticks: int, since_r: int, is_img: bool, is_acs: bool
    ) -> ismrmrd.Acquisition:
        state = self._states[round(fraction * self.spec.n_states) % self.spec.n_states]
        line = state[:, ky, :] + self._complex_noise(state[:, ky, :].shape)
        acq = ismrmrd.Acquisition.from_array(line.astype(np.complex64))
        acq.idx.kspace_encode_step_1 = ky
        acq.acquisition_time_stamp = t_ticks
        acq.physiology_time_stamp[0] = since_r
        acq.sample_time_us = 2.0
        acq.center_sample = self.spec.shape[1]
        acq.read_dir[:] = (1.0, 0.0, 0.0)
        acq.phase_dir[:] = (0.0, 1.0, 0.0)
        acq.slice_dir[:] = (0.0, 0.0, 1.0)
        acq.position[:] = (0.0, 0.0, 12.5)
        if is_acs:
            acq.set_flag(
                ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING
                if is_img
                else ismrmrd.ACQ_IS_PARALLEL_CALIBRATION
            )
        return acq

    def _ecg(self, t_ticks: int) -> ismrmrd.Waveform:
        data = np.zeros((2, 8), dtype=np.uint32)
        data[0] = 2048
        data[1, 0] = 1
        wave = ismrmrd.Waveform.from_array(data)
        wave.waveform_id = 0
        wave.time_stamp = t_ticks
        wave.sample_time_us = 2500.0
        return wave
