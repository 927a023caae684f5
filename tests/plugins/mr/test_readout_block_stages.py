"""Noise adjust and oversampling removal handle readouts block-wise: same numbers as one readout at a time."""

from __future__ import annotations

import math

import ismrmrd
import numpy as np
import torch

from plugins.mr.cine_noise import CineNoiseAdjust
from plugins.mr.cine_oversampling import CineRemoveOversampling
from plugins.runtime.plugin import ChainContext
from recon.cine.noise import noise_covariance, remove_readout_oversampling, whitening_matrix

RTOL = 2e-6  # complex64 rounding, relative to the largest sample of a readout


def _readout(
    rng: np.random.Generator, n_coils: int, n_samples: int, dwell_us: float, *flags: int
) -> ismrmrd.Acquisition:
    data = rng.standard_normal((n_coils, n_samples)) + 1j * rng.standard_normal((n_coils, n_samples))
    acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
    acq.sample_time_us = dwell_us
    acq.center_sample = n_samples // 2
    for flag in flags:
        acq.set_flag(flag)
    return acq


def _stream(rng: np.random.Generator) -> list[object]:
    """Noise prescan, readouts at two dwell times, a waveform and a slice end in between."""
    noise = [_readout(rng, 4, 256, 5.0, ismrmrd.ACQ_IS_NOISE_MEASUREMENT) for _ in range(2)]
    first = [_readout(rng, 4, 32, 2.5) for _ in range(7)]
    first[4].set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
    wave = ismrmrd.Waveform.from_array(np.zeros((1, 4), dtype=np.uint32))
    second = [_readout(rng, 4, 32, 4.0) for _ in range(5)]
    return [*noise, *first[:3], wave, *first[3:], *second]


def test_noise_adjust_in_blocks_whitens_every_readout_as_the_definition() -> None:
    rng = np.random.default_rng(1)
    items = _stream(rng)
    noise = np.concatenate([a.data for a in items[:2]], axis=1)  # type: ignore[attr-defined]
    covariance = noise_covariance(torch.from_numpy(noise).to(torch.complex128))
    inputs = [(x, x.data.copy()) for x in items[2:] if isinstance(x, ismrmrd.Acquisition)]
    plugin = CineNoiseAdjust(CineNoiseAdjust.Config(max_block_readouts=4), ChainContext(chain_name="t"))
    out = list(plugin.run(items))
    assert out == items[2:]  # noise dropped, everything else in order (whitened in place)
    for acq, before in inputs:
        w = whitening_matrix(covariance, dwell_ratio=5.0 / acq.sample_time_us).to(torch.complex64).numpy()
        expected = w @ before
        assert np.abs(acq.data - expected).max() <= RTOL * np.abs(expected).max()


def test_noise_adjust_without_prescan_passes_readouts_unchanged() -> None:
    rng = np.random.default_rng(2)
    items = [_readout(rng, 4, 32, 2.5) for _ in range(3)]
    before = [a.data.copy() for a in items]
    out = list(CineNoiseAdjust(CineNoiseAdjust.Config(), ChainContext(chain_name="t")).run(items))
    assert out == items and all(np.array_equal(a.data, b) for a, b in zip(out, before, strict=True))


def test_oversampling_removal_in_blocks_is_the_definition_for_every_readout() -> None:
    rng = np.random.default_rng(3)
    items = _stream(rng)
    plugin = CineRemoveOversampling(
        CineRemoveOversampling.Config(factor=2, max_block_readouts=3), ChainContext(chain_name="t")
    )
    out = list(plugin.run(items))
    assert len(out) == len(items)
    for before, after in zip(items, out, strict=True):
        if not isinstance(before, ismrmrd.Acquisition) or before.is_flag_set(
            ismrmrd.ACQ_IS_NOISE_MEASUREMENT
        ):
            assert after is before  # waveforms and noise readouts pass unchanged
            continue
        expected = remove_readout_oversampling(torch.from_numpy(before.data).to(torch.complex128), 2).numpy()
        assert after.data.shape == (4, 16) and after.number_of_samples == 16 and after.center_sample == 8
        assert np.abs(after.data - expected).max() <= RTOL * np.abs(expected).max()
        assert after.flags == before.flags and math.isclose(after.sample_time_us, before.sample_time_us)
        assert before.data.shape == (4, 32) and before.number_of_samples == 32  # the input is left as it was
        assert after.scan_counter == before.scan_counter and after.idx.segment == before.idx.segment
