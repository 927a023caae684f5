"""Single cine plugins: noise adjust, oversampling removal, accumulation with ECG triggers, config validation."""

from __future__ import annotations

import math

import ismrmrd
import numpy as np
import pytest
from pydantic import ValidationError

from plugins.mr.cine_accumulate import CineAccumulate, ecg_trigger_times_s
from plugins.mr.cine_items import CineSliceRaw
from plugins.mr.cine_noise import CineNoiseAdjust
from plugins.mr.cine_oversampling import CineRemoveOversampling
from plugins.mr.cine_unfold import CineUnfold
from plugins.runtime.plugin import ChainContext
from tests.plugins.mr.cine_stream import CineStream, StreamSpec, header


def _noise(
    rng: np.random.Generator, mixing: np.ndarray, n: int, noise_flag: bool, dwell_us: float
) -> ismrmrd.Acquisition:
    white = (
        rng.standard_normal((mixing.shape[0], n)) + 1j * rng.standard_normal((mixing.shape[0], n))
    ) / math.sqrt(2)
    acq = ismrmrd.Acquisition.from_array((mixing @ white).astype(np.complex64))
    acq.sample_time_us = dwell_us
    if noise_flag:
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    return acq


def test_noise_adjust_whitens_coil_noise_with_dwell_correction() -> None:
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.2, 0.3 + 0.4j, 0.5]])
    prescan = _noise(rng, mixing, 40_000, True, dwell_us=5.0)
    # imaging dwell 2.5 µs = twice the bandwidth of the prescan → twice the noise variance per sample
    data = _noise(rng, mixing * math.sqrt(2.0), 40_000, False, dwell_us=2.5)
    plugin = CineNoiseAdjust(CineNoiseAdjust.Config(), ChainContext(chain_name="t"))
    out = list(plugin.run([prescan, data]))
    assert len(out) == 1  # the prescan is consumed
    white = out[0].data
    covariance = white @ white.conj().T / white.shape[1]
    assert np.allclose(covariance, np.eye(3), atol=0.03)


def test_remove_oversampling_halves_the_readout_and_updates_the_header() -> None:
    spec = StreamSpec()
    stream = CineStream(spec)
    plugin = CineRemoveOversampling(
        CineRemoveOversampling.Config(), ChainContext(chain_name="t", header=header(spec))
    )
    acq = next(
        a
        for a in stream.items()
        if isinstance(a, ismrmrd.Acquisition) and not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    )
    out = next(iter(plugin.run([acq])))
    assert out.number_of_samples == 40 and out.data.shape == (8, 40) and out.center_sample == 20
    assert out.idx.kspace_encode_step_1 == acq.idx.kspace_encode_step_1
    assert out.acquisition_time_stamp == acq.acquisition_time_stamp


def test_ecg_trigger_channel_rising_edges() -> None:
    data = np.zeros((2, 10), dtype=np.uint32)
    data[1, [2, 3, 7]] = 1
    wave = ismrmrd.Waveform.from_array(data)
    wave.time_stamp = 400  # 1 s in 2.5 ms ticks
    wave.sample_time_us = 1000.0
    assert ecg_trigger_times_s(wave) == pytest.approx([1.002, 1.007])


@pytest.mark.parametrize("source", ["ecg_waveform", "physiology_time_stamp"])
def test_accumulate_collects_a_slice_and_its_r_waves(source: str) -> None:
    spec = StreamSpec(acceleration=2)
    stream = CineStream(spec)
    plugin = CineAccumulate(
        CineAccumulate.Config(trigger_source=source), ChainContext(chain_name="t", header=header(spec))
    )
    out = list(plugin.run(stream.items()))
    assert len(out) == 1 and isinstance(out[0], CineSliceRaw)
    raw = out[0]
    assert raw.n_ky == 48 and raw.lines.shape[1:] == (8, 80)
    assert bool(raw.is_calibration.any()) and not bool(raw.is_imaging[raw.ky_index % 2 == 1].any())
    spacing = (raw.r_wave_times_s[1:] - raw.r_wave_times_s[:-1]).numpy()
    assert np.allclose(spacing, 0.8)
    assert float(raw.r_wave_times_s[0]) == pytest.approx(0.1)  # first R-wave at tick 40


def test_unfold_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        CineUnfold.Config(method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        CineUnfold.Config(grappa_n_kx_taps=4)
    with pytest.raises(ValidationError):
        CineUnfold.Config(sense_iterations=0)
    with pytest.raises(ValidationError):
        CineUnfold.Config(unknown_key=1)  # type: ignore[call-arg]


def test_remove_oversampling_plugin_equals_the_core_function() -> None:
    import torch

    from recon.cine.noise import remove_readout_oversampling

    rng = np.random.default_rng(4)
    data = (rng.standard_normal((4, 64)) + 1j * rng.standard_normal((4, 64))).astype(np.complex64)
    acq = ismrmrd.Acquisition.from_array(data)
    plugin = CineRemoveOversampling(CineRemoveOversampling.Config(factor=2), ChainContext(chain_name="t"))
    out = next(iter(plugin.run([acq])))
    expected = remove_readout_oversampling(torch.from_numpy(data), 2).numpy()
    assert np.allclose(out.data, expected, atol=1e-5)
